//! The GraphQL schema: roots, types, cursors, and the mapping of errors to codes.

mod context;
mod cursor;
mod documents;
pub mod error;
pub mod limits;
mod mutation;
mod nesting;
mod order;
pub mod pipeline;
mod query;
pub mod subscription;
mod types;
mod variables;

use async_graphql::Schema;

pub use mutation::Mutation;
pub use pipeline::{Caller, Outcome, Pipeline, Started, Transport};
pub use query::Query;
pub use subscription::{Live, Subscription};

/// The API's schema: its query, mutation and subscription roots.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema. The limits, the order of response fields and the errors' codes are the
/// pipeline's (every operation goes through it); request data (the viewer, loaders) is
/// added per operation; the schema itself holds no per-user state.
pub fn build_schema(introspection: bool, live: Option<Live>) -> AppSchema {
    let mut builder = Schema::build(Query, Mutation, Subscription)
        // The pipeline refuses deeper documents first; this keeps async-graphql's own
        // walk of a document bounded the same way.
        .limit_recursive_depth(limits::RECURSION_LIMIT);
    if let Some(live) = live {
        builder = builder.data(live);
    }
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    build_schema(true, None).sdl()
}

/// What resolvers return: their errors are the server's own, which
/// `graphql::error` turns into the client's words and codes.
pub(crate) type Result<T, E = crate::error::AppError> = std::result::Result<T, E>;
