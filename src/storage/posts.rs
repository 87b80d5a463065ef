use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::attributes::{COMMENT_COUNT, COMMENT_ID, CONTENT, CREATED_AT, POST_ID, TITLE, USER_ID};
use super::{
    List, Page, Posts, Storage,
    counted::Change,
    edits::why_not_author_edit,
    items::{post_from_item, post_to_item},
    pages::{Partition, Source, Window},
    range::TimeRange,
    tables::USER_POSTS_INDEX,
    writes::{Claimed, OnCancel, Part, Transacted, Written, n, number, s, string},
};
use crate::{
    domain::{Claim, PageSize, Post, PostContent, PostId, Title, UserId},
    error::{AppError, Entity, Refusal},
};

const KEY: &str = POST_ID;
/// Comments deleted per transaction by `Posts::delete`: DynamoDB takes 100 items in one
/// transaction; each comment goes with the guard that says its removal is counted, and
/// one more item is the post's counter.
const DELETE_STEP: i32 = 49;
/// Steps of `Posts::delete` before it gives up (and a repeated call carries on).
const MAX_DELETE_STEPS: usize = 200;
/// Rounds (50 ms apart) in which `Posts::delete` waits for the index to show comments
/// that the post's counter says exist.
const TRUST_COUNTER_ROUNDS: usize = 20;
/// Attempts at deleting a post while its author's post counter appears or goes.
const MAX_COUNTER_ATTEMPTS: usize = 4;

pub(crate) fn no_user(id: &UserId) -> AppError {
    AppError::Refused(Refusal::NoSuchUser(id.to_string()))
}

