//! The WebSocket protocols to the letter: mistakes close with the protocols' codes, ids
//! may be reused once complete, the subprotocol answered is the one spoken, and a
//! subscription does not page.

use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    helpers::{fresh_tables, spawn_app_until},
    subscriptions::{COMMENTS, SUBSCRIBED, live},
    ws_client::{Client, open},
};

use crate::hardening::{Via, codes_of, errors_via};

#[tokio::test]
async fn connection_protocol_mistakes_close_with_the_protocols_codes() {
    let (mut config, storage) = fresh_tables().await;
    config.live = live();
    let app = spawn_app_until(config, storage, std::future::pending()).await;
    let close_code = |mut client: Client| async move {
        loop {
            match client.receive(Duration::from_secs(3)).await {
                Some(message) if message["type"] == json!("close") => {
                    return message["code"].clone();
                }
                Some(_) => continue,
                None => return Value::Null,
            }
        }
    };
    // Subscribing before connection_init: 4401.
    let ws = open(&app, "graphql-transport-ws").await.expect("opens");
    let mut raw = Client { ws, legacy: false };
    raw.send(
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ viewer { id } }" } }),
    )
    .await;
    assert_eq!(close_code(raw).await, json!(4401));
    // A second connection_init: 4429.
    let mut client = Client::connect(&app, None).await;
    client.send(json!({ "type": "connection_init" })).await;
    assert_eq!(close_code(client).await, json!(4429));
    // Two operations with one id: 4409.
    let mut client = Client::connect(&app, None).await;
    client
        .subscribe("same", COMMENTS, json!({ "post": "p1" }))
        .await;
    client
        .subscribe("same", COMMENTS, json!({ "post": "p1" }))
        .await;
    assert_eq!(close_code(client).await, json!(4409));
    // Not JSON: 4400.
    let mut client = Client::connect(&app, None).await;
    client.ws.send(Message::text("{nope")).await.expect("sent");
    assert_eq!(close_code(client).await, json!(4400));
    // A ping is answered with a pong.
    let mut client = Client::connect(&app, None).await;
    client.send(json!({ "type": "ping" })).await;
    assert_eq!(
        client.receive(Duration::from_secs(3)).await,
        Some(json!({ "type": "pong" }))
    );
}

#[tokio::test]
async fn operation_ids_can_be_reused_once_complete_and_stale_messages_are_dropped() {
    let (mut config, storage) = fresh_tables().await;
    config.live = live();
    let app = spawn_app_until(config, storage, std::future::pending()).await;
    app.alice_and_her_post().await;
    let mut client = Client::connect(&app, None).await;
    // A query, then the same id again at once: each answered in full.
    for _ in 0..3 {
        client.subscribe("q", "{ viewer { id } }", json!({})).await;
        assert_eq!(
            client.event("q", Duration::from_secs(5)).await,
            Some(json!({ "data": { "viewer": null } }))
        );
        assert_eq!(
            client.receive(Duration::from_secs(5)).await,
            Some(json!({ "type": "complete", "id": "q" }))
        );
    }
    // A subscription completed by the client and started again under its id: the new
    // one hears the next event, once, and nothing of the old one comes through.
    client
        .subscribe("s", COMMENTS, json!({ "post": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;
    client.send(json!({ "type": "complete", "id": "s" })).await;
    client
        .subscribe("s", COMMENTS, json!({ "post": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;
    app.add_comment("c1", "p1", "u1", 1).await;
    let event = client
        .event("s", Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(event["data"]["commentAdded"]["id"], json!("c1"));
    assert_eq!(
        client.receive(Duration::from_millis(700)).await,
        None,
        "nothing else"
    );
}

#[tokio::test]
async fn the_subprotocol_the_server_answers_with_is_the_one_it_speaks() {
    let app = crate::helpers::spawn_app().await;
    // Offered in the legacy-first order: the server picks graphql-transport-ws, says so,
    // and speaks it.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{}/graphql",
            app.url.replace("http", "ws")
        ))
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-ws, graphql-transport-ws".parse().expect("header"),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("opens");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"graphql-transport-ws"[..])
    );
    let mut client = Client { ws, legacy: false };
    client.send(json!({ "type": "connection_init" })).await;
    assert_eq!(
        client.receive(Duration::from_secs(5)).await,
        Some(json!({ "type": "connection_ack" }))
    );
    client.subscribe("1", "{ viewer { id } }", json!({})).await;
    assert_eq!(
        client.event("1", Duration::from_secs(5)).await,
        Some(json!({ "data": { "viewer": null } }))
    );
}

#[tokio::test]
async fn a_subscription_may_not_page_with_a_cursor() {
    let (mut config, storage) = fresh_tables().await;
    config.live = live();
    let app = spawn_app_until(config, storage, std::future::pending()).await;
    let errors = errors_via(
        &app,
        Via::WebSocket,
        "subscription { commentAdded(postId: \"p1\") { post { comments(first: 5, after: \"x\") { nodes { id } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(codes_of(&errors), ["BAD_USER_INPUT"], "{errors:?}");
}
