//! Update and delete events (`commentUpdated`, `commentDeleted`, `postUpdated`,
//! `postDeleted`), read from the tables' streams: each write fires its event exactly once,
//! in order, whoever wrote it.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, StreamSpecification, StreamViewType, TableStatus};
use serde_json::{Value, json};

use crate::{
    helpers::{code, fresh_tables, raw_client, spawn_app_until},
    subscriptions::{SUBSCRIBED, live, live_servers},
    writes::{DELETE_COMMENT, UPDATE_POST},
    ws_client::Client,
};

/// How long an expected event may take.
const WAIT: Duration = Duration::from_secs(5);
/// How long nothing must arrive for "no event".
const QUIET: Duration = Duration::from_millis(1500);

const COMMENT_UPDATED: &str = "subscription($p: ID!) { commentUpdated(postId: $p) { \
    id content version author { username } } }";
const COMMENT_ADDED: &str = "subscription($p: ID!) { commentAdded(postId: $p) { id } }";
const COMMENT_DELETED: &str = "subscription($p: ID!) { commentDeleted(postId: $p) { \
    id content version author { username } } }";
const POST_UPDATED: &str = "subscription($id: ID!) { postUpdated(id: $id) { \
    id title content version commentCount } }";
const POST_DELETED: &str = "subscription($a: ID) { postDeleted(authorId: $a) { \
    id title author { username } } }";

const UPDATE_COMMENT: &str = "mutation($id: ID!, $content: String!) { updateComment(id: $id, content: $content) { id version } }";
const DELETE_POST: &str = "mutation($id: ID!) { deletePost(id: $id) }";

/// The payload of the next message, which must be an event of subscription `id`.
async fn next(client: &mut Client, id: &str, what: &str) -> Value {
    client
        .event(id, WAIT)
        .await
        .unwrap_or_else(|| panic!("no event within {WAIT:?} for {what}"))
}

fn as_event(message: Value) -> (String, Value) {
    assert_eq!(message["type"], json!("next"), "{message}");
    (
        message["id"].as_str().unwrap_or_default().to_owned(),
        message["payload"].clone(),
    )
}

/// `expected` events (each within [`WAIT`]), then whatever else comes until [`QUIET`]
/// passes with nothing: as (subscription id, payload).
async fn collect(client: &mut Client, expected: usize) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    while seen.len() < expected {
        let Some(message) = client.receive(WAIT).await else {
            break;
        };
        seen.push(as_event(message));
    }
    while let Some(message) = client.receive(QUIET).await {
        seen.push(as_event(message));
        assert!(seen.len() <= expected + 20, "a flood of events: {seen:?}");
    }
    seen
}

/// The payloads of subscription `id`, in arrival order.
fn of<'a>(seen: &'a [(String, Value)], id: &str) -> Vec<&'a Value> {
    seen.iter()
        .filter(|(subscription, _)| subscription == id)
        .map(|(_, payload)| payload)
        .collect()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

