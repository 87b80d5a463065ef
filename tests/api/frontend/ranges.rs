//! Time ranges: `createdAfter` and `createdBefore` on a user's posts and a post's
//! comments, exclusive, with full pages and cursors bound to their range.

use super::{Args, Conn, backward, forward, walk_both_ways};
use crate::helpers::{TestApp, at_text, codes, spawn_app};

/// u1's posts `a00`..`a29` at minutes 0..29 and u2's `b00`..`b29` at the same minutes;
/// comments `k00`..`k29` on `a00` at minutes 0..29 and `l00`..`l29` on `b00` likewise.
async fn ranged_fixture() -> TestApp {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    for m in 0..30 {
        app.add_post(&format!("a{m:02}"), "u1", m).await;
        app.add_post(&format!("b{m:02}"), "u2", m).await;
    }
    for m in 0..30 {
        app.add_comment(&format!("k{m:02}"), "a00", "u2", m).await;
        app.add_comment(&format!("l{m:02}"), "b00", "u1", m).await;
    }
    app
}

#[tokio::test]
async fn a_time_range_bounds_user_posts_exclusively_with_full_pages() {
    let app = ranged_fixture().await;
    let (from, to) = (at_text(9), at_text(20));
    let conn = Conn::posts_of("u1").within(Some(from), Some(to));
    let page = conn.page(&app, &forward(5)).await;
    assert_eq!(
        page.ids,
        ["a19", "a18", "a17", "a16", "a15"],
        "newest first within the range"
    );
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, true, 10),
        "(hasPreviousPage, hasNextPage, totalCount): minutes 10 to 19"
    );

    // Minutes 9 and 20 excluded; every page full.
    let expected: Vec<String> = (10..20).rev().map(|m| format!("a{m:02}")).collect();
    walk_both_ways(&app, &conn, &expected, &[5, 3, 10]).await;

    let after_only = Conn::posts_of("u1").within(Some(at_text(24)), None);
    let page = after_only.page(&app, &forward(100)).await;
    assert_eq!(page.ids, ["a29", "a28", "a27", "a26", "a25"]);
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, false, 5)
    );
    let before_only = Conn::posts_of("u1").within(None, Some(at_text(3)));
    let page = before_only.page(&app, &forward(2)).await;
    assert_eq!(page.ids, ["a02", "a01"], "a full first page");
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, true, 3)
    );
    let page = before_only.page(&app, &backward(2)).await;
    assert_eq!(page.ids, ["a01", "a00"]);
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (true, false, 3)
    );

    // The same instants written with another offset are the same range.
    let offset = Conn::posts_of("u1").within(
        Some("2025-01-01T13:09:00+01:00".to_owned()),
        Some("2025-01-01T13:20:00+01:00".to_owned()),
    );
    let page = offset.page(&app, &forward(100)).await;
    assert_eq!(page.ids, expected, "RFC 3339 with an offset");
}

#[tokio::test]
async fn a_time_range_bounds_post_comments_exclusively_with_full_pages() {
    let app = ranged_fixture().await;
    let conn = Conn::comments_of("a00").within(Some(at_text(9)), Some(at_text(20)));
    let page = conn.page(&app, &forward(4)).await;
    assert_eq!(
        page.ids,
        ["k10", "k11", "k12", "k13"],
        "oldest first within the range"
    );
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, true, 10)
    );
    let expected: Vec<String> = (10..20).map(|m| format!("k{m:02}")).collect();
    walk_both_ways(&app, &conn, &expected, &[4, 10]).await;

    let page = Conn::comments_of("a00")
        .within(Some(at_text(27)), None)
        .page(&app, &Args::default())
        .await;
    assert_eq!(page.ids, ["k28", "k29"]);
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, false, 2)
    );
    // The whole list is still counted by the post's counter.
    let page = Conn::comments_of("a00").page(&app, &forward(1)).await;
    assert_eq!(page.total, 30);
}

