//! OpenTelemetry traces: a server run as its own process, with the standard variables
//! pointing at an OTLP/HTTP receiver of the test's own, continues an incoming W3C
//! `traceparent` through its request, its operation, its DataLoader batches and each
//! DynamoDB call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use serde_json::{Value, json};

use crate::{
    helpers::OPERATIONS,
    logs::{http, lines_until, serve_with_tables},
};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<Value>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    if let Ok(body) = serde_json::from_slice::<Value>(&body) {
        received.lock().expect("received").push(body);
    }
    "{}"
}

/// Every span received, flattened.
fn spans(received: &Received) -> Vec<Value> {
    received
        .lock()
        .expect("received")
        .iter()
        .flat_map(|body| {
            body["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|resource| {
            resource["scopeSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|scope| scope["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn attribute(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .and_then(|attributes| attributes.iter().find(|a| a["key"] == key))
        .map(|a| {
            let value = &a["value"];
            value
                .get("stringValue")
                .or_else(|| value.get("intValue"))
                .or_else(|| value.get("doubleValue"))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn post_details_is_one_trace_from_the_callers_span_down_to_each_dynamodb_call() {
    let received: Received = Arc::default();
    let receiver = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let environment = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_SERVICE_NAME", "blog-graphql-test"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let (mut child, port, storage) = serve_with_tables(Some("json"), &environment).await;
    blog_graphql::seed::seed(&storage).await.expect("demo data");

    let response = http()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
        .json(&json!({ "query": OPERATIONS, "operationName": "PostDetails", "variables": { "id": "post-0001" } }))
        .send()
        .await
        .expect("an answer");
    let body: Value = response.json().await.expect("JSON");
    assert!(body.get("errors").is_none(), "{body}");

    // Batches leave every 100 ms: wait for the trace's DynamoDB spans.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let trace = loop {
        let trace: Vec<Value> = spans(&received)
            .into_iter()
            .filter(|span| span["traceId"] == TRACE)
            .collect();
        let dynamodb = trace
            .iter()
            .filter(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("DynamoDB "))
            })
            .count();
        let request_ended = trace.iter().any(|s| s["parentSpanId"] == CALLER);
        if dynamodb >= 4 && request_ended || tokio::time::Instant::now() > deadline {
            break trace;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_id: HashMap<&str, &Value> = trace
        .iter()
        .map(|span| (span["spanId"].as_str().unwrap_or_default(), span))
        .collect();
    let names: Vec<&str> = trace.iter().filter_map(|s| s["name"].as_str()).collect();

    // The request continues the caller's span.
    let requests: Vec<&&Value> = by_id
        .values()
        .filter(|s| s["parentSpanId"] == CALLER)
        .collect();
    assert_eq!(requests.len(), 1, "one span under the caller's: {names:?}");
    let request = requests[0];
    assert_eq!(request["name"], json!("POST /graphql"), "{request}");
    assert_eq!(request["kind"], json!(2), "a server span");
    // The operation, under the request.
    let operation = trace
        .iter()
        .find(|s| s["name"] == "query PostDetails")
        .unwrap_or_else(|| panic!("an operation span: {names:?}"));
    assert_eq!(operation["parentSpanId"], request["spanId"]);
    // Four DynamoDB calls, each under the operation (through its DataLoader batch).
    let under_operation = |span: &Value| {
        let mut parent = span["parentSpanId"].as_str().unwrap_or_default();
        while let Some(up) = by_id.get(parent) {
            if up["spanId"] == operation["spanId"] {
                return true;
            }
            parent = up["parentSpanId"].as_str().unwrap_or_default();
        }
        false
    };
    let mut calls: Vec<(String, String)> = trace
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("DynamoDB "))
        })
        .map(|s| {
            assert!(under_operation(s), "{s} is not under the operation");
            assert_eq!(s["kind"], json!(3), "a client span");
            let tables = attribute(s, "aws.dynamodb.table_names");
            assert!(
                tables
                    .as_str()
                    .is_some_and(|t| t.contains(&storage.tables().users)
                        || t.contains(&storage.tables().posts)
                        || t.contains(&storage.tables().comments)),
                "{s}"
            );
            assert!(!attribute(s, "aws.dynamodb.items").is_null(), "{s}");
            assert!(
                !attribute(s, "aws.dynamodb.consumed_capacity").is_null(),
                "{s}"
            );
            (
                attribute(s, "db.operation")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                tables
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('-')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("BatchGetItem".to_owned(), "posts".to_owned()),
            ("BatchGetItem".to_owned(), "users".to_owned()),
            ("BatchGetItem".to_owned(), "users".to_owned()),
            ("Query".to_owned(), "comments".to_owned()),
        ],
        "{names:?}"
    );
    let loaders: Vec<Value> = trace
        .iter()
        .filter(|s| s["name"] == "DataLoader batch")
        .map(|s| attribute(s, "loader"))
        .collect();
    assert!(loaders.contains(&json!("users")), "{loaders:?}");
    assert!(loaders.contains(&json!("post_comments")), "{loaders:?}");

    // The request's log lines carry the trace id.
    let lines = lines_until(&mut child, |line| line.contains(TRACE)).await;
    assert!(
        lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .any(|line| line["span"]["trace_id"] == TRACE),
        "{lines:#?}"
    );
}
