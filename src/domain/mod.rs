//! Plain types of the blog: entities, their ids, and inputs parsed at the edge.
//!
//! Nothing here knows DynamoDB or GraphQL. A value of a type from this module has
//! already been checked, so the layers above and below can rely on it.

mod entities;
mod events;
mod idempotency;
mod ids;
mod inputs;

pub use entities::{Comment, NewComment, NewPost, NewUser, Post, User, now};
pub use events::Event;
pub use idempotency::{Claim, IdempotencyKey};
pub use ids::{AnyId, CommentId, PostId, UserId};
pub use inputs::{CommentContent, Email, InputError, PageSize, PostContent, Title, Username};
