//! GraphQL over WebSocket on `/graphql`: `graphql-transport-ws`, and the legacy
//! `graphql-ws` (subscriptions-transport-ws).
//!
//! The protocol is implemented here rather than taken from async-graphql so that a
//! connection is held to the same rules as an HTTP request, and ends when it should:
//!
//! - a message is capped like an HTTP body, and each operation goes through the same
//!   pipeline (guards, permit, timeout) as one sent by `POST`;
//! - `connection_init` must come within a few seconds (else close `4408`); the token in
//!   its payload is checked as an `Authorization` header is (a bad one: `4403`);
//! - the connection closes with `4403` when that token expires, ending its subscriptions,
//!   so graphql-ws clients reconnect with a fresh one;
//! - the server pings every keepalive period and closes a connection silent for two;
//! - a connection runs a bounded number of subscriptions, and of queries and mutations,
//!   at once; a client that does not read its messages is dropped rather than buffered.
//!
//! Each operation runs in a task of its own and hands its messages to the connection's
//! task, the only writer of the socket.

use std::{
    collections::HashMap,
    ops::Not,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_graphql::{Response, parser::types::OperationType};
use axum::{
    extract::{
        FromRequestParts, RawQuery, Request, State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{StatusCode, header},
    response::IntoResponse,
};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::{AbortHandle, JoinSet},
    time::{Instant, MissedTickBehavior},
};

use super::{AppState, graphql, wire};
use crate::{
    auth::Viewer,
    error::{AppError, ErrorCode},
    graphql::{
        Caller, Outcome, Started, Transport,
        error::{coded, refusal},
        pipeline::is_request_error,
    },
};

/// How long, at shutdown, running operations have to finish (subscriptions send their
/// `complete`) before the connection closes.
const DRAIN: Duration = Duration::from_millis(500);
/// How long a write to the client may take before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages an operation may have queued for a client that is slow to read; past that,
/// its subscriptions fall behind the feed and are ended.
const OUTBOX: usize = 64;
/// Longest operation id accepted.
const MAX_ID_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws`, the graphql-ws library's protocol.
    TransportWs,
    /// `graphql-ws`, the legacy subscriptions-transport-ws protocol.
    Legacy,
}

impl Protocol {
    const NAMES: [&'static str; 2] = ["graphql-transport-ws", "graphql-ws"];

    fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "graphql-transport-ws" => Some(Self::TransportWs),
            "graphql-ws" => Some(Self::Legacy),
            _ => None,
        }
    }
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL (or GraphiQL).
pub async fn get_or_upgrade(
    State(state): State<AppState>,
    request: Request,
) -> axum::response::Response {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (mut parts, _) = request.into_parts();
    if !upgrade {
        let query = RawQuery(parts.uri.query().map(str::to_owned));
        return graphql::get_graphql(State(state), parts.headers, query).await;
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    // The subprotocol axum answers with is the one we speak: the first of ours (the
    // current protocol before the legacy one) that the client offers.
    let ws = ws.protocols(Protocol::NAMES);
    let protocol = ws
        .selected_protocol()
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::parse);
    let Some(protocol) = protocol else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws (or graphql-ws) WebSocket subprotocol",
        )
            .into_response();
    };
    let Ok(permit) = state.websockets.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "too many WebSocket connections",
        )
            .into_response();
    };
    // A message is capped like an HTTP body.
    let limit = state.settings.max_body_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(socket, protocol, state, permit))
}

/// Why a connection's loop ended.
enum End {
    /// The client went away.
    Gone,
    /// The client closed the connection.
    Closed,
    /// We close it, with this code and reason.
    Close(u16, String),
    /// The server is shutting down.
    Shutdown,
}

/// A message an operation hands to its connection. The serial tells a message of the
/// operation now running under an id from one left over by an earlier operation that
/// used the same id (ids are the client's, and may be reused once complete).
struct Outgoing {
    id: String,
    serial: u64,
    /// Whether the operation ends with this message (`complete` or `error`).
    last: bool,
    message: Message,
}

/// An operation that runs, by its client's id.
struct Running {
    serial: u64,
    task: AbortHandle,
}

struct Connection {
    protocol: Protocol,
    state: AppState,
    sink: SplitSink<WebSocket, Message>,
    /// The viewer, once `connection_init` is accepted.
    viewer: Option<Viewer>,
    running: HashMap<String, Running>,
    tasks: JoinSet<()>,
    serials: u64,
    outbox: mpsc::Sender<Outgoing>,
    subscriptions: Arc<Semaphore>,
    singles: Arc<Semaphore>,
    /// The most operations that may run at once (both kinds together).
    max_running: usize,
}

async fn serve(
    socket: WebSocket,
    protocol: Protocol,
    state: AppState,
    _permit: OwnedSemaphorePermit,
) {
    let (sink, mut source) = socket.split();
    let (outbox, mut queued) = mpsc::channel::<Outgoing>(OUTBOX);
    let live = state.live.clone();
    let mut connection = Connection {
        protocol,
        sink,
        viewer: None,
        running: HashMap::new(),
        tasks: JoinSet::new(),
        serials: 0,
        outbox,
        subscriptions: Arc::new(Semaphore::new(live.max_subscriptions_per_connection)),
        singles: Arc::new(Semaphore::new(live.max_subscriptions_per_connection)),
        max_running: live.max_subscriptions_per_connection.saturating_mul(2),
        state,
    };
    let init_deadline = tokio::time::sleep(live.init_timeout);
    tokio::pin!(init_deadline);
    // Until a token says otherwise, the connection does not expire.
    let expiry = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(expiry);
    let mut keepalive = tokio::time::interval_at(Instant::now() + live.keepalive, live.keepalive);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut shutdown = connection.state.shutdown.clone();

    let end = loop {
        tokio::select! {
            message = source.next() => {
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => break read_failed(&err),
                    None => break End::Gone,
                };
                last_heard = Instant::now();
                let data = match message {
                    message @ (Message::Text(_) | Message::Binary(_)) => message.into_data(),
                    // axum answers pings itself; a pong only says the client is there.
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Close(_) => break End::Closed,
                };
                let Ok(text) = std::str::from_utf8(&data) else { break invalid_message() };
                let had_viewer = connection.viewer.is_some();
                if let Some(end) = connection.receive(text).await {
                    break end;
                }
                if !had_viewer && let Some(until) = connection.viewer.as_ref().and_then(Viewer::valid_until) {
                    let left = until.duration_since(SystemTime::now()).unwrap_or_default();
                    expiry.as_mut().reset(Instant::now() + left);
                }
            }
            Some(outgoing) = queued.recv() => {
                if !connection.deliver(outgoing).await {
                    break End::Gone;
                }
            }
            Some(done) = connection.tasks.join_next(), if !connection.tasks.is_empty() => {
                connection.finished(done);
            }
            () = &mut init_deadline, if connection.viewer.is_none() => {
                break End::Close(4408, "Connection initialisation timeout".into());
            }
            () = &mut expiry, if connection.viewer.is_some() => {
                break End::Close(4403, "the token has expired; connect again with a fresh one".into());
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() > live.keepalive * 2 {
                    break End::Close(1001, "no answer to pings".into());
                }
                if !connection.send(Message::Ping(Default::default())).await {
                    break End::Gone;
                }
                if connection.protocol == Protocol::Legacy
                    && connection.viewer.is_some()
                    && !connection.send_json(&json!({ "type": "ka" })).await
                {
                    break End::Gone;
                }
            }
            () = stopped(&mut shutdown) => break End::Shutdown,
        }
    };

    match end {
        End::Gone => connection.tasks.abort_all(),
        End::Closed => {
            // Answer the client's close (queued by the socket) before letting go.
            connection.tasks.abort_all();
            let _ = tokio::time::timeout(WRITE_TIMEOUT, connection.sink.close()).await;
        }
        End::Close(code, reason) => {
            connection.tasks.abort_all();
            connection.close(code, &reason).await;
        }
        End::Shutdown => {
            // Subscriptions end by themselves on shutdown and queries finish; let their
            // last messages out, then say goodbye properly.
            let drain = tokio::time::sleep(DRAIN);
            tokio::pin!(drain);
            loop {
                tokio::select! {
                    Some(outgoing) = queued.recv() => {
                        if !connection.deliver(outgoing).await {
                            return;
                        }
                    }
                    Some(done) = connection.tasks.join_next(), if !connection.tasks.is_empty() => {
                        connection.finished(done);
                    }
                    () = &mut drain => break,
                    else => break,
                }
                if connection.tasks.is_empty() && queued.is_empty() {
                    break;
                }
            }
            connection.tasks.abort_all();
            connection.close(1001, "the server is shutting down").await;
        }
    }
}

/// Completes when the server starts shutting down (or the signal's owner is gone).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn invalid_message() -> End {
    End::Close(4400, "Invalid message received".into())
}

/// A failed read: a message over the size limit is closed with 1009 (Message Too Big),
/// anything else means the client is gone.
fn read_failed(err: &axum::Error) -> End {
    let text = err.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
        End::Close(1009, "the message is over the size limit".into())
    } else {
        End::Gone
    }
}

/// A client message: its type, and the fields some types have.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

impl Connection {
    /// Handles one client message; `Some` ends the connection.
    async fn receive(&mut self, text: &str) -> Option<End> {
        let Ok(message) = serde_json::from_str::<Envelope>(text) else {
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

    async fn init(&mut self, payload: Option<&RawValue>) -> Option<End> {
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

    async fn subscribe(&mut self, id: Option<String>, payload: Option<&RawValue>) -> Option<End> {
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
    async fn deliver(&mut self, outgoing: Outgoing) -> bool {
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
    fn finished(&mut self, done: Result<(), tokio::task::JoinError>) {
        if let Err(err) = done {
            self.running
                .retain(|_, running| running.task.id() != err.id());
        }
    }

    /// Sends a message; `false` when the client is gone or too slow to take it.
    async fn send(&mut self, message: Message) -> bool {
        matches!(
            tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(message)).await,
            Ok(Ok(()))
        )
    }

    async fn send_json(&mut self, value: &Value) -> bool {
        self.send(Message::Text(value.to_string().into())).await
    }

    async fn close(&mut self, code: u16, reason: &str) {
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

/// Where an operation's messages go: its connection, tagged with its id and serial.
struct Outbox {
    id: String,
    serial: u64,
    sender: mpsc::Sender<Outgoing>,
}

impl Outbox {
    async fn post(&self, message: Value, last: bool) -> bool {
        let outgoing = Outgoing {
            id: self.id.clone(),
            serial: self.serial,
            last,
            message: Message::Text(message.to_string().into()),
        };
        self.sender.send(outgoing).await.is_ok()
    }

    /// The protocol's `error`: the operation failed before it ran, and nothing follows.
    async fn error(&self, response: Response) {
        let errors = serde_json::to_value(&response.errors).unwrap_or_default();
        self.post(
            json!({ "type": "error", "id": self.id, "payload": errors }),
            true,
        )
        .await;
    }
}

/// One operation of a connection, run in a task of its own.
struct Operation {
    outbox: Outbox,
    protocol: Protocol,
    state: AppState,
    viewer: Viewer,
    subscriptions: Arc<Semaphore>,
    singles: Arc<Semaphore>,
}

impl Operation {
    /// Runs the operation and sends its messages.
    async fn run(self, request: Result<async_graphql::Request, AppError>) {
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                self.error(Response::from_errors(vec![coded(
                    err.client_message(),
                    err.code(),
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
                }
                self.complete().await;
            }
        }
    }

    async fn done(&self, outcome: Outcome) {
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

    async fn next(&self, response: Response) -> bool {
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

    async fn error(&self, response: Response) {
        self.outbox.error(response).await;
    }

    async fn complete(&self) {
        let id = &self.outbox.id;
        self.outbox
            .post(json!({ "type": "complete", "id": id }), true)
            .await;
    }
}
