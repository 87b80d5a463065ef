//! What GraphQL tools meet first, checked from Rust: the playground's files, served by the
//! binary alone; the SDL and the standard introspection query, and introspection past
//! what tools send; directives held to limits; request errors before anything runs;
//! bodies too large to read through. (The real clients themselves: `clients.rs`.)

use std::{process::Command, time::Duration};

use serde_json::{Value, json};

use crate::{
    clients::url_of,
    hardening::{TRANSPORTS, codes_of, errors_via},
    helpers::{TestApp, fresh_tables, spawn_app, spawn_app_on},
    ws_client::Client,
};

/// graphql-js's `getIntrospectionQuery()` with every option on (graphql 17, 9 `ofType`s).
const INTROSPECTION: &str = include_str!("introspection.graphql");

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.http.get(format!("{}{path}", app.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("sent")
}

/// The `src` and `href` attributes of a page.
fn references(page: &str) -> Vec<&str> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| page.match_indices(attribute).map(|(at, a)| at + a.len()))
        .map(|start| {
            let end = page[start..].find('"').expect("a closing quote");
            &page[start..start + end]
        })
        .collect()
}

/// Decompresses with the system's `gzip`, which is not the code that compressed it.
fn gunzip(compressed: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let compressed = compressed.to_vec();
    // Written from another thread: gzip's output must be read while it is fed.
    let writer = std::thread::spawn(move || stdin.write_all(&compressed));
    let output = child.wait_with_output().expect("gzip ends");
    writer.join().expect("writer").expect("written");
    assert!(output.status.success(), "not gzip");
    output.stdout
}

#[tokio::test]
async fn the_playground_loads_nothing_from_outside_the_server() {
    let app = spawn_app().await;
    let page = get(&app, "/graphql", &[("accept", "text/html")]).await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "connect-src 'self';",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("http"), "{policy}");
    // Style elements need the nonce of this answer, which the page hands to GraphiQL.
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a style nonce")
        .to_owned();
    assert!(nonce.len() >= 32, "{policy}");
    let page = page.text().await.expect("text");
    assert!(page.contains(&format!("content=\"{nonce}\"")), "{page}");
    let again = get(&app, "/graphql", &[("accept", "text/html")]).await;
    let other = again.headers()["content-security-policy"]
        .to_str()
        .expect("text");
    assert!(!other.contains(&nonce), "a new nonce for every page");
    let loaded = references(&page);
    assert!(loaded.len() >= 7, "{loaded:?}");
    for reference in loaded {
        if reference.starts_with("data:") {
            continue;
        }
        // Relative to the page, so that it works under a path prefix too.
        assert!(reference.starts_with("graphql/playground/"), "{reference}");
        let path = format!("/{reference}");
        let path = path.as_str();
        let plain = get(&app, path, &[]).await;
        assert_eq!(plain.status(), 200, "{path}");
        let media = plain.headers()["content-type"]
            .to_str()
            .expect("text")
            .to_owned();
        let expected = if path.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(media.starts_with(expected), "{path}: {media}");
        let bytes = plain.bytes().await.expect("bytes");
        assert!(bytes.len() > 100, "{path}");
        // The vendored files are sent compressed to clients that take gzip.
        if path.contains('-') {
            let gzip = get(&app, path, &[("accept-encoding", "gzip")]).await;
            assert_eq!(gzip.headers()["content-encoding"], "gzip", "{path}");
            assert!(
                gzip.headers()["cache-control"]
                    .to_str()
                    .expect("text")
                    .contains("immutable")
            );
            let compressed = gzip.bytes().await.expect("bytes");
            assert!(compressed.len() < bytes.len(), "{path}");
            assert_eq!(
                gunzip(&compressed),
                bytes,
                "{path}: the gzip copy is the file"
            );
        }
    }
    // Only the files the page names.
    let stranger = get(&app, "/graphql/playground/..%2F..%2FCargo.toml", &[]).await;
    assert_eq!(stranger.status(), 404);
    assert_eq!(
        get(&app, "/graphql/playground/nope.js", &[]).await.status(),
        404
    );
}

#[tokio::test]
async fn the_schema_is_served_as_sdl_and_its_tools_introspect_it() {
    let app = spawn_app().await;
    let sdl = get(&app, "/graphql/schema.graphql", &[]).await;
    assert_eq!(sdl.status(), 200);
    let file = include_str!("../../schema.graphql");
    assert_eq!(sdl.text().await.expect("text"), file);
    for via in TRANSPORTS {
        let errors = errors_via(&app, via, INTROSPECTION, json!({})).await;
        assert!(errors.is_empty(), "{via:?}: {errors:?}");
    }
    let (body, cost) = app.run(INTROSPECTION, json!({}), None).await;
    // The schema is in memory: introspection costs DynamoDB nothing.
    assert_eq!(cost["requests"], 0, "{cost}");
    let types = body["data"]["__schema"]["types"].as_array().expect("types");
    let post = types
        .iter()
        .find(|t| t["name"] == "Post")
        .expect("Post is introspected");
    // `[Comment!]!`-style types unwrap through `ofType`.
    assert!(
        post["fields"].as_array().expect("fields").len() > 5,
        "{post}"
    );
}

