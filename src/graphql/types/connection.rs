//! Relay connections: the arguments every list takes, and the page and count it answers.

use std::sync::Arc;

use async_graphql::{
    Context, Object, OutputType,
    connection::{Connection, CursorType, Edge},
};

use super::DateTime;
use crate::{
    domain::{PageSize, PostId},
    error::AppError,
    graphql::{Result, context::loaders, cursor},
    loaders::CountRequest,
    storage::{List, Page, TimeRange, Window},
};

/// How many items a page holds when a client gives neither `first` nor `last`.
pub(crate) const DEFAULT_PAGE_SIZE: i32 = 20;

/// The paging arguments of a connection, as the client sent them.
#[derive(Default)]
pub(crate) struct Paging {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl Paging {
    /// The window of `list` (of `parent`, within `range`) these arguments ask for:
    /// forward with `first`/`after`, backward with `last`/`before`, never both.
    pub(crate) fn window(
        self,
        list: List,
        parent: &str,
        range: TimeRange,
    ) -> Result<Window, AppError> {
        let forward = self.first.is_some() || self.after.is_some();
        let backward = self.last.is_some() || self.before.is_some();
        if forward && backward {
            return Err(AppError::BadUserInput(
                "page forward with `first`/`after` or backward with `last`/`before`, not both \
                 ways at once"
                    .to_owned(),
            ));
        }
        let (count, argument, cursor_text, cursor_name) = if backward {
            (self.last, "last", self.before, "before")
        } else {
            (self.first, "first", self.after, "after")
        };
        let size = PageSize::parse(count.unwrap_or(DEFAULT_PAGE_SIZE), argument)?;
        let from = cursor::decode(list, parent, &range, cursor_text.as_deref(), cursor_name)?;
        Ok(Window {
            size,
            backward,
            from,
            range,
        })
    }
}

/// The `createdAfter`/`createdBefore` arguments as a range of the tables' times, which
/// start in 1970 (epoch seconds).
pub(crate) fn time_range(
    after: Option<DateTime>,
    before: Option<DateTime>,
) -> Result<TimeRange, AppError> {
    for (bound, name) in [(&after, "createdAfter"), (&before, "createdBefore")] {
        if bound.as_ref().is_some_and(|at| at.0.timestamp() < 0) {
            return Err(AppError::BadUserInput(format!(
                "`{name}` is before 1970-01-01T00:00:00Z, the earliest time the tables hold"
            )));
        }
    }
    Ok(TimeRange::new(after.map(|at| at.0), before.map(|at| at.0)))
}

/// How a connection's `totalCount` is found: known already, or counted when asked for.
pub(crate) enum Total {
    /// A counter read with the list's parent (or nothing to count).
    Known(i64),
    /// A user's posts within a time range, or all of them when the user's item has no
    /// counter yet (written by another program): counted, and the counter repaired.
    UserPosts(crate::domain::UserId, TimeRange),
    /// A post's comments within a time range: counted on the index.
    PostComments(PostId, TimeRange),
    /// All users: the users' counter.
    Users,
}

#[Object]
impl Total {
    /// How many items the whole list holds (within its time range, when it has one),
    /// however many pages it takes: exact, from counters kept with every write.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let count = match self {
            Self::Known(count) => *count,
            Self::UserPosts(user, range) => {
                let request = CountRequest {
                    parent: user.clone(),
                    range: range.clone(),
                };
                loaders(ctx)?.count_posts_of_user(request).await?
            }
            Self::PostComments(post, range) => {
                let request = CountRequest {
                    parent: post.clone(),
                    range: range.clone(),
                };
                loaders(ctx)?.count_comments_of_post(request).await?
            }
            Self::Users => loaders(ctx)?.storage().users().count().await?,
        };
        Ok(i32::try_from(count.max(0)).unwrap_or(i32::MAX))
    }
}

/// A Relay connection over a page: every edge's cursor is its item's position, so a
/// client may resume from any edge, not only the last or the first.
pub(crate) fn connection<T, N>(
    page: Arc<Page<T>>,
    parent: &str,
    range: &TimeRange,
    total: Total,
    node: impl Fn(&T) -> N,
) -> Connection<Position<T>, N, Total>
where
    T: Send + Sync,
    N: OutputType,
{
    let mut connection =
        Connection::with_additional_fields(page.has_previous_page, page.has_next_page, total);
    let scope = Arc::new((parent.to_owned(), range.clone()));
    connection
        .edges
        .extend(page.items.iter().enumerate().map(|(index, (_, item))| {
            let position = Position {
                page: page.clone(),
                index,
                scope: scope.clone(),
            };
            Edge::new(position, node(item))
        }));
    connection
}

/// An edge's cursor, encoded only when a client reads it (an edge's `cursor`, or
/// `startCursor`/`endCursor`): most queries read none, or one a page, and encoding one
/// takes a dozen allocations.
pub(crate) struct Position<T> {
    page: Arc<Page<T>>,
    index: usize,
    /// The list's parent and time range, which every cursor of the page carries.
    scope: Arc<(String, TimeRange)>,
}

impl<T> CursorType for Position<T> {
    type Error = &'static str;

    /// Never called: the `after` and `before` arguments are read by `cursor::decode`.
    fn decode_cursor(_: &str) -> Result<Self, Self::Error> {
        Err("a cursor is read by the list it came from")
    }

    fn encode_cursor(&self) -> String {
        let (parent, range) = &*self.scope;
        self.page
            .items
            .get(self.index)
            .map(|(key, _)| key.cursor(parent, range))
            .unwrap_or_default()
    }
}
