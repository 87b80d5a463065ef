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
//! The store is in memory for an instance that reads the streams itself.
//!
//! The reader also keeps every post's `CommentCount` exact for comments written or deleted
//! by other programs (`storage::counted`).
//!
//! In the scale-out mode, relays read the streams instead, each shard by the one relay
//! that holds its lease ([`leases`], where its position is kept too), and publish the
//! events to an engine ([`engine`]) that serving instances subscribe to.
//!
//! Here: the instance's event hub, which subscribers listen to. The reading itself is in
//! [`follower`] (a table's stream and its shards) and [`shard`] (one shard's records);
//! where each shard stands, in [`checkpoints`].

mod checkpoints;
mod engine;
mod follower;
mod leases;
mod shard;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{broadcast, watch};

pub use self::engine::EngineSettings;
use self::{
    checkpoints::{Checkpoints, MemoryCheckpoints},
    engine::{Publisher, RelaysHeard, Subscriber},
    follower::Follower,
    leases::Leases,
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
    interrupted: watch::Receiver<u64>,
    /// In the scale-out mode: when a relay was last heard.
    relays: Option<RelaysHeard>,
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

    /// Waits until both tables' streams are being read (or, in the scale-out mode, the
    /// instance is subscribed to the engine): events written from then on reach
    /// subscribers.
    pub async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|tables| *tables >= 2).await;
    }

    /// Whether events arrive now: always once the streams are read; in the scale-out
    /// mode, while the instance is subscribed to the engine.
    pub fn connected(&self) -> bool {
        *self.ready.borrow() >= 2
    }

    /// Whether events come from an engine (the scale-out mode).
    pub fn from_engine(&self) -> bool {
        self.relays.is_some()
    }

    /// In the scale-out mode, whether a relay's heartbeat came lately (without a relay,
    /// no event comes); `None` in the default mode.
    pub fn relays_active(&self) -> Option<bool> {
        self.relays.as_ref().map(RelaysHeard::active)
    }

    /// Turns each time the feed loses events (its engine out of reach): subscriptions
    /// that began before then have missed some, and end.
    pub fn interruptions(&self) -> watch::Receiver<u64> {
        self.interrupted.clone()
    }
}

/// How a relay is doing, for its `/ready`: filled in once it runs.
#[derive(Clone, Default)]
pub struct RelayStatus {
    leases: Arc<std::sync::OnceLock<Arc<Leases>>>,
    started: Arc<std::sync::OnceLock<watch::Receiver<usize>>>,
}

impl RelayStatus {
    /// Whether both streams are being looked at (their shards' leases taken or watched).
    pub fn ready(&self) -> bool {
        self.started
            .get()
            .is_some_and(|started| *started.borrow() >= 2)
    }

    /// How many shard leases the relay holds.
    pub fn leases(&self) -> usize {
        self.leases.get().map_or(0, |leases| leases.held())
    }
}

/// Where a reader's events go.
#[derive(Clone)]
enum Outlet {
    /// To this instance's subscribers.
    Local {
        sender: broadcast::Sender<Event>,
        published: Arc<AtomicU64>,
    },
    /// To the engine, for every serving instance (a relay).
    Engine(Arc<Publisher>),
}

