//! Comment counters that stay exact whoever writes the comments. The API moves a post's
//! `CommentCount` in the transaction that adds or deletes the comment; another program
//! (a Da Vinci service, a script) writes the comment alone. The stream reader sees both
//! and must count only the second kind, exactly once however many readers see the record
//! and however often one reads it again.
//!
//! So every counted change leaves a guard item in the idempotency table, written in the
//! same transaction as the counter: the API's transactions write it, and the reader's
//! transaction (the guard, on the condition that it does not exist, and the counter)
//! applies only where it is missing. A guard names the comment, the change (added or
//! removed) and the comment's creation time, so that a comment deleted and written again
//! counts again. Guards expire after [`GUARD_TTL`]: a stream keeps its records 24 hours,
//! so no record can be read again once its guard is gone.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    Put, PutRequest, ReturnConsumedCapacity, TransactWriteItem, Update, WriteRequest,
};

use super::{
    Storage,
    attributes::{CLAIM_KEY, COMMENT_COUNT, EXPIRES_AT, POST_ID},
    classify,
    items::comment_from_item,
    pages::Source,
    range::TimeRange,
    writes::{OnCancel, Part, Transacted, n, number, s},
};
use crate::{
    domain::{Comment, PostId},
    error::AppError,
};

/// How long a guard is kept: longer than a stream keeps a record (24 hours).
const GUARD_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
/// Attempts at counting one change while the post's counter is being made or moved.
const MAX_ATTEMPTS: usize = 4;
/// Comments whose guards go in the transaction that makes their post's counter: a
/// transaction holds 100 items.
const GUARDS_WITH_COUNTER: usize = 99;

/// A change of a post's comments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The comment was written.
    Added,
    /// The comment was deleted.
    Removed,
}

impl Change {
    fn delta(self) -> i64 {
        match self {
            Self::Added => 1,
            Self::Removed => -1,
        }
    }
}

/// The key of the guard of one change of one comment. Idempotency records' keys start
/// with a digit (a length), so the two never meet.
pub(crate) fn guard_key(comment: &Comment, change: Change) -> String {
    let change = match change {
        Change::Added => "added",
        Change::Removed => "removed",
    };
    format!(
        "counted:{change}:{}:{}",
        comment.created_at.timestamp_micros(),
        comment.id
    )
}

/// What became of a change the reader saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counting {
    /// Counted before: by the API's own transaction, or by another reader.
    AlreadyCounted,
    /// Counted now: the post's counter moved by one.
    Counted,
    /// The post is gone (or had no comment left to take away): nothing to count.
    NothingToCount,
}

impl Storage {
    /// The guard of `change` of `comment`, on the condition that it is missing: for the
    /// transactions (the API's, or a reader's) that make the change count.
    pub(crate) fn counted_guard(
        &self,
        comment: &Comment,
        change: Change,
    ) -> Result<(Part, TransactWriteItem), AppError> {
        self.guard(comment, change, true)
    }

    /// The guard of `change` of `comment`, written whether or not it exists: for a
    /// counter made from what the index shows, and for a deletion that finds the counter
    /// at 0, whose comment's addition a reader may not have counted yet (and now never
    /// will).
    pub(crate) fn counted_guard_anyway(
        &self,
        comment: &Comment,
        change: Change,
    ) -> Result<(Part, TransactWriteItem), AppError> {
        self.guard(comment, change, false)
    }

    fn guard(
        &self,
        comment: &Comment,
        change: Change,
        only_if_missing: bool,
    ) -> Result<(Part, TransactWriteItem), AppError> {
        let mut put = Put::builder()
            .table_name(&self.tables.idempotency)
            .set_item(Some(self.guard_item(comment, change)));
        if only_if_missing {
            put = put.condition_expression(format!("attribute_not_exists({CLAIM_KEY})"));
        }
        let put = put.build().map_err(AppError::internal)?;
        Ok((Part::Counted, TransactWriteItem::builder().put(put).build()))
    }

