//! `totalCount`: exact after concurrent writes, over Da Vinci's items without counters,
//! and never costing more requests.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use serde_json::{Value, json};

use super::{CREATE_POST, DELETE_COMMENT, DELETE_POST, put, requests, s};
use crate::helpers::{TestApp, at, code, spawn_app};

/// A user's `posts.totalCount`, and how many posts a page of 100 holds.
async fn post_total(app: &TestApp, user: &str) -> (i64, usize) {
    let body = app
        .query(
            "query($id: ID!) { user(id: $id) { posts(first: 100) { totalCount nodes { id } } } }",
            json!({ "id": user }),
        )
        .await;
    let posts = &body["data"]["user"]["posts"];
    (
        posts["totalCount"]
            .as_i64()
            .unwrap_or_else(|| panic!("totalCount of {user}'s posts: {body}")),
        posts["nodes"].as_array().map_or(0, Vec::len),
    )
}

/// `users.totalCount`, and how many users a page of 100 holds.
async fn user_total(app: &TestApp) -> (i64, usize) {
    let body = app
        .query(
            "{ users(first: 100) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    let users = &body["data"]["users"];
    (
        users["totalCount"]
            .as_i64()
            .unwrap_or_else(|| panic!("totalCount of users: {body}")),
        users["nodes"].as_array().map_or(0, Vec::len),
    )
}

#[tokio::test]
async fn user_posts_total_count_is_exact_after_concurrent_creates_and_deletes() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("b1", "u2", 0).await;
    assert_eq!(post_total(&app, "u1").await, (0, 0), "a user without posts");

    let created = join_all(
        (0..10).map(|i| app.query_as("u1", CREATE_POST, json!({ "t": format!("Post {i}") }))),
    )
    .await;
    let ids: Vec<String> = created
        .iter()
        .map(|body| {
            body["data"]["createPost"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("a new post: {body}"))
                .to_owned()
        })
        .collect();
    assert_eq!(
        post_total(&app, "u1").await,
        (10, 10),
        "10 concurrent creates"
    );

    let deleted = join_all(
        ids[..3]
            .iter()
            .map(|id| app.query_as("u1", DELETE_POST, json!({ "id": id }))),
    )
    .await;
    for (body, id) in deleted.iter().zip(&ids) {
        assert_eq!(body, &json!({ "data": { "deletePost": id } }));
    }
    assert_eq!(
        post_total(&app, "u1").await,
        (7, 7),
        "then 3 concurrent deletes"
    );

    // Creates and deletes at once, beside refused deletes that must change nothing.
    let creates = join_all(
        (0..4).map(|i| app.query_as("u1", CREATE_POST, json!({ "t": format!("More {i}") }))),
    );
    let deletes = join_all(
        ids[3..5]
            .iter()
            .map(|id| app.query_as("u1", DELETE_POST, json!({ "id": id }))),
    );
    let refused = join_all([
        app.query_as("u2", DELETE_POST, json!({ "id": ids[5] })),
        app.query_as("u1", DELETE_POST, json!({ "id": ids[0] })),
    ]);
    let (creates, deletes, refused) = tokio::join!(creates, deletes, refused);
    for body in creates.iter().chain(&deletes) {
        assert!(body.get("errors").is_none(), "{body}");
    }
    assert_eq!(
        code(&refused[0]),
        Some("FORBIDDEN"),
        "not bob's: {}",
        refused[0]
    );
    assert_eq!(
        code(&refused[1]),
        Some("NOT_FOUND"),
        "gone already: {}",
        refused[1]
    );
    assert_eq!(
        post_total(&app, "u1").await,
        (9, 9),
        "7 + 4 created - 2 deleted"
    );
    assert_eq!(
        post_total(&app, "u2").await,
        (1, 1),
        "bob's count is his own"
    );
}

#[tokio::test]
async fn users_total_count_is_exact_after_concurrent_sign_ups() {
    let app = spawn_app().await;
    assert_eq!(user_total(&app).await, (0, 0), "no users yet");
    let subjects: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let results = join_all(subjects.iter().enumerate().map(|(i, subject)| {
        app.operation(
            "CreateUser",
            json!({ "username": format!("user{i}"), "email": format!("user{i}@example.com") }),
            Some(subject.as_str()),
        )
    }))
    .await;
    for (body, _) in &results {
        assert!(body.get("errors").is_none(), "{body}");
    }
    assert_eq!(user_total(&app).await, (8, 8), "8 concurrent sign-ups");

    // Refused sign-ups count nothing.
    let (again, _) = app
        .operation(
            "CreateUser",
            json!({ "username": "other", "email": "o@example.com" }),
            Some("n0"),
        )
        .await;
    assert_eq!(code(&again), Some("CONFLICT"), "{again}");
    let (taken, _) = app
        .operation(
            "CreateUser",
            json!({ "username": "user1", "email": "t@example.com" }),
            Some("n9"),
        )
        .await;
    assert_eq!(code(&taken), Some("CONFLICT"), "{taken}");
    assert_eq!(user_total(&app).await, (8, 8), "after two refused sign-ups");
    assert_eq!(
        app.scan("users").await.len(),
        8,
        "the users table holds users only (Da Vinci scans it): no counter item there"
    );
}

