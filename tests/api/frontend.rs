//! What frontend clients (Relay, Apollo Client, urql) reach for: object identification
//! (`node`, `nodes`), `totalCount` on every connection, paging both ways, and time ranges.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{StreamExt as _, future::join_all};
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, at_text, code, codes, raw_client, spawn_app};

fn requests(cost: &Value) -> (u64, Value) {
    (
        cost["requests"].as_u64().expect("requests"),
        cost["byOperation"].clone(),
    )
}

// ---------------------------------------------------------------------------------------
// Object identification: `node` and `nodes`.
// ---------------------------------------------------------------------------------------

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id \
    ... on User { username } ... on Post { title author { id } } ... on Comment { content post { id } } } }";

const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id \
    ... on User { username } ... on Post { title } ... on Comment { content } } }";

#[tokio::test]
async fn node_finds_users_posts_and_comments_by_their_own_ids() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    app.add_comment("c1", "p1", "u1", 1).await;
    for (id, expected) in [
        (
            "u1",
            json!({ "__typename": "User", "id": "u1", "username": "alice" }),
        ),
        (
            "p1",
            json!({ "__typename": "Post", "id": "p1", "title": "Title of p1", "author": { "id": "u1" } }),
        ),
        (
            "c1",
            json!({ "__typename": "Comment", "id": "c1", "content": "Comment c1", "post": { "id": "p1" } }),
        ),
    ] {
        let body = app.query(NODE, json!({ "id": id })).await;
        assert_eq!(
            body,
            json!({ "data": { "node": expected } }),
            "node(id: {id})"
        );
    }
    let body = app.query(NODE, json!({ "id": "nobody" })).await;
    assert_eq!(
        body,
        json!({ "data": { "node": null } }),
        "an unknown id is null, not an error"
    );
}

#[tokio::test]
async fn nodes_answer_in_order_with_null_for_unknown_ids_in_one_batch_get() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    app.add_comment("c1", "p1", "u1", 1).await;
    // A repeated id too: it is one key per table (DynamoDB refuses a batch with a key twice).
    let (body, cost) = app
        .run(
            NODES,
            json!({ "ids": ["u1", "p1", "c1", "nope", "u1"] }),
            None,
        )
        .await;
    let alice = json!({ "__typename": "User", "id": "u1", "username": "alice" });
    assert_eq!(
        body,
        json!({ "data": { "nodes": [
            alice.clone(),
            { "__typename": "Post", "id": "p1", "title": "Title of p1" },
            { "__typename": "Comment", "id": "c1", "content": "Comment c1" },
            null,
            alice
        ] } })
    );
    assert_eq!(
        requests(&cost),
        (1, json!({ "BatchGetItem": 1 })),
        "4 distinct ids in 3 tables are 12 keys: one BatchGetItem and nothing else: {cost}"
    );

    let body = app.query(NODES, json!({ "ids": [] })).await;
    assert_eq!(body, json!({ "data": { "nodes": [] } }));
}

