//! A GraphQL-over-WebSocket client for the tests: both subprotocols, raw access.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest},
};

use crate::helpers::TestApp;

pub(crate) async fn open(
    app: &TestApp,
    protocol: &str,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("{}/graphql", app.url.replace("http", "ws"))
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().expect("header"));
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

pub(crate) struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub legacy: bool,
}

impl Client {
    pub(crate) async fn connect(app: &TestApp, token: Option<&str>) -> Self {
        Self::connect_with(app, token, "graphql-transport-ws").await
    }

    pub(crate) async fn connect_with(app: &TestApp, token: Option<&str>, protocol: &str) -> Self {
        let ws = open(app, protocol).await.expect("WebSocket opens");
        let mut client = Self {
            ws,
            legacy: protocol == "graphql-ws",
        };
        let payload = match token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let ack = client
            .receive(Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(ack["type"], json!("connection_ack"), "{ack}");
        client
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("sent");
    }

    pub(crate) async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.subscribe_to(id, json!({ "query": query, "variables": variables }))
            .await;
    }

    pub(crate) async fn subscribe_to(&mut self, id: &str, payload: Value) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        self.send(json!({ "id": id, "type": kind, "payload": payload }))
            .await;
    }

    /// The next protocol message (keep-alives skipped), or `None` after `wait`.
    pub(crate) async fn receive(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = tokio::time::timeout(left, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("json");
                    if value["type"] == json!("ka") || value["type"] == json!("ping") {
                        continue;
                    }
                    return Some(value);
                }
                Message::Close(frame) => {
                    return Some(
                        json!({ "type": "close", "code": frame.map(|f| u16::from(f.code)) }),
                    );
                }
                _ => continue,
            }
        }
    }

    /// The payload of the next event, checking it belongs to subscription `id`.
    pub(crate) async fn event(&mut self, id: &str, wait: Duration) -> Option<Value> {
        let message = self.receive(wait).await?;
        let kind = if self.legacy { "data" } else { "next" };
        assert_eq!(
            (&message["type"], &message["id"]),
            (&json!(kind), &json!(id)),
            "{message}"
        );
        Some(message["payload"].clone())
    }
}
