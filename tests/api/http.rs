//! GraphQL over HTTP: methods, media types, status codes, health, and failures.

use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_on, test_config, test_settings};

#[tokio::test]
async fn get_runs_queries_but_never_mutations() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    let get = |query: &str| {
        app.http
            .get(format!("{}/graphql", app.url))
            .query(&[("query", query)])
            .header("accept", "application/graphql-response+json")
            .send()
    };
    let response = get("{ user(id: \"u1\") { username } }")
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({ "data": { "user": { "username": "alice" } } }));

    let response = get("mutation { createPost(input: {title: \"t\", content: \"c\"}) { id } }")
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
    assert!(app.scan("posts").await.is_empty());
}

#[tokio::test]
async fn graphiql_is_served_to_browsers() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("text");
    assert!(page.contains("graphiql-4.1.2.min.js"), "a GraphiQL page");
}

#[tokio::test]
async fn media_types_and_status_codes_follow_graphql_over_http() {
    let app = spawn_app().await;
    let send = |accept: &'static str, body: &'static str| {
        app.http
            .post(format!("{}/graphql", app.url))
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(body)
            .send()
    };
    let ok = r#"{"query":"{ users { nodes { id } } }"}"#;
    let broken = r#"{"query":"{ users { "}"#;
    let invalid = r#"{"query":"{ nope }"}"#;
    for (accept, body, status, code) in [
        ("application/graphql-response+json", ok, 200, None),
        ("application/json", ok, 200, None),
        (
            "application/graphql-response+json",
            broken,
            400,
            Some("GRAPHQL_PARSE_FAILED"),
        ),
        (
            "application/json",
            broken,
            200,
            Some("GRAPHQL_PARSE_FAILED"),
        ),
        (
            "application/graphql-response+json",
            invalid,
            400,
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        (
            "application/graphql-response+json",
            "{not json",
            400,
            Some("BAD_USER_INPUT"),
        ),
    ] {
        let response = send(accept, body).await.expect("sent");
        assert_eq!(response.status(), status, "{accept} {body}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(content_type, accept);
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body["errors"][0]["extensions"]["code"].as_str(),
            code,
            "{body}"
        );
        if code.is_some() {
            assert!(
                body.get("data").is_none(),
                "a request error has no data: {body}"
            );
        }
    }
    let response = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("content-type", "text/plain")
        .body(ok)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.url)).send();
    assert_eq!(get("/health").await.expect("sent").status(), 200);
    assert_eq!(get("/ready").await.expect("sent").status(), 200);
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_a_bland_service_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let settings = test_settings(&format!("http://127.0.0.1:{port}"));
    let storage = blog_graphql::storage::Storage::connect(&settings)
        .await
        .expect("client");
    let app = spawn_app_on(test_config(settings), storage).await;
    let started = std::time::Instant::now();
    let (body, _) = app
        .run("{ user(id: \"u1\") { id } }", json!({}), None)
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("SERVICE_UNAVAILABLE")
    );
    let text = body.to_string();
    for leak in [
        "127.0.0.1",
        "dispatch",
        "DynamoDB",
        "users",
        "BatchGetItem",
        "connect",
    ] {
        assert!(!text.contains(leak), "the response leaks {leak:?}: {text}");
    }
    let ready = app
        .http
        .get(format!("{}/ready", app.url))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503);
}
