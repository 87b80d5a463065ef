//! HTTP: routes, the GraphQL handler, health checks and the layers around them.

mod graphql;
mod health;
mod ws;

use std::sync::Arc;

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    trace::TraceLayer,
};

use crate::{auth::Authenticator, config::HttpSettings, graphql::AppSchema, storage::Storage};

/// What every handler shares: nothing per user, nothing mutable.
#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub storage: Storage,
    pub auth: Arc<Authenticator>,
    pub settings: Arc<HttpSettings>,
    /// WebSocket connections that may still be opened.
    pub websockets: Arc<Semaphore>,
    pub max_subscriptions: usize,
    pub shutdown: watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    // Past the concurrency limit, requests are refused at once with 503 rather than
    // queued: a client retrying elsewhere beats one waiting on an overloaded server.
    let overload = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            graphql::overloaded().into_response()
        }))
        .load_shed()
        .concurrency_limit(settings.max_concurrent_requests);
    Router::new()
        .route(
            "/graphql",
            get(ws::get_or_upgrade).post(graphql::post_graphql),
        )
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(overload)
        .layer(cors(&settings.cors_allowed_origins))
        .layer(TraceLayer::new_for_http())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(state)
}

/// CORS for the configured origins; none configured, no cross-origin access.
fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            HeaderName::from_static("x-dynamodb-cost"),
        ])
        .max_age(std::time::Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        return layer.allow_origin(Any);
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    layer.allow_origin(AllowOrigin::list(origins))
}
