//! The load: closed-loop workers, each sending one operation after another for a fixed
//! time, either to the server over its own HTTP/1.1 connection or to the floor. Every
//! server response is checked against the answer the floor read from DynamoDB; one that
//! differs counts as an error.
//!
//! A load generator of its own rather than `oha` or `wrk`: they report status codes only,
//! and a GraphQL server answers a failed or wrong operation with 200.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::{
    dataset::{self, POSTS_PER_USER, READ_USERS, USERS},
    floor::{CURSOR, Floor},
};

/// The canonical operations of API.md, as the test suite holds them.
const OPERATIONS: &str = include_str!("../../tests/api/operations.graphql");

/// The text of the canonical operation `name` (its block in [`OPERATIONS`]).
fn operation(name: &str) -> &'static str {
    OPERATIONS
        .split("\n\n")
        .find(|block| {
            let mut words = block.split_whitespace();
            matches!(words.next(), Some("query" | "mutation"))
                && words
                    .next()
                    .is_some_and(|n| n.split('(').next() == Some(name))
        })
        .unwrap_or_default()
}

/// What the load sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub(crate) enum Workload {
    /// `PostDetails` on a random post.
    PostDetails,
    /// `UserFeed` on a random user.
    UserFeed,
    /// `UsersPage`.
    UsersPage,
    /// 45 % `PostDetails`, 45 % `UserFeed`, 10 % `AddComment`.
    Mix,
}

/// One operation, with its arguments.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    PostDetails(String),
    UserFeed(String),
    UsersPage,
    AddComment {
        post: String,
        author: usize,
        content: String,
    },
}

/// Users who write the mix's comments (each needs a token).
pub(crate) const WRITERS: usize = 10;

impl Workload {
    pub(crate) fn pick(self, rng: &mut fastrand::Rng, sequence: u64) -> Op {
        let post = |rng: &mut fastrand::Rng| {
            dataset::post_id(rng.usize(0..READ_USERS), rng.usize(0..POSTS_PER_USER))
        };
        let user = |rng: &mut fastrand::Rng| dataset::user_id(rng.usize(0..READ_USERS));
        match self {
            Workload::PostDetails => Op::PostDetails(post(rng)),
            Workload::UserFeed => Op::UserFeed(user(rng)),
            Workload::UsersPage => Op::UsersPage,
            Workload::Mix => match rng.u32(0..20) {
                0..9 => Op::PostDetails(post(rng)),
                9..18 => Op::UserFeed(user(rng)),
                _ => Op::AddComment {
                    post: dataset::post_id(
                        rng.usize(READ_USERS..USERS),
                        rng.usize(0..POSTS_PER_USER),
                    ),
                    author: rng.usize(0..WRITERS),
                    content: format!("Benchmark comment {sequence}: measured, not guessed."),
                },
            },
        }
    }
}

/// The answers the server must give to reads, as the floor read them.
#[derive(Default)]
pub(crate) struct Expected {
    pub(crate) posts: HashMap<String, Value>,
    pub(crate) users: HashMap<String, Value>,
    /// Changes as the mix adds comments: read again before each `UsersPage` run.
    pub(crate) users_page: RwLock<Value>,
}

/// The server under load: where it listens, what it must answer, the writers' tokens.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) expected: Expected,
    /// The writers' (user id, username, bearer token).
    pub(crate) writers: Vec<(String, String, String)>,
}

/// One HTTP/1.1 connection to the server.
pub(crate) struct Connection(SendRequest<Full<Bytes>>);

