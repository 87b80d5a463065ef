//! One connection's messages: `connection_init`, `subscribe`, `complete`, pings.

use std::{collections::HashMap, ops::Not, sync::Arc};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, stream::SplitSink};
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};

use super::{AppState, wire};
use crate::{
    auth::Viewer,
    error::ErrorCode,
    graphql::error::{coded, refusal},
};

use super::{
    End, MAX_ID_BYTES, Operation, Outbox, Outgoing, Protocol, Running, WRITE_TIMEOUT,
    invalid_message,
};

pub(super) struct Connection {
    pub(super) protocol: Protocol,
    pub(super) state: AppState,
    pub(super) sink: SplitSink<WebSocket, Message>,
    /// The viewer, once `connection_init` is accepted.
    pub(super) viewer: Option<Viewer>,
    pub(super) running: HashMap<String, Running>,
    pub(super) tasks: JoinSet<()>,
    pub(super) serials: u64,
    pub(super) outbox: mpsc::Sender<Outgoing>,
    pub(super) subscriptions: Arc<Semaphore>,
    pub(super) singles: Arc<Semaphore>,
    /// The most operations that may run at once (both kinds together).
    pub(super) max_running: usize,
}

/// A client message: its type, and the fields some types have.
#[derive(Deserialize)]
pub(super) struct Envelope<'a> {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) id: Option<String>,
    #[serde(borrow)]
    pub(super) payload: Option<&'a RawValue>,
}

impl Connection {
    /// Handles one client message; `Some` ends the connection.
    pub(super) async fn receive(&mut self, text: &str) -> Option<End> {
        let Ok(message) = serde_json::from_str::<Envelope<'_>>(text) else {
            return Some(invalid_message());
        };
        match (self.protocol, message.kind.as_str()) {
            (_, "connection_init") => self.init(message.payload).await,
            (Protocol::TransportWs, "ping") => {
                (!self.send_json(&json!({ "type": "pong" })).await).then_some(End::Gone)
            }
            (Protocol::TransportWs, "pong") => None,
            (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => {
                self.subscribe(message.id, message.payload).await
            }
            (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => {
                let Some(id) = message.id else {
                    return Some(invalid_message());
                };
                if let Some(running) = self.running.remove(&id) {
                    running.task.abort();
                    // The legacy protocol confirms a stop; the newer one does not.
                    if self.protocol == Protocol::Legacy
                        && !self
                            .send_json(&json!({ "type": "complete", "id": id }))
                            .await
                    {
                        return Some(End::Gone);
                    }
                }
                None
            }
            (Protocol::Legacy, "connection_terminate") => Some(End::Close(1000, String::new())),
            _ => Some(invalid_message()),
        }
    }

    pub(super) async fn init(&mut self, payload: Option<&RawValue>) -> Option<End> {
        if self.viewer.is_some() {
            return Some(End::Close(4429, "Too many initialisation requests".into()));
        }
        let payload: Value = payload
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null);
        let authorization = payload
            .get("Authorization")
            .or_else(|| payload.get("authorization"))
            .map(|v| v.as_str().unwrap_or("\u{0}"));
        match self.state.auth.viewer(authorization).await {
            Ok(viewer) => {
                self.viewer = Some(viewer);
                if !self.send_json(&json!({ "type": "connection_ack" })).await {
                    return Some(End::Gone);
                }
                if self.protocol == Protocol::Legacy
                    && !self.send_json(&json!({ "type": "ka" })).await
                {
                    return Some(End::Gone);
                }
                None
            }
            Err(err) => {
                // The close code is the error's: a bad token is `4403`, but keys that could
                // not be fetched say "try again later", not that the token is bad.
                let close = err.code().close_code();
                let message = refusal(err).message;
                if self.protocol == Protocol::Legacy {
                    let refused =
                        json!({ "type": "connection_error", "payload": { "message": message } });
                    if !self.send_json(&refused).await {
                        return Some(End::Gone);
                    }
                }
                Some(End::Close(close, message))
            }
        }
    }

    pub(super) async fn subscribe(
        &mut self,
        id: Option<String>,
        payload: Option<&RawValue>,
    ) -> Option<End> {
        let Some(viewer) = self.viewer.clone() else {
            return Some(End::Close(4401, "Unauthorized".into()));
        };
        let (Some(id), Some(payload)) = (id, payload) else {
            return Some(invalid_message());
        };
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Some(invalid_message());
        }
        if self.running.contains_key(&id) {
            return Some(End::Close(
                4409,
                format!("Subscriber for {id} already exists"),
            ));
        }
        if viewer.expired() {
            return Some(End::Close(
                4403,
                "the token has expired; connect again with a fresh one".into(),
            ));
        }
        if self.running.len() >= self.max_running {
            // Refused before anything is parsed or spawned, and answered from here, so a
            // connection's flood costs no more than its own limit (and waits on its own
            // writes: a client that does not read stops being read).
            let max = self.max_running;
            let errors = [coded(
                format!("a connection may run at most {max} operations at once"),
                ErrorCode::BadUserInput,
            )];
            let refused = json!({ "type": "error", "id": id, "payload": errors });
            return self.send_json(&refused).await.not().then_some(End::Gone);
        }
        self.serials += 1;
        let serial = self.serials;
        let operation = Operation {
            outbox: Outbox {
                id: id.clone(),
                serial,
                sender: self.outbox.clone(),
            },
            protocol: self.protocol,
            state: self.state.clone(),
            viewer,
            subscriptions: self.subscriptions.clone(),
            singles: self.singles.clone(),
        };
        let payload = wire::decode(
            payload.get().as_bytes(),
            self.state.pipeline.limits().max_variables_bytes,
        );
        let task = self.tasks.spawn(operation.run(payload));
        self.running.insert(id, Running { serial, task });
        None
    }

    /// Sends an operation's message, unless that operation is no longer the one running
    /// under its id (the client completed it, or reused the id since); after its last
    /// message the id is free again.
    pub(super) async fn deliver(&mut self, outgoing: Outgoing) -> bool {
        let current = self
            .running
            .get(&outgoing.id)
            .is_some_and(|running| running.serial == outgoing.serial);
        if !current {
            return true;
        }
        if outgoing.last {
            self.running.remove(&outgoing.id);
        }
        self.send(outgoing.message).await
    }

    /// Forgets an operation whose task failed. One that ended normally queued its last
    /// message (`complete` or `error`) first, and is forgotten when that goes out.
    pub(super) fn finished(&mut self, done: Result<(), tokio::task::JoinError>) {
        if let Err(err) = done {
            self.running
                .retain(|_, running| running.task.id() != err.id());
        }
    }

    /// Sends a message; `false` when the client is gone or too slow to take it.
    pub(super) async fn send(&mut self, message: Message) -> bool {
        matches!(
            tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(message)).await,
            Ok(Ok(()))
        )
    }

    pub(super) async fn send_json(&mut self, value: &Value) -> bool {
        self.send(Message::Text(value.to_string().into())).await
    }

    pub(super) async fn close(&mut self, code: u16, reason: &str) {
        // A close frame's reason is at most 123 bytes.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let frame = CloseFrame {
            code,
            reason: reason[..end].into(),
        };
        let _ =
            tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(Message::Close(Some(frame)))).await;
    }
}