async fn put(table: &str, item: Vec<(&str, AttributeValue)>) {
    raw_client()
        .put_item()
        .table_name(table)
        .set_item(Some(
            item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
        .send()
        .await
        .expect("put");
}

#[tokio::test]
async fn five_edits_of_a_comment_arrive_once_each_in_order_on_another_instance() {
    let apps = live_servers(2, live()).await;
    let (subscribed, writer) = (&apps[0], &apps[1]);
    writer.alice_and_her_post().await;
    writer.add_post("p2", "u1", 1).await;
    writer.add_comment("c1", "p1", "u1", 2).await;
    writer.add_comment("c9", "p2", "u1", 3).await;

    let mut client = Client::connect(subscribed, None).await;
    client
        .subscribe("p1", COMMENT_UPDATED, json!({ "p": "p1" }))
        .await;
    client
        .subscribe("p2", COMMENT_UPDATED, json!({ "p": "p2" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    // A new comment is no update.
    writer.add_comment("c2", "p1", "u1", 4).await;
    for i in 1..=5 {
        let body = writer
            .query_as(
                "u1",
                UPDATE_COMMENT,
                json!({ "id": "c1", "content": format!("edit {i}") }),
            )
            .await;
        assert_eq!(
            body["data"]["updateComment"]["version"],
            json!(i + 1),
            "{body}"
        );
    }
    for i in 1..=5 {
        let event = next(&mut client, "p1", &format!("edit {i}")).await;
        assert_eq!(
            event,
            json!({ "data": { "commentUpdated": {
                "id": "c1", "content": format!("edit {i}"), "version": i + 1,
                "author": { "username": "alice" }
            } } }),
            "edit {i}, in write order"
        );
    }
    assert_eq!(
        client.receive(QUIET).await,
        None,
        "each edit once; nothing for the new comment, nothing for p2"
    );

    // An edit on the other post reaches its own subscription only.
    writer
        .query_as(
            "u1",
            UPDATE_COMMENT,
            json!({ "id": "c9", "content": "elsewhere" }),
        )
        .await;
    let event = next(&mut client, "p2", "the edit of c9").await;
    assert_eq!(event["data"]["commentUpdated"]["id"], json!("c9"));
    assert_eq!(
        event["data"]["commentUpdated"]["content"],
        json!("elsewhere")
    );
}

#[tokio::test]
async fn a_deleted_comment_is_sent_once_as_it_was() {
    let apps = live_servers(2, live()).await;
    let (subscribed, writer) = (&apps[0], &apps[1]);
    writer.alice_and_her_post().await;
    writer.add_user("u2", "bob").await;
    writer.add_user("u3", "carol").await;
    writer.add_comment("c1", "p1", "u2", 1).await;
    writer.add_comment("c2", "p1", "u3", 2).await;
    let body = writer
        .query_as(
            "u2",
            UPDATE_COMMENT,
            json!({ "id": "c1", "content": "Edited" }),
        )
        .await;
    assert_eq!(body["data"]["updateComment"]["version"], json!(2), "{body}");

    let mut client = Client::connect(subscribed, None).await;
    client
        .subscribe("d", COMMENT_DELETED, json!({ "p": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    let refused = writer
        .query_as("u3", DELETE_COMMENT, json!({ "id": "c1" }))
        .await;
    assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");
    let body = writer
        .query_as("u2", DELETE_COMMENT, json!({ "id": "c1" }))
        .await;
    assert_eq!(body, json!({ "data": { "deleteComment": "c1" } }));
    let event = next(&mut client, "d", "the comment's author deleting it").await;
    assert_eq!(
        event,
        json!({ "data": { "commentDeleted": {
            "id": "c1", "content": "Edited", "version": 2, "author": { "username": "bob" }
        } } }),
        "the comment as it was, its edit included"
    );

    let body = writer
        .query_as("u1", DELETE_COMMENT, json!({ "id": "c2" }))
        .await;
    assert_eq!(body, json!({ "data": { "deleteComment": "c2" } }));
    let event = next(&mut client, "d", "the post's author deleting a comment").await;
    assert_eq!(
        event,
        json!({ "data": { "commentDeleted": {
            "id": "c2", "content": "Comment c2", "version": 1, "author": { "username": "carol" }
        } } })
    );
    assert_eq!(
        client.receive(QUIET).await,
        None,
        "each delete once, the refused one none"
    );
}

#[tokio::test]
async fn post_edits_are_events_and_new_or_deleted_comments_are_not() {
    let apps = live_servers(2, live()).await;
    let (subscribed, writer) = (&apps[0], &apps[1]);
    writer.alice_and_her_post().await;
    writer.add_user("u2", "bob").await;
    writer.add_post("p2", "u1", 1).await;

    let mut client = Client::connect(subscribed, None).await;
    client
        .subscribe("p1", POST_UPDATED, json!({ "id": "p1" }))
        .await;
    client
        .subscribe("p2", POST_UPDATED, json!({ "id": "p2" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    // Comments change only the post's counter.
    let (body, _) = writer
        .operation(
            "AddComment",
            json!({ "postId": "p1", "content": "First!" }),
            Some("u2"),
        )
        .await;
    assert_eq!(
        body["data"]["addComment"]["post"]["commentCount"],
        json!(1),
        "{body}"
    );
    let first = body["data"]["addComment"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (body, _) = writer
        .operation(
            "AddComment",
            json!({ "postId": "p1", "content": "Second" }),
            Some("u2"),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let body = writer
        .query_as("u2", DELETE_COMMENT, json!({ "id": first }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        client.receive(QUIET).await,
        None,
        "a new or deleted comment changes only the counter: no postUpdated"
    );

    // An edit right after arrives, and is the first thing that does.
    let body = writer
        .query_as(
            "u1",
            UPDATE_POST,
            json!({ "id": "p1", "input": { "title": "New title" } }),
        )
        .await;
    assert_eq!(body["data"]["updatePost"]["version"], json!(2), "{body}");
    let event = next(&mut client, "p1", "the title's edit").await;
    assert_eq!(
        event,
        json!({ "data": { "postUpdated": {
            "id": "p1", "title": "New title", "content": "Content of p1", "version": 2, "commentCount": 1
        } } })
    );
    let body = writer
        .query_as(
            "u1",
            UPDATE_POST,
            json!({ "id": "p1", "input": { "content": "New content" } }),
        )
        .await;
    assert_eq!(body["data"]["updatePost"]["version"], json!(3), "{body}");
    let event = next(&mut client, "p1", "the content's edit").await;
    assert_eq!(
        event,
        json!({ "data": { "postUpdated": {
            "id": "p1", "title": "New title", "content": "New content", "version": 3, "commentCount": 1
        } } })
    );
    assert_eq!(
        client.receive(QUIET).await,
        None,
        "one event per edit; p2 heard nothing"
    );
}

#[tokio::test]
async fn deleting_a_post_with_three_comments_sends_one_post_deleted_and_three_comment_deleted() {
    let apps = live_servers(2, live()).await;
    let (subscribed, writer) = (&apps[0], &apps[1]);
    writer.add_user("u1", "alice").await;
    writer.add_user("u2", "bob").await;
    writer.add_post("p1", "u1", 0).await;
    writer.add_post("p2", "u2", 1).await;
    for i in 1..=3 {
        writer
            .add_comment(&format!("c{i}"), "p1", "u2", 1 + i)
            .await;
    }
    writer.add_comment("c9", "p2", "u1", 9).await;

    let mut client = Client::connect(subscribed, None).await;
    client
        .subscribe("comments", COMMENT_DELETED, json!({ "p": "p1" }))
        .await;
    client
        .subscribe("other-comments", COMMENT_DELETED, json!({ "p": "p2" }))
        .await;
    client.subscribe("all", POST_DELETED, json!({})).await;
    client
        .subscribe("alice", POST_DELETED, json!({ "a": "u1" }))
        .await;
    client
        .subscribe("bob", POST_DELETED, json!({ "a": "u2" }))
        .await;
    client
        .subscribe("edits", POST_UPDATED, json!({ "id": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    let body = writer
        .query_as("u1", DELETE_POST, json!({ "id": "p1" }))
        .await;
    assert_eq!(body, json!({ "data": { "deletePost": "p1" } }));
    let seen = collect(&mut client, 5).await;

    let comments = of(&seen, "comments");
    let mut deleted: Vec<&str> = comments
        .iter()
        .map(|p| {
            p["data"]["commentDeleted"]["id"]
                .as_str()
                .unwrap_or("<none>")
        })
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["c1", "c2", "c3"], "each comment once: {seen:?}");
    for payload in &comments {
        let comment = &payload["data"]["commentDeleted"];
        let id = comment["id"].as_str().unwrap_or_default();
        assert_eq!(
            comment,
            &json!({ "id": id, "content": format!("Comment {id}"), "version": 1,
                     "author": { "username": "bob" } }),
            "as it was"
        );
    }
    let post = json!({ "data": { "postDeleted": {
        "id": "p1", "title": "Title of p1", "author": { "username": "alice" }
    } } });
    assert_eq!(of(&seen, "all"), [&post], "one postDeleted: {seen:?}");
    assert_eq!(
        of(&seen, "alice"),
        [&post],
        "one postDeleted for its author: {seen:?}"
    );
    assert!(
        of(&seen, "bob").is_empty(),
        "another author's subscription: {seen:?}"
    );
    assert!(
        of(&seen, "other-comments").is_empty(),
        "another post's comments: {seen:?}"
    );
    assert!(
        of(&seen, "edits").is_empty(),
        "lowering the counter on the way is no edit: {seen:?}"
    );
    assert_eq!(seen.len(), 5, "nothing else: {seen:?}");
}

#[tokio::test]
async fn raw_updates_and_deletes_of_da_vinci_items_are_events_too() {
    let apps = live_servers(1, live()).await;
    let app = &apps[0];
    let tables = app.storage.tables().clone();
    put(
        &tables.users,
        vec![
            ("UserId", s("user-1")),
            ("Username", s("alice")),
            ("Email", s("alice@example.com")),
        ],
    )
    .await;
    put(
        &tables.posts,
        vec![
            ("PostId", s("post-0001")),
            ("UserId", s("user-1")),
            ("Title", s("My First Post")),
            ("Content", s("Hello, world!")),
            ("CreatedAt", n("1735732800")),
        ],
    )
    .await;
    put(
        &tables.comments,
        vec![
            ("CommentId", s("comment-0001")),
            ("PostId", s("post-0001")),
            ("UserId", s("user-1")),
            ("Content", s("Great post!")),
            ("CreatedAt", n("1735732802.5")),
        ],
    )
    .await;

    let mut client = Client::connect(app, None).await;
    client
        .subscribe("cu", COMMENT_UPDATED, json!({ "p": "post-0001" }))
        .await;
    client
        .subscribe("cd", COMMENT_DELETED, json!({ "p": "post-0001" }))
        .await;
    client
        .subscribe("pu", POST_UPDATED, json!({ "id": "post-0001" }))
        .await;
    client.subscribe("pd", POST_DELETED, json!({})).await;
    client
        .subscribe("pd-other", POST_DELETED, json!({ "a": "user-2" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;

    let raw = raw_client();
    raw.update_item()
        .table_name(&tables.comments)
        .key("CommentId", s("comment-0001"))
        .update_expression("SET Content = :c")
        .expression_attribute_values(":c", s("Edited elsewhere"))
        .send()
        .await
        .expect("update");
    let event = next(&mut client, "cu", "a raw edit of a comment").await;
    assert_eq!(
        event,
        json!({ "data": { "commentUpdated": {
            "id": "comment-0001", "content": "Edited elsewhere", "version": 1,
            "author": { "username": "alice" }
        } } })
    );

    // The counter alone, then the title: only the title is an edit.
    raw.update_item()
        .table_name(&tables.posts)
        .key("PostId", s("post-0001"))
        .update_expression("ADD CommentCount :one")
        .expression_attribute_values(":one", n("1"))
        .send()
        .await
        .expect("update");
    raw.update_item()
        .table_name(&tables.posts)
        .key("PostId", s("post-0001"))
        .update_expression("SET Title = :t")
        .expression_attribute_values(":t", s("Retitled"))
        .send()
        .await
        .expect("update");
    let event = next(&mut client, "pu", "a raw edit of a post's title").await;
    assert_eq!(
        event,
        json!({ "data": { "postUpdated": {
            "id": "post-0001", "title": "Retitled", "content": "Hello, world!", "version": 1,
            // The stream reader counted the raw comment (its record came before its edit's
            // event), and the raw update added one.
            "commentCount": 2
        } } }),
        "the first postUpdated is the title's (the counter's change alone was none)"
    );

    raw.delete_item()
        .table_name(&tables.comments)
        .key("CommentId", s("comment-0001"))
        .send()
        .await
        .expect("delete");
    let event = next(&mut client, "cd", "a raw delete of a comment").await;
    assert_eq!(
        event,
        json!({ "data": { "commentDeleted": {
            "id": "comment-0001", "content": "Edited elsewhere", "version": 1,
            "author": { "username": "alice" }
        } } })
    );

    raw.delete_item()
        .table_name(&tables.posts)
        .key("PostId", s("post-0001"))
        .send()
        .await
        .expect("delete");
    let event = next(&mut client, "pd", "a raw delete of a post").await;
    assert_eq!(
        event,
        json!({ "data": { "postDeleted": {
            "id": "post-0001", "title": "Retitled", "author": { "username": "alice" }
        } } })
    );
    assert_eq!(
        client.receive(QUIET).await,
        None,
        "each raw write one event; user-2's postDeleted heard nothing"
    );
}

/// Waits until `table` is ACTIVE again after a change.
async fn wait_until_active(table: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = raw_client()
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("described")
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return;
        }
        assert!(Instant::now() < deadline, "{table} is still {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Turns `table`'s stream off, or on with `view`, and waits until the table is ACTIVE.
async fn set_stream(table: &str, view: Option<StreamViewType>) {
    let spec = match view {
        Some(view) => StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(view),
        None => StreamSpecification::builder().stream_enabled(false),
    };
    raw_client()
        .update_table()
        .table_name(table)
        .stream_specification(spec.build().expect("spec"))
        .send()
        .await
        .expect("stream changed");
    wait_until_active(table).await;
}

/// `table`'s stream: whether it is on, and what its records carry.
async fn stream_of(table: &str) -> (bool, Option<StreamViewType>) {
    let stream = raw_client()
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("described")
        .table
        .and_then(|t| t.stream_specification)
        .unwrap_or_else(|| panic!("{table} has a stream"));
    (stream.stream_enabled(), stream.stream_view_type().cloned())
}

#[tokio::test]
async fn create_tables_switches_a_stream_of_new_images_to_new_and_old_images() {
    let (mut config, storage) = fresh_tables().await;
    let tables = storage.tables().clone();
    // Streams as an older version made them: new images only, where a deletion has none.
    for table in [&tables.posts, &tables.comments] {
        set_stream(table, None).await;
        set_stream(table, Some(StreamViewType::NewImage)).await;
        assert_eq!(
            stream_of(table).await,
            (true, Some(StreamViewType::NewImage)),
            "{table}"
        );
    }
    // A server already following those streams, as a running fleet would be.
    config.live = live();
    let app = spawn_app_until(config, storage.clone(), std::future::pending()).await;
    app.alice_and_her_post().await;
    app.add_user("u2", "bob").await;
    let mut client = Client::connect(&app, None).await;
    client
        .subscribe("a", COMMENT_ADDED, json!({ "p": "p1" }))
        .await;
    client
        .subscribe("d", COMMENT_DELETED, json!({ "p": "p1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;
    app.add_comment("c1", "p1", "u2", 1).await;
    let added = next(&mut client, "a", "a comment added before the switch").await;
    assert_eq!(added["data"]["commentAdded"]["id"], json!("c1"));

    storage.create_tables().await.expect("switches the streams");
    for table in [&tables.posts, &tables.comments] {
        assert_eq!(
            stream_of(table).await,
            (true, Some(StreamViewType::NewAndOldImages)),
            "{table}"
        );
    }

    // The running server follows the new streams by itself.
    let body = app
        .query_as("u2", DELETE_COMMENT, json!({ "id": "c1" }))
        .await;
    assert_eq!(body, json!({ "data": { "deleteComment": "c1" } }));
    let event = client
        .event("d", Duration::from_secs(30))
        .await
        .expect("a comment's deletion, read from the new stream");
    assert_eq!(
        event,
        json!({ "data": { "commentDeleted": {
            "id": "c1", "content": "Comment c1", "version": 1, "author": { "username": "bob" }
        } } }),
        "the comment as it was, from the stream's old image"
    );
}
