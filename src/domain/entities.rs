use chrono::{DateTime, Utc};

use super::{CommentContent, CommentId, Email, PostContent, PostId, Title, UserId, Username};

/// A user of the blog, as the users table holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// The user's id, which their tokens carry in `sub`.
    pub id: UserId,
    /// The name the user goes by, visible to everyone.
    pub username: String,
    /// The user's email address, shown to the user themself only.
    pub email: String,
    /// `None` for users written by tools that do not record it (Da Vinci's `UserTable`).
    pub created_at: Option<DateTime<Utc>>,
    /// How many posts the user has, kept with every post written; `None` for users
    /// written by other programs until their posts are first counted.
    pub post_count: Option<i64>,
}

/// A blog post, as the posts table holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Post {
    /// The post's id (`PostId` in the table).
    pub id: PostId,
    /// The user who wrote the post.
    pub author_id: UserId,
    /// The headline.
    pub title: String,
    /// The body text.
    pub content: String,
    /// When the post was created.
    pub created_at: DateTime<Utc>,
    /// When the post was last edited; equals `created_at` until the first edit.
    pub updated_at: DateTime<Utc>,
    /// 1 on create, +1 per edit of the post itself (new comments do not change it).
    pub version: i64,
    /// How many comments the post has, kept exact by transactional writes; `None` for
    /// posts written by other programs until their comments are first counted.
    pub comment_count: Option<i64>,
}

/// A comment on a post, as the comments table holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    /// The comment's id (`CommentId` in the table).
    pub id: CommentId,
    /// The post commented on.
    pub post_id: PostId,
    /// The user who wrote the comment.
    pub author_id: UserId,
    /// The comment's text.
    pub content: String,
    /// When the comment was added.
    pub created_at: DateTime<Utc>,
    /// When the comment was last edited; equals `created_at` until the first edit.
    pub updated_at: DateTime<Utc>,
    /// 1 on create, +1 per edit.
    pub version: i64,
}

/// A user about to be created: every field already checked.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The token's subject, which becomes the user's id.
    pub id: UserId,
    /// The username asked for; if it is taken, the write is a `CONFLICT`.
    pub username: Username,
    /// The email address given.
    pub email: Email,
}

/// A post about to be created: every field already checked.
#[derive(Clone, Debug)]
pub struct NewPost {
    /// The viewer, who writes the post.
    pub author_id: UserId,
    /// The headline: 1 to 200 characters, not blank.
    pub title: Title,
    /// The body: up to 64 KiB, not blank.
    pub content: PostContent,
}

/// A comment about to be added: every field checked, though the post may not exist.
#[derive(Clone, Debug)]
pub struct NewComment {
    /// The post to comment on.
    pub post_id: PostId,
    /// The viewer, who writes the comment.
    pub author_id: UserId,
    /// The text: up to 8 KiB, not blank.
    pub content: CommentContent,
}

/// The current time at the microsecond precision the tables store.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

impl User {
    /// A new user made of checked input, created now.
    pub fn create(new: NewUser) -> Self {
        Self {
            id: new.id,
            username: new.username.into_string(),
            email: new.email.into_string(),
            created_at: Some(now()),
            post_count: Some(0),
        }
    }
}

impl Post {
    /// A new post with a fresh id, created now, at version 1 and without comments.
    pub fn create(new: NewPost) -> Self {
        let created_at = now();
        Self {
            id: PostId::generate(),
            author_id: new.author_id,
            title: new.title.into_string(),
            content: new.content.into_string(),
            created_at,
            updated_at: created_at,
            version: 1,
            comment_count: Some(0),
        }
    }
}

impl Comment {
    /// A new comment with a fresh id, created now, at version 1.
    pub fn create(new: NewComment) -> Self {
        let created_at = now();
        Self {
            id: CommentId::generate(),
            post_id: new.post_id,
            author_id: new.author_id,
            content: new.content.into_string(),
            created_at,
            updated_at: created_at,
            version: 1,
        }
    }
}
