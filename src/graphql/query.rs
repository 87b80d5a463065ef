use super::Result;
use async_graphql::{Context, ID, Object, connection::Connection};

use super::{
    context::{loaders, nullable, viewer},
    types::{
        Comment, Node, Post, User,
        connection::{Paging, Position, Total, connection},
    },
};
use crate::{
    domain::{self, AnyId, CommentId, PostId, UserId},
    error::AppError,
    storage::{List, TimeRange},
};

/// The most ids `nodes(ids:)` looks up in one call.
const MAX_NODES: usize = 100;

/// The query root: users, posts and comments by id, the list of users, and the viewer.
pub struct Query;

#[Object]
impl Query {
    /// A user by id; null when there is none.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Option<User> {
        nullable(ctx, async {
            let id = UserId::parse(id.0)?;
            Ok(loaders(ctx)?.user(&id).await?.map(User))
        })
        .await
    }

    /// All users, in no promised order (the table's), a page at a time: forward with
    /// `first` (0 to 100; 20 when neither `first` nor `last` is given) after the cursor
    /// `after`, or backward with `last` before `before`. Paging backward reads the table
    /// from its start up to the page, so it costs more the further the page lies.
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<Position<domain::User>, User, Total>> {
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        let range = TimeRange::default();
        let window = paging.window(List::Users, "", range.clone())?;
        let page = std::sync::Arc::new(loaders(ctx)?.users(&window).await?);
        Ok(connection(page, "", &range, Total::Users, |u| {
            User(u.clone())
        }))
    }

    /// A post by id; null when there is none.
    async fn post(&self, ctx: &Context<'_>, id: ID) -> Option<Post> {
        nullable(ctx, async {
            let id = PostId::parse(id.0)?;
            Ok(loaders(ctx)?.post(&id).await?.map(Post))
        })
        .await
    }

    /// A comment by id; null when there is none.
    async fn comment(&self, ctx: &Context<'_>, id: ID) -> Option<Comment> {
        nullable(ctx, async {
            let id = CommentId::parse(id.0)?;
            Ok(loaders(ctx)?.comment(&id).await?.map(Comment))
        })
        .await
    }

    /// The user, post or comment with this id; null when there is none. An id that two
    /// tables hold names the first of user, post and comment.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Option<Node> {
        nullable(ctx, async {
            let id = AnyId::parse(id.0)?.into_string();
            let mut found = loaders(ctx)?.nodes(&[id]).await?;
            Ok(found.pop().flatten().map(Node::from))
        })
        .await
    }

    /// The users, posts and comments with these ids (at most 100), in order: null for an
    /// id there is none for.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(AppError::BadUserInput(format!(
                "`ids` holds {} ids; at most {MAX_NODES} are looked up at once",
                ids.len()
            )));
        }
        let ids = ids
            .into_iter()
            .map(|id| AnyId::parse(id.0).map(AnyId::into_string))
            .collect::<Result<Vec<_>, _>>()
            .map_err(AppError::from)?;
        let found = loaders(ctx)?.nodes(&ids).await?;
        Ok(found.into_iter().map(|node| node.map(Node::from)).collect())
    }

    /// The authenticated user; null when anonymous or not created yet.
    async fn viewer(&self, ctx: &Context<'_>) -> Option<User> {
        nullable(ctx, async {
            let Some(id) = viewer(ctx)?.id() else {
                return Ok(None);
            };
            Ok(loaders(ctx)?.user(id).await?.map(User))
        })
        .await
    }
}
