//! What the SDK's calls show of themselves: an interceptor that counts retries for the
//! metrics and, when tracing is on, gives every DynamoDB call a span of its own (the
//! operation, its tables, the items it returned, the capacity it consumed, its attempts),
//! a child of whatever asked for it.

use aws_sdk_dynamodb::config::{
    ConfigBag, Intercept, RuntimeComponents,
    interceptors::{
        BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
        FinalizerInterceptorContextRef,
    },
};
use aws_smithy_runtime_api::{box_error::BoxError, client::retries::RequestAttempts};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde_json::Value;
use tracing::field::Empty;

/// The span of the call in flight.
#[derive(Debug, Clone)]
struct CallSpan(tracing::Span);

impl Storable for CallSpan {
    type Storer = StoreReplace<Self>;
}

/// The interceptor every DynamoDB client of the server carries.
#[derive(Debug)]
pub(super) struct Observe;

/// The operation a request calls: DynamoDB's JSON protocol names it in `X-Amz-Target`
/// (`DynamoDB_20120810.Query`).
fn operation_of(request: &aws_smithy_runtime_api::http::Request) -> String {
    request
        .headers()
        .get("x-amz-target")
        .and_then(|target| target.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned()
}

impl Intercept for Observe {
    fn name(&self) -> &'static str {
        "Observe"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Without traces, no span, and no reading of bodies.
        if !crate::telemetry::tracing() {
            return Ok(());
        }
        // Named once the request is serialized (`read_before_attempt`).
        let span = tracing::info_span!(
            "dynamodb",
            otel.name = "DynamoDB",
            otel.kind = "client",
            db.system = "dynamodb",
            db.operation = Empty,
            aws.dynamodb.table_names = Empty,
            aws.dynamodb.items = Empty,
            aws.dynamodb.consumed_capacity = Empty,
            aws.dynamodb.attempts = Empty,
        );
        if !span.is_disabled() {
            cfg.interceptor_state().store_put(CallSpan(span));
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_of(context.request());
        let attempts = cfg
            .load::<RequestAttempts>()
            .map_or(1, RequestAttempts::attempts);
        if attempts > 1 {
            crate::metrics::retried(operation.clone());
        }
        if let Some(CallSpan(span)) = cfg.load::<CallSpan>() {
            span.record("aws.dynamodb.attempts", attempts);
            if attempts == 1 {
                span.record("otel.name", format!("DynamoDB {operation}"));
                span.record("db.operation", operation);
                let request = context
                    .request()
                    .body()
                    .bytes()
                    .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
                    .unwrap_or(Value::Null);
                let tables = tables(&request);
                if !tables.is_empty() {
                    span.record("aws.dynamodb.table_names", tables.join(","));
                }
            }
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(CallSpan(span)) = cfg.load::<CallSpan>().cloned() else {
            return Ok(());
        };
        let json = |bytes: Option<&[u8]>| {
            bytes
                .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
                .unwrap_or(Value::Null)
        };
        let response = json(context.response().and_then(|r| r.body().bytes()));
        if let Some(items) = items(&response) {
            span.record("aws.dynamodb.items", items);
        }
        let capacity = capacity(&response);
        if capacity > 0.0 {
            span.record("aws.dynamodb.consumed_capacity", capacity);
        }
        // The call is over: its span ends here.
        cfg.interceptor_state()
            .store_put(CallSpan(tracing::Span::none()));
        drop(span);
        Ok(())
    }
}

/// The tables a request names: `TableName`, the tables of a batch, or of a transaction.
fn tables(request: &Value) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !tables.iter().any(|t| t == name) {
            tables.push(name.to_owned());
        }
    };
    if let Some(name) = request["TableName"].as_str() {
        add(name);
    }
    if let Some(batch) = request["RequestItems"].as_object() {
        batch.keys().for_each(|name| add(name));
    }
    if let Some(items) = request["TransactItems"].as_array() {
        for item in items {
            if let Some(part) = item.as_object().and_then(|part| part.values().next())
                && let Some(name) = part["TableName"].as_str()
            {
                add(name);
            }
        }
    }
    tables
}

/// The items a response carries: `Count`, `Items`, a batch's `Responses`, or one `Item`.
fn items(response: &Value) -> Option<u64> {
    if let Some(count) = response["Count"].as_u64() {
        return Some(count);
    }
    if let Some(responses) = response["Responses"].as_object() {
        return Some(
            responses
                .values()
                .filter_map(Value::as_array)
                .map(|items| items.len() as u64)
                .sum(),
        );
    }
    if response.get("Item").is_some() {
        return Some(1);
    }
    None
}

/// The capacity a response says it consumed, over all its tables.
fn capacity(response: &Value) -> f64 {
    match &response["ConsumedCapacity"] {
        Value::Array(each) => each
            .iter()
            .filter_map(|c| c["CapacityUnits"].as_f64())
            .sum(),
        one => one["CapacityUnits"].as_f64().unwrap_or(0.0),
    }
}
