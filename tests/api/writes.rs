//! The write side: edits, deletes, ownership, versions, unique usernames, exact counters,
//! and what concurrent clients end with.

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, spawn_app};

pub(crate) const UPDATE_POST: &str = "mutation($id: ID!, $input: UpdatePostInput!) { \
    updatePost(id: $id, input: $input) { id title content version createdAt updatedAt commentCount } }";
const UPDATE_COMMENT: &str = "mutation($id: ID!, $content: String!, $v: Int) { \
    updateComment(id: $id, content: $content, expectedVersion: $v) { id content version createdAt updatedAt } }";
const DELETE_POST: &str = "mutation($id: ID!) { deletePost(id: $id) }";
pub(crate) const DELETE_COMMENT: &str = "mutation($id: ID!) { deleteComment(id: $id) }";
const UPDATE_USER: &str =
    "mutation($input: UpdateUserInput!) { updateUser(input: $input) { id username email } }";

pub(crate) async fn comment_count(app: &TestApp, post: &str) -> Value {
    app.query(
        "query($id: ID!) { post(id: $id) { commentCount } }",
        json!({ "id": post }),
    )
    .await["data"]["post"]["commentCount"]
        .clone()
}

#[tokio::test]
async fn only_the_author_edits_a_post_and_each_edit_bumps_the_version() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    app.add_comment("c1", "p1", "u2", 1).await;

    let body = app
        .query_as(
            "u1",
            UPDATE_POST,
            json!({ "id": "p1", "input": { "title": "New title", "expectedVersion": 1 } }),
        )
        .await;
    let post = &body["data"]["updatePost"];
    assert_eq!(post["title"], json!("New title"));
    assert_eq!(post["content"], json!("Content of p1"));
    assert_eq!(post["version"], json!(2));
    assert_eq!(post["commentCount"], json!(1), "an edit keeps the counter");
    assert_ne!(post["updatedAt"], post["createdAt"]);

    let stale = app
        .query_as(
            "u1",
            UPDATE_POST,
            json!({ "id": "p1", "input": { "title": "Stale", "expectedVersion": 1 } }),
        )
        .await;
    assert_eq!(code(&stale), Some("CONFLICT"));
    let message = stale["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("current version is 2"), "{message}");

    let other = app
        .query_as(
            "u2",
            UPDATE_POST,
            json!({ "id": "p1", "input": { "title": "Mine now" } }),
        )
        .await;
    assert_eq!(code(&other), Some("FORBIDDEN"));
    let missing = app
        .query_as(
            "u1",
            UPDATE_POST,
            json!({ "id": "nope", "input": { "title": "x" } }),
        )
        .await;
    assert_eq!(code(&missing), Some("NOT_FOUND"));
    let empty = app
        .query_as("u1", UPDATE_POST, json!({ "id": "p1", "input": {} }))
        .await;
    assert_eq!(code(&empty), Some("BAD_USER_INPUT"));

    // A new comment changes the counter, not the version; refused edits changed nothing.
    app.add_comment("c2", "p1", "u2", 2).await;
    let body = app
        .query(
            "{ post(id: \"p1\") { title version commentCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body,
        json!({ "data": { "post": { "title": "New title", "version": 2, "commentCount": 2 } } })
    );
}

#[tokio::test]
async fn only_the_author_edits_a_comment() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    app.add_comment("c1", "p1", "u2", 1).await;

    let body = app
        .query_as(
            "u2",
            UPDATE_COMMENT,
            json!({ "id": "c1", "content": "Edited", "v": 1 }),
        )
        .await;
    assert_eq!(body["data"]["updateComment"]["content"], json!("Edited"));
    assert_eq!(body["data"]["updateComment"]["version"], json!(2));
    for (user, vars, expected) in [
        (
            "u1",
            json!({ "id": "c1", "content": "Post author" }),
            "FORBIDDEN",
        ),
        (
            "u2",
            json!({ "id": "c1", "content": "Stale", "v": 1 }),
            "CONFLICT",
        ),
        (
            "u2",
            json!({ "id": "c9", "content": "Missing" }),
            "NOT_FOUND",
        ),
        (
            "u2",
            json!({ "id": "c1", "content": " " }),
            "BAD_USER_INPUT",
        ),
    ] {
        let body = app.query_as(user, UPDATE_COMMENT, vars.clone()).await;
        assert_eq!(code(&body), Some(expected), "{vars}");
    }
    let body = app
        .query("{ comment(id: \"c1\") { content version } }", json!({}))
        .await;
    assert_eq!(
        body,
        json!({ "data": { "comment": { "content": "Edited", "version": 2 } } })
    );
}

#[tokio::test]
async fn comments_are_deleted_by_their_author_or_the_posts_author_only() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_user("u3", "carol").await;
    app.add_post("p1", "u1", 0).await;
    for (i, author) in ["u2", "u2", "u3"].iter().enumerate() {
        app.add_comment(&format!("c{i}"), "p1", author, i as i64 + 1)
            .await;
    }
    let refused = app
        .query_as("u3", DELETE_COMMENT, json!({ "id": "c0" }))
        .await;
    assert_eq!(code(&refused), Some("FORBIDDEN"));
    assert_eq!(comment_count(&app, "p1").await, json!(3));

    let by_author = app
        .query_as("u2", DELETE_COMMENT, json!({ "id": "c0" }))
        .await;
    assert_eq!(by_author, json!({ "data": { "deleteComment": "c0" } }));
    let by_post_author = app
        .query_as("u1", DELETE_COMMENT, json!({ "id": "c2" }))
        .await;
    assert_eq!(by_post_author, json!({ "data": { "deleteComment": "c2" } }));
    let again = app
        .query_as("u2", DELETE_COMMENT, json!({ "id": "c0" }))
        .await;
    assert_eq!(code(&again), Some("NOT_FOUND"));

    assert_eq!(comment_count(&app, "p1").await, json!(1));
    let left: Vec<_> = app
        .scan("comments")
        .await
        .iter()
        .map(|c| c["CommentId"].clone())
        .collect();
    assert_eq!(
        left,
        [aws_sdk_dynamodb::types::AttributeValue::S("c1".into())]
    );
}

