//! A failing DynamoDB, and the HTTP layer's own limits: faults injected at the SDK
//! boundary, a DynamoDB that hangs, one that stops and comes back, overload, CORS,
//! production mode.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::{
    Client,
    config::{BehaviorVersion, Credentials, Region, retry::RetryConfig},
    operation::batch_get_item::BatchGetItemOutput,
    types::{AttributeValue, KeysAndAttributes},
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use blog_graphql::storage::{Storage, Tables};
use serde_json::{Value, json};

use crate::helpers::{TestApp, black_hole, spawn_app_on, test_config, test_settings};

fn mocked_storage(rules: &[&Rule]) -> Storage {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new("mock", "mock", None, None, "test"))
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(5)))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    Storage::from_client(
        Client::from_conf(config),
        Tables::new("mock", "test").expect("names"),
    )
}

async fn app_on(storage: Storage) -> TestApp {
    spawn_app_on(test_config(test_settings("http://127.0.0.1:9")), storage).await
}

fn user_item(id: &str) -> std::collections::HashMap<String, AttributeValue> {
    [("UserId", id), ("Username", id), ("Email", "x@example.com")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect()
}

const TWO_USERS: &str = "{ a: user(id: \"u1\") { username } b: user(id: \"u2\") { username } }";

#[tokio::test]
async fn unprocessed_keys_are_retried_until_every_item_is_read() {
    let partial = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses("mock-test-users", vec![user_item("u1")])
            .unprocessed_keys(
                "mock-test-users",
                KeysAndAttributes::builder()
                    .keys([("UserId".to_owned(), AttributeValue::S("u2".into()))].into())
                    .build()
                    .expect("keys"),
            )
            .build()
    });
    let rest = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses("mock-test-users", vec![user_item("u2")])
            .build()
    });
    let app = app_on(mocked_storage(&[&partial, &rest])).await;
    let (body, cost) = app.run(TWO_USERS, json!({}), None).await;
    assert_eq!(
        body,
        json!({ "data": { "a": { "username": "u1" }, "b": { "username": "u2" } } })
    );
    assert_eq!(cost["byOperation"], json!({ "BatchGetItem": 2 }));
    assert_eq!((partial.num_calls(), rest.num_calls()), (1, 1));
}

#[tokio::test]
async fn keys_left_unprocessed_for_good_are_an_error_not_a_missing_item() {
    let stuck = mock!(Client::batch_get_item)
        .sequence()
        .output(|| {
            BatchGetItemOutput::builder()
                .unprocessed_keys(
                    "mock-test-users",
                    KeysAndAttributes::builder()
                        .keys([("UserId".to_owned(), AttributeValue::S("u1".into()))].into())
                        .build()
                        .expect("keys"),
                )
                .build()
        })
        .repeatedly()
        .build();
    let app = app_on(mocked_storage(&[&stuck])).await;
    let (body, _) = app
        .run("{ user(id: \"u1\") { id } }", json!({}), None)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("SERVICE_UNAVAILABLE")
    );
    assert_eq!(body["data"], json!({ "user": null }), "{body}");
    assert_eq!(stuck.num_calls(), 9, "the first try and 8 retries");
}

const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Table: mock-test-users"}"#;

#[tokio::test]
async fn throttling_is_retried_then_service_unavailable_without_details() {
    let once = mock!(Client::batch_get_item)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .output(|| {
            BatchGetItemOutput::builder()
                .responses("mock-test-users", vec![user_item("u1"), user_item("u2")])
                .build()
        })
        .build();
    let app = app_on(mocked_storage(&[&once])).await;
    let (body, _) = app.run(TWO_USERS, json!({}), None).await;
    assert!(
        body.get("errors").is_none(),
        "a throttle is retried: {body}"
    );
    assert_eq!(once.num_calls(), 2);

    let always = mock!(Client::batch_get_item)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .repeatedly()
        .build();
    let app = app_on(mocked_storage(&[&always])).await;
    let (body, _) = app.run(TWO_USERS, json!({}), None).await;
    assert_eq!(always.num_calls(), 3, "the SDK's three attempts");
    let text = body.to_string();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("SERVICE_UNAVAILABLE")
    );
    for leak in ["throughput", "mock-test", "Exceeded", "DynamoDB"] {
        assert!(!text.contains(leak), "leaks {leak:?}: {text}");
    }
}

