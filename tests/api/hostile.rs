//! Hostile and broken clients: every case gets a quick, well-formed answer with the right
//! status and code, writes nothing, and the server answers normally afterwards.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, spawn_app};

enum Method {
    Get(Vec<(&'static str, String)>),
    Post(Vec<u8>),
    Put,
}

struct Case {
    name: &'static str,
    method: Method,
    content_type: Option<&'static str>,
    token: Option<String>,
    status: u16,
    /// The error code, or `None` when the answer has no error.
    code: Option<&'static str>,
}

fn post(name: &'static str, body: Value, status: u16, code: Option<&'static str>) -> Case {
    Case {
        name,
        method: Method::Post(body.to_string().into_bytes()),
        content_type: Some("application/json"),
        token: None,
        status,
        code,
    }
}

fn query(name: &'static str, query: String, status: u16, code: &'static str) -> Case {
    post(name, json!({ "query": query }), status, Some(code))
}

fn raw(
    name: &'static str,
    body: &[u8],
    content_type: Option<&'static str>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method: Method::Post(body.to_vec()),
        content_type,
        token: None,
        status,
        code: Some(code),
    }
}

fn with_token(mut case: Case, token: String) -> Case {
    case.token = Some(token);
    case
}

fn jwt(header: Value, claims: Value, signature: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{signature}",
        engine.encode(header.to_string()),
        engine.encode(claims.to_string())
    )
}

