use async_graphql::{
    OutputType,
    connection::{Connection, Edge},
};

use crate::{domain::PageSize, error::AppError, storage::Page};

/// What `first` is when a client leaves it out (or sends null).
const DEFAULT_PAGE_SIZE: i32 = 20;
/// The same, as the schema's default value of `first`.
pub(crate) const DEFAULT_FIRST: Option<i32> = Some(DEFAULT_PAGE_SIZE);

/// The `first` argument, checked: 0 to 100, never clamped.
pub(crate) fn page_size(first: Option<i32>) -> Result<PageSize, AppError> {
    Ok(PageSize::parse(first.unwrap_or(DEFAULT_PAGE_SIZE))?)
}

/// A Relay connection over a page: every edge's cursor is its item's position, so a
/// client may resume after any edge, not only the last.
pub(crate) fn connection<T, N>(
    page: &Page<T>,
    parent: &str,
    after_given: bool,
    node: impl Fn(&T) -> N,
) -> Connection<String, N>
where
    N: OutputType,
{
    // Paginating forward, there is a previous page exactly when we started after an item.
    let mut connection = Connection::new(after_given, page.has_next_page);
    connection.edges.extend(
        page.items
            .iter()
            .map(|(key, item)| Edge::new(key.cursor(parent), node(item))),
    );
    connection
}
