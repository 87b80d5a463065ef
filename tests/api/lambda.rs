//! `blog-graphql lambda`: the API as an AWS Lambda function, driven through an
//! implementation of the Lambda Runtime API (the documented `/2018-06-01/runtime/...`
//! interface) with API Gateway HTTP API (v2) and REST API (v1) events.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    routing::{get, post},
};
use blog_graphql::{auth::Authenticator, domain::UserId};
use serde_json::{Value, json};
use tokio::{process::Command, sync::Notify};

use crate::helpers::{OPERATIONS, fresh_tables, table_args};

/// The Runtime API's side: events waiting to be handed out, and what came back.
#[derive(Default)]
struct Runtime {
    events: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    answers: Mutex<HashMap<String, (String, Value)>>,
    answered: Notify,
    init_error: Mutex<Option<Value>>,
}

type Shared = Arc<Runtime>;

async fn next(State(runtime): State<Shared>) -> (HeaderMap, Json<Value>) {
    loop {
        let arrived = runtime.arrived.notified();
        if let Some((id, event)) = runtime.events.lock().expect("events").pop_front() {
            let mut headers = HeaderMap::new();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_millis()
                + 30_000;
            let header = |text: String| HeaderValue::from_str(&text).expect("header");
            headers.insert("lambda-runtime-aws-request-id", header(id));
            headers.insert("lambda-runtime-deadline-ms", header(deadline.to_string()));
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                header("arn:aws:lambda:us-east-1:123456789012:function:blog".into()),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                header("Root=1-5e9f0c65-1de4d666d4dd26aced652b6c;Sampled=0".into()),
            );
            return (headers, Json(event));
        }
        arrived.await;
    }
}

async fn answer(runtime: Shared, id: String, kind: &str, body: Value) -> StatusCode {
    runtime
        .answers
        .lock()
        .expect("answers")
        .insert(id, (kind.to_owned(), body));
    runtime.answered.notify_waiters();
    StatusCode::ACCEPTED
}

/// A body the function posted: JSON, whatever content type it names.
fn parsed(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(runtime): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(runtime, id, "response", parsed(&body)).await
}

async fn error(State(runtime): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(runtime, id, "error", parsed(&body)).await
}

async fn init_error(State(runtime): State<Shared>, body: Bytes) -> StatusCode {
    *runtime.init_error.lock().expect("init") = Some(parsed(&body));
    runtime.answered.notify_waiters();
    StatusCode::ACCEPTED
}

impl Runtime {
    fn invoke(&self, id: &str, event: Value) {
        self.events
            .lock()
            .expect("events")
            .push_back((id.to_owned(), event));
        self.arrived.notify_waiters();
    }

    /// The function's answer to invocation `id`: its kind (`response` or `error`) and body.
    async fn answer(&self, id: &str) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let answered = self.answered.notified();
            if let Some(answer) = self.answers.lock().expect("answers").remove(id) {
                return answer;
            }
            if let Some(init) = self.init_error.lock().expect("init").clone() {
                panic!("the function failed to start: {init}");
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                panic!("no answer to invocation {id}");
            }
        }
    }
}

/// An API Gateway HTTP API (payload 2.0) event, as function URLs send them too.
fn v2(method: &str, path: &str, query: &str, headers: Value, body: Option<&Value>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "aaaaaaaaaa",
            "domainName": "aaaaaaaaaa.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "aaaaaaaaaa",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "1.2.3.4",
                "userAgent": "test"
            },
            "requestId": "v2-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    })
}

/// An API Gateway REST API (proxy, payload 1.0) event.
fn v1(method: &str, path: &str, headers: Value, body: Option<&Value>) -> Value {
    json!({
        "resource": "/graphql",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "abcdef",
            "stage": "prod",
            "requestId": "v1-request",
            "requestTimeEpoch": 1_795_000_000_000_i64,
            "identity": { "sourceIp": "1.2.3.4", "userAgent": "test" },
            "resourcePath": "/graphql",
            "httpMethod": method,
            "apiId": "bbbbbbbbbb",
            "path": format!("/prod{path}")
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    })
}

/// The GraphQL answer inside a function's response, with its HTTP status.
fn graphql_of(answer: &(String, Value)) -> (u64, Value) {
    let (kind, body) = answer;
    assert_eq!(kind, "response", "{body}");
    let status = body["statusCode"].as_u64().expect("a status");
    let text = body["body"].as_str().expect("a body");
    (status, serde_json::from_str(text).expect("a JSON body"))
}

