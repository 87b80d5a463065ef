//! The GraphQL object types, one file each. Their `///` comments are the API's documentation.

mod comment;
pub(crate) mod connection;
mod datetime;
mod node;
mod post;
mod user;

pub(super) use comment::Comment;
pub(super) use datetime::DateTime;
pub(super) use node::Node;
pub(super) use post::Post;
pub(super) use user::User;