#[tokio::test]
async fn a_hundred_ids_take_three_batch_gets_and_a_hundred_and_one_are_refused() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..34).map(|i| format!("u{i:03}")).collect();
    let posts: Vec<String> = (0..33).map(|i| format!("p{i:03}")).collect();
    let comments: Vec<String> = (0..33).map(|i| format!("c{i:03}")).collect();
    for user in &users {
        app.add_user(user, user).await;
    }
    for (i, post) in posts.iter().enumerate() {
        app.add_post(post, &users[i], i as i64).await;
    }
    for (i, comment) in comments.iter().enumerate() {
        app.add_comment(comment, &posts[0], &users[i], 100 + i as i64)
            .await;
    }
    let ids: Vec<&String> = users.iter().chain(&posts).chain(&comments).collect();
    assert_eq!(ids.len(), 100);

    let query = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";
    let (body, cost) = app.run(query, json!({ "ids": ids }), None).await;
    assert!(body.get("errors").is_none(), "{body}");
    let got: Vec<(String, String)> = body["data"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {body}"))
        .iter()
        .map(|node| {
            (
                node["__typename"].as_str().unwrap_or("<null>").to_owned(),
                node["id"].as_str().unwrap_or("<null>").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = users
        .iter()
        .map(|id| ("User".to_owned(), id.clone()))
        .chain(posts.iter().map(|id| ("Post".to_owned(), id.clone())))
        .chain(comments.iter().map(|id| ("Comment".to_owned(), id.clone())))
        .collect();
    assert_eq!(got, expected, "every id answered, in the order asked");
    assert_eq!(
        requests(&cost),
        (3, json!({ "BatchGetItem": 3 })),
        "100 ids in 3 tables are 300 keys, 100 to a BatchGetItem: {cost}"
    );

    let extra = "u999".to_owned();
    let mut too_many = ids.clone();
    too_many.push(&extra);
    let body = app.query(query, json!({ "ids": too_many })).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "101 ids: {body}");
    assert_eq!(body["data"], Value::Null);
}

#[tokio::test]
async fn an_id_in_two_tables_answers_as_the_first_of_user_post_comment() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    app.add_user("dup", "dupe").await;
    app.add_post("dup", "u1", 1).await;
    app.add_comment("dup", "p1", "u1", 2).await;
    app.add_post("pc", "u1", 3).await;
    app.add_comment("pc", "p1", "u1", 4).await;

    let body = app.query(NODE, json!({ "id": "dup" })).await;
    assert_eq!(
        body["data"]["node"],
        json!({ "__typename": "User", "id": "dup", "username": "dupe" }),
        "user before post and comment: {body}"
    );
    let body = app.query(NODE, json!({ "id": "pc" })).await;
    assert_eq!(
        body["data"]["node"],
        json!({ "__typename": "Post", "id": "pc", "title": "Title of pc", "author": { "id": "u1" } }),
        "post before comment: {body}"
    );
    let body = app.query(NODES, json!({ "ids": ["pc", "dup"] })).await;
    assert_eq!(
        body,
        json!({ "data": { "nodes": [
            { "__typename": "Post", "id": "pc", "title": "Title of pc" },
            { "__typename": "User", "id": "dup", "username": "dupe" }
        ] } })
    );
}

#[tokio::test]
async fn node_is_an_interface_of_user_post_and_comment() {
    let app = spawn_app().await;
    let body = app
        .query(
            "{ __type(name: \"Node\") { kind fields { name } possibleTypes { name } } }",
            json!({}),
        )
        .await;
    let node = &body["data"]["__type"];
    assert_eq!(node["kind"], json!("INTERFACE"), "{body}");
    assert_eq!(node["fields"], json!([{ "name": "id" }]), "{body}");
    let mut possible: Vec<&str> = node["possibleTypes"]
        .as_array()
        .unwrap_or_else(|| panic!("possible types: {body}"))
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    possible.sort();
    assert_eq!(possible, ["Comment", "Post", "User"]);
    for name in ["User", "Post", "Comment"] {
        let body = app
            .query(
                "query($n: String!) { __type(name: $n) { interfaces { name } } }",
                json!({ "n": name }),
            )
            .await;
        assert_eq!(
            body["data"]["__type"]["interfaces"],
            json!([{ "name": "Node" }]),
            "{name}: {body}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// totalCount.
// ---------------------------------------------------------------------------------------

const CREATE_POST: &str =
    "mutation($t: String!) { createPost(input: { title: $t, content: \"Some content\" }) { id } }";
const DELETE_POST: &str = "mutation($id: ID!) { deletePost(id: $id) }";
const DELETE_COMMENT: &str = "mutation($id: ID!) { deleteComment(id: $id) }";

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

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
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

// ---------------------------------------------------------------------------------------
// Paging both ways.
// ---------------------------------------------------------------------------------------

const PAGE_FIELDS: &str = "totalCount nodes { id } edges { cursor node { id } } \
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }";
const PAGE_VARIABLES: &str = "$first: Int, $after: String, $last: Int, $before: String";
const PAGE_ARGUMENTS: &str = "first: $first, after: $after, last: $last, before: $before";

/// The arguments of one page; unset ones are left out of the request.
#[derive(Clone, Debug, Default)]
struct Args {
    first: Option<i64>,
    after: Option<String>,
    last: Option<i64>,
    before: Option<String>,
}

fn forward(first: i64) -> Args {
    Args {
        first: Some(first),
        ..Args::default()
    }
}

fn backward(last: i64) -> Args {
    Args {
        last: Some(last),
        ..Args::default()
    }
}

impl Args {
    fn after(mut self, cursor: &str) -> Self {
        self.after = Some(cursor.to_owned());
        self
    }

    fn before(mut self, cursor: &str) -> Self {
        self.before = Some(cursor.to_owned());
        self
    }
}

/// One page as read, its cursors checked against its `pageInfo`.
#[derive(Debug)]
struct Page {
    ids: Vec<String>,
    cursors: Vec<String>,
    has_previous: bool,
    has_next: bool,
    total: i64,
}

impl Page {
    fn start(&self) -> Option<String> {
        self.cursors.first().cloned()
    }

    fn end(&self) -> Option<String> {
        self.cursors.last().cloned()
    }
}

/// One connection of the API: the query that reads a page of it, and where the page is.
struct Conn {
    name: String,
    query: String,
    variables: Value,
    path: &'static [&'static str],
}

impl Conn {
    fn users() -> Self {
        Self {
            name: "users".into(),
            query: format!(
                "query({PAGE_VARIABLES}) {{ users({PAGE_ARGUMENTS}) {{ {PAGE_FIELDS} }} }}"
            ),
            variables: json!({}),
            path: &["users"],
        }
    }

    fn posts_of(user: &str) -> Self {
        Self {
            name: format!("posts of {user}"),
            query: format!(
                "query($parent: ID!, {PAGE_VARIABLES}, $from: DateTime, $to: DateTime) {{ \
                 user(id: $parent) {{ posts({PAGE_ARGUMENTS}, createdAfter: $from, createdBefore: $to) \
                 {{ {PAGE_FIELDS} }} }} }}"
            ),
            variables: json!({ "parent": user }),
            path: &["user", "posts"],
        }
    }

    fn comments_of(post: &str) -> Self {
        Self {
            name: format!("comments of {post}"),
            query: format!(
                "query($parent: ID!, {PAGE_VARIABLES}, $from: DateTime, $to: DateTime) {{ \
                 post(id: $parent) {{ comments({PAGE_ARGUMENTS}, createdAfter: $from, createdBefore: $to) \
                 {{ {PAGE_FIELDS} }} }} }}"
            ),
            variables: json!({ "parent": post }),
            path: &["post", "comments"],
        }
    }

    /// The same list under a time range (`createdAfter`, `createdBefore`).
    fn within(mut self, after: Option<String>, before: Option<String>) -> Self {
        self.name = format!(
            "{} created after {after:?} and before {before:?}",
            self.name
        );
        let variables = self.variables.as_object_mut().expect("an object");
        if let Some(after) = after {
            variables.insert("from".into(), json!(after));
        }
        if let Some(before) = before {
            variables.insert("to".into(), json!(before));
        }
        self
    }

    /// The whole response to a request for one page.
    async fn body(&self, app: &TestApp, args: &Args) -> Value {
        let mut variables = self.variables.clone();
        let map = variables.as_object_mut().expect("an object");
        if let Some(first) = args.first {
            map.insert("first".into(), json!(first));
        }
        if let Some(after) = &args.after {
            map.insert("after".into(), json!(after));
        }
        if let Some(last) = args.last {
            map.insert("last".into(), json!(last));
        }
        if let Some(before) = &args.before {
            map.insert("before".into(), json!(before));
        }
        app.query(&self.query, variables).await
    }

    /// One page, which must come without errors.
    async fn page(&self, app: &TestApp, args: &Args) -> Page {
        let body = self.body(app, args).await;
        self.read(&body, args)
    }

    fn read(&self, body: &Value, args: &Args) -> Page {
        let what = format!("{} with {args:?}", self.name);
        assert!(body.get("errors").is_none(), "{what}: {body}");
        let mut connection = &body["data"];
        for key in self.path {
            connection = &connection[*key];
        }
        let ids: Vec<String> = connection["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: nodes: {body}"))
            .iter()
            .map(|node| node["id"].as_str().expect("id").to_owned())
            .collect();
        let edges = connection["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: edges: {body}"));
        let edge_ids: Vec<String> = edges
            .iter()
            .map(|edge| edge["node"]["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(edge_ids, ids, "{what}: edges and nodes agree");
        let cursors: Vec<String> = edges
            .iter()
            .map(|edge| edge["cursor"].as_str().expect("cursor").to_owned())
            .collect();
        let info = &connection["pageInfo"];
        assert_eq!(
            info["startCursor"],
            cursors.first().map_or(Value::Null, |c| json!(c)),
            "{what}: startCursor is the first edge's cursor (null on an empty page)"
        );
        assert_eq!(
            info["endCursor"],
            cursors.last().map_or(Value::Null, |c| json!(c)),
            "{what}: endCursor is the last edge's cursor (null on an empty page)"
        );
        Page {
            ids,
            cursors,
            has_previous: info["hasPreviousPage"]
                .as_bool()
                .unwrap_or_else(|| panic!("{what}: hasPreviousPage: {body}")),
            has_next: info["hasNextPage"]
                .as_bool()
                .unwrap_or_else(|| panic!("{what}: hasNextPage: {body}")),
            total: connection["totalCount"]
                .as_i64()
                .unwrap_or_else(|| panic!("{what}: totalCount: {body}")),
        }
    }
}

/// Walks `conn` forward in pages of `size`, checking each page against `expected`.
async fn walk_forward(app: &TestApp, conn: &Conn, expected: &[String], size: usize) {
    let n = expected.len();
    let mut after: Option<String> = None;
    let mut at = 0;
    loop {
        let mut args = forward(size as i64);
        args.after = after.clone();
        let page = conn.page(app, &args).await;
        let end = (at + size).min(n);
        let what = format!("{}: forward page of {size} from {at} of {n}", conn.name);
        assert_eq!(page.ids, expected[at..end].to_vec(), "{what}: items");
        assert_eq!(
            page.has_previous,
            after.is_some(),
            "{what}: hasPreviousPage is whether `after` was given"
        );
        assert_eq!(
            page.has_next,
            end < n,
            "{what}: hasNextPage is whether items follow"
        );
        assert_eq!(page.total, n as i64, "{what}: totalCount");
        if end == n {
            return;
        }
        after = Some(page.end().expect("a cursor to go on from"));
        at = end;
    }
}

/// Walks `conn` backward from its end in pages of `size`, checking each page against
/// `expected` and that the pages, put together, are the list.
async fn walk_backward(app: &TestApp, conn: &Conn, expected: &[String], size: usize) {
    let n = expected.len();
    let mut before: Option<String> = None;
    let mut end = n;
    let mut collected: Vec<String> = Vec::new();
    loop {
        let mut args = backward(size as i64);
        args.before = before.clone();
        let page = conn.page(app, &args).await;
        let start = end.saturating_sub(size);
        let what = format!(
            "{}: backward page of {size} ending at {end} of {n}",
            conn.name
        );
        assert_eq!(
            page.ids,
            expected[start..end].to_vec(),
            "{what}: the items right before, in list order"
        );
        assert_eq!(
            page.has_previous,
            start > 0,
            "{what}: hasPreviousPage is whether items precede"
        );
        assert_eq!(
            page.has_next,
            before.is_some(),
            "{what}: hasNextPage is whether `before` was given"
        );
        assert_eq!(page.total, n as i64, "{what}: totalCount");
        collected.splice(0..0, page.ids.iter().cloned());
        if start == 0 {
            break;
        }
        before = Some(page.start().expect("a cursor to go on from"));
        end = start;
    }
    assert_eq!(
        collected,
        expected.to_vec(),
        "{}: walking back in pages of {size} collects the forward walk's items",
        conn.name
    );
}

async fn walk_both_ways(app: &TestApp, conn: &Conn, expected: &[String], sizes: &[usize]) {
    for &size in sizes {
        walk_forward(app, conn, expected, size).await;
        walk_backward(app, conn, expected, size).await;
    }
}

#[tokio::test]
async fn post_comments_page_both_ways_with_exact_page_info() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    let sizes = [0usize, 1, 20, 21, 250];
    for n in sizes {
        app.add_post(&format!("p{n}"), "u1", n as i64).await;
    }
    let mut writes = Vec::new();
    for n in sizes {
        for i in 0..n {
            writes.push((format!("k{n}-{i:03}"), format!("p{n}"), i as i64));
        }
    }
    futures::stream::iter(
        writes
            .iter()
            .map(|(id, post, minute)| app.add_comment(id, post, "u2", *minute)),
    )
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;

    for n in sizes {
        // Oldest first.
        let expected: Vec<String> = (0..n).map(|i| format!("k{n}-{i:03}")).collect();
        let conn = Conn::comments_of(&format!("p{n}"));
        walk_both_ways(&app, &conn, &expected, &[20, 7]).await;
    }
}

#[tokio::test]
async fn user_posts_page_both_ways_with_exact_page_info() {
    let app = spawn_app().await;
    let sizes = [0usize, 1, 20, 21, 45];
    for n in sizes {
        app.add_user(&format!("w{n}"), &format!("writer{n}")).await;
        for i in 0..n {
            app.add_post(&format!("q{n}-{i:02}"), &format!("w{n}"), i as i64)
                .await;
        }
    }
    for n in sizes {
        // Newest first.
        let expected: Vec<String> = (0..n).rev().map(|i| format!("q{n}-{i:02}")).collect();
        let conn = Conn::posts_of(&format!("w{n}"));
        walk_both_ways(&app, &conn, &expected, &[20, 7]).await;
    }
}

#[tokio::test]
async fn users_page_both_ways_with_exact_page_info() {
    let app = spawn_app().await;
    let mut ids: Vec<String> = (0..25).map(|i| format!("x{i:02}")).collect();
    for id in &ids {
        app.add_user(id, &format!("user-{id}")).await;
    }
    let conn = Conn::users();
    let all = conn.page(&app, &forward(100)).await;
    assert_eq!(
        (all.has_previous, all.has_next, all.total),
        (false, false, 25)
    );
    let again = conn.page(&app, &forward(100)).await;
    assert_eq!(again.ids, all.ids, "the scan order is stable");
    let mut listed = all.ids.clone();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids, "every user once, and nothing else");
    walk_both_ways(&app, &conn, &all.ids, &[10, 7]).await;
}

/// Default and empty pages of a list of 25 items, with their exact flags.
async fn check_defaults_and_empty_pages(app: &TestApp, conn: &Conn, expected: &[String]) {
    assert_eq!(expected.len(), 25);
    let all = conn.page(app, &forward(100)).await;
    assert_eq!(all.ids, expected.to_vec(), "{}: the whole list", conn.name);
    let cases: Vec<(&str, Args, std::ops::Range<usize>, bool, bool)> = vec![
        (
            "no first or last: 20 forward",
            Args::default(),
            0..20,
            false,
            true,
        ),
        (
            "before alone: 20 backward",
            Args::default().before(&all.cursors[24]),
            4..24,
            true,
            true,
        ),
        (
            "last alone: the list's last items",
            backward(3),
            22..25,
            true,
            false,
        ),
        ("last: 100", backward(100), 0..25, false, false),
        ("last: 0", backward(0), 25..25, true, false),
        (
            "last: 0 before the first item",
            backward(0).before(&all.cursors[0]),
            0..0,
            false,
            true,
        ),
        ("first: 0", forward(0), 0..0, false, true),
        (
            "first: 0 after the last item",
            forward(0).after(&all.cursors[24]),
            25..25,
            true,
            false,
        ),
        (
            "last: 1 before the second item",
            backward(1).before(&all.cursors[1]),
            0..1,
            false,
            true,
        ),
    ];
    for (what, args, range, previous, next) in cases {
        let page = conn.page(app, &args).await;
        assert_eq!(
            page.ids,
            expected[range].to_vec(),
            "{}: {what}: items",
            conn.name
        );
        assert_eq!(
            (page.has_previous, page.has_next),
            (previous, next),
            "{}: {what}: (hasPreviousPage, hasNextPage)",
            conn.name
        );
        assert_eq!(page.total, 25, "{}: {what}: totalCount", conn.name);
    }
}

#[tokio::test]
async fn default_and_empty_pages_are_exact_on_every_connection() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..25).map(|i| format!("u{i:02}")).collect();
    for id in &users {
        app.add_user(id, &format!("user-{id}")).await;
    }
    for i in 0..25 {
        app.add_post(&format!("p{i:02}"), "u00", i).await;
    }
    for i in 0..25 {
        app.add_comment(&format!("c{i:02}"), "p00", &users[i as usize], 100 + i)
            .await;
    }
    let posts: Vec<String> = (0..25).rev().map(|i| format!("p{i:02}")).collect();
    check_defaults_and_empty_pages(&app, &Conn::posts_of("u00"), &posts).await;
    let comments: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    check_defaults_and_empty_pages(&app, &Conn::comments_of("p00"), &comments).await;
    let users_conn = Conn::users();
    let order = users_conn.page(&app, &forward(100)).await.ids;
    check_defaults_and_empty_pages(&app, &users_conn, &order).await;

    // An empty list, both ways.
    for args in [
        forward(5),
        backward(5),
        Args::default(),
        backward(0),
        forward(0),
    ] {
        let page = Conn::comments_of("p01").page(&app, &args).await;
        assert!(page.ids.is_empty(), "{args:?}: {page:?}");
        assert_eq!(
            (page.has_previous, page.has_next, page.total),
            (false, false, 0),
            "an empty list, {args:?}"
        );
    }
}

