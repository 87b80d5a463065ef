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

/// The contract's error codes (`extensions.code`), and what each means on each transport:
/// the one place a failure's HTTP status and WebSocket close code are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    GraphqlParseFailed,
    GraphqlValidationFailed,
    BadUserInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    QueryTooComplex,
    ServiceUnavailable,
    InternalServerError,
}

impl ErrorCode {
    const ALL: [Self; 10] = [
        Self::GraphqlParseFailed,
        Self::GraphqlValidationFailed,
        Self::BadUserInput,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::QueryTooComplex,
        Self::ServiceUnavailable,
        Self::InternalServerError,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == code)
    }

    /// The HTTP status of a request refused with this error before it ran.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::GraphqlParseFailed
            | Self::GraphqlValidationFailed
            | Self::BadUserInput
            | Self::QueryTooComplex => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::ServiceUnavailable => 503,
            Self::InternalServerError => 500,
        }
    }

    /// The close code of a WebSocket connection refused with this error: `4403` says the
    /// credentials are no good, so a client must not be told it when they were not checked.
    pub const fn close_code(self) -> u16 {
        match self {
            Self::Unauthenticated | Self::Forbidden => 4403,
            // RFC 6455's "try again later": graphql-ws clients reconnect after it.
            Self::ServiceUnavailable => 1013,
            Self::InternalServerError => 1011,
            _ => 4400,
        }
    }
}

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
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadUserInput(_) => ErrorCode::BadUserInput,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::QueryTooComplex(_) => ErrorCode::QueryTooComplex,
            Self::ServiceUnavailable(_) | Self::OutcomeUnknown(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalServerError,
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
