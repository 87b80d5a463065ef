//! One shard's records, read to the shard's end and delivered once each.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use aws_sdk_dynamodbstreams::{
    Client as StreamsClient,
    operation::{get_records::GetRecordsError, get_shard_iterator::GetShardIteratorError},
    types::{OperationType, ShardIteratorType},
};
use tokio::sync::watch;

use super::{
    CLOCK_MARGIN, Kind, Outlet, POLL_INTERVAL, STREAM_GONE,
    checkpoints::{Checkpoints, Position, later},
    gone, sleep_or_shutdown,
};
use crate::{
    domain::{Comment, Event, Post},
    storage::{
        Storage,
        attributes::{CONTENT, TITLE},
        backoff,
        counted::{Change, Counting},
        items::{comment_from_item, post_from_item},
    },
};

pub(super) struct ShardReader {
    pub(super) streams: StreamsClient,
    pub(super) storage: Storage,
    pub(super) arn: String,
    pub(super) shard: String,
    pub(super) kind: Kind,
    pub(super) table: String,
    pub(super) outlet: Outlet,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) checkpoints: Arc<dyn Checkpoints>,
    /// A relay's lease on the shard: reading stops when it turns true (another relay
    /// holds the shard now). `None` for an instance that reads every shard itself.
    pub(super) lost: Option<watch::Receiver<bool>>,
}

