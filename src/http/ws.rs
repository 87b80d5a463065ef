//! Subscriptions over WebSocket on `/graphql`: `graphql-transport-ws`, and the legacy
//! `graphql-ws` (subscriptions-transport-ws). The token rides in `connection_init`'s
//! payload as `{"Authorization": "Bearer ..."}`; a bad one closes the connection with
//! 4403 (Forbidden), as the protocol has it.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_graphql::{
    Data,
    http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
use axum::{
    extract::{
        FromRequestParts, RawQuery, Request, State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::{AppState, graphql};
use crate::{graphql::SubscriptionSlots, loaders::Loaders};

/// How long, at shutdown, the subscriptions' `complete` messages have to go out before
/// the connection closes.
const DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL (or GraphiQL).
pub async fn get_or_upgrade(State(state): State<AppState>, request: Request) -> Response {
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
    // The first subprotocol offered that we speak.
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        });
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
    ws.protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(socket, protocol, state, permit))
}

async fn serve(
    socket: WebSocket,
    protocol: WebSocketProtocols,
    state: AppState,
    _permit: OwnedSemaphorePermit,
) {
    let (mut sink, source) = socket.split();
    let input = source
        .take_while(|message| std::future::ready(message.is_ok()))
        .filter_map(|message| {
            std::future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });

    let refused = Arc::new(AtomicBool::new(false));
    let on_init = {
        let refused = refused.clone();
        let auth = state.auth.clone();
        let storage = state.storage.clone();
        let max = state.max_subscriptions;
        move |payload: serde_json::Value| async move {
            let authorization = payload
                .get("Authorization")
                .or_else(|| payload.get("authorization"))
                .and_then(|v| v.as_str());
            match auth.viewer(authorization).await {
                Ok(viewer) => {
                    let mut data = Data::default();
                    data.insert(viewer);
                    data.insert(Loaders::without_cache(storage));
                    data.insert(SubscriptionSlots::new(max));
                    Ok(data)
                }
                Err(err) => {
                    refused.store(true, Ordering::SeqCst);
                    Err(async_graphql::Error::new(err.client_message()))
                }
            }
        }
    };
    let messages = GraphQLWebSocket::new(state.schema.clone(), input, protocol)
        .on_connection_init(on_init)
        .map(move |message| match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => {
                // async-graphql closes a refused connection_init with 1002; the protocol's
                // code for it is 4403.
                let code = if code == 1002 && refused.load(Ordering::SeqCst) {
                    4403
                } else {
                    code
                };
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }))
            }
        });
    futures::pin_mut!(messages);

    let mut shutdown = state.shutdown.clone();
    match forward(&mut messages, &mut sink, stopped(&mut shutdown)).await {
        Forwarded::SinkGone => {}
        Forwarded::Ended => {
            let _ = sink.close().await;
        }
        Forwarded::Interrupted => {
            // The subscriptions end by themselves on shutdown; let their `complete`
            // messages out, then say goodbye properly.
            if forward(&mut messages, &mut sink, tokio::time::sleep(DRAIN)).await
                != Forwarded::SinkGone
            {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: "the server is shutting down".into(),
                    })))
                    .await;
            }
        }
    }
}

#[derive(PartialEq)]
enum Forwarded {
    /// The protocol stream ended (the client closed, or the protocol closed it).
    Ended,
    /// The client went away.
    SinkGone,
    /// `until` completed first.
    Interrupted,
}

/// Sends the protocol's messages to the client until they end, the client goes away,
/// or `until` completes.
async fn forward(
    messages: &mut (impl futures::Stream<Item = Message> + Unpin),
    sink: &mut (impl futures::Sink<Message> + Unpin),
    until: impl std::future::Future<Output = ()>,
) -> Forwarded {
    tokio::pin!(until);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        return Forwarded::SinkGone;
                    }
                }
                None => return Forwarded::Ended,
            },
            () = &mut until => return Forwarded::Interrupted,
        }
    }
}

/// Completes when the server starts shutting down (or the signal's owner is gone).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