impl Outlet {
    /// Hands a shard's events on, in order: `source` names the stream and shard.
    async fn deliver(&self, source: &str, events: &[(String, Event)]) -> anyhow::Result<()> {
        match self {
            Self::Local { sender, published } => {
                for (_, event) in events {
                    published.fetch_add(1, Ordering::SeqCst);
                    // No subscriber at the moment is fine: nobody to tell.
                    let _ = sender.send(event.clone());
                }
                Ok(())
            }
            Self::Engine(publisher) => publisher.publish(source, events).await,
        }
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

/// A feed with nothing in it yet (`relays`: the scale-out mode's).
fn feed(
    relays: Option<RelaysHeard>,
) -> (
    EventFeed,
    broadcast::Sender<Event>,
    watch::Sender<usize>,
    watch::Sender<u64>,
) {
    let (sender, _) = broadcast::channel(FEED_CAPACITY);
    let (ready_tx, ready) = watch::channel(0usize);
    let (interrupted_tx, interrupted) = watch::channel(0u64);
    let feed = EventFeed {
        sender: sender.clone(),
        ready,
        published: Arc::new(AtomicU64::new(0)),
        interrupted,
        relays,
    };
    (feed, sender, ready_tx, interrupted_tx)
}

impl Storage {
    /// Starts reading the posts' and comments' streams until `shutdown` turns true,
    /// keeping comment counters exact and feeding this instance's subscribers. `None`
    /// for a storage without a streams client (one made in tests from a mock). The
    /// shard list is read again every `describe_interval`, for new shards.
    pub fn start_event_feed(
        &self,
        shutdown: watch::Receiver<bool>,
        describe_interval: Duration,
    ) -> Option<EventFeed> {
        let (feed, sender, ready, _) = feed(None);
        let outlet = Outlet::Local {
            sender,
            published: feed.published.clone(),
        };
        let checkpoints: Arc<dyn Checkpoints> = Arc::new(MemoryCheckpoints::default());
        self.follow_streams(
            outlet,
            None,
            checkpoints,
            ready,
            shutdown,
            describe_interval,
        )?;
        Some(feed)
    }

    /// The scale-out mode's feed of a serving instance: the engine's events, subscribed
    /// to until `shutdown` (and again after every failure). No stream is read.
    pub fn start_engine_feed(
        &self,
        settings: EngineSettings,
        shutdown: watch::Receiver<bool>,
    ) -> EventFeed {
        let relays = RelaysHeard::default();
        let (feed, sender, ready, interrupted) = feed(Some(relays.clone()));
        let subscriber = Subscriber {
            settings,
            sender,
            published: feed.published.clone(),
            ready,
            interrupted,
            relays,
            shutdown,
        };
        tokio::spawn(subscriber.run());
        feed
    }

    /// The relay of the scale-out mode: reads the shards whose leases it takes (as
    /// `owner`), keeps comment counters exact, and publishes every event to the engine,
    /// until `shutdown`; then waits for its readers to stop and gives its leases back, so
    /// that another relay takes over at once. `status` says how it is doing meanwhile.
    pub async fn run_relay(
        &self,
        settings: &EngineSettings,
        owner: String,
        shutdown: watch::Receiver<bool>,
        describe_interval: Duration,
        status: &RelayStatus,
    ) -> anyhow::Result<()> {
        let publisher = Arc::new(Publisher::new(settings)?);
        let (leases, renewing) = Leases::start(
            self.client.clone(),
            self.tables.idempotency.clone(),
            owner.clone(),
            shutdown.clone(),
        );
        let heartbeats = {
            let (publisher, leases) = (publisher.clone(), leases.clone());
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                publisher
                    .heartbeats(owner, move || leases.held(), shutdown)
                    .await;
            })
        };
        let (ready, started) = watch::channel(0usize);
        let checkpoints: Arc<dyn Checkpoints> = leases.clone();
        let followers = self
            .follow_streams(
                Outlet::Engine(publisher),
                Some(leases.clone()),
                checkpoints,
                ready,
                shutdown,
                describe_interval,
            )
            .ok_or_else(|| anyhow::anyhow!("this storage has no streams client"))?;
        let _ = status.leases.set(leases.clone());
        let _ = status.started.set(started);
        for follower in followers {
            if let Err(err) = follower.await {
                tracing::error!(error = %err, "a stream follower failed");
            }
        }
        let _ = renewing.await;
        // Given back at once, so that the other relay takes over without waiting.
        leases.release_all().await;
        heartbeats.abort();
        Ok(())
    }

    fn follow_streams(
        &self,
        outlet: Outlet,
        leases: Option<Arc<Leases>>,
        checkpoints: Arc<dyn Checkpoints>,
        ready: watch::Sender<usize>,
        shutdown: watch::Receiver<bool>,
        describe_interval: Duration,
    ) -> Option<Vec<tokio::task::JoinHandle<()>>> {
        let streams = self.streams.clone()?;
        let mut followers = Vec::new();
        for (table, kind) in [
            (self.tables.posts.clone(), Kind::Posts),
            (self.tables.comments.clone(), Kind::Comments),
        ] {
            let follower = Follower {
                storage: self.clone(),
                streams: streams.clone(),
                table,
                kind,
                outlet: outlet.clone(),
                leases: leases.clone(),
                ready: ready.clone(),
                shutdown: shutdown.clone(),
                checkpoints: checkpoints.clone(),
                started: false,
                describe_interval,
            };
            followers.push(tokio::spawn(follower.run()));
        }
        Some(followers)
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
