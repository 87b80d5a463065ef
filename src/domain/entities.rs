use chrono::{DateTime, Utc};

use super::{CommentContent, CommentId, Email, PostContent, PostId, Title, UserId, Username};

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    /// `None` for users written by tools that do not record it (Da Vinci's `UserTable`).
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Post {
    pub id: PostId,
    pub author_id: UserId,
    pub title: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub comment_count: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    pub id: CommentId,
    pub post_id: PostId,
    pub author_id: UserId,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// A user about to be created: every field already checked.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
}

#[derive(Clone, Debug)]
pub struct NewPost {
    pub author_id: UserId,
    pub title: Title,
    pub content: PostContent,
}

#[derive(Clone, Debug)]
pub struct NewComment {
    pub post_id: PostId,
    pub author_id: UserId,
    pub content: CommentContent,
}

/// The current time at the microsecond precision the tables store.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

impl User {
    pub fn create(new: NewUser) -> Self {
        Self {
            id: new.id,
            username: new.username.into_string(),
            email: new.email.into_string(),
            created_at: Some(now()),
        }
    }
}

impl Post {
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
            comment_count: 0,
        }
    }
}

impl Comment {
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
