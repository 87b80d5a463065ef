//! `blog-graphql recount`: the counters behind `commentCount` and `totalCount` checked
//! against what they count, and repaired where they drifted, run as an operator runs it
//! on a test's own tables.

use aws_sdk_dynamodb::types::AttributeValue;
use blog_graphql::config::StorageSettings;
use serde_json::{Value, json};

use super::{CREATE_POST, DELETE_COMMENT, DELETE_POST, put, s};
use crate::helpers::{TestApp, fresh_tables, raw_client, spawn_app_on};

/// A server on new tables of its own, and the settings that find those tables.
async fn spawn_app_and_settings() -> (TestApp, StorageSettings) {
    let (config, storage) = fresh_tables().await;
    let settings = config.storage.clone();
    (spawn_app_on(config, storage).await, settings)
}

/// Runs `blog-graphql recount` with `scope` (nothing, `--post ID` or `--user ID`) on the
/// tables of `settings`, which must exit with status 0: what it printed, line by line.
async fn recount(settings: &StorageSettings, scope: &[&str]) -> Vec<String> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_blog-graphql"))
        .arg("recount")
        .args(scope)
        .arg("--app-name")
        .arg(&settings.app_name)
        .arg("--deployment-id")
        .arg(&settings.deployment_id)
        .arg("--endpoint-url")
        .arg(settings.endpoint_url.as_deref().expect("a local endpoint"))
        .arg("--region")
        .arg(settings.region.as_deref().expect("a region"))
        // The made-up credentials the tests' own clients sign with.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("blog-graphql runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "recount {scope:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// Sets a counter of one item to `value`, or removes it (`None`), behind the server's back.
async fn damage(table: &str, key: (&str, &str), counter: &str, value: Option<i64>) {
    let update = raw_client()
        .update_item()
        .table_name(table)
        .key(key.0, s(key.1))
        .condition_expression("attribute_exists(#k)")
        .expression_attribute_names("#k", key.0)
        .expression_attribute_names("#c", counter);
    let update = match value {
        Some(value) => update
            .update_expression("SET #c = :v")
            .expression_attribute_values(":v", AttributeValue::N(value.to_string())),
        None => update.update_expression("REMOVE #c"),
    };
    update.send().await.expect("counter damaged");
}

/// Where a line of repair comes in `recount`'s output: posts, users, the number of users.
fn kind(line: &str) -> u8 {
    if line.starts_with("repaired post ") {
        0
    } else if line.starts_with("repaired user ") {
        1
    } else if line.starts_with("repaired users: ") {
        2
    } else {
        panic!("not a repair: {line}")
    }
}

