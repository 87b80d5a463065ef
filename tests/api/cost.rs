//! The request budget of API.md, as a tested property: the server counts its DynamoDB
//! requests per GraphQL request and reports them when asked (`x-dynamodb-cost: 1`).

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

fn requests(cost: &Value) -> (u64, Value) {
    (
        cost["requests"].as_u64().expect("requests"),
        cost["byOperation"].clone(),
    )
}

/// A user with 10 posts, each commented on by two other users.
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

#[tokio::test]
async fn user_feed_of_ten_posts_costs_13_requests() {
    let app = feed_fixture().await;
    let (body, cost) = app.operation("UserFeed", json!({ "id": "u1" }), None).await;
    assert_eq!(
        body["data"]["user"]["posts"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(10)
    );
    // user, its posts page, (authors cached), 10 comment pages, one batch of comment authors.
    assert_eq!(
        requests(&cost),
        (13, json!({ "BatchGetItem": 2, "Query": 11 })),
        "{cost}"
    );
    assert!(cost["consumedCapacityUnits"].as_f64().expect("capacity") > 0.0);
}

#[tokio::test]
async fn post_details_costs_4_requests() {
    let app = feed_fixture().await;
    let (body, cost) = app
        .operation("PostDetails", json!({ "id": "p3" }), None)
        .await;
    assert_eq!(body["data"]["post"]["commentCount"], json!(2));
    assert_eq!(
        requests(&cost),
        (4, json!({ "BatchGetItem": 3, "Query": 1 })),
        "{cost}"
    );
}

#[tokio::test]
async fn users_page_of_50_users_costs_51_requests() {
    let app = spawn_app().await;
    for i in 0..50 {
        app.add_user(&format!("u{i:02}"), &format!("user{i:02}"))
            .await;
    }
    for i in 0..10 {
        app.add_post(&format!("p{i}"), &format!("u{i:02}"), i).await;
    }
    let (body, cost) = app.operation("UsersPage", json!({}), None).await;
    let users = &body["data"]["users"];
    assert_eq!(users["nodes"].as_array().map(Vec::len), Some(50));
    assert_eq!(users["pageInfo"]["hasNextPage"], json!(false));
    assert_eq!(
        requests(&cost),
        (51, json!({ "Query": 50, "Scan": 1 })),
        "{cost}"
    );
}

#[tokio::test]
async fn two_hundred_fifty_distinct_authors_cost_3_batch_gets() {
    let app = spawn_app().await;
    let ids: Vec<String> = (0..250).map(|i| format!("author-{i:03}")).collect();
    use futures::StreamExt as _;
    futures::stream::iter(ids.iter().map(|id| app.add_user(id, id)))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;

    // 250 lookups at one level of one request, 100 ids asked for twice.
    let fields: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let again = if i < 100 {
                format!("b{i}: user(id: \"{id}\") {{ username }} ")
            } else {
                String::new()
            };
            format!("a{i}: user(id: \"{id}\") {{ id }} {again}")
        })
        .collect();
    let (body, cost) = app.run(&format!("{{ {fields} }}"), json!({}), None).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["a249"], json!({ "id": "author-249" }));
    assert_eq!(requests(&cost), (3, json!({ "BatchGetItem": 3 })), "{cost}");
}

/// Siblings that resolve objects yield to each other as they go (async-graphql's sets of
/// fields are fair), so the first of them ask for their authors before the last have
/// run at all: the authors still go out in one batch.
#[tokio::test]
async fn the_authors_of_sibling_posts_are_one_batch_however_the_siblings_take_turns() {
    let app = feed_fixture().await;
    let fields: String = (0..10)
        .map(|i| format!("p{i}: post(id: \"p{i}\") {{ title author {{ username }} comments(first: 1) {{ nodes {{ author {{ username }} }} }} }} "))
        .collect();
    let (body, cost) = app.run(&format!("{{ {fields} }}"), json!({}), None).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["p9"]["author"], json!({ "username": "alice" }));
    // The posts; then their author and their comment pages at once; then the comments'
    // authors.
    assert_eq!(
        requests(&cost),
        (13, json!({ "BatchGetItem": 3, "Query": 10 })),
        "{cost}"
    );
}

#[tokio::test]
async fn cost_is_reported_only_when_asked() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/graphql", app.url))
        .json(&json!({ "query": "{ users { nodes { id } } }" }))
        .send()
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({ "data": { "users": { "nodes": [] } } }));
}
