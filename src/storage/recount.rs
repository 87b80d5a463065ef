//! `recount`: counters recomputed from what they count, and repaired where they drifted
//! (comments or posts written or deleted by another program, or before counters
//! existed). Safe while the API serves writes: a counter is only set on the condition
//! that it still holds the value read before counting, and a count that disagrees with
//! the counter is taken again after a pause, since the indexes it reads lag behind the
//! tables by a moment.

use std::time::Duration;

use futures::StreamExt;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use super::{
    Storage,
    attributes::{
        COMMENT_COUNT, POST_COUNT, POST_ID, USER_COUNT, USER_ID, USERNAME_KEY, USERS_COUNTER_KEY,
    },
    classify,
    items::Item,
    pages::Source,
    range::TimeRange,
    writes::{n, number, s},
};
use crate::{
    domain::{PostId, UserId},
    error::AppError,
};

/// How long a count that disagrees with its counter waits to be taken again: well over
/// how far a GSI lags behind its table.
const SETTLE: Duration = Duration::from_secs(1);
/// Attempts per counter when writes keep moving it.
const MAX_ATTEMPTS: usize = 5;

/// Which counters to check.
#[derive(Clone, Debug)]
pub enum RecountScope {
    /// Every post's and every user's, and the number of users.
    All,
    /// One post's comment counter.
    Post(PostId),
    /// One user's post counter.
    User(UserId),
}

/// A counter found wrong and set right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// What it counts: `post <id>`, `user <id>` or `users`.
    pub counter: String,
    /// What it held (`None`: it did not exist).
    pub was: Option<i64>,
    /// What it holds now.
    pub now: i64,
}

/// What a recount did.
#[derive(Clone, Debug, Default)]
pub struct Recounted {
    /// Counters checked.
    pub checked: usize,
    /// Counters repaired.
    pub repairs: Vec<Repair>,
    /// Counters left unchecked: writes kept moving them while they were counted, or
    /// DynamoDB failed (the log says which); run again later.
    pub moving: Vec<String>,
}

/// One counter: where it is, and how to count what it counts.
struct Counter<'a> {
    table: &'a str,
    key: (&'static str, String),
    attribute: &'static str,
    source: Source<'a>,
    name: String,
}

/// A counter to check.
enum Which {
    Post(PostId),
    User(UserId),
    Users,
}

/// What checking one counter found.
enum Outcome {
    /// Right (or its item gone meanwhile).
    Right,
    /// Wrong, and set right.
    Repaired(Repair),
    /// Moved by writes at every attempt: left for another run.
    Moving(String),
    /// Could not be checked (DynamoDB failed): left for another run.
    Failed(String),
}

/// Counters checked at once.
const CONCURRENCY: usize = 16;

