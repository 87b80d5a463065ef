use crate::graphql::Result;
use async_graphql::{Context, ID, Object, connection::Connection};

use super::{
    Comment, DateTime, User,
    connection::{Paging, Position, Total, connection, time_range},
};
use crate::{
    domain,
    graphql::context::{loaders, nullable},
    loaders::{CountRequest, PageRequest},
    storage::{List, TimeRange},
};

/// A blog post.
pub(crate) struct Post(pub domain::Post);

#[Object]
impl Post {
    pub(crate) async fn id(&self) -> ID {
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
    async fn comment_count(&self, ctx: &Context<'_>) -> Result<i64> {
        match self.0.comment_count {
            Some(count) => Ok(count),
            // Written by another program without a counter: counted (and the counter
            // made) once.
            None => Ok(loaders(ctx)?
                .count_comments_of_post(CountRequest {
                    parent: self.0.id.clone(),
                    range: TimeRange::default(),
                })
                .await?),
        }
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

    /// The post's comments, oldest first, a page at a time: forward with `first` (0 to
    /// 100; 20 when neither `first` nor `last` is given) after the cursor `after`, or
    /// backward with `last` before `before`. `createdAfter`/`createdBefore` (exclusive)
    /// keep the comments of a time range; a cursor holds only with the range it came with.
    #[allow(clippy::too_many_arguments)]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        created_after: Option<DateTime>,
        created_before: Option<DateTime>,
    ) -> Result<Connection<Position<domain::Comment>, Comment, Total>> {
        let parent = self.0.id.as_str();
        let range = time_range(created_after, created_before)?;
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        let window = paging.window(List::PostComments, parent, range.clone())?;
        let page = loaders(ctx)?
            .comments_of_post(PageRequest {
                parent: self.0.id.clone(),
                window,
            })
            .await?;
        let total = match self.0.comment_count {
            Some(count) if range.is_everything() => Total::Known(count),
            _ => Total::PostComments(self.0.id.clone(), range.clone()),
        };
        Ok(connection(page, parent, &range, total, |c| {
            Comment(c.clone())
        }))
    }
}
