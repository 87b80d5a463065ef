//! Reading a request's body: within a deadline and a size limit, and, past the limit,
//! through to its end, so that the client reads the answer.

use axum::{
    body::Body,
    http::{HeaderValue, header},
};
use http_body_util::BodyExt;

/// How much of a body over the limit is still read (and dropped) so that the client,
/// which may still be sending it, reads the `413` rather than a reset connection: closing
/// a socket with unread data makes the kernel reset it, and a client busy writing its
/// body sees that reset (`EPIPE`) before the answer. Larger bodies are answered at once.
pub(super) const DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// What came of reading a request body.
pub(super) enum Received {
    Read(Vec<u8>),
    /// Over the limit; `drained` when the rest of it was read (and dropped) too.
    TooLarge {
        drained: bool,
    },
    Failed,
    TimedOut,
}

/// Reads a body of at most `limit` bytes by `deadline`. A longer one is read on, up to
/// [`DRAIN_BYTES`] and by the same deadline, and dropped.
pub(super) async fn read_body(
    body: Body,
    limit: usize,
    deadline: tokio::time::Instant,
) -> Received {
    let mut body = std::pin::pin!(body);
    let mut kept = Vec::new();
    let mut seen = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.as_mut().frame()).await {
            Err(_) if seen > limit => return Received::TooLarge { drained: false },
            Err(_) => return Received::TimedOut,
            Ok(None) if seen > limit => return Received::TooLarge { drained: true },
            Ok(None) => return Received::Read(kept),
            Ok(Some(Err(err))) => {
                tracing::debug!(error = %err, "reading a request body failed");
                return if seen > limit {
                    Received::TooLarge { drained: false }
                } else {
                    Received::Failed
                };
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > DRAIN_BYTES {
            return Received::TooLarge { drained: false };
        } else {
            kept = Vec::new();
        }
    }
}

/// A response after which the connection ends.
pub(super) fn closing(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
