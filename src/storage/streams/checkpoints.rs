//! Where the reading of each shard stands, so that reading resumes where it stopped.

use std::{
    cmp::Ordering as Order,
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use futures::future::BoxFuture;

/// Where the reading of a shard stands: where a reader starting (again) begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Position {
    /// From now on: the feed's first look at an open shard.
    Latest,
    /// From the shard's oldest record, without the records written before this time: a
    /// shard read from LATEST then, that has delivered nothing yet.
    Since(SystemTime),
    /// After this record, the last one delivered.
    After(String),
    /// From the shard's oldest record: a shard that appeared after reading began.
    Beginning,
    /// Read to its end: a closed shard, every record delivered (or history passed over).
    Finished,
}

/// Where each shard's reading stands, so that reading resumes where it stopped. Kept in
/// memory by [`MemoryCheckpoints`], and by a relay in its shards' leases in DynamoDB
/// (`leases.rs`), where the next holder finds them. Readers save once per page of records.
pub(super) trait Checkpoints: Send + Sync {
    /// The positions known for the shards `shards` of a stream.
    fn load<'a>(
        &'a self,
        stream: &'a str,
        shards: &'a [&'a str],
    ) -> BoxFuture<'a, anyhow::Result<HashMap<String, Position>>>;
    fn save<'a>(
        &'a self,
        stream: &'a str,
        shard: &'a str,
        position: Position,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Checkpoints in memory: they last as long as the process.
#[derive(Default)]
pub(super) struct MemoryCheckpoints(Mutex<HashMap<String, HashMap<String, Position>>>);

impl Checkpoints for MemoryCheckpoints {
    fn load<'a>(
        &'a self,
        stream: &'a str,
        _shards: &'a [&'a str],
    ) -> BoxFuture<'a, anyhow::Result<HashMap<String, Position>>> {
        let positions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let known = positions.get(stream).cloned().unwrap_or_default();
        Box::pin(std::future::ready(Ok(known)))
    }

    fn save<'a>(
        &'a self,
        stream: &'a str,
        shard: &'a str,
        position: Position,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        let mut positions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        positions
            .entry(stream.to_owned())
            .or_default()
            .insert(shard.to_owned(), position);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Whether sequence number `a` comes after `b` (both are decimal numbers of any length).
pub(super) fn later(a: &str, b: &str) -> bool {
    match a.len().cmp(&b.len()) {
        Order::Equal => a > b,
        longer => longer == Order::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(later("100", "99"));
        assert!(later("000000000000000000020", "000000000000000000019"));
        assert!(!later("99", "100"));
        assert!(!later("5", "5"));
    }

    #[tokio::test]
    async fn checkpoints_remember_each_shard_of_each_stream() {
        let store = MemoryCheckpoints::default();
        assert!(store.load("s", &[]).await.expect("loads").is_empty());
        store
            .save("s", "a", Position::After("7".into()))
            .await
            .expect("saves");
        store
            .save("t", "a", Position::Finished)
            .await
            .expect("saves");
        let s = store.load("s", &[]).await.expect("loads");
        assert_eq!(s.get("a"), Some(&Position::After("7".into())));
        assert_eq!(
            store.load("t", &[]).await.expect("loads").get("a"),
            Some(&Position::Finished)
        );
    }
}
