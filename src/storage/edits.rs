//! Edits of an item that only its author may make, at an expected version.

use std::collections::HashMap;

use anyhow::anyhow;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use super::attributes::{UPDATED_AT, USER_ID, VERSION};
use super::{
    Storage, classify_write,
    items::{Item, epoch_value},
    write_once,
};
use crate::{
    domain::{Claim, UserId},
    error::{AppError, Entity, Refusal},
};

use super::writes::{Claimed, OnCancel, Part, Transacted, Written, n, number, s, string};

impl Storage {
    /// Edits an item that only its author may edit: sets `changes`, stamps `UpdatedAt`,
    /// adds 1 to `Version` (items written by Da Vinci count as version 1), all on the
    /// condition that the item exists, `UserId` is `author`, and the version is
    /// `expected_version` when given. When a condition fails, the item as it was tells
    /// which one: missing, not the author's, or at another version.
    ///
    /// One `UpdateItem`; under an idempotency key, a transaction with the key's record
    /// instead (and a read of the edited item, which a transaction does not return).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn edit(
        &self,
        table: &str,
        key: (&str, &str),
        entity: Entity,
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
            format!("{UPDATED_AT} = :now"),
            format!("{VERSION} = if_not_exists({VERSION}, :one) + :one"),
        ];
        for (i, (name, value)) in changes.into_iter().enumerate() {
            names.insert(format!("#c{i}"), name.to_owned());
            values.insert(format!(":c{i}"), value);
            sets.push(format!("#c{i} = :c{i}"));
        }
        let mut condition = format!("attribute_exists(#key) AND {USER_ID} = :author");
        if let Some(version) = expected_version {
            values.insert(":expected".to_owned(), n(version));
            // An item without `Version` (written by Da Vinci) is at version 1.
            let at_version = if version == 1 {
                format!(" AND ({VERSION} = :expected OR attribute_not_exists({VERSION}))")
            } else {
                format!(" AND {VERSION} = :expected")
            };
            condition.push_str(&at_version);
        }
        let update_expression = format!("SET {}", sets.join(", "));
        let refused =
            |old: Option<&Item>| why_not_author_edit(entity, key.1, author, expected_version, old);

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
            let part = match entity {
                Entity::User => Part::User,
                Entity::Post => Part::Post,
                Entity::Comment => Part::Comment,
            };
            let items = vec![(part, TransactWriteItem::builder().update(update).build())];
            let claimed = Claimed {
                claim,
                result: key.1,
            };
            return match self
                .transact(items, Some(claimed), |reasons| {
                    OnCancel::Fail(refused(reasons.old(part)))
                })
                .await?
            {
                Transacted::Replayed(id) => Ok(Written::Replayed(id)),
                Transacted::Applied | Transacted::Retry => {
                    // The edit is made; should reading it fail, a retry with the key
                    // gets it.
                    let applied = || {
                        AppError::outcome_unknown(anyhow!(
                            "an edited {entity:?} could not be read back"
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
}

/// Tells which condition of an author-only edit failed, from the item as it was.
pub(crate) fn why_not_author_edit(
    entity: Entity,
    id: &str,
    author: &UserId,
    expected_version: Option<i64>,
    old: Option<&Item>,
) -> AppError {
    let Some(old) = old else {
        return AppError::Refused(Refusal::Missing(entity, id.to_owned()));
    };
    if string(old, USER_ID) != Some(author.as_str()) {
        return AppError::Refused(Refusal::NotAuthor {
            entity,
            id: id.to_owned(),
            delete: false,
        });
    }
    let current = number(old, VERSION).unwrap_or(1);
    AppError::Refused(Refusal::VersionMismatch {
        entity,
        id: id.to_owned(),
        expected: expected_version.unwrap_or(current),
        current,
    })
}
