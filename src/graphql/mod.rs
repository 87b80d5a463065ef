//! The GraphQL schema: roots, types, cursors, and the mapping of errors to codes.

mod context;
mod cursor;
pub mod error;
pub mod limits;
mod mutation;
mod order;
mod query;
pub mod subscription;
mod types;

use async_graphql::Schema;

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::{Live, Subscription, SubscriptionSlots};

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema with its limits and extensions. Request data (the viewer, fresh loaders)
/// is added per request by the HTTP layer; the schema itself holds no per-user state.
pub fn build_schema(
    limits: limits::QueryLimits,
    production: bool,
    live: Option<Live>,
) -> AppSchema {
    let mut builder = Schema::build(Query, Mutation, Subscription)
        .extension(error::ErrorCodes)
        .extension(limits::Limits(limits))
        .extension(order::FieldOrder)
        // Bounds the parser's recursion on nested lists and objects, which the
        // depth limit (fields only) does not see.
        .limit_recursive_depth(limits::RECURSION_LIMIT);
    if let Some(live) = live {
        builder = builder.data(live);
    }
    if production {
        builder.disable_introspection().finish()
    } else {
        builder.finish()
    }
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    build_schema(limits::QueryLimits::default(), false, None).sdl()
}