#[tokio::test]
async fn introspection_past_what_tools_send_is_refused_on_every_transport() {
    let app = spawn_app().await;
    let aliases = (0..100)
        .map(|i| format!("s{i}: __schema {{ types {{ name }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let cases = [
        format!("{{ {aliases} }}"),
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
            .to_owned(),
        "{ __schema { a: types { name } b: types { name } } }".to_owned(),
    ];
    for via in TRANSPORTS {
        for query in &cases {
            let errors = errors_via(&app, via, query, json!({})).await;
            assert_eq!(
                codes_of(&errors),
                ["QUERY_TOO_COMPLEX"],
                "{via:?} {query:.60}"
            );
        }
    }
}

#[tokio::test]
async fn directives_are_limited_and_never_repeated_on_every_transport() {
    let app = spawn_app().await;
    let many = format!("{{ __typename {} }}", "@include(if: true) ".repeat(1000));
    let twice = "{ users(first: 1) @include(if: true) @include(if: true) { nodes { id } } }";
    for via in TRANSPORTS {
        let errors = errors_via(&app, via, &many, json!({})).await;
        assert_eq!(codes_of(&errors), ["QUERY_TOO_COMPLEX"], "{via:?}");
        let message = errors[0]["message"].as_str().expect("message");
        assert!(
            message.contains("1000 directives; the limit is 4"),
            "{message}"
        );
        let errors = errors_via(&app, via, twice, json!({})).await;
        assert_eq!(codes_of(&errors), ["GRAPHQL_VALIDATION_FAILED"], "{via:?}");
    }
    // Two different directives on one field are fine, and both apply.
    let (body, _) = app
        .run(
            "query($on: Boolean!) { \
             a: users(first: 1) @include(if: $on) @skip(if: false) { __typename } \
             b: users(first: 1) @include(if: $on) @skip(if: true) { __typename } }",
            json!({ "on": true }),
            None,
        )
        .await;
    assert!(body["data"]["a"].is_object(), "{body}");
    assert!(body["data"].get("b").is_none(), "{body}");
}

#[tokio::test]
async fn production_serves_no_playground_files_and_no_sdl() {
    let (mut config, storage) = fresh_tables().await;
    config.http.production = true;
    let app = spawn_app_on(config, storage).await;
    for path in [
        "/graphql/schema.graphql",
        "/graphql/playground/playground.js",
        "/graphql/playground/graphiql-4.1.2.min.js",
    ] {
        assert_eq!(get(&app, path, &[]).await.status(), 404, "{path}");
    }
    let errors: Vec<Value> =
        errors_via(&app, crate::hardening::Via::Post, INTROSPECTION, json!({})).await;
    assert_eq!(codes_of(&errors), ["GRAPHQL_VALIDATION_FAILED"]);
}

#[tokio::test]
async fn a_missing_variable_or_operation_is_a_request_error_on_every_transport() {
    let app = spawn_app().await;
    let missing = "query($id: ID!) { post(id: $id) { id } }";
    let too_big = "query($n: Int) { users(first: $n) { nodes { id } } }";
    let cases = [
        (missing, json!({})),
        (missing, json!({ "id": null })),
        (too_big, json!({ "n": 3_000_000_000_i64 })),
        (too_big, json!({ "n": -3_000_000_000_i64 })),
    ];
    for (query, variables) in &cases {
        for via in TRANSPORTS {
            let errors = errors_via(&app, via, query, variables.clone()).await;
            assert_eq!(codes_of(&errors), ["BAD_USER_INPUT"], "{via:?} {variables}");
        }
        // Over WebSocket, as one `error` message: nothing ran.
        let mut client = Client::connect(&app, None).await;
        client
            .send(json!({ "id": "1", "type": "subscribe",
                          "payload": { "query": query, "variables": variables } }))
            .await;
        let message = client
            .receive(Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(message["type"], "error", "{message}");
        assert_eq!(
            message["payload"][0]["extensions"]["code"],
            "BAD_USER_INPUT"
        );
    }
    // A default, or a nullable type, needs no value.
    let body = app
        .query(
            "query($id: ID! = \"nope\", $n: Int) { post(id: $id) { id } users(first: $n) { \
             nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body,
        json!({ "data": { "post": null, "users": { "nodes": [] } } })
    );
    // As the GraphQL-over-HTTP spec wants of a request error: 400, and no `data`.
    let response = app
        .http
        .post(url_of(&app))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": missing }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert!(body.get("data").is_none(), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("$id of type ID! is required")),
        "{body}"
    );
    // An operation name the document does not have, even when its one operation has none.
    let response = app
        .http
        .post(url_of(&app))
        .json(&json!({ "query": "subscription { postAdded { id } }", "operationName": "Feed" }))
        .send()
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("json");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no operation named \"Feed\""), "{body}");
}

/// Sends a request head on a raw connection, then waits for the answer without sending
/// a byte of the body; returns what the server wrote before closing (or within 5 s).
async fn answer_to_head(app: &TestApp, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
    assert!(
        read.await.is_ok(),
        "the server closed the connection within 5 s"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_too_large_to_read_through_is_refused_at_once() {
    let app = spawn_app().await;
    // Waiting for a go-ahead that does not come: 413 at once, and no `100 Continue`.
    let answer = answer_to_head(
        &app,
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    // Declaring more than is ever read through: 413 at once, and the connection ends.
    let answer = answer_to_head(
        &app,
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1000000000\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("BAD_USER_INPUT"), "{answer}");
}