/// Cursors name items: one from a forward page works as `before`, and one from a backward
/// page works as `after`.
async fn check_cursors_both_ways(app: &TestApp, conn: &Conn, expected: &[String]) {
    let n = expected.len();
    let all = conn.page(app, &forward(100)).await;
    assert_eq!(all.ids, expected.to_vec(), "{}: the whole list", conn.name);
    for k in [0, 1, 10, n - 1] {
        let cursor = &all.cursors[k];
        let page = conn.page(app, &backward(3).before(cursor)).await;
        let start = k.saturating_sub(3);
        assert_eq!(
            page.ids,
            expected[start..k].to_vec(),
            "{}: last 3 before item {k}",
            conn.name
        );
        assert_eq!(
            (page.has_previous, page.has_next),
            (start > 0, true),
            "{}: last 3 before item {k}: (hasPreviousPage, hasNextPage)",
            conn.name
        );
        let page = conn.page(app, &forward(3).after(cursor)).await;
        let end = (k + 4).min(n);
        assert_eq!(
            page.ids,
            expected[k + 1..end].to_vec(),
            "{}: first 3 after item {k}",
            conn.name
        );
        assert_eq!(
            (page.has_previous, page.has_next),
            (true, end < n),
            "{}: first 3 after item {k}: (hasPreviousPage, hasNextPage)",
            conn.name
        );
    }
    let tail = conn.page(app, &backward(5)).await;
    assert_eq!(
        tail.ids,
        expected[n - 5..].to_vec(),
        "{}: last 5",
        conn.name
    );
    let start = tail.start().expect("a cursor");
    let page = conn.page(app, &forward(2).after(&start)).await;
    assert_eq!(
        page.ids,
        expected[n - 4..n - 2].to_vec(),
        "{}: a backward page's startCursor used as `after`",
        conn.name
    );
    let page = conn.page(app, &backward(2).before(&start)).await;
    assert_eq!(
        page.ids,
        expected[n - 7..n - 5].to_vec(),
        "{}: a backward page's startCursor used as `before`",
        conn.name
    );
}

