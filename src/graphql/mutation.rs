use super::Result;
use async_graphql::{Context, ID, InputObject, Object};

use super::{
    context::{claim, loaders, viewer},
    types::{Comment, Post, User},
};
use crate::{
    domain::{
        self, Claim, CommentContent, CommentId, Email, NewComment, NewPost, NewUser, PostContent,
        PostId, Title, UserId, Username,
    },
    error::AppError,
    loaders::Loaders,
    storage::Written,
};

/// The mutation root: writes to users, posts and comments.
pub struct Mutation;

#[derive(InputObject)]
pub(super) struct CreateUserInput {
    /// 3 to 32 letters, digits, `_` or `-`.
    username: String,
    email: String,
}

#[derive(InputObject)]
pub(super) struct CreatePostInput {
    /// 1 to 200 characters, not blank.
    title: String,
    /// Up to 64 KiB, not blank.
    content: String,
}

#[derive(InputObject)]
pub(super) struct UpdateUserInput {
    /// 3 to 32 letters, digits, `_` or `-`; unique regardless of case.
    username: Option<String>,
    email: Option<String>,
}

#[derive(InputObject)]
pub(super) struct UpdatePostInput {
    /// 1 to 200 characters, not blank.
    title: Option<String>,
    /// Up to 64 KiB, not blank.
    content: Option<String>,
    /// When given, the edit applies only if the post is still at this version;
    /// otherwise `CONFLICT`, with the current version in the message.
    expected_version: Option<i64>,
}

#[derive(InputObject)]
pub(super) struct AddCommentInput {
    post_id: ID,
    /// Up to 8 KiB, not blank.
    content: String,
}

#[Object]
impl Mutation {
    /// Creates the user named by the token's subject; `CONFLICT` if it exists already.
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let id = viewer(ctx)?.require()?.clone();
        let new = NewUser {
            id,
            username: Username::parse(&input.username)?,
            email: Email::parse(&input.email)?,
        };
        let user = domain::User::create(new);
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &user.id);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders.storage().users().create(&user, claim.as_ref()),
        )
        .await?;
        match written {
            Written::Applied(()) => {
                loaders.prime_users(vec![user.clone()]).await;
                Ok(User(user))
            }
            Written::Replayed(id) => Ok(User(replay_user(&loaders, id).await?)),
        }
    }

    /// Changes the viewer's username and/or email. A taken username is `CONFLICT`.
    async fn update_user(&self, ctx: &Context<'_>, input: UpdateUserInput) -> Result<User> {
        let id = viewer(ctx)?.require()?.clone();
        let username = input.username.as_deref().map(Username::parse).transpose()?;
        let email = input.email.as_deref().map(Email::parse).transpose()?;
        if username.is_none() && email.is_none() {
            return Err(nothing_to_change("username, email"));
        }
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &id);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders
                .storage()
                .users()
                .update(&id, username, email, claim.as_ref()),
        )
        .await?;
        match written {
            Written::Applied(user) => {
                loaders.prime_users(vec![user.clone()]).await;
                Ok(User(user))
            }
            Written::Replayed(id) => Ok(User(replay_user(&loaders, id).await?)),
        }
    }

    /// Creates a post written by the viewer.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> Result<Post> {
        let author_id = viewer(ctx)?.require()?.clone();
        let new = NewPost {
            author_id,
            title: Title::parse(&input.title)?,
            content: PostContent::parse(&input.content)?,
        };
        let post = domain::Post::create(new);
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &post.author_id);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders.storage().posts().create(&post, claim.as_ref()),
        )
        .await?;
        match written {
            Written::Applied(()) => {
                loaders.prime_posts(vec![post.clone()]).await;
                Ok(Post(post))
            }
            Written::Replayed(id) => Ok(Post(replay_post(&loaders, id).await?)),
        }
    }

    /// Edits a post; only its author may. `version` grows by one.
    async fn update_post(&self, ctx: &Context<'_>, id: ID, input: UpdatePostInput) -> Result<Post> {
        let author = viewer(ctx)?.require()?.clone();
        let id = PostId::parse(id.0)?;
        let title = input.title.as_deref().map(Title::parse).transpose()?;
        let content = input
            .content
            .as_deref()
            .map(PostContent::parse)
            .transpose()?;
        if title.is_none() && content.is_none() {
            return Err(nothing_to_change("title, content"));
        }
        let expected = input.expected_version.map(version).transpose()?;
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &author);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders.storage().posts().update(
                &author,
                &id,
                title,
                content,
                expected,
                claim.as_ref(),
            ),
        )
        .await?;
        match written {
            Written::Applied(post) => {
                loaders.prime_posts(vec![post.clone()]).await;
                Ok(Post(post))
            }
            Written::Replayed(id) => Ok(Post(replay_post(&loaders, id).await?)),
        }
    }

    /// Deletes a post and all its comments; only its author may. Returns the post's id.
    /// A post with many comments is deleted in steps; if a step fails, calling again
    /// finishes the job.
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let author = viewer(ctx)?.require()?.clone();
        let post = PostId::parse(id.0)?;
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &author);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders
                .storage()
                .posts()
                .delete(&author, &post, claim.as_ref()),
        )
        .await?;
        Ok(deleted(written, post.into_string()))
    }

    /// Edits a comment; only its author may. `version` grows by one.
    async fn update_comment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        content: String,
        expected_version: Option<i64>,
    ) -> Result<Comment> {
        let author = viewer(ctx)?.require()?.clone();
        let id = CommentId::parse(id.0)?;
        let content = CommentContent::parse(&content)?;
        let expected = expected_version.map(version).transpose()?;
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &author);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders
                .storage()
                .comments()
                .update(&author, &id, content, expected, claim.as_ref()),
        )
        .await?;
        match written {
            Written::Applied(comment) => Ok(Comment(comment)),
            Written::Replayed(id) => Ok(Comment(replay_comment(&loaders, id).await?)),
        }
    }

    /// Deletes a comment, as its author or as the author of its post; the post's
    /// `commentCount` goes down by one in the same transaction. Returns the comment's id.
    async fn delete_comment(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let viewer_id = viewer(ctx)?.require()?.clone();
        let comment = CommentId::parse(id.0)?;
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &viewer_id);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders
                .storage()
                .comments()
                .delete(&viewer_id, &comment, claim.as_ref()),
        )
        .await?;
        Ok(deleted(written, comment.into_string()))
    }

    /// Adds a comment by the viewer; the post's `commentCount` grows by one in the same
    /// transaction. `NOT_FOUND` when the post does not exist.
    async fn add_comment(&self, ctx: &Context<'_>, input: AddCommentInput) -> Result<Comment> {
        let author_id = viewer(ctx)?.require()?.clone();
        let new = NewComment {
            post_id: PostId::parse(input.post_id.0)?,
            author_id,
            content: CommentContent::parse(&input.content)?,
        };
        let comment = domain::Comment::create(new);
        let loaders = loaders(ctx)?;
        let claim = claim(ctx, &comment.author_id);
        let written = change(
            &loaders,
            claim.as_ref(),
            loaders.storage().comments().add(&comment, claim.as_ref()),
        )
        .await?;
        match written {
            Written::Applied(()) => Ok(Comment(comment)),
            Written::Replayed(id) => Ok(Comment(replay_comment(&loaders, id).await?)),
        }
    }
}

