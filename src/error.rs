//! One error type for the whole server, one variant per error code of the API contract.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any
//! `Display` type into a client-facing error with its text, so a stray `?` on an SDK
//! error would send AWS details to clients. Without `Display`, the only way from an
//! `AppError` to a GraphQL error is the mapping in `graphql::error`, which logs the
//! internals and sends the client a code and a plain message.

use std::sync::Arc;

use crate::domain::InputError;

/// What a client is told when a change may or may not have been made.
pub const UNKNOWN_OUTCOME: &str = "the database did not answer in time: the change may or may \
     not have been made. Retrying with the same idempotency key is safe (the change is made \
     once); without one, check before retrying";

#[derive(Clone, Debug)]
pub enum AppError {
    /// The input is wrong; the message says how, in the client's terms.
    BadUserInput(String),
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    QueryTooComplex(String),
    /// DynamoDB is unreachable, throttling, or slower than the timeouts allow.
    /// The source is logged, never shown.
    ServiceUnavailable(Arc<anyhow::Error>),
    /// A write went out and no answer came back: it may or may not have been applied.
    /// `SERVICE_UNAVAILABLE` too, and the client is told the outcome is unknown.
    OutcomeUnknown(Arc<anyhow::Error>),
    /// A bug or an unexpected answer from a dependency. The source is logged, never shown.
    Internal(Arc<anyhow::Error>),
}

impl AppError {
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self::Internal(Arc::new(source.into()))
    }

    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        Self::ServiceUnavailable(Arc::new(source.into()))
    }

    pub fn outcome_unknown(source: impl Into<anyhow::Error>) -> Self {
        Self::OutcomeUnknown(Arc::new(source.into()))
    }

    /// Whether the change may have been made although the request failed.
    pub fn outcome_is_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }

    /// The contract's `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::QueryTooComplex(_) => "QUERY_TOO_COMPLEX",
            Self::ServiceUnavailable(_) | Self::OutcomeUnknown(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The message a client may see.
    pub fn client_message(&self) -> String {
        match self {
            Self::BadUserInput(m)
            | Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::QueryTooComplex(m) => m.clone(),
            Self::ServiceUnavailable(_) => {
                "the service is temporarily unavailable; try again shortly".to_owned()
            }
            Self::OutcomeUnknown(_) => UNKNOWN_OUTCOME.to_owned(),
            Self::Internal(_) => "internal server error".to_owned(),
        }
    }

    /// The internal cause, for the log only.
    pub fn internal_source(&self) -> Option<&anyhow::Error> {
        match self {
            Self::ServiceUnavailable(source)
            | Self::OutcomeUnknown(source)
            | Self::Internal(source) => Some(source),
            _ => None,
        }
    }
}

impl From<InputError> for AppError {
    fn from(err: InputError) -> Self {
        Self::BadUserInput(err.to_string())
    }
}
