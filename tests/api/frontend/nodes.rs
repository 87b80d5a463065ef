//! Object identification: `node` and `nodes`.

use serde_json::{Value, json};

use super::requests;
use crate::helpers::{codes, spawn_app};

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
