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
    operation::{get_records::GetRecordsError, get_shard_iterator::GetShardIteratorError},
    types::{OperationType, Shard, ShardIteratorType},
};
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

/// Where each shard's reading stands, so that reading resumes where it stopped.
pub trait Checkpoints: Send + Sync {
    fn load(&self, stream: &str, shard: &str) -> Option<Position>;
    fn save(&self, stream: &str, shard: &str, position: Position);
}

/// Checkpoints in memory: they last as long as the process.
#[derive(Default)]
pub struct MemoryCheckpoints(Mutex<HashMap<(String, String), Position>>);

impl Checkpoints for MemoryCheckpoints {
    fn load(&self, stream: &str, shard: &str) -> Option<Position> {
        let positions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        positions
            .get(&(stream.to_owned(), shard.to_owned()))
            .cloned()
    }

    fn save(&self, stream: &str, shard: &str, position: Position) {
        let mut positions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        positions.insert((stream.to_owned(), shard.to_owned()), position);
    }
}

/// Whether sequence number `a` comes after `b` (both are decimal numbers of any length).
fn later(a: &str, b: &str) -> bool {
    match a.len().cmp(&b.len()) {
        Order::Equal => a > b,
        longer => longer == Order::Greater,
    }
}

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
                .await
                .context("describing the stream")?;
            let description = output.stream_description.context("no stream description")?;
            shards.extend(description.shards.unwrap_or_default());
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                return Ok(shards);
            }
        }
    }

    /// Where a shard's reading starts: its checkpoint, or, for a shard never read, now
    /// (at the first look) or its beginning (later).
    fn position(&self, arn: &str, shard: &Shard) -> Option<Position> {
        let id = shard.shard_id()?;
        if let Some(position) = self.checkpoints.load(arn, id) {
            return Some(position);
        }
        let closed = shard
            .sequence_number_range()
            .is_some_and(|r| r.ending_sequence_number().is_some());
        Some(match (self.started, closed) {
            // History is not news: pass over closed shards, read open ones from now on.
            (false, true) => Position::Finished,
            (false, false) => Position::Latest,
            (true, _) => Position::Beginning,
        })
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
            match self.shards(&arn).await {
                Ok(shards) => self.start_readers(&arn, &shards, &mut readers, &mut reading),
                Err(err) if self.started => {
                    tracing::warn!(table = %self.table, error = ?err, "listing the stream's shards failed; the shards being read carry on");
                }
                Err(err) => return Err(err),
            }
            // Wait for a shard to be read to its end (its children can start), a reader to
            // fail, the next periodic look at the shard list, or shutdown.
            tokio::select! {
                Some(result) = readers.join_next(), if !readers.is_empty() => {
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            readers.shutdown().await;
                            return Err(err);
                        }
                        Err(join) => {
                            readers.shutdown().await;
                            return Err(anyhow::anyhow!("a shard reader failed: {join}"));
                        }
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

    fn start_readers(
        &mut self,
        arn: &str,
        shards: &[Shard],
        readers: &mut JoinSet<anyhow::Result<()>>,
        reading: &mut HashSet<String>,
    ) {
        let known: HashSet<&str> = shards.iter().filter_map(|s| s.shard_id()).collect();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if reading.contains(id) {
                continue;
            }
            let Some(position) = self.position(arn, shard) else {
                continue;
            };
            if position == Position::Finished {
                self.checkpoints.save(arn, id, Position::Finished);
                continue;
            }
            // A child is read once its parent is read to its end.
            let parent_pending = shard.parent_shard_id().is_some_and(|parent| {
                known.contains(parent)
                    && self.checkpoints.load(arn, parent) != Some(Position::Finished)
            });
            if parent_pending {
                continue;
            }
            if position == Position::Latest {
                // Were this reader to start again before it delivers anything, it
                // resumes with what was written from now on.
                self.checkpoints
                    .save(arn, id, Position::Since(SystemTime::now()));
            }
            reading.insert(id.to_owned());
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
            readers.spawn(reader.read(position));
        }
        if !self.started {
            self.started = true;
            self.ready.send_modify(|tables| *tables += 1);
        }
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
    /// Reads the shard from `position` to its end (it closed) or until shutdown. Fails
    /// only when the stream is gone; anything else is retried from the checkpoint.
    async fn read(mut self, mut position: Position) -> anyhow::Result<()> {
        let mut iterator: Option<String> = None;
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
                    // No iterator for a shard: it is gone with its records (trimmed).
                    Ok(None) => {
                        self.checkpoints
                            .save(&self.arn, &self.shard, Position::Finished);
                        return Ok(());
                    }
                    Err(err) if gone(&err) => return Err(err),
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
                        let history = match &position {
                            Position::Since(since) => data
                                .approximate_creation_date_time()
                                .and_then(|at| SystemTime::try_from(*at).ok())
                                .is_some_and(|at| at + Duration::from_secs(1) <= *since),
                            _ => false,
                        };
                        if !history
                            && record.event_name() == Some(&OperationType::Insert)
                            && let Some(image) = data.new_image()
                        {
                            self.publish(image.clone());
                        }
                        last = Some(sequence.to_owned());
                        position = Position::After(sequence.to_owned());
                        self.checkpoints
                            .save(&self.arn, &self.shard, position.clone());
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
                        None => {
                            tracing::debug!(table = %self.table, shard = %self.shard, "shard closed and read to its end");
                            self.checkpoints
                                .save(&self.arn, &self.shard, Position::Finished);
                            return Ok(());
                        }
                    }
                }
                Err(err) => match err.as_service_error() {
                    Some(GetRecordsError::ResourceNotFoundException(_)) => {
                        return Err(anyhow::Error::new(err).context(STREAM_GONE));
                    }
                    // Renewed from the checkpoint.
                    Some(GetRecordsError::ExpiredIteratorException(_)) => {}
                    Some(GetRecordsError::TrimmedDataAccessException(_)) => {
                        tracing::error!(
                            table = %self.table,
                            shard = %self.shard,
                            after = ?last,
                            "records of the shard were trimmed (24 hours) before they were read: \
                             events between the last one delivered and the oldest one left are lost"
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
                    "the shard's position was trimmed (24 hours) before it was read: \
                     events up to the oldest one left are lost"
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

/// The context of an error that means the stream is gone (the table was recreated, or
/// its stream turned off): the follower starts over with the table's current stream.
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

    #[test]
    fn checkpoints_remember_each_shard_of_each_stream() {
        let store = MemoryCheckpoints::default();
        assert_eq!(store.load("s", "a"), None);
        store.save("s", "a", Position::After("7".into()));
        store.save("t", "a", Position::Finished);
        assert_eq!(store.load("s", "a"), Some(Position::After("7".into())));
        assert_eq!(store.load("t", "a"), Some(Position::Finished));
    }
}
