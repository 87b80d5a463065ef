//! Paging both ways: `first`/`after` and `last`/`before` on every connection, with exact
//! `pageInfo`, cursors that work either way, and refused contradictions.

use futures::StreamExt as _;
use serde_json::json;

use super::{Args, Conn, backward, forward, requests, walk_both_ways};
use crate::helpers::{TestApp, codes, spawn_app};

#[tokio::test]
async fn post_comments_page_both_ways_with_exact_page_info() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    let sizes = [0usize, 1, 20, 21, 250];
    for n in sizes {
        app.add_post(&format!("p{n}"), "u1", n as i64).await;
    }
    let mut writes = Vec::new();
    for n in sizes {
        for i in 0..n {
            writes.push((format!("k{n}-{i:03}"), format!("p{n}"), i as i64));
        }
    }
    futures::stream::iter(
        writes
            .iter()
            .map(|(id, post, minute)| app.add_comment(id, post, "u2", *minute)),
    )
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;

    for n in sizes {
        // Oldest first.
        let expected: Vec<String> = (0..n).map(|i| format!("k{n}-{i:03}")).collect();
        let conn = Conn::comments_of(&format!("p{n}"));
        walk_both_ways(&app, &conn, &expected, &[20, 7]).await;
    }
}

#[tokio::test]
async fn user_posts_page_both_ways_with_exact_page_info() {
    let app = spawn_app().await;
    let sizes = [0usize, 1, 20, 21, 45];
    for n in sizes {
        app.add_user(&format!("w{n}"), &format!("writer{n}")).await;
        for i in 0..n {
            app.add_post(&format!("q{n}-{i:02}"), &format!("w{n}"), i as i64)
                .await;
        }
    }
    for n in sizes {
        // Newest first.
        let expected: Vec<String> = (0..n).rev().map(|i| format!("q{n}-{i:02}")).collect();
        let conn = Conn::posts_of(&format!("w{n}"));
        walk_both_ways(&app, &conn, &expected, &[20, 7]).await;
    }
}

#[tokio::test]
async fn users_page_both_ways_with_exact_page_info() {
    let app = spawn_app().await;
    let mut ids: Vec<String> = (0..25).map(|i| format!("x{i:02}")).collect();
    for id in &ids {
        app.add_user(id, &format!("user-{id}")).await;
    }
    let conn = Conn::users();
    let all = conn.page(&app, &forward(100)).await;
    assert_eq!(
        (all.has_previous, all.has_next, all.total),
        (false, false, 25)
    );
    let again = conn.page(&app, &forward(100)).await;
    assert_eq!(again.ids, all.ids, "the scan order is stable");
    let mut listed = all.ids.clone();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids, "every user once, and nothing else");
    walk_both_ways(&app, &conn, &all.ids, &[10, 7]).await;
}

/// Default and empty pages of a list of 25 items, with their exact flags.
async fn check_defaults_and_empty_pages(app: &TestApp, conn: &Conn, expected: &[String]) {
    assert_eq!(expected.len(), 25);
    let all = conn.page(app, &forward(100)).await;
    assert_eq!(all.ids, expected.to_vec(), "{}: the whole list", conn.name);
    let cases: Vec<(&str, Args, std::ops::Range<usize>, bool, bool)> = vec![
        (
            "no first or last: 20 forward",
            Args::default(),
            0..20,
            false,
            true,
        ),
        (
            "before alone: 20 backward",
            Args::default().before(&all.cursors[24]),
            4..24,
            true,
            true,
        ),
        (
            "last alone: the list's last items",
            backward(3),
            22..25,
            true,
            false,
        ),
        ("last: 100", backward(100), 0..25, false, false),
        ("last: 0", backward(0), 25..25, true, false),
        (
            "last: 0 before the first item",
            backward(0).before(&all.cursors[0]),
            0..0,
            false,
            true,
        ),
        ("first: 0", forward(0), 0..0, false, true),
        (
            "first: 0 after the last item",
            forward(0).after(&all.cursors[24]),
            25..25,
            true,
            false,
        ),
        (
            "last: 1 before the second item",
            backward(1).before(&all.cursors[1]),
            0..1,
            false,
            true,
        ),
    ];
    for (what, args, range, previous, next) in cases {
        let page = conn.page(app, &args).await;
        assert_eq!(
            page.ids,
            expected[range].to_vec(),
            "{}: {what}: items",
            conn.name
        );
        assert_eq!(
            (page.has_previous, page.has_next),
            (previous, next),
            "{}: {what}: (hasPreviousPage, hasNextPage)",
            conn.name
        );
        assert_eq!(page.total, 25, "{}: {what}: totalCount", conn.name);
    }
}