#[tokio::test]
async fn post_comments_total_count_follows_concurrent_adds_and_deletes() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    app.add_post("p2", "u1", 1).await;
    for i in 0..10 {
        app.add_comment(&format!("old{i}"), "p1", "u2", 1 + i).await;
    }
    app.add_comment("other", "p2", "u2", 20).await;

    let adds = join_all((0..10).map(|i| {
        app.operation(
            "AddComment",
            json!({ "postId": "p1", "content": format!("new {i}") }),
            Some("u2"),
        )
    }));
    // Half by the comment's author, half by the post's.
    let deletes = join_all((0..6).map(|i| {
        let deleter = if i % 2 == 0 { "u1" } else { "u2" };
        app.query_as(deleter, DELETE_COMMENT, json!({ "id": format!("old{i}") }))
    }));
    let (adds, deletes) = tokio::join!(adds, deletes);
    for (body, _) in &adds {
        assert!(body.get("errors").is_none(), "{body}");
    }
    for body in &deletes {
        assert!(body.get("errors").is_none(), "{body}");
    }

    let body = app
        .query(
            "{ post(id: \"p1\") { commentCount comments(first: 100) { totalCount nodes { id } } } \
               other: post(id: \"p2\") { comments { totalCount } } }",
            json!({}),
        )
        .await;
    let post = &body["data"]["post"];
    assert_eq!(post["commentCount"], json!(14), "10 + 10 - 6: {body}");
    assert_eq!(
        post["comments"]["totalCount"],
        json!(14),
        "totalCount is the post's commentCount: {body}"
    );
    assert_eq!(post["comments"]["nodes"].as_array().map(Vec::len), Some(14));
    assert_eq!(app.scan("comments").await.len(), 15, "14 on p1, 1 on p2");
    assert_eq!(
        body["data"]["other"]["comments"]["totalCount"],
        json!(1),
        "{body}"
    );
}

/// A user item as Da Vinci writes it: no counter of any kind.
async fn da_vinci_user(app: &TestApp, id: &str) {
    put(
        &app.storage.tables().users,
        vec![
            ("UserId", s(id)),
            ("Username", s(id)),
            ("Email", s(&format!("{id}@example.com"))),
        ],
    )
    .await;
}

/// A post item as Da Vinci writes it, made `minute` minutes after [`at`]'s instant.
async fn da_vinci_post(app: &TestApp, id: &str, author: &str, minute: i64) {
    put(
        &app.storage.tables().posts,
        vec![
            ("PostId", s(id)),
            ("UserId", s(author)),
            ("Title", s("A title")),
            ("Content", s("Some content")),
            (
                "CreatedAt",
                AttributeValue::N(at(minute).timestamp().to_string()),
            ),
        ],
    )
    .await;
}

const TOTALS: &str = "{ users(first: 1) { totalCount } \
    a: user(id: \"user-1\") { posts(first: 1) { totalCount } } \
    b: user(id: \"user-2\") { posts(first: 1) { totalCount } } \
    c: user(id: \"user-3\") { posts(first: 1) { totalCount } } }";

fn totals(users: i64, a: i64, b: i64, c: i64) -> Value {
    json!({ "data": {
        "users": { "totalCount": users },
        "a": { "posts": { "totalCount": a } },
        "b": { "posts": { "totalCount": b } },
        "c": { "posts": { "totalCount": c } }
    } })
}

