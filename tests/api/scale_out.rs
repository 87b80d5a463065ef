//! Shared deployments: comment counters stay exact whoever writes, and the scale-out mode
//! (relays reading the streams under leases, publishing on a real Redis that serving
//! instances subscribe to) delivers every event once, through a relay's death and the
//! engine's restart.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::AttributeValue;
use blog_graphql::{
    config::{LiveSettings, StorageSettings},
    storage::{RecountScope, Storage},
};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{
    helpers::{
        TestApp, dynamodb_endpoint, free_port, raw_client, spawn_app_until, table_args,
        test_config, test_settings,
    },
    subscriptions::{COMMENTS, SUBSCRIBED, live, live_servers},
    ws_client::Client,
};

const COUNT: &str = "query($id: ID!) { post(id: $id) { commentCount } }";
const ADD: &str = "mutation($post: ID!, $content: String!) { addComment(input: { postId: $post, content: $content }) { id } }";
const DELETE: &str = "mutation($id: ID!) { deleteComment(id: $id) }";

/// A Redis of the test's own, from Debian's package (installed by `scripts/redis.sh`),
/// stopped when dropped.
struct Redis {
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let redis = Self { port: free_port() };
        redis.script("start");
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn script(&self, action: &str) {
        let status = std::process::Command::new("bash")
            .arg(root().join("scripts/redis.sh"))
            .args([action, &self.port.to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("scripts/redis.sh runs");
        assert!(status.success(), "scripts/redis.sh {action} failed");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.script("stop");
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A relay, as its own process (so that it can be killed), logging to
/// `target/relay-<id>.log`, with its `/ready` on `port`.
fn relay(settings: &StorageSettings, redis: &Redis, id: &str, port: u16) -> Child {
    let log = std::fs::File::create(root().join(format!("target/relay-{id}.log"))).expect("log");
    Command::new(env!("CARGO_BIN_EXE_blog-graphql"))
        .arg("relay")
        .args(table_args(settings))
        .args(["--relay-id", id])
        .env("REDIS_URL", redis.url())
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the relay starts")
}

/// Serving instances in the scale-out mode, subscribed to `redis`.
async fn serving(settings: &StorageSettings, redis: &Redis, count: usize) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..count {
        let mut config = test_config(settings.clone());
        config.live = LiveSettings {
            engine_url: Some(redis.url()),
            ..live()
        };
        let storage = Storage::connect(settings).await.expect("storage");
        apps.push(spawn_app_until(config, storage, std::future::pending()).await);
    }
    apps
}

/// Who holds each shard's lease: lease key → owner (absent: nobody).
async fn leases(storage: &Storage) -> HashMap<String, Option<String>> {
    let items = raw_client()
        .scan()
        .table_name(&storage.tables().idempotency)
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    items
        .into_iter()
        .filter_map(|item| {
            let key = item.get("ClaimKey")?.as_s().ok()?.clone();
            let position = item.get("Position").and_then(|p| p.as_s().ok());
            (key.starts_with("lease:") && position.is_none_or(|p| p != "finished")).then(|| {
                let owner = item.get("Owner").and_then(|o| o.as_s().ok()).cloned();
                (key, owner)
            })
        })
        .collect()
}

/// Waits until the open shards of the comments' stream are held, by one relay other
/// than `not`, and returns it; and until the posts' stream's are held too.
async fn comments_holder(storage: &Storage, not: Option<&str>, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    loop {
        let held = leases(storage).await;
        let holders = |table: &str| -> Vec<Option<String>> {
            held.iter()
                .filter(|(key, _)| key.contains(&format!("-{table}/stream/")))
                .map(|(_, owner)| owner.clone())
                .collect()
        };
        let comments = holders("comments");
        let posts = holders("posts");
        if let Some(Some(first)) = comments.first()
            && comments
                .iter()
                .all(|o| o.as_deref() == Some(first.as_str()))
            && Some(first.as_str()) != not
            && !posts.is_empty()
            && posts.iter().all(|o| o.is_some() && o.as_deref() != not)
        {
            return first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the shards are not all held: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An item put straight into `table`, as another program writes it.
async fn put_raw(table: &str, attributes: [(&str, AttributeValue); 5]) {
    let item: HashMap<String, AttributeValue> = attributes
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    raw_client()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put");
}

/// A post item as Da Vinci's `TableClient` puts it: no `CommentCount`.
async fn put_raw_post(storage: &Storage, id: &str, author: &str) {
    put_raw(
        &storage.tables().posts,
        [
            ("PostId", AttributeValue::S(id.into())),
            ("UserId", AttributeValue::S(author.into())),
            ("Title", AttributeValue::S("Da Vinci's".into())),
            ("Content", AttributeValue::S("Written elsewhere".into())),
            ("CreatedAt", AttributeValue::N("1735732800".into())),
        ],
    )
    .await;
}

/// A comment item as Da Vinci's `TableClient` puts it.
async fn put_raw_comment(storage: &Storage, id: &str, post: &str, author: &str) {
    let created = format!("{:.6}", chrono::Utc::now().timestamp_micros() as f64 / 1e6);
    put_raw(
        &storage.tables().comments,
        [
            ("CommentId", AttributeValue::S(id.into())),
            ("PostId", AttributeValue::S(post.into())),
            ("UserId", AttributeValue::S(author.into())),
            ("Content", AttributeValue::S(format!("Raw {id}"))),
            ("CreatedAt", AttributeValue::N(created)),
        ],
    )
    .await;
}

async fn delete_raw_comment(storage: &Storage, id: &str) {
    raw_client()
        .delete_item()
        .table_name(&storage.tables().comments)
        .key("CommentId", AttributeValue::S(id.into()))
        .send()
        .await
        .expect("delete");
}

async fn comment_count(app: &TestApp, post: &str) -> i64 {
    let body = app.query(COUNT, json!({ "id": post })).await;
    body["data"]["post"]["commentCount"]
        .as_i64()
        .expect("a count")
}

/// Waits until the post's `commentCount` is `expected` (the stream reader counts a
/// moment after the write), then checks it stays there.
async fn assert_count_settles(app: &TestApp, post: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while comment_count(app, post).await != expected {
        assert!(
            Instant::now() < deadline,
            "{post}: commentCount is {}, not {expected}",
            comment_count(app, post).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        comment_count(app, post).await,
        expected,
        "{post} moved again"
    );
}

async fn add_comment(app: &TestApp, user: &str, post: &str, content: &str) -> String {
    let body = app
        .query_as(user, ADD, json!({ "post": post, "content": content }))
        .await;
    body["data"]["addComment"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("addComment: {body}"))
        .to_owned()
}

#[tokio::test]
async fn comments_written_or_deleted_by_other_programs_move_the_counter_once() {
    // Two instances read the same streams: each change is counted once all the same.
    let apps = live_servers(2, live()).await;
    let app = &apps[0];
    app.add_user("user-1", "alice").await;
    app.add_post("post-1", "user-1", 0).await;
    for i in 0..5 {
        put_raw_comment(&app.storage, &format!("raw-{i}"), "post-1", "user-1").await;
    }
    let api = add_comment(&apps[1], "user-1", "post-1", "through the API").await;
    add_comment(&apps[0], "user-1", "post-1", "and another").await;
    delete_raw_comment(&app.storage, "raw-0").await;
    delete_raw_comment(&app.storage, "raw-1").await;
    let deleted = apps[1]
        .query_as("user-1", DELETE, json!({ "id": api }))
        .await;
    assert_eq!(deleted["data"]["deleteComment"], json!(api), "{deleted}");
    // 5 raw + 2 API − 2 raw − 1 API.
    assert_count_settles(app, "post-1", 4).await;

    // A post Da Vinci wrote, without a counter, gets one.
    put_raw_post(&app.storage, "post-2", "user-1").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let posts = app.scan("posts").await;
        let post = posts
            .iter()
            .find(|p| p["PostId"] == AttributeValue::S("post-2".into()))
            .expect("post-2");
        if post.get("CommentCount") == Some(&AttributeValue::N("0".into())) {
            break;
        }
        assert!(Instant::now() < deadline, "post-2 got no counter: {post:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    put_raw_comment(&app.storage, "raw-on-2", "post-2", "user-1").await;
    assert_count_settles(app, "post-2", 1).await;

    // No comment counter drifted (the user's post counter did: the stream reader keeps
    // comment counters, and post-2 was written without the API).
    let recounted = app
        .storage
        .recount(RecountScope::All)
        .await
        .expect("recount");
    let drifted: Vec<_> = recounted
        .repairs
        .iter()
        .filter(|r| r.counter.starts_with("post "))
        .collect();
    assert!(drifted.is_empty(), "{drifted:?}");
}

#[tokio::test]
async fn a_comment_deleted_from_a_post_without_a_counter_is_taken_off_once() {
    // A Da Vinci post and its comments, written while no reader ran: no counter, and no
    // record any reader will see.
    let settings = test_settings(dynamodb_endpoint());
    let storage = Storage::connect(&settings).await.expect("storage");
    storage.create_tables().await.expect("tables");
    put_raw_post(&storage, "post-1", "user-1").await;
    for i in 0..3 {
        put_raw_comment(&storage, &format!("raw-{i}"), "post-1", "user-1").await;
    }
    let mut config = test_config(settings.clone());
    config.live = live();
    let app = spawn_app_until(config, storage, std::future::pending()).await;
    app.add_user("user-1", "alice").await;

    // Deleted raw: the reader meets a post without a counter, makes it, and takes the
    // comment off once (whether or not the index still showed it). Watched in the table,
    // since a query of `commentCount` would make the counter itself.
    delete_raw_comment(&app.storage, "raw-0").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let posts = app.scan("posts").await;
        if posts[0].contains_key("CommentCount") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "post-1 got no counter: {posts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_count_settles(&app, "post-1", 2).await;
}

/// What one subscriber received: comment ids in order, and whether it ended in an error.
async fn collect(mut client: Client, expected: usize, wait: Duration) -> Vec<String> {
    let mut ids = Vec::new();
    let deadline = Instant::now() + wait;
    while ids.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(event) = client.event("1", left).await else {
            break;
        };
        let id = event["data"]["commentAdded"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{event}"));
        ids.push(id.to_owned());
    }
    // Anything more would be a duplicate.
    if let Some(extra) = client.event("1", Duration::from_secs(2)).await {
        ids.push(
            extra["data"]["commentAdded"]["id"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
        );
    }
    ids
}

#[tokio::test]
async fn four_instances_and_two_relays_deliver_every_event_once_through_a_relay_failover() {
    const POSTS: usize = 4;
    const PER_POST: usize = 50;
    let redis = Redis::start();
    let settings = test_settings(dynamodb_endpoint());
    let storage = Storage::connect(&settings).await.expect("storage");
    storage.create_tables().await.expect("tables");
    let ports = HashMap::from([("relay-a", free_port()), ("relay-b", free_port())]);
    let mut relays: HashMap<String, Child> = ports
        .iter()
        .map(|(id, port)| ((*id).to_owned(), relay(&settings, &redis, id, *port)))
        .collect();
    let apps = serving(&settings, &redis, 4).await;
    let holder = comments_holder(&storage, None, Duration::from_secs(30)).await;

    apps[0].add_user("user-1", "alice").await;
    let posts: Vec<String> = (0..POSTS).map(|p| format!("post-{p}")).collect();
    for (minute, post) in posts.iter().enumerate() {
        apps[0].add_post(post, "user-1", minute as i64).await;
    }
    // Every instance has a subscriber on every post.
    let mut subscribers = Vec::new();
    for (instance, app) in apps.iter().enumerate() {
        for post in &posts {
            let mut client = Client::connect(app, None).await;
            client
                .subscribe("1", COMMENTS, json!({ "post": post }))
                .await;
            subscribers.push((instance, post.clone(), client));
        }
    }
    // And one on a post of its own, to time one event from the write to every instance.
    apps[0].add_post("post-probe", "user-1", 9).await;
    let mut probes = Vec::new();
    for app in &apps {
        let mut client = Client::connect(app, None).await;
        client
            .subscribe("1", COMMENTS, json!({ "post": "post-probe" }))
            .await;
        probes.push(client);
    }
    tokio::time::sleep(SUBSCRIBED).await;
    let written = Instant::now();
    add_comment(&apps[1], "user-1", "post-probe", "probe").await;
    let latencies = futures::future::join_all(probes.iter_mut().map(|client| async move {
        client
            .event("1", Duration::from_secs(10))
            .await
            .expect("the probe's event");
        written.elapsed()
    }))
    .await;
    eprintln!("scale-out: one comment reached the 4 instances' subscribers in {latencies:?}");

    // Each post's comments are written in sequence (their expected order), alternately
    // through the four instances and raw in Da Vinci's format; the posts at once. The
    // lease holder is killed halfway through.
    let started = Instant::now();
    let writers = posts.iter().enumerate().map(|(p, post)| {
        let apps = &apps;
        let storage = &storage;
        async move {
            let mut written = Vec::new();
            for i in 0..PER_POST {
                let id = if i % 4 == 3 {
                    let id = format!("raw-{p}-{i}");
                    put_raw_comment(storage, &id, post, "user-1").await;
                    id
                } else {
                    add_comment(
                        &apps[(p + i) % apps.len()],
                        "user-1",
                        post,
                        &format!("#{i}"),
                    )
                    .await
                };
                written.push(id);
            }
            written
        }
    });
    let kill = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut child = relays.remove(&holder).expect("the holder");
        child.kill().await.expect("killed");
        let killed = Instant::now();
        let next = comments_holder(&storage, Some(&holder), Duration::from_secs(30)).await;
        (next, killed.elapsed())
    };
    let (written, (next, failover)) = tokio::join!(futures::future::join_all(writers), kill);
    let burst = started.elapsed();
    assert_ne!(next, holder);
    // The new holder says so on its /ready.
    let ready: Value = reqwest::get(format!("http://127.0.0.1:{}/ready", ports[next.as_str()]))
        .await
        .expect("the relay's /ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], json!("ready"), "{ready}");
    assert!(ready["leases"].as_u64() >= Some(1), "{ready}");
    let expected: HashMap<&String, &Vec<String>> = posts.iter().zip(&written).collect();

    let mut delivered = 0;
    let mut lost = 0;
    let mut doubled = 0;
    let received = futures::future::join_all(subscribers.into_iter().map(
        |(instance, post, client)| async move {
            (
                instance,
                post,
                collect(client, PER_POST, Duration::from_secs(30)).await,
            )
        },
    ))
    .await;
    for (instance, post, ids) in &received {
        let want = expected[post];
        delivered += ids.len();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        doubled += ids.len() - unique.len();
        lost += want.iter().filter(|id| !ids.contains(id)).count();
        assert_eq!(
            ids, want,
            "instance {instance}, {post}: not every event once, in order"
        );
    }
    eprintln!(
        "scale-out: {} subscribers, {} events delivered, {lost} lost, {doubled} doubled; \
         burst {burst:?}; lease failover {failover:?} ({holder} killed, {next} took over)",
        received.len(),
        delivered
    );

    // Counters are exact: 50 per post, raw puts included; then raw and API deletes.
    for post in &posts {
        assert_count_settles(&apps[1], post, PER_POST as i64).await;
    }
    for (p, post) in posts.iter().enumerate() {
        delete_raw_comment(&storage, &format!("raw-{p}-3")).await;
        let api = &expected[post][0];
        let body = apps[2]
            .query_as("user-1", DELETE, json!({ "id": api }))
            .await;
        assert_eq!(body["data"]["deleteComment"], json!(api), "{body}");
    }
    for post in &posts {
        assert_count_settles(&apps[3], post, PER_POST as i64 - 2).await;
    }
    let recounted = storage.recount(RecountScope::All).await.expect("recount");
    assert!(
        recounted.repairs.is_empty(),
        "drift: {:?}",
        recounted.repairs
    );

    // Damage on purpose: recount repairs it.
    for post in &posts {
        raw_client()
            .update_item()
            .table_name(&storage.tables().posts)
            .key("PostId", AttributeValue::S(post.clone()))
            .update_expression("SET CommentCount = :n")
            .expression_attribute_values(":n", AttributeValue::N("999".into()))
            .send()
            .await
            .expect("damaged");
    }
    let recounted = storage.recount(RecountScope::All).await.expect("recount");
    eprintln!(
        "scale-out: drift before recount {} posts at 999 (by {} each); recount repaired {}",
        posts.len(),
        999 - (PER_POST as i64 - 2),
        recounted.repairs.len()
    );
    assert_eq!(recounted.repairs.len(), POSTS, "{:?}", recounted.repairs);
    for post in &posts {
        assert_eq!(comment_count(&apps[0], post).await, PER_POST as i64 - 2);
    }
}

/// The code of the error a subscription got: the protocol's `error`, or a `next` whose
/// payload carries errors.
fn error_code(message: &Value) -> Option<&str> {
    match message["type"].as_str()? {
        "error" => message["payload"][0]["extensions"]["code"].as_str(),
        "next" => message["payload"]["errors"][0]["extensions"]["code"].as_str(),
        _ => None,
    }
}

async fn ready(app: &TestApp) -> Value {
    app.http
        .get(format!("{}/ready", app.url))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json")
}

/// Waits until `/ready` says `value` for `field` (`events`, `relays`).
async fn wait_for_ready(app: &TestApp, field: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = ready(app).await;
        if body[field] == json!(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/ready never said {field} {value}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serving_instances_reconnect_to_a_restarted_engine_and_tell_their_subscribers() {
    let redis = Redis::start();
    let settings = test_settings(dynamodb_endpoint());
    let storage = Storage::connect(&settings).await.expect("storage");
    storage.create_tables().await.expect("tables");
    let mut relay = relay(&settings, &redis, "relay-r", free_port());
    let apps = serving(&settings, &redis, 2).await;
    comments_holder(&storage, None, Duration::from_secs(30)).await;
    apps[0].add_user("user-1", "alice").await;
    apps[0].add_post("post-1", "user-1", 0).await;
    wait_for_ready(&apps[0], "relays", "active").await;
    assert_eq!(
        ready(&apps[0]).await,
        json!({ "status": "ready", "events": "connected", "relays": "active" })
    );

    let mut clients = Vec::new();
    for app in &apps {
        let mut client = Client::connect(app, None).await;
        client
            .subscribe("1", COMMENTS, json!({ "post": "post-1" }))
            .await;
        clients.push(client);
    }
    tokio::time::sleep(SUBSCRIBED).await;
    add_comment(&apps[0], "user-1", "post-1", "before").await;
    for client in &mut clients {
        let event = client
            .event("1", Duration::from_secs(10))
            .await
            .expect("an event");
        assert_eq!(event["data"]["commentAdded"]["content"], json!("before"));
    }

    redis.script("stop");
    // Subscribers are told, rather than left waiting for events that cannot come.
    for client in &mut clients {
        let message = client.receive(Duration::from_secs(10)).await.expect("told");
        assert_eq!(
            error_code(&message),
            Some("SERVICE_UNAVAILABLE"),
            "{message}"
        );
        let last = client
            .receive(Duration::from_secs(5))
            .await
            .expect("complete");
        assert_eq!(last["type"], json!("complete"), "{last}");
    }
    for app in &apps {
        wait_for_ready(app, "events", "reconnecting").await;
        assert_eq!(
            ready(app).await["status"],
            json!("ready"),
            "queries still work"
        );
    }
    // A new subscription is refused while the engine is away.
    let mut refused = Client::connect(&apps[1], None).await;
    refused
        .subscribe("1", COMMENTS, json!({ "post": "post-1" }))
        .await;
    let message = refused
        .receive(Duration::from_secs(10))
        .await
        .expect("refused");
    assert_eq!(
        error_code(&message),
        Some("SERVICE_UNAVAILABLE"),
        "{message}"
    );

    redis.script("start");
    for app in &apps {
        wait_for_ready(app, "events", "connected").await;
    }
    let mut again = Client::connect(&apps[1], None).await;
    again
        .subscribe("1", COMMENTS, json!({ "post": "post-1" }))
        .await;
    tokio::time::sleep(SUBSCRIBED).await;
    add_comment(&apps[0], "user-1", "post-1", "after").await;
    let event = again
        .event("1", Duration::from_secs(15))
        .await
        .expect("an event after the restart");
    assert_eq!(event["data"]["commentAdded"]["content"], json!("after"));

    // Without a relay no event comes: /ready says so, a few seconds after the last one
    // went quiet.
    relay.kill().await.expect("killed");
    for app in &apps {
        wait_for_ready(app, "relays", "silent").await;
        assert_eq!(ready(app).await["events"], json!("connected"));
    }
}
