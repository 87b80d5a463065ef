//! Pages of a list (a GSI `Query` or the users `Scan`) with exact `hasNextPage`.

use std::collections::VecDeque;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, Select};

use super::{
    Storage, classify,
    cursor::{List, PageKey},
    items::Item,
    range::TimeRange,
};
use crate::{domain::PageSize, error::AppError};

/// Items a Scan returns in one request when it walks a table (well under 1 MB of users).
const WALK_LIMIT: i32 = 1000;
/// Requests a walk back through a table may take: a backward page of users lies within
/// the first 20,000 of the table's order, or is refused.
pub(crate) const MAX_WALK_REQUESTS: usize = 20;

/// One page of a list: each item with its position, for cursors, in the list's order
/// whichever way it was read.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The page's items, each with its position.
    pub items: Vec<(PageKey, T)>,
    /// True when at least one more item follows the page (exact when paging forward;
    /// paging backward, true when the page ended before a cursor's item).
    pub has_next_page: bool,
    /// True when at least one item precedes the page (exact when paging backward;
    /// paging forward, true when the page started after a cursor's item).
    pub has_previous_page: bool,
}

/// Which part of a list a page holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// How many items the page holds at most.
    pub size: PageSize,
    /// Reading towards the list's start (`last`/`before`) rather than its end.
    pub backward: bool,
    /// The position the page starts from, exclusive: `after` forward, `before` backward.
    pub from: Option<PageKey>,
    /// The time range the list is restricted to.
    pub range: TimeRange,
}

impl Window {
    /// The first `size` items of the whole list.
    pub fn first(size: PageSize) -> Self {
        Self {
            size,
            backward: false,
            from: None,
            range: TimeRange::default(),
        }
    }
}

impl Page<Item> {
    pub(crate) fn try_map<U>(
        self,
        f: impl Fn(Item) -> anyhow::Result<U>,
    ) -> Result<Page<U>, AppError> {
        let items = self
            .items
            .into_iter()
            .map(|(key, item)| f(item).map(|value| (key, value)))
            .collect::<anyhow::Result<_>>()
            .map_err(AppError::internal)?;
        Ok(Page {
            items,
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        })
    }
}

/// The items of one partition of a GSI, in sort-key order, within a time range of its
/// sort key.
#[derive(Clone)]
pub(crate) struct Partition<'a> {
    pub(crate) table: &'a str,
    pub(crate) index: &'static str,
    pub(crate) partition: (&'static str, &'a str),
    pub(crate) sort: &'static str,
    pub(crate) newest_first: bool,
    pub(crate) range: &'a TimeRange,
}

