use super::Result;
use async_graphql::{Context, ID, Object, connection::Connection};

use super::{
    context::{loaders, nullable, viewer},
    cursor,
    types::{Comment, DEFAULT_FIRST, Post, User, connection, page_size},
};
use crate::{
    domain::{CommentId, PostId, UserId},
    storage::List,
};

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

    /// All users, in no promised order. `first`: 0 to 100; `after`: a cursor of this list.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, User>> {
        let size = page_size(first)?;
        let after_key = cursor::decode(List::Users, "", after.as_deref())?;
        let page = loaders(ctx)?.users(size, after_key.as_ref()).await?;
        Ok(connection(&page, "", after.is_some(), |u| User(u.clone())))
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
