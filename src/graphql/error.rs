//! The one place where errors become what a client sees: a plain message and
//! `extensions.code`. Internal causes are logged here, with their chain, and dropped.

use std::sync::Arc;

use async_graphql::{ErrorExtensions, Response, ServerError, Value};

use crate::error::{AppError, Entity, ErrorCode, Refusal, UNKNOWN_OUTCOME};

/// A pure conversion: the client's message and code, with the error itself kept as the
/// source, for [`log`] to find once the request is answered.
impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        let unknown = err.outcome_is_unknown();
        let mut error = async_graphql::Error::new(client_message(&err)).extend_with(|_, e| {
            e.set("code", code.as_str());
            if unknown {
                // The change may have been made: a client must not assume it was not.
                e.set("outcome", "UNKNOWN");
            }
        });
        error.source = Some(Arc::new(err));
        error
    }
}

/// Logs the internal cause of an answer's error, once however many fields (or
/// subscribers) share it: a failed batch reaches every field that waited on it.
fn log(error: &ServerError) {
    let Some(err) = error
        .source
        .as_ref()
        .and_then(|source| source.downcast_ref::<AppError>())
    else {
        return;
    };
    if let Some(cause) = err.cause_to_log() {
        tracing::error!(code = err.code().as_str(), error = ?cause, "request failed");
    }
}

/// The message a client may see: internals never, refusals in the client's terms.
pub fn client_message(err: &AppError) -> String {
    match err {
        AppError::BadUserInput(m)
        | AppError::Unauthenticated(m)
        | AppError::NotFound(m)
        | AppError::QueryTooComplex(m) => m.clone(),
        AppError::Refused(refusal) => words(refusal),
        AppError::ServiceUnavailable(_) => {
            "the service is temporarily unavailable; try again shortly".to_owned()
        }
        AppError::OutcomeUnknown(_) => UNKNOWN_OUTCOME.to_owned(),
        AppError::Internal(_) => "internal server error".to_owned(),
    }
}

fn entity(entity: Entity) -> &'static str {
    match entity {
        Entity::User => "user",
        Entity::Post => "post",
        Entity::Comment => "comment",
    }
}

/// A refusal in the API's words: its mutations and their arguments.
fn words(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Missing(Entity::User, id) => {
            format!("there is no user {id:?}; create it with createUser first")
        }
        Refusal::NoSuchUser(id) => {
            format!("there is no user {id:?}: create it with createUser first")
        }
        Refusal::Missing(what, id) => format!("{} {id:?} does not exist", entity(*what)),
        Refusal::Exists(Entity::User, id) => format!("a user with id {id:?} exists already"),
        Refusal::Exists(what, id) => format!("{} {id:?} exists already", entity(*what)),
        Refusal::NotAuthor {
            entity: what,
            id,
            delete,
        } => format!(
            "only the author may {} {} {id:?}",
            if *delete { "delete" } else { "change" },
            entity(*what)
        ),
        Refusal::NotCommentOrPostAuthor(id) => {
            format!("only the comment's author or the post's author may delete comment {id:?}")
        }
        Refusal::VersionMismatch {
            entity: what,
            id,
            expected,
            current,
        } => format!(
            "{} {id:?} has changed: expectedVersion is {expected}, the current version is \
             {current}",
            entity(*what)
        ),
        Refusal::UsernameTaken(name) => format!("the username {name:?} is taken"),
        Refusal::UsernameHeld(name) => format!("the username {name:?} is held by another user"),
        Refusal::Contended(what) => format!(
            "the {} is being changed by another request; try again",
            entity(*what)
        ),
        Refusal::KeyReused => "this idempotency key was used with a different operation or \
                               different variables; use a new key for a new request"
            .to_owned(),
    }
}

/// An error refused outside any field (a bad token, say), logged and coded as a field's
/// error would be.
pub fn refusal(err: AppError) -> ServerError {
    let mut error = async_graphql::Error::from(err).into_server_error(Default::default());
    error.locations.clear();
    log(&error);
    error
}

/// An error not tied to a place in the document (so without `locations`), with its code.
pub fn coded(message: impl Into<String>, code: ErrorCode) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

/// `err` with `code`, unless it has a code already.
pub fn with_code(mut err: ServerError, code: ErrorCode) -> ServerError {
    let has_code = err
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if !has_code {
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
    }
    err
}

/// An error that reached the response without a code came from no mapping of ours:
/// the client's input was checked before execution, so it is a bug. It is logged with
/// what it said, and the client gets a masked `INTERNAL_SERVER_ERROR`.
pub(super) fn coded_response(mut response: Response) -> Response {
    for error in &mut response.errors {
        log(error);
        if error_code(error).is_none() {
            tracing::error!(message = %error.message, path = ?error.path, "an error without a code");
            error.message = "internal server error".to_owned();
            error.extensions = None;
            *error = with_code(error.clone(), ErrorCode::InternalServerError);
        }
    }
    response
}

/// The code of a response's error, if it has one (for HTTP status decisions).
pub fn error_code(err: &ServerError) -> Option<ErrorCode> {
    match err.extensions.as_ref()?.get("code")? {
        Value::String(code) => ErrorCode::parse(code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_without_a_code_is_masked_as_internal() {
        let leaked = ServerError::new("Failed to parse table blog-local-users", None);
        let coded_already = coded("the username \"a\" is taken", ErrorCode::Conflict);
        let response = coded_response(Response::from_errors(vec![leaked, coded_already]));
        assert_eq!(response.errors[0].message, "internal server error");
        assert_eq!(
            error_code(&response.errors[0]),
            Some(ErrorCode::InternalServerError)
        );
        assert_eq!(error_code(&response.errors[1]), Some(ErrorCode::Conflict));
        assert_eq!(response.errors[1].message, "the username \"a\" is taken");
    }
}
