use crate::graphql::Result;
use async_graphql::{Context, ID, Object, connection::Connection};

use super::{Comment, DEFAULT_FIRST, DateTime, User, connection, page_size};
use crate::{
    domain,
    graphql::{
        context::{loaders, nullable},
        cursor,
    },
    loaders::PageRequest,
    storage::List,
};

/// A blog post.
pub(crate) struct Post(pub domain::Post);

#[Object]
impl Post {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn title(&self) -> &str {
        &self.0.title
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

    /// How many comments the post has; kept exact by transactional writes.
    async fn comment_count(&self) -> i64 {
        self.0.comment_count
    }

    /// 1 on create, +1 per edit of the post itself (new comments do not change it).
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

    /// The post's comments, oldest first. `first`: 0 to 100; `after`: a cursor of this list.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Comment>> {
        let size = page_size(first)?;
        let parent = self.0.id.as_str();
        let after_key = cursor::decode(List::PostComments, parent, after.as_deref())?;
        let page = loaders(ctx)?
            .comments_of_post(PageRequest {
                parent: self.0.id.clone(),
                size,
                after: after_key,
            })
            .await?;
        Ok(connection(&page, parent, after.is_some(), |c| {
            Comment(c.clone())
        }))
    }
}
