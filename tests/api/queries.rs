use serde_json::{Value, json};

use crate::helpers::{at_text, codes, spawn_app};

#[tokio::test]
async fn post_details_returns_the_post_its_author_and_comments_oldest_first() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    // Written out of order: the API must sort by createdAt, not by write order.
    app.add_comment("c2", "p1", "u1", 2).await;
    app.add_comment("c1", "p1", "u2", 1).await;

    let (body, _) = app
        .operation("PostDetails", json!({ "id": "p1" }), None)
        .await;

    let comment = |id: &str, minute: i64, author: &str, name: &str| {
        json!({ "id": id, "content": format!("Comment {id}"), "createdAt": at_text(minute),
                "author": { "id": author, "username": name } })
    };
    let end = body["data"]["post"]["comments"]["pageInfo"]["endCursor"].clone();
    assert!(end.is_string());
    assert_eq!(
        body,
        json!({ "data": { "post": {
            "id": "p1", "title": "Title of p1", "content": "Content of p1",
            "createdAt": at_text(0), "commentCount": 2,
            "author": { "id": "u1", "username": "alice" },
            "comments": {
                "nodes": [comment("c1", 1, "u2", "bob"), comment("c2", 2, "u1", "alice")],
                "pageInfo": { "hasNextPage": false, "endCursor": end }
            }
        }}})
    );
}

#[tokio::test]
async fn user_feed_lists_posts_newest_first_with_nested_comments() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    for i in 0..12 {
        app.add_post(&format!("p{i:02}"), "u1", i).await;
    }
    app.add_comment("c1", "p11", "u2", 20).await;

    let (body, _) = app.operation("UserFeed", json!({ "id": "u1" }), None).await;

    let posts = &body["data"]["user"]["posts"];
    let ids: Vec<&str> = posts["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    let expected: Vec<String> = (2..12).rev().map(|i| format!("p{i:02}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(posts["pageInfo"]["hasNextPage"], json!(true));
    assert_eq!(
        posts["nodes"][0],
        json!({ "id": "p11", "title": "Title of p11", "createdAt": at_text(11),
                "author": { "username": "alice" },
                "comments": { "nodes": [{ "content": "Comment c1", "author": { "username": "bob" } }] } })
    );
    assert_eq!(posts["nodes"][1]["comments"], json!({ "nodes": [] }));
}

/// Walks a connection to its end with `first: page` and returns the ids in order.
async fn walk(
    app: &crate::helpers::TestApp,
    query: &str,
    path: &[&str],
    page: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = Value::Null;
    loop {
        let body = app
            .query(query, json!({ "first": page, "after": after }))
            .await;
        let mut connection = &body["data"];
        for key in path {
            connection = &connection[*key];
        }
        let nodes = connection["nodes"].as_array().expect("nodes");
        let edges = connection["edges"].as_array().expect("edges");
        assert_eq!(nodes.len(), edges.len());
        ids.extend(
            nodes
                .iter()
                .map(|n| n["id"].as_str().expect("id").to_owned()),
        );
        let info = &connection["pageInfo"];
        assert_eq!(info["hasPreviousPage"], json!(!after.is_null()));
        if info["hasNextPage"] == json!(false) {
            // Exact: the last page says so, and is never empty unless the list is.
            assert!(!nodes.is_empty() || ids.is_empty());
            return ids;
        }
        assert_eq!(nodes.len(), page, "a page before the last is full");
        assert_eq!(info["endCursor"], edges[page - 1]["cursor"]);
        after = info["endCursor"].clone();
    }
}

#[tokio::test]
async fn pagination_reaches_the_end_without_gaps_or_repeats() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    for i in 0..23 {
        app.add_post(&format!("p{i:02}"), "u1", i).await;
        app.add_comment(&format!("c{i:02}"), "p00", "u1", 100 + i)
            .await;
    }
    for i in 0..21 {
        app.add_user(&format!("x{i:02}"), &format!("user{i:02}"))
            .await;
    }

    let posts = walk(
        &app,
        "query($first: Int!, $after: String) { user(id: \"u1\") { posts(first: $first, after: $after) { \
         nodes { id } edges { cursor } pageInfo { hasNextPage hasPreviousPage endCursor } } } }",
        &["user", "posts"],
        5,
    )
    .await;
    let expected: Vec<String> = (0..23).rev().map(|i| format!("p{i:02}")).collect();
    assert_eq!(posts, expected);

    let comments = walk(
        &app,
        "query($first: Int!, $after: String) { post(id: \"p00\") { comments(first: $first, after: $after) { \
         nodes { id } edges { cursor } pageInfo { hasNextPage hasPreviousPage endCursor } } } }",
        &["post", "comments"],
        23,
    )
    .await;
    let expected: Vec<String> = (0..23).map(|i| format!("c{i:02}")).collect();
    assert_eq!(comments, expected);

    let mut users = walk(
        &app,
        "query($first: Int!, $after: String) { users(first: $first, after: $after) { \
         nodes { id } edges { cursor } pageInfo { hasNextPage hasPreviousPage endCursor } } }",
        &["users"],
        4,
    )
    .await;
    users.sort();
    let mut expected: Vec<String> = (0..21).map(|i| format!("x{i:02}")).collect();
    expected.push("u1".into());
    expected.sort();
    assert_eq!(users, expected);
}

