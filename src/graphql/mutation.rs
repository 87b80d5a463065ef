use async_graphql::{Context, ID, InputObject, Object, Result};

use super::{
    context::{loaders, viewer},
    types::{Comment, Post, User},
};
use crate::{
    domain::{
        self, CommentContent, Email, NewComment, NewPost, NewUser, PostContent, PostId, Title,
        Username,
    },
    error::AppError,
};

pub struct Mutation;

#[derive(InputObject)]
pub struct CreateUserInput {
    /// 3 to 32 letters, digits, `_` or `-`.
    username: String,
    email: String,
}

#[derive(InputObject)]
pub struct CreatePostInput {
    /// 1 to 200 characters, not blank.
    title: String,
    /// Up to 64 KiB, not blank.
    content: String,
}

#[derive(InputObject)]
pub struct AddCommentInput {
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
            username: Username::parse(&input.username).map_err(AppError::from)?,
            email: Email::parse(&input.email).map_err(AppError::from)?,
        };
        let user = domain::User::create(new);
        let loaders = loaders(ctx)?;
        loaders.storage().create_user(&user).await?;
        loaders.prime_users(vec![user.clone()]).await;
        Ok(User(user))
    }

    /// Creates a post written by the viewer.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> Result<Post> {
        let author_id = viewer(ctx)?.require()?.clone();
        let new = NewPost {
            author_id,
            title: Title::parse(&input.title).map_err(AppError::from)?,
            content: PostContent::parse(&input.content).map_err(AppError::from)?,
        };
        let post = domain::Post::create(new);
        let loaders = loaders(ctx)?;
        loaders.storage().create_post(&post).await?;
        loaders.prime_posts(vec![post.clone()]).await;
        Ok(Post(post))
    }

    /// Adds a comment by the viewer; the post's `commentCount` grows by one in the same
    /// transaction. `NOT_FOUND` when the post does not exist.
    async fn add_comment(&self, ctx: &Context<'_>, input: AddCommentInput) -> Result<Comment> {
        let author_id = viewer(ctx)?.require()?.clone();
        let new = NewComment {
            post_id: PostId::parse(input.post_id.0).map_err(AppError::from)?,
            author_id,
            content: CommentContent::parse(&input.content).map_err(AppError::from)?,
        };
        let comment = domain::Comment::create(new);
        loaders(ctx)?.storage().add_comment(&comment).await?;
        Ok(Comment(comment))
    }
}