#[tokio::test]
async fn cursors_of_either_direction_work_both_ways() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    for i in 0..21 {
        app.add_post(&format!("p{i:02}"), "u1", i).await;
        app.add_comment(&format!("c{i:02}"), "p00", "u1", 100 + i)
            .await;
    }
    let posts: Vec<String> = (0..21).rev().map(|i| format!("p{i:02}")).collect();
    check_cursors_both_ways(&app, &Conn::posts_of("u1"), &posts).await;
    let comments: Vec<String> = (0..21).map(|i| format!("c{i:02}")).collect();
    check_cursors_both_ways(&app, &Conn::comments_of("p00"), &comments).await;
}

#[tokio::test]
async fn a_backward_page_costs_one_query() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    for i in 0..30 {
        app.add_post(&format!("p{i:02}"), "u1", i).await;
        app.add_comment(&format!("c{i:02}"), "p00", "u1", 100 + i)
            .await;
    }
    let posts = "query($before: String) { user(id: \"u1\") { posts(last: 5, before: $before) { \
                 nodes { id } pageInfo { hasPreviousPage hasNextPage startCursor } } } }";
    let (body, cost) = app.run(posts, json!({}), None).await;
    let page = &body["data"]["user"]["posts"];
    assert_eq!(
        page["nodes"],
        json!([{ "id": "p04" }, { "id": "p03" }, { "id": "p02" }, { "id": "p01" }, { "id": "p00" }]),
        "the oldest 5, newest first: {body}"
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "the user, then one Query for the page: {cost}"
    );
    let before = page["pageInfo"]["startCursor"].clone();
    let (body, cost) = app.run(posts, json!({ "before": before }), None).await;
    assert_eq!(
        body["data"]["user"]["posts"]["nodes"],
        json!([{ "id": "p09" }, { "id": "p08" }, { "id": "p07" }, { "id": "p06" }, { "id": "p05" }]),
        "{body}"
    );
    assert_eq!(
        body["data"]["user"]["posts"]["pageInfo"]["hasPreviousPage"],
        json!(true)
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "{cost}"
    );

    let comments = "query($before: String) { post(id: \"p00\") { comments(last: 5, before: $before) { \
                    nodes { id } pageInfo { hasPreviousPage hasNextPage startCursor } } } }";
    let (body, cost) = app.run(comments, json!({}), None).await;
    let page = &body["data"]["post"]["comments"];
    assert_eq!(
        page["nodes"],
        json!([{ "id": "c25" }, { "id": "c26" }, { "id": "c27" }, { "id": "c28" }, { "id": "c29" }]),
        "the newest 5, oldest first: {body}"
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "{cost}"
    );
    let before = page["pageInfo"]["startCursor"].clone();
    let (body, cost) = app.run(comments, json!({ "before": before }), None).await;
    assert_eq!(
        body["data"]["post"]["comments"]["nodes"],
        json!([{ "id": "c20" }, { "id": "c21" }, { "id": "c22" }, { "id": "c23" }, { "id": "c24" }]),
        "{body}"
    );
    assert_eq!(
        requests(&cost),
        (2, json!({ "BatchGetItem": 1, "Query": 1 })),
        "{cost}"
    );
}