#[tokio::test]
async fn default_and_empty_pages_are_exact_on_every_connection() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..25).map(|i| format!("u{i:02}")).collect();
    for id in &users {
        app.add_user(id, &format!("user-{id}")).await;
    }
    for i in 0..25 {
        app.add_post(&format!("p{i:02}"), "u00", i).await;
    }
    for i in 0..25 {
        app.add_comment(&format!("c{i:02}"), "p00", &users[i as usize], 100 + i)
            .await;
    }
    let posts: Vec<String> = (0..25).rev().map(|i| format!("p{i:02}")).collect();
    check_defaults_and_empty_pages(&app, &Conn::posts_of("u00"), &posts).await;
    let comments: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    check_defaults_and_empty_pages(&app, &Conn::comments_of("p00"), &comments).await;
    let users_conn = Conn::users();
    let order = users_conn.page(&app, &forward(100)).await.ids;
    check_defaults_and_empty_pages(&app, &users_conn, &order).await;

    // An empty list, both ways.
    for args in [
        forward(5),
        backward(5),
        Args::default(),
        backward(0),
        forward(0),
    ] {
        let page = Conn::comments_of("p01").page(&app, &args).await;
        assert!(page.ids.is_empty(), "{args:?}: {page:?}");
        assert_eq!(
            (page.has_previous, page.has_next, page.total),
            (false, false, 0),
            "an empty list, {args:?}"
        );
    }
}

/// Cursors name items: one from a forward page works as `before`, and one from a backward
/// page works as `after`.
async fn check_cursors_both_ways(app: &TestApp, conn: &Conn, expected: &[String]) {
    let n = expected.len();
    let all = conn.page(app, &forward(100)).await;
    assert_eq!(all.ids, expected.to_vec(), "{}: the whole list", conn.name);
    for k in [0, 1, 10, n - 1] {
        let cursor = &all.cursors[k];
        let page = conn.page(app, &backward(3).before(cursor)).await;
        let start = k.saturating_sub(3);
        assert_eq!(
            page.ids,
            expected[start..k].to_vec(),
            "{}: last 3 before item {k}",
            conn.name
        );
        assert_eq!(
            (page.has_previous, page.has_next),
            (start > 0, true),
            "{}: last 3 before item {k}: (hasPreviousPage, hasNextPage)",
            conn.name
        );
        let page = conn.page(app, &forward(3).after(cursor)).await;
        let end = (k + 4).min(n);
        assert_eq!(
            page.ids,
            expected[k + 1..end].to_vec(),
            "{}: first 3 after item {k}",
            conn.name
        );
        assert_eq!(
            (page.has_previous, page.has_next),
            (true, end < n),
            "{}: first 3 after item {k}: (hasPreviousPage, hasNextPage)",
            conn.name
        );
    }
    let tail = conn.page(app, &backward(5)).await;
    assert_eq!(
        tail.ids,
        expected[n - 5..].to_vec(),
        "{}: last 5",
        conn.name
    );
    let start = tail.start().expect("a cursor");
    let page = conn.page(app, &forward(2).after(&start)).await;
    assert_eq!(
        page.ids,
        expected[n - 4..n - 2].to_vec(),
        "{}: a backward page's startCursor used as `after`",
        conn.name
    );
    let page = conn.page(app, &backward(2).before(&start)).await;
    assert_eq!(
        page.ids,
        expected[n - 7..n - 5].to_vec(),
        "{}: a backward page's startCursor used as `before`",
        conn.name
    );
}

