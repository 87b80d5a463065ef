use crate::graphql::Result;
use async_graphql::{Context, ID, Object, connection::Connection};

use super::{DEFAULT_FIRST, DateTime, Post, connection, page_size};
use crate::{
    domain,
    graphql::{
        context::{loaders, viewer},
        cursor,
    },
    loaders::PageRequest,
    storage::List,
};

/// A person who writes posts and comments.
pub(crate) struct User(pub domain::User);

#[Object]
impl User {
    async fn id(&self) -> ID {
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

    /// The user's posts, newest first. `first`: 0 to 100; `after`: a cursor of this list.
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_FIRST")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Post>> {
        let size = page_size(first)?;
        let parent = self.0.id.as_str();
        let after_key = cursor::decode(List::UserPosts, parent, after.as_deref())?;
        let page = loaders(ctx)?
            .posts_of_user(PageRequest {
                parent: self.0.id.clone(),
                size,
                after: after_key,
            })
            .await?;
        Ok(connection(&page, parent, after.is_some(), |p| {
            Post(p.clone())
        }))
    }
}