#[tokio::test]
async fn the_lambda_function_answers_the_canonical_operations_from_api_gateway_events() {
    let (config, storage) = fresh_tables().await;
    blog_graphql::seed::seed(&storage).await.expect("demo data");
    let runtime: Shared = Arc::default();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(runtime.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let json_headers = json!({ "content-type": "application/json", "accept": "application/json" });
    let details = json!({ "query": OPERATIONS, "operationName": "PostDetails", "variables": { "id": "post-0001" } });
    // The first event waits before the process starts: the cold start is the time from
    // the process's start to its first answer.
    runtime.invoke(
        "1",
        v2("POST", "/graphql", "", json_headers.clone(), Some(&details)),
    );
    let settings = &config.storage;
    let started = Instant::now();
    let _function = Command::new(env!("CARGO_BIN_EXE_blog-graphql"))
        .arg("lambda")
        .args(table_args(settings))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "blog")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("JWT_SECRET", "a-secret-of-sixteen-bytes-at-least")
        .env("RUST_LOG", "warn")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_PROFILE")
        .kill_on_drop(true)
        .spawn()
        .expect("the function starts");
    let first = runtime.answer("1").await;
    let cold_start = started.elapsed();
    eprintln!("cold start, process start to first answer: {cold_start:?}");
    let (status, body) = graphql_of(&first);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["post"]["id"], json!("post-0001"), "{body}");
    assert_eq!(body["data"]["post"]["author"]["username"], json!("alice"));

    // REST API (v1): UserFeed.
    let feed = json!({ "query": OPERATIONS, "operationName": "UserFeed", "variables": { "id": "user-1" } });
    runtime.invoke(
        "2",
        v1("POST", "/graphql", json_headers.clone(), Some(&feed)),
    );
    let (status, body) = graphql_of(&runtime.answer("2").await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["username"], json!("alice"), "{body}");
    assert_eq!(
        body["data"]["user"]["posts"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{body}"
    );

    // A query over GET, from its query string.
    let query = "query=%7B%20users(first%3A%2050)%20%7B%20nodes%20%7B%20id%20%7D%20%7D%20%7D";
    runtime.invoke(
        "3",
        v2(
            "GET",
            "/graphql",
            query,
            json!({ "accept": "application/json" }),
            None,
        ),
    );
    let (status, body) = graphql_of(&runtime.answer("3").await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["users"]["nodes"].as_array().map(Vec::len),
        Some(3)
    );

    // A mutation with a bearer token (REST API), and the same with a forged one.
    let token = Authenticator::hs256(
        &"a-secret-of-sixteen-bytes-at-least"
            .parse()
            .expect("secret"),
    )
    .mint(
        &UserId::parse("user-2").expect("id"),
        Duration::from_secs(600),
    )
    .expect("a token");
    let add = json!({ "query": OPERATIONS, "operationName": "AddComment", "variables": { "postId": "post-0001", "content": "from Lambda" } });
    let mut with_token = json_headers.clone();
    with_token["authorization"] = json!(format!("Bearer {token}"));
    runtime.invoke("4", v1("POST", "/graphql", with_token, Some(&add)));
    let (status, body) = graphql_of(&runtime.answer("4").await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["addComment"]["author"]["username"],
        json!("bob"),
        "{body}"
    );
    assert_eq!(
        body["data"]["addComment"]["post"]["commentCount"],
        json!(4),
        "{body}"
    );
    let mut forged = json_headers.clone();
    forged["authorization"] = json!(format!("Bearer {token}x"));
    runtime.invoke("5", v2("POST", "/graphql", "", forged, Some(&add)));
    let (_, body) = graphql_of(&runtime.answer("5").await);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("UNAUTHENTICATED"),
        "{body}"
    );

    // Errors keep their codes and statuses: a document that does not parse (as
    // graphql-response+json, 400), and a subscription, which needs a long-running server.
    let graphql_response = json!({ "content-type": "application/json", "accept": "application/graphql-response+json" });
    runtime.invoke(
        "6",
        v2(
            "POST",
            "/graphql",
            "",
            graphql_response,
            Some(&json!({ "query": "{ post(id: " })),
        ),
    );
    let (status, body) = graphql_of(&runtime.answer("6").await);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("GRAPHQL_PARSE_FAILED")
    );
    let subscription = json!({ "query": "subscription { postAdded { id } }" });
    runtime.invoke(
        "7",
        v1("POST", "/graphql", json_headers, Some(&subscription)),
    );
    let (_, body) = graphql_of(&runtime.answer("7").await);
    let code = body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default();
    assert!(
        code == "BAD_USER_INPUT" || code == "SERVICE_UNAVAILABLE",
        "{body}"
    );
    assert!(
        cold_start < Duration::from_secs(10),
        "cold start {cold_start:?}"
    );
}
