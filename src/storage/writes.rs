//! Conditional writes: transactions retried on conflicts, and edits of an item that
//! only its author may make, at an expected version.

use std::{collections::HashMap, time::Duration};

use anyhow::anyhow;
use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{
        AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem, Update,
    },
};

use super::{
    Storage, WRITE_ATTEMPTS, WriteFailure, backoff, classify, classify_write,
    idempotency::replay_of,
    items::{Item, epoch_value},
    write_failure, write_once,
};
use crate::{
    domain::{Claim, UserId},
    error::AppError,
};

/// Concurrent transactions on one item (many comments on one post at once) make
/// DynamoDB cancel some with `TransactionConflict`; nothing was written then, so they
/// are tried again, with jittered backoff so that they spread out.
const MAX_TRANSACTION_RETRIES: u32 = 12;

/// Why DynamoDB cancelled one item of a transaction.
#[derive(Debug)]
pub(crate) struct Cancellation {
    /// "None" where that item was fine, "ConditionalCheckFailed", "TransactionConflict", ...
    pub code: String,
    /// The item as it was, when its condition failed (we always ask for it).
    pub item: Option<Item>,
}

impl Cancellation {
    pub(crate) fn failed(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }
}

/// What a write did: the change was applied, or a request with the same idempotency key
/// applied it before, and this is its result (the id it made or touched).
#[derive(Debug)]
pub enum Written<T = ()> {
    Applied(T),
    Replayed(String),
}

/// A change made under an idempotency key, and the id it makes or touches (what a retry
/// with the key gets back).
#[derive(Clone, Copy)]
pub(crate) struct Claimed<'a> {
    pub claim: &'a Claim,
    pub result: &'a str,
}

/// How a transaction ended, when it did not fail.
pub(crate) enum Transacted {
    Applied,
    /// `on_cancel` asked the caller to read again and retry.
    Retry,
    /// The idempotency key's record was there: the change was made before.
    Replayed(String),
}

impl Transacted {
    /// What a transaction whose `on_cancel` never asks for a retry did.
    pub(crate) fn written(self) -> Written {
        match self {
            Self::Applied | Self::Retry => Written::Applied(()),
            Self::Replayed(id) => Written::Replayed(id),
        }
    }
}

/// What to do when DynamoDB cancelled a transaction for a failed condition.
pub(crate) enum OnCancel {
    /// Give the client this error.
    Fail(AppError),
    /// The state changed under us (an item went away); the caller reads again.
    Retry,
}

pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Reads a number attribute of a stored item (absent: `None`).
pub(crate) fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

