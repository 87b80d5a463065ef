//! The event engine of the scale-out mode: a Redis (or Valkey: Amazon ElastiCache) channel.
//! Relays publish every event there once they have counted it; serving instances
//! subscribe instead of reading the streams, so any number of them can run.
//!
//! A message names the shard its record came from and the record's sequence number. A
//! relay that takes a shard over publishes again what its predecessor published after its
//! last checkpoint; a serving instance keeps the last sequence number it passed on per
//! shard and drops anything at or before it, so subscribers get each event once, in the
//! shard's order. Redis's pub/sub keeps no history: while an instance is cut off from it,
//! events pass it by, so its subscriptions end with an error (clients subscribe again
//! and read what they missed), and `/ready` says so until it is back.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::StreamExt as _;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, broadcast, watch};

use super::{checkpoints::later, sleep_or_shutdown};
use crate::{
    domain::Event,
    storage::{
        backoff,
        items::{event_from_json, event_to_json},
    },
};

/// How long a call to the engine may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a subscribed instance checks that its connection still answers.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// How long a shard's last sequence number is remembered without news from it: a
/// stream's records live 24 hours, so none can come again after that.
const FORGET_AFTER: Duration = Duration::from_secs(25 * 3600);

/// Where the engine is, and the channel of this deployment's events.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// `redis://host:port` (or `rediss://` for TLS).
    pub url: String,
    /// The channel: one per deployment, so deployments can share an engine.
    pub channel: String,
}

impl EngineSettings {
    /// The engine at `url`, on the channel of the deployment whose tables are `tables`.
    pub fn new(url: &str, tables: &crate::storage::Tables) -> Self {
        // `{app}-{deployment}-posts` names the deployment.
        let deployment = tables.posts.strip_suffix("-posts").unwrap_or(&tables.posts);
        Self {
            url: url.to_owned(),
            channel: format!("{deployment}-events"),
        }
    }
}

/// How often a relay says on the channel that it runs.
pub(super) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// How long without a relay's heartbeat before serving instances call the relays silent.
const RELAYS_SILENT_AFTER: Duration = Duration::from_secs(6);

/// What goes on the channel: an event, or a relay's heartbeat.
#[derive(Deserialize)]
#[serde(untagged)]
enum Wire {
    Heartbeat {
        /// The relay's name.
        heartbeat: String,
        /// How many shard leases it holds.
        #[serde(default)]
        leases: usize,
    },
    Event(Message),
}

/// Whether a relay that holds leases (reads shards) was heard lately: serving instances
/// say so in `/ready`, since without one no event comes, however well the instance is
/// subscribed.
#[derive(Clone, Default)]
pub(super) struct RelaysHeard(Arc<std::sync::Mutex<Option<Instant>>>);

impl RelaysHeard {
    fn heard(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    pub(super) fn active(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < RELAYS_SILENT_AFTER)
    }
}

/// One event on the channel.
#[derive(Serialize, Deserialize)]
struct Message {
    /// The stream and shard its record came from.
    source: String,
    /// The record's sequence number in that shard.
    seq: String,
    event: serde_json::Value,
}

/// A relay's connection to the engine, made again after a failure.
pub(super) struct Publisher {
    client: redis::Client,
    channel: String,
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl Publisher {
    pub(super) fn new(settings: &EngineSettings) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(settings.url.as_str()).context("REDIS_URL")?,
            channel: settings.channel.clone(),
            connection: Mutex::new(None),
        })
    }

    /// Says on the channel that relay `relay` runs, and how many shard leases it holds
    /// (`leases`), every [`HEARTBEAT_INTERVAL`] until `shutdown`.
    pub(super) async fn heartbeats(
        &self,
        relay: String,
        leases: impl Fn() -> usize,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let message = serde_json::json!({ "heartbeat": relay, "leases": leases() });
            let mut pipe = redis::pipe();
            pipe.publish(&self.channel, message.to_string()).ignore();
            if let Err(err) = self.send(pipe).await {
                tracing::debug!(error = ?err, "a heartbeat did not reach the engine");
            }
            if sleep_or_shutdown(HEARTBEAT_INTERVAL, &mut shutdown).await {
                return;
            }
        }
    }

    /// Publishes a shard's events, in order, and returns once the engine took them all.
    pub(super) async fn publish(
        &self,
        source: &str,
        events: &[(String, Event)],
    ) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (seq, event) in events {
            let message = serde_json::to_string(&Message {
                source: source.to_owned(),
                seq: seq.clone(),
                event: event_to_json(event)?,
            })?;
            pipe.publish(&self.channel, message).ignore();
        }
        self.send(pipe).await?;
        crate::metrics::engine_events("published", events.len() as u64);
        Ok(())
    }

    /// Sends commands on the connection (made again if the last one failed).
    async fn send(&self, pipe: redis::Pipeline) -> anyhow::Result<()> {
        let mut slot = self.connection.lock().await;
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => {
                tokio::time::timeout(CALL_TIMEOUT, self.client.get_multiplexed_async_connection())
                    .await
                    .context("connecting to the engine timed out")?
                    .context("connecting to the engine")?
            }
        };
        let sent: redis::RedisResult<()> =
            tokio::time::timeout(CALL_TIMEOUT, pipe.query_async(&mut connection))
                .await
                .context("publishing to the engine timed out")?;
        sent.context("publishing to the engine")?;
        *slot = Some(connection);
        Ok(())
    }
}