/// Where a list's items come from.
#[derive(Clone)]
pub(crate) enum Source<'a> {
    /// A partition of an index.
    Index(Partition<'a>),
    /// A whole table, in DynamoDB's (unpromised) order.
    Table { table: &'a str },
}

impl Storage {
    /// Reads the page `window` of `list`, each item with its position.
    ///
    /// One request reads `size + 1` items in the window's direction: the extra one tells
    /// whether more follow without a second request. Only when DynamoDB stops early (its
    /// 1 MB page limit, or items on a bound of a time range) does it take another request
    /// to fill the page.
    pub(crate) async fn page(
        &self,
        source: Source<'_>,
        list: List,
        window: &Window,
    ) -> Result<Page<Item>, AppError> {
        if let Some(from) = &window.from
            && from.list() != list
        {
            return Err(AppError::internal(anyhow::anyhow!(
                "a position of {:?} used in {list:?}",
                from.list()
            )));
        }
        let size = window.size.get();
        let from_given = window.from.is_some();
        let (mut items, more) = match source {
            Source::Index(Partition { range, .. }) if range.is_empty() => (Vec::new(), false),
            Source::Table { table } if window.backward => {
                self.walk_back(table, size, window.from.as_ref()).await?
            }
            source => {
                let wanted = size + 1;
                let mut items: Vec<Item> = Vec::with_capacity(wanted);
                let mut start = window.from.as_ref().map(PageKey::to_item);
                loop {
                    let limit = i32::try_from(wanted - items.len()).unwrap_or(i32::MAX);
                    let (found, next) = self.fetch(&source, limit, start, !window.backward).await?;
                    items.extend(found);
                    start = next;
                    if items.len() >= wanted || start.is_none() {
                        break;
                    }
                }
                let more = items.len() > size;
                items.truncate(size);
                if window.backward {
                    items.reverse();
                }
                (items, more)
            }
        };
        let (has_previous_page, has_next_page) = if window.backward {
            (more, from_given)
        } else {
            (from_given, more)
        };
        let items = items
            .drain(..)
            .map(|item| Ok((PageKey::of_item(&item, list)?, item)))
            .collect::<anyhow::Result<_>>()
            .map_err(AppError::internal)?;
        Ok(Page {
            items,
            has_next_page,
            has_previous_page,
        })
    }

    /// The `size` items of a table's Scan order right before `before` (or its last ones),
    /// in that order, and whether more precede them. A Scan only reads forward, so this
    /// walks the table from its start: its cost grows with the position, not the page.
    async fn walk_back(
        &self,
        table: &str,
        size: usize,
        before: Option<&PageKey>,
    ) -> Result<(Vec<Item>, bool), AppError> {
        let stop = before.map(PageKey::to_item);
        let mut kept: VecDeque<Item> = VecDeque::with_capacity(size + 1);
        let mut start = None;
        for _ in 0..MAX_WALK_REQUESTS {
            let (found, next) = self
                .fetch(&Source::Table { table }, WALK_LIMIT, start, true)
                .await?;
            for item in found {
                if stop
                    .as_ref()
                    .is_some_and(|stop| stop.iter().all(|(k, v)| item.get(k) == Some(v)))
                {
                    let more = kept.len() > size;
                    return Ok((trimmed(kept, size), more));
                }
                kept.push_back(item);
                if kept.len() > size + 1 {
                    kept.pop_front();
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
        if start.is_some() {
            return Err(AppError::BadUserInput(format!(
                "paging `users` backward reads the table from its start (DynamoDB scans \
                 forward only), and this page lies past the first {MAX_WALK_REQUESTS} reads of \
                 it (about {} users); page forward with `first`/`after` instead",
                MAX_WALK_REQUESTS * usize::try_from(WALK_LIMIT).unwrap_or(0)
            )));
        }
        if before.is_some() {
            return Err(AppError::BadUserInput(
                "the user this `before` cursor names no longer exists; page again from the \
                 end of the list"
                    .to_owned(),
            ));
        }
        let more = kept.len() > size;
        Ok((trimmed(kept, size), more))
    }

    /// How many items a list holds: one `Select: COUNT` request per megabyte of items
    /// read (an index's partition within a time range, or a whole table).
    pub(crate) async fn count(&self, source: Source<'_>) -> Result<i64, AppError> {
        if let Source::Index(Partition { range, .. }) = &source
            && range.is_empty()
        {
            return Ok(0);
        }
        let mut total = 0;
        let mut start = None;
        loop {
            let (count, next) = match &source {
                Source::Index(partition) => {
                    let output = self
                        .index_query(partition, true)
                        .select(Select::Count)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| classify("Query", e))?;
                    self.record("Query", output.consumed_capacity.as_slice());
                    (output.count, output.last_evaluated_key)
                }
                Source::Table { table } => {
                    let output = self
                        .client
                        .scan()
                        .table_name(*table)
                        .consistent_read(true)
                        .select(Select::Count)
                        .set_exclusive_start_key(start)
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                        .await
                        .map_err(|e| classify("Scan", e))?;
                    self.record("Scan", output.consumed_capacity.as_slice());
                    (output.count, output.last_evaluated_key)
                }
            };
            total += i64::from(count);
            start = next;
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    /// A `Query` of an index's partition within its time range, in the given direction.
    pub(super) fn index_query(
        &self,
        source: &Partition<'_>,
        forward: bool,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let Partition {
            table,
            index,
            partition: (name, value),
            sort,
            newest_first,
            range,
        } = source;
        let mut query = self
            .client
            .query()
            .table_name(*table)
            .index_name(*index)
            .expression_attribute_names("#p", *name)
            .expression_attribute_values(":p", AttributeValue::S((*value).to_owned()))
            .scan_index_forward(forward != *newest_first)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let number = |text: &str| AttributeValue::N(text.to_owned());
        let condition = match (range.inclusive(), range.after(), range.before()) {
            (Some((low, high)), _, _) => {
                query = query
                    .expression_attribute_values(":a", number(&low))
                    .expression_attribute_values(":b", number(&high));
                "#p = :p AND #s BETWEEN :a AND :b"
            }
            (None, Some(after), _) => {
                query = query.expression_attribute_values(":a", number(after));
                "#p = :p AND #s > :a"
            }
            (None, None, Some(before)) => {
                query = query.expression_attribute_values(":b", number(before));
                "#p = :p AND #s < :b"
            }
            (None, None, None) => "#p = :p",
        };
        if !range.is_everything() {
            query = query.expression_attribute_names("#s", *sort);
        }
        query.key_condition_expression(condition)
    }

    async fn fetch(
        &self,
        source: &Source<'_>,
        limit: i32,
        start: Option<Item>,
        forward: bool,
    ) -> Result<(Vec<Item>, Option<Item>), AppError> {
        match source {
            Source::Index(partition) => {
                let output = self
                    .index_query(partition, forward)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| classify("Query", e))?;
                self.record("Query", output.consumed_capacity.as_slice());
                Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
            }
            Source::Table { table } => {
                let output = self
                    .client
                    .scan()
                    .table_name(*table)
                    .consistent_read(true)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| classify("Scan", e))?;
                self.record("Scan", output.consumed_capacity.as_slice());
                Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
            }
        }
    }
}

/// The last `size` of `kept`, in order.
fn trimmed(mut kept: VecDeque<Item>, size: usize) -> Vec<Item> {
    while kept.len() > size {
        kept.pop_front();
    }
    kept.into()
}
