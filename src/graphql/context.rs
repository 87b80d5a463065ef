//! Request data a resolver needs, with a bug-shaped error (not a panic) when it is missing.

use std::{future::Future, sync::Arc};

use async_graphql::{Context, Request, ServerError, Value};

use super::{error::coded, pipeline::IDEMPOTENCY_KEY, subscription::EventLoaders};
use crate::{
    auth::Viewer,
    domain::{Claim, IdempotencyKey, UserId},
    error::{AppError, ErrorCode},
    loaders::Loaders,
};

/// A request's idempotency key, and the digest of what the request asked (its document,
/// operation and variables), for the mutations it runs.
#[derive(Clone, Debug)]
pub(super) struct Idempotency {
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

/// The idempotency claim of the mutation field being resolved, when the request carries
/// a key: the change it makes is remembered under the user's key and the field's name.
pub(super) fn claim(ctx: &Context<'_>, user: &UserId) -> Option<Claim> {
    let idempotency = ctx.data_opt::<Idempotency>()?;
    Some(Claim {
        user: user.clone(),
        key: idempotency.key.clone(),
        change: ctx.item.node.response_key().node.to_string(),
        fingerprint: idempotency.fingerprint.clone(),
    })
}

fn missing(what: &str) -> AppError {
    AppError::internal(anyhow::anyhow!("{what} missing from the request data"))
}

/// The loaders of this request: its own for a query or mutation, the current event's
/// for a subscription.
pub(super) fn loaders(ctx: &Context<'_>) -> Result<Arc<Loaders>, AppError> {
    if let Some(loaders) = ctx.data_opt::<Arc<Loaders>>() {
        return Ok(loaders.clone());
    }
    ctx.data_opt::<Arc<EventLoaders>>()
        .map(|events| events.current())
        .ok_or_else(|| missing("Loaders"))
}

pub(super) fn viewer<'a>(ctx: &Context<'a>) -> Result<&'a Viewer, AppError> {
    ctx.data_opt::<Viewer>().ok_or_else(|| missing("Viewer"))
}

/// The value of a nullable field. On failure the error is reported with the field's path
/// and the field is null, as the GraphQL spec has it (async-graphql 7 would leave the
/// field out of the response instead, or null the whole parent).
pub(super) async fn nullable<T>(
    ctx: &Context<'_>,
    value: impl Future<Output = Result<Option<T>, AppError>>,
) -> Option<T> {
    match value.await {
        Ok(value) => value,
        Err(err) => {
            let error = async_graphql::Error::from(err).into_server_error(ctx.item.pos);
            ctx.add_error(ctx.set_error_path(error));
            None
        }
    }
}

impl Idempotency {
    /// A key with the digest of the request it came with.
    pub(super) fn new(key: IdempotencyKey, request: &Request) -> Self {
        Self {
            key,
            fingerprint: fingerprint(request),
        }
    }

    /// The request's idempotency key, checked, if it has one.
    pub(super) fn key_of(request: &Request) -> Result<Option<IdempotencyKey>, ServerError> {
        let invalid = |why: String| coded(why, ErrorCode::BadUserInput);
        match request.extensions.get(IDEMPOTENCY_KEY) {
            None => Ok(None),
            Some(Value::String(key)) => IdempotencyKey::parse(key)
                .map(Some)
                .map_err(|err| invalid(err.to_string())),
            Some(_) => Err(invalid(
                "`extensions.idempotencyKey` must be a string".to_owned(),
            )),
        }
    }
}

/// A digest of what a request asks: its document, the operation it names and its
/// variables (their keys in sorted order, so that a client that serialises them in another
/// order still sends the same request).
fn fingerprint(request: &Request) -> String {
    fn canonical(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, value)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(value, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let variables = request
        .variables
        .clone()
        .into_value()
        .into_json()
        .unwrap_or_default();
    let mut text = String::new();
    text.push_str(request.operation_name.as_deref().unwrap_or(""));
    text.push('\0');
    text.push_str(&request.query);
    text.push('\0');
    canonical(&variables, &mut text);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
