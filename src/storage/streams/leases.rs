//! Leases on shards, for relays: exactly one relay reads a shard at a time, and where it
//! stands is kept with its lease, so that the next holder resumes there. Held in DynamoDB
//! with conditional writes, as the Kinesis Client Library holds its leases:
//!
//! - A lease is an item of the idempotency table (`lease:<stream>:<shard>`): its `Owner`,
//!   a `Counter` that the owner raises every [`RENEW_INTERVAL`], and the shard's
//!   `Position`.
//! - Another relay takes a lease that has no owner at once, and one whose counter it has
//!   seen standing still for [`LEASE_DURATION`] (measured on its own clock, so the relays'
//!   clocks need not agree): the holder is gone. It takes it on the condition that the
//!   counter is still the one it saw, so that of two relays only one wins.
//! - A holder that fails to renew (another took the lease) stops reading at once; one that
//!   cannot reach DynamoDB for [`LEASE_DURATION`] stops too, as another may have taken
//!   it. Positions are saved on the condition that the saver still owns the lease.
//! - A holder that stops (shutdown, shard read to its end) gives its leases back.
//!
//! A new holder reads again what the old one published after its last checkpoint; the
//! serving instances drop what they have seen (by shard and sequence number), so no
//! subscriber gets an event twice.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use aws_sdk_dynamodb::{
    Client,
    operation::update_item::UpdateItemError,
    types::{AttributeValue, KeysAndAttributes, ReturnValue},
};
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::{
    checkpoints::{Checkpoints, Position},
    sleep_or_shutdown,
};
use crate::storage::{
    attributes::{CLAIM_KEY, EXPIRES_AT},
    batch::MAX_BATCH_KEYS,
    writes::{n, number, s, string},
};

/// How often a holder raises its leases' counters.
const RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// How long a lease's counter must stand still before another relay takes it.
const LEASE_DURATION: Duration = Duration::from_secs(3);
/// How long a finished shard's lease is kept: a closed shard is listed for 24 hours.
const FINISHED_TTL: Duration = Duration::from_secs(2 * 24 * 3600);

const OWNER: &str = "Owner";
const COUNTER: &str = "Counter";
const POSITION: &str = "Position";

/// A lease this relay holds: `lost` turns true when it must stop reading the shard.
struct Held {
    counter: i64,
    renewed: Instant,
    lost: watch::Sender<bool>,
}

/// This relay's leases.
pub(super) struct Leases {
    client: Client,
    table: String,
    owner: String,
    held: Mutex<HashMap<String, Held>>,
    /// Leases of others: the counter last seen, and since when it stands still.
    seen: Mutex<HashMap<String, (i64, Instant)>>,
}

fn key(stream: &str, shard: &str) -> String {
    format!("lease:{stream}:{shard}")
}

impl Leases {
    /// The leases of relay `owner`, kept in `table`; they are renewed until `shutdown`
    /// (the relay gives them back once its readers stop: [`Leases::release_all`]).
    pub(super) fn start(
        client: Client,
        table: String,
        owner: String,
        shutdown: watch::Receiver<bool>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let leases = Arc::new(Self {
            client,
            table,
            owner,
            held: Mutex::default(),
            seen: Mutex::default(),
        });
        let renewing = tokio::spawn(leases.clone().renew(shutdown));
        (leases, renewing)
    }