#[tokio::test]
async fn a_cursor_holds_only_under_the_range_it_was_made_with() {
    let app = ranged_fixture().await;
    let ranged = Conn::posts_of("u1").within(Some(at_text(9)), Some(at_text(20)));
    let wider = Conn::posts_of("u1").within(Some(at_text(9)), Some(at_text(25)));
    let after_only = Conn::posts_of("u1").within(Some(at_text(9)), None);
    let plain = Conn::posts_of("u1");

    let ranged_cursor = ranged
        .page(&app, &forward(3))
        .await
        .end()
        .expect("a cursor");
    // A position inside the range, but found with no range.
    let plain_page = plain.page(&app, &forward(15)).await;
    assert_eq!(plain_page.ids.last().map(String::as_str), Some("a15"));
    let plain_cursor = plain_page.end().expect("a cursor");

    // Under its own range, both ways.
    let page = ranged.page(&app, &forward(3).after(&ranged_cursor)).await;
    assert_eq!(page.ids, ["a16", "a15", "a14"]);
    assert_eq!(page.total, 10);
    let page = ranged.page(&app, &backward(5).before(&ranged_cursor)).await;
    assert_eq!(page.ids, ["a19", "a18"]);
    assert_eq!((page.has_previous, page.has_next), (false, true));

    for (conn, cursor, what) in [
        (&wider, &ranged_cursor, "under another range"),
        (&after_only, &ranged_cursor, "under a range of one bound"),
        (&plain, &ranged_cursor, "under no range"),
        (&ranged, &plain_cursor, "made with no range, under a range"),
    ] {
        for args in [forward(3).after(cursor), backward(3).before(cursor)] {
            let body = conn.body(&app, &args).await;
            assert_eq!(
                codes(&body),
                ["BAD_USER_INPUT"],
                "a cursor {what}: {} with {args:?}: {body}",
                conn.name
            );
        }
    }

    // The same for comments.
    let ranged = Conn::comments_of("a00").within(Some(at_text(9)), Some(at_text(20)));
    let plain = Conn::comments_of("a00");
    let ranged_cursor = ranged
        .page(&app, &forward(3))
        .await
        .end()
        .expect("a cursor");
    let plain_cursor = plain
        .page(&app, &forward(12))
        .await
        .end()
        .expect("a cursor");
    for (conn, cursor, what) in [
        (&plain, &ranged_cursor, "under no range"),
        (&ranged, &plain_cursor, "made with no range, under a range"),
    ] {
        let body = conn.body(&app, &forward(3).after(cursor)).await;
        assert_eq!(
            codes(&body),
            ["BAD_USER_INPUT"],
            "a comments cursor {what}: {body}"
        );
    }
}

#[tokio::test]
async fn an_empty_or_inverted_range_is_never_a_server_error() {
    let app = ranged_fixture().await;
    // Minutes are whole: nothing lies strictly between minute 10 and minute 11.
    let page = Conn::posts_of("u1")
        .within(Some(at_text(10)), Some(at_text(11)))
        .page(&app, &forward(5))
        .await;
    assert!(page.ids.is_empty(), "{page:?}");
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, false, 0)
    );
    // Equal or inverted bounds: an empty page, or a client error; never anything else.
    for (from, to) in [(10, 10), (20, 9)] {
        for conn in [
            Conn::posts_of("u1").within(Some(at_text(from)), Some(at_text(to))),
            Conn::comments_of("a00").within(Some(at_text(from)), Some(at_text(to))),
        ] {
            for args in [forward(5), backward(5)] {
                let body = conn.body(&app, &args).await;
                if body.get("errors").is_some() {
                    assert_eq!(
                        codes(&body),
                        ["BAD_USER_INPUT"],
                        "{} with {args:?}: {body}",
                        conn.name
                    );
                } else {
                    let page = conn.read(&body, &args);
                    assert!(page.ids.is_empty(), "{} with {args:?}: {page:?}", conn.name);
                    assert_eq!(
                        (page.has_previous, page.has_next, page.total),
                        (false, false, 0),
                        "{} with {args:?}",
                        conn.name
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_malformed_time_is_a_validation_error_on_every_transport() {
    use crate::hardening::{TRANSPORTS, codes_of, errors_via};
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    for via in TRANSPORTS {
        let literal = errors_via(
            &app,
            via,
            "{ user(id: \"u1\") { posts(createdAfter: \"not a time\") { nodes { id } } } }",
            serde_json::json!({}),
        )
        .await;
        assert_eq!(
            codes_of(&literal),
            ["GRAPHQL_VALIDATION_FAILED"],
            "{via:?}: {literal:?}"
        );
        let variable = errors_via(
            &app,
            via,
            "query($t: DateTime) { user(id: \"u1\") { posts(createdBefore: $t) { nodes { id } } } }",
            serde_json::json!({ "t": "2026-13-45" }),
        )
        .await;
        assert_eq!(
            codes_of(&variable),
            ["GRAPHQL_VALIDATION_FAILED"],
            "{via:?}: {variable:?}"
        );
    }
}
