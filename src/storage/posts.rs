use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use super::{
    Page, PageKey, Storage, classify,
    items::{post_from_item, post_to_item},
    pages::Source,
    tables::USER_POSTS_INDEX,
};
use crate::{
    domain::{PageSize, Post, PostId, UserId},
    error::AppError,
};

const KEY: &str = "PostId";
/// A position in `user_posts_index`: the table's key and the index's.
const LIST_KEY: &[(&str, bool)] = &[(KEY, false), ("UserId", false), ("CreatedAt", true)];

impl Storage {
    pub async fn posts_by_id(&self, ids: &[PostId]) -> Result<HashMap<PostId, Post>, AppError> {
        let items = self
            .batch_get(&self.tables.posts, KEY, ids.iter().map(PostId::as_str))
            .await?;
        items
            .into_iter()
            .map(|item| post_from_item(item).map(|p| (p.id.clone(), p)))
            .collect::<anyhow::Result<_>>()
            .map_err(AppError::internal)
    }

    /// A user's posts, newest first (GSI `user_posts_index`, eventually consistent).
    pub async fn posts_of_user(
        &self,
        user: &UserId,
        size: PageSize,
        after: Option<&PageKey>,
    ) -> Result<Page<Post>, AppError> {
        let source = Source::Index {
            table: &self.tables.posts,
            index: USER_POSTS_INDEX,
            partition: ("UserId", user.as_str()),
            newest_first: true,
        };
        let raw = self.page(source, LIST_KEY, size, after).await?;
        raw.try_map(post_from_item)
    }

    /// Writes a new post.
    pub async fn create_post(&self, post: &Post) -> Result<(), AppError> {
        let output = self
            .client
            .put_item()
            .table_name(&self.tables.posts)
            .set_item(Some(post_to_item(post).map_err(AppError::internal)?))
            .condition_expression("attribute_not_exists(PostId)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        self.record("PutItem", output.consumed_capacity.as_slice());
        Ok(())
    }
}
