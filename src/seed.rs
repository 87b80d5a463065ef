//! Demo data: three users, their posts and some comments, with fixed ids so the
//! README's queries work as written.

use chrono::{DateTime, Duration, Utc};

use crate::{
    domain::{Comment, CommentId, Post, PostId, User, UserId},
    storage::Storage,
};

/// What was written (or found already there).
pub struct Seeded {
    /// Whether this run wrote the data; false when it was there already.
    pub fresh: bool,
    /// The demo users, with their fixed ids.
    pub users: Vec<User>,
    /// The demo posts, with their fixed ids.
    pub posts: Vec<Post>,
}

const USERS: [(&str, &str); 3] = [("user-1", "alice"), ("user-2", "bob"), ("user-3", "carol")];

const POSTS: [(&str, usize, &str, &str); 5] = [
    ("post-0001", 0, "My First Post", "Hello, world!"),
    (
        "post-0002",
        0,
        "DynamoDB single-digit milliseconds",
        "Batching makes GraphQL cheap.",
    ),
    (
        "post-0003",
        0,
        "DataLoaders explained",
        "One BatchGetItem per level, not per field.",
    ),
    (
        "post-0004",
        1,
        "Bob's notes",
        "Notes on cursors and pagination.",
    ),
    ("post-0005", 2, "Carol says hi", "First post from Carol."),
];

/// (post index, author index, content)
const COMMENTS: [(usize, usize, &str); 8] = [
    (0, 1, "Great post!"),
    (0, 2, "Welcome aboard."),
    (0, 0, "Thanks, both of you."),
    (1, 1, "How many requests does a feed cost?"),
    (1, 2, "Thirteen, for ten posts."),
    (2, 2, "Clear explanation."),
    (3, 0, "Cursors are underrated."),
    (4, 1, "Hi Carol!"),
];

/// Creates the tables if needed and writes the demo users, posts and comments, unless the
/// first demo user is there already.
pub async fn seed(storage: &Storage) -> anyhow::Result<Seeded> {
    storage.create_tables().await?;
    let start: DateTime<Utc> = crate::domain::now() - Duration::days(1);
    let users: Vec<User> = USERS
        .iter()
        .map(|(id, name)| User {
            id: UserId::from_stored((*id).to_owned()),
            username: (*name).to_owned(),
            email: format!("{name}@example.com"),
            created_at: Some(start),
            post_count: Some(0),
        })
        .collect();
    let existing = storage
        .users()
        .by_id(&[users[0].id.clone()])
        .await
        .map_err(|e| anyhow::anyhow!("reading the users table failed: {e:?}"))?;
    let posts: Vec<Post> = POSTS
        .iter()
        .enumerate()
        .map(|(i, (id, author, title, content))| {
            let at = start + Duration::minutes(10 * (i as i64 + 1));
            Post {
                id: PostId::from_stored((*id).to_owned()),
                author_id: users[*author].id.clone(),
                title: (*title).to_owned(),
                content: (*content).to_owned(),
                created_at: at,
                updated_at: at,
                version: 1,
                comment_count: Some(0),
            }
        })
        .collect();
    if !existing.is_empty() {
        return Ok(Seeded {
            fresh: false,
            users,
            posts,
        });
    }
    for user in &users {
        storage
            .users()
            .create(user, None)
            .await
            .map_err(|e| anyhow::anyhow!("writing user {} failed: {e:?}", user.id))?;
    }
    for post in &posts {
        storage
            .posts()
            .create(post, None)
            .await
            .map_err(|e| anyhow::anyhow!("writing post {} failed: {e:?}", post.id))?;
    }
    for (i, (post, author, content)) in COMMENTS.iter().enumerate() {
        let at = posts[*post].created_at + Duration::minutes(i as i64 + 1);
        let comment = Comment {
            id: CommentId::from_stored(format!("comment-{:04}", i + 1)),
            post_id: posts[*post].id.clone(),
            author_id: users[*author].id.clone(),
            content: (*content).to_owned(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        storage
            .comments()
            .add(&comment, None)
            .await
            .map_err(|e| anyhow::anyhow!("writing comment {} failed: {e:?}", comment.id))?;
    }
    Ok(Seeded {
        fresh: true,
        users,
        posts,
    })
}
