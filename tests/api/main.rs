//! Integration tests: the server over a real DynamoDB Local, driven over HTTP.

mod claims;
mod clients;
mod concurrency;
mod cost;
mod davinci;
mod exactly_once;
mod faults;
mod frontend;
mod hardening;
mod helpers;
mod hostile;
mod http;
mod idempotency;
mod live_events;
mod mutations;
mod properties;
mod proxy;
mod queries;
mod schema;
mod subscriptions;
mod tokens;
mod tools;
mod websockets;
mod writes;
mod ws_client;
mod ws_protocol;
