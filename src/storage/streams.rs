//! Events from the tables themselves: each server instance reads the DynamoDB Streams of
//! the posts and comments tables and fans the new items out to its own subscribers. So an
//! event fires for a write made through any instance, and for an item put straight into
//! a table by another program (a Da Vinci service, a script), with nothing else to run.
//!
//! Per table: find the stream, list its shards, and read each shard with its own task.
//! The feed never skips a record and never delivers one twice:
//!
//! - Only the feed's first look at a stream reads its open shards from LATEST (what
//!   happened before is not news) and passes over its closed ones. Shards that appear
//!   later (a shard closes and splits) are read from their start, once their parent is
//!   read to its end, so nothing is lost or reordered across the split.
//! - Each shard's position (after the last record delivered) is kept in a checkpoint
//!   store. Whatever fails (listing the shards, getting an iterator, reading records, an
//!   iterator that expires), reading resumes from there: after that record, or, for a
//!   shard read from LATEST that has delivered nothing yet, from its oldest record
//!   without those written before reading began. A position trimmed away (the stream
//!   keeps 24 hours) resumes at the oldest record left, and the gap is logged.
//! - A shard remembers the sequence number of its last record, and a record read again
//!   is not delivered again.
//!
//! The store is in memory here; a store in DynamoDB plugs in behind [`Checkpoints`].

use std::{
    cmp::Ordering as Order,
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use aws_sdk_dynamodbstreams::{
    Client as StreamsClient,
    operation::{
        describe_stream::DescribeStreamError, get_records::GetRecordsError,
        get_shard_iterator::GetShardIteratorError,
    },
    types::{OperationType, Shard, ShardIteratorType},
};
use futures::future::BoxFuture;
use tokio::{
    sync::{broadcast, watch},
    task::JoinSet,
};

use super::{
    Storage, backoff,
    items::{comment_from_item, post_from_item},
};
use crate::domain::Event;

/// How often an idle shard is polled: events reach subscribers well within a second.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Events an instance buffers for its slowest subscriber before that one is dropped.
pub const FEED_CAPACITY: usize = 1024;

/// The instance's feed of events; subscribers each get a receiver.
#[derive(Clone)]
pub struct EventFeed {
    sender: broadcast::Sender<Event>,
    ready: watch::Receiver<usize>,
    published: Arc<AtomicU64>,
}

impl EventFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// How many events the feed has published. The count goes up before an event is
    /// sent, so a subscriber that received an event reads a count that includes it.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }

    /// Waits until both tables' streams are being read: events written from then on
    /// reach subscribers.
    pub async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|tables| *tables >= 2).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Posts,
    Comments,
}

impl Storage {
    /// Starts reading the posts' and comments' streams until `shutdown` turns true.
    /// `None` for a storage without a streams client (one made in tests from a mock).
    /// The shard list is read again every `describe_interval`, for new shards.
    pub fn start_event_feed(
        &self,
        shutdown: watch::Receiver<bool>,
        describe_interval: Duration,
    ) -> Option<EventFeed> {
        let streams = self.streams.clone()?;
        let (sender, _) = broadcast::channel(FEED_CAPACITY);
        let (ready_tx, ready) = watch::channel(0usize);
        let published = Arc::new(AtomicU64::new(0));
        let checkpoints: Arc<dyn Checkpoints> = Arc::new(MemoryCheckpoints::default());
        for (table, kind) in [
            (self.tables.posts.clone(), Kind::Posts),
            (self.tables.comments.clone(), Kind::Comments),
        ] {
            let follower = Follower {
                dynamodb: self.client.clone(),
                streams: streams.clone(),
                table,
                kind,
                sender: sender.clone(),
                published: published.clone(),
                ready: ready_tx.clone(),
                shutdown: shutdown.clone(),
                checkpoints: checkpoints.clone(),
                started: false,
                describe_interval,
            };
            tokio::spawn(follower.run());
        }
        Some(EventFeed {
            sender,
            ready,
            published,
        })
    }
}

