//! No request may crash or freeze the server, on any transport: documents that would
//! overflow the parser's stack, spreads that would pin a worker, slow clients, cleartext
//! HTTP/2, and the headers and limits every answer carries. (WebSockets: `websockets.rs`.)

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use blog_graphql::storage::CostRecorder;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    helpers::{TestApp, fresh_tables, spawn_app_on},
    ws_client::Client,
};

/// How a test sends one GraphQL document.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Via {
    Get,
    Post,
    WebSocket,
}

pub(crate) const TRANSPORTS: [Via; 3] = [Via::Get, Via::Post, Via::WebSocket];

/// Sends `query` over `via` and returns the GraphQL errors of the answer (an empty list
/// when it has none).
pub(crate) async fn errors_via(
    app: &TestApp,
    via: Via,
    query: &str,
    variables: Value,
) -> Vec<Value> {
    let url = format!("{}/graphql", app.url);
    let body: Value = match via {
        Via::Get => {
            let response = app
                .http
                .get(&url)
                .query(&[("query", query), ("variables", &variables.to_string())])
                .send()
                .await
                .expect("an answer");
            response.json().await.expect("json")
        }
        Via::Post => {
            let response = app
                .http
                .post(&url)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .expect("an answer");
            response.json().await.expect("json")
        }
        Via::WebSocket => {
            let mut client = Client::connect(app, None).await;
            client
                .send(json!({ "id": "1", "type": "subscribe",
                              "payload": { "query": query, "variables": variables } }))
                .await;
            let message = client
                .receive(Duration::from_secs(5))
                .await
                .expect("an answer");
            match message["type"].as_str() {
                Some("error") => json!({ "errors": message["payload"] }),
                Some("next") => message["payload"].clone(),
                _ => panic!("{message}"),
            }
        }
    };
    body["errors"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn codes_of(errors: &[Value]) -> Vec<&str> {
    errors
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>"))
        .collect()
}

/// The server answers its liveness check: the process is alive and not pinned.
pub(crate) async fn alive(app: &TestApp) {
    let started = Instant::now();
    let health = app
        .http
        .get(format!("{}/health", app.url))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn deep_documents_are_refused_before_parsing_on_every_transport() {
    let app = crate::helpers::spawn_app().await;
    let lists = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let objects = |n: usize| format!("{}1{}", "{a:".repeat(n), "}".repeat(n));
    // 2,000 levels overflowed the parser's stack and aborted the process.
    let documents = [
        ("lists", format!("{{ user(id: {}) {{ id }} }}", lists(2000))),
        (
            "objects",
            format!("{{ user(id: {}) {{ id }} }}", objects(2000)),
        ),
        // Comments end at \r too: the brackets after one are read.
        (
            "comment ended by CR",
            format!("{{ user(id: #\r{}) {{ id }} }}", lists(2000)),
        ),
        (
            "comment ended by CRLF",
            format!("{{ user(id: #\r\n{}) {{ id }} }}", lists(2000)),
        ),
        // With no closing `"""`, the parser reads `""` then a string, then the lists.
        (
            "unterminated block string",
            format!("{{ user(id: [\"\"\"x\" {}]) {{ id }} }}", lists(2000)),
        ),
        (
            "list types",
            format!(
                "query($a: {}Int{}) {{ viewer {{ id }} }}",
                "[".repeat(2000),
                "]".repeat(2000)
            ),
        ),
    ];
    for (name, document) in &documents {
        for via in TRANSPORTS {
            let errors = errors_via(&app, via, document, json!({})).await;
            assert_eq!(
                codes_of(&errors),
                ["QUERY_TOO_COMPLEX"],
                "{name} over {via:?}: {errors:?}"
            );
        }
    }
    alive(&app).await;
}

#[tokio::test]
async fn fragment_spreads_pin_nothing_in_production() {
    let (mut config, storage) = fresh_tables().await;
    config.http.production = true;
    let app = spawn_app_on(config, storage).await;
    for spreads in [4, 8, 16] {
        let query = format!(
            "{{ ...F }} fragment F on Query {{ {} }}",
            "...F ".repeat(spreads)
        );
        for via in TRANSPORTS {
            let started = Instant::now();
            let errors = errors_via(&app, via, &query, json!({})).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{spreads} over {via:?}"
            );
            assert_eq!(
                codes_of(&errors),
                ["GRAPHQL_VALIDATION_FAILED"],
                "{errors:?}"
            );
        }
    }
    // Introspection hidden behind a fragment is still introspection.
    let errors = errors_via(
        &app,
        Via::Post,
        "{ ...I } fragment I on Query { __schema { types { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        codes_of(&errors),
        ["GRAPHQL_VALIDATION_FAILED"],
        "{errors:?}"
    );
    alive(&app).await;
}

/// Opens a connection and sends `head`, then trickles `drip` one byte every 100 ms,
/// until the server closes the connection; returns what the server sent.
async fn trickle(port: u16, head: &str, drip: &'static [u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    stream.write_all(head.as_bytes()).await.expect("head");
    let (mut reader, mut writer) = stream.into_split();
    let dripping = tokio::spawn(async move {
        if drip.is_empty() {
            // Hold the connection open, sending nothing more.
            std::future::pending::<()>().await;
        }
        for byte in drip.iter().cycle() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer)).await;
    dripping.abort();
    assert!(read.is_ok(), "the server never let go of the connection");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn port_of(app: &TestApp) -> u16 {
    app.url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

#[tokio::test]
async fn slow_clients_hold_no_permit_and_are_cut_off() {
    let (mut config, storage) = fresh_tables().await;
    config.http.max_concurrent_requests = 2;
    config.http.body_timeout = Duration::from_secs(1);
    config.http.header_timeout = Duration::from_secs(1);
    let app = spawn_app_on(config, storage).await;
    app.add_user("u1", "alice").await;
    let port = port_of(&app);

    // Six connections trickle their bodies, three times the permits there are.
    let body_head = "POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                     Content-Length: 1000\r\n\r\n{\"query\":\"";
    let slow_bodies: Vec<_> = (0..6)
        .map(|_| tokio::spawn(trickle(port, body_head, b" ")))
        .collect();
    let slow_headers = tokio::spawn(trickle(
        port,
        "POST /graphql HTTP/1.1\r\n",
        b"X-Slow: yes\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Meanwhile everyone else is served.
    let body = app
        .query("{ user(id: \"u1\") { username } }", json!({}))
        .await;
    assert_eq!(body, json!({ "data": { "user": { "username": "alice" } } }));

    // And the slow ones are cut off: bodies with 408, headers by closing.
    for slow in slow_bodies {
        let (answer, took) = slow.await.expect("joined");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("BAD_USER_INPUT"), "{answer}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    let (answer, took) = slow_headers.await.expect("joined");
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // An idle kept-alive connection is closed after the header timeout too.
    let (answer, took) = trickle(port, "GET /health HTTP/1.1\r\nHost: test\r\n\r\n", b"").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn http2_cleartext_is_not_served() {
    let app = crate::helpers::spawn_app().await;
    let mut stream = TcpStream::connect(("127.0.0.1", port_of(&app)))
        .await
        .expect("connects");
    // The HTTP/2 connection preface, then an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("sent");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    // An HTTP/2 server answers with its own SETTINGS frame (type 4); we do not.
    assert!(!(answer.len() >= 9 && answer[3] == 4), "{answer:?}");
    alive(&app).await;
}

#[tokio::test]
async fn readiness_is_checked_at_most_once_per_period() {
    let (config, storage) = fresh_tables().await;
    let recorder = Arc::new(CostRecorder::default());
    let app = spawn_app_on(config, storage.with_cost(recorder.clone())).await;
    let ready = || async {
        app.http
            .get(format!("{}/ready", app.url))
            .send()
            .await
            .expect("sent")
            .status()
    };
    let statuses = futures::future::join_all((0..50).map(|_| ready())).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for _ in 0..10 {
        assert_eq!(ready().await, 200);
    }
    let checks = recorder.report().by_operation.get("DescribeTable").copied();
    assert_eq!(checks, Some(1), "60 calls, one DescribeTable");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = crate::helpers::spawn_app().await;
    let responses = [
        app.http
            .post(format!("{}/graphql", app.url))
            .json(&json!({ "query": "{ viewer { id } }" }))
            .send(),
        app.http
            .get(format!("{}/graphql", app.url))
            .header("accept", "text/html")
            .send(),
        app.http.get(format!("{}/health", app.url)).send(),
        app.http.get(format!("{}/nowhere", app.url)).send(),
        app.http
            .post(format!("{}/graphql", app.url))
            .body("x")
            .header("content-type", "application/json")
            .send(),
    ];
    for response in futures::future::join_all(responses).await {
        let response = response.expect("sent");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            header("x-content-type-options"),
            "nosniff",
            "{}",
            response.url()
        );
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    }
}

#[tokio::test]
async fn unused_variables_are_capped_on_every_transport() {
    let (mut config, storage) = fresh_tables().await;
    config.query.max_variables_bytes = 16 * 1024;
    let app = spawn_app_on(config, storage).await;
    let big = json!({ "unused": "x".repeat(20_000) });
    for via in TRANSPORTS {
        let errors = errors_via(&app, via, "{ viewer { id } }", big.clone()).await;
        assert_eq!(codes_of(&errors), ["BAD_USER_INPUT"], "{via:?}");
        let message = errors[0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("`variables`"), "{message}");
    }
    let small = json!({ "unused": "x".repeat(1_000) });
    for via in TRANSPORTS {
        assert!(
            errors_via(&app, via, "{ viewer { id } }", small.clone())
                .await
                .is_empty()
        );
    }
}
