//! The real clients themselves, run from `tests/clients/` against a live server: Chromium
//! in the playground, graphql-js introspecting, the `graphql-ws` client, Node's `fetch`
//! with oversized bodies, and tokens signed by `jose`. (What tools meet, checked from
//! Rust: `tools.rs`.)

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use serde_json::{Value, json};

use crate::{
    helpers::{SECRET, TestApp, fresh_tables, spawn_app, spawn_app_on},
    subscriptions::{live, live_servers},
    tokens::{provider, viewer},
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Installs the client tools once per run: the pinned npm packages of `tests/clients/`
/// and Chromium (`scripts/clients.sh install`, quick when they are there).
fn client_tools() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let output = Command::new(root().join("scripts/clients.sh"))
            .arg("install")
            .output()
            .expect("scripts/clients.sh runs");
        assert!(
            output.status.success(),
            "scripts/clients.sh install failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// Runs `node tests/clients/<script>` with `env`; fails the test with the script's own
/// account when it fails, and returns the figures it printed last.
async fn node(script: &str, env: &[(&str, String)]) -> Value {
    tokio::task::spawn_blocking(client_tools)
        .await
        .expect("client tools installed");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(root().join("tests/clients"))
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 4 minutes"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stderr}\n{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| panic!("{script} printed no figures: {stdout}"))
}

pub(crate) fn url_of(app: &TestApp) -> String {
    format!("{}/graphql", app.url)
}

/// A live server (subscriptions on) with the user and post the scripts use.
async fn live_app_with_a_post() -> TestApp {
    let app = live_servers(1, live()).await.remove(0);
    app.add_user("user-1", "alice").await;
    app.add_post("post-0001", "user-1", 0).await;
    app
}

#[tokio::test]
async fn graphql_js_introspects_with_every_option_and_rebuilds_schema_graphql() {
    let app = spawn_app().await;
    let figures = node(
        "introspection.mjs",
        &[
            ("GRAPHQL_URL", url_of(&app)),
            (
                "SCHEMA_FILE",
                root().join("schema.graphql").display().to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(figures["combinations"], 128, "{figures}");
}

#[tokio::test]
async fn the_graphql_ws_client_gets_one_error_message_for_a_refused_subscription() {
    let app = live_app_with_a_post().await;
    let figures = node(
        "graphql-ws-errors.mjs",
        &[
            ("GRAPHQL_URL", url_of(&app)),
            ("TOKEN", app.token("user-1")),
        ],
    )
    .await;
    assert_eq!(
        figures["errors"],
        json!({
            "validation": "GRAPHQL_VALIDATION_FAILED",
            "syntax": "GRAPHQL_PARSE_FAILED",
            "variables": "BAD_USER_INPUT",
            "cost": "QUERY_TOO_COMPLEX",
        })
    );
    assert_eq!(figures["event"], true);
}

#[tokio::test]
async fn tokens_signed_by_another_implementation_are_accepted() {
    let figures = node("tokens.mjs", &[("JWT_SECRET", SECRET.to_owned())]).await;
    let keys = figures["jwks"]["keys"].as_array().expect("keys").clone();
    let jwks = provider(keys).await;
    let (mut config, storage) = fresh_tables().await;
    config.jwks_url = Some(jwks.url.clone());
    let app = spawn_app_on(config, storage).await;
    app.add_user("user-1", "alice").await;
    let tokens = figures["tokens"].as_object().expect("tokens");
    assert_eq!(tokens.len(), 4, "{figures}");
    for (kind, token) in tokens {
        let (status, body) = viewer(&app, token.as_str().expect("a token")).await;
        assert_eq!(status, 200, "{kind}: {body}");
        assert_eq!(body["data"]["viewer"]["id"], "user-1", "{kind}: {body}");
    }
}

#[tokio::test]
async fn node_fetch_reads_the_413_of_every_oversized_body() {
    let app = spawn_app().await;
    let figures = node("oversized.mjs", &[("GRAPHQL_URL", url_of(&app))]).await;
    assert_eq!(figures["sent"], 100, "{figures}");
    assert_eq!(figures["status413"], 100, "{figures}");
    // And bodies streamed without a length, which only reading tells are too large.
    assert_eq!(figures["chunked"]["status413"], 20, "{figures}");
}

#[tokio::test]
async fn the_playground_works_in_a_browser_with_no_outside_network() {
    let app = live_app_with_a_post().await;
    let screenshot = root().join("target/playground.png");
    let figures = node(
        "playground.mjs",
        &[
            ("GRAPHQL_URL", url_of(&app)),
            ("TOKEN", app.token("user-1")),
            ("SCREENSHOT", screenshot.display().to_string()),
        ],
    )
    .await;
    for step in ["docs", "firstTab", "dialogs", "query", "subscription"] {
        assert_eq!(figures[step], true, "{step}: {figures}");
    }
    assert_eq!(figures["blocked"], json!([]), "{figures}");
    assert_eq!(figures["cspViolations"], 0, "{figures}");
}

#[tokio::test]
async fn the_relay_compiler_compiles_refetchable_and_two_way_paged_fragments() {
    // No server: Meta's compiler checks the documents of tests/clients/relay/ against the
    // schema file, which needs Node and Query.node for @refetchable.
    let schema = root().join("schema.graphql").display().to_string();
    let figures = node("relay.mjs", &[("SCHEMA_FILE", schema)]).await;
    assert_eq!(figures["artifacts"], 12, "{figures}");
    assert_eq!(
        figures["bidirectional"],
        json!(["PostComments_post", "UserPosts_user"]),
        "{figures}"
    );
}
