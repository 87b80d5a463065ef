//! What a client request costs in DynamoDB: requests by operation and consumed capacity.

use std::{collections::BTreeMap, sync::Mutex};

use aws_sdk_dynamodb::types::ConsumedCapacity;
use serde::Serialize;

/// Collects the DynamoDB requests of one client request. Shared by the request's
/// reads and writes; a plain mutex is enough, as it is held for a map update only.
#[derive(Debug, Default)]
pub struct CostRecorder {
    inner: Mutex<CostReport>,
}

/// The figures of one client request's DynamoDB cost, for the client that asks for them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// Every request sent to DynamoDB, retries included.
    pub requests: u64,
    /// Requests by DynamoDB operation (`BatchGetItem`, `TransactWriteItems`, ...).
    pub by_operation: BTreeMap<&'static str, u64>,
    /// Capacity units DynamoDB reported as consumed, reads and writes together.
    pub consumed_capacity_units: f64,
}

impl CostRecorder {
    pub(crate) fn record(&self, operation: &'static str, consumed: &[ConsumedCapacity]) {
        let units: f64 = consumed.iter().filter_map(|c| c.capacity_units).sum();
        let mut report = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        report.requests += 1;
        *report.by_operation.entry(operation).or_default() += 1;
        report.consumed_capacity_units += units;
    }

    /// What the request has cost so far.
    pub fn report(&self) -> CostReport {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
