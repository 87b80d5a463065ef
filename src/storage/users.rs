use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use super::{
    Page, PageKey, Storage, classify,
    items::{user_from_item, user_to_item},
    pages::Source,
};
use crate::{
    domain::{PageSize, User, UserId},
    error::AppError,
};

const KEY: &str = "UserId";
const LIST_KEY: &[(&str, bool)] = &[(KEY, false)];

impl Storage {
    pub async fn users_by_id(&self, ids: &[UserId]) -> Result<HashMap<UserId, User>, AppError> {
        let items = self
            .batch_get(&self.tables.users, KEY, ids.iter().map(UserId::as_str))
            .await?;
        items
            .into_iter()
            .map(|item| user_from_item(item).map(|u| (u.id.clone(), u)))
            .collect::<anyhow::Result<_>>()
            .map_err(AppError::internal)
    }

    /// All users, a page at a time, in no promised order (a `Scan`).
    pub async fn users_page(
        &self,
        size: PageSize,
        after: Option<&PageKey>,
    ) -> Result<Page<User>, AppError> {
        let source = Source::Table {
            table: &self.tables.users,
        };
        let raw = self.page(source, LIST_KEY, size, after).await?;
        raw.try_map(user_from_item)
    }

    /// Writes a new user; `CONFLICT` when a user with that id exists already.
    pub async fn create_user(&self, user: &User) -> Result<(), AppError> {
        let output = self
            .client
            .put_item()
            .table_name(&self.tables.users)
            .set_item(Some(user_to_item(user).map_err(AppError::internal)?))
            .condition_expression("attribute_not_exists(UserId)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match output {
            Ok(output) => {
                self.record("PutItem", output.consumed_capacity.as_slice());
                Ok(())
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.record("PutItem", &[]);
                Err(AppError::Conflict(format!(
                    "a user with id {:?} exists already",
                    user.id.as_str()
                )))
            }
            Err(err) => Err(classify("PutItem", err)),
        }
    }
}
