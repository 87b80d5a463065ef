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
//!
//! Here: the instance's event hub, which subscribers listen to. The reading itself is in
//! [`follower`] (a table's stream and its shards) and [`shard`] (one shard's records);
//! where each shard stands, in [`checkpoints`].

mod checkpoints;
mod follower;
mod shard;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{broadcast, watch};

use self::{
    checkpoints::{Checkpoints, MemoryCheckpoints},
    follower::Follower,
};
use super::Storage;
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
    /// A receiver of the events published from now on.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Posts,
    Comments,
}

impl Kind {
    /// The table's role, as metrics label it.
    fn role(self) -> &'static str {
        match self {
            Self::Posts => "posts",
            Self::Comments => "comments",
        }
    }
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

/// How far before reading began a record may have been written and still be delivered:
/// a record's creation time is rounded down (to the second on AWS, to the minute by
/// DynamoDB Local) and clocks disagree a little, and delivering a minute of old records
/// after a restart beats skipping a new one.
const CLOCK_MARGIN: Duration = Duration::from_secs(65);

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

/// The context of an error that means the stream (or a shard) is not found: the table was
/// recreated, its stream turned off, or a shard's records are gone.
const STREAM_GONE: &str = "the stream is gone";

fn gone(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.to_string() == STREAM_GONE)
}
