//! Subscriptions over WebSocket, fed by the tables' DynamoDB Streams.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::AttributeValue;
use blog_graphql::{config::LiveSettings, storage::Storage};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::{
    helpers::{
        TestApp, dynamodb_endpoint, raw_client, spawn_app_until, test_config, test_settings,
    },
    ws_client::{Client, open},
};

/// Time for a subscribe message to reach the server and its subscription to start
/// (the protocol has no acknowledgement for it).
pub(crate) const SUBSCRIBED: Duration = Duration::from_millis(300);

pub(crate) const COMMENTS: &str =
    "subscription($post: ID!) { commentAdded(postId: $post) { id content author { username } } }";

/// `instances` servers on the same (new) tables, with subscriptions on.
pub(crate) async fn live_servers(instances: usize, live: LiveSettings) -> Vec<TestApp> {
    let settings = test_settings(dynamodb_endpoint());
    let storage = Storage::connect(&settings).await.expect("storage");
    storage.create_tables().await.expect("tables");
    let mut apps = Vec::new();
    for _ in 0..instances {
        let mut config = test_config(settings.clone());
        config.live = live.clone();
        let storage = Storage::connect(&settings).await.expect("storage");
        apps.push(spawn_app_until(config, storage, std::future::pending()).await);
    }
    apps
}

pub(crate) fn live() -> LiveSettings {
    LiveSettings::default()
}

