//! The benchmark's data: 200 users, 10 posts each, 10 comments on every post, in Da Vinci's
//! item format, with fixed ids and times so that every run reads the same answers.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::{
    Client,
    types::{AttributeValue, PutRequest, WriteRequest},
};
use futures::{StreamExt, TryStreamExt, stream};

/// Users in the data set.
pub(crate) const USERS: usize = 200;
/// Posts each user wrote.
pub(crate) const POSTS_PER_USER: usize = 10;
/// Comments on each post.
pub(crate) const COMMENTS_PER_POST: usize = 10;
/// Reads ask for the first 100 users and their posts; the mix's comments go to the
/// posts of the other 100, so that every read has one exact expected answer.
pub(crate) const READ_USERS: usize = 100;

/// 2026-01-01T00:00:00Z, the first user's creation.
const EPOCH: u64 = 1_767_225_600;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The deployment's table names.
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    pub(crate) users: String,
    pub(crate) posts: String,
    pub(crate) comments: String,
    /// The server's own: where `AddComment`'s counted guard goes.
    pub(crate) idempotency: String,
}

impl Tables {
    /// The names of `{app}-{deployment}-{table}`, as the server derives them.
    pub(crate) fn new(app: &str, deployment: &str) -> Self {
        Self {
            users: format!("{app}-{deployment}-users"),
            posts: format!("{app}-{deployment}-posts"),
            comments: format!("{app}-{deployment}-comments"),
            idempotency: format!("{app}-{deployment}-idempotency"),
        }
    }
}

/// User `i`'s id (a UUID, as Da Vinci writes them).
pub(crate) fn user_id(i: usize) -> String {
    format!("00000001-0000-4000-8000-{i:012x}")
}

/// The id of user `user`'s post `j`.
pub(crate) fn post_id(user: usize, j: usize) -> String {
    format!("00000002-0000-4000-8000-{:012x}", user * POSTS_PER_USER + j)
}

fn comment_id(post: usize, k: usize) -> String {
    format!(
        "00000003-0000-4000-8000-{:012x}",
        post * COMMENTS_PER_POST + k
    )
}

/// Who wrote comment `k` of post number `post`: spread over every user.
fn comment_author(post: usize, k: usize) -> usize {
    (post * 7 + k * 13) % USERS
}

/// Da Vinci's DATETIME: epoch seconds as a Number, with microseconds.
fn time(seconds: u64, micros: u64) -> AttributeValue {
    AttributeValue::N(format!("{seconds}.{micros:06}"))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Every item of the data set, by table.
fn items(tables: &Tables) -> Vec<(String, Item)> {
    let mut all = Vec::new();
    for u in 0..USERS {
        let user = Item::from([
            ("UserId".to_owned(), s(user_id(u))),
            ("Username".to_owned(), s(format!("user{u:03}"))),
            ("Email".to_owned(), s(format!("user{u:03}@example.com"))),
            ("CreatedAt".to_owned(), time(EPOCH + u as u64, 0)),
        ]);
        all.push((tables.users.clone(), user));
        for j in 0..POSTS_PER_USER {
            let number = u * POSTS_PER_USER + j;
            let created = EPOCH + 100_000 + number as u64 * 600;
            let post = Item::from([
                ("PostId".to_owned(), s(post_id(u, j))),
                ("UserId".to_owned(), s(user_id(u))),
                (
                    "Title".to_owned(),
                    s(format!("Notes on DynamoDB, part {j} by user{u:03}")),
                ),
                (
                    "Content".to_owned(),
                    s(format!(
                        "Post {number}. Batching turns a tree of resolvers into one request per \
                         level; cursors keep pages stable while comments arrive; counters \
                         move in the same transaction as the items they count."
                    )),
                ),
                ("CreatedAt".to_owned(), time(created, 250_000)),
                (
                    "CommentCount".to_owned(),
                    AttributeValue::N(COMMENTS_PER_POST.to_string()),
                ),
            ]);
            all.push((tables.posts.clone(), post));
            for k in 0..COMMENTS_PER_POST {
                let comment = Item::from([
                    ("CommentId".to_owned(), s(comment_id(number, k))),
                    ("PostId".to_owned(), s(post_id(u, j))),
                    ("UserId".to_owned(), s(user_id(comment_author(number, k)))),
                    (
                        "Content".to_owned(),
                        s(format!(
                            "Comment {k} on post {number}: thanks, this helped."
                        )),
                    ),
                    (
                        "CreatedAt".to_owned(),
                        time(created + 1 + k as u64 * 7, 125_000),
                    ),
                ]);
                all.push((tables.comments.clone(), comment));
            }
        }
    }
    all
}

/// Writes the data set (into tables that exist and are empty), 25 items to a
/// `BatchWriteItem`, eight at a time.
pub(crate) async fn write(client: &Client, tables: &Tables) -> anyhow::Result<usize> {
    let items = items(tables);
    let count = items.len();
    let batches: Vec<Vec<(String, Item)>> = items.chunks(25).map(<[_]>::to_vec).collect();
    stream::iter(batches)
        .map(|batch| write_batch(client, batch))
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;
    Ok(count)
}

async fn write_batch(client: &Client, batch: Vec<(String, Item)>) -> anyhow::Result<()> {
    let mut pending: HashMap<String, Vec<WriteRequest>> = HashMap::new();
    for (table, item) in batch {
        let put = PutRequest::builder().set_item(Some(item)).build()?;
        pending
            .entry(table)
            .or_default()
            .push(WriteRequest::builder().put_request(put).build());
    }
    for _ in 0..20 {
        let output = client
            .batch_write_item()
            .set_request_items(Some(pending))
            .send()
            .await
            .context("writing the data set failed")?;
        pending = output.unprocessed_items.unwrap_or_default();
        pending.retain(|_, requests| !requests.is_empty());
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("DynamoDB kept items unprocessed")
}
