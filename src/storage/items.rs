//! Items as they are stored (Da Vinci's attribute names and formats) and their
//! conversion to and from the domain types.

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Comment, CommentId, Event, Post, PostId, User, UserId};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Da Vinci's DATETIME: Unix epoch seconds as a Number, with a fraction. We write
/// microseconds; we read any number.
fn to_epoch(at: DateTime<Utc>) -> f64 {
    at.timestamp() as f64 + f64::from(at.timestamp_subsec_micros()) / 1e6
}

/// A time as the Number attribute we store.
pub(crate) fn epoch_value(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(to_epoch(at).to_string())
}

fn from_epoch(seconds: f64) -> anyhow::Result<DateTime<Utc>> {
    // Rounded to the microsecond, so a value we wrote reads back exactly.
    let micros = (seconds * 1e6).round();
    if !micros.is_finite() || micros.abs() > i64::MAX as f64 {
        return Err(anyhow!("timestamp {seconds} is out of range"));
    }
    DateTime::from_timestamp_micros(micros as i64)
        .ok_or_else(|| anyhow!("timestamp {seconds} is out of range"))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserRecord {
    user_id: String,
    username: String,
    email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<f64>,
    // Ours: users written by Da Vinci lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    post_count: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostRecord {
    post_id: String,
    user_id: String,
    title: String,
    content: String,
    created_at: f64,
    // The three below are ours: items written by Da Vinci lack them.
    #[serde(default)]
    updated_at: Option<f64>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment_count: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CommentRecord {
    comment_id: String,
    post_id: String,
    user_id: String,
    content: String,
    created_at: f64,
    #[serde(default)]
    updated_at: Option<f64>,
    #[serde(default)]
    version: Option<i64>,
}

/// Decodes a stored item, from a table or from a stream image (the two SDKs have their
/// own attribute types; serde_dynamo reads both).
fn decode<T: for<'de> Deserialize<'de>>(
    item: impl Into<serde_dynamo::Item>,
    what: &str,
) -> anyhow::Result<T> {
    serde_dynamo::from_item(item).with_context(|| format!("a stored {what} item is malformed"))
}

fn encode<T: Serialize>(record: &T) -> anyhow::Result<Item> {
    Ok(serde_dynamo::to_item(record)?)
}

pub(crate) fn user_from_item(item: Item) -> anyhow::Result<User> {
    let r: UserRecord = decode(item, "user")?;
    Ok(User {
        id: UserId::from_stored(r.user_id),
        username: r.username,
        email: r.email,
        created_at: r.created_at.map(from_epoch).transpose()?,
        post_count: r.post_count,
    })
}

pub(crate) fn user_to_item(user: &User) -> anyhow::Result<Item> {
    encode(&UserRecord {
        user_id: user.id.to_string(),
        username: user.username.clone(),
        email: user.email.clone(),
        created_at: user.created_at.map(to_epoch),
        post_count: user.post_count,
    })
}

pub(crate) fn post_from_item(item: impl Into<serde_dynamo::Item>) -> anyhow::Result<Post> {
    post_from_record(decode(item, "post")?)
}

pub(crate) fn post_to_item(post: &Post) -> anyhow::Result<Item> {
    encode(&post_record(post))
}

pub(crate) fn comment_from_item(item: impl Into<serde_dynamo::Item>) -> anyhow::Result<Comment> {
    comment_from_record(decode(item, "comment")?)
}

pub(crate) fn comment_to_item(comment: &Comment) -> anyhow::Result<Item> {
    encode(&comment_record(comment))
}

/// An event as the relay publishes it to the engine: what happened, and the item in
/// Da Vinci's attribute names (JSON rather than DynamoDB's typed attributes).
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", content = "item")]
enum EventRecord {
    CommentAdded(CommentRecord),
    CommentUpdated(CommentRecord),
    CommentDeleted(CommentRecord),
    PostAdded(PostRecord),
    PostUpdated(PostRecord),
    PostDeleted(PostRecord),
}

fn post_record(post: &Post) -> PostRecord {
    PostRecord {
        post_id: post.id.to_string(),
        user_id: post.author_id.to_string(),
        title: post.title.clone(),
        content: post.content.clone(),
        created_at: to_epoch(post.created_at),
        updated_at: Some(to_epoch(post.updated_at)),
        version: Some(post.version),
        comment_count: post.comment_count,
    }
}

fn comment_record(comment: &Comment) -> CommentRecord {
    CommentRecord {
        comment_id: comment.id.to_string(),
        post_id: comment.post_id.to_string(),
        user_id: comment.author_id.to_string(),
        content: comment.content.clone(),
        created_at: to_epoch(comment.created_at),
        updated_at: Some(to_epoch(comment.updated_at)),
        version: Some(comment.version),
    }
}

fn post_from_record(r: PostRecord) -> anyhow::Result<Post> {
    let created_at = from_epoch(r.created_at)?;
    Ok(Post {
        id: PostId::from_stored(r.post_id),
        author_id: UserId::from_stored(r.user_id),
        title: r.title,
        content: r.content,
        created_at,
        updated_at: r
            .updated_at
            .map(from_epoch)
            .transpose()?
            .unwrap_or(created_at),
        version: r.version.unwrap_or(1),
        comment_count: r.comment_count,
    })
}

fn comment_from_record(r: CommentRecord) -> anyhow::Result<Comment> {
    let created_at = from_epoch(r.created_at)?;
    Ok(Comment {
        id: CommentId::from_stored(r.comment_id),
        post_id: PostId::from_stored(r.post_id),
        author_id: UserId::from_stored(r.user_id),
        content: r.content,
        created_at,
        updated_at: r
            .updated_at
            .map(from_epoch)
            .transpose()?
            .unwrap_or(created_at),
        version: r.version.unwrap_or(1),
    })
}

/// An event as JSON, for the engine.
pub(crate) fn event_to_json(event: &Event) -> anyhow::Result<serde_json::Value> {
    let record = match event {
        Event::CommentAdded(c) => EventRecord::CommentAdded(comment_record(c)),
        Event::CommentUpdated(c) => EventRecord::CommentUpdated(comment_record(c)),
        Event::CommentDeleted(c) => EventRecord::CommentDeleted(comment_record(c)),
        Event::PostAdded(p) => EventRecord::PostAdded(post_record(p)),
        Event::PostUpdated(p) => EventRecord::PostUpdated(post_record(p)),
        Event::PostDeleted(p) => EventRecord::PostDeleted(post_record(p)),
    };
    serde_json::to_value(record).context("an event could not be written as JSON")
}

/// An event from the engine's JSON.
pub(crate) fn event_from_json(value: serde_json::Value) -> anyhow::Result<Event> {
    let record: EventRecord =
        serde_json::from_value(value).context("an event from the engine is malformed")?;
    Ok(match record {
        EventRecord::CommentAdded(c) => Event::CommentAdded(comment_from_record(c)?),
        EventRecord::CommentUpdated(c) => Event::CommentUpdated(comment_from_record(c)?),
        EventRecord::CommentDeleted(c) => Event::CommentDeleted(comment_from_record(c)?),
        EventRecord::PostAdded(p) => Event::PostAdded(post_from_record(p)?),
        EventRecord::PostUpdated(p) => Event::PostUpdated(post_from_record(p)?),
        EventRecord::PostDeleted(p) => Event::PostDeleted(post_from_record(p)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Item {
        let value: serde_json::Value = serde_json::from_str(json).expect("json");
        let map = value.as_object().expect("object");
        map.iter()
            .map(|(k, v)| {
                let av = if let Some(s) = v.get("S") {
                    AttributeValue::S(s.as_str().expect("s").to_owned())
                } else {
                    AttributeValue::N(v["N"].as_str().expect("n").to_owned())
                };
                (k.clone(), av)
            })
            .collect()
    }

    #[test]
    fn reads_da_vinci_items() {
        let user = user_from_item(item(
            r#"{"UserId":{"S":"user-1"},"Username":{"S":"alice"},"Email":{"S":"alice@example.com"}}"#,
        ))
        .expect("user");
        assert_eq!(user.created_at, None);
        let post = post_from_item(item(
            r#"{"PostId":{"S":"post-0001"},"UserId":{"S":"user-1"},"Title":{"S":"My First Post"},"Content":{"S":"Hello, world!"},"CreatedAt":{"N":"1735732800"}}"#,
        ))
        .expect("post");
        assert_eq!(post.created_at.to_rfc3339(), "2025-01-01T12:00:00+00:00");
        assert_eq!(
            (post.updated_at, post.version, post.comment_count),
            (post.created_at, 1, None)
        );
        let comment = comment_from_item(item(
            r#"{"CommentId":{"S":"comment-0001"},"PostId":{"S":"post-0001"},"UserId":{"S":"user-1"},"Content":{"S":"Great post!"},"CreatedAt":{"N":"1735732802.5"}}"#,
        ))
        .expect("comment");
        assert_eq!(comment.created_at.timestamp_subsec_micros(), 500_000);
    }

    #[test]
    fn a_missing_required_attribute_is_an_error() {
        let missing_title = item(
            r#"{"PostId":{"S":"p"},"UserId":{"S":"u"},"Content":{"S":"c"},"CreatedAt":{"N":"1"}}"#,
        );
        assert!(post_from_item(missing_title).is_err());
    }

    /// A post made and last changed at `at`.
    fn post_at(at: DateTime<chrono::Utc>) -> Post {
        Post {
            id: PostId::from_stored("p".into()),
            author_id: UserId::from_stored("u".into()),
            title: "t".into(),
            content: "c".into(),
            created_at: at,
            updated_at: at,
            version: 1,
            comment_count: Some(0),
        }
    }

    #[test]
    fn timestamps_round_trip_at_microseconds() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("valid");
        assert_eq!(from_epoch(to_epoch(at)).expect("in range"), at);
        let stored = post_to_item(&post_at(at)).expect("encodes");
        assert_eq!(
            stored["CreatedAt"],
            AttributeValue::N("1764000000.123456".into())
        );
    }

    #[test]
    fn records_spell_the_names_of_attributes_rs() {
        use std::collections::BTreeSet;

        use crate::storage::attributes::{
            COMMENT_COUNT, COMMENT_ID, CONTENT, CREATED_AT, EMAIL, POST_COUNT, POST_ID, TITLE,
            UPDATED_AT, USER_ID, USERNAME, VERSION,
        };

        let at = DateTime::from_timestamp_micros(1_764_000_000_000_000).expect("valid");
        let names = |item: Item| item.into_keys().collect::<BTreeSet<_>>();
        let set = |names: &[&str]| {
            names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>()
        };
        let user = crate::domain::User {
            id: UserId::from_stored("u".into()),
            username: "alice".into(),
            email: "a@example.com".into(),
            created_at: Some(at),
            post_count: Some(0),
        };
        assert_eq!(
            names(user_to_item(&user).expect("encodes")),
            set(&[USER_ID, USERNAME, EMAIL, CREATED_AT, POST_COUNT])
        );
        let post = post_at(at);
        assert_eq!(
            names(post_to_item(&post).expect("encodes")),
            set(&[
                POST_ID,
                USER_ID,
                TITLE,
                CONTENT,
                CREATED_AT,
                UPDATED_AT,
                VERSION,
                COMMENT_COUNT
            ])
        );
        let comment = crate::domain::Comment {
            id: crate::domain::CommentId::from_stored("c".into()),
            post_id: PostId::from_stored("p".into()),
            author_id: UserId::from_stored("u".into()),
            content: "c".into(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        assert_eq!(
            names(comment_to_item(&comment).expect("encodes")),
            set(&[
                COMMENT_ID, POST_ID, USER_ID, CONTENT, CREATED_AT, UPDATED_AT, VERSION
            ])
        );
    }
}
