//! Sharing tables with Da Vinci: its items are read as written, and ours are items it reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::helpers::{TestApp, raw_client, spawn_app};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

async fn put(table: &str, item: HashMap<String, AttributeValue>) {
    raw_client()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put");
}

/// The three items of DESIGN.md, exactly as Da Vinci writes them.
async fn da_vinci_items(app: &TestApp) {
    let t = app.storage.tables();
    put(
        &t.users,
        HashMap::from([
            ("UserId".into(), s("user-1")),
            ("Username".into(), s("alice")),
            ("Email".into(), s("alice@example.com")),
        ]),
    )
    .await;
    put(
        &t.posts,
        HashMap::from([
            ("PostId".into(), s("post-0001")),
            ("UserId".into(), s("user-1")),
            ("Title".into(), s("My First Post")),
            ("Content".into(), s("Hello, world!")),
            ("CreatedAt".into(), n("1735732800")),
        ]),
    )
    .await;
    put(
        &t.comments,
        HashMap::from([
            ("CommentId".into(), s("comment-0001")),
            ("PostId".into(), s("post-0001")),
            ("UserId".into(), s("user-1")),
            ("Content".into(), s("Great post!")),
            ("CreatedAt".into(), n("1735732802.5")),
        ]),
    )
    .await;
}

#[tokio::test]
async fn items_written_by_da_vinci_are_read_through_the_api() {
    let app = spawn_app().await;
    da_vinci_items(&app).await;
    let body = app
        .query(
            "{ user(id: \"user-1\") { id username email createdAt posts { nodes { id title content createdAt \
               updatedAt version commentCount author { username } comments { nodes { id content createdAt \
               updatedAt version post { id } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body,
        json!({ "data": { "user": {
            "id": "user-1", "username": "alice", "email": null, "createdAt": null,
            "posts": { "nodes": [{
                "id": "post-0001", "title": "My First Post", "content": "Hello, world!",
                "createdAt": "2025-01-01T12:00:00.000000Z", "updatedAt": "2025-01-01T12:00:00.000000Z",
                "version": 1, "commentCount": 1, "author": { "username": "alice" },
                "comments": { "nodes": [{
                    "id": "comment-0001", "content": "Great post!",
                    "createdAt": "2025-01-01T12:00:02.500000Z", "updatedAt": "2025-01-01T12:00:02.500000Z",
                    "version": 1, "post": { "id": "post-0001" }
                }]}
            }]}
        }}})
    );
}

#[tokio::test]
async fn a_comment_on_a_da_vinci_post_counts_its_comments_first() {
    let app = spawn_app().await;
    da_vinci_items(&app).await;
    let (body, _) = app
        .operation(
            "AddComment",
            json!({ "postId": "post-0001", "content": "Me too" }),
            Some("user-1"),
        )
        .await;
    assert_eq!(
        body["data"]["addComment"]["post"],
        json!({ "id": "post-0001", "commentCount": 2 }),
        "Da Vinci's comment, then ours"
    );
    let posts = app.scan("posts").await;
    assert_eq!(posts[0]["CommentCount"], AttributeValue::N("2".into()));
}

/// Da Vinci's comments `{post}-comment-1…count` on `post`, written straight into the table.
async fn da_vinci_comments(app: &TestApp, post: &str, count: usize) {
    for i in 1..=count {
        put(
            &app.storage.tables().comments,
            HashMap::from([
                ("CommentId".into(), s(&format!("{post}-comment-{i}"))),
                ("PostId".into(), s(post)),
                ("UserId".into(), s("user-1")),
                ("Content".into(), s("Nice")),
                ("CreatedAt".into(), n(&format!("17357328{i:02}"))),
            ]),
        )
        .await;
    }
}

