//! One operation of a connection, run in a task of its own, and the way its messages
//! reach the client.

use std::sync::Arc;

use async_graphql::{Response, parser::types::OperationType};
use axum::extract::ws::Message;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::{
    sync::{Semaphore, mpsc},
    task::AbortHandle,
};

use super::AppState;
use crate::{
    auth::Viewer,
    error::{AppError, ErrorCode},
    graphql::{Caller, Outcome, Started, Transport, error::coded, pipeline::is_request_error},
};

use super::Protocol;

/// A message an operation hands to its connection. The serial tells a message of the
/// operation now running under an id from one left over by an earlier operation that
/// used the same id (ids are the client's, and may be reused once complete).
pub(super) struct Outgoing {
    pub(super) id: String,
    pub(super) serial: u64,
    /// Whether the operation ends with this message (`complete` or `error`).
    pub(super) last: bool,
    pub(super) message: Message,
}

/// An operation that runs, by its client's id.
pub(super) struct Running {
    pub(super) serial: u64,
    pub(super) task: AbortHandle,
}

/// Where an operation's messages go: its connection, tagged with its id and serial.
pub(super) struct Outbox {
    pub(super) id: String,
    pub(super) serial: u64,
    pub(super) sender: mpsc::Sender<Outgoing>,
}

impl Outbox {
    pub(super) async fn post(&self, message: Value, last: bool) -> bool {
        let outgoing = Outgoing {
            id: self.id.clone(),
            serial: self.serial,
            last,
            message: Message::Text(message.to_string().into()),
        };
        self.sender.send(outgoing).await.is_ok()
    }

    /// The protocol's `error`: the operation failed before it ran, and nothing follows.
    pub(super) async fn error(&self, response: Response) {
        let errors = serde_json::to_value(&response.errors).unwrap_or_default();
        self.post(
            json!({ "type": "error", "id": self.id, "payload": errors }),
            true,
        )
        .await;
    }
}

/// One operation of a connection, run in a task of its own.
pub(super) struct Operation {
    pub(super) outbox: Outbox,
    pub(super) protocol: Protocol,
    pub(super) state: AppState,
    pub(super) viewer: Viewer,
    pub(super) subscriptions: Arc<Semaphore>,
    pub(super) singles: Arc<Semaphore>,
}

impl Operation {
    /// Runs the operation and sends its messages.
    pub(super) async fn run(self, request: Result<async_graphql::Request, AppError>) {
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                self.error(Response::from_errors(vec![crate::graphql::error::refusal(
                    err,
                )]))
                .await;
                return;
            }
        };
        let pipeline = &self.state.pipeline;
        let prepared = match pipeline.prepare(request, Transport::WebSocket) {
            Ok(prepared) => prepared,
            Err(outcome) => {
                self.done(outcome).await;
                return;
            }
        };
        // Each connection runs a bounded number of each kind of operation at once.
        let (pool, what) = match prepared.kind() {
            OperationType::Subscription => (&self.subscriptions, "subscriptions"),
            _ => (&self.singles, "queries and mutations"),
        };
        let Ok(_slot) = pool.clone().try_acquire_owned() else {
            let max = self.state.live.max_subscriptions_per_connection;
            let message = format!("a connection may run at most {max} {what} at once");
            self.error(Response::from_errors(vec![coded(
                message,
                ErrorCode::BadUserInput,
            )]))
            .await;
            return;
        };
        let caller = Caller {
            viewer: self.viewer.clone(),
            storage: self.state.storage.clone(),
        };
        match pipeline.run(prepared, caller).await {
            Started::Done(outcome) => self.done(outcome).await,
            Started::Stream(mut responses) => {
                let _running = crate::metrics::subscription();
                let mut first = true;
                while let Some(response) = responses.next().await {
                    if first && is_request_error(&response) {
                        // Refused before it started (validation): the protocol's `error`.
                        self.error(response).await;
                        return;
                    }
                    first = false;
                    if !self.next(response).await {
                        return;
                    }
                    crate::metrics::event_delivered();
                }
                self.complete().await;
            }
        }
    }

    pub(super) async fn done(&self, outcome: Outcome) {
        match outcome {
            Outcome::Ran(response) if is_request_error(&response) => self.error(response).await,
            Outcome::Ran(response) | Outcome::TimedOut(response) => {
                if self.next(response).await {
                    self.complete().await;
                }
            }
            Outcome::Refused(response)
            | Outcome::WrongTransport(response)
            | Outcome::Busy(response) => {
                self.error(response).await;
            }
        }
    }

    pub(super) async fn next(&self, response: Response) -> bool {
        let kind = match self.protocol {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        };
        let payload = serde_json::to_value(&response).unwrap_or_default();
        let id = &self.outbox.id;
        self.outbox
            .post(json!({ "type": kind, "id": id, "payload": payload }), false)
            .await
    }

    pub(super) async fn error(&self, response: Response) {
        self.outbox.error(response).await;
    }

    pub(super) async fn complete(&self) {
        let id = &self.outbox.id;
        self.outbox
            .post(json!({ "type": "complete", "id": id }), true)
            .await;
    }
}
