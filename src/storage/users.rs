use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::attributes::{EMAIL, USER_ID, USERNAME, USERNAME_KEY};
use super::{
    List, Page, Users,
    items::{user_from_item, user_to_item},
    pages::{Source, Window},
    writes::{Claimed, OnCancel, Part, Transacted, Written, s},
};
use crate::{
    domain::{Claim, Email, User, UserId, Username},
    error::{AppError, Entity, Refusal},
};

const KEY: &str = USER_ID;
/// Renames race with each other; after this many lost races the client is told to retry.
const MAX_ATTEMPTS: usize = 5;

/// The key of a username's guard item: names are unique regardless of case.
fn guard_key(username: &str) -> String {
    username.to_lowercase()
}

impl Users<'_> {
    /// Users by id, in `BatchGetItem`s of at most 100 keys; unknown ids are absent.
    pub async fn by_id(&self, ids: &[UserId]) -> Result<HashMap<UserId, User>, AppError> {
        let ids = ids.iter().map(UserId::as_str);
        self.items_by_id(&self.tables.users, KEY, ids, user_from_item, |u| {
            u.id.clone()
        })
        .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, AppError> {
        Ok(self.by_id(std::slice::from_ref(id)).await?.remove(id))
    }

    /// All users, a page at a time, in no promised order (a `Scan`).
    pub async fn list(&self, window: &Window) -> Result<Page<User>, AppError> {
        let source = Source::Table {
            table: &self.tables.users,
        };
        let raw = self.page(source, List::Users, window).await?;
        raw.try_map(user_from_item)
    }

    fn guard_put(&self, username: &str, owner: &UserId) -> Result<TransactWriteItem, AppError> {
        let put = Put::builder()
            .table_name(&self.tables.usernames)
            .item(USERNAME_KEY, s(&guard_key(username)))
            .item(USER_ID, s(owner.as_str()))
            .item(USERNAME, s(username))
            .condition_expression(format!(
                "attribute_not_exists({USERNAME_KEY}) OR {USER_ID} = :me"
            ))
            .expression_attribute_values(":me", s(owner.as_str()))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes a new user and its username's guard in one transaction: refused when a user
    /// with that id exists already or the name (in any case) is taken.
    /// The users' counter goes up by one in the same transaction.
    pub async fn create(&self, user: &User, claim: Option<&Claim>) -> Result<Written, AppError> {
        // Twice at most: the second time after counting the users, when the first found
        // no counter to move.
        for _ in 0..2 {
            let put = Put::builder()
                .table_name(&self.tables.users)
                .set_item(Some(user_to_item(user).map_err(AppError::internal)?))
                .condition_expression(format!("attribute_not_exists({USER_ID})"))
                .build()
                .map_err(AppError::internal)?;
            let items = vec![
                (Part::User, TransactWriteItem::builder().put(put).build()),
                (Part::Guard, self.guard_put(&user.username, &user.id)?),
                (Part::Counter, self.one_more_user()?),
            ];
            let claimed = claim.map(|claim| Claimed {
                claim,
                result: user.id.as_str(),
            });
            let done = self
                .transact(items, claimed, |reasons| {
                    if reasons.failed(Part::User) {
                        OnCancel::Fail(AppError::Refused(Refusal::Exists(
                            Entity::User,
                            user.id.to_string(),
                        )))
                    } else if reasons.failed(Part::Guard) {
                        OnCancel::Fail(AppError::Refused(Refusal::UsernameTaken(
                            user.username.to_string(),
                        )))
                    } else {
                        OnCancel::Retry
                    }
                })
                .await?;
            match done {
                Transacted::Applied => return Ok(Written::Applied(())),
                Transacted::Replayed(id) => return Ok(Written::Replayed(id)),
                // No counter yet: count the users (this one is not written), then again.
                Transacted::Retry => _ = self.count().await?,
            }
        }
        Err(AppError::Refused(Refusal::Contended(Entity::User)))
    }

    /// Changes the user's username and/or email. A new name takes its guard and frees the
    /// old one in the same transaction, on the condition that the name did not change
    /// meanwhile (a concurrent rename makes us read again and retry).
    pub async fn update(
        &self,
        id: &UserId,
        username: Option<Username>,
        email: Option<Email>,
        claim: Option<&Claim>,
    ) -> Result<Written<User>, AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .user(id)
                .await?
                .ok_or_else(|| AppError::Refused(Refusal::Missing(Entity::User, id.to_string())))?;
            let mut updated = current.clone();
            let mut update = Update::builder()
                .table_name(&self.tables.users)
                .key(KEY, s(id.as_str()))
                .condition_expression(format!("attribute_exists({USER_ID}) AND {USERNAME} = :old"))
                .expression_attribute_values(":old", s(&current.username));
            let mut sets = Vec::new();
            if let Some(email) = &email {
                update = update.expression_attribute_values(":email", s(email.as_str()));
                sets.push(format!("{EMAIL} = :email"));
                updated.email = email.as_str().to_owned();
            }
            let mut guards = Vec::new();
            if let Some(name) = &username {
                update = update.expression_attribute_values(":name", s(name.as_str()));
                sets.push(format!("{USERNAME} = :name"));
                updated.username = name.as_str().to_owned();
                guards.push((Part::Guard, self.guard_put(name.as_str(), id)?));
                if guard_key(name.as_str()) != guard_key(&current.username) {
                    // Free the old name, unless its guard is not ours (a user written by
                    // Da Vinci has none).
                    let delete = Delete::builder()
                        .table_name(&self.tables.usernames)
                        .key(USERNAME_KEY, s(&guard_key(&current.username)))
                        .condition_expression(format!(
                            "attribute_not_exists({USERNAME_KEY}) OR {USER_ID} = :me"
                        ))
                        .expression_attribute_values(":me", s(id.as_str()))
                        .build()
                        .map_err(AppError::internal)?;
                    guards.push((
                        Part::FreedGuard,
                        TransactWriteItem::builder().delete(delete).build(),
                    ));
                }
            }
            let update = update
                .update_expression(format!("SET {}", sets.join(", ")))
                .build()
                .map_err(AppError::internal)?;
            let mut items = vec![(
                Part::User,
                TransactWriteItem::builder().update(update).build(),
            )];
            items.extend(guards);
            let name = username.as_ref().map(Username::as_str).unwrap_or_default();
            let claimed = claim.map(|claim| Claimed {
                claim,
                result: id.as_str(),
            });
            let done = self
                .transact(items, claimed, |reasons| {
                    if reasons.failed(Part::User) {
                        OnCancel::Retry
                    } else if reasons.failed(Part::Guard) {
                        OnCancel::Fail(AppError::Refused(Refusal::UsernameTaken(name.to_owned())))
                    } else {
                        OnCancel::Fail(AppError::Refused(Refusal::UsernameHeld(
                            current.username.to_string(),
                        )))
                    }
                })
                .await?;
            match done {
                Transacted::Applied => return Ok(Written::Applied(updated)),
                Transacted::Replayed(id) => return Ok(Written::Replayed(id)),
                Transacted::Retry => {}
            }
        }
        Err(AppError::Refused(Refusal::Contended(Entity::User)))
    }
}
