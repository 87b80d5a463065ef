use async_graphql::{ID, Interface};

use super::{Comment, Post, User};
use crate::storage::Found;

/// An object with an id that `node(id:)` finds again (the Relay server specification's
/// object identification). Ids are the tables' own keys, unchanged.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub(crate) enum Node {
    /// A user.
    User(User),
    /// A post.
    Post(Post),
    /// A comment.
    Comment(Comment),
}

impl From<Found> for Node {
    fn from(found: Found) -> Self {
        match found {
            Found::User(user) => Self::User(User(user)),
            Found::Post(post) => Self::Post(Post(post)),
            Found::Comment(comment) => Self::Comment(Comment(comment)),
        }
    }
}