#[tokio::test]
async fn contradictory_or_out_of_range_page_arguments_are_bad_user_input() {
    let app = spawn_app().await;
    app.alice_and_her_post().await;
    app.add_user("u2", "bob").await;
    app.add_post("p2", "u1", 1).await;
    app.add_comment("c1", "p1", "u1", 2).await;
    app.add_comment("c2", "p1", "u2", 3).await;
    for conn in [Conn::users(), Conn::posts_of("u1"), Conn::comments_of("p1")] {
        let cursor = conn.page(&app, &forward(1)).await.end().expect("a cursor");
        let cases = [
            (
                "first with last",
                Args {
                    first: Some(1),
                    last: Some(1),
                    ..Args::default()
                },
            ),
            (
                "first: 0 with last: 0",
                Args {
                    first: Some(0),
                    last: Some(0),
                    ..Args::default()
                },
            ),
            ("first with before", forward(1).before(&cursor)),
            ("last with after", backward(1).after(&cursor)),
            ("last: -1", backward(-1)),
            ("last: 101", backward(101)),
        ];
        for (what, args) in cases {
            let body = conn.body(&app, &args).await;
            assert_eq!(
                codes(&body),
                ["BAD_USER_INPUT"],
                "{}: {what}: {body}",
                conn.name
            );
        }
        let body = conn.body(&app, &backward(101)).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("between 0 and 100"),
            "{}: last: 101 says the bounds: {message}",
            conn.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// Time ranges.
// ---------------------------------------------------------------------------------------

/// u1's posts `a00`..`a29` at minutes 0..29 and u2's `b00`..`b29` at the same minutes;
/// comments `k00`..`k29` on `a00` at minutes 0..29 and `l00`..`l29` on `b00` likewise.
async fn ranged_fixture() -> TestApp {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    for m in 0..30 {
        app.add_post(&format!("a{m:02}"), "u1", m).await;
        app.add_post(&format!("b{m:02}"), "u2", m).await;
    }
    for m in 0..30 {
        app.add_comment(&format!("k{m:02}"), "a00", "u2", m).await;
        app.add_comment(&format!("l{m:02}"), "b00", "u1", m).await;
    }
    app
}

#[tokio::test]
async fn a_time_range_bounds_user_posts_exclusively_with_full_pages() {
    let app = ranged_fixture().await;
    let (from, to) = (at_text(9), at_text(20));
    let conn = Conn::posts_of("u1").within(Some(from), Some(to));
    let page = conn.page(&app, &forward(5)).await;
    assert_eq!(
        page.ids,
        ["a19", "a18", "a17", "a16", "a15"],
        "newest first within the range"
    );
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, true, 10),
        "(hasPreviousPage, hasNextPage, totalCount): minutes 10 to 19"
    );

    // Minutes 9 and 20 excluded; every page full.
    let expected: Vec<String> = (10..20).rev().map(|m| format!("a{m:02}")).collect();
    walk_both_ways(&app, &conn, &expected, &[5, 3, 10]).await;

    let after_only = Conn::posts_of("u1").within(Some(at_text(24)), None);
    let page = after_only.page(&app, &forward(100)).await;
    assert_eq!(page.ids, ["a29", "a28", "a27", "a26", "a25"]);
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, false, 5)
    );
    let before_only = Conn::posts_of("u1").within(None, Some(at_text(3)));
    let page = before_only.page(&app, &forward(2)).await;
    assert_eq!(page.ids, ["a02", "a01"], "a full first page");
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, true, 3)
    );
    let page = before_only.page(&app, &backward(2)).await;
    assert_eq!(page.ids, ["a01", "a00"]);
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (true, false, 3)
    );

    // The same instants written with another offset are the same range.
    let offset = Conn::posts_of("u1").within(
        Some("2025-01-01T13:09:00+01:00".to_owned()),
        Some("2025-01-01T13:20:00+01:00".to_owned()),
    );
    let page = offset.page(&app, &forward(100)).await;
    assert_eq!(page.ids, expected, "RFC 3339 with an offset");
}

