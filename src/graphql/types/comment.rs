use async_graphql::{Context, ID, Object};

use super::{DateTime, Post, User};
use crate::{
    domain,
    graphql::context::{loaders, nullable},
};

/// A comment on a post.
pub(crate) struct Comment(pub domain::Comment);

#[Object]
impl Comment {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn content(&self) -> &str {
        &self.0.content
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// Equals `createdAt` until the first edit.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }

    /// 1 on create, +1 per edit.
    async fn version(&self) -> i64 {
        self.0.version
    }

    /// Null when the author no longer exists.
    async fn author(&self, ctx: &Context<'_>) -> Option<User> {
        nullable(ctx, async {
            Ok(loaders(ctx)?.user(&self.0.author_id).await?.map(User))
        })
        .await
    }

    /// Null when the post no longer exists.
    async fn post(&self, ctx: &Context<'_>) -> Option<Post> {
        nullable(ctx, async {
            Ok(loaders(ctx)?.post(&self.0.post_id).await?.map(Post))
        })
        .await
    }
}
