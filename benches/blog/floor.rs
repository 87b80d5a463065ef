//! The floor: each canonical operation's DynamoDB requests and nothing else, sent with the
//! same SDK, level by level as a perfect batching server would send them (the requests of
//! one level at once), with no GraphQL and no HTTP. What it reads also renders the answer
//! the server must give, which is how the benchmark checks every response.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::{
    Client,
    types::{
        AttributeValue, ConditionCheck, KeysAndAttributes, Put, ReturnConsumedCapacity,
        TransactWriteItem, Update,
    },
};
use futures::future::{try_join, try_join_all};
use serde_json::{Value, json};

use crate::dataset::{Item, Tables};

/// Sends the floor's requests, and counts them.
pub(crate) struct Floor {
    client: Client,
    tables: Tables,
    requests: AtomicU64,
}

/// What `PostDetails` reads.
pub(crate) struct PostDetails {
    post: Item,
    author: Item,
    comments: Vec<Item>,
    more: bool,
    users: HashMap<String, Item>,
}

/// What `UserFeed` reads.
pub(crate) struct UserFeed {
    user: Item,
    posts: Vec<Item>,
    more: bool,
    comments: Vec<Vec<Item>>,
    users: HashMap<String, Item>,
}

/// What `UsersPage` reads.
pub(crate) struct UsersPage {
    users: Vec<Item>,
    more: bool,
    posts: Vec<Vec<Item>>,
}

fn text<'a>(item: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(anyhow!("an item lacks the string {name}")),
    }
}

fn number(item: &Item, name: &str) -> anyhow::Result<f64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => Ok(value.parse()?),
        _ => Err(anyhow!("an item lacks the number {name}")),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The first `size` of `items`, and whether there were more.
fn page(mut items: Vec<Item>, size: usize) -> (Vec<Item>, bool) {
    let more = items.len() > size;
    items.truncate(size);
    (items, more)
}

