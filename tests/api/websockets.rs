//! WebSockets hold to the rules an HTTP request does, and end when they should: a token
//! that expires, a flood over one connection, messages over the limit, silence, protocol
//! mistakes, reused ids, and the cost of fan-out.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use blog_graphql::{
    config::{Config, LiveSettings},
    domain::{Comment, CommentId, PostId, UserId},
    storage::{CostRecorder, Storage},
};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    helpers::{
        TestApp, black_hole, dynamodb_endpoint, fresh_tables, spawn_app_on, spawn_app_until,
        test_config, test_settings,
    },
    subscriptions::{COMMENTS, SUBSCRIBED, live},
    ws_client::{Client, open},
};

use crate::hardening::alive;

#[tokio::test]
async fn a_websocket_closes_when_its_token_expires() {
    let (mut config, storage) = fresh_tables().await;
    config.token_rules.leeway = Duration::ZERO;
    config.live = live();
    let app = spawn_app_until(config, storage, std::future::pending()).await;
    app.alice_and_her_post().await;
    let short = app
        .auth
        .mint(&UserId::parse("u1").expect("id"), Duration::from_secs(2))
        .expect("token");
    let mut client = Client::connect(&app, Some(&short)).await;
    client
        .subscribe("s", COMMENTS, json!({ "post": "p1" }))
        .await;
    // While the token holds, the connection writes as its user.
    client
        .subscribe(
            "w",
            "mutation { createPost(input: {title: \"t\", content: \"c\"}) { id } }",
            json!({}),
        )
        .await;
    let written = client
        .event("w", Duration::from_secs(5))
        .await
        .expect("written");
    assert!(written["data"]["createPost"]["id"].is_string(), "{written}");

    // Then it expires: the socket closes with 4403, taking its subscription with it.
    let started = Instant::now();
    let mut closed = None;
    while let Some(message) = client.receive(Duration::from_secs(5)).await {
        if message["type"] == json!("close") {
            closed = Some(message["code"].clone());
            break;
        }
    }
    assert_eq!(closed, Some(json!(4403)));
    assert!(started.elapsed() < Duration::from_secs(4));
    let posts = app.scan("posts").await.len();
    assert_eq!(posts, 2, "one written while the token held");
}

/// A server over a DynamoDB that never answers, with subscriptions off.
async fn hung_app(configure: impl FnOnce(&mut Config)) -> TestApp {
    let settings = test_settings(&black_hole().await);
    let storage = Storage::connect(&settings).await.expect("client");
    let mut config = test_config(settings);
    configure(&mut config);
    spawn_app_on(config, storage).await
}

/// Sends `count` queries at once over one connection, and collects each one's answer:
/// the code of its error, and whether it was the protocol's `error` (refused before it
/// ran) or a `next` (it ran).
async fn flood(app: &TestApp, count: usize) -> Vec<(String, &'static str, String)> {
    let mut client = Client::connect(app, None).await;
    for i in 0..count {
        client
            .send(json!({ "id": format!("q{i}"), "type": "subscribe",
                          "payload": { "query": "{ user(id: \"u1\") { id } }" } }))
            .await;
    }
    let mut answers = Vec::new();
    while answers.len() < count {
        let message = client
            .receive(Duration::from_secs(3))
            .await
            .expect("every operation is answered in time");
        let (kind, error) = match message["type"].as_str() {
            Some("error") => ("error", &message["payload"][0]),
            Some("next") => ("next", &message["payload"]["errors"][0]),
            _ => continue,
        };
        answers.push((
            message["id"].as_str().unwrap_or_default().to_owned(),
            kind,
            error["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    answers
}

#[tokio::test]
async fn operations_over_a_websocket_share_the_permits_and_the_timeout() {
    let app = hung_app(|config| {
        config.http.max_concurrent_requests = 2;
        config.http.request_timeout = Duration::from_secs(1);
    })
    .await;
    let started = Instant::now();
    let answers = flood(&app, 10).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let ran: Vec<_> = answers.iter().filter(|a| a.1 == "next").collect();
    let refused: Vec<_> = answers.iter().filter(|a| a.1 == "error").collect();
    // Two permits: two run, and time out; the others are refused at once.
    assert_eq!(ran.len(), 2, "{answers:?}");
    assert_eq!(refused.len(), 8, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.2 == "SERVICE_UNAVAILABLE"),
        "{answers:?}"
    );
}

#[tokio::test]
async fn one_connection_runs_a_bounded_number_of_operations() {
    let app = hung_app(|config| {
        config.http.request_timeout = Duration::from_secs(1);
        config.live.max_subscriptions_per_connection = 3;
    })
    .await;
    let answers = flood(&app, 10).await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a.1 == "error" && a.2 == "BAD_USER_INPUT")
        .collect();
    assert_eq!(refused.len(), 7, "{answers:?}");
}

#[tokio::test]
async fn a_websocket_message_is_capped_like_a_body() {
    let (mut config, storage) = fresh_tables().await;
    config.http.max_body_bytes = 64 * 1024;
    let app = spawn_app_on(config, storage).await;
    // Under the cap: answered.
    let mut client = Client::connect(&app, None).await;
    let padded = format!("{{ viewer {{ id }} }} #{}", "x".repeat(50_000));
    client.subscribe("1", &padded, json!({})).await;
    let answer = client
        .event("1", Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(answer, json!({ "data": { "viewer": null } }));
    let complete = client.receive(Duration::from_secs(5)).await;
    assert_eq!(complete, Some(json!({ "type": "complete", "id": "1" })));
    // Over it: the connection is dropped before the message is even whole.
    let huge = format!("{{ viewer {{ id }} }} #{}", "x".repeat(200_000));
    let message = json!({ "id": "2", "type": "subscribe", "payload": { "query": huge } });
    // The server may hang up before the whole message is written.
    let _ = client.ws.send(Message::text(message.to_string())).await;
    let mut ended = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), client.ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                // When the close frame gets through, it says why: 1009, Message Too Big.
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1009));
                ended = true;
                break;
            }
            Ok(None | Some(Err(_))) => {
                ended = true;
                break;
            }
            Ok(Some(Ok(message))) => panic!("answered: {message:?}"),
            Err(_) => {}
        }
    }
    assert!(ended, "the connection is closed");
    alive(&app).await;
}