impl Posts<'_> {
    /// Posts by id, in `BatchGetItem`s of at most 100 keys; unknown ids are absent.
    pub async fn by_id(&self, ids: &[PostId]) -> Result<HashMap<PostId, Post>, AppError> {
        let ids = ids.iter().map(PostId::as_str);
        self.items_by_id(&self.tables.posts, KEY, ids, post_from_item, |p| {
            p.id.clone()
        })
        .await
    }

    /// A user's posts, newest first (GSI `user_posts_index`, eventually consistent).
    pub async fn of_user(&self, user: &UserId, window: &Window) -> Result<Page<Post>, AppError> {
        let raw = self
            .page(
                self.of_user_source(user, &window.range),
                List::UserPosts,
                window,
            )
            .await?;
        raw.try_map(post_from_item)
    }

    /// How many items the list holds within `range`: `Select: COUNT` on the index.
    pub async fn count_of_user(&self, user: &UserId, range: &TimeRange) -> Result<i64, AppError> {
        self.count(self.of_user_source(user, range)).await
    }

    pub(crate) fn of_user_source<'a>(
        &'a self,
        user: &'a UserId,
        range: &'a TimeRange,
    ) -> Source<'a> {
        Source::Index(Partition {
            table: &self.tables.posts,
            index: USER_POSTS_INDEX,
            partition: (USER_ID, user.as_str()),
            sort: CREATED_AT,
            newest_first: true,
            range,
        })
    }

    /// Writes a new post, on the condition that its author exists (refused if not).
    pub async fn create(&self, post: &Post, claim: Option<&Claim>) -> Result<Written, AppError> {
        // Twice at most: the second time after counting the author's posts, when the
        // first found no counter on the author's item (written by another program).
        for _ in 0..2 {
            let put = Put::builder()
                .table_name(&self.tables.posts)
                .set_item(Some(post_to_item(post).map_err(AppError::internal)?))
                .condition_expression(format!("attribute_not_exists({POST_ID})"))
                .build()
                .map_err(AppError::internal)?;
            let items = vec![
                (Part::Post, TransactWriteItem::builder().put(put).build()),
                (Part::Author, self.move_post_count(&post.author_id, 1)?),
            ];
            let claimed = claim.map(|claim| Claimed {
                claim,
                result: post.id.as_str(),
            });
            let done = self
                .transact(items, claimed, |reasons| {
                    if reasons.failed(Part::Post) {
                        OnCancel::Fail(AppError::Refused(Refusal::Exists(
                            Entity::Post,
                            post.id.to_string(),
                        )))
                    } else if reasons.old(Part::Author).is_none() {
                        OnCancel::Fail(no_user(&post.author_id))
                    } else {
                        OnCancel::Retry
                    }
                })
                .await?;
            match done {
                Transacted::Applied => return Ok(Written::Applied(())),
                Transacted::Replayed(id) => return Ok(Written::Replayed(id)),
                Transacted::Retry => _ = self.users().count_posts(&post.author_id).await?,
            }
        }
        Err(AppError::Refused(Refusal::Contended(Entity::User)))
    }

    /// Edits a post: only its author, and at `expected_version` when given.
    pub async fn update(
        &self,
        author: &UserId,
        id: &PostId,
        title: Option<Title>,
        content: Option<PostContent>,
        expected_version: Option<i64>,
        claim: Option<&Claim>,
    ) -> Result<Written<Post>, AppError> {
        let mut changes = Vec::new();
        if let Some(title) = &title {
            changes.push((TITLE, s(title.as_str())));
        }
        if let Some(content) = &content {
            changes.push((CONTENT, s(content.as_str())));
        }
        let written = self
            .edit(
                &self.tables.posts,
                (KEY, id.as_str()),
                Entity::Post,
                author,
                expected_version,
                changes,
                claim,
            )
            .await?;
        written.decode(post_from_item)
    }

    /// Deletes a post and its comments; only its author may. The comments go first, 49 to
    /// a transaction (each with its counted guard) that also lowers the post's counter,
    /// so that every step leaves a consistent blog (a post with fewer comments, its count
    /// exact) and never a comment without its post. The post goes last, once no comment is left; if anything fails
    /// on the way, calling again carries on where it stopped.
    pub async fn delete(
        &self,
        author: &UserId,
        id: &PostId,
        claim: Option<&Claim>,
    ) -> Result<Written, AppError> {
        let step_size = PageSize::parse(DELETE_STEP, "first")
            .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
        let mut empty_rounds = 0;
        for step in 0..MAX_DELETE_STEPS {
            let Some(post) = self.by_id(std::slice::from_ref(id)).await?.remove(id) else {
                // Gone: either it never was, or a concurrent call finished the job.
                return if step == 0 {
                    Err(AppError::Refused(Refusal::Missing(
                        Entity::Post,
                        id.to_string(),
                    )))
                } else {
                    Ok(Written::Applied(()))
                };
            };
            if &post.author_id != author {
                return Err(AppError::Refused(Refusal::NotAuthor {
                    entity: Entity::Post,
                    id: id.to_string(),
                    delete: true,
                }));
            }
            if post.comment_count.is_none() {
                // Written without a counter: count its comments first, so that each step
                // takes its comments away from an exact count.
                self.comments().count_comments(id).await?;
                continue;
            }
            let comments = self
                .comments()
                .of_post(id, &Window::first(step_size))
                .await?;
            if comments.items.is_empty() {
                empty_rounds += 1;
                // The counter is trusted while the index may lag behind a new comment; but
                // when the index has shown no comment for a second, the counter is what is
                // wrong (a comment deleted by another program), and the post goes.
                let trust_counter = empty_rounds <= TRUST_COUNTER_ROUNDS;
                match self.delete_empty(author, id, trust_counter, claim).await? {
                    Some(written) => return Ok(written),
                    // The counter says comments remain that the index does not show yet.
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                continue;
            }
            let count = i64::try_from(comments.items.len()).unwrap_or(i64::MAX);
            let mut items = Vec::with_capacity(comments.items.len() + 1);
            for (_, comment) in &comments.items {
                let delete = Delete::builder()
                    .table_name(&self.tables.comments)
                    .key(COMMENT_ID, s(comment.id.as_str()))
                    .condition_expression(format!(
                        "attribute_exists({COMMENT_ID}) AND {POST_ID} = :post"
                    ))
                    .expression_attribute_values(":post", s(id.as_str()))
                    .build()
                    .map_err(AppError::internal)?;
                items.push((
                    Part::Comment,
                    TransactWriteItem::builder().delete(delete).build(),
                ));
                items.push(self.counted_guard(comment, Change::Removed)?);
            }
            let counter = Update::builder()
                .table_name(&self.tables.posts)
                .key(KEY, s(id.as_str()))
                .update_expression(format!("ADD {COMMENT_COUNT} :minus"))
                .condition_expression(format!("{USER_ID} = :author"))
                .expression_attribute_values(":minus", n(-count))
                .expression_attribute_values(":author", s(author.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(AppError::internal)?;
            items.push((
                Part::Post,
                TransactWriteItem::builder().update(counter).build(),
            ));
            // A failed condition means the state moved (a comment deleted meanwhile, the
            // post gone): the next step reads again and decides.
            self.transact(items, None, |_| OnCancel::Retry).await?;
        }
        Err(AppError::unavailable(anyhow::anyhow!(
            "post {id} still had comments after {MAX_DELETE_STEPS} steps"
        )))
    }

    /// Deletes a post that has no comments left, and lowers its author's post counter in
    /// the same transaction (or checks that the author has none). `None` when the post's
    /// comment counter says comments remain.
    async fn delete_empty(
        &self,
        author: &UserId,
        id: &PostId,
        trust_counter: bool,
        claim: Option<&Claim>,
    ) -> Result<Option<Written>, AppError> {
        let mut condition = format!("attribute_exists({POST_ID}) AND {USER_ID} = :author");
        let mut values = HashMap::from([(":author".to_owned(), s(author.as_str()))]);
        if trust_counter {
            condition.push_str(&format!(
                " AND (attribute_not_exists({COMMENT_COUNT}) OR {COMMENT_COUNT} <= :zero)"
            ));
            values.insert(":zero".to_owned(), n(0));
        }
        // Whether the author's item exists (then its counter moves; a counter it lacks is
        // made first), or not (then its absence is a condition).
        let mut author_exists = true;
        for _ in 0..MAX_COUNTER_ATTEMPTS {
            let delete = Delete::builder()
                .table_name(&self.tables.posts)
                .key(KEY, s(id.as_str()))
                .condition_expression(condition.clone())
                .set_expression_attribute_values(Some(values.clone()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(AppError::internal)?;
            let counter = if author_exists {
                self.move_post_count(author, -1)?
            } else {
                self.no_such_user(author)?
            };
            let items = vec![
                (
                    Part::Post,
                    TransactWriteItem::builder().delete(delete).build(),
                ),
                (Part::Author, counter),
            ];
            let claimed = claim.map(|claim| Claimed {
                claim,
                result: id.as_str(),
            });
            // The post as it was when its condition failed, if it did; and the author's
            // item, when its part failed.
            let failed = std::sync::Mutex::new(None);
            let author_failed = std::sync::Mutex::new(None);
            let done = self
                .transact(items, claimed, |reasons| {
                    if reasons.failed(Part::Post)
                        && let Ok(mut failed) = failed.lock()
                    {
                        *failed = Some(reasons.old(Part::Post).cloned());
                    }
                    if reasons.failed(Part::Author)
                        && let Ok(mut failed) = author_failed.lock()
                    {
                        *failed = Some(reasons.old(Part::Author).is_some());
                    }
                    OnCancel::Retry
                })
                .await?;
            match done {
                Transacted::Applied => return Ok(Some(Written::Applied(()))),
                Transacted::Replayed(id) => return Ok(Some(Written::Replayed(id))),
                Transacted::Retry => {}
            }
            match failed.into_inner().ok().flatten() {
                // Deleted meanwhile by a concurrent call: done all the same.
                Some(None) => return Ok(Some(Written::Applied(()))),
                Some(Some(old)) if string(&old, USER_ID) != Some(author.as_str()) => {
                    return Err(why_not_author_edit(
                        Entity::Post,
                        id.as_str(),
                        author,
                        None,
                        Some(&old),
                    ));
                }
                Some(Some(old)) => {
                    tracing::debug!(count = ?number(&old, COMMENT_COUNT), "post still has comments");
                    return Ok(None);
                }
                None => {}
            }
            match author_failed.into_inner().ok().flatten() {
                // The author's item has no counter (written by another program): count
                // the author's posts (this one still among them) first, then move it.
                Some(true) if author_exists => _ = self.users().count_posts(author).await?,
                // No author item (or one that appeared meanwhile): the other way.
                Some(exists) => author_exists = exists,
                None => {}
            }
        }
        Err(AppError::Refused(Refusal::Contended(Entity::User)))
    }
}

impl Storage {
    /// A transaction item that holds only while `user` exists.
    pub(crate) fn user_exists(&self, user: &UserId) -> Result<TransactWriteItem, AppError> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.users)
            .key(USER_ID, s(user.as_str()))
            .condition_expression(format!("attribute_exists({USER_ID})"))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }
}