#[tokio::test]
async fn counts_of_da_vinci_data_without_counters_are_exact() {
    let app = spawn_app().await;
    for (user, posts) in [("user-1", 4), ("user-2", 1), ("user-3", 0)] {
        da_vinci_user(&app, user).await;
        for i in 0..posts {
            da_vinci_post(&app, &format!("{user}-post-{i}"), user, i).await;
        }
    }
    for round in ["the first read", "a second read"] {
        assert_eq!(
            app.query(TOTALS, json!({})).await,
            totals(3, 4, 1, 0),
            "{round}"
        );
    }

    // Writes through the API count on from there.
    let (body, _) = app
        .operation(
            "CreateUser",
            json!({ "username": "newcomer", "email": "n@example.com" }),
            Some("u9"),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    for user in ["user-1", "user-3"] {
        let body = app
            .query_as(user, CREATE_POST, json!({ "t": "From the API" }))
            .await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    let body = app
        .query_as("user-2", DELETE_POST, json!({ "id": "user-2-post-0" }))
        .await;
    assert_eq!(body, json!({ "data": { "deletePost": "user-2-post-0" } }));
    assert_eq!(
        app.query(TOTALS, json!({})).await,
        totals(4, 5, 0, 1),
        "after a sign-up, two new posts and a deleted one"
    );
    assert_eq!(
        app.scan("users").await.len(),
        4,
        "no counter item among the users"
    );
}

#[tokio::test]
async fn api_writes_before_the_first_count_of_da_vinci_data_are_counted_once() {
    let app = spawn_app().await;
    for (user, posts) in [("user-1", 3), ("user-2", 0), ("user-3", 2)] {
        da_vinci_user(&app, user).await;
        for i in 0..posts {
            da_vinci_post(&app, &format!("{user}-post-{i}"), user, i).await;
        }
    }
    // Nothing has been counted yet when these writes come.
    let (body, _) = app
        .operation(
            "CreateUser",
            json!({ "username": "newcomer", "email": "n@example.com" }),
            Some("u9"),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    for user in ["user-1", "user-2"] {
        let body = app
            .query_as(user, CREATE_POST, json!({ "t": "From the API" }))
            .await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    let body = app
        .query_as("user-3", DELETE_POST, json!({ "id": "user-3-post-0" }))
        .await;
    assert_eq!(body, json!({ "data": { "deletePost": "user-3-post-0" } }));
    assert_eq!(
        app.query(TOTALS, json!({})).await,
        totals(4, 4, 1, 1),
        "3 Da Vinci users + 1; 3 + 1 posts; 0 + 1; 2 - 1"
    );
}

/// A user with 10 posts, each commented on by two other users (as in cost.rs).
async fn feed_fixture() -> TestApp {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_user("u3", "carol").await;
    for i in 0..10 {
        let post = format!("p{i}");
        app.add_post(&post, "u1", i).await;
        app.add_comment(&format!("c{i}a"), &post, "u2", 100 + i)
            .await;
        app.add_comment(&format!("c{i}b"), &post, "u3", 200 + i)
            .await;
    }
    app
}

/// API.md's `PostDetails`, with `totalCount` on its connection.
const POST_DETAILS_WITH_TOTAL: &str = "query PostDetails($id: ID!) {
  post(id: $id) {
    id title content createdAt commentCount
    author { id username }
    comments(first: 20) {
      totalCount
      nodes { id content createdAt author { id username } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

/// API.md's `UserFeed`, with `totalCount` on both its connections.
const USER_FEED_WITH_TOTALS: &str = "query UserFeed($id: ID!) {
  user(id: $id) {
    id username
    posts(first: 10) {
      totalCount
      nodes {
        id title createdAt
        author { username }
        comments(first: 5) { totalCount nodes { content author { username } } }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

#[tokio::test]
async fn post_details_with_total_count_still_costs_4_requests() {
    let app = feed_fixture().await;
    let (body, cost) = app
        .run(POST_DETAILS_WITH_TOTAL, json!({ "id": "p3" }), None)
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let post = &body["data"]["post"];
    assert_eq!(post["commentCount"], json!(2), "{body}");
    assert_eq!(post["comments"]["totalCount"], json!(2), "{body}");
    assert_eq!(post["comments"]["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        requests(&cost),
        (4, json!({ "BatchGetItem": 3, "Query": 1 })),
        "totalCount comes with the post's item: {cost}"
    );
}

#[tokio::test]
async fn user_feed_with_total_counts_still_costs_13_requests() {
    let app = feed_fixture().await;
    let (body, cost) = app
        .run(USER_FEED_WITH_TOTALS, json!({ "id": "u1" }), None)
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let posts = &body["data"]["user"]["posts"];
    assert_eq!(posts["totalCount"], json!(10), "{body}");
    let nodes = posts["nodes"].as_array().expect("posts");
    assert_eq!(nodes.len(), 10);
    for post in nodes {
        assert_eq!(post["comments"]["totalCount"], json!(2), "{post}");
        assert_eq!(post["comments"]["nodes"].as_array().map(Vec::len), Some(2));
    }
    assert_eq!(
        requests(&cost),
        (13, json!({ "BatchGetItem": 2, "Query": 11 })),
        "totalCount comes with the user's and the posts' items: {cost}"
    );
}

#[tokio::test]
async fn users_total_count_reads_a_counter_never_a_scan() {
    let app = spawn_app().await;
    for i in 0..30 {
        app.add_user(&format!("x{i:02}"), &format!("user{i:02}"))
            .await;
    }
    let plain = "{ users(first: 5) { nodes { id } } }";
    let counted = "{ users(first: 5) { totalCount nodes { id } } }";
    // Once before measuring, in case the first read sets the count up.
    let (body, _) = app.run(counted, json!({}), None).await;
    assert_eq!(body["data"]["users"]["totalCount"], json!(30), "{body}");

    let (_, without) = app.run(plain, json!({}), None).await;
    let (body, with) = app.run(counted, json!({}), None).await;
    assert_eq!(body["data"]["users"]["totalCount"], json!(30), "{body}");
    assert!(
        requests(&with).0 <= requests(&without).0 + 1,
        "totalCount costs at most one request: {without} without it, {with} with it"
    );
    assert_eq!(
        with["byOperation"]["Scan"], without["byOperation"]["Scan"],
        "no Scan for the count: {without} without it, {with} with it"
    );
    assert_eq!(
        with["byOperation"]["Query"], without["byOperation"]["Query"],
        "no Query for the count: {without} without it, {with} with it"
    );
}
