//! `BatchGetItem` in chunks of 100 with `UnprocessedKeys` retried.

use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
    time::Duration,
};

use anyhow::anyhow;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnConsumedCapacity};
use futures::future::try_join_all;

use super::{
    Storage,
    attributes::{COMMENT_ID, POST_ID, USER_ID},
    backoff, classify,
    items::{Item, comment_from_item, post_from_item, user_from_item},
};
use crate::{
    domain::{Comment, Post, User},
    error::AppError,
};

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
        let keys = ids.into_iter().map(|id| (table, key, id));
        Ok(self
            .batch_get_across(keys)
            .await?
            .into_iter()
            .map(|(_, item)| item)
            .collect())
    }

    /// Reads items of several tables by key, `(table, key attribute, id)` each, strongly
    /// consistent: 100 keys to a `BatchGetItem` whatever their tables, chunks concurrently.
    /// Each item found comes back with its table.
    pub(crate) async fn batch_get_across<'a>(
        &self,
        keys: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Result<Vec<(String, Item)>, AppError> {
        let keys: Vec<(String, Item)> = keys
            .into_iter()
            .map(|(table, key, id)| {
                let item = Item::from([(key.to_owned(), AttributeValue::S(id.to_owned()))]);
                (table.to_owned(), item)
            })
            .collect();
        let chunks = keys
            .chunks(MAX_BATCH_KEYS)
            .map(|chunk| self.batch_get_chunk(chunk.to_vec()));
        Ok(try_join_all(chunks).await?.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(
        &self,
        keys: Vec<(String, Item)>,
    ) -> Result<Vec<(String, Item)>, AppError> {
        let mut pending: HashMap<String, Vec<Item>> = HashMap::new();
        for (table, key) in keys {
            pending.entry(table).or_default().push(key);
        }
        let mut found = Vec::new();
        let mut retries = 0;
        loop {
            let mut request = self
                .client
                .batch_get_item()
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            for (table, keys) in pending {
                let keys = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(AppError::internal)?;
                request = request.request_items(table, keys);
            }
            let output = request
                .send()
                .await
                .map_err(|e| classify("BatchGetItem", e))?;
            self.record("BatchGetItem", output.consumed_capacity());
            for (table, items) in output.responses.unwrap_or_default() {
                found.extend(items.into_iter().map(|item| (table.clone(), item)));
            }
            pending = output
                .unprocessed_keys
                .unwrap_or_default()
                .into_iter()
                .map(|(table, keys)| (table, keys.keys))
                .filter(|(_, keys)| !keys.is_empty())
                .collect();
            if pending.is_empty() {
                return Ok(found);
            }
            if retries == MAX_RETRIES {
                let left: usize = pending.values().map(Vec::len).sum();
                return Err(AppError::unavailable(anyhow!(
                    "DynamoDB left {left} keys unprocessed after {MAX_RETRIES} retries"
                )));
            }
            retries += 1;
            crate::metrics::unprocessed_keys_retry();
            tokio::time::sleep(backoff(retries, BACKOFF_BASE, BACKOFF_CAP)).await;
        }
    }
}

/// What an id names, looked up in every table at once.
#[derive(Clone, Debug)]
pub enum Found {
    /// A user.
    User(User),
    /// A post.
    Post(Post),
    /// A comment.
    Comment(Comment),
}

impl Storage {
    /// The item each of `ids` names in any of the three tables: one `BatchGetItem` per
    /// 100 keys (three keys an id). An id held by more than one table names the first of
    /// user, post and comment that holds it; unknown ids are absent.
    pub async fn nodes(&self, ids: &[String]) -> Result<HashMap<String, Found>, AppError> {
        let tables = [
            (&self.tables.users, USER_ID),
            (&self.tables.posts, POST_ID),
            (&self.tables.comments, COMMENT_ID),
        ];
        // DynamoDB refuses a request that names a key twice.
        let ids: BTreeSet<&String> = ids.iter().collect();
        let mut keys = Vec::with_capacity(ids.len() * tables.len());
        for id in ids {
            for (table, key) in &tables {
                keys.push((table.as_str(), *key, id.as_str()));
            }
        }
        let mut found: HashMap<String, Found> = HashMap::new();
        for (table, item) in self.batch_get_across(keys).await? {
            let decoded = if table == self.tables.users {
                user_from_item(item).map(|u| (u.id.to_string(), Found::User(u)))
            } else if table == self.tables.posts {
                post_from_item(item).map(|p| (p.id.to_string(), Found::Post(p)))
            } else {
                comment_from_item(item).map(|c| (c.id.to_string(), Found::Comment(c)))
            };
            let (id, node) = decoded.map_err(AppError::internal)?;
            let rank = |node: &Found| match node {
                Found::User(_) => 0,
                Found::Post(_) => 1,
                Found::Comment(_) => 2,
            };
            match found.get(&id) {
                Some(held) if rank(held) <= rank(&node) => {}
                _ => _ = found.insert(id, node),
            }
        }
        Ok(found)
    }
}
