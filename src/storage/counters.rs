//! The counters behind `totalCount`: a user's `PostCount` on the user's item, and the
//! number of users on an item of the usernames table. Both move in the transactions that
//! write what they count; an item written by another program without its counter is
//! counted once (a `Select: COUNT`) and the counter set, on the condition that nobody set
//! it meanwhile; `recount` repairs counters that drifted.

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{
        ConditionCheck, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem, Update,
    },
};

use super::{
    Comments, Storage, Users,
    attributes::{POST_COUNT, USER_COUNT, USER_ID, USERNAME_KEY, USERS_COUNTER_KEY},
    classify,
    pages::Source,
    range::TimeRange,
    writes::{n, number, s},
};
use crate::{
    domain::{PostId, UserId},
    error::AppError,
};

impl Storage {
    /// Makes a missing counter: `counted` becomes the `counter` attribute of the item
    /// whose key `key` is `id` in `table`, on the condition that the item exists and has
    /// no counter. Returns the counter's value: `counted`, or the value a concurrent count
    /// set first.
    pub(super) async fn make_counter(
        &self,
        table: &str,
        (key, id): (&str, &str),
        counter: &str,
        counted: i64,
    ) -> Result<i64, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(key, s(id))
            .update_expression("SET #c = :n")
            .condition_expression("attribute_exists(#k) AND attribute_not_exists(#c)")
            .expression_attribute_names("#c", counter)
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":n", n(counted))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.record("UpdateItem", output.consumed_capacity.as_slice());
                tracing::info!(table, id, counter, counted, "made a missing counter");
                Ok(counted)
            }
            Err(err) => {
                self.record("UpdateItem", &[]);
                match err.as_service_error() {
                    // Set meanwhile (that value holds), or no such item (nothing to keep).
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(failed
                        .item()
                        .and_then(|old| number(old, counter))
                        .unwrap_or(counted)),
                    _ => Err(classify("UpdateItem", err)),
                }
            }
        }
    }
}

impl Comments<'_> {
    /// How many comments `post` has, for a post written without a counter: a count on
    /// the index, which then becomes the post's `CommentCount` (see
    /// [`Users::count_posts`]).
    pub async fn count_comments(&self, post: &PostId) -> Result<i64, AppError> {
        self.count_and_guard_comments(post).await
    }
}

impl Users<'_> {
    /// How many posts `user` has: the counter on the user's item, or, for a user written
    /// without one, a count of the user's posts on the index, which then becomes the
    /// counter (unless a concurrent count set it first: then that one).
    pub async fn count_posts(&self, user: &UserId) -> Result<i64, AppError> {
        let counted = self
            .posts()
            .count_of_user(user, &TimeRange::default())
            .await?;
        let key = (USER_ID, user.as_str());
        self.make_counter(&self.tables.users, key, POST_COUNT, counted)
            .await
    }

    /// How many users there are: the users' counter, made by counting the table once
    /// (a `Scan` with `Select: COUNT`) when it does not exist yet (or by `recount`). The
    /// count runs as a task of its own, one at a time in a process, so that a request
    /// that gives up waiting (its timeout) does not waste it: the next finds it done.
    pub async fn count(&self) -> Result<i64, AppError> {
        if let Some(count) = self.read_user_count().await? {
            return Ok(count);
        }
        let storage: Storage = (**self).clone();
        tokio::spawn(async move {
            let _counting = storage.counting_users.lock().await;
            storage.users().first_user_count().await
        })
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("counting the users failed: {e}")))?
    }

    async fn first_user_count(&self) -> Result<i64, AppError> {
        if let Some(count) = self.read_user_count().await? {
            return Ok(count);
        }
        let table = Source::Table {
            table: &self.tables.users,
        };
        let counted = Storage::count(self, table).await?;
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.usernames)
            .item(USERNAME_KEY, s(USERS_COUNTER_KEY))
            .item(USER_COUNT, n(counted))
            .condition_expression(format!("attribute_not_exists({USERNAME_KEY})"))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.record("PutItem", output.consumed_capacity.as_slice());
                tracing::info!(users = counted, "counted the users");
                Ok(counted)
            }
            Err(err) => {
                self.record("PutItem", &[]);
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception())
                {
                    // Made meanwhile by another count: that one holds.
                    Ok(self.read_user_count().await?.unwrap_or(counted))
                } else {
                    Err(classify("PutItem", err))
                }
            }
        }
    }

    async fn read_user_count(&self) -> Result<Option<i64>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.usernames)
            .key(USERNAME_KEY, s(USERS_COUNTER_KEY))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        self.record("GetItem", output.consumed_capacity.as_slice());
        Ok(output
            .item
            .as_ref()
            .and_then(|item| number(item, USER_COUNT)))
    }

    /// A transaction item adding one to the users' counter, on the condition that it
    /// exists (when it does not, count the users first with [`Users::count`]).
    pub(crate) fn one_more_user(&self) -> Result<TransactWriteItem, AppError> {
        let update = Update::builder()
            .table_name(&self.tables.usernames)
            .key(USERNAME_KEY, s(USERS_COUNTER_KEY))
            .update_expression(format!("ADD {USER_COUNT} :one"))
            .condition_expression(format!("attribute_exists({USER_COUNT})"))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

impl Storage {
    /// A transaction item moving `user`'s post counter by `delta`, on the condition that
    /// the counter exists. On failure it returns the user's item as it was: none when
    /// there is no such user, one without a counter when it has to be counted first.
    pub(crate) fn move_post_count(
        &self,
        user: &UserId,
        delta: i64,
    ) -> Result<TransactWriteItem, AppError> {
        let update = Update::builder()
            .table_name(&self.tables.users)
            .key(USER_ID, s(user.as_str()))
            .update_expression(format!("SET {POST_COUNT} = {POST_COUNT} + :delta"))
            .condition_expression(format!("attribute_exists({POST_COUNT})"))
            .expression_attribute_values(":delta", n(delta))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A transaction item that holds while `user` has no item: a post of an author who no
    /// longer exists has no counter to move. Returns the item, when there is one.
    pub(crate) fn no_such_user(&self, user: &UserId) -> Result<TransactWriteItem, AppError> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.users)
            .key(USER_ID, s(user.as_str()))
            .condition_expression(format!("attribute_not_exists({USER_ID})"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }
}
