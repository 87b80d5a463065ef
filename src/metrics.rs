//! Prometheus metrics, through the `metrics` facade: what the server did, for dashboards
//! and alerts. `GET /metrics` renders them in the text exposition format.
//!
//! Labels are bounded: operation names beyond the first [`MAX_OPERATION_NAMES`] distinct
//! ones (and anonymous operations) share the label `other`, tables are named by their role
//! (`users`, `posts`, …), and error codes are the contract's.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Distinct operation names that get a label value of their own.
pub const MAX_OPERATION_NAMES: usize = 100;
/// The label value of anonymous operations and of names past the bound.
const OTHER: &str = "other";

/// The process's recorder: installed once, whatever number of servers the process runs
/// (tests run many), and rendered by each.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let latency = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let sizes = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes))
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already; /metrics shows nothing");
        }
        describe();
        // Histograms keep their samples until upkeep folds them in: without a scrape they
        // would grow with every operation.
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = started {
            tracing::warn!(error = %err, "the metrics upkeep thread did not start");
        }
        handle
    })
}

/// Renders every metric for a scrape, after the recorder's periodic upkeep.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "graphql_operations_total",
        "GraphQL operations by name, type (query, mutation, subscription) and outcome"
    );
    describe_histogram!(
        "graphql_operation_duration_seconds",
        metrics::Unit::Seconds,
        "How long queries and mutations took, by name and type"
    );
    describe_counter!("graphql_errors_total", "GraphQL errors by extensions.code");
    describe_counter!(
        "dynamodb_requests_total",
        "DynamoDB requests by operation and table"
    );
    describe_counter!(
        "dynamodb_consumed_capacity_milliunits_total",
        "DynamoDB capacity consumed, in thousandths of a unit, by operation and table"
    );
    describe_counter!(
        "dynamodb_throttles_total",
        "DynamoDB requests refused for throughput, by operation"
    );
    describe_counter!(
        "dynamodb_retries_total",
        "DynamoDB request attempts after the first, by operation"
    );
    describe_counter!(
        "dynamodb_unprocessed_keys_retries_total",
        "BatchGetItem requests sent again for keys DynamoDB left unprocessed"
    );
    describe_histogram!(
        "dataloader_batch_size",
        "Keys per DataLoader batch, by loader"
    );
    describe_gauge!("websocket_connections", "WebSocket connections open");
    describe_gauge!("graphql_subscriptions", "Subscriptions running");
    describe_counter!(
        "subscription_events_delivered_total",
        "Events sent to subscribers"
    );
    describe_counter!(
        "subscribers_dropped_total",
        "Subscriptions ended for falling behind the event feed"
    );
    describe_gauge!(
        "stream_reader_lag_seconds",
        metrics::Unit::Seconds,
        "Age of the newest stream record read, by table"
    );
    describe_counter!(
        "comments_counted_total",
        "Comment changes made without the API that the stream reader counted, by change"
    );
    describe_counter!("shard_leases_taken_total", "Shard leases this relay took");
    describe_counter!(
        "shard_leases_lost_total",
        "Shard leases this relay lost to another, or could not renew"
    );
    describe_counter!(
        "engine_events_total",
        "Events through the event engine: published (relay), received, duplicates dropped"
    );
    describe_gauge!(
        "engine_connected",
        "Whether the instance is subscribed to the event engine (1) or not (0)"
    );
}

/// The label value of an operation name: itself while the bound allows, else `other`.
fn operation_label(name: Option<&str>) -> String {
    static NAMES: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    // A GraphQL name (`[_A-Za-z][_0-9A-Za-z]*`) of at most 64 characters, or `other`.
    let Some(name) = name.filter(|name| {
        let mut chars = name.chars();
        name.len() <= 64
            && chars
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
    }) else {
        return OTHER.to_owned();
    };
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if names.contains(name) || names.len() < MAX_OPERATION_NAMES && names.insert(name.to_owned()) {
        name.to_owned()
    } else {
        OTHER.to_owned()
    }
}

