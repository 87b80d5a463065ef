//! Builds the whole server from its configuration; tests drive it through the same calls.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};

use crate::{
    auth::Authenticator,
    config::{Config, QueryLimits},
    graphql::{Live, build_schema},
    http::{AppState, router},
    storage::{EventFeed, Storage},
};

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    feed: Option<EventFeed>,
    shutdown: watch::Sender<bool>,
}

impl App {
    /// Connects to DynamoDB as configured and binds the listener (port 0: a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let storage = Storage::connect(&config.dynamo).await?;
        Self::build_with_storage(&config, storage).await
    }

    /// Like [`App::build`], over a storage handle made elsewhere (tests inject faults so).
    pub async fn build_with_storage(config: &Config, storage: Storage) -> anyhow::Result<Self> {
        let limits = QueryLimits {
            introspection: config.query.introspection && !config.http.production,
            ..config.query
        };
        // Long-lived work (stream readers, subscriptions, WebSockets) watches this and
        // ends by itself when the server shuts down.
        let (shutdown, signal) = watch::channel(false);
        let feed = if config.live.enabled {
            storage.start_event_feed(signal.clone())
        } else {
            None
        };
        let live = feed.clone().map(|feed| Live {
            feed,
            shutdown: signal.clone(),
        });
        let state = AppState {
            schema: build_schema(limits, config.http.production, live),
            storage,
            auth: Arc::new(Authenticator::new(
                config.jwt_secret.as_ref(),
                config.jwks_url.clone(),
                config.token_rules.clone(),
            )),
            settings: Arc::new(config.http.clone()),
            websockets: Arc::new(Semaphore::new(config.live.max_connections)),
            max_subscriptions: config.live.max_subscriptions_per_connection,
            shutdown: signal,
        };
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            listener,
            router: router(state),
            feed,
            shutdown,
        })
    }

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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = signal.send(true);
            })
            .await
    }
}