    /// How many leases this relay holds.
    pub(super) fn held(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Gives every lease back (at shutdown, once no reader runs).
    pub(super) async fn release_all(&self) {
        let keys: Vec<String> = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        futures::future::join_all(keys.iter().map(|key| self.release_key(key))).await;
    }

    /// Takes the lease of a shard if it is free or its holder is gone. `Some` with the
    /// shard's position (`None` inside: no position yet) and the signal to stop reading;
    /// `None` while another relay holds it.
    pub(super) async fn acquire(
        &self,
        stream: &str,
        shard: &str,
    ) -> anyhow::Result<Option<(Option<Position>, watch::Receiver<bool>)>> {
        let key = key(stream, shard);
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CLAIM_KEY, s(&key))
            .consistent_read(true)
            .send()
            .await
            .context("reading a lease")?
            .item;
        let counter = item.as_ref().and_then(|item| number(item, COUNTER));
        if let Some(item) = &item {
            let owner = string(item, OWNER);
            let holder_gone = match owner {
                None => true,
                Some(owner) if owner == self.owner => true,
                Some(_) => {
                    let counter = counter.unwrap_or(0);
                    let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                    match seen.get(&key) {
                        Some((last, since)) if *last == counter => {
                            since.elapsed() >= LEASE_DURATION
                        }
                        _ => {
                            seen.insert(key.clone(), (counter, Instant::now()));
                            false
                        }
                    }
                }
            };
            if !holder_gone {
                return Ok(None);
            }
        }
        let next = counter.unwrap_or(0) + 1;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CLAIM_KEY, s(&key))
            .update_expression("SET #owner = :me, #counter = :next")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#counter", COUNTER)
            .expression_attribute_values(":me", s(&self.owner))
            .expression_attribute_values(":next", n(next))
            .return_values(ReturnValue::AllNew);
        update = match counter {
            Some(counter) => update
                .condition_expression("#counter = :seen")
                .expression_attribute_values(":seen", n(counter)),
            None => update.condition_expression(format!(
                "attribute_not_exists({CLAIM_KEY}) OR attribute_not_exists(#counter)"
            )),
        };
        let taken = match update.send().await {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                // Another relay was quicker.
                return Ok(None);
            }
            Err(err) => return Err(anyhow::Error::new(err).context("taking a lease")),
        };
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        let position = string(&taken, POSITION).map(decode).transpose()?;
        let (lost, signal) = watch::channel(false);
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                Held {
                    counter: next,
                    renewed: Instant::now(),
                    lost,
                },
            );
        tracing::info!(stream, shard, owner = %self.owner, ?position, "took the shard's lease");
        crate::metrics::lease_taken();
        Ok(Some((position, signal)))
    }

    /// Gives a lease back, so that another relay may take it at once.
    pub(super) async fn release(&self, stream: &str, shard: &str) {
        self.release_key(&key(stream, shard)).await;
    }

    async fn release_key(&self, key: &str) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        let Some(held) = held else { return };
        let _ = held.lost.send(true);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CLAIM_KEY, s(key))
            .update_expression("REMOVE #owner")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":me", s(&self.owner))
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(lease = key, "gave the shard's lease back"),
            Err(err) => {
                tracing::debug!(lease = key, error = ?err, "giving a lease back failed; it expires");
            }
        }
    }

    /// Raises the counters of the leases held, every [`RENEW_INTERVAL`], until shutdown
    /// (the relay gives them back once its readers stop).
    async fn renew(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if sleep_or_shutdown(RENEW_INTERVAL, &mut shutdown).await {
                return;
            }
            // Others' leases not seen for a while are forgotten.
            self.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, (_, since)| since.elapsed() < Duration::from_secs(3600));
            let held: Vec<(String, i64)> = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(key, held)| (key.clone(), held.counter))
                .collect();
            // All at once, so that one slow renewal does not hold up the others.
            futures::future::join_all(
                held.iter()
                    .map(|(key, counter)| self.renew_one(key, counter + 1)),
            )
            .await;
        }
    }

    async fn renew_one(&self, key: &str, next: i64) {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CLAIM_KEY, s(key))
            .update_expression("SET #counter = :next")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#counter", COUNTER)
            .expression_attribute_values(":me", s(&self.owner))
            .expression_attribute_values(":next", n(next))
            .send();
        // A renewal that hangs counts as failed: a lease must not outlive its holder's
        // knowledge of it.
        let result = tokio::time::timeout(RENEW_INTERVAL, result).await;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(Ok(_)) => {
                if let Some(lease) = held.get_mut(key) {
                    lease.counter = next;
                    lease.renewed = Instant::now();
                }
            }
            Ok(Err(err))
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                tracing::warn!(
                    lease = key,
                    "another relay took the shard's lease; reading it stops here"
                );
                if let Some(lease) = held.remove(key) {
                    let _ = lease.lost.send(true);
                    crate::metrics::lease_lost();
                }
            }
            failed => {
                let err = match failed {
                    Ok(Err(err)) => anyhow::Error::new(err),
                    _ => anyhow::anyhow!("renewing the lease timed out"),
                };
                // Given up a renewal period before others may take it, so that reading
                // stops before anyone else starts.
                let expired = held.get(key).is_some_and(|lease| {
                    lease.renewed.elapsed() >= LEASE_DURATION - RENEW_INTERVAL
                });
                tracing::warn!(lease = key, error = ?err, expired, "renewing a lease failed");
                if expired {
                    // Others may have taken it by now: stop before reading on.
                    if let Some(lease) = held.remove(key) {
                        let _ = lease.lost.send(true);
                        crate::metrics::lease_lost();
                    }
                }
            }
        }
    }

    /// Marks a lease lost: a checkpoint found another owner.
    fn lost(&self, key: &str) {
        if let Some(lease) = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)
        {
            let _ = lease.lost.send(true);
            crate::metrics::lease_lost();
        }
    }
}

