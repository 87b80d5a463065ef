//! The loop that accepts connections and serves HTTP/1.1 on them.
//!
//! Written out (rather than `axum::serve`) for the limits a public server needs and axum's
//! loop does not set:
//!
//! - a client has [`HttpSettings::header_timeout`] to send a request's headers, on a new
//!   connection and between the requests of a kept-alive one, after which the connection
//!   is closed (bodies have their own deadline in the handler);
//! - a client that accepts none of what it is sent for [`HttpSettings::write_timeout`] is
//!   dropped, so an unread response (or WebSocket) does not hold its memory and its
//!   connection forever;
//! - at most [`HttpSettings::max_connections`] connections are served at once; past that,
//!   new ones wait in the listen backlog until one closes;
//! - shutdown waits for requests in flight, but not forever.
//!
//! HTTP/2 is not served on this cleartext port. Load balancers (ALB, API Gateway, nginx)
//! terminate TLS and HTTP/2 and speak HTTP/1.1 to their targets; cleartext HTTP/2 (h2c)
//! would only add a second protocol to harden (many streams per connection, each able to
//! trickle a body) for clients that do not exist in front of this server.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{Semaphore, watch},
    time::Sleep,
};
use tower::ServiceExt;

use crate::config::HttpSettings;

/// How long shutdown waits for connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets
/// requests in flight finish, and returns once every connection is closed (or the grace
/// period is over).
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
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    // Connections hold a receiver each; the sender learns when all are gone.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = async {
                let slot = slots.clone().acquire_owned().await;
                (slot, listener.accept().await)
            } => accepted,
            () = &mut shutdown => break,
        };
        let (stream, slot) = match accepted {
            (Ok(slot), Ok((stream, _))) => (stream, slot),
            (_, Err(err)) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            (Err(_), _) => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|request: Request<Incoming>| request.map(Body::new));
        let service = TowerToHyperService::new(service);
        let connection = builder
            .serve_connection(
                TokioIo::new(Stalls::new(stream, settings.write_timeout)),
                service,
            )
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
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
    if tokio::time::timeout(SHUTDOWN_GRACE, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// A connection whose writes fail once the client has accepted nothing for `limit`:
/// hyper has no write timeout of its own.
struct Stalls<S> {
    stream: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> Stalls<S> {
    fn new(stream: S, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            stalled: None,
        }
    }

    /// Called when a write made no progress: fails once the stall has lasted too long.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(self.limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        poll: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalls<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.progress(poll, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.progress(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.progress(poll, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.progress(poll, cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn writes_fail_once_the_reader_stops_taking_them() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut stalls = Stalls::new(near, Duration::from_millis(100));
        // A reader that takes a little every 50 ms keeps the writes going.
        let reader = tokio::spawn(async move {
            let (mut buffer, mut read) = ([0u8; 512], 0);
            while read < 3000 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                read += far.read(&mut buffer).await.expect("reads");
            }
            far
        });
        stalls
            .write_all(&[0u8; 3000])
            .await
            .expect("slow but steady");
        let _far = reader.await.expect("joined");
        // A reader that takes nothing: the write fails after the limit.
        let started = std::time::Instant::now();
        let error = stalls.write_all(&[0u8; 8192]).await.expect_err("stalled");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