impl Storage {
    /// Checks the counters `scope` names, and repairs the ones that are wrong: 16 at a
    /// time, so that the pause a wrong one takes is shared. A counter that writes keep
    /// moving is reported, not repaired, and the others are checked all the same.
    pub async fn recount(&self, scope: RecountScope) -> Result<Recounted, AppError> {
        let mut counters: Vec<Which> = match &scope {
            RecountScope::All => self
                .keys_of(&self.tables.posts, POST_ID)
                .await?
                .into_iter()
                .map(|id| Which::Post(PostId::from_stored(id)))
                .collect(),
            RecountScope::Post(id) => vec![Which::Post(id.clone())],
            RecountScope::User(_) => Vec::new(),
        };
        match &scope {
            RecountScope::All => {
                let users = self.keys_of(&self.tables.users, USER_ID).await?;
                counters.extend(
                    users
                        .into_iter()
                        .map(|id| Which::User(UserId::from_stored(id))),
                );
                counters.push(Which::Users);
            }
            RecountScope::User(id) => counters.push(Which::User(id.clone())),
            RecountScope::Post(_) => {}
        }
        let checked = counters.len();
        let outcomes: Vec<Outcome> = futures::stream::iter(counters)
            .map(|which| self.check_or_report(which))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut done = Recounted {
            checked,
            ..Recounted::default()
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Right => {}
                Outcome::Repaired(repair) => done.repairs.push(repair),
                Outcome::Moving(name) | Outcome::Failed(name) => done.moving.push(name),
            }
        }
        Ok(done)
    }

    /// Checks one counter; a failure is logged and reported, and the others go on.
    async fn check_or_report(&self, which: Which) -> Outcome {
        let name = match &which {
            Which::Post(id) => format!("post {id}"),
            Which::User(id) => format!("user {id}"),
            Which::Users => "users".to_owned(),
        };
        match self.check(which).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::error!(counter = %name, error = ?err, "could not check a counter");
                Outcome::Failed(name)
            }
        }
    }

    async fn check(&self, which: Which) -> Result<Outcome, AppError> {
        let everything = TimeRange::default();
        let (comments, posts) = (self.comments(), self.posts());
        let counter = match &which {
            Which::Post(id) => Counter {
                table: &self.tables.posts,
                key: (POST_ID, id.to_string()),
                attribute: COMMENT_COUNT,
                source: comments.of_post_source(id, &everything),
                name: format!("post {id}"),
            },
            Which::User(id) => Counter {
                table: &self.tables.users,
                key: (USER_ID, id.to_string()),
                attribute: POST_COUNT,
                source: posts.of_user_source(id, &everything),
                name: format!("user {id}"),
            },
            Which::Users => Counter {
                table: &self.tables.usernames,
                key: (USERNAME_KEY, USERS_COUNTER_KEY.to_owned()),
                attribute: USER_COUNT,
                source: Source::Table {
                    table: &self.tables.users,
                },
                name: "users".to_owned(),
            },
        };
        for _ in 0..MAX_ATTEMPTS {
            let Some(was) = self.counter_value(&counter).await? else {
                // The item is gone (deleted meanwhile): nothing to count for.
                return Ok(Outcome::Right);
            };
            let counted = self.count(counter.source.clone()).await?;
            if Some(counted) == was {
                return Ok(Outcome::Right);
            }
            tokio::time::sleep(SETTLE).await;
            let again = self.count(counter.source.clone()).await?;
            if Some(again) == was {
                return Ok(Outcome::Right);
            }
            if again != counted {
                // Writes are moving it: read it all again.
                continue;
            }
            if let Which::Post(id) = &which {
                // The comments are listed and guarded first, so that a stream reader that
                // has yet to read one's record does not count it again after the repair;
                // the listing must agree with the count, or writes are moving it.
                if self.guard_comments_of(id).await? != counted {
                    continue;
                }
            }
            if self.set_counter(&counter, was, counted).await? {
                tracing::warn!(counter = %counter.name, ?was, now = counted, "repaired a counter");
                return Ok(Outcome::Repaired(Repair {
                    counter: counter.name.clone(),
                    was,
                    now: counted,
                }));
            }
        }
        tracing::warn!(counter = %counter.name, "the counter kept moving while it was recounted");
        Ok(Outcome::Moving(counter.name))
    }

    /// The counter's value: `None` when its item does not exist (the users' counter is
    /// then 0 uncounted: `Some(None)`), `Some(None)` when the item has no counter.
    async fn counter_value(&self, counter: &Counter<'_>) -> Result<Option<Option<i64>>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(counter.table)
            .key(counter.key.0, s(&counter.key.1))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        self.record("GetItem", output.consumed_capacity.as_slice());
        let holds_others = counter.attribute == USER_COUNT;
        Ok(match output.item {
            Some(item) => Some(number(&item, counter.attribute)),
            None if holds_others => Some(None),
            None => None,
        })
    }

    /// Sets the counter to `now` if it still holds `was`; false when it moved meanwhile.
    async fn set_counter(
        &self,
        counter: &Counter<'_>,
        was: Option<i64>,
        now: i64,
    ) -> Result<bool, AppError> {
        let mut update = self
            .client
            .update_item()
            .table_name(counter.table)
            .key(counter.key.0, s(&counter.key.1))
            .update_expression("SET #c = :now")
            .expression_attribute_names("#c", counter.attribute)
            .expression_attribute_values(":now", n(now))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        update = match was {
            Some(was) => update
                .condition_expression("#c = :was")
                .expression_attribute_values(":was", n(was)),
            None if counter.attribute == USER_COUNT => {
                update.condition_expression("attribute_not_exists(#c)")
            }
            None => update
                .condition_expression("attribute_exists(#k) AND attribute_not_exists(#c)")
                .expression_attribute_names("#k", counter.key.0),
        };
        match update.send().await {
            Ok(output) => {
                self.record("UpdateItem", output.consumed_capacity.as_slice());
                Ok(true)
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.record("UpdateItem", &[]);
                Ok(false)
            }
            Err(err) => Err(classify("UpdateItem", err)),
        }
    }

    /// Every key of `table` (its `key` attribute), read with a keys-only `Scan`.
    async fn keys_of(&self, table: &str, key: &str) -> Result<Vec<String>, AppError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(table)
                .projection_expression("#k")
                .expression_attribute_names("#k", key)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("Scan", e))?;
            self.record("Scan", output.consumed_capacity.as_slice());
            keys.extend(output.items.unwrap_or_default().iter().filter_map(|item| {
                match item.get(key) {
                    Some(AttributeValue::S(value)) => Some(value.clone()),
                    _ => None,
                }
            }));
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(keys);
            }
        }
    }
}
