//! `BatchGetItem` in chunks of 100 with `UnprocessedKeys` retried.

use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
    time::Duration,
};

use anyhow::anyhow;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnConsumedCapacity};
use futures::future::try_join_all;

use super::{Storage, backoff, classify, items::Item};
use crate::error::AppError;

/// DynamoDB's limit of keys in one `BatchGetItem`.
pub(crate) const MAX_BATCH_KEYS: usize = 100;
/// Retries of unprocessed keys before giving up; with the backoff below that is
/// a few seconds of waiting at the most.
const MAX_RETRIES: u32 = 8;
const BACKOFF_BASE: Duration = Duration::from_millis(20);
const BACKOFF_CAP: Duration = Duration::from_secs(1);

impl Storage {
    /// Items of `table` by the ids of its key `key`, decoded, each under the id it holds.
    pub(crate) async fn items_by_id<'a, K, T>(
        &self,
        table: &str,
        key: &str,
        ids: impl IntoIterator<Item = &'a str>,
        decode: impl Fn(Item) -> anyhow::Result<T>,
        id_of: impl Fn(&T) -> K,
    ) -> Result<HashMap<K, T>, AppError>
    where
        K: Hash + Eq,
    {
        self.batch_get(table, key, ids)
            .await?
            .into_iter()
            .map(|item| decode(item).map(|value| (id_of(&value), value)))
            .collect::<anyhow::Result<_>>()
            .map_err(AppError::internal)
    }

    /// Reads the items of `table` whose `key` attribute is one of `ids`, strongly
    /// consistent. Duplicates are asked for once; chunks of 100 go out concurrently.
    pub(crate) async fn batch_get<'a>(
        &self,
        table: &str,
        key: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Item>, AppError> {
        let ids: BTreeSet<&str> = ids.into_iter().collect();
        let keys: Vec<Item> = ids
            .into_iter()
            .map(|id| Item::from([(key.to_owned(), AttributeValue::S(id.to_owned()))]))
            .collect();
        let chunks = keys
            .chunks(MAX_BATCH_KEYS)
            .map(|chunk| self.batch_get_chunk(table, chunk.to_vec()));
        Ok(try_join_all(chunks).await?.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, AppError> {
        let mut pending = keys;
        let mut found = Vec::with_capacity(pending.len());
        let mut retries = 0;
        loop {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(AppError::internal)?;
            let output = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let mut output = output.map_err(|e| classify("BatchGetItem", e))?;
            self.record("BatchGetItem", output.consumed_capacity());
            if let Some(items) = output.responses.as_mut().and_then(|r| r.remove(table)) {
                found.extend(items);
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(found);
            }
            if retries == MAX_RETRIES {
                return Err(AppError::unavailable(anyhow!(
                    "DynamoDB left {} keys of {table} unprocessed after {MAX_RETRIES} retries",
                    pending.len()
                )));
            }
            retries += 1;
            tokio::time::sleep(backoff(retries, BACKOFF_BASE, BACKOFF_CAP)).await;
        }
    }
}