#[tokio::test]
async fn a_comment_written_through_one_instance_reaches_a_subscriber_on_another() {
    let apps = live_servers(2, live()).await;
    let (subscribed, writer) = (&apps[0], &apps[1]);
    writer.alice_and_her_post().await;
    writer.add_post("p2", "u1", 1).await;

    let mut client = Client::connect(subscribed, None).await;
    // API.md's canonical subscription, unchanged.
    let canonical = json!({ "query": crate::helpers::OPERATIONS, "operationName": "CommentAdded",
                            "variables": { "postId": "p1" } });
    client.subscribe_to("1", canonical).await;
    client
        .subscribe("2", COMMENTS, json!({ "post": "p2" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    let written = Instant::now();
    let (body, _) = writer
        .operation(
            "AddComment",
            json!({ "postId": "p1", "content": "Hello from B" }),
            Some("u1"),
        )
        .await;
    let id = body["data"]["addComment"]["id"].clone();
    let event = client
        .event("1", Duration::from_secs(5))
        .await
        .expect("an event");
    let latency = written.elapsed();
    assert_eq!(
        event,
        json!({ "data": { "commentAdded": { "id": id, "content": "Hello from B", "author": { "username": "alice" } } } })
    );
    assert!(latency < Duration::from_secs(1), "delivered in {latency:?}");
    // The subscription to the other post heard nothing.
    assert_eq!(client.receive(Duration::from_millis(700)).await, None);
}

#[tokio::test]
async fn an_item_put_straight_into_the_table_in_da_vinci_format_is_an_event() {
    let apps = live_servers(1, live()).await;
    let app = &apps[0];
    app.add_user("user-1", "alice").await;
    app.add_post("post-0001", "user-1", 0).await;
    let mut client = Client::connect(app, None).await;
    client
        .subscribe("1", COMMENTS, json!({ "post": "post-0001" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    let item: HashMap<String, AttributeValue> = [
        ("CommentId", AttributeValue::S("comment-0001".into())),
        ("PostId", AttributeValue::S("post-0001".into())),
        ("UserId", AttributeValue::S("user-1".into())),
        ("Content", AttributeValue::S("Great post!".into())),
        ("CreatedAt", AttributeValue::N("1735732802.5".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    raw_client()
        .put_item()
        .table_name(&app.storage.tables().comments)
        .set_item(Some(item))
        .send()
        .await
        .expect("put");
    let event = client
        .event("1", Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(
        event,
        json!({ "data": { "commentAdded": { "id": "comment-0001", "content": "Great post!", "author": { "username": "alice" } } } })
    );
}

#[tokio::test]
async fn a_hundred_quick_comments_arrive_complete_and_in_order_and_a_slow_subscriber_delays_nobody()
{
    let apps = live_servers(1, live()).await;
    let app = &apps[0];
    app.alice_and_her_post().await;
    // The slow subscriber reads nothing until the end.
    let mut slow = Client::connect(app, None).await;
    slow.subscribe("s", COMMENTS, json!({ "post": "p1" })).await;
    let mut fast = Client::connect(app, None).await;
    fast.subscribe("f", COMMENTS, json!({ "post": "p1" })).await;
    tokio::time::sleep(SUBSCRIBED).await;

    let writer = async {
        for i in 0..100 {
            app.add_comment(&format!("c{i:03}"), "p1", "u1", 1 + i)
                .await;
        }
        Instant::now()
    };
    let reader = async {
        let mut seen = Vec::new();
        while seen.len() < 100 {
            let event = fast
                .event("f", Duration::from_secs(5))
                .await
                .expect("every event");
            seen.push(
                event["data"]["commentAdded"]["id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
            );
        }
        (seen, Instant::now())
    };
    let (written, (seen, read)) = tokio::join!(writer, reader);
    let expected: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
    assert_eq!(seen, expected, "complete and in write order");
    assert!(
        read.duration_since(written) < Duration::from_secs(1),
        "the fast subscriber kept up"
    );

    // The slow one gets them all too, or is told it fell behind; never a gap in silence.
    let mut slow_seen = 0;
    while let Some(message) = slow.receive(Duration::from_secs(2)).await {
        if message["type"] == json!("next") && message["payload"]["errors"].is_null() {
            slow_seen += 1;
        } else {
            assert_eq!(
                message["payload"]["errors"][0]["extensions"]["code"],
                json!("SERVICE_UNAVAILABLE"),
                "{message}"
            );
            break;
        }
        if slow_seen == 100 {
            break;
        }
    }
    assert!(slow_seen > 0);
}

#[tokio::test]
async fn new_posts_are_events_for_everyone_or_for_one_author() {
    let apps = live_servers(1, live()).await;
    let app = &apps[0];
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    let mut client = Client::connect(app, None).await;
    let posts = "subscription($a: ID) { postAdded(authorId: $a) { id title author { username } } }";
    client.subscribe("all", posts, json!({})).await;
    client.subscribe("bob", posts, json!({ "a": "u2" })).await;
    tokio::time::sleep(SUBSCRIBED).await;
    app.add_post("p1", "u1", 0).await;
    let event = client
        .event("all", Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(
        event["data"]["postAdded"]["author"],
        json!({ "username": "alice" })
    );
    app.add_post("p2", "u2", 1).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let message = client
            .receive(Duration::from_secs(5))
            .await
            .expect("an event");
        ids.push((
            message["id"].as_str().expect("id").to_owned(),
            message["payload"]["data"]["postAdded"]["id"].clone(),
        ));
    }
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ids,
        [
            ("all".to_owned(), json!("p2")),
            ("bob".to_owned(), json!("p2"))
        ]
    );
}

#[tokio::test]
async fn tokens_ride_in_connection_init_and_a_bad_one_closes_with_4403() {
    let apps = live_servers(1, live()).await;
    let app = &apps[0];
    // A good token: the connection's operations run as that user.
    let mut client = Client::connect(app, Some(&app.token("u7"))).await;
    client
        .send(
            json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ viewer { id } }" } }),
        )
        .await;
    let answer = client
        .event("q", Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(
        answer,
        json!({ "data": { "viewer": null } }),
        "u7 has no user yet"
    );

    let mut ws = open(app, "graphql-transport-ws").await.expect("opens");
    ws.send(Message::text(json!({ "type": "connection_init", "payload": { "Authorization": "Bearer forged.token.here" } }).to_string()))
        .await
        .expect("sent");
    let mut closed = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
    {
        if let Message::Close(frame) = message {
            closed = frame.map(|f| f.code);
            break;
        }
    }
    assert_eq!(closed, Some(CloseCode::from(4403)));
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    let apps = live_servers(1, live()).await;
    let app = &apps[0];
    app.alice_and_her_post().await;
    let mut client = Client::connect_with(app, None, "graphql-ws").await;
    client
        .subscribe("1", COMMENTS, json!({ "post": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;
    app.add_comment("c1", "p1", "u1", 1).await;
    let event = client
        .event("1", Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(event["data"]["commentAdded"]["id"], json!("c1"));
}

#[tokio::test]
async fn connections_and_subscriptions_per_connection_are_limited() {
    let limited = LiveSettings {
        max_connections: 1,
        max_subscriptions_per_connection: 2,
        ..live()
    };
    let apps = live_servers(1, limited).await;
    let app = &apps[0];
    let mut client = Client::connect(app, None).await;
    for id in ["1", "2", "3"] {
        client
            .subscribe(id, COMMENTS, json!({ "post": "p1" }))
            .await;
    }
    // Subscriptions start in no set order: one of the three is refused, with the
    // protocol's `error` (it never ran).
    let refused = client
        .receive(Duration::from_secs(5))
        .await
        .expect("an answer");
    let id = refused["id"].as_str().unwrap_or_default();
    assert!(["1", "2", "3"].contains(&id), "{refused}");
    assert_eq!(refused["type"], json!("error"), "{refused}");
    let error = &refused["payload"][0];
    assert_eq!(
        error["extensions"]["code"],
        json!("BAD_USER_INPUT"),
        "{refused}"
    );
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("at most 2 subscriptions"), "{message}");
    let second = open(app, "graphql-transport-ws").await;
    assert!(second.is_err(), "a second connection is refused");
}

#[tokio::test]
async fn on_shutdown_subscribers_get_complete_and_a_clean_close() {
    let (mut config, storage) = crate::helpers::fresh_tables().await;
    config.live = live();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = spawn_app_until(config, storage, async {
        let _ = stopped.await;
    })
    .await;
    let mut client = Client::connect(&app, None).await;
    client
        .subscribe("1", COMMENTS, json!({ "post": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;
    stop.send(()).expect("stop");
    let complete = client
        .receive(Duration::from_secs(5))
        .await
        .expect("complete");
    assert_eq!(complete, json!({ "type": "complete", "id": "1" }));
    let close = client.receive(Duration::from_secs(5)).await.expect("close");
    assert_eq!(close, json!({ "type": "close", "code": 1001 }));
}

#[tokio::test]
async fn create_tables_turns_on_the_stream_of_tables_made_without_one() {
    use aws_sdk_dynamodb::types::StreamSpecification;

    let (mut config, storage) = crate::helpers::fresh_tables().await;
    let client = raw_client();
    let tables = storage.tables().clone();
    for table in [&tables.posts, &tables.comments] {
        client
            .update_table()
            .table_name(table)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(false)
                    .build()
                    .expect("spec"),
            )
            .send()
            .await
            .expect("stream off");
    }
    storage.create_tables().await.expect("turns the streams on");
    storage
        .create_tables()
        .await
        .expect("and again, changing nothing");
    for table in [&tables.posts, &tables.comments] {
        let description = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("described");
        let stream = description
            .table
            .and_then(|t| t.stream_specification)
            .expect("a stream");
        assert!(stream.stream_enabled(), "{table}");
    }
    config.live = live();
    let app = spawn_app_until(config, storage, std::future::pending()).await;
    app.alice_and_her_post().await;
    let mut client = Client::connect(&app, None).await;
    client
        .subscribe("1", COMMENTS, json!({ "post": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;
    app.add_comment("c1", "p1", "u1", 1).await;
    let event = client
        .event("1", Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(event["data"]["commentAdded"]["id"], json!("c1"));
}
