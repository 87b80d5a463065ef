//! Pages of a list (a GSI `Query` or the users `Scan`) with exact `hasNextPage`.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use super::{
    Storage, classify,
    cursor::{List, PageKey},
    items::Item,
};
use crate::{domain::PageSize, error::AppError};

/// One page of a list: each item with its position, for cursors.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The page's items, each with its position.
    pub items: Vec<(PageKey, T)>,
    /// Exact: true only when at least one more item follows.
    pub has_next_page: bool,
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
        })
    }
}

/// Where a list's items come from.
pub(crate) enum Source<'a> {
    /// The items of one partition of a GSI, in sort-key order.
    Index {
        table: &'a str,
        index: &'static str,
        partition: (&'static str, &'a str),
        newest_first: bool,
    },
    /// A whole table, in DynamoDB's (unpromised) order.
    Table { table: &'a str },
}

impl Storage {
    /// Reads `size` items of `list` after `after`, each with its position.
    ///
    /// One request reads `size + 1` items: the extra one tells whether a next page exists
    /// without a second request. Only when DynamoDB stops early (its 1 MB page limit)
    /// does it take another request to fill the page.
    pub(crate) async fn page(
        &self,
        source: Source<'_>,
        list: List,
        size: PageSize,
        after: Option<&PageKey>,
    ) -> Result<Page<Item>, AppError> {
        if let Some(after) = after
            && after.list() != list
        {
            return Err(AppError::internal(anyhow::anyhow!(
                "a position of {:?} used in {list:?}",
                after.list()
            )));
        }
        let wanted = size.get() + 1;
        let mut items: Vec<Item> = Vec::with_capacity(wanted);
        let mut start = after.map(PageKey::to_item);
        loop {
            let limit = i32::try_from(wanted - items.len()).unwrap_or(i32::MAX);
            let (found, next) = self.fetch(&source, limit, start).await?;
            items.extend(found);
            start = next;
            if items.len() >= wanted || start.is_none() {
                break;
            }
        }
        let has_next_page = items.len() > size.get();
        items.truncate(size.get());
        let items = items
            .into_iter()
            .map(|item| Ok((PageKey::of_item(&item, list)?, item)))
            .collect::<anyhow::Result<_>>()
            .map_err(AppError::internal)?;
        Ok(Page {
            items,
            has_next_page,
        })
    }

    async fn fetch(
        &self,
        source: &Source<'_>,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), AppError> {
        match source {
            Source::Index {
                table,
                index,
                partition: (name, value),
                newest_first,
            } => {
                let output = self
                    .client
                    .query()
                    .table_name(*table)
                    .index_name(*index)
                    .key_condition_expression("#p = :p")
                    .expression_attribute_names("#p", *name)
                    .expression_attribute_values(":p", AttributeValue::S((*value).to_owned()))
                    .scan_index_forward(!newest_first)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
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
