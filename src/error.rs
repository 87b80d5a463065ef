//! The contract's error codes, each with its HTTP status and close code, and the one
//! error type of the whole server, which says what went wrong (`graphql::error` words it).
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any
//! `Display` type into a client-facing error with its text, so a stray `?` on an SDK
//! error would send AWS details to clients. Without `Display`, the only way from an
//! `AppError` to a GraphQL error is the mapping in `graphql::error`, which logs the
//! internals and sends the client a code and a plain message.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::domain::InputError;

/// What a client is told when a change may or may not have been made.
pub const UNKNOWN_OUTCOME: &str = "the database did not answer in time: the change may or may \
     not have been made. Retrying with the same idempotency key is safe (the change is made \
     once); without one, check before retrying";

/// The contract's error codes (`extensions.code`), and what each means on each transport:
/// the one place a failure's HTTP status and WebSocket close code are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The document is not valid GraphQL syntax.
    GraphqlParseFailed,
    /// The document parses but is not valid against the schema (an unknown field, a
    /// repeated directive, an unused fragment).
    GraphqlValidationFailed,
    /// An argument, a variable or the request itself is wrong; the message says how.
    BadUserInput,
    /// The operation needs a bearer token and has none, or the token given is not valid.
    Unauthenticated,
    /// The viewer may not make this change, such as editing someone else's post.
    Forbidden,
    /// A mutation names a user, post or comment that does not exist.
    NotFound,
    /// The change clashes with the data as it is: a taken username, an existing user, a
    /// stale `expectedVersion`.
    Conflict,
    /// The document is over a limit: size, depth, fields, directives, operations or cost.
    QueryTooComplex,
    /// The server is busy, or DynamoDB is unreachable, throttling or slow; retry after a
    /// moment.
    ServiceUnavailable,
    /// A bug, or an unexpected answer from a dependency.
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

    /// The code as `extensions.code` spells it.
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

    /// The code an `extensions.code` string names, if it is one of the contract's.
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
            // graphql-transport-ws's own code for a server's failure.
            Self::InternalServerError => 4500,
            Self::GraphqlParseFailed
            | Self::GraphqlValidationFailed
            | Self::BadUserInput
            | Self::NotFound
            | Self::Conflict
            | Self::QueryTooComplex => 4400,
        }
    }
}

/// The kinds of things a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// A user.
    User,
    /// A post.
    Post,
    /// A comment.
    Comment,
}

/// Why storage refused a change, as an outcome rather than a sentence: the GraphQL layer
/// words it for clients (`graphql::error`), and each has its code here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The item does not exist.
    Missing(Entity, String),
    /// An item with this id exists already.
    Exists(Entity, String),
    /// The acting user has no user item.
    NoSuchUser(String),
    /// Only the item's author may make this change (`delete`: a deletion).
    NotAuthor {
        /// What kind of item.
        entity: Entity,
        /// Its id.
        id: String,
        /// Whether the change was a deletion.
        delete: bool,
    },
    /// Only the comment's author or its post's author may delete it.
    NotCommentOrPostAuthor(String),
    /// The item is at another version than the one the change expected.
    VersionMismatch {
        /// What kind of item.
        entity: Entity,
        /// Its id.
        id: String,
        /// The version the change expected.
        expected: i64,
        /// The version the item is at.
        current: i64,
    },
    /// The username belongs to another user.
    UsernameTaken(String),
    /// The user's current username is held by another user (a rename raced with it).
    UsernameHeld(String),
    /// Other requests kept changing the item; the client may try again.
    Contended(Entity),
    /// The idempotency key was used for another request.
    KeyReused,
}

impl Refusal {
    /// The contract's code for this refusal.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Missing(..) => ErrorCode::NotFound,
            Self::NoSuchUser(_) | Self::NotAuthor { .. } | Self::NotCommentOrPostAuthor(_) => {
                ErrorCode::Forbidden
            }
            Self::Exists(..)
            | Self::VersionMismatch { .. }
            | Self::UsernameTaken(_)
            | Self::UsernameHeld(_)
            | Self::Contended(_) => ErrorCode::Conflict,
            Self::KeyReused => ErrorCode::BadUserInput,
        }
    }
}

/// The internal cause of an error, and whether it has been logged: clones of one error
/// share it.
#[derive(Debug)]
pub struct Cause {
    error: anyhow::Error,
    logged: AtomicBool,
}

