//! HTTP: routes, the GraphQL handlers, WebSocket, health checks, the layers around them,
//! and the loop that serves connections.

mod body;
mod graphql;
mod health;
mod playground;
mod server;
mod wire;
mod ws;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    routing::get,
};
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

pub use health::Readiness;
pub use server::serve;

use crate::{
    auth::Authenticator,
    config::{HttpSettings, LiveSettings},
    graphql::Pipeline,
    storage::{EventFeed, Storage},
};

/// What every handler shares: nothing per user, nothing mutable.
#[derive(Clone)]
pub struct AppState {
    /// Every GraphQL operation, whatever its transport, goes through it.
    pub pipeline: Arc<Pipeline>,
    /// The tables, for operations and readiness checks.
    pub storage: Storage,
    /// Verifies the bearer tokens of requests and WebSocket connections.
    pub auth: Arc<Authenticator>,
    /// Sizes, timeouts and CORS of the HTTP layer, and production mode.
    pub settings: Arc<HttpSettings>,
    /// Limits and timing of subscriptions and their WebSocket connections.
    pub live: Arc<LiveSettings>,
    /// WebSocket connections that may still be opened.
    pub websockets: Arc<Semaphore>,
    /// The last answer of `GET /ready`, reused for a moment.
    pub readiness: Arc<Readiness>,
    /// The instance's event feed, whose state `GET /ready` reports; `None` without
    /// subscriptions.
    pub events: Option<EventFeed>,
    /// Turns true when the server shuts down; WebSockets and subscriptions then end.
    pub shutdown: watch::Receiver<bool>,
}

/// The routes (`/graphql`, the playground and SDL, `/health`, `/ready`) with CORS, security
/// headers and tracing around them.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    // Every response says how a browser may treat it: never sniffed into another type,
    // never framed by another site, no referrer leaked. The playground sets a content
    // security policy of its own; everything else is data, from which nothing may load.
    let headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ));
    let mut routes = Router::new();
    if settings.metrics {
        crate::metrics::handle();
        routes = routes.route("/metrics", get(metrics));
    }
    routes
        .route(
            "/graphql",
            get(ws::get_or_upgrade).post(graphql::post_graphql),
        )
        .route("/graphql/schema.graphql", get(playground::schema))
        .route("/graphql/playground/{file}", get(playground::asset))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(cors(&settings.cors_allowed_origins))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(headers)
        // Every request has an id: the client's `x-request-id`, or a new UUID. It is in the
        // span of every log line the request causes, and in the response.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(axum::middleware::map_request(plain_request_id))
        .with_state(state)
}

/// A relay's own routes: `GET /health` (the process answers), `GET /ready` (both streams
/// are looked at: 200, with the number of shard leases it holds) and `GET /metrics`.
pub fn relay_router(relay: crate::storage::RelayStatus) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route(
            "/ready",
            get(move || {
                let relay = relay.clone();
                async move {
                    let (status, word) = if relay.ready() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    };
                    let body = serde_json::json!({ "status": word, "leases": relay.leases() });
                    (status, axum::Json(body))
                }
            }),
        )
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
}

/// The Prometheus scrape.
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

/// The header that carries a request's id.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Keeps a client's `x-request-id` only when it is a plain token (letters, digits, `.`,
/// `_`, `:`, `-`, at most 128): anything else would go into every log line of the
/// request as it is, so it is replaced by a fresh id.
async fn plain_request_id(
    mut request: axum::http::Request<axum::body::Body>,
) -> axum::http::Request<axum::body::Body> {
    let plain = request.headers().get(&REQUEST_ID).is_none_or(|id| {
        let id = id.as_bytes();
        (1..=128).contains(&id.len())
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    });
    if !plain {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The span of one request: its method, path and id.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        trace_id = tracing::field::Empty,
    );
    if crate::telemetry::tracing() {
        span.record(
            "otel.name",
            format!("{} {}", request.method(), request.uri().path()),
        );
        crate::telemetry::continue_trace(&span, request.headers());
    }
    span
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
            HeaderName::from_static(graphql::IDEMPOTENCY_HEADER),
            REQUEST_ID.clone(),
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
        ])
        .expose_headers([REQUEST_ID.clone()])
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