impl Storage {
    /// Runs a write transaction. With `claimed`, the idempotency record of the change is
    /// written in the same transaction; if it exists already, the change was made before
    /// and its result comes back (`Replayed`). When DynamoDB cancels the transaction for a
    /// failed condition, `on_cancel` (given one reason per item of `items`, in order)
    /// decides the outcome; when it cancels it for conflicts with other transactions, it is
    /// tried again.
    ///
    /// Every attempt carries a `ClientRequestToken` of its own: the SDK's retries of one
    /// attempt (after a timeout, or a dropped connection) send the same token, so that
    /// DynamoDB applies the attempt once and answers the retry with its success, rather
    /// than running it again and failing its own conditions.
    pub(crate) async fn transact(
        &self,
        mut items: Vec<TransactWriteItem>,
        claimed: Option<Claimed<'_>>,
        on_cancel: impl Fn(&[Cancellation]) -> OnCancel,
    ) -> Result<Transacted, AppError> {
        let changes = items.len();
        if let Some(claimed) = claimed {
            items.push(self.claim_item(claimed.claim, claimed.result)?);
        }
        // One token per attempt that DynamoDB definitely did not apply (it cancelled it);
        // an attempt whose fate is open is sent again with its own token, so that DynamoDB
        // applies it once and answers the copy with its success.
        let write = uuid::Uuid::new_v4().simple().to_string();
        let mut token = 0u32;
        let mut conflicts = 0;
        let mut unanswered = 0;
        // Whether an attempt went out and got no definite answer: it may have been applied.
        let mut uncertain = false;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(format!("{write}-{token}"))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .customize()
                .config_override(self.no_sdk_retries())
                .send()
                .await;
            let err = match result {
                Ok(output) => {
                    self.record("TransactWriteItems", output.consumed_capacity());
                    return Ok(Transacted::Applied);
                }
                Err(err) => err,
            };
            self.record("TransactWriteItems", &[]);
            let reasons: Vec<Cancellation> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => cancel
                    .cancellation_reasons()
                    .iter()
                    .map(|r| Cancellation {
                        code: r.code().unwrap_or("None").to_owned(),
                        item: r.item().cloned(),
                    })
                    .collect(),
                // An earlier attempt with this token is still running: ask again later.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    uncertain = true;
                    unanswered += 1;
                    if unanswered >= WRITE_ATTEMPTS {
                        return Err(classify_write("TransactWriteItems", err, uncertain));
                    }
                    self.pause(unanswered).await;
                    continue;
                }
                _ => match write_failure(&err) {
                    WriteFailure::Final => {
                        return Err(classify_write("TransactWriteItems", err, uncertain));
                    }
                    failure => {
                        uncertain |= failure == WriteFailure::Unanswered;
                        unanswered += 1;
                        if unanswered >= WRITE_ATTEMPTS {
                            return Err(classify_write("TransactWriteItems", err, uncertain));
                        }
                        self.pause(unanswered).await;
                        continue;
                    }
                },
            };
            if let (Some(claimed), Some(reason)) = (claimed, reasons.get(changes))
                && let Some(replayed) = replay_of(claimed.claim, reason)
            {
                return replayed.map(Transacted::Replayed);
            }
            if reasons.iter().any(Cancellation::failed) {
                // An earlier attempt left open may be what made a condition fail: what the
                // client is told must not pretend nothing was written.
                if uncertain {
                    return Err(AppError::outcome_unknown(anyhow!(
                        "a transaction's condition failed after an unanswered attempt: {:?}",
                        reasons.iter().map(|r| &r.code).collect::<Vec<_>>()
                    )));
                }
                return match on_cancel(&reasons[..changes.min(reasons.len())]) {
                    OnCancel::Fail(client_error) => Err(client_error),
                    OnCancel::Retry => Ok(Transacted::Retry),
                };
            }
            let retryable = reasons.is_empty()
                || reasons.iter().any(|r| {
                    matches!(
                        r.code.as_str(),
                        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                    )
                });
            if !retryable {
                return Err(AppError::internal(anyhow!(
                    "transaction cancelled: {:?}",
                    reasons.iter().map(|r| &r.code).collect::<Vec<_>>()
                )));
            }
            if conflicts == MAX_TRANSACTION_RETRIES {
                let cause = anyhow!("transaction kept conflicting after {conflicts} retries");
                return Err(if uncertain {
                    AppError::outcome_unknown(cause)
                } else {
                    AppError::unavailable(cause)
                });
            }
            // Cancelled, so not applied: the next attempt is a new one.
            conflicts += 1;
            token += 1;
            tokio::time::sleep(backoff(
                conflicts,
                Duration::from_millis(10),
                Duration::from_millis(400),
            ))
            .await;
        }
    }

    /// Waits before sending an unanswered or throttled attempt again.
    async fn pause(&self, attempt: u32) {
        tokio::time::sleep(backoff(
            attempt,
            Duration::from_millis(50),
            Duration::from_secs(1),
        ))
        .await;
    }

    /// Edits an item that only its author may edit: sets `changes`, stamps `UpdatedAt`,
    /// adds 1 to `Version` (items written by Da Vinci count as version 1), all on the
    /// condition that the item exists, `UserId` is `author`, and the version is
    /// `expected_version` when given. When a condition fails, the item as it was tells
    /// which one: `NOT_FOUND`, `FORBIDDEN` or `CONFLICT`.
    ///
    /// One `UpdateItem`; under an idempotency key, a transaction with the key's record
    /// instead (and a read of the edited item, which a transaction does not return).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn edit(
        &self,
        table: &str,
        key: (&str, &str),
        what: &str,
        author: &UserId,
        expected_version: Option<i64>,
        changes: Vec<(&str, AttributeValue)>,
        claim: Option<&Claim>,
    ) -> Result<Written<Item>, AppError> {
        let mut names: HashMap<String, String> =
            HashMap::from([("#key".to_owned(), key.0.to_owned())]);
        let mut values: HashMap<String, AttributeValue> = HashMap::from([
            (":author".to_owned(), s(author.as_str())),
            (":now".to_owned(), epoch_value(crate::domain::now())),
            (":one".to_owned(), n(1)),
        ]);
        let mut sets = vec![
            "UpdatedAt = :now".to_owned(),
            "Version = if_not_exists(Version, :one) + :one".to_owned(),
        ];
        for (i, (name, value)) in changes.into_iter().enumerate() {
            names.insert(format!("#c{i}"), name.to_owned());
            values.insert(format!(":c{i}"), value);
            sets.push(format!("#c{i} = :c{i}"));
        }
        let mut condition = "attribute_exists(#key) AND UserId = :author".to_owned();
        if let Some(version) = expected_version {
            values.insert(":expected".to_owned(), n(version));
            // An item without `Version` (written by Da Vinci) is at version 1.
            condition.push_str(if version == 1 {
                " AND (Version = :expected OR attribute_not_exists(Version))"
            } else {
                " AND Version = :expected"
            });
        }
        let update_expression = format!("SET {}", sets.join(", "));
        let refused =
            |old: Option<&Item>| why_not_author_edit(what, key.1, author, expected_version, old);

        if let Some(claim) = claim {
            let update = Update::builder()
                .table_name(table)
                .key(key.0, s(key.1))
                .update_expression(update_expression)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(AppError::internal)?;
            let items = vec![TransactWriteItem::builder().update(update).build()];
            let claimed = Claimed {
                claim,
                result: key.1,
            };
            return match self
                .transact(items, Some(claimed), |reasons| {
                    OnCancel::Fail(refused(reasons[0].item.as_ref()))
                })
                .await?
            {
                Transacted::Replayed(id) => Ok(Written::Replayed(id)),
                Transacted::Applied | Transacted::Retry => {
                    // The edit is made; should reading it fail, a retry with the key
                    // gets it.
                    let applied = || {
                        AppError::outcome_unknown(anyhow!(
                            "an edited {what} could not be read back"
                        ))
                    };
                    let item = self.get(table, key).await.map_err(|_| applied())?;
                    item.map(Written::Applied).ok_or_else(applied)
                }
            };
        }

        let update = self
            .client
            .update_item()
            .table_name(table)
            .key(key.0, s(key.1))
            .update_expression(update_expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let result = write_once(|| {
            update
                .clone()
                .customize()
                .config_override(self.no_sdk_retries())
                .send()
        })
        .await;
        match result {
            Ok(output) => {
                self.record("UpdateItem", output.consumed_capacity.as_slice());
                output
                    .attributes
                    .map(Written::Applied)
                    .ok_or_else(|| AppError::internal(anyhow!("UpdateItem returned no item")))
            }
            Err(err) => {
                self.record("UpdateItem", &[]);
                let Some(failed) = err
                    .as_service_error()
                    .and_then(|e| match e {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(f) => Some(f),
                        _ => None,
                    })
                else {
                    return Err(classify_write("UpdateItem", err, false));
                };
                Err(refused(failed.item()))
            }
        }
    }

    /// One item by its key, read consistently.
    pub(crate) async fn get(
        &self,
        table: &str,
        key: (&str, &str),
    ) -> Result<Option<Item>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(key.0, s(key.1))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match output {
            Ok(output) => {
                self.record("GetItem", output.consumed_capacity.as_slice());
                Ok(output.item)
            }
            Err(err) => {
                self.record("GetItem", &[]);
                Err(classify("GetItem", err))
            }
        }
    }
}

/// Tells which condition of an author-only edit failed, from the item as it was.
pub(crate) fn why_not_author_edit(
    what: &str,
    id: &str,
    author: &UserId,
    expected_version: Option<i64>,
    old: Option<&Item>,
) -> AppError {
    let Some(old) = old else {
        return AppError::NotFound(format!("{what} {id:?} does not exist"));
    };
    if string(old, "UserId") != Some(author.as_str()) {
        return AppError::Forbidden(format!("only the author may change {what} {id:?}"));
    }
    let current = number(old, "Version").unwrap_or(1);
    AppError::Conflict(format!(
        "{what} {id:?} has changed: expectedVersion is {}, the current version is {current}",
        expected_version.unwrap_or(current)
    ))
}