/// Makes a change (`write`, not started yet), under the request's idempotency key when it
/// has one. A change made before under the key is not made again: its result comes back
/// (`Replayed`). So does the result of a copy of the request that won a race with this
/// one, when the write fails for having lost it.
async fn change<T>(
    loaders: &Loaders,
    claim: Option<&Claim>,
    write: impl Future<Output = Result<Written<T>, AppError>>,
) -> Result<Written<T>, AppError> {
    let Some(claim) = claim else {
        return write.await;
    };
    if let Some(id) = loaders.storage().claimed(claim).await? {
        return Ok(Written::Replayed(id));
    }
    match write.await {
        Err(err) => match loaders.storage().claimed(claim).await {
            Ok(Some(id)) => Ok(Written::Replayed(id)),
            _ => Err(err),
        },
        written => written,
    }
}

/// The id a deletion answers with: the item's, or the one its key's first call deleted.
fn deleted(written: Written, id: String) -> ID {
    match written {
        Written::Applied(()) => ID(id),
        Written::Replayed(id) => ID(id),
    }
}

fn gone(what: &str, id: &str) -> AppError {
    AppError::NotFound(format!(
        "the {what} {id:?} that this idempotency key made or changed no longer exists"
    ))
}

async fn replay_user(loaders: &Loaders, id: String) -> Result<domain::User, AppError> {
    let user = loaders.user(&UserId::from_stored(id.clone())).await?;
    user.ok_or_else(|| gone("user", &id))
}

async fn replay_post(loaders: &Loaders, id: String) -> Result<domain::Post, AppError> {
    let post = loaders.post(&PostId::from_stored(id.clone())).await?;
    post.ok_or_else(|| gone("post", &id))
}

async fn replay_comment(loaders: &Loaders, id: String) -> Result<domain::Comment, AppError> {
    let comment = loaders.comment(&CommentId::from_stored(id.clone())).await?;
    comment.ok_or_else(|| gone("comment", &id))
}

fn nothing_to_change(fields: &str) -> AppError {
    AppError::BadUserInput(format!("nothing to change: give at least one of {fields}"))
}

fn version(expected: i64) -> Result<i64, AppError> {
    if expected < 1 {
        return Err(AppError::BadUserInput(format!(
            "expectedVersion must be 1 or more (got {expected})"
        )));
    }
    Ok(expected)
}
