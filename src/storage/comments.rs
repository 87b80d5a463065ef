use std::{collections::HashMap, time::Duration};

use anyhow::anyhow;
use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem, Update},
};

use super::{
    Page, PageKey, Storage, backoff, classify,
    items::{comment_from_item, comment_to_item},
    pages::Source,
    tables::POST_COMMENTS_INDEX,
};
use crate::{
    domain::{Comment, CommentId, PageSize, PostId},
    error::AppError,
};

const KEY: &str = "CommentId";
/// A position in `post_comments_index`: the table's key and the index's.
const LIST_KEY: &[(&str, bool)] = &[(KEY, false), ("PostId", false), ("CreatedAt", true)];

/// Concurrent transactions on one post (many comments at once) make DynamoDB cancel
/// some with `TransactionConflict`; nothing was written then, so they are tried again.
const MAX_TRANSACTION_RETRIES: u32 = 10;

impl Storage {
    pub async fn comments_by_id(
        &self,
        ids: &[CommentId],
    ) -> Result<HashMap<CommentId, Comment>, AppError> {
        let items = self
            .batch_get(
                &self.tables.comments,
                KEY,
                ids.iter().map(CommentId::as_str),
            )
            .await?;
        items
            .into_iter()
            .map(|item| comment_from_item(item).map(|c| (c.id.clone(), c)))
            .collect::<anyhow::Result<_>>()
            .map_err(AppError::internal)
    }

    /// A post's comments, oldest first (GSI `post_comments_index`, eventually consistent).
    pub async fn comments_of_post(
        &self,
        post: &PostId,
        size: PageSize,
        after: Option<&PageKey>,
    ) -> Result<Page<Comment>, AppError> {
        let source = Source::Index {
            table: &self.tables.comments,
            index: POST_COMMENTS_INDEX,
            partition: ("PostId", post.as_str()),
            newest_first: false,
        };
        let raw = self.page(source, LIST_KEY, size, after).await?;
        raw.try_map(comment_from_item)
    }

    /// Writes a comment and adds 1 to its post's `CommentCount` in one transaction,
    /// on the condition that the post exists: `NOT_FOUND` (and nothing written) if not.
    pub async fn add_comment(&self, comment: &Comment) -> Result<(), AppError> {
        let put = Put::builder()
            .table_name(&self.tables.comments)
            .set_item(Some(comment_to_item(comment).map_err(AppError::internal)?))
            .condition_expression("attribute_not_exists(CommentId)")
            .build()
            .map_err(AppError::internal)?;
        let count = Update::builder()
            .table_name(&self.tables.posts)
            .key("PostId", AttributeValue::S(comment.post_id.to_string()))
            .update_expression("ADD CommentCount :one")
            .condition_expression("attribute_exists(PostId)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        self.transact(items, |reasons| match reasons.get(1).map(String::as_str) {
            Some("ConditionalCheckFailed") => Some(AppError::NotFound(format!(
                "post {:?} does not exist",
                comment.post_id.as_str()
            ))),
            _ => None,
        })
        .await
    }

    /// Runs a write transaction, retrying it while DynamoDB cancels it for conflicts with
    /// other transactions. `on_cancel` turns the cancellation reasons (one code per item,
    /// "None" where that item was fine) into the client's error when a condition failed.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        on_cancel: impl Fn(&[String]) -> Option<AppError>,
    ) -> Result<(), AppError> {
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
                    return Ok(());
                }
                Err(err) => err,
            };
            self.record("TransactWriteItems", &[]);
            let reasons: Vec<String> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => cancel
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_owned())
                    .collect(),
                _ => return Err(classify("TransactWriteItems", err)),
            };
            if let Some(client_error) = on_cancel(&reasons) {
                return Err(client_error);
            }
            let conflicted = reasons.iter().any(|r| r == "TransactionConflict");
            if !conflicted || retries == MAX_TRANSACTION_RETRIES {
                return Err(if conflicted {
                    AppError::unavailable(anyhow!(
                        "transaction kept conflicting after {retries} retries"
                    ))
                } else {
                    AppError::internal(anyhow!("transaction cancelled: {reasons:?}"))
                });
            }
            retries += 1;
            tokio::time::sleep(backoff(
                retries,
                Duration::from_millis(10),
                Duration::from_millis(500),
            ))
            .await;
        }
    }
}
