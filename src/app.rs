//! Builds the whole server from its configuration; tests drive it through the same calls.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    auth::Authenticator,
    config::{Config, QueryLimits},
    graphql::build_schema,
    http::{AppState, router},
    storage::Storage,
};

pub struct App {
    listener: TcpListener,
    router: axum::Router,
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
        let state = AppState {
            schema: build_schema(limits, config.http.production),
            storage,
            auth: Arc::new(Authenticator::new(
                config.jwt_secret.as_ref(),
                config.jwks_url.clone(),
                config.token_rules.clone(),
            )),
            settings: Arc::new(config.http.clone()),
        };
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            listener,
            router: router(state),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