#[tokio::test]
async fn a_hung_dynamodb_never_hangs_a_client_and_overload_is_refused_at_once() {
    let settings = test_settings(&black_hole().await);
    let storage = Storage::connect(&settings).await.expect("client");
    let mut config = test_config(settings);
    config.http.request_timeout = Duration::from_secs(2);
    config.http.max_concurrent_requests = 1;
    let app = spawn_app_on(config, storage).await;

    let send = || {
        app.http
            .post(format!("{}/graphql", app.url))
            .json(&json!({ "query": "{ user(id: \"u1\") { id } }" }))
            .send()
    };
    let started = Instant::now();
    let (slow, refused) = tokio::join!(send(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        (send().await, started.elapsed())
    });
    let (refused, refused_in) = refused;
    let refused = refused.expect("answer");
    assert_eq!(refused.status(), 503, "over the concurrency limit");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        refused_in < Duration::from_millis(500),
        "at once: {refused_in:?}"
    );
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        json!("SERVICE_UNAVAILABLE")
    );

    let slow: Value = slow.expect("answer").json().await.expect("json");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "bounded by the request timeout: {waited:?}"
    );
    assert_eq!(
        slow["errors"][0]["extensions"]["code"],
        json!("SERVICE_UNAVAILABLE")
    );
}

#[tokio::test]
async fn production_mode_turns_off_introspection_and_graphiql() {
    let (mut config, storage) = crate::helpers::fresh_tables().await;
    config.http.production = true;
    let app = spawn_app_on(config, storage).await;
    let body = app
        .query("{ __schema { types { name } } }", json!({}))
        .await;
    assert!(body["errors"].is_array(), "{body}");
    let page = app
        .http
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .expect("sent");
    assert_ne!(page.status(), 200);
    assert!(!page.text().await.expect("text").contains("graphiql"));
    let body = app.query("{ users { nodes { id } } }", json!({})).await;
    assert_eq!(body, json!({ "data": { "users": { "nodes": [] } } }));
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let settings = test_settings(crate::helpers::dynamodb_endpoint());
    let storage = Storage::connect(&settings).await.expect("client");
    let mut config = test_config(settings);
    config.http.cors_allowed_origins = vec!["https://app.example.com".into()];
    let app = spawn_app_on(config, storage).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.expect("sent");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://app.example.com"[..])
    );
    let other = preflight("https://evil.example.com").await.expect("sent");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn dynamodb_stopped_and_restarted_under_traffic_needs_no_server_restart() {
    use crate::helpers::{free_port, spawn_dynamodb_local, stop_dynamodb_local};

    let port = free_port();
    let dynamodb = tokio::task::spawn_blocking(move || spawn_dynamodb_local(port))
        .await
        .expect("started");
    let settings = test_settings(&format!("http://127.0.0.1:{port}"));
    let storage = Storage::connect(&settings).await.expect("client");
    storage.create_tables().await.expect("tables");
    let app = spawn_app_on(test_config(settings), storage.clone()).await;
    app.add_user("u1", "alice").await;
    let query = "{ user(id: \"u1\") { username } }";
    let ok = json!({ "data": { "user": { "username": "alice" } } });
    assert_eq!(app.query(query, json!({})).await, ok);

    tokio::task::spawn_blocking(move || stop_dynamodb_local(dynamodb, port))
        .await
        .expect("stopped");
    for _ in 0..3 {
        let started = Instant::now();
        let body = app.query(query, json!({})).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "fails fast: {:?}",
            started.elapsed()
        );
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            json!("SERVICE_UNAVAILABLE"),
            "{body}"
        );
        assert_eq!(body["data"], json!({ "user": null }));
    }
    let ready = app
        .http
        .get(format!("{}/ready", app.url))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503);

    // DynamoDB comes back (empty: it keeps its data in memory); the same server carries on.
    let dynamodb = tokio::task::spawn_blocking(move || spawn_dynamodb_local(port))
        .await
        .expect("restarted");
    storage.create_tables().await.expect("tables again");
    app.add_user("u1", "alice").await;
    assert_eq!(app.query(query, json!({})).await, ok);
    // Readiness is checked again once its last answer is a couple of seconds old.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = app
            .http
            .get(format!("{}/ready", app.url))
            .send()
            .await
            .expect("sent");
        if ready.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {}", ready.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::task::spawn_blocking(move || stop_dynamodb_local(dynamodb, port))
        .await
        .expect("stopped");
}
