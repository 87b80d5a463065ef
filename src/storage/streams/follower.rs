//! One table's stream: its shards, listed again now and then, each read by a task.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use aws_sdk_dynamodbstreams::{
    Client as StreamsClient, operation::describe_stream::DescribeStreamError, types::Shard,
};
use tokio::{sync::watch, task::JoinSet};

use super::{
    Kind, Outlet, STREAM_GONE,
    checkpoints::{Checkpoints, Position},
    gone,
    leases::Leases,
    shard::ShardReader,
    sleep_or_shutdown,
};
use crate::storage::{Storage, backoff};

/// How often a relay looks for shards whose lease is free or whose holder is gone.
const LEASE_CHECK: Duration = Duration::from_secs(1);

pub(super) struct Follower {
    pub(super) storage: Storage,
    pub(super) streams: StreamsClient,
    pub(super) table: String,
    pub(super) kind: Kind,
    pub(super) outlet: Outlet,
    /// A relay's leases: only shards whose lease it holds are read.
    pub(super) leases: Option<Arc<Leases>>,
    pub(super) ready: watch::Sender<usize>,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) checkpoints: Arc<dyn Checkpoints>,
    /// Whether the feed has had its first look at the stream: from then on, a shard with
    /// no checkpoint is new, and read from its beginning.
    pub(super) started: bool,
    pub(super) describe_interval: Duration,
}

impl Follower {
    pub(super) async fn run(mut self) {
        let mut failures = 0;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let began = Instant::now();
            match self.follow_stream().await {
                Ok(()) => return,
                Err(err) => {
                    // A failure after a good while of reading starts the backoff afresh.
                    if began.elapsed() > Duration::from_secs(60) {
                        failures = 0;
                    }
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
            .storage
            .client
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
        // The shard list, listed again every `describe_interval` and when a reader ends (a
        // relay looks at the leases of the listed shards more often than that).
        let mut shards: Vec<Shard> = Vec::new();
        let mut listed_at: Option<Instant> = None;
        loop {
            let due = listed_at.is_none_or(|at| at.elapsed() >= self.describe_interval);
            if due {
                match self.shards(&arn).await {
                    Ok(fresh) => {
                        shards = fresh;
                        listed_at = Some(Instant::now());
                    }
                    Err(err) if self.started && !gone(&err) => {
                        listed_at = Some(Instant::now());
                        tracing::warn!(table = %self.table, error = ?err, "listing the stream's shards failed; the shards being read carry on");
                    }
                    Err(err) => {
                        readers.shutdown().await;
                        return Err(err);
                    }
                }
            }
            if let Err(err) = self
                .start_readers(&arn, &shards, &mut readers, &mut reading)
                .await
            {
                readers.shutdown().await;
                return Err(err);
            }
            // Every shard read to its end: the stream was turned off, and perhaps on again
            // as a new one (`create-tables` does that to change what it carries).
            if due
                && readers.is_empty()
                && reading.is_empty()
                && self.stream_arn().await.is_ok_and(|latest| latest != arn)
            {
                tracing::info!(table = %self.table, "the table has a new stream; following it");
                return Err(anyhow::anyhow!(
                    "the table's stream was replaced by a new one"
                ));
            }
            // Wait for a shard to be read to its end (its children can start) or given up
            // (a lease lost), a reader to fail, the next periodic look at the shard list
            // (or, for a relay, at the leases), or shutdown.
            let wait = match self.leases {
                Some(_) => self.describe_interval.min(LEASE_CHECK),
                None => self.describe_interval,
            };
            tokio::select! {
                Some(result) = readers.join_next(), if !readers.is_empty() => {
                    let failed = match result {
                        Ok((shard, Ok(()))) => {
                            reading.remove(&shard);
                            // Its children may start now.
                            listed_at = None;
                            if let Some(leases) = &self.leases {
                                leases.release(&arn, &shard).await;
                            }
                            None
                        }
                        Ok((_, Err(err))) => Some(err),
                        Err(join) => Some(anyhow::anyhow!("a shard reader failed: {join}")),
                    };
                    if let Some(err) = failed {
                        readers.shutdown().await;
                        return Err(err);
                    }
                }
                stop = sleep_or_shutdown(wait, &mut self.shutdown) => {
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
        readers: &mut JoinSet<(String, anyhow::Result<()>)>,
        reading: &mut HashSet<String>,
    ) -> anyhow::Result<()> {
        let ids: Vec<&str> = shards.iter().filter_map(|s| s.shard_id()).collect();
        // Once reading, a failed look at the positions (a relay's leases) waits for the
        // next round; the shards being read carry on.
        let mut known = match self.checkpoints.load(arn, &ids).await {
            Ok(known) => known,
            Err(err) if self.started => {
                tracing::warn!(table = %self.table, error = ?err, "reading the shards' positions failed; trying again later");
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        // With positions on record (another process's, for a store that outlives one), this
        // is not the first look: a shard with none is new.
        let first = !self.started && known.is_empty();
        let listed: HashSet<&str> = shards.iter().filter_map(|s| s.shard_id()).collect();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if reading.contains(id) || *self.shutdown.borrow() {
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
                    match self.checkpoints.save(arn, id, Position::Finished).await {
                        Ok(()) => _ = known.insert(id.to_owned(), Position::Finished),
                        Err(err) => {
                            tracing::warn!(table = %self.table, shard = %id, error = ?err, "marking a shard passed over failed; trying again later");
                        }
                    }
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
            // A relay reads a shard only while it holds its lease, from where the lease
            // says the last holder stopped.
            let (position, lost) = match &self.leases {
                None => (position, None),
                Some(leases) => match leases.acquire(arn, id).await {
                    Err(err) => {
                        tracing::warn!(table = %self.table, shard = %id, error = ?err, "looking at a shard's lease failed; trying again later");
                        continue;
                    }
                    Ok(None) => continue,
                    Ok(Some((Some(Position::Finished), _))) => {
                        leases.release(arn, id).await;
                        continue;
                    }
                    Ok(Some((Some(held), lost))) => (held, Some(lost)),
                    Ok(Some((None, lost))) => (position, Some(lost)),
                },
            };
            let reader = ShardReader {
                streams: self.streams.clone(),
                storage: self.storage.clone(),
                arn: arn.to_owned(),
                shard: id.to_owned(),
                kind: self.kind,
                table: self.table.clone(),
                outlet: self.outlet.clone(),
                shutdown: self.shutdown.clone(),
                checkpoints: self.checkpoints.clone(),
                lost,
            };
            // From now on: the iterator is taken before the feed says it is ready, so
            // that everything written after that is read. Should the reader start again
            // before it delivers anything, it resumes with what was written from now on.
            let (position, first_iterator) = if position == Position::Latest {
                let since = Position::Since(SystemTime::now());
                if let Err(err) = self.checkpoints.save(arn, id, since.clone()).await {
                    // Only a relay's store fails: give the lease back, try again later.
                    tracing::warn!(table = %self.table, shard = %id, error = ?err, "saving where a shard's reading begins failed; trying again later");
                    if let Some(leases) = &self.leases {
                        leases.release(arn, id).await;
                    }
                    continue;
                }
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
            let shard = id.to_owned();
            readers.spawn(async move { (shard, reader.read(position, first_iterator).await) });
        }
        if !self.started {
            self.started = true;
            self.ready.send_modify(|tables| *tables += 1);
        }
        Ok(())
    }
}