#[tokio::test]
async fn a_time_range_bounds_post_comments_exclusively_with_full_pages() {
    let app = ranged_fixture().await;
    let conn = Conn::comments_of("a00").within(Some(at_text(9)), Some(at_text(20)));
    let page = conn.page(&app, &forward(4)).await;
    assert_eq!(
        page.ids,
        ["k10", "k11", "k12", "k13"],
        "oldest first within the range"
    );
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, true, 10)
    );
    let expected: Vec<String> = (10..20).map(|m| format!("k{m:02}")).collect();
    walk_both_ways(&app, &conn, &expected, &[4, 10]).await;

    let page = Conn::comments_of("a00")
        .within(Some(at_text(27)), None)
        .page(&app, &Args::default())
        .await;
    assert_eq!(page.ids, ["k28", "k29"]);
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, false, 2)
    );
    // The whole list is still counted by the post's counter.
    let page = Conn::comments_of("a00").page(&app, &forward(1)).await;
    assert_eq!(page.total, 30);
}

#[tokio::test]
async fn a_cursor_holds_only_under_the_range_it_was_made_with() {
    let app = ranged_fixture().await;
    let ranged = Conn::posts_of("u1").within(Some(at_text(9)), Some(at_text(20)));
    let wider = Conn::posts_of("u1").within(Some(at_text(9)), Some(at_text(25)));
    let after_only = Conn::posts_of("u1").within(Some(at_text(9)), None);
    let plain = Conn::posts_of("u1");

    let ranged_cursor = ranged
        .page(&app, &forward(3))
        .await
        .end()
        .expect("a cursor");
    // A position inside the range, but found with no range.
    let plain_page = plain.page(&app, &forward(15)).await;
    assert_eq!(plain_page.ids.last().map(String::as_str), Some("a15"));
    let plain_cursor = plain_page.end().expect("a cursor");

    // Under its own range, both ways.
    let page = ranged.page(&app, &forward(3).after(&ranged_cursor)).await;
    assert_eq!(page.ids, ["a16", "a15", "a14"]);
    assert_eq!(page.total, 10);
    let page = ranged.page(&app, &backward(5).before(&ranged_cursor)).await;
    assert_eq!(page.ids, ["a19", "a18"]);
    assert_eq!((page.has_previous, page.has_next), (false, true));

    for (conn, cursor, what) in [
        (&wider, &ranged_cursor, "under another range"),
        (&after_only, &ranged_cursor, "under a range of one bound"),
        (&plain, &ranged_cursor, "under no range"),
        (&ranged, &plain_cursor, "made with no range, under a range"),
    ] {
        for args in [forward(3).after(cursor), backward(3).before(cursor)] {
            let body = conn.body(&app, &args).await;
            assert_eq!(
                codes(&body),
                ["BAD_USER_INPUT"],
                "a cursor {what}: {} with {args:?}: {body}",
                conn.name
            );
        }
    }

    // The same for comments.
    let ranged = Conn::comments_of("a00").within(Some(at_text(9)), Some(at_text(20)));
    let plain = Conn::comments_of("a00");
    let ranged_cursor = ranged
        .page(&app, &forward(3))
        .await
        .end()
        .expect("a cursor");
    let plain_cursor = plain
        .page(&app, &forward(12))
        .await
        .end()
        .expect("a cursor");
    for (conn, cursor, what) in [
        (&plain, &ranged_cursor, "under no range"),
        (&ranged, &plain_cursor, "made with no range, under a range"),
    ] {
        let body = conn.body(&app, &forward(3).after(cursor)).await;
        assert_eq!(
            codes(&body),
            ["BAD_USER_INPUT"],
            "a comments cursor {what}: {body}"
        );
    }
}

