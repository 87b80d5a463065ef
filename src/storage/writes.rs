//! Conditional writes: transactions retried on conflicts (edits by an item's author are
//! in `edits.rs`).

use std::time::Duration;

use anyhow::anyhow;
use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, ReturnConsumedCapacity, TransactWriteItem},
};

use super::{
    Storage, WRITE_ATTEMPTS, WriteFailure, backoff, classify, classify_write,
    idempotency::replay_of, items::Item, write_failure,
};
use crate::{domain::Claim, error::AppError};

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

/// What an item of a transaction is for: a cancellation is read by what failed, not by
/// where it stood in the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The user item being written.
    User,
    /// The post item being written, or the post whose counter moves.
    Post,
    /// The comment item being written.
    Comment,
    /// The check that the acting user exists.
    Author,
    /// A username's guard item, taken.
    Guard,
    /// The guard of a username given up, freed.
    FreedGuard,
    /// The users' counter.
    Counter,
    /// The guard that says a comment's change is counted in its post's counter.
    Counted,
}

/// Why DynamoDB cancelled a transaction, by part.
pub(crate) struct Cancellations<'a> {
    parts: &'a [Part],
    reasons: &'a [Cancellation],
}

impl Cancellations<'_> {
    /// Whether the condition of an item of `part` failed.
    pub(crate) fn failed(&self, part: Part) -> bool {
        self.parts
            .iter()
            .zip(self.reasons)
            .any(|(each, reason)| *each == part && reason.failed())
    }

    /// The first item of `part` whose condition failed, as it was.
    pub(crate) fn old(&self, part: Part) -> Option<&Item> {
        self.parts
            .iter()
            .zip(self.reasons)
            .find(|(each, reason)| **each == part && reason.failed())
            .and_then(|(_, reason)| reason.item.as_ref())
    }
}

/// What a write did: the change was applied, or a request with the same idempotency key
/// applied it before, and this is its result (the id it made or touched).
#[derive(Debug)]
pub enum Written<T = ()> {
    /// This request made the change, and this is its result.
    Applied(T),
    /// Made before under the same idempotency key: the id that change made or touched.
    Replayed(String),
}

impl Written<Item> {
    /// The applied change's item, decoded; a replayed id as it is.
    pub(crate) fn decode<T>(
        self,
        decode: impl FnOnce(Item) -> anyhow::Result<T>,
    ) -> Result<Written<T>, AppError> {
        Ok(match self {
            Self::Applied(item) => Written::Applied(decode(item).map_err(AppError::internal)?),
            Self::Replayed(id) => Written::Replayed(id),
        })
    }
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
        parts: Vec<(Part, TransactWriteItem)>,
        claimed: Option<Claimed<'_>>,
        on_cancel: impl Fn(&Cancellations<'_>) -> OnCancel,
    ) -> Result<Transacted, AppError> {
        let (names, mut items): (Vec<Part>, Vec<TransactWriteItem>) = parts.into_iter().unzip();
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
                let cancellations = Cancellations {
                    parts: &names,
                    reasons: &reasons[..changes.min(reasons.len())],
                };
                return match on_cancel(&cancellations) {
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
