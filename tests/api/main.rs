//! Integration tests: the server over a real DynamoDB Local, driven over HTTP.

mod cost;
mod davinci;
mod faults;
mod helpers;
mod hostile;
mod http;
mod mutations;
mod queries;
mod schema;
mod subscriptions;
mod tokens;
mod writes;
