//! What ordinary GraphQL clients and tools meet first: the playground, served by the
//! binary alone; the standard introspection query and the SDL; directives held to limits.

use serde_json::{Value, json};

use crate::{
    hardening::{TRANSPORTS, codes_of, errors_via},
    helpers::{TestApp, fresh_tables, spawn_app, spawn_app_on},
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
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(
        !policy.contains("unsafe") && !policy.contains("http"),
        "{policy}"
    );
    let page = page.text().await.expect("text");
    let loaded = references(&page);
    assert!(loaded.len() >= 7, "{loaded:?}");
    for path in loaded {
        if path.starts_with("data:") {
            continue;
        }
        assert!(path.starts_with("/graphql/playground/"), "{path}");
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
            assert_eq!(&compressed[..2], &[0x1f, 0x8b], "{path}: gzip magic");
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
