//! Idempotency keys: one key sent at once by many requests, a key reused for another
//! request, two users with one key, every mutation replaying its result, and keys riding
//! in a WebSocket's extensions.

use std::time::Duration;

use serde_json::{Value, json};

use crate::exactly_once::{ADD_COMMENT, CREATE_POST, comment_count, faulty, mutate};
use crate::ws_client::Client;

#[tokio::test]
async fn one_key_sent_at_once_by_many_requests_makes_one_item() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    let requests = (0..8).map(|_| {
        mutate(
            app,
            "u1",
            Some("race"),
            CREATE_POST,
            json!({ "t": "Raced" }),
        )
    });
    let answers = futures::future::join_all(requests).await;
    let ids: Vec<&Value> = answers
        .iter()
        .map(|a| &a["data"]["createPost"]["id"])
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.is_string()),
        "{answers:?}"
    );
    assert_eq!(app.scan("posts").await.len(), 2);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_writes_nothing() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    let first = mutate(
        app,
        "u1",
        Some("k"),
        ADD_COMMENT,
        json!({ "p": "p1", "c": "one" }),
    )
    .await;
    assert!(first["data"]["addComment"]["id"].is_string(), "{first}");
    for (query, variables) in [
        (ADD_COMMENT, json!({ "p": "p1", "c": "two" })),
        (CREATE_POST, json!({ "t": "other" })),
    ] {
        let refused = mutate(app, "u1", Some("k"), query, variables).await;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"],
            json!("BAD_USER_INPUT"),
            "{refused}"
        );
        let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("different"), "{message}");
    }
    assert_eq!(comment_count(app).await, (1, json!(1)));
    assert_eq!(app.scan("posts").await.len(), 1);
    // A key on a query changes nothing; a malformed key is refused.
    let bad = mutate(
        app,
        "u1",
        Some("caf\u{e9}"),
        CREATE_POST,
        json!({ "t": "x" }),
    )
    .await;
    assert_eq!(
        bad["errors"][0]["extensions"]["code"],
        json!("BAD_USER_INPUT"),
        "{bad}"
    );
}

#[tokio::test]
async fn two_users_with_one_key_are_independent() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    let alice = mutate(
        app,
        "u1",
        Some("same"),
        ADD_COMMENT,
        json!({ "p": "p1", "c": "hi" }),
    )
    .await;
    let bob = mutate(
        app,
        "u2",
        Some("same"),
        ADD_COMMENT,
        json!({ "p": "p1", "c": "hi" }),
    )
    .await;
    let (a, b) = (
        &alice["data"]["addComment"]["id"],
        &bob["data"]["addComment"]["id"],
    );
    assert!(a.is_string() && b.is_string() && a != b, "{alice} {bob}");
    assert_eq!(comment_count(app).await, (2, json!(2)));
}

#[tokio::test]
async fn every_mutation_takes_a_key_and_replays_its_result() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    let twice = |user: &'static str, key: &'static str, query: &'static str, variables: Value| async move {
        let first = mutate(app, user, Some(key), query, variables.clone()).await;
        let second = mutate(app, user, Some(key), query, variables).await;
        assert!(first["errors"].is_null(), "{first}");
        assert_eq!(first, second, "{query}");
        first
    };
    twice("u9", "a", "mutation { createUser(input: {username: \"nina\", email: \"n@example.com\"}) { id username } }", json!({})).await;
    twice(
        "u9",
        "b",
        "mutation { updateUser(input: {username: \"nina2\"}) { id username } }",
        json!({}),
    )
    .await;
    let post = twice("u9", "c", CREATE_POST, json!({ "t": "t" })).await;
    let post = post["data"]["createPost"]["id"].clone();
    twice(
        "u9",
        "d",
        "mutation($p: ID!) { updatePost(id: $p, input: {title: \"t2\"}) { id version } }",
        json!({ "p": post }),
    )
    .await;
    let comment = twice(
        "u9",
        "e",
        "mutation($p: ID!) { addComment(input: {postId: $p, content: \"x\"}) { id } }",
        json!({ "p": post }),
    )
    .await;
    let comment = comment["data"]["addComment"]["id"].clone();
    twice(
        "u9",
        "f",
        "mutation($c: ID!) { updateComment(id: $c, content: \"y\") { id version } }",
        json!({ "c": comment }),
    )
    .await;
    twice(
        "u9",
        "g",
        "mutation($c: ID!) { deleteComment(id: $c) }",
        json!({ "c": comment }),
    )
    .await;
    twice(
        "u9",
        "h",
        "mutation($p: ID!) { deletePost(id: $p) }",
        json!({ "p": post }),
    )
    .await;
    // The edits happened once each: version 2, not 3.
    let users = app.scan("users").await;
    assert!(
        users
            .iter()
            .any(|u| u["Username"].as_s().ok().map(String::as_str) == Some("nina2"))
    );
}

#[tokio::test]
async fn a_key_rides_in_extensions_over_a_websocket() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    let mut client = Client::connect(app, Some(&app.token("u1"))).await;
    for id in ["1", "2"] {
        client
            .subscribe_to(
                id,
                json!({ "query": ADD_COMMENT, "variables": { "p": "p1", "c": "ws" },
                        "extensions": { "idempotencyKey": "ws-key" } }),
            )
            .await;
        let answer = client
            .event(id, Duration::from_secs(5))
            .await
            .expect("an answer");
        assert!(answer["data"]["addComment"]["id"].is_string(), "{answer}");
        let _complete = client.receive(Duration::from_secs(5)).await;
    }
    assert_eq!(comment_count(app).await, (1, json!(1)));
}