/// An operation that ended (or was refused, or started a subscription).
pub fn operation(
    name: Option<&str>,
    kind: &'static str,
    outcome: &'static str,
    elapsed: Option<Duration>,
) {
    let operation = operation_label(name);
    if let Some(elapsed) = elapsed {
        histogram!(
            "graphql_operation_duration_seconds",
            "operation" => operation.clone(),
            "type" => kind,
        )
        .record(elapsed.as_secs_f64());
    }
    counter!(
        "graphql_operations_total",
        "operation" => operation,
        "type" => kind,
        "outcome" => outcome,
    )
    .increment(1);
}

/// A GraphQL error in a response, by its code.
pub fn error(code: &str) {
    counter!("graphql_errors_total", "code" => code.to_owned()).increment(1);
}

/// A DynamoDB request.
pub fn dynamodb_request(operation: &'static str, table: &'static str) {
    counter!("dynamodb_requests_total", "operation" => operation, "table" => table).increment(1);
}

/// The capacity a DynamoDB request consumed on one table.
pub fn dynamodb_capacity(operation: &'static str, table: &'static str, capacity: f64) {
    if capacity > 0.0 {
        // Capacity comes in halves and quarters: counted in thousandths, a counter stays
        // an exact integer.
        counter!(
            "dynamodb_consumed_capacity_milliunits_total",
            "operation" => operation,
            "table" => table,
        )
        .increment((capacity * 1000.0).round() as u64);
    }
}

/// A DynamoDB request refused for throughput (after the SDK's own retries).
pub fn throttled(operation: &'static str) {
    counter!("dynamodb_throttles_total", "operation" => operation).increment(1);
}

/// A DynamoDB request attempt after the first.
pub fn retried(operation: String) {
    counter!("dynamodb_retries_total", "operation" => operation).increment(1);
}

/// A `BatchGetItem` sent again for unprocessed keys.
pub fn unprocessed_keys_retry() {
    counter!("dynamodb_unprocessed_keys_retries_total").increment(1);
}

/// A DataLoader batch of `size` keys.
pub fn batch(loader: &'static str, size: usize) {
    histogram!("dataloader_batch_size", "loader" => loader).record(size as f64);
}

/// Something open, counted in a gauge while it lives.
#[must_use = "the gauge goes down when this is dropped"]
pub struct Open(&'static str);

impl Open {
    fn new(gauge: &'static str) -> Self {
        gauge!(gauge).increment(1.0);
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}

/// A WebSocket connection, open while this lives.
pub fn websocket() -> Open {
    Open::new("websocket_connections")
}

/// A subscription, running while this lives.
pub fn subscription() -> Open {
    Open::new("graphql_subscriptions")
}

/// An event sent to a subscriber.
pub fn event_delivered() {
    counter!("subscription_events_delivered_total").increment(1);
}

/// A subscriber ended for falling behind.
pub fn subscriber_dropped() {
    counter!("subscribers_dropped_total").increment(1);
}

/// How old the newest record read from a table's stream was.
pub fn stream_lag(table: &'static str, age: Duration) {
    gauge!("stream_reader_lag_seconds", "table" => table).set(age.as_secs_f64());
}

/// A comment change made without the API, counted by the stream reader.
pub fn comment_counted(change: &'static str) {
    counter!("comments_counted_total", "change" => change).increment(1);
}

/// A shard lease taken by this relay.
pub fn lease_taken() {
    counter!("shard_leases_taken_total").increment(1);
}

/// A shard lease lost by this relay.
pub fn lease_lost() {
    counter!("shard_leases_lost_total").increment(1);
}

/// Events through the engine: `published`, `received` or `duplicate`.
pub fn engine_events(what: &'static str, count: u64) {
    counter!("engine_events_total", "what" => what).increment(count);
}

/// Whether this instance is subscribed to the event engine.
pub fn engine_connected(connected: bool) {
    gauge!("engine_connected").set(if connected { 1.0 } else { 0.0 });
}
