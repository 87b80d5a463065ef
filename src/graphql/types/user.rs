use crate::graphql::Result;
use async_graphql::{Context, ID, Object, connection::Connection};

use super::{
    DateTime, Post,
    connection::{Paging, Position, Total, connection, time_range},
};
use crate::{
    domain,
    graphql::context::{loaders, viewer},
    loaders::PageRequest,
    storage::List,
};

/// A person who writes posts and comments.
pub(crate) struct User(pub domain::User);

#[Object]
impl User {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn username(&self) -> &str {
        &self.0.username
    }

    /// Only the user themself sees it; null for everyone else.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let is_self = viewer(ctx)?.id() == Some(&self.0.id);
        Ok(is_self.then_some(self.0.email.as_str()))
    }

    /// Null for users written by tools that do not record it (Da Vinci's `UserTable`).
    async fn created_at(&self) -> Option<DateTime> {
        self.0.created_at.map(DateTime)
    }

    /// The user's posts, newest first, a page at a time: forward with `first` (0 to 100;
    /// 20 when neither `first` nor `last` is given) after the cursor `after`, or backward
    /// with `last` before `before`. `createdAfter`/`createdBefore` (exclusive) keep the
    /// posts of a time range; a cursor holds only with the range it came with.
    #[allow(clippy::too_many_arguments)]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        created_after: Option<DateTime>,
        created_before: Option<DateTime>,
    ) -> Result<Connection<Position<domain::Post>, Post, Total>> {
        let parent = self.0.id.as_str();
        let range = time_range(created_after, created_before)?;
        let paging = Paging {
            first,
            after,
            last,
            before,
        };
        let window = paging.window(List::UserPosts, parent, range.clone())?;
        let page = loaders(ctx)?
            .posts_of_user(PageRequest {
                parent: self.0.id.clone(),
                window,
            })
            .await?;
        let total = match self.0.post_count {
            Some(count) if range.is_everything() => Total::Known(count),
            _ => Total::UserPosts(self.0.id.clone(), range.clone()),
        };
        Ok(connection(page, parent, &range, total, |p| Post(p.clone())))
    }
}
