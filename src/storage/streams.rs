//! Events from the tables themselves: each server instance reads the DynamoDB Streams of
//! the posts and comments tables and fans the new items out to its own subscribers. So an
//! event fires for a write made through any instance, and for an item put straight into
//! a table by another program (a Da Vinci service, a script), with nothing else to run.
//!
//! Per table: find the stream, list its shards, and read each shard with its own task.
//! Shards that are open when we start are read from LATEST (what happened before is not
//! news); shards that appear later (a shard closes and splits into children) are read
//! from TRIM_HORIZON once their parent is read to its end, so nothing is lost or reordered
//! across the split. Iterators that expire are renewed after the last record seen;
//! throttling and errors back off and retry.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use aws_sdk_dynamodbstreams::{
    Client as StreamsClient,
    operation::get_records::GetRecordsError,
    types::{OperationType, Shard, ShardIteratorType},
};
use tokio::{
    sync::{broadcast, mpsc, watch},
    task::JoinSet,
};

use super::{
    Storage, backoff,
    items::{comment_from_item, post_from_item},
};
use crate::domain::Event;

/// How often an idle shard is polled: events reach subscribers well within a second.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often the shard list is read again when no shard has closed meanwhile.
const DESCRIBE_INTERVAL: Duration = Duration::from_secs(10);
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
    pub fn start_event_feed(&self, shutdown: watch::Receiver<bool>) -> Option<EventFeed> {
        let streams = self.streams.clone()?;
        let (sender, _) = broadcast::channel(FEED_CAPACITY);
        let (ready_tx, ready) = watch::channel(0usize);
        let published = Arc::new(AtomicU64::new(0));
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

struct Follower {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: StreamsClient,
    table: String,
    kind: Kind,
    sender: broadcast::Sender<Event>,
    published: Arc<AtomicU64>,
    ready: watch::Sender<usize>,
    shutdown: watch::Receiver<bool>,
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
        let mut announced = false;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            match self.follow_stream(&mut announced).await {
                Ok(()) => return,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(table = %self.table, error = ?err, "reading the table's stream failed; retrying");
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

    async fn iterator(
        &self,
        arn: &str,
        shard: &str,
        kind: ShardIteratorType,
        after: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        Ok(self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .context("getting a shard iterator")?
            .shard_iterator)
    }

    /// Follows one stream until shutdown (`Ok`) or until something fails (`Err`: the
    /// caller starts over, from the table's current stream).
    async fn follow_stream(&mut self, announced: &mut bool) -> anyhow::Result<()> {
        let arn = self.stream_arn().await?;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let mut readers = JoinSet::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut first = true;
        loop {
            let shards = self.shards(&arn).await?;
            let known: HashMap<&str, &Shard> = shards
                .iter()
                .map(|s| (s.shard_id().unwrap_or_default(), s))
                .collect();
            for shard in &shards {
                let Some(id) = shard.shard_id() else { continue };
                if seen.contains(id) {
                    continue;
                }
                let closed = shard
                    .sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_some());
                let start = if first {
                    // History is not news: skip closed shards, read open ones from now on.
                    if closed {
                        seen.insert(id.to_owned());
                        finished.insert(id.to_owned());
                        continue;
                    }
                    ShardIteratorType::Latest
                } else {
                    // A child is read from its start, once its parent is read to its end.
                    let parent_pending = shard.parent_shard_id().is_some_and(|p| {
                        known.contains_key(p) && seen.contains(p) && !finished.contains(p)
                    });
                    if parent_pending {
                        continue;
                    }
                    ShardIteratorType::TrimHorizon
                };
                let Some(iterator) = self.iterator(&arn, id, start.clone(), None).await? else {
                    continue;
                };
                seen.insert(id.to_owned());
                let reader = ShardReader {
                    streams: self.streams.clone(),
                    arn: arn.clone(),
                    shard: id.to_owned(),
                    kind: self.kind,
                    table: self.table.clone(),
                    sender: self.sender.clone(),
                    published: self.published.clone(),
                    shutdown: self.shutdown.clone(),
                    start,
                };
                let done = done_tx.clone();
                readers.spawn(async move {
                    let shard = reader.shard.clone();
                    let result = reader.read(iterator).await;
                    let _ = done.send(shard);
                    result
                });
            }
            if first {
                first = false;
                if !*announced {
                    *announced = true;
                    self.ready.send_modify(|tables| *tables += 1);
                }
            }
            // Wait for a shard to close (its children are listed then), a reader to fail,
            // the next periodic look at the shard list, or shutdown.
            tokio::select! {
                Some(shard) = done_rx.recv() => {
                    finished.insert(shard);
                }
                Some(result) = readers.join_next(), if !readers.is_empty() => {
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => return Err(err),
                        Err(join) => return Err(anyhow::anyhow!("a shard reader panicked: {join}")),
                    }
                }
                stop = sleep_or_shutdown(DESCRIBE_INTERVAL, &mut self.shutdown) => {
                    if stop {
                        readers.shutdown().await;
                        return Ok(());
                    }
                }
            }
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
    start: ShardIteratorType,
}

impl ShardReader {
    /// Reads the shard to its end (it closed) or until shutdown.
    async fn read(mut self, first: String) -> anyhow::Result<()> {
        let mut iterator = Some(first);
        let mut last: Option<String> = None;
        let mut failures = 0;
        while let Some(current) = iterator.take() {
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
                        if let Some(sequence) = data.sequence_number() {
                            last = Some(sequence.to_owned());
                        }
                        if record.event_name() == Some(&OperationType::Insert)
                            && let Some(image) = data.new_image()
                        {
                            self.publish(image.clone());
                        }
                    }
                    iterator = output.next_shard_iterator;
                    if records.is_empty()
                        && iterator.is_some()
                        && sleep_or_shutdown(POLL_INTERVAL, &mut self.shutdown).await
                    {
                        return Ok(());
                    }
                }
                Err(err) => {
                    let service = err.as_service_error();
                    if matches!(service, Some(GetRecordsError::ResourceNotFoundException(_))) {
                        return Err(anyhow::Error::new(err).context("the stream is gone"));
                    }
                    // An expired iterator is renewed after the last record seen (or where
                    // the shard's reading began); trimmed data skips to the oldest kept.
                    let renew = match service {
                        Some(GetRecordsError::ExpiredIteratorException(_)) => Some(match &last {
                            Some(_) => ShardIteratorType::AfterSequenceNumber,
                            None => self.start.clone(),
                        }),
                        Some(GetRecordsError::TrimmedDataAccessException(_)) => {
                            last = None;
                            Some(ShardIteratorType::TrimHorizon)
                        }
                        _ => None,
                    };
                    match renew {
                        Some(kind) => {
                            iterator = self.renew(kind, last.as_deref()).await?;
                        }
                        None => {
                            // Throttling or a passing fault: the iterator stays valid.
                            failures += 1;
                            tracing::warn!(table = %self.table, shard = %self.shard, error = ?err, "GetRecords failed; retrying");
                            let wait = backoff(
                                failures.min(6),
                                Duration::from_millis(100),
                                Duration::from_secs(5),
                            );
                            if sleep_or_shutdown(
                                wait.max(Duration::from_millis(50)),
                                &mut self.shutdown,
                            )
                            .await
                            {
                                return Ok(());
                            }
                            iterator = Some(current);
                        }
                    }
                }
            }
            if *self.shutdown.borrow() {
                return Ok(());
            }
        }
        tracing::debug!(table = %self.table, shard = %self.shard, "shard closed and read to its end");
        Ok(())
    }

    async fn renew(
        &self,
        kind: ShardIteratorType,
        after: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        let after = match kind {
            ShardIteratorType::AfterSequenceNumber => after,
            _ => None,
        };
        Ok(self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(&self.shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .context("renewing a shard iterator")?
            .shard_iterator)
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
