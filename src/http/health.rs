use std::time::{Duration, Instant};

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::AppState;
use crate::storage::Storage;

/// Liveness: the process answers.
pub(super) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: DynamoDB answers and the tables are there. In the scale-out mode it also
/// says whether the instance is subscribed to the event engine (`events`: `connected`
/// or `reconnecting`), and whether a relay was heard in the last seconds (`relays`:
/// `active` or `silent`: without one, no event comes); queries and mutations work either
/// way, so neither makes it unready (a blip of the engine would take the whole fleet out
/// of service).
pub(super) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (status, mut body) = if state.readiness.check(&state.storage).await {
        (StatusCode::OK, json!({ "status": "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable" }),
        )
    };
    if let Some(feed) = state.events.as_ref().filter(|feed| feed.from_engine()) {
        body["events"] = json!(if feed.connected() {
            "connected"
        } else {
            "reconnecting"
        });
        body["relays"] = json!(if feed.relays_active() == Some(true) {
            "active"
        } else {
            "silent"
        });
    }
    (status, Json(body))
}

/// How long a readiness answer is reused. Load balancers ask every few seconds; anyone
/// may ask as often as they like, and DynamoDB still sees one `DescribeTable` per period.
const READINESS_TTL: Duration = Duration::from_secs(2);
/// The longest a readiness check may take.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// The last readiness answer. Callers that come while a check runs wait for it rather
/// than start their own (the lock is held across the check on purpose).
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    async fn check(&self, storage: &Storage) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = *last
            && at.elapsed() < READINESS_TTL
        {
            return ready;
        }
        // Bounded, as callers wait for it: a hung DynamoDB is simply not ready.
        let ready = match tokio::time::timeout(PING_TIMEOUT, storage.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                if let Some(source) = err.internal_source() {
                    tracing::warn!(error = ?source, "readiness check failed");
                }
                false
            }
            Err(_) => {
                tracing::warn!(timeout = ?PING_TIMEOUT, "readiness check timed out");
                false
            }
        };
        *last = Some((Instant::now(), ready));
        ready
    }
}