#[tokio::test]
async fn deleting_a_post_deletes_all_its_comments_in_steps() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    app.add_post("p2", "u1", 1).await;
    // More comments than one transaction holds (100 items).
    let ids: Vec<String> = (0..230).map(|i| format!("c{i:03}")).collect();
    let writes = ids
        .iter()
        .zip(10..)
        .map(|(id, minute)| app.add_comment(id, "p1", "u2", minute));
    futures::stream::iter(writes)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    app.add_comment("keep", "p2", "u2", 5).await;

    let refused = app.query_as("u2", DELETE_POST, json!({ "id": "p1" })).await;
    assert_eq!(code(&refused), Some("FORBIDDEN"));
    assert_eq!(comment_count(&app, "p1").await, json!(230));

    let (body, cost) = app
        .run(DELETE_POST, json!({ "id": "p1" }), Some(&app.token("u1")))
        .await;
    assert_eq!(body, json!({ "data": { "deletePost": "p1" } }));
    // Five steps of comments (each with its counted guards), then the post with its
    // author's post counter.
    assert_eq!(
        cost["byOperation"]["TransactWriteItems"],
        json!(6),
        "49 × 4 + 34 comments, then the post: {cost}"
    );

    let body = app
        .query("{ post(id: \"p1\") { id } comment(id: \"c000\") { id } user(id: \"u1\") { posts { nodes { id } } } }", json!({}))
        .await;
    assert_eq!(
        body,
        json!({ "data": { "post": null, "comment": null, "user": { "posts": { "nodes": [{ "id": "p2" }] } } } })
    );
    let comments = app.scan("comments").await;
    assert_eq!(comments.len(), 1, "only the other post's comment is left");
    let again = app.query_as("u1", DELETE_POST, json!({ "id": "p1" })).await;
    assert_eq!(code(&again), Some("NOT_FOUND"));
}

#[tokio::test]
async fn usernames_are_unique_regardless_of_case_and_renames_free_the_old_name() {
    let app = spawn_app().await;
    let create = |user: &'static str, name: &'static str| {
        let app = &app;
        async move {
            app.operation(
                "CreateUser",
                json!({ "username": name, "email": format!("{user}@example.com") }),
                Some(user),
            )
            .await
            .0
        }
    };
    assert!(create("u1", "alice").await.get("errors").is_none());
    let taken = create("u2", "ALICE").await;
    assert_eq!(code(&taken), Some("CONFLICT"));
    assert!(
        taken["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("taken")
    );

    let renamed = app
        .query_as(
            "u1",
            UPDATE_USER,
            json!({ "input": { "username": "Alicia" } }),
        )
        .await;
    assert_eq!(renamed["data"]["updateUser"]["username"], json!("Alicia"));
    assert!(
        create("u2", "alice").await.get("errors").is_none(),
        "the old name is free again"
    );
    let taken = app
        .query_as(
            "u2",
            UPDATE_USER,
            json!({ "input": { "username": "alicia" } }),
        )
        .await;
    assert_eq!(code(&taken), Some("CONFLICT"));
    let case_only = app
        .query_as(
            "u1",
            UPDATE_USER,
            json!({ "input": { "username": "ALICIA" } }),
        )
        .await;
    assert_eq!(case_only["data"]["updateUser"]["username"], json!("ALICIA"));
    let email = app
        .query_as(
            "u2",
            UPDATE_USER,
            json!({ "input": { "email": "new@example.com" } }),
        )
        .await;
    assert_eq!(
        email["data"]["updateUser"]["email"],
        json!("new@example.com")
    );
    let nobody = app
        .query_as(
            "u9",
            UPDATE_USER,
            json!({ "input": { "email": "x@example.com" } }),
        )
        .await;
    assert_eq!(code(&nobody), Some("NOT_FOUND"));

    // Guard items: exactly one per user, holding the current names (beside the item
    // counting the users).
    let client = crate::helpers::raw_client();
    let guards = client
        .scan()
        .table_name(&app.storage.tables().usernames)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    let mut keys: Vec<String> = guards
        .iter()
        .map(|g| g["UsernameKey"].as_s().expect("key").clone())
        .collect();
    keys.sort();
    assert_eq!(keys, ["#users", "alice", "alicia"]);
}

#[tokio::test]
async fn posts_and_comments_need_an_existing_author() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    let (body, _) = app
        .operation(
            "CreatePost",
            json!({ "title": "t", "content": "c" }),
            Some("ghost"),
        )
        .await;
    assert_eq!(code(&body), Some("FORBIDDEN"));
    let (body, _) = app
        .operation(
            "AddComment",
            json!({ "postId": "p1", "content": "c" }),
            Some("ghost"),
        )
        .await;
    assert_eq!(code(&body), Some("FORBIDDEN"));
    assert_eq!(app.scan("posts").await.len(), 1);
    assert!(app.scan("comments").await.is_empty());
    assert_eq!(comment_count(&app, "p1").await, json!(0));
}