fn signed(algorithm: jsonwebtoken::Algorithm, secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn cases(app: &TestApp) -> Vec<Case> {
    let valid = app.token("u1");
    let create_post =
        "mutation($t: String!, $c: String!) { createPost(input: {title: $t, content: $c}) { id } }";
    let add_comment =
        "mutation($c: String!) { addComment(input: {postId: \"p1\", content: $c}) { id } }";
    let create_user = "mutation($n: String!) { createUser(input: {username: $n, email: \"x@example.com\"}) { id } }";
    let deep = format!(
        "{{ post(id: \"p1\") {{ {}id{} }} }}",
        "author { posts { nodes { ".repeat(8),
        " } } }".repeat(8)
    );
    let aliases: String = (0..5000)
        .map(|i| format!("a{i}: viewer {{ id }} "))
        .collect();
    let mut bomb = String::from("{ viewer { ...F30 } } fragment F0 on User { id }");
    for i in 1..=30 {
        bomb.push_str(&format!(
            " fragment F{i} on User {{ ...F{p} ...F{p} }}",
            p = i - 1
        ));
    }
    let operations: String = (0..30)
        .map(|i| format!("query Q{i} {{ viewer {{ id }} }} "))
        .collect();
    let mut chain = String::from("{ ...F0 }");
    for i in 0..100 {
        chain.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    chain.push_str(" fragment F100 on Query { viewer { id } }");
    let mut unknown_bomb = String::from("{ ...F40 } fragment F0 on Query { ...Missing }");
    for i in 1..=40 {
        unknown_bomb.push_str(&format!(
            " fragment F{i} on Query {{ ...F{p} ...F{p} }}",
            p = i - 1
        ));
    }
    let cursor = |number: &str| {
        // Version 1 of the cursor: `[1, list, parent, PostId, UserId, CreatedAt]`.
        let json = json!([1, "p", "u1", "p1", "u1", number]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    };
    let after = |number: &str| {
        format!(
            "{{ user(id: \"u1\") {{ posts(after: \"{}\") {{ nodes {{ id }} }} }} }}",
            cursor(number)
        )
    };
    let crit = {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(json!({ "alg": "HS256", "typ": "JWT", "crit": ["https://example.com/must-understand"] }).to_string());
        let claims = engine.encode(json!({ "sub": "u1", "exp": now() + 600 }).to_string());
        let input = format!("{header}.{claims}");
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            jsonwebtoken::Algorithm::HS256,
        )
        .expect("signed");
        format!("{input}.{signature}")
    };
    let introspection = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "fields { type { ofType { ".repeat(6),
        " } } }".repeat(6)
    );
    vec![
        // Transport: bodies, media types, methods.
        raw("malformed JSON", b"{\"query\": ", Some("application/json"), 400, "BAD_USER_INPUT"),
        raw("empty body", b"", Some("application/json"), 400, "BAD_USER_INPUT"),
        raw("JSON array (batch)", b"[{\"query\":\"{ viewer { id } }\"}]", Some("application/json"), 400, "BAD_USER_INPUT"),
        raw("JSON string", b"\"{ viewer { id } }\"", Some("application/json"), 400, "BAD_USER_INPUT"),
        raw("query is a number", b"{\"query\": 5}", Some("application/json"), 400, "BAD_USER_INPUT"),
        raw("variables is a list", b"{\"query\":\"{ viewer { id } }\",\"variables\":[1]}", Some("application/json"), 400, "BAD_USER_INPUT"),
        raw("invalid UTF-8", b"{\"query\":\"\xff\xfe\"}", Some("application/json"), 400, "BAD_USER_INPUT"),
        raw("text/plain", b"{\"query\":\"{ viewer { id } }\"}", Some("text/plain"), 415, "BAD_USER_INPUT"),
        raw("no content type", b"{\"query\":\"{ viewer { id } }\"}", None, 415, "BAD_USER_INPUT"),
        raw("form encoded", b"query=%7Bviewer%7Bid%7D%7D", Some("application/x-www-form-urlencoded"), 415, "BAD_USER_INPUT"),
        raw("oversized body", &vec![b' '; 2 * 1024 * 1024], Some("application/json"), 413, "BAD_USER_INPUT"),
        Case { name: "PUT", method: Method::Put, content_type: None, token: None, status: 405, code: None },
        Case {
            name: "mutation over GET",
            method: Method::Get(vec![("query", "mutation { createPost(input: {title: \"t\", content: \"c\"}) { id } }".into())]),
            content_type: None,
            token: Some(valid.clone()),
            status: 405,
            code: Some("BAD_USER_INPUT"),
        },
        Case {
            name: "GET with broken variables",
            method: Method::Get(vec![("query", "{ viewer { id } }".into()), ("variables", "{nope".into())]),
            content_type: None,
            token: None,
            status: 400,
            code: Some("BAD_USER_INPUT"),
        },
        Case { name: "GET without a query", method: Method::Get(vec![]), content_type: None, token: None, status: 400, code: Some("BAD_USER_INPUT") },
        // GraphQL documents.
        query("invalid syntax", "{ users { nodes { id }".into(), 400, "GRAPHQL_PARSE_FAILED"),
        query("empty document", String::new(), 400, "GRAPHQL_PARSE_FAILED"),
        query("unknown field", "{ nope }".into(), 400, "GRAPHQL_VALIDATION_FAILED"),
        query("unknown argument", "{ users(top: 5) { nodes { id } } }".into(), 400, "GRAPHQL_VALIDATION_FAILED"),
        query("missing selection", "{ users }".into(), 400, "GRAPHQL_VALIDATION_FAILED"),
        query("undeclared variable", "{ user(id: $id) { id } }".into(), 400, "GRAPHQL_VALIDATION_FAILED"),
        query("fragment cycle", "{ viewer { ...A } } fragment A on User { ...B } fragment B on User { ...A }".into(), 400, "GRAPHQL_VALIDATION_FAILED"),
        query("Int overflow", "{ users(first: 99999999999) { nodes { id } } }".into(), 400, "BAD_USER_INPUT"),
        with_token(query("Int overflow in an input", "mutation { updatePost(id: \"p1\", input: {title: \"t\", expectedVersion: 99999999999}) { id } }".into(), 400, "BAD_USER_INPUT"), valid.clone()),
        post("Int overflow in a variable's default", json!({ "query": "query($n: Int = 3000000000) { users(first: $n) { nodes { id } } }" }), 400, Some("BAD_USER_INPUT")),
        with_token(post("Int overflow beside a variable", json!({ "query": "mutation($t: String!) { updatePost(id: \"p1\", input: {title: $t, expectedVersion: 99999999999}) { id } }", "variables": { "t": "x" } }), 400, Some("BAD_USER_INPUT")), valid.clone()),
        with_token(post("Int overflow in an input variable", json!({ "query": "mutation($i: UpdatePostInput!) { updatePost(id: \"p1\", input: $i) { id } }", "variables": { "i": { "title": "t", "expectedVersion": 99_999_999_999_i64 } } }), 400, Some("BAD_USER_INPUT")), valid.clone()),
        post("wrong variable type", json!({ "query": "query($f: Int) { users(first: $f) { nodes { id } } }", "variables": { "f": "ten" } }), 400, Some("GRAPHQL_VALIDATION_FAILED")),
        post("missing required variable", json!({ "query": "query($id: ID!) { user(id: $id) { id } }" }), 400, Some("BAD_USER_INPUT")),
        post("unknown operation name", json!({ "query": "query A { viewer { id } }", "operationName": "B" }), 400, Some("BAD_USER_INPUT")),
        // Limits.
        query("very deep query", deep, 400, "QUERY_TOO_COMPLEX"),
        query("5000 aliases", format!("{{ {aliases} }}"), 400, "QUERY_TOO_COMPLEX"),
        query("fragment bomb", bomb, 400, "QUERY_TOO_COMPLEX"),
        query("deeply nested list argument", format!("{{ user(id: {}1{}) {{ id }} }}", "[".repeat(30_000), "]".repeat(30_000)), 400, "QUERY_TOO_COMPLEX"),
        query("costly nested connections", "{ users(first: 100) { nodes { posts(first: 100) { nodes { comments(first: 100) { nodes { id } } } } } } }".into(), 400, "QUERY_TOO_COMPLEX"),
        query("30 operations", operations, 400, "QUERY_TOO_COMPLEX"),
        // 20 a page by default, but execution takes the variable's default: 100.
        query("a costly variable default", "query($n: Int = 100) { users(first: $n) { nodes { posts(first: $n) { nodes { id } } } } }".into(), 400, "QUERY_TOO_COMPLEX"),
        query("a chain of 100 fragments", chain, 400, "QUERY_TOO_COMPLEX"),
        query("spreads doubling over an unknown fragment", unknown_bomb, 400, "GRAPHQL_VALIDATION_FAILED"),
        query("97 aliases of content on a page of 100", format!("{{ user(id: \"u1\") {{ posts(first: 100) {{ nodes {{ {} }} }} }} }}", (0..97).map(|i| format!("c{i}: content ")).collect::<String>()), 400, "QUERY_TOO_COMPLEX"),
        query("document over 100 KB", format!("{{ viewer {{ id }} }} # {}", "x".repeat(120_000)), 400, "QUERY_TOO_COMPLEX"),
        query("deep introspection", introspection, 400, "QUERY_TOO_COMPLEX"),
        // Inputs.
        query("first below 0", "{ users(first: -1) { nodes { id } } }".into(), 200, "BAD_USER_INPUT"),
        query("first above 100", "{ users(first: 101) { nodes { id } } }".into(), 200, "BAD_USER_INPUT"),
        query("forged cursor", "{ users(after: \"eyJsIjoidXNlcnMifQ\") { nodes { id } } }".into(), 200, "BAD_USER_INPUT"),
        query("cursor with NaN", after("NaN"), 200, "BAD_USER_INPUT"),
        query("cursor with inf", after("inf"), 200, "BAD_USER_INPUT"),
        query("cursor with 1e200", after("1e200"), 200, "BAD_USER_INPUT"),
        query("id with a NUL", "{ user(id: \"a\\u0000b\") { id } }".into(), 200, "BAD_USER_INPUT"),
        query("huge id", format!("{{ post(id: \"{}\") {{ id }} }}", "p".repeat(10_000)), 200, "BAD_USER_INPUT"),
        with_token(post("post body over DynamoDB's item size", json!({ "query": create_post, "variables": { "t": "t", "c": "x".repeat(500_000) } }), 400, Some("BAD_USER_INPUT")), valid.clone()),
        with_token(post("comment over 8 KiB", json!({ "query": add_comment, "variables": { "c": "é".repeat(5000) } }), 200, Some("BAD_USER_INPUT")), valid.clone()),
        with_token(post("blank title", json!({ "query": create_post, "variables": { "t": " \t\n", "c": "c" } }), 200, Some("BAD_USER_INPUT")), valid.clone()),
        with_token(post("username with a zero-width joiner", json!({ "query": create_user, "variables": { "n": "al\u{200d}ice" } }), 200, Some("BAD_USER_INPUT")), app.token("u9")),
        with_token(post("username with a Cyrillic a", json!({ "query": create_user, "variables": { "n": "\u{430}lice" } }), 200, Some("BAD_USER_INPUT")), app.token("u9")),
        with_token(post("full-width username", json!({ "query": create_user, "variables": { "n": "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}" } }), 200, Some("BAD_USER_INPUT")), app.token("u9")),
        with_token(post("username with a right-to-left override", json!({ "query": create_user, "variables": { "n": "\u{202e}ecila" } }), 200, Some("BAD_USER_INPUT")), app.token("u9")),
        with_token(post("comment on a missing post", json!({ "query": "mutation { addComment(input: {postId: \"nope\", content: \"hi\"}) { id } }" }), 200, Some("NOT_FOUND")), valid.clone()),
        with_token(post("someone else's post", json!({ "query": "mutation { deletePost(id: \"p1\") }" }), 200, Some("FORBIDDEN")), app.token("u2")),
        // Tokens.
        post("mutation without a token", json!({ "query": create_user, "variables": { "n": "mallory" } }), 200, Some("UNAUTHENTICATED")),
        with_token(post("token signed with another secret", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")),
            signed(jsonwebtoken::Algorithm::HS256, "not-the-server-secret-1234", json!({ "sub": "u1", "exp": now() + 600 }))),
        with_token(post("alg none", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")),
            jwt(json!({ "alg": "none", "typ": "JWT" }), json!({ "sub": "u1", "exp": now() + 600 }), "")),
        with_token(post("expired token", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")),
            signed(jsonwebtoken::Algorithm::HS256, SECRET, json!({ "sub": "u1", "exp": now() - 3600 }))),
        with_token(post("HS512 with the right secret", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")),
            signed(jsonwebtoken::Algorithm::HS512, SECRET, json!({ "sub": "u1", "exp": now() + 600 }))),
        with_token(post("token without exp", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")),
            signed(jsonwebtoken::Algorithm::HS256, SECRET, json!({ "sub": "u1" }))),
        with_token(post("token with a crit header", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")), crit),
        with_token(post("garbage token", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")), "abc.def.ghi".into()),
        with_token(post("token header that is not JSON", json!({ "query": "{ viewer { id } }" }), 401, Some("UNAUTHENTICATED")), format!("{}.e30.x", "A".repeat(64))),
        // Unknown but harmless.
        post("an emoji id is just unknown", json!({ "query": "{ user(id: \"🦀\") { id } }" }), 200, None),
    ]
}

async fn send(app: &TestApp, case: &Case) -> (u16, Value) {
    let url = format!("{}/graphql", app.url);
    let mut request = match &case.method {
        Method::Get(params) => app.http.get(&url).query(params),
        Method::Post(body) => app.http.post(&url).body(body.clone()),
        Method::Put => app.http.put(&url).body("{}"),
    };
    request = request.header("accept", "application/graphql-response+json");
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(token) = &case.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn snapshot(app: &TestApp) -> Vec<usize> {
    let mut sizes = Vec::new();
    for table in ["users", "posts", "comments"] {
        sizes.push(app.scan(table).await.len());
    }
    sizes
}

#[tokio::test]
async fn hostile_requests_get_quick_clean_errors_and_write_nothing() {
    let app = spawn_app().await;
    app.add_user("u1", "alice").await;
    app.add_user("u2", "bob").await;
    app.add_post("p1", "u1", 0).await;
    let before = snapshot(&app).await;
    let cases = cases(&app);
    assert!(cases.len() >= 40, "{} cases", cases.len());

    for case in &cases {
        let started = Instant::now();
        let (status, body) = send(&app, case).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(1),
            "{}: took {elapsed:?}",
            case.name
        );
        assert_eq!(status, case.status, "{}: {body}", case.name);
        let code = body["errors"][0]["extensions"]["code"].as_str();
        assert_eq!(code, case.code, "{}: {body}", case.name);
        let text = body.to_string();
        for leak in [
            "DynamoDB", "dynamodb", "aws", "blog-", "Error {", "panicked", "src/", "struct ",
            "Request",
        ] {
            assert!(!text.contains(leak), "{} leaks {leak:?}: {text}", case.name);
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing was written");

    // And the server still answers a normal query.
    let body = app
        .query("{ post(id: \"p1\") { id author { username } } }", json!({}))
        .await;
    assert_eq!(
        body,
        json!({ "data": { "post": { "id": "p1", "author": { "username": "alice" } } } })
    );
}
