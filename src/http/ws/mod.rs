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
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    extract::{
        FromRequestParts, RawQuery, Request, State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    http::{StatusCode, header},
    response::IntoResponse,
};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinSet,
    time::{Instant, MissedTickBehavior},
};

use super::{AppState, graphql, wire};
use crate::auth::Viewer;

mod connection;
mod operation;

use self::{
    connection::Connection,
    operation::{Operation, Outbox, Outgoing, Running},
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
pub(super) async fn get_or_upgrade(
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

async fn serve(
    socket: WebSocket,
    protocol: Protocol,
    state: AppState,
    _permit: OwnedSemaphorePermit,
) {
    let _open = crate::metrics::websocket();
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
