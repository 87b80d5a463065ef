//! Request data a resolver needs, with a bug-shaped error (not a panic) when it is missing.

use std::{future::Future, sync::Arc};

use async_graphql::Context;

use super::subscription::EventLoaders;
use crate::{
    auth::Viewer,
    domain::{Claim, IdempotencyKey, UserId},
    error::AppError,
    loaders::Loaders,
};

/// A request's idempotency key, and the digest of what the request asked (its document,
/// operation and variables), for the mutations it runs.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

/// The idempotency claim of the mutation field being resolved, when the request carries
/// a key: the change it makes is remembered under the user's key and the field's name.
pub fn claim(ctx: &Context<'_>, user: &UserId) -> Option<Claim> {
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
pub fn loaders(ctx: &Context<'_>) -> Result<Arc<Loaders>, AppError> {
    if let Some(loaders) = ctx.data_opt::<Arc<Loaders>>() {
        return Ok(loaders.clone());
    }
    ctx.data_opt::<Arc<EventLoaders>>()
        .map(|events| events.current())
        .ok_or_else(|| missing("Loaders"))
}

pub fn viewer<'a>(ctx: &Context<'a>) -> Result<&'a Viewer, AppError> {
    ctx.data_opt::<Viewer>().ok_or_else(|| missing("Viewer"))
}

/// The value of a nullable field. On failure the error is reported with the field's path
/// and the field is null, as the GraphQL spec has it (async-graphql 7 would leave the
/// field out of the response instead, or null the whole parent).
pub async fn nullable<T>(
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
