//! Idempotency records: what the changes made under a client's key did, written in the
//! same `TransactWriteItems` as each change itself, so that the record of a change exists
//! exactly when the change does.
//!
//! One record per (user, key) holds the request's fingerprint and, per change of the
//! request (a request may make several changes), the id it made or touched. A change
//! writes its result on the condition that the record is new (or expired), or is the same
//! request's and does not hold this change yet. So a retry of the request finds its result
//! and gets it back; two copies of it racing with one key make one change; another request
//! with the key is refused. Records expire after a day (the table's time to live).

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::attributes::{CLAIM_KEY, CREATED_AT, EXPIRES_AT, FINGERPRINT, RESULT_PREFIX, USER_ID};
use super::{
    Storage,
    items::Item,
    writes::{Cancellation, n, s, string},
};
use crate::{
    domain::Claim,
    error::{AppError, Refusal},
};

/// How long a key is remembered: at least a day, as clients retry within minutes.
const REMEMBERED: Duration = Duration::from_secs(24 * 3600);

/// The record's key: the user and the client's key, joined so that no two different
/// pairs can meet (each length-prefixed part says where it ends).
fn record_key(claim: &Claim) -> String {
    let parts = [claim.user.as_str(), claim.key.as_str()];
    parts.iter().map(|p| format!("{}:{p}", p.len())).collect()
}

/// The attribute holding a change's result (changes are named by their callers).
fn result_attribute(claim: &Claim) -> String {
    format!("{RESULT_PREFIX}{}", claim.change)
}

fn epoch_seconds(offset: Duration) -> i64 {
    let at = crate::domain::now() + chrono::Duration::from_std(offset).unwrap_or_default();
    at.timestamp()
}

/// Refused: the key was used for another request.
fn mismatch() -> AppError {
    AppError::Refused(Refusal::KeyReused)
}

/// What a stored record says to a change that claims it: the change's first result (the
/// id it made or touched), nothing if the request has not made this change yet, or a
/// refusal when the record is another request's.
fn replay(claim: &Claim, record: &Item) -> Result<Option<String>, AppError> {
    if string(record, FINGERPRINT) != Some(claim.fingerprint.as_str()) {
        return Err(mismatch());
    }
    Ok(string(record, &result_attribute(claim)).map(str::to_owned))
}

fn expired(record: &Item) -> bool {
    let expires = record
        .get(EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok());
    expires.is_some_and(|at| at < epoch_seconds(Duration::ZERO))
}

impl Storage {
    /// The first result of the change `claim` names, if a request made it already; a
    /// refusal if the key was used for another request.
    pub async fn claimed(&self, claim: &Claim) -> Result<Option<String>, AppError> {
        let record = self
            .get(&self.tables.idempotency, (CLAIM_KEY, &record_key(claim)))
            .await?;
        match record {
            Some(record) if !expired(&record) => replay(claim, &record),
            Some(_) => {
                // Expired, not yet removed by the time to live: it goes now, whole, so that
                // none of its results is taken for the new request's.
                let deleted = self
                    .client
                    .delete_item()
                    .table_name(&self.tables.idempotency)
                    .key(CLAIM_KEY, s(&record_key(claim)))
                    .condition_expression("#expires < :now")
                    .expression_attribute_names("#expires", EXPIRES_AT)
                    .expression_attribute_values(
                        ":now",
                        AttributeValue::N(epoch_seconds(Duration::ZERO).to_string()),
                    )
                    .send()
                    .await;
                self.record("DeleteItem", &[]);
                if let Err(err) = deleted {
                    tracing::debug!(error = ?err, "an expired idempotency record stayed");
                }
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The transaction item that writes the result of `claim`'s change (`result`, the id
    /// it made or touched) into the key's record. It holds only while the record is new
    /// or expired, or is the same request's and does not hold this change's result yet.
    pub(crate) fn claim_item(
        &self,
        claim: &Claim,
        result: &str,
    ) -> Result<TransactWriteItem, AppError> {
        let now = AttributeValue::N(epoch_seconds(Duration::ZERO).to_string());
        let update = Update::builder()
            .table_name(&self.tables.idempotency)
            .key(CLAIM_KEY, s(&record_key(claim)))
            .update_expression(format!(
                "SET {USER_ID} = :user, {FINGERPRINT} = :fingerprint, #result = :result, \
                 #expires = :expires, {CREATED_AT} = if_not_exists({CREATED_AT}, :now)"
            ))
            .condition_expression(format!(
                "attribute_not_exists(#key) OR #expires < :now \
                 OR ({FINGERPRINT} = :fingerprint AND attribute_not_exists(#result))"
            ))
            .expression_attribute_names("#key", CLAIM_KEY)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#result", result_attribute(claim))
            .expression_attribute_values(":user", s(claim.user.as_str()))
            .expression_attribute_values(":fingerprint", s(&claim.fingerprint))
            .expression_attribute_values(":result", s(result))
            .expression_attribute_values(":expires", n(epoch_seconds(REMEMBERED)))
            .expression_attribute_values(":now", now)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// What the cancellation of a claim's record says: `None` when the record was not the
/// reason, else the first result or a refusal.
pub(crate) fn replay_of(claim: &Claim, reason: &Cancellation) -> Option<Result<String, AppError>> {
    if !reason.failed() {
        return None;
    }
    let missing = || {
        AppError::internal(anyhow::anyhow!(
            "an idempotency record's condition failed, yet it holds no result of the change"
        ))
    };
    Some(match &reason.item {
        Some(record) => replay(claim, record).and_then(|result| result.ok_or_else(missing)),
        None => Err(missing()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IdempotencyKey, UserId};

    fn claim(user: &str, key: &str, change: &str) -> Claim {
        Claim {
            user: UserId::parse(user).expect("id"),
            key: IdempotencyKey::parse(key).expect("key"),
            change: change.to_owned(),
            fingerprint: "f".to_owned(),
        }
    }

    #[test]
    fn record_keys_never_meet() {
        assert_ne!(
            record_key(&claim("u1", "ab", "c")),
            record_key(&claim("u1a", "b", "c"))
        );
        assert_ne!(
            record_key(&claim("u1:2", "k", "c")),
            record_key(&claim("u1", "2:k", "c"))
        );
        assert_eq!(
            record_key(&claim("u1", "k", "a")),
            record_key(&claim("u1", "k", "b")),
            "one record for every change of a request"
        );
    }
}
