//! `GET /metrics`: what the canonical operations must add to the counters, scraped from a
//! server running as its own process (the metrics recorder is the process's), and the
//! scrape checked by Prometheus's own `promtool check metrics`.

use std::{collections::HashMap, process::Stdio, time::Duration};

use blog_graphql::{auth::Authenticator, domain::UserId};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::{
    helpers::OPERATIONS,
    logs::{http, serve_with_tables},
};

/// Every sample of a scrape, by its series (`name{labels}`), as rendered.
fn samples(scrape: &str) -> HashMap<String, f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(port: u16) -> String {
    let response = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("a scrape");
    assert!(response.status().is_success());
    let kind = response.headers()["content-type"].to_str().expect("text");
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.expect("text")
}

async fn send(port: u16, body: Value, token: Option<&str>) -> Value {
    let mut request = http()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON")
}

/// How much each of `series` grew between two scrapes.
fn growth(before: &str, after: &str, series: &[&str]) -> Vec<(String, f64)> {
    let (before, after) = (samples(before), samples(after));
    series
        .iter()
        .map(|series| {
            let grown = after.get(*series).copied().unwrap_or(0.0)
                - before.get(*series).copied().unwrap_or(0.0);
            ((*series).to_owned(), grown)
        })
        .collect()
}

#[tokio::test]
async fn the_canonical_operations_add_what_they_must_and_promtool_accepts_the_scrape() {
    let (_child, port, storage) = serve_with_tables(None, &[]).await;
    blog_graphql::seed::seed(&storage).await.expect("demo data");
    let secret = "a-secret-of-sixteen-bytes-at-least"
        .parse()
        .expect("secret");
    let token = Authenticator::hs256(&secret)
        .mint(
            &UserId::parse("user-2").expect("id"),
            Duration::from_secs(600),
        )
        .expect("a token");

    let before = scrape(port).await;
    let details = send(
        port,
        json!({ "query": OPERATIONS, "operationName": "PostDetails", "variables": { "id": "post-0001" } }),
        None,
    )
    .await;
    assert!(details.get("errors").is_none(), "{details}");
    let after_details = scrape(port).await;
    // The post, its author, the comments page, the comments' authors: 4 requests.
    assert_eq!(
        growth(
            &before,
            &after_details,
            &[
                r#"graphql_operations_total{operation="PostDetails",type="query",outcome="ok"}"#,
                r#"graphql_operation_duration_seconds_count{operation="PostDetails",type="query"}"#,
                r#"dynamodb_requests_total{operation="BatchGetItem",table="posts"}"#,
                r#"dynamodb_requests_total{operation="BatchGetItem",table="users"}"#,
                r#"dynamodb_requests_total{operation="Query",table="comments"}"#,
                r#"dataloader_batch_size_count{loader="users"}"#,
                r#"dataloader_batch_size_count{loader="post_comments"}"#,
            ],
        ),
        [
            (
                r#"graphql_operations_total{operation="PostDetails",type="query",outcome="ok"}"#
                    .to_owned(),
                1.0
            ),
            (
                r#"graphql_operation_duration_seconds_count{operation="PostDetails",type="query"}"#
                    .to_owned(),
                1.0
            ),
            (
                r#"dynamodb_requests_total{operation="BatchGetItem",table="posts"}"#.to_owned(),
                1.0
            ),
            (
                r#"dynamodb_requests_total{operation="BatchGetItem",table="users"}"#.to_owned(),
                2.0
            ),
            (
                r#"dynamodb_requests_total{operation="Query",table="comments"}"#.to_owned(),
                1.0
            ),
            (
                r#"dataloader_batch_size_count{loader="users"}"#.to_owned(),
                2.0
            ),
            (
                r#"dataloader_batch_size_count{loader="post_comments"}"#.to_owned(),
                1.0
            ),
        ]
    );

    // A comment: one transaction over three tables; an anonymous query; a document that
    // does not parse; an operation name nobody declared.
    let added = send(
        port,
        json!({ "query": OPERATIONS, "operationName": "AddComment", "variables": { "postId": "post-0001", "content": "metrics" } }),
        Some(&token),
    )
    .await;
    assert!(added.get("errors").is_none(), "{added}");
    send(
        port,
        json!({ "query": "{ post(id: \"post-0002\") { id } }" }),
        None,
    )
    .await;
    send(port, json!({ "query": "{ post(id: " }), None).await;
    send(port, json!({ "query": "query Nope { nope }" }), None).await;
    let after = scrape(port).await;
    let grown: HashMap<String, f64> = growth(
        &after_details,
        &after,
        &[
            r#"graphql_operations_total{operation="AddComment",type="mutation",outcome="ok"}"#,
            r#"dynamodb_requests_total{operation="TransactWriteItems",table="several"}"#,
            r#"graphql_operations_total{operation="other",type="query",outcome="ok"}"#,
            r#"graphql_operations_total{operation="other",type="unknown",outcome="refused"}"#,
            r#"graphql_errors_total{code="GRAPHQL_PARSE_FAILED"}"#,
            r#"graphql_operations_total{operation="Nope",type="query",outcome="error"}"#,
            r#"graphql_errors_total{code="GRAPHQL_VALIDATION_FAILED"}"#,
        ],
    )
    .into_iter()
    .collect();
    for (series, value) in &grown {
        assert_eq!(*value, 1.0, "{series} grew by {value}:\n{after}");
    }
    let samples = samples(&after);
    assert!(
        samples["dynamodb_consumed_capacity_milliunits_total{operation=\"TransactWriteItems\",table=\"comments\"}"]
            > 0.0,
        "{after}"
    );
    for absent in ["websocket_connections", "graphql_subscriptions"] {
        assert!(
            samples.get(absent).is_none_or(|open| *open == 0.0),
            "{absent}: {after}"
        );
    }

    // Prometheus's own check of the exposition format and its naming rules.
    let install =
        tokio::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/promtool.sh"))
            .arg("install")
            .status()
            .await
            .expect("scripts/promtool.sh runs");
    assert!(install.success(), "promtool could not be installed");
    let mut check = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = check.stdin.take().expect("stdin");
    stdin.write_all(after.as_bytes()).await.expect("written");
    drop(stdin);
    let checked = check.wait_with_output().await.expect("promtool ends");
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}\n{after}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
