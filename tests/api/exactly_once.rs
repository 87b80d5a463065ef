//! Exactly once, end to end: a retried mutation never doubles, and a stream hiccup never
//! skips an event. Faults come from a proxy between the server and DynamoDB Local.

use std::time::{Duration, Instant};

use blog_graphql::{
    config::{Config, SdkTimeouts},
    domain::{Comment, CommentId, PostId, UserId},
    storage::Storage,
};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, at, dynamodb_endpoint, spawn_app_until, test_config, test_settings},
    proxy::{Fault, Proxy},
    subscriptions::{COMMENTS, SUBSCRIBED, live},
    ws_client::Client,
};

pub(crate) const ADD_COMMENT: &str = "mutation($p: ID!, $c: String!) { addComment(input: {postId: $p, content: $c}) { id post { commentCount } } }";
pub(crate) const CREATE_POST: &str =
    "mutation($t: String!) { createPost(input: {title: $t, content: \"c\"}) { id title } }";

/// Short DynamoDB timeouts, so that a held answer times out quickly.
fn quick() -> SdkTimeouts {
    SdkTimeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_millis(500),
        operation: Duration::from_millis(1200),
    }
}

/// A server whose DynamoDB traffic goes through a fault-injecting proxy, on tables of its
/// own; `writer` reaches the same tables directly.
pub(crate) struct Faulty {
    pub(crate) app: TestApp,
    pub(crate) proxy: Proxy,
    pub(crate) writer: Storage,
}

pub(crate) async fn faulty(configure: impl FnOnce(&mut Config)) -> Faulty {
    let proxy = Proxy::start(dynamodb_endpoint()).await;
    let direct = test_settings(dynamodb_endpoint());
    let writer = Storage::connect(&direct).await.expect("storage");
    writer.create_tables().await.expect("tables");
    let mut through = direct.clone();
    through.endpoint_url = Some(proxy.endpoint.clone());
    through.timeouts = quick();
    let storage = Storage::connect(&through).await.expect("storage");
    let mut config = test_config(through);
    configure(&mut config);
    let app = spawn_app_until(config, storage, std::future::pending()).await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    Faulty { app, proxy, writer }
}

/// Sends a mutation as `user`, with an idempotency key (as the header) when given.
pub(crate) async fn mutate(
    app: &TestApp,
    user: &str,
    key: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = app
        .http
        .post(format!("{}/graphql", app.url))
        .bearer_auth(app.token(user))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

pub(crate) async fn comment_count(app: &TestApp) -> (usize, Value) {
    let body = app
        .query("{ post(id: \"p1\") { commentCount } }", json!({}))
        .await;
    (
        app.scan("comments").await.len(),
        body["data"]["post"]["commentCount"].clone(),
    )
}

#[tokio::test]
async fn a_comment_whose_answer_was_lost_is_made_once_and_the_server_finds_it() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    // DynamoDB commits the transaction; its answers (those of every attempt, each sent
    // with the same token) are held back past the SDK's timeouts. The server finds the
    // change through the key's record, and answers with it.
    faulty.proxy.inject(
        "TransactWriteItems",
        Fault::Hold(Duration::from_millis(1500)),
        3,
    );
    let variables = json!({ "p": "p1", "c": "hello" });
    let first = mutate(app, "u1", Some("k-1"), ADD_COMMENT, variables.clone()).await;
    let id = first["data"]["addComment"]["id"].clone();
    assert!(id.is_string(), "{first}");
    assert_eq!(
        first["data"]["addComment"]["post"]["commentCount"],
        json!(1)
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(faulty.proxy.pending("TransactWriteItems"), 0);
    let again = mutate(app, "u1", Some("k-1"), ADD_COMMENT, variables).await;
    assert_eq!(again["data"]["addComment"]["id"], id, "{again}");
    assert_eq!(comment_count(app).await, (1, json!(1)));
}

#[tokio::test]
async fn an_unknown_outcome_is_said_so_and_a_retry_with_the_key_makes_it_once() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    // As above, and the record cannot be read either (after the lookup before the write):
    // the server cannot tell whether the comment was made.
    faulty.proxy.inject(
        "TransactWriteItems",
        Fault::Hold(Duration::from_millis(1500)),
        3,
    );
    faulty.proxy.inject("GetItem", Fault::Pass, 1);
    faulty.proxy.inject("GetItem", Fault::Fail, 3);
    let variables = json!({ "p": "p1", "c": "hello" });
    let lost = mutate(app, "u1", Some("k-1"), ADD_COMMENT, variables.clone()).await;
    let error = &lost["errors"][0];
    assert_eq!(
        error["extensions"]["code"],
        json!("SERVICE_UNAVAILABLE"),
        "{lost}"
    );
    assert_eq!(error["extensions"]["outcome"], json!("UNKNOWN"), "{lost}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("same idempotency key"), "{message}");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // The client retries with the same key: the first comment, not a second.
    let retried = mutate(app, "u1", Some("k-1"), ADD_COMMENT, variables).await;
    assert!(retried["data"]["addComment"]["id"].is_string(), "{retried}");
    assert_eq!(
        retried["data"]["addComment"]["post"]["commentCount"],
        json!(1)
    );
    assert_eq!(comment_count(app).await, (1, json!(1)));
}

#[tokio::test]
async fn without_a_key_a_lost_answer_is_an_unknown_outcome() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    faulty.proxy.inject(
        "TransactWriteItems",
        Fault::Hold(Duration::from_millis(1500)),
        3,
    );
    let lost = mutate(app, "u1", None, CREATE_POST, json!({ "t": "Hello" })).await;
    assert_eq!(
        lost["errors"][0]["extensions"]["outcome"],
        json!("UNKNOWN"),
        "{lost}"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // It was made, once (every attempt carried the same token).
    assert_eq!(app.scan("posts").await.len(), 2, "p1 and the one post made");
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_made_once_with_its_key() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    faulty.proxy.inject(
        "TransactWriteItems",
        Fault::Hold(Duration::from_millis(1500)),
        3,
    );
    let first = mutate(app, "u1", Some("p-1"), CREATE_POST, json!({ "t": "Hello" })).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let retried = mutate(app, "u1", Some("p-1"), CREATE_POST, json!({ "t": "Hello" })).await;
    assert_eq!(
        retried["data"]["createPost"]["title"],
        json!("Hello"),
        "{retried}"
    );
    assert_eq!(first["data"], retried["data"], "{first}");
    assert_eq!(app.scan("posts").await.len(), 2, "p1 and the one post made");
}

#[tokio::test]
async fn a_retried_attempt_of_a_committed_transaction_succeeds() {
    let faulty = faulty(|_| {}).await;
    let app = &faulty.app;
    // The first attempt commits and its answer comes too late: the same attempt is sent
    // again, and DynamoDB knows its ClientRequestToken (no key: the token alone does it).
    faulty.proxy.inject(
        "TransactWriteItems",
        Fault::Hold(Duration::from_millis(700)),
        1,
    );
    let before = faulty.proxy.seen("TransactWriteItems");
    let started = Instant::now();
    let body = mutate(
        app,
        "u1",
        None,
        ADD_COMMENT,
        json!({ "p": "p1", "c": "once" }),
    )
    .await;
    assert!(body["errors"].is_null(), "not a condition failure: {body}");
    let attempts = faulty.proxy.seen("TransactWriteItems") - before;
    assert_eq!(attempts, 2, "the attempt was sent again");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "after the attempt timed out"
    );
    assert_eq!(body["data"]["addComment"]["post"]["commentCount"], json!(1));
    assert!(
        faulty.proxy.seen("TransactWriteItems") >= 2,
        "the SDK did retry"
    );
    assert_eq!(comment_count(app).await, (1, json!(1)));
}

