//! HTTP: routes, the GraphQL handler, health checks and the layers around them.

mod graphql;
mod health;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use tower_http::trace::TraceLayer;

use crate::{auth::Authenticator, graphql::AppSchema, storage::Storage};

/// The largest request body accepted; larger ones get `413`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares: nothing per user, nothing mutable.
#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub storage: Storage,
    pub auth: Arc<Authenticator>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/graphql",
            get(graphql::get_graphql).post(graphql::post_graphql),
        )
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