impl Server {
    pub(crate) async fn connect(&self) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (send, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Connection(send))
    }

    fn body(&self, op: &Op) -> (Vec<u8>, Option<&str>) {
        let (query, variables, token) = match op {
            Op::PostDetails(id) => (operation("PostDetails"), json!({ "id": id }), None),
            Op::UserFeed(id) => (operation("UserFeed"), json!({ "id": id }), None),
            Op::UsersPage => (operation("UsersPage"), json!({}), None),
            Op::AddComment {
                post,
                author,
                content,
            } => (
                operation("AddComment"),
                json!({ "postId": post, "content": content }),
                Some(self.writers[*author].2.as_str()),
            ),
        };
        let body = json!({ "query": query, "variables": variables });
        (serde_json::to_vec(&body).unwrap_or_default(), token)
    }

    /// Sends `op` and answers the response's JSON (checked for HTTP status only).
    pub(crate) async fn send(
        &self,
        connection: &mut Connection,
        op: &Op,
        cost: bool,
    ) -> anyhow::Result<Value> {
        let (body, token) = self.body(op);
        let mut request = Request::post("/graphql")
            .header("host", self.addr.to_string())
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if cost {
            request = request.header("x-dynamodb-cost", "1");
        }
        connection.0.ready().await?;
        let response = connection
            .0
            .send_request(request.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Checks a response to `op` against the answer it must be.
    pub(crate) fn check(&self, op: &Op, mut response: Value) -> anyhow::Result<()> {
        if let Some(errors) = response.get("errors") {
            bail!("errors: {errors}");
        }
        let data = response.get_mut("data").context("no data")?;
        normalize(data);
        let expected = match op {
            Op::PostDetails(id) => self
                .expected
                .posts
                .get(id)
                .context("no expected answer")?
                .clone(),
            Op::UserFeed(id) => self
                .expected
                .users
                .get(id)
                .context("no expected answer")?
                .clone(),
            Op::UsersPage => self
                .expected
                .users_page
                .read()
                .map_err(|_| anyhow!("poisoned"))?
                .clone(),
            Op::AddComment {
                post,
                author,
                content,
            } => {
                let added = &data["addComment"];
                let count = added["post"]["commentCount"].as_i64().unwrap_or(0);
                if added["content"] == json!(content)
                    && added["author"]["username"] == json!(self.writers[*author].1)
                    && added["post"]["id"] == json!(post)
                    && added["id"].is_string()
                    && count > dataset::COMMENTS_PER_POST as i64
                {
                    return Ok(());
                }
                bail!("unexpected answer to AddComment: {added}");
            }
        };
        if *data != expected {
            bail!("unexpected answer: {data}\nexpected: {expected}");
        }
        Ok(())
    }
}

/// Replaces every `endCursor` string with `CURSOR`: cursors are opaque.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "endCursor" && value.is_string() {
                    *value = json!(CURSOR);
                } else {
                    normalize(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Who answers the load.
#[derive(Clone)]
pub(crate) enum Target {
    Floor(Arc<Floor>),
    Server(Arc<Server>),
}

/// Runs `op` on the floor.
pub(crate) async fn on_floor(floor: &Floor, server: &Server, op: &Op) -> anyhow::Result<()> {
    match op {
        Op::PostDetails(id) => floor.post_details(id).await.map(drop),
        Op::UserFeed(id) => floor.user_feed(id).await.map(drop),
        Op::UsersPage => floor.users_page().await.map(drop),
        Op::AddComment {
            post,
            author,
            content,
        } => {
            floor
                .add_comment(post, &server.writers[*author].0, content)
                .await
        }
    }
}

/// What one worker measured: the latency of each operation it started in the measured
/// window, in microseconds, and how many of those failed.
#[derive(Default)]
pub(crate) struct Measured {
    pub(crate) latencies: Vec<u32>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

/// One worker: operations one after another until `end`, measured from `start`.
pub(crate) async fn worker(
    target: Target,
    server: Arc<Server>,
    workload: Workload,
    seed: u64,
    start: Instant,
    end: Instant,
) -> Measured {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut measured = Measured::default();
    let mut connection: Option<Connection> = None;
    let mut sequence = seed << 32;
    loop {
        let began = Instant::now();
        if began >= end {
            return measured;
        }
        sequence += 1;
        let op = workload.pick(&mut rng, sequence);
        let outcome = match &target {
            Target::Floor(floor) => on_floor(floor, &server, &op).await,
            Target::Server(server) => {
                let answer = async {
                    if connection.is_none() {
                        connection = Some(server.connect().await?);
                    }
                    let connection = connection.as_mut().context("not connected")?;
                    server.send(connection, &op, false).await
                }
                .await;
                if answer.is_err() {
                    connection = None;
                }
                answer.and_then(|response| server.check(&op, response))
            }
        };
        if began >= start {
            let micros = began.elapsed().as_micros();
            measured
                .latencies
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
            if let Err(err) = outcome {
                measured.errors += 1;
                measured
                    .first_error
                    .get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
}

/// Runs `connections` workers for `warmup` and then `duration`; `during` is called when
/// the measured window opens and when it closes.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    target: Target,
    server: Arc<Server>,
    workload: Workload,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    seed: u64,
    mut during: impl FnMut(),
) -> Measured {
    let start = Instant::now() + warmup;
    let end = start + duration;
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(worker(
                target.clone(),
                server.clone(),
                workload,
                seed * 1000 + i as u64,
                start,
                end,
            ))
        })
        .collect();
    tokio::time::sleep_until(start.into()).await;
    during();
    tokio::time::sleep_until(end.into()).await;
    during();
    let mut all = Measured::default();
    for worker in workers {
        if let Ok(measured) = worker.await {
            all.latencies.extend(measured.latencies);
            all.errors += measured.errors;
            if all.first_error.is_none() {
                all.first_error = measured.first_error;
            }
        }
    }
    all
}