#[tokio::test]
async fn cursors_of_either_direction_work_both_ways() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    for i in 0..21 {
        app.add_post(&format!("p{i:02}"), "u1", i).await;
        app.add_comment(&format!("c{i:02}"), "p00", "u1", 100 + i)
            .await;
    }
    let posts: Vec<String> = (0..21).rev().map(|i| format!("p{i:02}")).collect();
    check_cursors_both_ways(&app, &Conn::posts_of("u1"), &posts).await;
    let comments: Vec<String> = (0..21).map(|i| format!("c{i:02}")).collect();
    check_cursors_both_ways(&app, &Conn::comments_of("p00"), &comments).await;
}

#[tokio::test]
async fn a_backward_page_costs_one_query() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    for i in 0..30 {
        app.add_post(&format!("p{i:02}"), "u1", i).await;
        app.add_comment(&format!("c{i:02}"), "p00", "u1", 100 + i)
            .await;
    }
    let posts = "query($before: String) { user(id: \"u1\") { posts(last: 5, before: $before) { \
                 nodes { id } pageInfo { hasPreviousPage hasNextPage startCursor } } } }";
    let (body, cost) = app.run(posts, json!({}), None).await;
    let page = &body["data"]["user"]["posts"];
    assert_eq!(
        page["nodes"],
        json!([{ "id": "p04" }, { "id": "p03" }, { "id": "p02" }, { "id": "p01" }, { "id": "p00" }]),
        "the oldest 5, newest first: {body}"
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "the user, then one Query for the page: {cost}"
    );
    let before = page["pageInfo"]["startCursor"].clone();
    let (body, cost) = app.run(posts, json!({ "before": before }), None).await;
    assert_eq!(
        body["data"]["user"]["posts"]["nodes"],
        json!([{ "id": "p09" }, { "id": "p08" }, { "id": "p07" }, { "id": "p06" }, { "id": "p05" }]),
        "{body}"
    );
    assert_eq!(
        body["data"]["user"]["posts"]["pageInfo"]["hasPreviousPage"],
        json!(true)
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "{cost}"
    );

    let comments = "query($before: String) { post(id: \"p00\") { comments(last: 5, before: $before) { \
                    nodes { id } pageInfo { hasPreviousPage hasNextPage startCursor } } } }";
    let (body, cost) = app.run(comments, json!({}), None).await;
    let page = &body["data"]["post"]["comments"];
    assert_eq!(
        page["nodes"],
        json!([{ "id": "c25" }, { "id": "c26" }, { "id": "c27" }, { "id": "c28" }, { "id": "c29" }]),
        "the newest 5, oldest first: {body}"
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "{cost}"
    );
    let before = page["pageInfo"]["startCursor"].clone();
    let (body, cost) = app.run(comments, json!({ "before": before }), None).await;
    assert_eq!(
        body["data"]["post"]["comments"]["nodes"],
        json!([{ "id": "c20" }, { "id": "c21" }, { "id": "c22" }, { "id": "c23" }, { "id": "c24" }]),
        "{body}"
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "{cost}"
    );
}

#[tokio::test]
async fn contradictory_or_out_of_range_page_arguments_are_bad_user_input() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    app.add_user("u2", "bob").await;
    app.add_post("p2", "u1", 1).await;
    app.add_comment("c1", "p1", "u1", 2).await;
    app.add_comment("c2", "p1", "u2", 3).await;
    for conn in [Conn::users(), Conn::posts_of("u1"), Conn::comments_of("p1")] {
        let cursor = conn.page(&app, &forward(1)).await.end().expect("a cursor");
        let cases = [
            (
                "first with last",
                Args {
                    first: Some(1),
                    last: Some(1),
                    ..Args::default()
                },
            ),
            (
                "first: 0 with last: 0",
                Args {
                    first: Some(0),
                    last: Some(0),
                    ..Args::default()
                },
            ),
            ("first with before", forward(1).before(&cursor)),
            ("last with after", backward(1).after(&cursor)),
            ("last: -1", backward(-1)),
            ("last: 101", backward(101)),
        ];
        for (what, args) in cases {
            let body = conn.body(&app, &args).await;
            assert_eq!(
                codes(&body),
                ["BAD_USER_INPUT"],
                "{}: {what}: {body}",
                conn.name
            );
        }
        let body = conn.body(&app, &backward(101)).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("between 0 and 100"),
            "{}: last: 101 says the bounds: {message}",
            conn.name
        );
    }
}