#[tokio::test]
async fn posts_and_users_written_without_counters_are_counted_once_and_kept_exact() {
    let app = spawn_app().await;
    da_vinci_items(&app).await;
    put(
        &app.storage.tables().posts,
        HashMap::from([
            ("PostId".into(), s("post-0002")),
            ("UserId".into(), s("user-1")),
            ("Title".into(), s("Second")),
            ("Content".into(), s("More")),
            ("CreatedAt".into(), n("1735732900")),
        ]),
    )
    .await;
    da_vinci_comments(&app, "post-0001", 3).await;
    da_vinci_comments(&app, "post-0002", 2).await;
    let counts = "{ a: post(id: \"post-0001\") { commentCount comments(first: 0) { totalCount } } \
                  b: post(id: \"post-0002\") { commentCount } \
                  user(id: \"user-1\") { posts(first: 0) { totalCount } } }";
    let body = app.query(counts, json!({})).await;
    assert_eq!(
        body["data"],
        json!({
            "a": { "commentCount": 4, "comments": { "totalCount": 4 } },
            "b": { "commentCount": 2 },
            "user": { "posts": { "totalCount": 2 } }
        }),
        "counted on the indexes: {body}"
    );
    // The counters are written, and writes keep them exact from there.
    let stored: Vec<_> = app
        .scan("posts")
        .await
        .into_iter()
        .map(|post| post.get("CommentCount").cloned())
        .collect();
    assert!(stored.iter().all(Option::is_some), "{stored:?}");
    let token = app.token("user-1");
    let (deleted, _) = app
        .run(
            "mutation { deleteComment(id: \"post-0001-comment-2\") }",
            json!({}),
            Some(&token),
        )
        .await;
    assert!(deleted.get("errors").is_none(), "{deleted}");
    let (deleted, _) = app
        .run(
            "mutation { deletePost(id: \"post-0002\") }",
            json!({}),
            Some(&token),
        )
        .await;
    assert!(deleted.get("errors").is_none(), "{deleted}");
    let body = app.query(counts, json!({})).await;
    assert_eq!(
        body["data"],
        json!({
            "a": { "commentCount": 3, "comments": { "totalCount": 3 } },
            "b": null,
            "user": { "posts": { "totalCount": 1 } }
        }),
        "{body}"
    );
    assert_eq!(
        app.scan("comments").await.len(),
        3,
        "post-0002's went with it"
    );
}

#[tokio::test]
async fn items_we_write_are_in_da_vinci_format() {
    let app = spawn_app().await;
    app.operation(
        "CreateUser",
        json!({ "username": "bob", "email": "bob@example.com" }),
        Some("u2"),
    )
    .await;
    let (body, _) = app
        .operation(
            "CreatePost",
            json!({ "title": "T", "content": "C" }),
            Some("u2"),
        )
        .await;
    let post_id = body["data"]["createPost"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.operation(
        "AddComment",
        json!({ "postId": post_id, "content": "K" }),
        Some("u2"),
    )
    .await;

    let user = &app.scan("users").await[0];
    assert_eq!(user["UserId"], s("u2"));
    assert_eq!(user["Username"], s("bob"));
    assert_eq!(user["Email"], s("bob@example.com"));
    assert!(user["CreatedAt"].is_n());

    let post = &app.scan("posts").await[0];
    assert_eq!(post["PostId"], s(&post_id));
    assert_eq!(post["UserId"], s("u2"));
    assert_eq!((&post["Title"], &post["Content"]), (&s("T"), &s("C")));
    let created: f64 = post["CreatedAt"]
        .as_n()
        .expect("number")
        .parse()
        .expect("epoch seconds");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        (created - now).abs() < 60.0,
        "CreatedAt is epoch seconds: {created}"
    );
    assert_eq!(post["UpdatedAt"], post["CreatedAt"]);

    let comment = &app.scan("comments").await[0];
    assert_eq!(comment["PostId"], s(&post_id));
    assert_eq!(comment["UserId"], s("u2"));
    assert_eq!(comment["Content"], s("K"));
    assert!(comment["CreatedAt"].is_n());
    let id = comment["CommentId"].as_s().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
}