#[tokio::test]
async fn idle_and_silent_websockets_are_closed() {
    let (mut config, storage) = fresh_tables().await;
    config.live = LiveSettings {
        enabled: false,
        max_connections: 2,
        init_timeout: Duration::from_secs(1),
        keepalive: Duration::from_secs(1),
        ..live()
    };
    let app = spawn_app_on(config, storage).await;
    // Two sockets that never say connection_init fill the server's slots...
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(open(&app, "graphql-transport-ws").await.expect("opens"));
    }
    assert!(open(&app, "graphql-transport-ws").await.is_err(), "full");
    // ...for a second, then they are closed with 4408 and the slots are free again.
    for mut ws in idle {
        let mut code = None;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(3), ws.next()).await
        {
            if let Message::Close(frame) = message {
                code = frame.map(|f| u16::from(f.code));
                break;
            }
        }
        assert_eq!(code, Some(4408));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = Client::connect(&app, None).await;
    // A client that stops answering pings (it reads nothing) is let go too.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let closed = client.receive(Duration::from_secs(2)).await;
    assert_eq!(closed, Some(json!({ "type": "close", "code": 1001 })));
}

#[tokio::test]
async fn an_event_costs_dynamodb_the_same_for_one_subscriber_or_two_hundred() {
    let settings = test_settings(dynamodb_endpoint());
    let writer = Storage::connect(&settings).await.expect("storage");
    writer.create_tables().await.expect("tables");
    let recorder = Arc::new(CostRecorder::default());
    let mut config = test_config(settings.clone());
    config.live = live();
    let served = Storage::connect(&settings).await.expect("storage");
    let app = spawn_app_until(
        config,
        served.with_cost(recorder.clone()),
        std::future::pending(),
    )
    .await;
    app.alice_and_her_post().await;

    // Ten connections of twenty subscriptions each, to API.md's CommentAdded.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut client = Client::connect(&app, None).await;
        for i in 0..20 {
            let payload = json!({ "query": crate::helpers::OPERATIONS,
                                  "operationName": "CommentAdded", "variables": { "postId": "p1" } });
            client.subscribe_to(&format!("s{i}"), payload).await;
        }
        clients.push(client);
    }
    tokio::time::sleep(SUBSCRIBED * 3).await;
    let before = recorder.report();
    let comment = Comment {
        id: CommentId::parse("c1").expect("id"),
        post_id: PostId::parse("p1").expect("id"),
        author_id: UserId::parse("u1").expect("id"),
        content: "hello".into(),
        created_at: crate::helpers::at(1),
        updated_at: crate::helpers::at(1),
        version: 1,
    };
    writer
        .comments()
        .add(&comment, None)
        .await
        .expect("written");
    let mut delivered = 0;
    for client in &mut clients {
        for _ in 0..20 {
            let message = client
                .receive(Duration::from_secs(5))
                .await
                .expect("an event");
            assert_eq!(
                message["payload"]["data"]["commentAdded"]["author"],
                json!({ "username": "alice" }),
                "{message}"
            );
            delivered += 1;
        }
    }
    assert_eq!(delivered, 200);
    let after = recorder.report();
    let requests = after.requests - before.requests;
    println!(
        "one event, 200 subscribers: {requests} DynamoDB requests ({:?})",
        after.by_operation
    );
    assert!(
        requests <= 2,
        "{requests} requests for one event: {:?}",
        after.by_operation
    );
}