#[tokio::test]
async fn recount_finds_nothing_to_repair_after_api_writes() {
    let (app, settings) = spawn_app_and_settings().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    let (body, _) = app
        .operation(
            "CreateUser",
            json!({ "username": "carol", "email": "carol@example.com" }),
            Some("u3"),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    app.add_post("p1", "u1", 0).await;
    app.add_post("p2", "u2", 1).await;
    let body = app
        .query_as("u3", CREATE_POST, json!({ "t": "Carol's" }))
        .await;
    let carols = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a new post: {body}"))
        .to_owned();
    app.add_comment("c1", "p1", "u2", 2).await;
    app.add_comment("c2", "p1", "u3", 3).await;
    app.add_comment("c3", "p2", "u1", 4).await;
    for (post, author) in [("p1", "u3"), (carols.as_str(), "u1")] {
        let (body, _) = app
            .operation(
                "AddComment",
                json!({ "postId": post, "content": "Through the API" }),
                Some(author),
            )
            .await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    let body = app
        .query_as("u2", DELETE_COMMENT, json!({ "id": "c1" }))
        .await;
    assert_eq!(body, json!({ "data": { "deleteComment": "c1" } }));
    let body = app.query_as("u2", DELETE_POST, json!({ "id": "p2" })).await;
    assert_eq!(body, json!({ "data": { "deletePost": "p2" } }));

    assert_eq!(
        recount(&settings, &[]).await,
        ["checked 6 counters, repaired 0"],
        "2 posts (p1 and carol's), 3 users, and the number of users"
    );
    assert_eq!(
        recount(&settings, &["--post", "p1"]).await,
        ["checked 1 counters, repaired 0"]
    );
    assert_eq!(
        recount(&settings, &["--user", "u3"]).await,
        ["checked 1 counters, repaired 0"]
    );
}

/// The counts the API gives after a repair, all from counters.
const COUNTS: &str = "{ p1: post(id: \"p1\") { commentCount comments { totalCount } } \
    p3: post(id: \"p3\") { commentCount comments { totalCount } } \
    u1: user(id: \"u1\") { posts { totalCount } } \
    u2: user(id: \"u2\") { posts { totalCount } } \
    users { totalCount } }";

#[tokio::test]
async fn recount_repairs_counters_damaged_on_purpose_and_da_vinci_writes() {
    let (app, settings) = spawn_app_and_settings().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_user("u3", "carol").await;
    app.add_post("p1", "u1", 0).await;
    app.add_post("p2", "u1", 1).await;
    app.add_post("p3", "u2", 2).await;
    app.add_comment("c1", "p1", "u2", 3).await;
    app.add_comment("c2", "p1", "u3", 4).await;
    app.add_comment("c3", "p2", "u3", 5).await;

    let tables = app.storage.tables().clone();
    damage(&tables.posts, ("PostId", "p1"), "CommentCount", Some(42)).await;
    damage(&tables.users, ("UserId", "u1"), "PostCount", None).await;
    damage(&tables.users, ("UserId", "u2"), "PostCount", Some(9)).await;
    damage(
        &tables.usernames,
        ("UsernameKey", "#users"),
        "UserCount",
        Some(100),
    )
    .await;
    // A comment as Da Vinci writes it: p3's counter stays at 0.
    put(
        &tables.comments,
        vec![
            ("CommentId", s("comment-0001")),
            ("PostId", s("p3")),
            ("UserId", s("u3")),
            ("Content", s("Great post!")),
            ("CreatedAt", AttributeValue::N("1735732802.5".into())),
        ],
    )
    .await;

    let lines = recount(&settings, &[]).await;
    let (summary, repairs) = lines.split_last().expect("a summary line");
    assert_eq!(summary, "checked 7 counters, repaired 5", "{lines:?}");
    assert!(
        repairs.iter().map(String::as_str).map(kind).is_sorted(),
        "posts first, then users, then the number of users: {lines:?}"
    );
    // Posts and users each come in the order of a scan: compared sorted.
    let mut repairs = repairs.to_vec();
    repairs.sort();
    assert_eq!(
        repairs,
        [
            "repaired post p1: 42 -> 2",
            "repaired post p3: 0 -> 1",
            "repaired user u1: none -> 2",
            "repaired user u2: 9 -> 1",
            "repaired users: 100 -> 3",
        ],
        "{lines:?}"
    );

    assert_eq!(
        app.query(COUNTS, json!({})).await,
        json!({ "data": {
            "p1": { "commentCount": 2, "comments": { "totalCount": 2 } },
            "p3": { "commentCount": 1, "comments": { "totalCount": 1 } },
            "u1": { "posts": { "totalCount": 2 } },
            "u2": { "posts": { "totalCount": 1 } },
            "users": { "totalCount": 3 }
        } }),
        "the API counts right again"
    );
    assert_eq!(
        recount(&settings, &[]).await,
        ["checked 7 counters, repaired 0"],
        "a second recount finds nothing left to repair"
    );
}

/// p1's and p2's `commentCount`, and u1's and u2's `posts.totalCount`, as the API gives them.
async fn counts_of(app: &TestApp) -> [i64; 4] {
    let body = app
        .query(
            "{ p1: post(id: \"p1\") { commentCount } p2: post(id: \"p2\") { commentCount } \
               u1: user(id: \"u1\") { posts { totalCount } } \
               u2: user(id: \"u2\") { posts { totalCount } } }",
            json!({}),
        )
        .await;
    let count = |value: &Value| value.as_i64().unwrap_or_else(|| panic!("a count: {body}"));
    let data = &body["data"];
    [
        count(&data["p1"]["commentCount"]),
        count(&data["p2"]["commentCount"]),
        count(&data["u1"]["posts"]["totalCount"]),
        count(&data["u2"]["posts"]["totalCount"]),
    ]
}

#[tokio::test]
async fn recount_of_one_post_or_user_touches_only_it() {
    let (app, settings) = spawn_app_and_settings().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    app.add_post("p2", "u1", 1).await;
    app.add_post("p3", "u2", 2).await;
    app.add_comment("c1", "p1", "u2", 3).await;
    let tables = app.storage.tables().clone();
    damage(&tables.posts, ("PostId", "p1"), "CommentCount", Some(42)).await;
    damage(&tables.posts, ("PostId", "p2"), "CommentCount", Some(7)).await;
    damage(&tables.users, ("UserId", "u1"), "PostCount", Some(5)).await;
    damage(&tables.users, ("UserId", "u2"), "PostCount", Some(8)).await;
    assert_eq!(counts_of(&app).await, [42, 7, 5, 8], "all four wrong");

    assert_eq!(
        recount(&settings, &["--post", "p1"]).await,
        [
            "repaired post p1: 42 -> 1",
            "checked 1 counters, repaired 1"
        ]
    );
    assert_eq!(counts_of(&app).await, [1, 7, 5, 8], "p1's counter only");
    assert_eq!(
        recount(&settings, &["--user", "u2"]).await,
        ["repaired user u2: 8 -> 1", "checked 1 counters, repaired 1"]
    );
    assert_eq!(counts_of(&app).await, [1, 7, 5, 1], "then u2's only");

    assert_eq!(
        recount(&settings, &[]).await,
        [
            "repaired post p2: 7 -> 0",
            "repaired user u1: 5 -> 2",
            "checked 6 counters, repaired 2"
        ],
        "3 posts, 2 users and the number of users: the two still wrong repaired"
    );
    assert_eq!(counts_of(&app).await, [1, 0, 2, 1], "all right");
}