impl Floor {
    pub(crate) fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            requests: AtomicU64::new(0),
        }
    }

    /// DynamoDB requests sent so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn sent(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// One consistent `BatchGetItem` of `ids` (at most 100) from `table`, keyed by `key`.
    async fn batch_get(
        &self,
        table: &str,
        key: &str,
        ids: Vec<String>,
    ) -> anyhow::Result<Vec<Item>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = ids
            .into_iter()
            .map(|id| HashMap::from([(key.to_owned(), AttributeValue::S(id))]))
            .collect();
        let mut pending = HashMap::from([(
            table.to_owned(),
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()?,
        )]);
        let mut found = Vec::new();
        while !pending.is_empty() {
            self.sent();
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(pending))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .context("BatchGetItem failed")?;
            for (_, items) in output.responses.unwrap_or_default() {
                found.extend(items);
            }
            pending = output.unprocessed_keys.unwrap_or_default();
            pending.retain(|_, keys| !keys.keys.is_empty());
        }
        Ok(found)
    }

    /// One `Query` of an index's partition, `limit` items, oldest or newest first.
    async fn query(
        &self,
        table: &str,
        index: &str,
        partition: (&str, &str),
        limit: i32,
        newest_first: bool,
    ) -> anyhow::Result<Vec<Item>> {
        self.sent();
        let output = self
            .client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", partition.0)
            .expression_attribute_values(":p", s(partition.1))
            .scan_index_forward(!newest_first)
            .limit(limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .context("Query failed")?;
        Ok(output.items.unwrap_or_default())
    }

    async fn users(
        &self,
        ids: HashSet<String>,
        known: &[&Item],
    ) -> anyhow::Result<HashMap<String, Item>> {
        let mut users: HashMap<String, Item> = known
            .iter()
            .map(|user| Ok((text(user, "UserId")?.to_owned(), (*user).clone())))
            .collect::<anyhow::Result<_>>()?;
        let missing = ids
            .into_iter()
            .filter(|id| !users.contains_key(id))
            .collect();
        for user in self
            .batch_get(&self.tables.users, "UserId", missing)
            .await?
        {
            users.insert(text(&user, "UserId")?.to_owned(), user);
        }
        Ok(users)
    }

    /// `PostDetails`: the post; then its author and its first 20 comments at once; then
    /// the comments' authors not loaded yet. Four requests.
    pub(crate) async fn post_details(&self, id: &str) -> anyhow::Result<PostDetails> {
        let post = self
            .batch_get(&self.tables.posts, "PostId", vec![id.to_owned()])
            .await?
            .pop()
            .context("no such post")?;
        let author_id = text(&post, "UserId")?.to_owned();
        let (mut author, comments) = try_join(
            self.batch_get(&self.tables.users, "UserId", vec![author_id]),
            self.query(
                &self.tables.comments,
                "post_comments_index",
                ("PostId", id),
                21,
                false,
            ),
        )
        .await?;
        let author = author.pop().context("no such author")?;
        let (comments, more) = page(comments, 20);
        let ids = comments
            .iter()
            .map(|c| text(c, "UserId").map(str::to_owned))
            .collect::<anyhow::Result<_>>()?;
        let users = self.users(ids, &[&author]).await?;
        Ok(PostDetails {
            post,
            author,
            comments,
            more,
            users,
        })
    }

    /// `UserFeed`: the user; their 10 newest posts; the first 5 comments of each, at
    /// once; the comments' authors. 13 requests for a user with 10 posts.
    pub(crate) async fn user_feed(&self, id: &str) -> anyhow::Result<UserFeed> {
        let user = self
            .batch_get(&self.tables.users, "UserId", vec![id.to_owned()])
            .await?
            .pop()
            .context("no such user")?;
        let posts = self
            .query(
                &self.tables.posts,
                "user_posts_index",
                ("UserId", id),
                11,
                true,
            )
            .await?;
        let (posts, more) = page(posts, 10);
        let comments = try_join_all(posts.iter().map(|post| async {
            let id = text(post, "PostId")?;
            let comments = self
                .query(
                    &self.tables.comments,
                    "post_comments_index",
                    ("PostId", id),
                    6,
                    false,
                )
                .await?;
            anyhow::Ok(page(comments, 5).0)
        }))
        .await?;
        let ids = comments
            .iter()
            .flatten()
            .map(|c| text(c, "UserId").map(str::to_owned))
            .collect::<anyhow::Result<_>>()?;
        let users = self.users(ids, &[&user]).await?;
        Ok(UserFeed {
            user,
            posts,
            more,
            comments,
            users,
        })
    }

    /// `UsersPage`: one `Scan` of 50 users; then each one's 3 newest posts, at once.
    pub(crate) async fn users_page(&self) -> anyhow::Result<UsersPage> {
        self.sent();
        let output = self
            .client
            .scan()
            .table_name(&self.tables.users)
            .consistent_read(true)
            .limit(51)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .context("Scan failed")?;
        let (users, more) = page(output.items.unwrap_or_default(), 50);
        let posts = try_join_all(users.iter().map(|user| async {
            let id = text(user, "UserId")?;
            let posts = self
                .query(
                    &self.tables.posts,
                    "user_posts_index",
                    ("UserId", id),
                    4,
                    true,
                )
                .await?;
            anyhow::Ok(page(posts, 3).0)
        }))
        .await?;
        Ok(UsersPage { users, more, posts })
    }

    /// `AddComment`: the transaction (the comment, its post's counter, a check that the
    /// author exists, the comment's counted guard); then the author and the post at once.
    /// Three requests.
    pub(crate) async fn add_comment(
        &self,
        post: &str,
        author: &str,
        content: &str,
    ) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        let created = format!("{}.{:06}", now.timestamp(), now.timestamp_subsec_micros());
        let id = uuid::Uuid::new_v4().to_string();
        let comment = Put::builder()
            .table_name(&self.tables.comments)
            .item("CommentId", s(&id))
            .item("PostId", s(post))
            .item("UserId", s(author))
            .item("Content", s(content))
            .item("CreatedAt", AttributeValue::N(created.clone()))
            .item("UpdatedAt", AttributeValue::N(created))
            .item("Version", AttributeValue::N("1".to_owned()))
            .condition_expression("attribute_not_exists(CommentId)")
            .build()?;
        let count = Update::builder()
            .table_name(&self.tables.posts)
            .key("PostId", s(post))
            .update_expression("ADD CommentCount :one")
            .condition_expression("attribute_exists(CommentCount)")
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .build()?;
        let check = ConditionCheck::builder()
            .table_name(&self.tables.users)
            .key("UserId", s(author))
            .condition_expression("attribute_exists(UserId)")
            .build()?;
        // The guard that says the comment is counted, so stream readers leave it alone.
        let expires = (now + chrono::Duration::days(3)).timestamp().to_string();
        let micros = now.timestamp_micros();
        let guard = Put::builder()
            .table_name(&self.tables.idempotency)
            .item("ClaimKey", s(&format!("counted:added:{micros}:{id}")))
            .item("PostId", s(post))
            .item("ExpiresAt", AttributeValue::N(expires))
            .condition_expression("attribute_not_exists(ClaimKey)")
            .build()?;
        self.sent();
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(comment).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(guard).build())
            .client_request_token(uuid::Uuid::new_v4().simple().to_string())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .context("TransactWriteItems failed")?;
        try_join(
            self.batch_get(&self.tables.users, "UserId", vec![author.to_owned()]),
            self.batch_get(&self.tables.posts, "PostId", vec![post.to_owned()]),
        )
        .await?;
        Ok(())
    }
}

