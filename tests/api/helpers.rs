//! The test harness: one DynamoDB Local for the whole run (started here when
//! `AWS_ENDPOINT_URL_DYNAMODB` is unset), and for each test its own tables and its own
//! server on a free port.

use std::{
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    types::AttributeValue,
};
use blog_graphql::{
    app::App,
    auth::Authenticator,
    config::{Config, LiveSettings, Secret, StorageSettings},
    domain::{Comment, CommentId, Post, PostId, User, UserId},
    storage::Storage,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub(crate) const SECRET: &str = "test-secret-0123456789";

struct DynamoDbLocal {
    endpoint: String,
    /// Holds the stdin pipe of the wrapper shell: when the test process exits, for
    /// whatever reason, the pipe closes and the wrapper stops Java. No orphans.
    _guard: Option<Child>,
}

static DYNAMODB: OnceLock<DynamoDbLocal> = OnceLock::new();

/// The endpoint of the run's DynamoDB Local.
pub(crate) fn dynamodb_endpoint() -> &'static str {
    &DYNAMODB.get_or_init(start_dynamodb_local).endpoint
}

fn start_dynamodb_local() -> DynamoDbLocal {
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        return DynamoDbLocal {
            endpoint,
            _guard: None,
        };
    }
    let port = free_port();
    DynamoDbLocal {
        endpoint: format!("http://127.0.0.1:{port}"),
        _guard: Some(spawn_dynamodb_local(port)),
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts a DynamoDB Local (in memory) on `port` and waits until it accepts connections.
/// The returned child is a shell whose stdin we hold: when the pipe closes (the child is
/// killed, dropped, or the test process exits), it stops Java.
pub(crate) fn spawn_dynamodb_local(port: u16) -> Child {
    static JAR_DIR: OnceLock<String> = OnceLock::new();
    let dir = JAR_DIR.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let output = Command::new(format!("{root}/scripts/dynamodb-local.sh"))
            .arg("jar-dir")
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/dynamodb-local.sh runs");
        assert!(output.status.success(), "installing DynamoDB Local failed");
        String::from_utf8(output.stdout)
            .expect("utf-8 path")
            .trim()
            .to_owned()
    });
    let script = format!(
        "java -Djava.library.path='{dir}/DynamoDBLocal_lib' -jar '{dir}/DynamoDBLocal.jar' \
         -sharedDb -inMemory -disableTelemetry -port {port} >/dev/null 2>&1 & \
         java=$!; read -r _; kill $java; wait $java"
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .spawn()
        .expect("java starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "DynamoDB Local did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Stops a DynamoDB Local started by [`spawn_dynamodb_local`] and waits until it is gone.
pub(crate) fn stop_dynamodb_local(mut child: Child, port: u16) {
    // Closing stdin makes the shell stop Java and wait for it.
    drop(child.stdin.take());
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "DynamoDB Local did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP server that accepts connections and never answers: a DynamoDB that hangs.
pub(crate) async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

/// A raw SDK client on the test DynamoDB, for what a test does behind the server's back.
pub(crate) fn raw_client() -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(dynamodb_endpoint())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .build();
    Client::from_conf(config)
}

pub(crate) struct TestApp {
    pub url: String,
    pub storage: Storage,
    pub http: reqwest::Client,
    pub auth: Authenticator,
}

/// Settings of a test: its own table prefix on the shared DynamoDB Local.
pub(crate) fn test_settings(endpoint: &str) -> StorageSettings {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    StorageSettings {
        app_name: format!("t{}", &unique[..12]),
        deployment_id: "test".into(),
        endpoint_url: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        local_credentials: true,
        timeouts: Default::default(),
    }
}

pub(crate) fn test_config(storage: StorageSettings) -> Config {
    Config {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        jwt_secret: Some(SECRET.parse::<Secret>().expect("long enough")),
        jwks_url: None,
        token_rules: Default::default(),
        storage,
        http: Default::default(),
        query: Default::default(),
        // Subscription tests turn the streams on; the others need no stream readers.
        live: LiveSettings {
            enabled: false,
            ..Default::default()
        },
    }
}

/// The flags that point a `blog-graphql` subprocess at a test's tables.
pub(crate) fn table_args(settings: &StorageSettings) -> [String; 8] {
    [
        "--app-name".into(),
        settings.app_name.clone(),
        "--deployment-id".into(),
        settings.deployment_id.clone(),
        "--endpoint-url".into(),
        settings.endpoint_url.clone().expect("local"),
        "--region".into(),
        settings.region.clone().expect("a region"),
    ]
}

/// New, empty tables of their own for a test: their configuration and storage.
pub(crate) async fn fresh_tables() -> (Config, Storage) {
    let settings = test_settings(dynamodb_endpoint());
    let storage = Storage::connect(&settings).await.expect("storage");
    storage.create_tables().await.expect("tables");
    (test_config(settings), storage)
}

/// A server on its own tables, created and empty.
pub(crate) async fn spawn_app() -> TestApp {
    let (config, storage) = fresh_tables().await;
    spawn_app_on(config, storage).await
}

/// A server over the given storage (which a test may point anywhere).
pub(crate) async fn spawn_app_on(config: Config, storage: Storage) -> TestApp {
    spawn_app_until(config, storage, std::future::pending()).await
}

/// A server that shuts down when `shutdown` completes. With subscriptions on, it is
/// returned once it reads the tables' streams.
pub(crate) async fn spawn_app_until(
    config: Config,
    storage: Storage,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> TestApp {
    let app = App::build_with_storage(&config, storage.clone())
        .await
        .expect("app builds");
    app.events_ready().await;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run(shutdown));
    // reqwest's rustls needs a process-wide crypto provider; the server installs the same
    // one when it fetches a JWKS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    TestApp {
        url,
        storage,
        http: reqwest::Client::new(),
        // Tests mint their HS256 tokens with the test secret (servers without it refuse them).
        auth: Authenticator::hs256(&SECRET.parse::<Secret>().expect("long enough")),
    }
}

/// The canonical operations of API.md, chosen by name.
pub(crate) const OPERATIONS: &str = include_str!("operations.graphql");

impl TestApp {
    pub(crate) fn token(&self, user: &str) -> String {
        self.auth
            .mint(&UserId::parse(user).expect("id"), Duration::from_secs(600))
            .expect("token")
    }

    /// Sends a request and returns the raw response.
    pub(crate) async fn post(&self, body: &Value, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .header("content-type", "application/json")
            .header("x-dynamodb-cost", "1")
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// Runs a query (or mutation) and returns the whole response body, with the
    /// DynamoDB cost taken out into the second value.
    pub(crate) async fn run(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> (Value, Value) {
        self.send(json!({ "query": query, "variables": variables }), token)
            .await
    }

    /// Sends a GraphQL request that must be answered with 200; splits off the cost.
    async fn send(&self, request: Value, token: Option<&str>) -> (Value, Value) {
        let response = self.post(&request, token).await;
        assert_eq!(response.status(), 200, "status of {request}");
        let mut body: Value = response.json().await.expect("json body");
        let cost = body
            .as_object_mut()
            .and_then(|o| o.remove("extensions"))
            .map(|mut e| e["dynamodb"].take())
            .unwrap_or(Value::Null);
        (body, cost)
    }

    pub(crate) async fn query(&self, query: &str, variables: Value) -> Value {
        self.run(query, variables, None).await.0
    }

    pub(crate) async fn query_as(&self, user: &str, query: &str, variables: Value) -> Value {
        let token = self.token(user);
        self.run(query, variables, Some(&token)).await.0
    }

    /// Runs one of API.md's canonical operations by name.
    pub(crate) async fn operation(
        &self,
        name: &str,
        variables: Value,
        user: Option<&str>,
    ) -> (Value, Value) {
        let token = user.map(|u| self.token(u));
        let request = json!({ "query": OPERATIONS, "operationName": name, "variables": variables });
        self.send(request, token.as_deref()).await
    }

    /// The smallest blog most tests start from: user `u1` (alice) and her post `p1`.
    pub(crate) async fn alice_and_her_post(&self) -> (User, Post) {
        let alice = self.add_user("u1", "alice").await;
        let post = self.add_post("p1", "u1", 0).await;
        (alice, post)
    }

    pub(crate) async fn add_user(&self, id: &str, name: &str) -> User {
        let user = User {
            id: UserId::parse(id).expect("id"),
            username: name.into(),
            email: format!("{name}@example.com"),
            created_at: Some(at(0)),
            post_count: Some(0),
        };
        self.storage
            .users()
            .create(&user, None)
            .await
            .expect("user written");
        user
    }

    /// A post whose `createdAt` is `minute` minutes after a fixed instant.
    pub(crate) async fn add_post(&self, id: &str, author: &str, minute: i64) -> Post {
        let post = Post {
            id: PostId::parse(id).expect("id"),
            author_id: UserId::parse(author).expect("id"),
            title: format!("Title of {id}"),
            content: format!("Content of {id}"),
            created_at: at(minute),
            updated_at: at(minute),
            version: 1,
            comment_count: Some(0),
        };
        self.storage
            .posts()
            .create(&post, None)
            .await
            .expect("post written");
        post
    }

    pub(crate) async fn add_comment(
        &self,
        id: &str,
        post: &str,
        author: &str,
        minute: i64,
    ) -> Comment {
        let comment = Comment {
            id: CommentId::parse(id).expect("id"),
            post_id: PostId::parse(post).expect("id"),
            author_id: UserId::parse(author).expect("id"),
            content: format!("Comment {id}"),
            created_at: at(minute),
            updated_at: at(minute),
            version: 1,
        };
        self.storage
            .comments()
            .add(&comment, None)
            .await
            .expect("comment written");
        comment
    }

    /// Every item of one of this test's tables, as stored.
    pub(crate) async fn scan(
        &self,
        table: &str,
    ) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let tables = self.storage.tables();
        let name = match table {
            "users" => &tables.users,
            "posts" => &tables.posts,
            "comments" => &tables.comments,
            other => panic!("no table {other}"),
        };
        raw_client()
            .scan()
            .table_name(name)
            .consistent_read(true)
            .send()
            .await
            .expect("scan")
            .items
            .unwrap_or_default()
    }
}

/// A fixed instant plus `minute` minutes: 2025-01-01T12:00:00Z + minute.
pub(crate) fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_732_800 + minute * 60, 0).expect("valid")
}

/// The RFC 3339 text the API gives for [`at`].
pub(crate) fn at_text(minute: i64) -> String {
    at(minute).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The `extensions.code` of a response's first error.
pub(crate) fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The `extensions.code` of each of a response's errors.
pub(crate) fn codes(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>"))
                .collect()
        })
        .unwrap_or_default()
}