#[tokio::test]
async fn stream_failures_in_a_burst_lose_no_event_and_repeat_none() {
    let faulty = faulty(|config| {
        config.live = live();
        config.live.describe_interval = Duration::from_millis(300);
    })
    .await;
    let app = &faulty.app;
    let mut client = Client::connect(app, None).await;
    client
        .subscribe("s", COMMENTS, json!({ "post": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    let comments = app.storage.tables().comments.clone();
    let table = Some(comments.as_str());
    let proxy = &faulty.proxy;
    let writer = async {
        for i in 0..150 {
            match i {
                // The periodic look at the comments' shards fails (every SDK attempt).
                30 => proxy.inject_when("DescribeStream", table, Fault::Fail, 6),
                // The comments' iterator expires, and renewing it fails a few times
                // (DynamoDB Local's iterators name their table).
                60 => {
                    proxy.inject_when("GetShardIterator", table, Fault::Fail, 6);
                    let expired = Fault::Error("ExpiredIteratorException");
                    proxy.inject_when("GetRecords", table, expired, 1);
                }
                // Reading the comments fails a few times.
                90 => proxy.inject_when("GetRecords", table, Fault::Fail, 6),
                _ => {}
            }
            let comment = Comment {
                id: CommentId::parse(format!("c{i:03}")).expect("id"),
                post_id: PostId::parse("p1").expect("id"),
                author_id: UserId::parse("u1").expect("id"),
                content: format!("comment {i}"),
                created_at: at(1 + i),
                updated_at: at(1 + i),
                version: 1,
            };
            faulty
                .writer
                .comments()
                .add(&comment, None)
                .await
                .expect("acknowledged");
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 150 && Instant::now() < deadline {
            if let Some(event) = client.event("s", Duration::from_secs(10)).await {
                seen.push(
                    event["data"]["commentAdded"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
        // Anything more would be a repeat.
        if let Some(extra) = client.receive(Duration::from_secs(2)).await {
            seen.push(format!("extra: {extra}"));
        }
        seen
    };
    let ((), seen) = tokio::join!(writer, reader);
    let expected: Vec<String> = (0..150).map(|i| format!("c{i:03}")).collect();
    assert_eq!(seen, expected, "every comment once, in order");
    for operation in ["DescribeStream", "GetShardIterator", "GetRecords"] {
        assert_eq!(
            faulty.proxy.pending(operation),
            0,
            "{operation}'s faults were all met"
        );
    }
}