    /// Counts changes of comments read from the comments' stream, each one that no
    /// transaction counted yet. One consistent read of the guards tells which; in the
    /// usual case (the API wrote them all) that is the only request.
    pub(crate) async fn count_changes(
        &self,
        changes: &[(Change, Comment)],
    ) -> Result<Vec<Counting>, AppError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = changes
            .iter()
            .map(|(change, comment)| guard_key(comment, *change))
            .collect();
        let found = self
            .batch_get(
                &self.tables.idempotency,
                CLAIM_KEY,
                keys.iter().map(String::as_str),
            )
            .await?;
        let known: std::collections::HashSet<&str> = found
            .iter()
            .filter_map(|item| item.get(CLAIM_KEY)?.as_s().ok().map(String::as_str))
            .collect();
        let mut outcomes = Vec::with_capacity(changes.len());
        for ((change, comment), key) in changes.iter().zip(&keys) {
            let outcome = if known.contains(key.as_str()) {
                Counting::AlreadyCounted
            } else {
                match self.count_change(*change, comment).await {
                    Ok(outcome) => outcome,
                    // A fault that passes: the page is counted again (what is counted
                    // stays counted).
                    Err(err) if err.is_transient() => return Err(err),
                    // One that will not must not hold up the others.
                    Err(err) => {
                        tracing::error!(comment = %comment.id, post = %comment.post_id, ?change, error = ?err, "counting a comment change failed for good; `recount` repairs its post");
                        Counting::NothingToCount
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Counts one change, in a transaction with its guard: applied only if the guard is
    /// missing, so however often it runs the counter moves once. A post without a counter
    /// gets one first (its comments counted and guarded at once), and the change is tried
    /// again: counted then, or found counted by the count.
    async fn count_change(&self, change: Change, comment: &Comment) -> Result<Counting, AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut condition = format!("attribute_exists({COMMENT_COUNT})");
            if change == Change::Removed {
                condition.push_str(&format!(" AND {COMMENT_COUNT} > :zero"));
            }
            let mut update = Update::builder()
                .table_name(&self.tables.posts)
                .key(POST_ID, s(comment.post_id.as_str()))
                .update_expression(format!("ADD {COMMENT_COUNT} :delta"))
                .condition_expression(condition)
                .expression_attribute_values(":delta", n(change.delta()));
            if change == Change::Removed {
                update = update.expression_attribute_values(":zero", n(0));
            }
            let items = vec![
                self.counted_guard(comment, change)?,
                (
                    Part::Post,
                    TransactWriteItem::builder()
                        .update(update.build().map_err(AppError::internal)?)
                        .build(),
                ),
            ];
            // A cancellation (the guard is there, the post has no counter, is at 0 or is
            // gone) is read afterwards.
            let done = self.transact(items, None, |_| OnCancel::Retry).await?;
            if let Transacted::Applied = done {
                tracing::debug!(comment = %comment.id, post = %comment.post_id, ?change, "counted a comment change made without the API");
                return Ok(Counting::Counted);
            }
            if self.guard_exists(comment, change).await? {
                return Ok(Counting::AlreadyCounted);
            }
            let post = self
                .get(&self.tables.posts, (POST_ID, comment.post_id.as_str()))
                .await?;
            match post.as_ref().map(|post| number(post, COMMENT_COUNT)) {
                // No post, or none left to take away: nothing to count, ever.
                None => {}
                Some(Some(count)) if change == Change::Removed && count <= 0 => {}
                // Written without a counter: make it, then try again. A removal that the
                // index shows already is dealt with by the count itself (its guards).
                Some(None) => {
                    let removed = (change == Change::Removed).then_some(comment);
                    self.make_counter_guarded(&comment.post_id, removed).await?;
                    continue;
                }
                // A counter appeared meanwhile: try again.
                Some(Some(_)) => continue,
            }
            self.put_guard(comment, change).await?;
            return Ok(Counting::NothingToCount);
        }
        Err(AppError::unavailable(anyhow::anyhow!(
            "counting a comment change kept meeting concurrent changes"
        )))
    }

    async fn guard_exists(&self, comment: &Comment, change: Change) -> Result<bool, AppError> {
        let key = guard_key(comment, change);
        Ok(self
            .get(&self.tables.idempotency, (CLAIM_KEY, key.as_str()))
            .await?
            .is_some())
    }

    /// Writes a guard alone: the change is dealt with, though no counter moved.
    async fn put_guard(&self, comment: &Comment, change: Change) -> Result<(), AppError> {
        // Written meanwhile by another reader: just as good.
        let items = vec![self.counted_guard(comment, change)?];
        self.transact(items, None, |_| OnCancel::Retry).await?;
        Ok(())
    }

    /// `post`'s `CommentCount`, made if it has none: its comments counted on the index,
    /// and each one counted guarded ("added") in the same transaction that sets the
    /// counter, so that a stream reader that reads one of their records afterwards does
    /// not count it again, and a count that lost the race to another guards nothing.
    /// (Until the counter exists, readers count nothing for the post: their transactions
    /// need it.) Comments the index does not show yet have no guard, and their records
    /// count them. Past 99 comments the guards go first and the counter after, which a
    /// concurrent count of the same post could skew; `recount` repairs that.
    pub(crate) async fn count_and_guard_comments(&self, post: &PostId) -> Result<i64, AppError> {
        self.make_counter_guarded(post, None).await
    }

    /// [`Storage::count_and_guard_comments`], for a stream reader counting the removal
    /// of `removed` from a post without a counter: when the index no longer shows it,
    /// the count leaves it out, and the transaction that makes the counter also guards
    /// its addition and its removal (neither is to move the counter any more).
    async fn make_counter_guarded(
        &self,
        post: &PostId,
        removed: Option<&Comment>,
    ) -> Result<i64, AppError> {
        let key = (POST_ID, post.as_str());
        match self.get(&self.tables.posts, key).await? {
            None => return Ok(0),
            Some(item) => {
                if let Some(count) = number(&item, COMMENT_COUNT) {
                    return Ok(count);
                }
            }
        }
        let comments = self.all_comments_of(post).await?;
        let counted = i64::try_from(comments.len()).unwrap_or(i64::MAX);
        let guarded: Vec<&Comment> = comments.iter().filter_map(|c| c.as_ref()).collect();
        // The removal, when the count does not include its comment: both its guards.
        let gone = removed.filter(|removed| !guarded.iter().any(|c| c.id == removed.id));
        let extra = if gone.is_some() { 2 } else { 0 };
        if guarded.len() + extra > GUARDS_WITH_COUNTER {
            self.put_added_guards_all(&guarded).await?;
            if let Some(gone) = gone {
                self.put_guards_anyway(gone).await?;
            }
            return self
                .make_counter(&self.tables.posts, key, COMMENT_COUNT, counted)
                .await;
        }
        let counter = Update::builder()
            .table_name(&self.tables.posts)
            .key(POST_ID, s(post.as_str()))
            .update_expression(format!("SET {COMMENT_COUNT} = :n"))
            .condition_expression(format!(
                "attribute_exists({POST_ID}) AND attribute_not_exists({COMMENT_COUNT})"
            ))
            .expression_attribute_values(":n", n(counted))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![(
            Part::Post,
            TransactWriteItem::builder().update(counter).build(),
        )];
        for comment in guarded {
            items.push(self.counted_guard_anyway(comment, Change::Added)?);
        }
        if let Some(gone) = gone {
            items.push(self.counted_guard_anyway(gone, Change::Added)?);
            items.push(self.counted_guard_anyway(gone, Change::Removed)?);
        }
        match self.transact(items, None, |_| OnCancel::Retry).await? {
            Transacted::Applied => {
                tracing::info!(post = %post, counted, "made a missing comment counter");
                Ok(counted)
            }
            // Made meanwhile by another count (that value holds), or the post is gone.
            _ => Ok(self
                .get(&self.tables.posts, key)
                .await?
                .and_then(|item| number(&item, COMMENT_COUNT))
                .unwrap_or(0)),
        }
    }

    /// Writes the "added" guard of every comment of `post` on the index, and says how
    /// many there are: for `recount`, before it sets a counter to that number.
    pub(crate) async fn guard_comments_of(&self, post: &PostId) -> Result<i64, AppError> {
        let comments = self.all_comments_of(post).await?;
        let guarded: Vec<&Comment> = comments.iter().filter_map(|c| c.as_ref()).collect();
        self.put_added_guards_all(&guarded).await?;
        Ok(i64::try_from(comments.len()).unwrap_or(i64::MAX))
    }

    async fn put_added_guards_all(&self, comments: &[&Comment]) -> Result<(), AppError> {
        for chunk in comments.chunks(25) {
            self.put_added_guards(chunk).await?;
        }
        Ok(())
    }

    /// Both guards of a comment removed before its post's counter was made.
    async fn put_guards_anyway(&self, comment: &Comment) -> Result<(), AppError> {
        let items = vec![
            self.counted_guard_anyway(comment, Change::Added)?,
            self.counted_guard_anyway(comment, Change::Removed)?,
        ];
        self.transact(items, None, |_| OnCancel::Retry).await?;
        Ok(())
    }

    /// Every comment of `post` on the index; `None` for an item that is not a valid
    /// comment (counted, but not guarded).
    async fn all_comments_of(&self, post: &PostId) -> Result<Vec<Option<Comment>>, AppError> {
        let range = TimeRange::default();
        let comments = self.comments();
        let Source::Index(partition) = comments.of_post_source(post, &range) else {
            return Err(AppError::internal(anyhow::anyhow!(
                "comments are listed by an index"
            )));
        };
        let mut start = None;
        let mut all = Vec::new();
        loop {
            let output = self
                .index_query(&partition, true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            self.record("Query", output.consumed_capacity.as_slice());
            for item in output.items.unwrap_or_default() {
                all.push(
                    comment_from_item(item)
                        .inspect_err(|err| tracing::warn!(error = ?err, "a comment on the index is malformed; counted, not guarded"))
                        .ok(),
                );
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(all);
            }
        }
    }

    fn guard_item(&self, comment: &Comment, change: Change) -> super::items::Item {
        let expires = crate::domain::now()
            + chrono::Duration::from_std(GUARD_TTL).unwrap_or_else(|_| chrono::Duration::days(3));
        std::collections::HashMap::from([
            (CLAIM_KEY.to_owned(), s(&guard_key(comment, change))),
            (POST_ID.to_owned(), s(comment.post_id.as_str())),
            (EXPIRES_AT.to_owned(), n(expires.timestamp())),
        ])
    }

    /// Writes the "added" guards of `comments` (at most 25), whether or not they exist.
    async fn put_added_guards(&self, comments: &[&Comment]) -> Result<(), AppError> {
        let mut requests = comments
            .iter()
            .map(|comment| {
                let put = PutRequest::builder()
                    .set_item(Some(self.guard_item(comment, Change::Added)))
                    .build()
                    .map_err(AppError::internal)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        for attempt in 0..8u32 {
            if requests.is_empty() {
                return Ok(());
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.tables.idempotency, requests)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("BatchWriteItem", e))?;
            self.record("BatchWriteItem", output.consumed_capacity());
            requests = output
                .unprocessed_items
                .and_then(|mut left| left.remove(&self.tables.idempotency))
                .unwrap_or_default();
            if !requests.is_empty() {
                tokio::time::sleep(super::backoff(
                    attempt,
                    Duration::from_millis(20),
                    Duration::from_secs(1),
                ))
                .await;
            }
        }
        Err(AppError::unavailable(anyhow::anyhow!(
            "DynamoDB left guards unwritten after retries"
        )))
    }

    /// Gives a post written without a counter (by another program) its `CommentCount`,
    /// counted on the index. Nothing happens to a post that has one (one read).
    pub(crate) async fn make_comment_counter(&self, post: &PostId) -> Result<(), AppError> {
        self.count_and_guard_comments(post).await?;
        Ok(())
    }
}