#[tokio::test]
async fn an_empty_or_inverted_range_is_never_a_server_error() {
    let app = ranged_fixture().await;
    // Minutes are whole: nothing lies strictly between minute 10 and minute 11.
    let page = Conn::posts_of("u1")
        .within(Some(at_text(10)), Some(at_text(11)))
        .page(&app, &forward(5))
        .await;
    assert!(page.ids.is_empty(), "{page:?}");
    assert_eq!(
        (page.has_previous, page.has_next, page.total),
        (false, false, 0)
    );
    // Equal or inverted bounds: an empty page, or a client error; never anything else.
    for (from, to) in [(10, 10), (20, 9)] {
        for conn in [
            Conn::posts_of("u1").within(Some(at_text(from)), Some(at_text(to))),
            Conn::comments_of("a00").within(Some(at_text(from)), Some(at_text(to))),
        ] {
            for args in [forward(5), backward(5)] {
                let body = conn.body(&app, &args).await;
                if body.get("errors").is_some() {
                    assert_eq!(
                        codes(&body),
                        ["BAD_USER_INPUT"],
                        "{} with {args:?}: {body}",
                        conn.name
                    );
                } else {
                    let page = conn.read(&body, &args);
                    assert!(page.ids.is_empty(), "{} with {args:?}: {page:?}", conn.name);
                    assert_eq!(
                        (page.has_previous, page.has_next, page.total),
                        (false, false, 0),
                        "{} with {args:?}",
                        conn.name
                    );
                }
            }
        }
    }
}