#[tokio::test]
async fn first_zero_gives_an_empty_page_with_exact_page_info() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    let body = app
        .query(
            "{ a: user(id: \"u1\") { posts(first: 0) { nodes { id } pageInfo { hasNextPage endCursor } } } \
               b: user(id: \"u2\") { posts(first: 0) { nodes { id } pageInfo { hasNextPage endCursor } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body,
        json!({ "data": {
            "a": { "posts": { "nodes": [], "pageInfo": { "hasNextPage": true, "endCursor": null } } },
            "b": { "posts": { "nodes": [], "pageInfo": { "hasNextPage": false, "endCursor": null } } }
        }})
    );
}

#[tokio::test]
async fn page_sizes_outside_0_to_100_are_refused_not_clamped() {
    let app = spawn_app().await;
    for first in [-1, 101, 1000] {
        let body = app
            .query(
                "query($f: Int!) { users(first: $f) { nodes { id } } }",
                json!({ "f": first }),
            )
            .await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "first: {first}");
        assert_eq!(body["data"], Value::Null);
        let message = body["errors"][0]["message"].as_str().expect("message");
        assert!(message.contains("between 0 and 100"), "{message}");
    }
}

#[tokio::test]
async fn tampered_or_foreign_cursors_are_bad_user_input() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    app.add_post("p2", "u1", 1).await;
    app.add_post("p3", "u2", 2).await;
    let posts = "query($id: ID!, $after: String) { user(id: $id) { posts(first: 1, after: $after) { \
                 nodes { id } pageInfo { endCursor } } } }";
    let body = app.query(posts, json!({ "id": "u1" })).await;
    let cursor = body["data"]["user"]["posts"]["pageInfo"]["endCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    // Opaque, and naming no attribute of the tables.
    {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&cursor)
            .expect("base64url");
        let text = String::from_utf8(text).expect("text");
        for name in ["PostId", "UserId", "CreatedAt", "\"S\"", "\"N\""] {
            assert!(!text.contains(name), "{text}");
        }
    }

    // The same cursor resumes its own list...
    let body = app
        .query(posts, json!({ "id": "u1", "after": cursor }))
        .await;
    assert_eq!(
        body["data"]["user"]["posts"]["nodes"],
        json!([{ "id": "p1" }])
    );

    // ...but not another parent's list, nor another kind of list.
    let body = app
        .query(posts, json!({ "id": "u2", "after": cursor }))
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    let body = app
        .query(
            "query($after: String) { users(after: $after) { nodes { id } } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);

    // Garbage, truncated and re-encoded cursors.
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // Version 1 of the cursor: `[1, list, parent, PostId, UserId, CreatedAt]`.
    let forged = engine.encode(r#"[1,"p","u1","p1","u2","1"]"#);
    let wrong_type = engine.encode(r#"[1,"p","u1","p1","u1","x"]"#);
    // The format before version 1, which named attributes and their types.
    let old = engine.encode(
        r#"{"l":"userposts","p":"u1","k":{"PostId":{"S":"p1"},"UserId":{"S":"u1"},"CreatedAt":{"N":"1"}}}"#,
    );
    for bad in [
        "",
        "!!!",
        &cursor[..cursor.len() / 2],
        &forged,
        &wrong_type,
        &old,
        &"A".repeat(10_000),
    ] {
        let body = app.query(posts, json!({ "id": "u1", "after": bad })).await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "cursor {bad:?}");
    }
}

#[tokio::test]
async fn unknown_ids_are_null_not_errors() {
    let app = spawn_app().await;
    let body = app
        .query("{ user(id: \"nobody\") { id } post(id: \"none\") { id } comment(id: \"none\") { id } viewer { id } }", json!({}))
        .await;
    assert_eq!(
        body,
        json!({ "data": { "user": null, "post": null, "comment": null, "viewer": null } })
    );
}

#[tokio::test]
async fn a_comment_resolves_its_post_and_author() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    app.add_comment("c1", "p1", "u1", 1).await;
    let body = app
        .query(
            "{ comment(id: \"c1\") { id content createdAt updatedAt version author { username } post { id commentCount version } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body,
        json!({ "data": { "comment": {
            "id": "c1", "content": "Comment c1", "createdAt": at_text(1), "updatedAt": at_text(1),
            "version": 1, "author": { "username": "alice" },
            "post": { "id": "p1", "commentCount": 1, "version": 1 }
        }}})
    );
}

#[tokio::test]
async fn response_fields_come_in_the_order_the_query_asked_for_them() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    app.add_comment("c1", "p1", "u1", 1).await;
    let query = "{ post(id: \"p1\") { author { username } id comments { nodes { post { id } author { username } id } } } }";
    let response = app
        .http
        .post(format!("{}/graphql", app.url))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.text().await.expect("text"),
        r#"{"data":{"post":{"author":{"username":"alice"},"id":"p1","comments":{"nodes":[{"post":{"id":"p1"},"author":{"username":"alice"},"id":"c1"}]}}}}"#
    );
}