/// What a serving instance's subscription to the engine feeds.
pub(super) struct Subscriber {
    pub(super) settings: EngineSettings,
    pub(super) sender: broadcast::Sender<Event>,
    pub(super) published: Arc<AtomicU64>,
    /// 2 while subscribed (the two tables' events arrive), 0 while not.
    pub(super) ready: watch::Sender<usize>,
    /// Raised each time the subscription is lost: subscriptions that began before end.
    pub(super) interrupted: watch::Sender<u64>,
    /// When a relay's heartbeat last came.
    pub(super) relays: RelaysHeard,
    pub(super) shutdown: watch::Receiver<bool>,
}

impl Subscriber {
    /// Stays subscribed until shutdown, subscribing again after every failure.
    pub(super) async fn run(mut self) {
        let client = match redis::Client::open(self.settings.url.as_str()) {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = ?err, "REDIS_URL is not a Redis address; no events");
                return;
            }
        };
        crate::metrics::engine_connected(false);
        // The last sequence number passed on, per shard, and when.
        let mut last: HashMap<String, (String, Instant)> = HashMap::new();
        let mut failures = 0u32;
        loop {
            match self.follow(&client, &mut last).await {
                Ok(()) => return,
                Err(err) => {
                    if self.ready.send_replace(0) > 0 {
                        self.interrupted.send_modify(|count| *count += 1);
                        crate::metrics::engine_connected(false);
                        failures = 0;
                    }
                    failures += 1;
                    tracing::warn!(error = ?err, "the event engine is out of reach; subscribing again");
                }
            }
            let wait = backoff(
                failures.min(6),
                Duration::from_millis(200),
                Duration::from_secs(5),
            );
            if sleep_or_shutdown(wait.max(Duration::from_millis(100)), &mut self.shutdown).await {
                return;
            }
        }
    }

    /// One subscription, until shutdown (`Ok`) or until the connection fails.
    async fn follow(
        &self,
        client: &redis::Client,
        last: &mut HashMap<String, (String, Instant)>,
    ) -> anyhow::Result<()> {
        let mut pubsub = tokio::time::timeout(CALL_TIMEOUT, client.get_async_pubsub())
            .await
            .context("connecting timed out")??;
        tokio::time::timeout(CALL_TIMEOUT, pubsub.subscribe(&self.settings.channel))
            .await
            .context("subscribing timed out")??;
        let (mut sink, mut messages) = pubsub.split();
        tracing::info!(channel = %self.settings.channel, "subscribed to the event engine");
        self.ready.send_replace(2);
        crate::metrics::engine_connected(true);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let mut forget = tokio::time::interval(Duration::from_secs(3600));
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        anyhow::bail!("the engine closed the connection");
                    };
                    self.pass_on(message.get_payload_bytes(), last);
                }
                _ = ping.tick() => {
                    let answered: redis::RedisResult<()> =
                        tokio::time::timeout(CALL_TIMEOUT, sink.ping())
                            .await
                            .context("the engine did not answer a ping")?;
                    answered.context("pinging the engine")?;
                }
                _ = forget.tick() => {
                    last.retain(|_, (_, at)| at.elapsed() < FORGET_AFTER);
                }
                () = async { _ = shutdown.wait_for(|stop| *stop).await; } => return Ok(()),
            }
        }
    }

    /// Passes an event on to this instance's subscribers, unless it was passed on before.
    fn pass_on(&self, payload: &[u8], last: &mut HashMap<String, (String, Instant)>) {
        let message = match serde_json::from_slice(payload) {
            Ok(Wire::Event(message)) => message,
            Ok(Wire::Heartbeat { heartbeat, leases }) => {
                tracing::trace!(relay = %heartbeat, leases, "a relay's heartbeat");
                // A relay that reads nothing is no relay for events.
                if leases > 0 {
                    self.relays.heard();
                }
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "skipped a message on the events channel that is not an event");
                return;
            }
        };
        crate::metrics::engine_events("received", 1);
        let seen = last
            .get(&message.source)
            .is_some_and(|(seq, _)| !later(&message.seq, seq));
        if seen {
            crate::metrics::engine_events("duplicate", 1);
            return;
        }
        match event_from_json(message.event) {
            Ok(event) => {
                last.insert(message.source, (message.seq, Instant::now()));
                self.published.fetch_add(1, Ordering::SeqCst);
                let _ = self.sender.send(event);
            }
            Err(err) => tracing::warn!(error = ?err, "skipped an event from the engine"),
        }
    }
}
