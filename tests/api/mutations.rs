use serde_json::{Value, json};

use crate::helpers::{codes, spawn_app};

#[tokio::test]
async fn create_user_uses_the_token_subject_and_never_overwrites() {
    let app = spawn_app().await;
    let token = app.token("new-user-1");
    let vars = json!({ "username": "dana", "email": "dana@example.com" });
    let (body, _) = app
        .operation("CreateUser", vars.clone(), Some("new-user-1"))
        .await;
    assert_eq!(
        body,
        json!({ "data": { "createUser": { "id": "new-user-1", "username": "dana", "email": "dana@example.com" } } })
    );

    let again = json!({ "username": "other", "email": "other@example.com" });
    let (body, _) = app.operation("CreateUser", again, Some("new-user-1")).await;
    assert_eq!(codes(&body), ["CONFLICT"]);
    let users = app.scan("users").await;
    assert_eq!(users.len(), 1);
    assert_eq!(
        users[0]["Username"].as_s().ok().map(String::as_str),
        Some("dana")
    );

    // The viewer sees their own email; anybody else sees null.
    let query = "{ viewer { id email createdAt } user(id: \"new-user-1\") { email } }";
    let (body, _) = app.run(query, json!({}), Some(&token)).await;
    assert_eq!(body["data"]["viewer"]["email"], json!("dana@example.com"));
    assert!(body["data"]["viewer"]["createdAt"].is_string());
    let body = app.query_as("someone-else", query, json!({})).await;
    assert_eq!(body["data"]["user"]["email"], Value::Null);
    assert_eq!(body["data"]["viewer"], Value::Null);
}

#[tokio::test]
async fn bad_user_input_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            "CreateUser",
            json!({ "username": "a", "email": "a@example.com" }),
            "username",
        ),
        (
            "CreateUser",
            json!({ "username": "bad name", "email": "a@example.com" }),
            "username",
        ),
        (
            "CreateUser",
            json!({ "username": "dana", "email": "not-an-email" }),
            "email",
        ),
        (
            "CreatePost",
            json!({ "title": "   ", "content": "body" }),
            "title",
        ),
        (
            "CreatePost",
            json!({ "title": "x".repeat(201), "content": "body" }),
            "title",
        ),
        (
            "CreatePost",
            json!({ "title": "ok", "content": "x".repeat(64 * 1024 + 1) }),
            "content",
        ),
        (
            "AddComment",
            json!({ "postId": "p1", "content": "" }),
            "content",
        ),
        (
            "AddComment",
            json!({ "postId": "p1", "content": "x".repeat(8 * 1024 + 1) }),
            "content",
        ),
    ];
    for (operation, vars, field) in cases {
        let (body, cost) = app.operation(operation, vars.clone(), Some("u1")).await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{operation} {vars}");
        let message = body["errors"][0]["message"].as_str().expect("message");
        assert!(message.contains(field), "{message:?} names {field}");
        assert_eq!(
            cost["requests"],
            json!(0),
            "checked before any request: {operation}"
        );
    }
    for table in ["users", "posts", "comments"] {
        assert!(app.scan(table).await.is_empty(), "{table} is empty");
    }
}

#[tokio::test]
async fn mutations_need_a_valid_token() {
    let app = spawn_app().await;
    let vars = json!({ "title": "t", "content": "c" });
    let (body, _) = app.operation("CreatePost", vars.clone(), None).await;
    assert_eq!(codes(&body), ["UNAUTHENTICATED"]);

    let forged = blog_graphql::auth::Authenticator::hs256(
        &"another-secret-9876543".parse().expect("secret"),
    )
    .mint(
        &blog_graphql::domain::UserId::parse("u1").expect("id"),
        std::time::Duration::from_secs(60),
    )
    .expect("token");
    for token in [forged.as_str(), "garbage", "a.b.c"] {
        let body = json!({ "query": crate::helpers::OPERATIONS, "operationName": "CreatePost", "variables": vars });
        let response = app.post(&body, Some(token)).await;
        let body: Value = response.json().await.expect("json");
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "token {token}");
        assert!(body.get("data").is_none());
    }
    // A bad token is an error on reads too, not a silent anonymous read.
    let response = app
        .post(
            &json!({ "query": "{ users { nodes { id } } }" }),
            Some("garbage"),
        )
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(codes(&body), ["UNAUTHENTICATED"]);
    assert!(app.scan("posts").await.is_empty());
}

#[tokio::test]
async fn create_post_and_add_comment_keep_the_counter_exact() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    let (body, _) = app
        .operation(
            "CreatePost",
            json!({ "title": "Hello", "content": "World" }),
            Some("u1"),
        )
        .await;
    let post = &body["data"]["createPost"];
    assert_eq!(post["title"], json!("Hello"));
    assert_eq!(post["author"], json!({ "username": "alice" }));
    let post_id = post["id"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&post_id).is_ok(), "ids are UUIDs");

    for (i, user) in ["u2", "u1", "u2"].iter().enumerate() {
        let (body, _) = app
            .operation(
                "AddComment",
                json!({ "postId": post_id, "content": format!("c{i}") }),
                Some(user),
            )
            .await;
        let comment = &body["data"]["addComment"];
        assert_eq!(comment["content"], json!(format!("c{i}")));
        assert_eq!(
            comment["post"],
            json!({ "id": post_id, "commentCount": i + 1 })
        );
        assert!(comment["createdAt"].as_str().expect("time").ends_with('Z'));
    }
    let posts = app.scan("posts").await;
    assert_eq!(
        posts[0]["CommentCount"].as_n().ok().map(String::as_str),
        Some("3")
    );
    assert_eq!(
        posts[0]["Version"].as_n().ok().map(String::as_str),
        Some("1")
    );
    assert_eq!(app.scan("comments").await.len(), 3);
}

#[tokio::test]
async fn a_comment_on_a_missing_post_is_not_found_and_writes_nothing() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    let (body, _) = app
        .operation(
            "AddComment",
            json!({ "postId": "no-such-post", "content": "hi" }),
            Some("u1"),
        )
        .await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    assert!(app.scan("comments").await.is_empty());
    assert!(
        app.scan("posts").await.is_empty(),
        "no post conjured by the counter update"
    );
}
