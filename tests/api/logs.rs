//! The server's logs, as an operator reads them from the process: one JSON object a line
//! carrying the request's id under `LOG_FORMAT=json`, and no colour codes in a file or a pipe.

use std::{process::Stdio, time::Duration};

use blog_graphql::storage::Storage;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::helpers::{free_port, fresh_tables, table_args};

pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

/// `blog-graphql serve` as its own process on a test's tables, its standard error piped,
/// answering on the returned port.
async fn serve(log_format: Option<&str>) -> (Child, u16) {
    let (child, port, _storage) = serve_with_tables(log_format, &[]).await;
    (child, port)
}

/// The same, with the storage of its tables, for the test to write to.
pub(crate) async fn serve_with_tables(
    log_format: Option<&str>,
    environment: &[(&str, &str)],
) -> (Child, u16, Storage) {
    let (config, storage) = fresh_tables().await;
    let settings = config.storage;
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_blog-graphql"));
    command
        .arg("serve")
        .args(table_args(&settings))
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("JWT_SECRET", "a-secret-of-sixteen-bytes-at-least")
        .env("SUBSCRIPTIONS", "false")
        .env("RUST_LOG", "info,tower_http=debug")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match log_format {
        Some(format) => command.env("LOG_FORMAT", format),
        None => command.env_remove("LOG_FORMAT"),
    };
    command.envs(environment.iter().copied());
    let child = command.spawn().expect("the server starts");
    let client = http();
    for _ in 0..100 {
        let health = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return (child, port, storage);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not answer /health");
}

/// Sends a query, with `request_id` as `x-request-id` when given: the id it was answered
/// under.
async fn query(port: u16, request_id: Option<&str>) -> String {
    let mut request = http()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .json(&json!({ "query": "{ post(id: \"nope\") { id } }" }));
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    let response = request.send().await.expect("an answer");
    assert!(response.status().is_success());
    response
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .expect("the answer names its request")
        .to_owned()
}

/// The process's log lines until `done` holds for one, or a few seconds pass.
pub(crate) async fn lines_until(child: &mut Child, done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, stderr.next_line()).await {
        let finished = done(&line);
        lines.push(line);
        if finished {
            break;
        }
    }
    lines
}

#[tokio::test]
async fn json_log_lines_carry_the_request_id_which_the_answer_names() {
    let (mut child, port) = serve(Some("json")).await;
    assert_eq!(query(port, Some("order-4711")).await, "order-4711");
    let made = query(port, None).await;
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "a new UUID: {made}");
    // An id that is not a plain token would go into every log line as it is: replaced.
    let replaced = query(port, Some("x path=/admin")).await;
    assert!(
        uuid::Uuid::parse_str(&replaced).is_ok(),
        "replaced: {replaced}"
    );
    let lines = lines_until(&mut child, |line| line.contains(&made)).await;
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let of = |id: &str| {
        parsed
            .iter()
            .filter(|line| line["span"]["request_id"] == json!(id))
            .count()
    };
    assert!(of("order-4711") >= 1, "{lines:#?}");
    assert!(of(&made) >= 1, "{lines:#?}");
}

#[tokio::test]
async fn text_logs_have_no_colour_codes_off_a_terminal() {
    let (mut child, port) = serve(None).await;
    let id = query(port, None).await;
    let lines = lines_until(&mut child, |line| line.contains(&id)).await;
    assert!(
        lines.iter().any(|line| line.contains(&id)),
        "the request's line: {lines:#?}"
    );
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "an escape code in {line:?}");
    }
}
