use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::attributes::{COMMENT_COUNT, COMMENT_ID, CONTENT, CREATED_AT, POST_ID, USER_ID};
use super::{
    Comments, List, Page,
    counted::Change,
    items::{comment_from_item, comment_to_item},
    pages::{Partition, Source, Window},
    posts::no_user,
    range::TimeRange,
    tables::POST_COMMENTS_INDEX,
    writes::{Claimed, OnCancel, Part, Transacted, Written, n, s, string},
};
use crate::{
    domain::{Claim, Comment, CommentContent, CommentId, PostId, UserId},
    error::{AppError, Entity, Refusal},
};

const KEY: &str = COMMENT_ID;
const MAX_ATTEMPTS: usize = 5;

impl Comments<'_> {
    /// Comments by id, in `BatchGetItem`s of at most 100 keys; unknown ids are absent.
    pub async fn by_id(&self, ids: &[CommentId]) -> Result<HashMap<CommentId, Comment>, AppError> {
        let ids = ids.iter().map(CommentId::as_str);
        self.items_by_id(&self.tables.comments, KEY, ids, comment_from_item, |c| {
            c.id.clone()
        })
        .await
    }

    /// A post's comments, oldest first (GSI `post_comments_index`, eventually consistent).
    pub async fn of_post(&self, post: &PostId, window: &Window) -> Result<Page<Comment>, AppError> {
        let raw = self
            .page(
                self.of_post_source(post, &window.range),
                List::PostComments,
                window,
            )
            .await?;
        raw.try_map(comment_from_item)
    }

    /// How many items the list holds within `range`: `Select: COUNT` on the index.
    pub async fn count_of_post(&self, post: &PostId, range: &TimeRange) -> Result<i64, AppError> {
        self.count(self.of_post_source(post, range)).await
    }

    pub(crate) fn of_post_source<'a>(
        &'a self,
        post: &'a PostId,
        range: &'a TimeRange,
    ) -> Source<'a> {
        Source::Index(Partition {
            table: &self.tables.comments,
            index: POST_COMMENTS_INDEX,
            partition: (POST_ID, post.as_str()),
            sort: CREATED_AT,
            newest_first: false,
            range,
        })
    }

    /// Writes a comment and adds 1 to its post's `CommentCount` in one transaction, on the
    /// condition that the post and the author exist: refused (and nothing written) if not.
    /// A post written by another program without a counter has its comments counted
    /// first (this one not yet among them).
    pub async fn add(&self, comment: &Comment, claim: Option<&Claim>) -> Result<Written, AppError> {
        for _ in 0..2 {
            let put = Put::builder()
                .table_name(&self.tables.comments)
                .set_item(Some(comment_to_item(comment).map_err(AppError::internal)?))
                .condition_expression(format!("attribute_not_exists({COMMENT_ID})"))
                .build()
                .map_err(AppError::internal)?;
            let count = Update::builder()
                .table_name(&self.tables.posts)
                .key(POST_ID, s(comment.post_id.as_str()))
                .update_expression(format!("ADD {COMMENT_COUNT} :one"))
                .condition_expression(format!("attribute_exists({COMMENT_COUNT})"))
                .expression_attribute_values(":one", n(1))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(AppError::internal)?;
            let items = vec![
                (Part::Comment, TransactWriteItem::builder().put(put).build()),
                (
                    Part::Post,
                    TransactWriteItem::builder().update(count).build(),
                ),
                (Part::Author, self.user_exists(&comment.author_id)?),
                self.counted_guard(comment, Change::Added)?,
            ];
            let claimed = claim.map(|claim| Claimed {
                claim,
                result: comment.id.as_str(),
            });
            let done = self
                .transact(items, claimed, |reasons| {
                    if reasons.failed(Part::Post) && reasons.old(Part::Post).is_none() {
                        OnCancel::Fail(AppError::Refused(Refusal::Missing(
                            Entity::Post,
                            comment.post_id.to_string(),
                        )))
                    } else if reasons.failed(Part::Author) {
                        OnCancel::Fail(no_user(&comment.author_id))
                    } else if reasons.failed(Part::Comment) {
                        OnCancel::Fail(AppError::Refused(Refusal::Exists(
                            Entity::Comment,
                            comment.id.to_string(),
                        )))
                    } else {
                        // The post has no counter yet.
                        OnCancel::Retry
                    }
                })
                .await?;
            match done {
                Transacted::Applied => return Ok(Written::Applied(())),
                Transacted::Replayed(id) => return Ok(Written::Replayed(id)),
                Transacted::Retry => _ = self.count_comments(&comment.post_id).await?,
            }
        }
        Err(AppError::Refused(Refusal::Contended(Entity::Post)))
    }

    /// Edits a comment: only its author, and at `expected_version` when given.
    pub async fn update(
        &self,
        author: &UserId,
        id: &CommentId,
        content: CommentContent,
        expected_version: Option<i64>,
        claim: Option<&Claim>,
    ) -> Result<Written<Comment>, AppError> {
        let written = self
            .edit(
                &self.tables.comments,
                (KEY, id.as_str()),
                Entity::Comment,
                author,
                expected_version,
                vec![(CONTENT, s(content.as_str()))],
                claim,
            )
            .await?;
        written.decode(comment_from_item)
    }

    /// Deletes a comment, as its author or as its post's author, and takes 1 from the
    /// post's `CommentCount` in the same transaction. Who may delete is a condition of
    /// the transaction itself, not only of the read that picks the way.
    pub async fn delete(
        &self,
        viewer: &UserId,
        id: &CommentId,
        claim: Option<&Claim>,
    ) -> Result<Written, AppError> {
        let not_found = || AppError::Refused(Refusal::Missing(Entity::Comment, id.to_string()));
        let forbidden = || AppError::Refused(Refusal::NotCommentOrPostAuthor(id.to_string()));
        // Whether the post's counter takes part; not when the post is gone or its counter
        // is already at 0 (a post written by Da Vinci, whose comments it does not count).
        let mut counted = true;
        for _ in 0..MAX_ATTEMPTS {
            let comment = self
                .comments()
                .by_id(std::slice::from_ref(id))
                .await?
                .remove(id)
                .ok_or_else(not_found)?;
            let as_author = &comment.author_id == viewer;
            let items = self.deletion(&comment, viewer, as_author, counted)?;
            let claimed = claim.map(|claim| Claimed {
                claim,
                result: id.as_str(),
            });
            let done = self
                .transact(items, claimed, |reasons| {
                    if reasons.failed(Part::Comment) {
                        // Gone meanwhile (not found), or changed: read again and see.
                        return match reasons.old(Part::Comment) {
                            None => OnCancel::Fail(not_found()),
                            Some(_) => OnCancel::Retry,
                        };
                    }
                    match reasons.old(Part::Post) {
                        Some(old)
                            if !as_author && string(old, USER_ID) != Some(viewer.as_str()) =>
                        {
                            OnCancel::Fail(forbidden())
                        }
                        // The post is gone, or its counter is at 0 already: read again.
                        _ => OnCancel::Retry,
                    }
                })
                .await?;
            match done {
                Transacted::Applied => return Ok(Written::Applied(())),
                Transacted::Replayed(id) => return Ok(Written::Replayed(id)),
                Transacted::Retry => {}
            }
            let post_now = self
                .posts()
                .by_id(std::slice::from_ref(&comment.post_id))
                .await?
                .remove(&comment.post_id);
            match post_now {
                // Without the post, nobody but the comment's author may delete it.
                None if !as_author => return Err(forbidden()),
                None => counted = false,
                // Written without a counter: count its comments (this one still among
                // them), then take it away from the count.
                Some(p) if p.comment_count.is_none() => {
                    self.count_comments(&comment.post_id).await?;
                    counted = true;
                }
                Some(p) if p.comment_count <= Some(0) => counted = false,
                Some(_) => {}
            }
        }
        Err(AppError::Refused(Refusal::Contended(Entity::Comment)))
    }

    /// The transaction that deletes `comment` for `viewer`: the comment, on the condition
    /// that it is still on its post (and, for its author, still theirs); and the post,
    /// whose counter goes down by one when `counted`, on the condition that it exists
    /// (and, when the viewer deletes as the post's author, that it is still theirs).
    fn deletion(
        &self,
        comment: &Comment,
        viewer: &UserId,
        as_author: bool,
        counted: bool,
    ) -> Result<Vec<(Part, TransactWriteItem)>, AppError> {
        let id = &comment.id;
        let post = s(comment.post_id.as_str());
        let mut delete = Delete::builder()
            .table_name(&self.tables.comments)
            .key(KEY, s(id.as_str()))
            .expression_attribute_values(":post", post.clone())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        delete = if as_author {
            delete
                .condition_expression(format!(
                    "attribute_exists({COMMENT_ID}) AND {POST_ID} = :post AND {USER_ID} = :viewer"
                ))
                .expression_attribute_values(":viewer", s(viewer.as_str()))
        } else {
            delete.condition_expression(format!(
                "attribute_exists({COMMENT_ID}) AND {POST_ID} = :post"
            ))
        };
        let mut items = vec![
            (
                Part::Comment,
                TransactWriteItem::builder()
                    .delete(delete.build().map_err(AppError::internal)?)
                    .build(),
            ),
            // Dealt with here, counted or not: the stream reader leaves it alone.
            self.counted_guard(comment, Change::Removed)?,
        ];
        if !counted {
            // The counter is at 0 (or the post gone) while the comment exists: its
            // addition is not counted, and must not be once it is deleted.
            items.push(self.counted_guard_anyway(comment, Change::Added)?);
        }
        // The post item: its counter, and (for the post's author) who may delete.
        let mut condition = vec![format!("attribute_exists({POST_ID})")];
        if !as_author {
            condition.push(format!("{USER_ID} = :viewer"));
        }
        let viewer_value = (!as_author).then(|| s(viewer.as_str()));
        if counted {
            condition.push(format!("{COMMENT_COUNT} > :zero"));
            let mut update = Update::builder()
                .table_name(&self.tables.posts)
                .key(POST_ID, post)
                .update_expression(format!("ADD {COMMENT_COUNT} :minus"))
                .condition_expression(condition.join(" AND "))
                .expression_attribute_values(":minus", n(-1))
                .expression_attribute_values(":zero", n(0))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            if let Some(value) = viewer_value {
                update = update.expression_attribute_values(":viewer", value);
            }
            let update = update.build().map_err(AppError::internal)?;
            items.push((
                Part::Post,
                TransactWriteItem::builder().update(update).build(),
            ));
        } else if let Some(viewer_value) = viewer_value {
            let check = ConditionCheck::builder()
                .table_name(&self.tables.posts)
                .key(POST_ID, post)
                .condition_expression(condition.join(" AND "))
                .expression_attribute_values(":viewer", viewer_value)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(AppError::internal)?;
            items.push((
                Part::Post,
                TransactWriteItem::builder().condition_check(check).build(),
            ));
        }
        Ok(items)
    }
}