impl Checkpoints for Leases {
    fn load<'a>(
        &'a self,
        stream: &'a str,
        shards: &'a [&'a str],
    ) -> BoxFuture<'a, anyhow::Result<HashMap<String, Position>>> {
        Box::pin(async move {
            let mut known = HashMap::new();
            for chunk in shards.chunks(MAX_BATCH_KEYS) {
                let mut keys = KeysAndAttributes::builder().consistent_read(true);
                for shard in chunk {
                    keys = keys.keys(HashMap::from([(
                        CLAIM_KEY.to_owned(),
                        s(&key(stream, shard)),
                    )]));
                }
                let mut request = HashMap::from([(self.table.clone(), keys.build()?)]);
                // Unprocessed keys are asked for again, a few times.
                for attempt in 0..8u32 {
                    let output = self
                        .client
                        .batch_get_item()
                        .set_request_items(Some(request))
                        .send()
                        .await
                        .context("reading leases")?;
                    for item in output
                        .responses
                        .unwrap_or_default()
                        .remove(&self.table)
                        .unwrap_or_default()
                    {
                        let (Some(lease), Some(position)) =
                            (string(&item, CLAIM_KEY), string(&item, POSITION))
                        else {
                            continue;
                        };
                        let shard = lease.rsplit(':').next().unwrap_or_default();
                        known.insert(shard.to_owned(), decode(position)?);
                    }
                    match output.unprocessed_keys {
                        Some(left) if !left.is_empty() => {
                            request = left;
                            tokio::time::sleep(crate::storage::backoff(
                                attempt,
                                Duration::from_millis(20),
                                Duration::from_secs(1),
                            ))
                            .await;
                        }
                        _ => break,
                    }
                }
            }
            Ok(known)
        })
    }

    fn save<'a>(
        &'a self,
        stream: &'a str,
        shard: &'a str,
        position: Position,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let key = key(stream, shard);
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(CLAIM_KEY, s(&key))
                .expression_attribute_names("#owner", OWNER)
                .expression_attribute_names("#position", POSITION)
                .expression_attribute_values(":me", s(&self.owner))
                .expression_attribute_values(":position", s(&encode(&position)))
                // The holder saves; a shard nobody holds (passed over, closed, at the
                // first look) is marked by whoever looks.
                .condition_expression(format!(
                    "#owner = :me OR attribute_not_exists({CLAIM_KEY}) OR attribute_not_exists(#owner)"
                ));
            update = if position == Position::Finished {
                let expires = SystemTime::now() + FINISHED_TTL;
                let epoch = expires
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                update
                    .update_expression("SET #position = :position, #expires = :expires")
                    .expression_attribute_names("#expires", EXPIRES_AT)
                    .expression_attribute_values(":expires", AttributeValue::N(epoch.to_string()))
            } else {
                update.update_expression("SET #position = :position")
            };
            match update.send().await {
                Ok(_) => Ok(()),
                Err(err)
                    if matches!(
                        err.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    self.lost(&key);
                    Err(anyhow::anyhow!(
                        "the shard's lease is another relay's now; its position stays theirs"
                    ))
                }
                Err(err) => Err(anyhow::Error::new(err).context("saving a position")),
            }
        })
    }
}

/// A position as a lease keeps it.
fn encode(position: &Position) -> String {
    let since = |at: &SystemTime| {
        format!(
            "since:{}",
            at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        )
    };
    match position {
        // Not kept (a reader from LATEST saves when it began instead); were it, "from now"
        // is what it means.
        Position::Latest => since(&SystemTime::now()),
        Position::Beginning => "beginning".to_owned(),
        Position::Since(at) => since(at),
        Position::After(sequence) => format!("after:{sequence}"),
        Position::Finished => "finished".to_owned(),
    }
}

fn decode(text: &str) -> anyhow::Result<Position> {
    Ok(match text.split_once(':') {
        Some(("since", millis)) => Position::Since(
            SystemTime::UNIX_EPOCH
                + Duration::from_millis(millis.parse().context("a lease's time")?),
        ),
        Some(("after", sequence)) => Position::After(sequence.to_owned()),
        _ if text == "finished" => Position::Finished,
        _ if text == "beginning" => Position::Beginning,
        _ => anyhow::bail!("a lease holds an unknown position {text:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_back_as_written() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        for position in [
            Position::Since(at),
            Position::After("4900000000000000000123".into()),
            Position::Finished,
            Position::Beginning,
        ] {
            assert_eq!(decode(&encode(&position)).expect("decodes"), position);
        }
    }
}
