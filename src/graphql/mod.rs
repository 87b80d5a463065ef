//! The GraphQL schema: roots, types, cursors, and the mapping of errors to codes.

mod context;
mod cursor;
pub mod error;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, Schema};

pub use mutation::Mutation;
pub use query::Query;

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with its limits and extensions. Request data (the viewer, fresh loaders)
/// is added per request by the HTTP layer; the schema itself holds no per-user state.
pub fn build_schema() -> AppSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .extension(error::ErrorCodes)
        .finish()
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    build_schema().sdl()
}
