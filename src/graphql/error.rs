//! The one place where errors become what a client sees: a plain message and
//! `extensions.code`. Internal causes are logged here, with their chain, and dropped.

use std::sync::Arc;

use futures::{StreamExt, stream::BoxStream};

use async_graphql::{
    ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
        NextValidation,
    },
    parser::types::ExecutableDocument,
};

use crate::error::{AppError, ErrorCode};

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let Some(source) = err.internal_source() {
            tracing::error!(code = err.code().as_str(), error = ?source, "request failed");
        }
        let code = err.code();
        let unknown = err.outcome_is_unknown();
        async_graphql::Error::new(err.client_message()).extend_with(|_, e| {
            e.set("code", code.as_str());
            if unknown {
                // The change may have been made: a client must not assume it was not.
                e.set("outcome", "UNKNOWN");
            }
        })
    }
}

/// An error refused outside any field (a bad token, say), logged and coded as a field's
/// error would be.
pub fn refusal(err: AppError) -> ServerError {
    let mut error = async_graphql::Error::from(err).into_server_error(Default::default());
    error.locations.clear();
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

/// What is left without a code failed while coercing a client's values (a variable
/// that does not fit its argument, say): the client's input is at fault.
fn coded_response(mut response: Response) -> Response {
    response.errors = response
        .errors
        .into_iter()
        .map(|e| with_code(e, ErrorCode::BadUserInput))
        .collect();
    response
}

/// Gives the errors that async-graphql raises by itself the contract's codes.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        coded_response(response)
    }

    /// The same for every event of a subscription.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(coded_response).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, ErrorCode::GraphqlParseFailed))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| with_code(e, ErrorCode::GraphqlValidationFailed))
                .collect()
        })
    }
}

/// The code of a response's error, if it has one (for HTTP status decisions).
pub fn error_code(err: &ServerError) -> Option<ErrorCode> {
    match err.extensions.as_ref()?.get("code")? {
        Value::String(code) => ErrorCode::parse(code),
        _ => None,
    }
}
