//! Builds the whole server from its configuration; tests drive it through the same calls.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};

use crate::{
    auth::Authenticator,
    config::{Config, HttpSettings, QueryLimits},
    graphql::{Live, Pipeline, build_schema},
    http::{AppState, Readiness, router},
    storage::{EngineSettings, EventFeed, Storage},
};

/// How long, at shutdown, WebSocket connections have to say goodbye after the HTTP
/// connections are done.
const WEBSOCKET_DRAIN: Duration = Duration::from_secs(2);

/// The whole server, its listener bound: [`App::run`] serves until shutdown.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    settings: HttpSettings,
    feed: Option<EventFeed>,
    websockets: Arc<Semaphore>,
    max_websockets: usize,
    shutdown: watch::Sender<bool>,
}

impl App {
    /// Connects to DynamoDB as configured and binds the listener (port 0: a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let storage = Storage::connect(&config.storage).await?;
        Self::build_with_storage(&config, storage).await
    }

    /// Like [`App::build`], over a storage handle made elsewhere (tests inject faults so).
    pub async fn build_with_storage(config: &Config, storage: Storage) -> anyhow::Result<Self> {
        let parts = Parts::new(config, storage);
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            listener,
            router: parts.router,
            settings: config.http.clone(),
            feed: parts.feed,
            websockets: parts.websockets,
            max_websockets: config.live.max_connections,
            shutdown: parts.shutdown,
        })
    }

    /// Serves the API as an AWS Lambda function, through the Lambda Runtime API, until
    /// the runtime stops it: the same router, each invocation one HTTP request (API
    /// Gateway HTTP or REST API events, or a function URL's). Subscriptions need a
    /// long-running server and are off.
    pub async fn serve_lambda(mut config: Config) -> anyhow::Result<()> {
        config.live.enabled = false;
        let storage = Storage::connect(&config.storage).await?;
        let parts = Parts::new(&config, storage);
        let service = tower::ServiceBuilder::new()
            .map_request(without_stage)
            .service(parts.router);
        lambda_http::run(service)
            .await
            .map_err(|err| anyhow::anyhow!("the Lambda runtime stopped: {err}"))
    }

    /// The port the listener is bound to (a free one when the configuration says 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Waits until the subscription feed reads both tables' streams (at once when
    /// subscriptions are off): events written from then on reach subscribers.
    pub async fn events_ready(&self) {
        if let Some(feed) = &self.feed {
            feed.ready().await;
        }
    }

    /// Serves until `shutdown` completes; then subscriptions complete, WebSockets close,
    /// and requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let signal = self.shutdown;
        crate::http::serve(self.listener, self.router, &self.settings, async move {
            shutdown.await;
            let _ = signal.send(true);
        })
        .await?;
        // WebSockets left the HTTP connections when they upgraded: wait for them too
        // (each gives its permit back when it closes), a little.
        let all = u32::try_from(self.max_websockets).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(WEBSOCKET_DRAIN, self.websockets.acquire_many(all)).await;
        Ok(())
    }
}

/// What a server is made of, whatever serves it: the router and what outlives requests.
struct Parts {
    router: axum::Router,
    feed: Option<EventFeed>,
    websockets: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
}

impl Parts {
    fn new(config: &Config, storage: Storage) -> Self {
        let limits = QueryLimits {
            introspection: config.query.introspection && !config.http.production,
            ..config.query
        };
        // Long-lived work (stream readers, subscriptions, WebSockets) watches this and
        // ends by itself when the server shuts down.
        let (shutdown, signal) = watch::channel(false);
        let feed = match &config.live.engine_url {
            _ if !config.live.enabled => None,
            Some(url) => Some(
                storage
                    .start_engine_feed(EngineSettings::new(url, storage.tables()), signal.clone()),
            ),
            None => storage.start_event_feed(signal.clone(), config.live.describe_interval),
        };
        let live = feed
            .clone()
            .map(|feed| Live::new(feed, storage.clone(), signal.clone()));
        let schema = build_schema(limits.introspection, live.clone());
        let pipeline = Pipeline::new(
            schema,
            limits,
            config.http.max_concurrent_requests,
            config.http.request_timeout,
            live,
        );
        let websockets = Arc::new(Semaphore::new(config.live.max_connections));
        let state = AppState {
            pipeline: Arc::new(pipeline),
            storage,
            auth: Arc::new(Authenticator::new(
                config.jwt_secret.as_ref(),
                config.jwks_url.clone(),
                config.token_rules.clone(),
            )),
            settings: Arc::new(config.http.clone()),
            live: Arc::new(config.live.clone()),
            websockets: websockets.clone(),
            readiness: Arc::new(Readiness::default()),
            events: feed.clone(),
            shutdown: signal,
        };
        Self {
            router: router(state),
            feed,
            websockets,
            shutdown,
        }
    }
}

/// A Lambda request's path as the API names it: `lambda_http` puts an API Gateway stage
/// in front (`/prod/graphql`), which the routes know nothing of.
fn without_stage(mut request: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::{RequestExt, request::RequestContext};
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|stage| stage != "$default") else {
        return request;
    };
    let uri = request.uri();
    let Some(path) = uri.path().strip_prefix(&format!("/{stage}")) else {
        return request;
    };
    if !path.starts_with('/') {
        return request;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = path_and_query.parse() {
        parts.path_and_query = Some(path_and_query);
    }
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}
