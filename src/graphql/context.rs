//! Request data a resolver needs, with a bug-shaped error (not a panic) when it is missing.

use async_graphql::Context;

use crate::{auth::Viewer, error::AppError, loaders::Loaders};

fn missing(what: &str) -> AppError {
    AppError::internal(anyhow::anyhow!("{what} missing from the request data"))
}

pub fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders, AppError> {
    ctx.data_opt::<Loaders>().ok_or_else(|| missing("Loaders"))
}

pub fn viewer<'a>(ctx: &Context<'a>) -> Result<&'a Viewer, AppError> {
    ctx.data_opt::<Viewer>().ok_or_else(|| missing("Viewer"))
}