impl ShardReader {
    /// Reads the shard from `position` (or from `first`, an iterator taken already) to
    /// its end (it closed) or until shutdown. Fails only when the stream is gone; anything
    /// else is retried from the checkpoint.
    pub(super) async fn read(
        mut self,
        mut position: Position,
        first: Option<String>,
    ) -> anyhow::Result<()> {
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
            if self.stopping() {
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
                    let mut events = Vec::new();
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
                        if let Some(change) = record.event_name()
                            && let Some(event) =
                                self.event(change, data.old_image(), data.new_image())
                        {
                            events.push((sequence.to_owned(), event));
                        }
                        position = Position::After(sequence.to_owned());
                        delivered = true;
                    }
                    // Counted first, so that a subscriber told of a comment reads the
                    // count with it; then published; then the position moves past them.
                    let handed_on = events.is_empty()
                        || (self.count(&events).await && self.deliver(&events).await);
                    if !handed_on {
                        return Ok(());
                    }
                    if delivered {
                        self.save(position.clone()).await;
                    }
                    // How far behind the table the reader is: the age of the newest record.
                    let newest = records
                        .last()
                        .and_then(|record| record.dynamodb())
                        .and_then(|data| data.approximate_creation_date_time())
                        .and_then(|at| SystemTime::try_from(*at).ok());
                    if let Some(newest) = newest {
                        let age = SystemTime::now().duration_since(newest).unwrap_or_default();
                        crate::metrics::stream_lag(self.kind.role(), age);
                    } else if records.is_empty() {
                        // Caught up: nothing newer to read.
                        crate::metrics::stream_lag(self.kind.role(), Duration::ZERO);
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
    pub(super) async fn iterator(&self, position: &Position) -> anyhow::Result<Option<String>> {
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

    /// Whether to stop reading: the server shuts down, or the shard's lease is lost.
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.lost.as_ref().is_some_and(|lost| *lost.borrow())
    }

    /// Counts the changes of comments that no transaction counted (written by another
    /// program), and gives posts written without a counter one. `false` if reading stops
    /// first; failures are retried, since a record's counting cannot be done later.
    async fn count(&mut self, events: &[(String, Event)]) -> bool {
        let mut changes = Vec::new();
        let mut uncounted_posts = Vec::new();
        for (_, event) in events {
            match event {
                Event::CommentAdded(comment) => changes.push((Change::Added, comment.clone())),
                Event::CommentDeleted(comment) => {
                    changes.push((Change::Removed, comment.clone()));
                }
                Event::PostAdded(post) if post.comment_count.is_none() => {
                    uncounted_posts.push(post.id.clone());
                }
                _ => {}
            }
        }
        let mut failures = 0;
        loop {
            let mut result = self.storage.count_changes(&changes).await.map(|outcomes| {
                for ((change, _), outcome) in changes.iter().zip(outcomes) {
                    if outcome == Counting::Counted {
                        crate::metrics::comment_counted(match change {
                            Change::Added => "added",
                            Change::Removed => "removed",
                        });
                    }
                }
            });
            if result.is_ok() {
                for post in &uncounted_posts {
                    result = self.storage.make_comment_counter(post).await;
                    if result.is_err() {
                        break;
                    }
                }
            }
            match result {
                Ok(()) => return true,
                // A fault that will not pass (a malformed item, a request DynamoDB refuses,
                // a permission missing) must not stop the stream: logged, and passed over.
                Err(err) if !err.is_transient() => {
                    tracing::error!(table = %self.table, shard = %self.shard, error = ?err, "counting comments written without the API failed for good; these changes are not counted (`recount` repairs them)");
                    return true;
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(table = %self.table, shard = %self.shard, error = ?err, "counting comments written without the API failed; retrying");
                    if self.pause(failures).await || self.stopping() {
                        return false;
                    }
                }
            }
        }
    }

    /// Hands the events to subscribers (this instance's, or the engine); `false` if
    /// reading stops first.
    async fn deliver(&mut self, events: &[(String, Event)]) -> bool {
        let mut failures = 0;
        loop {
            // A relay that lost the shard's lease publishes nothing more of it.
            if self.stopping() {
                return false;
            }
            let source = format!("{}/{}", self.arn, self.shard);
            match self.outlet.deliver(&source, events).await {
                Ok(()) => return true,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(table = %self.table, shard = %self.shard, error = ?err, "publishing events failed; retrying");
                    if self.pause(failures).await || self.stopping() {
                        return false;
                    }
                }
            }
        }
    }

    /// The event a change of an item is, if it is one: an item added, edited (a post's
    /// title or content, a comment's content: a post's counter moving is no edit) or
    /// removed.
    fn event(
        &self,
        change: &OperationType,
        old: Option<&Image>,
        new: Option<&Image>,
    ) -> Option<Event> {
        let event = match (change, old, new) {
            (OperationType::Insert, _, Some(new)) => {
                self.decode(new, Event::PostAdded, Event::CommentAdded)
            }
            (OperationType::Modify, Some(old), Some(new)) => {
                let edited = match self.kind {
                    Kind::Posts => [TITLE, CONTENT]
                        .iter()
                        .any(|name| old.get(*name) != new.get(*name)),
                    Kind::Comments => old.get(CONTENT) != new.get(CONTENT),
                };
                if !edited {
                    return None;
                }
                self.decode(new, Event::PostUpdated, Event::CommentUpdated)
            }
            // A stream of new images only (before `create-tables` switched it over): an
            // edit of a comment is the only change a comment has.
            (OperationType::Modify, None, Some(new)) if self.kind == Kind::Comments => {
                self.decode(new, Event::PostUpdated, Event::CommentUpdated)
            }
            (OperationType::Remove, Some(old), _) => {
                self.decode(old, Event::PostDeleted, Event::CommentDeleted)
            }
            _ => return None,
        };
        event
            .inspect_err(|err| {
                tracing::warn!(table = %self.table, error = ?err, "skipped a stream record that is not a valid item");
            })
            .ok()
    }

    fn decode(
        &self,
        image: &Image,
        post: fn(Post) -> Event,
        comment: fn(Comment) -> Event,
    ) -> anyhow::Result<Event> {
        match self.kind {
            Kind::Posts => post_from_item(image.clone()).map(post),
            Kind::Comments => comment_from_item(image.clone()).map(comment),
        }
    }
}

/// An item as a stream record carries it.
type Image = HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>;
