//! The loop that accepts connections and serves HTTP/1.1 on them.
//!
//! Written out (rather than `axum::serve`) for the limits a public server needs and axum's
//! loop does not set: a client has [`HttpSettings::header_timeout`] to send a request's
//! headers, on a new connection and between requests of a kept-alive one, after which
//! the connection is closed. Bodies have their own deadline in the handler.
//!
//! HTTP/2 is not served on this cleartext port. Load balancers (ALB, API Gateway, nginx)
//! terminate TLS and HTTP/2 and speak HTTP/1.1 to their targets; cleartext HTTP/2 (h2c)
//! would only add a second protocol to harden (many streams per connection, each able to
//! trickle a body) for clients that do not exist in front of this server.

use std::{future::Future, io, time::Duration};

use axum::{Router, body::Body, extract::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

use crate::config::HttpSettings;

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets
/// requests in flight finish, and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &HttpSettings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true);
    // Connections hold a receiver each; the sender learns when all are gone.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|request: Request<Incoming>| request.map(Body::new));
        let service = TowerToHyperService::new(service);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "a connection ended with an error");
                    }
                    return;
                }
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(stopping);
    stop.closed().await;
    Ok(())
}
