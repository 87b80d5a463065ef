//! The GraphQL object types, one file each. Their `///` comments are the API's documentation.

mod comment;
pub(crate) mod connection;
mod datetime;
mod post;
mod user;

pub use comment::Comment;
pub use connection::{DEFAULT_FIRST, connection, page_size};
pub use datetime::DateTime;
pub use post::Post;
pub use user::User;