/// A time as the server writes it: RFC 3339, UTC, microseconds.
fn time(item: &Item, name: &str) -> anyhow::Result<Value> {
    let micros = (number(item, name)? * 1e6).round() as i64;
    let at = chrono::DateTime::from_timestamp_micros(micros).context("time out of range")?;
    Ok(json!(
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    ))
}

/// `pageInfo`, with the (opaque) cursor as `CURSOR` when there is one.
fn page_info(more: bool, empty: bool) -> Value {
    json!({ "hasNextPage": more, "endCursor": if empty { Value::Null } else { json!(CURSOR) } })
}

/// What every `endCursor` is compared as: cursors are opaque.
pub(crate) const CURSOR: &str = "<cursor>";

fn user<'a>(users: &'a HashMap<String, Item>, item: &Item) -> anyhow::Result<&'a Item> {
    users
        .get(text(item, "UserId")?)
        .context("an author is missing")
}

impl PostDetails {
    /// The `data` the server must answer.
    pub(crate) fn answer(&self) -> anyhow::Result<Value> {
        let p = &self.post;
        let nodes = self
            .comments
            .iter()
            .map(|c| {
                let a = user(&self.users, c)?;
                Ok(json!({
                    "id": text(c, "CommentId")?, "content": text(c, "Content")?,
                    "createdAt": time(c, "CreatedAt")?,
                    "author": { "id": text(a, "UserId")?, "username": text(a, "Username")? },
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(json!({ "post": {
            "id": text(p, "PostId")?, "title": text(p, "Title")?, "content": text(p, "Content")?,
            "createdAt": time(p, "CreatedAt")?, "commentCount": number(p, "CommentCount")? as i64,
            "author": { "id": text(&self.author, "UserId")?, "username": text(&self.author, "Username")? },
            "comments": { "nodes": nodes, "pageInfo": page_info(self.more, self.comments.is_empty()) },
        }}))
    }
}

impl UserFeed {
    /// The `data` the server must answer.
    pub(crate) fn answer(&self) -> anyhow::Result<Value> {
        let username = text(&self.user, "Username")?;
        let nodes = self
            .posts
            .iter()
            .zip(&self.comments)
            .map(|(p, comments)| {
                let comments = comments
                    .iter()
                    .map(|c| {
                        let a = user(&self.users, c)?;
                        Ok(json!({ "content": text(c, "Content")?, "author": { "username": text(a, "Username")? } }))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Ok(json!({
                    "id": text(p, "PostId")?, "title": text(p, "Title")?,
                    "createdAt": time(p, "CreatedAt")?, "author": { "username": username },
                    "comments": { "nodes": comments },
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(json!({ "user": {
            "id": text(&self.user, "UserId")?, "username": username,
            "posts": { "nodes": nodes, "pageInfo": page_info(self.more, self.posts.is_empty()) },
        }}))
    }
}

impl UsersPage {
    /// The `data` the server must answer.
    pub(crate) fn answer(&self) -> anyhow::Result<Value> {
        let nodes = self
            .users
            .iter()
            .zip(&self.posts)
            .map(|(u, posts)| {
                let posts = posts
                    .iter()
                    .map(|p| Ok(json!({ "title": text(p, "Title")?, "commentCount": number(p, "CommentCount")? as i64 })))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Ok(json!({ "id": text(u, "UserId")?, "username": text(u, "Username")?, "posts": { "nodes": posts } }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(
            json!({ "users": { "nodes": nodes, "pageInfo": page_info(self.more, self.users.is_empty()) } }),
        )
    }
}
