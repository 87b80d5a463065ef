//! Writes under concurrency: many comments on one post, adds and deletes at once, sign-ups
//! racing for one username, and edits racing at one version.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{code, spawn_app};
use crate::writes::{DELETE_COMMENT, UPDATE_POST, comment_count};

#[tokio::test]
async fn fifty_concurrent_comments_on_one_post_are_all_counted() {
    let app = Arc::new(spawn_app().await);
    app.alice_and_her_post().await;
    let writers = (0..50).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            app.operation(
                "AddComment",
                json!({ "postId": "p1", "content": format!("c{i}") }),
                Some("u1"),
            )
            .await
            .0
        })
    });
    for body in join_all(writers).await {
        let body = body.expect("task");
        assert!(body.get("errors").is_none(), "{body}");
    }
    assert_eq!(comment_count(&app, "p1").await, json!(50));
    assert_eq!(app.scan("comments").await.len(), 50);
}

#[tokio::test]
async fn concurrent_adds_and_deletes_end_consistent() {
    let app = Arc::new(spawn_app().await);
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    for i in 0..20 {
        app.add_comment(&format!("old{i}"), "p1", "u2", 1 + i).await;
    }
    let mut tasks = Vec::new();
    for i in 0..20 {
        let deleting = app.clone();
        // Half the deletes by the comment's author, half by the post's.
        let deleter = if i % 2 == 0 { "u1" } else { "u2" };
        tasks.push(tokio::spawn(async move {
            deleting
                .query_as(deleter, DELETE_COMMENT, json!({ "id": format!("old{i}") }))
                .await
        }));
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.operation(
                "AddComment",
                json!({ "postId": "p1", "content": format!("new{i}") }),
                Some("u2"),
            )
            .await
            .0
        }));
    }
    for body in join_all(tasks).await {
        let body = body.expect("task");
        assert!(body.get("errors").is_none(), "{body}");
    }
    let stored = app.scan("comments").await.len();
    assert_eq!(stored, 20);
    assert_eq!(comment_count(&app, "p1").await, json!(stored));
}

#[tokio::test]
async fn twenty_concurrent_sign_ups_for_one_username_make_one_user() {
    let app = Arc::new(spawn_app().await);
    let tasks = (0..20).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            app.operation(
                "CreateUser",
                json!({ "username": "popular", "email": "p@example.com" }),
                Some(&format!("u{i}")),
            )
            .await
            .0
        })
    });
    let results: Vec<Value> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let won = results.iter().filter(|b| b.get("errors").is_none()).count();
    let conflicts = results
        .iter()
        .filter(|b| code(b) == Some("CONFLICT"))
        .count();
    assert_eq!((won, conflicts), (1, 19));
    assert_eq!(app.scan("users").await.len(), 1);
}

#[tokio::test]
async fn two_concurrent_edits_at_one_version_make_one_success_and_one_conflict() {
    let app = Arc::new(spawn_app().await);
    app.alice_and_her_post().await;
    let edit = |title: &'static str| {
        let app = app.clone();
        tokio::spawn(async move {
            app.query_as(
                "u1",
                UPDATE_POST,
                json!({ "id": "p1", "input": { "title": title, "expectedVersion": 1 } }),
            )
            .await
        })
    };
    let (a, b) = (edit("first"), edit("second"));
    let (a, b) = (a.await.expect("task"), b.await.expect("task"));
    let mut codes = [code(&a), code(&b)];
    codes.sort();
    assert_eq!(codes, [None, Some("CONFLICT")]);
    let winner = if code(&a).is_none() { &a } else { &b };
    let body = app
        .query("{ post(id: \"p1\") { title version } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["post"]["title"],
        winner["data"]["updatePost"]["title"]
    );
    assert_eq!(body["data"]["post"]["version"], json!(2));
}
