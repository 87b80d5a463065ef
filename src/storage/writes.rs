//! Conditional writes: transactions retried on conflicts, and edits of an item that
//! only its author may make, at an expected version.

use std::time::Duration;

use anyhow::anyhow;
use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{
        AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem,
    },
};

use super::{
    Storage, backoff, classify,
    items::{Item, epoch_value},
};
use crate::{domain::UserId, error::AppError};

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
    /// Runs a write transaction. When DynamoDB cancels it for a failed condition,
    /// `on_cancel` (given one reason per item, in order) decides the outcome; when it
    /// cancels it for conflicts with other transactions, it is tried again.
    /// `Ok(false)` means `on_cancel` asked the caller to read again and retry.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        on_cancel: impl Fn(&[Cancellation]) -> OnCancel,
    ) -> Result<bool, AppError> {
        let mut retries = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let err = match result {
                Ok(output) => {
                    self.record("TransactWriteItems", output.consumed_capacity());
                    return Ok(true);
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
                // Another transaction holds one of the items right now.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => Vec::new(),
                _ => return Err(classify("TransactWriteItems", err)),
            };
            if reasons.iter().any(Cancellation::failed) {
                return match on_cancel(&reasons) {
                    OnCancel::Fail(client_error) => Err(client_error),
                    OnCancel::Retry => Ok(false),
                };
            }
            let retryable = reasons.is_empty()
                || reasons
                    .iter()
                    .any(|r| r.code == "TransactionConflict" || r.code == "ThrottlingError");
            if !retryable {
                return Err(AppError::internal(anyhow!(
                    "transaction cancelled: {:?}",
                    reasons.iter().map(|r| &r.code).collect::<Vec<_>>()
                )));
            }
            if retries == MAX_TRANSACTION_RETRIES {
                return Err(AppError::unavailable(anyhow!(
                    "transaction kept conflicting after {retries} retries"
                )));
            }
            retries += 1;
            tokio::time::sleep(backoff(
                retries,
                Duration::from_millis(10),
                Duration::from_millis(400),
            ))
            .await;
        }
    }

    /// Edits an item that only its author may edit: sets `changes`, stamps `UpdatedAt`,
    /// adds 1 to `Version` (items written by Da Vinci count as version 1), all on the
    /// condition that the item exists, `UserId` is `author`, and the version is
    /// `expected_version` when given. One request; when a condition fails, the item as
    /// it was tells which one: `NOT_FOUND`, `FORBIDDEN` or `CONFLICT`.
    pub(crate) async fn edit(
        &self,
        table: &str,
        key: (&str, &str),
        what: &str,
        author: &UserId,
        expected_version: Option<i64>,
        changes: Vec<(&str, AttributeValue)>,
    ) -> Result<Item, AppError> {
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .key(key.0, s(key.1))
            .expression_attribute_names("#key", key.0)
            .expression_attribute_values(":author", s(author.as_str()))
            .expression_attribute_values(":now", epoch_value(crate::domain::now()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let mut sets = vec![
            "UpdatedAt = :now".to_owned(),
            "Version = if_not_exists(Version, :one) + :one".to_owned(),
        ];
        for (i, (name, value)) in changes.into_iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(format!(":c{i}"), value);
            sets.push(format!("#c{i} = :c{i}"));
        }
        let mut condition = "attribute_exists(#key) AND UserId = :author".to_owned();
        if let Some(version) = expected_version {
            update = update.expression_attribute_values(":expected", n(version));
            // An item without `Version` (written by Da Vinci) is at version 1.
            condition.push_str(if version == 1 {
                " AND (Version = :expected OR attribute_not_exists(Version))"
            } else {
                " AND Version = :expected"
            });
        }
        let result = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.record("UpdateItem", output.consumed_capacity.as_slice());
                output
                    .attributes
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
                    return Err(classify("UpdateItem", err));
                };
                Err(why_not_author_edit(
                    what,
                    key.1,
                    author,
                    expected_version,
                    failed.item(),
                ))
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