/// Where the reading of a shard stands: where a reader starting (again) begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
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
/// memory by [`MemoryCheckpoints`]; a store in DynamoDB (for a single reader that a fleet
/// shares) implements the same two calls. Readers save once per page of records.
pub trait Checkpoints: Send + Sync {
    /// The positions known for a stream's shards.
    fn load<'a>(
        &'a self,
        stream: &'a str,
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
pub struct MemoryCheckpoints(Mutex<HashMap<String, HashMap<String, Position>>>);

impl Checkpoints for MemoryCheckpoints {
    fn load<'a>(
        &'a self,
        stream: &'a str,
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
fn later(a: &str, b: &str) -> bool {
    match a.len().cmp(&b.len()) {
        Order::Equal => a > b,
        longer => longer == Order::Greater,
    }
}

/// How far before reading began a record may have been written and still be delivered:
/// a record's creation time is rounded down (to the second on AWS, to the minute by
/// DynamoDB Local) and clocks disagree a little, and delivering a minute of old records
/// after a restart beats skipping a new one.
const CLOCK_MARGIN: Duration = Duration::from_secs(65);

struct Follower {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: StreamsClient,
    table: String,
    kind: Kind,
    sender: broadcast::Sender<Event>,
    published: Arc<AtomicU64>,
    ready: watch::Sender<usize>,
    shutdown: watch::Receiver<bool>,
    checkpoints: Arc<dyn Checkpoints>,
    /// Whether the feed has had its first look at the stream: from then on, a shard with
    /// no checkpoint is new, and read from its beginning.
    started: bool,
    describe_interval: Duration,
}

/// Sleeps, or returns `true` at once when the server is shutting down.
async fn sleep_or_shutdown(duration: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        // Shutting down, or the server that owns the signal is gone.
        _ = shutdown.wait_for(|stop| *stop) => true,
    }
}

impl Follower {
    async fn run(mut self) {
        let mut failures = 0;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            match self.follow_stream().await {
                Ok(()) => return,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(table = %self.table, error = ?err, "reading the table's stream failed; resuming from the checkpoints");
                    let wait = backoff(
                        failures.min(6),
                        Duration::from_millis(200),
                        Duration::from_secs(10),
                    );
                    if sleep_or_shutdown(wait.max(Duration::from_millis(100)), &mut self.shutdown)
                        .await
                    {
                        return;
                    }
                }
            }
        }
    }

    async fn stream_arn(&self) -> anyhow::Result<String> {
        let table = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .with_context(|| format!("describing {}", self.table))?
            .table
            .context("no table description")?;
        table
            .latest_stream_arn
            .with_context(|| format!("table {} has no stream; run create-tables", self.table))
    }

    async fn shards(&self, arn: &str) -> anyhow::Result<Vec<Shard>> {
        let mut shards = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await;
            let output = match output {
                Ok(output) => output,
                Err(err) => {
                    let gone = matches!(
                        err.as_service_error(),
                        Some(DescribeStreamError::ResourceNotFoundException(_))
                    );
                    let err = anyhow::Error::new(err).context("describing the stream");
                    return Err(if gone { err.context(STREAM_GONE) } else { err });
                }
            };
            let description = output.stream_description.context("no stream description")?;
            shards.extend(description.shards.unwrap_or_default());
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                return Ok(shards);
            }
        }
    }

    /// Follows one stream until shutdown (`Ok`) or until it cannot go on (`Err`: the
    /// stream is gone, or it could not be found; the caller starts again, and every shard
    /// resumes from its checkpoint). A failed look at the shard list is not one of those:
    /// the shards being read carry on, and the list is read again later.
    async fn follow_stream(&mut self) -> anyhow::Result<()> {
        let arn = self.stream_arn().await?;
        let mut readers = JoinSet::new();
        let mut reading: HashSet<String> = HashSet::new();
        loop {
            let listed = match self.shards(&arn).await {
                Ok(shards) => Ok(shards),
                Err(err) if gone(&err) => Err(err),
                Err(err) if self.started => {
                    tracing::warn!(table = %self.table, error = ?err, "listing the stream's shards failed; the shards being read carry on");
                    Ok(Vec::new())
                }
                Err(err) => Err(err),
            };
            let started = match listed {
                Ok(shards) => {
                    self.start_readers(&arn, &shards, &mut readers, &mut reading)
                        .await
                }
                Err(err) => Err(err),
            };
            if let Err(err) = started {
                readers.shutdown().await;
                return Err(err);
            }
            // Wait for a shard to be read to its end (its children can start), a reader to
            // fail, the next periodic look at the shard list, or shutdown.
            tokio::select! {
                Some(result) = readers.join_next(), if !readers.is_empty() => {
                    let failed = match result {
                        Ok(Ok(())) => None,
                        Ok(Err(err)) => Some(err),
                        Err(join) => Some(anyhow::anyhow!("a shard reader failed: {join}")),
                    };
                    if let Some(err) = failed {
                        readers.shutdown().await;
                        return Err(err);
                    }
                }
                stop = sleep_or_shutdown(self.describe_interval, &mut self.shutdown) => {
                    if stop {
                        readers.shutdown().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Starts a reader for each listed shard that has none and is not read to its end.
    async fn start_readers(
        &mut self,
        arn: &str,
        shards: &[Shard],
        readers: &mut JoinSet<anyhow::Result<()>>,
        reading: &mut HashSet<String>,
    ) -> anyhow::Result<()> {
        let mut known = self.checkpoints.load(arn).await?;
        // With positions on record (another process's, for a store that outlives one), this
        // is not the first look: a shard with none is new.
        let first = !self.started && known.is_empty();
        let listed: HashSet<&str> = shards.iter().filter_map(|s| s.shard_id()).collect();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if reading.contains(id) {
                continue;
            }
            let closed = shard
                .sequence_number_range()
                .is_some_and(|r| r.ending_sequence_number().is_some());
            let position = match known.get(id) {
                Some(position) => position.clone(),
                // History is not news: pass over closed shards, read open ones from now on.
                None if first && closed => Position::Finished,
                None if first => Position::Latest,
                None => Position::Beginning,
            };
            if position == Position::Finished {
                if !known.contains_key(id) {
                    self.checkpoints.save(arn, id, Position::Finished).await?;
                    known.insert(id.to_owned(), Position::Finished);
                }
                continue;
            }
            // A child is read once its parent is read to its end.
            let parent_pending = shard.parent_shard_id().is_some_and(|parent| {
                listed.contains(parent) && known.get(parent) != Some(&Position::Finished)
            });
            if parent_pending {
                continue;
            }
            let reader = ShardReader {
                streams: self.streams.clone(),
                arn: arn.to_owned(),
                shard: id.to_owned(),
                kind: self.kind,
                table: self.table.clone(),
                sender: self.sender.clone(),
                published: self.published.clone(),
                shutdown: self.shutdown.clone(),
                checkpoints: self.checkpoints.clone(),
            };
            // From now on: the iterator is taken before the feed says it is ready, so
            // that everything written after that is read. Should the reader start again
            // before it delivers anything, it resumes with what was written from now on.
            let (position, first_iterator) = if position == Position::Latest {
                let since = Position::Since(SystemTime::now());
                self.checkpoints.save(arn, id, since.clone()).await?;
                let iterator = match reader.iterator(&Position::Latest).await {
                    Ok(iterator) => iterator,
                    Err(err) => {
                        tracing::warn!(table = %self.table, shard = %id, error = ?err, "getting a LATEST iterator failed; reading from the shard's start, without older records");
                        None
                    }
                };
                (since, iterator)
            } else {
                (position, None)
            };
            reading.insert(id.to_owned());
            readers.spawn(reader.read(position, first_iterator));
        }
        if !self.started {
            self.started = true;
            self.ready.send_modify(|tables| *tables += 1);
        }
        Ok(())
    }
}

struct ShardReader {
    streams: StreamsClient,
    arn: String,
    shard: String,
    kind: Kind,
    table: String,
    sender: broadcast::Sender<Event>,
    published: Arc<AtomicU64>,
    shutdown: watch::Receiver<bool>,
    checkpoints: Arc<dyn Checkpoints>,
}

impl ShardReader {
    /// Reads the shard from `position` (or from `first`, an iterator taken already) to
    /// its end (it closed) or until shutdown. Fails only when the stream is gone; anything
    /// else is retried from the checkpoint.
    async fn read(mut self, mut position: Position, first: Option<String>) -> anyhow::Result<()> {
        let mut iterator: Option<String> = first;
        // Records written before this are history (a shard read from "now" that has to
        // start over from its oldest record); once a later record is delivered, every
        // record after it is later too.
        let mut since = match &position {
            Position::Since(since) => Some(*since),
            _ => None,
        };
        // The last record seen, delivered or passed over: nothing at or before it again.
        let mut last: Option<String> = match &position {
            Position::After(sequence) => Some(sequence.clone()),
            _ => None,
        };
        let mut failures = 0;
        loop {
            if *self.shutdown.borrow() {
                return Ok(());
            }
            let current = match iterator.take() {
                Some(current) => current,
                None => match self.iterator(&position).await {
                    Ok(Some(fresh)) => fresh,
                    // No iterator for a shard: it is read to its end.
                    Ok(None) => return self.finished().await,
                    Err(err) if gone(&err) => return self.lost(err).await,
                    Err(err) => {
                        failures += 1;
                        tracing::warn!(table = %self.table, shard = %self.shard, error = ?err, "getting a shard iterator failed; retrying");
                        if self.pause(failures).await {
                            return Ok(());
                        }
                        continue;
                    }
                },
            };
            let result = self
                .streams
                .get_records()
                .shard_iterator(&current)
                .limit(1000)
                .send()
                .await;
            match result {
                Ok(output) => {
                    failures = 0;
                    let records = output.records.unwrap_or_default();
                    let mut delivered = false;
                    for record in &records {
                        let Some(data) = record.dynamodb() else {
                            continue;
                        };
                        let Some(sequence) = data.sequence_number() else {
                            continue;
                        };
                        // Read twice (an iterator renewed at an older position): once only.
                        if last.as_deref().is_some_and(|last| !later(sequence, last)) {
                            continue;
                        }
                        last = Some(sequence.to_owned());
                        let history = since.is_some_and(|since| {
                            data.approximate_creation_date_time()
                                .and_then(|at| SystemTime::try_from(*at).ok())
                                .is_some_and(|at| at + CLOCK_MARGIN <= since)
                        });
                        if history {
                            // Passed over, and not a position: a restart filters again.
                            continue;
                        }
                        since = None;
                        if record.event_name() == Some(&OperationType::Insert)
                            && let Some(image) = data.new_image()
                        {
                            self.publish(image.clone());
                        }
                        position = Position::After(sequence.to_owned());
                        delivered = true;
                    }
                    if delivered {
                        self.save(position.clone()).await;
                    }
                    match output.next_shard_iterator {
                        Some(next) => {
                            iterator = Some(next);
                            if records.is_empty()
                                && sleep_or_shutdown(POLL_INTERVAL, &mut self.shutdown).await
                            {
                                return Ok(());
                            }
                        }
                        None => return self.finished().await,
                    }
                }
                Err(err) => match err.as_service_error() {
                    Some(GetRecordsError::ResourceNotFoundException(_)) => {
                        return self
                            .lost(anyhow::Error::new(err).context(STREAM_GONE))
                            .await;
                    }
                    // Renewed from the position.
                    Some(GetRecordsError::ExpiredIteratorException(_)) => {}
                    Some(GetRecordsError::TrimmedDataAccessException(_)) => {
                        tracing::error!(
                            table = %self.table,
                            shard = %self.shard,
                            after = ?last,
                            "records of the shard were trimmed (24 hours) before they were read: \
                             the events after the last one delivered, up to the oldest one left, \
                             are lost; reading resumes at the oldest one left"
                        );
                        position = Position::Beginning;
                    }
                    _ => {
                        // Throttling or a passing fault: the iterator stays valid.
                        failures += 1;
                        tracing::warn!(table = %self.table, shard = %self.shard, error = ?err, "GetRecords failed; retrying");
                        if self.pause(failures).await {
                            return Ok(());
                        }
                        iterator = Some(current);
                    }
                },
            }
        }
    }

    /// Records a position; a store that fails only costs records read again later.
    async fn save(&self, position: Position) {
        if let Err(err) = self
            .checkpoints
            .save(&self.arn, &self.shard, position)
            .await
        {
            tracing::warn!(table = %self.table, shard = %self.shard, error = ?err, "saving a checkpoint failed");
        }
    }

    async fn finished(&self) -> anyhow::Result<()> {
        tracing::debug!(table = %self.table, shard = %self.shard, "shard read to its end");
        self.save(Position::Finished).await;
        Ok(())
    }

    /// The shard is not found: gone with its records, or with the whole stream. The
    /// shard is done either way; the follower finds out which when it lists the shards.
    async fn lost(&self, err: anyhow::Error) -> anyhow::Result<()> {
        tracing::warn!(table = %self.table, shard = %self.shard, error = ?err, "the shard is not found; its reading ends");
        self.finished().await
    }

    /// Waits after a failure; `true` when the server is shutting down meanwhile.
    async fn pause(&mut self, failures: u32) -> bool {
        let wait = backoff(
            failures.min(6),
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        sleep_or_shutdown(wait.max(Duration::from_millis(50)), &mut self.shutdown).await
    }

    /// An iterator at `position`.
    async fn iterator(&self, position: &Position) -> anyhow::Result<Option<String>> {
        let (kind, after) = match position {
            Position::Latest => (ShardIteratorType::Latest, None),
            Position::After(sequence) => (ShardIteratorType::AfterSequenceNumber, Some(sequence)),
            Position::Since(_) | Position::Beginning => (ShardIteratorType::TrimHorizon, None),
            Position::Finished => return Ok(None),
        };
        let result = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(&self.shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.cloned())
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.shard_iterator),
            // The position was trimmed away: from the oldest record left, and say so.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(GetShardIteratorError::TrimmedDataAccessException(_))
                ) =>
            {
                tracing::error!(
                    table = %self.table,
                    shard = %self.shard,
                    ?position,
                    "the shard's position was trimmed (24 hours) before it was read: the events \
                     after it, up to the oldest one left, are lost; reading resumes at the \
                     oldest one left"
                );
                Box::pin(self.iterator(&Position::Beginning)).await
            }
            Err(err) => {
                let gone = matches!(
                    err.as_service_error(),
                    Some(GetShardIteratorError::ResourceNotFoundException(_))
                );
                let err = anyhow::Error::new(err).context("getting a shard iterator");
                Err(if gone { err.context(STREAM_GONE) } else { err })
            }
        }
    }

    fn publish(&self, image: HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>) {
        let event = match self.kind {
            Kind::Posts => post_from_item(image).map(Event::PostAdded),
            Kind::Comments => comment_from_item(image).map(Event::CommentAdded),
        };
        match event {
            // No subscriber at the moment is fine: nobody to tell.
            Ok(event) => {
                self.published.fetch_add(1, Ordering::SeqCst);
                let _ = self.sender.send(event);
            }
            Err(err) => {
                tracing::warn!(table = %self.table, error = ?err, "skipped a stream record that is not a valid item");
            }
        }
    }
}

/// The context of an error that means the stream (or a shard) is not found: the table was
/// recreated, its stream turned off, or a shard's records are gone.
const STREAM_GONE: &str = "the stream is gone";

fn gone(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.to_string() == STREAM_GONE)
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
        assert!(store.load("s").await.expect("loads").is_empty());
        store
            .save("s", "a", Position::After("7".into()))
            .await
            .expect("saves");
        store
            .save("t", "a", Position::Finished)
            .await
            .expect("saves");
        let s = store.load("s").await.expect("loads");
        assert_eq!(s.get("a"), Some(&Position::After("7".into())));
        assert_eq!(
            store.load("t").await.expect("loads").get("a"),
            Some(&Position::Finished)
        );
    }
}
