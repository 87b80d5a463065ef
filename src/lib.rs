//! A GraphQL API server over a blog's DynamoDB tables, laid out as Da Vinci lays them out.

/// Builds the server from its configuration: storage, schema, router, listener.
pub mod app;
/// Bearer tokens: verifying them into a viewer, and minting development tokens.
pub mod auth;
/// The command line: flags with environment fallbacks, and the settings they make.
pub mod cli;
/// The server's settings, as plain data.
pub mod config;
/// Users, posts, comments, their ids, and client inputs checked before any I/O.
pub mod domain;
/// The contract's error codes and the server's one error type.
pub mod error;
/// The GraphQL schema: roots, types, cursors, error codes.
pub mod graphql;
/// HTTP routes, the GraphQL handler, health checks, layers.
pub mod http;
/// Per-request DataLoaders over the storage.
pub mod loaders;
/// Prometheus metrics: what the server did, rendered on `GET /metrics`.
pub mod metrics;
/// Demo data for a local server.
pub mod seed;
/// DynamoDB: tables, items, batches, pages, transactions.
pub mod storage;
/// Logs.
pub mod telemetry;