impl Cause {
    fn new(error: anyhow::Error) -> Self {
        Self {
            error,
            logged: AtomicBool::new(false),
        }
    }
}

/// Why an operation failed: its contract code, what the client is told, and the cause that
/// only the log sees.
#[derive(Clone, Debug)]
pub enum AppError {
    /// The input is wrong; the message says how, in the client's terms.
    BadUserInput(String),
    /// Storage refused a change; the GraphQL layer says why in the client's terms.
    Refused(Refusal),
    /// No bearer token where one is needed, or a token that is not valid; the message says
    /// what is wrong.
    Unauthenticated(String),
    /// The user, post or comment named does not exist.
    NotFound(String),
    /// The document is over a limit; the message gives the figure and the limit.
    QueryTooComplex(String),
    /// DynamoDB is unreachable, throttling, or slower than the timeouts allow.
    /// The source is logged, never shown.
    ServiceUnavailable(Arc<Cause>),
    /// A write went out and no answer came back: it may or may not have been applied.
    /// `SERVICE_UNAVAILABLE` too, and the client is told the outcome is unknown.
    OutcomeUnknown(Arc<Cause>),
    /// A bug or an unexpected answer from a dependency. The source is logged, never shown.
    Internal(Arc<Cause>),
}

impl AppError {
    /// An internal error with its cause, which is logged and never shown.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self::Internal(Arc::new(Cause::new(source.into())))
    }

    /// DynamoDB is unreachable, throttling or too slow; the cause is logged, never shown.
    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        Self::ServiceUnavailable(Arc::new(Cause::new(source.into())))
    }

    /// A write went out and no answer came back; the cause is logged, never shown.
    pub fn outcome_unknown(source: impl Into<anyhow::Error>) -> Self {
        Self::OutcomeUnknown(Arc::new(Cause::new(source.into())))
    }

    /// Whether trying again later may succeed: DynamoDB was unavailable, throttled, too
    /// slow, or gave no answer.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::ServiceUnavailable(_) | Self::OutcomeUnknown(_))
    }

    /// Whether the change may have been made although the request failed.
    pub fn outcome_is_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }

    /// The contract's `extensions.code`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadUserInput(_) => ErrorCode::BadUserInput,
            Self::Refused(refusal) => refusal.code(),
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::QueryTooComplex(_) => ErrorCode::QueryTooComplex,
            Self::ServiceUnavailable(_) | Self::OutcomeUnknown(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// The internal cause, for the log only.
    pub fn internal_source(&self) -> Option<&anyhow::Error> {
        self.cause().map(|cause| &cause.error)
    }

    fn cause(&self) -> Option<&Cause> {
        match self {
            Self::ServiceUnavailable(cause)
            | Self::OutcomeUnknown(cause)
            | Self::Internal(cause) => Some(cause),
            _ => None,
        }
    }

    /// The internal cause, the first time it is asked for: an error that many fields share
    /// (a failed batch every field of the batch waited on) is logged once.
    pub fn cause_to_log(&self) -> Option<&anyhow::Error> {
        self.cause()
            .filter(|cause| !cause.logged.swap(true, Ordering::Relaxed))
            .map(|cause| &cause.error)
    }
}

impl From<InputError> for AppError {
    fn from(err: InputError) -> Self {
        Self::BadUserInput(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_shared_by_many_fields_is_logged_once() {
        let failed = AppError::unavailable(anyhow::anyhow!("BatchGetItem timed out"));
        let waiting = [failed.clone(), failed.clone(), failed];
        let logged = waiting
            .iter()
            .filter(|err| err.cause_to_log().is_some())
            .count();
        assert_eq!(logged, 1);
        // Each error is its own, though: another failure is logged too.
        let other = AppError::internal(anyhow::anyhow!("a bug"));
        assert!(other.cause_to_log().is_some());
        assert!(AppError::BadUserInput("no".into()).cause_to_log().is_none());
    }

    #[test]
    fn codes_parse_back_and_choose_statuses_and_close_codes() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::Unauthenticated.http_status(), 401);
        assert_eq!(ErrorCode::ServiceUnavailable.http_status(), 503);
        assert_eq!(ErrorCode::Unauthenticated.close_code(), 4403);
        assert_ne!(ErrorCode::ServiceUnavailable.close_code(), 4403);
    }
}
