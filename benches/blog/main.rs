//! The project's benchmark: the server under load next to the floor, a program that sends
//! only each operation's DynamoDB requests. `scripts/bench.sh` runs it (it starts DynamoDB
//! Local and builds the server first); `--help` lists the knobs.
//!
//! For every workload (the canonical queries and a 90/10 read/write mix) at every number
//! of connections, each round runs the floor and the server in turn, alternating which
//! goes first, so that drift of the machine hits both alike. It reports throughput, p50,
//! p99, errors (a response that is not the expected answer counts as one), CPU time per
//! operation (from `/proc`) and the server's peak RSS, as a Markdown table and as JSON.

mod dataset;
mod floor;
mod load;
mod report;

use std::{
    fs,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, body::Bytes};
use hyper_util::rt::TokioIo;

use crate::{
    dataset::{READ_USERS, Tables},
    floor::Floor,
    load::{Expected, Op, Server, Target, WRITERS, Workload},
    report::{Proc, RunResult},
};

/// The server's and the benchmark's shared secret for tokens.
const SECRET: &str = "benchmark-secret-not-for-production";
const APP: &str = "bench";
const DEPLOYMENT: &str = "bench";

#[derive(Parser)]
#[command(about = "Benchmarks the server against the floor of its DynamoDB requests")]
struct Args {
    /// The server's binary (a release build).
    #[arg(long)]
    server: PathBuf,
    /// Where the results go (`bench.md`, `bench.json`, `server.log`).
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before each run's measured window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Runs of each system per workload and number of connections; figures are medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Workloads, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["post-details", "user-feed", "users-page", "mix"])]
    workloads: Vec<Workload>,
    /// Numbers of connections (closed-loop clients), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 1])]
    connections: Vec<usize>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The server process, killed when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        _ = self.0.kill();
        _ = self.0.wait();
    }
}

fn command(server: &PathBuf) -> Command {
    let mut command = Command::new(server);
    command
        .env("JWT_SECRET", SECRET)
        .env("DA_VINCI_APP_NAME", APP)
        .env("DA_VINCI_DEPLOYMENT_ID", DEPLOYMENT);
    command
}

fn run_to_end(command: &mut Command) -> anyhow::Result<String> {
    let output = command.stderr(Stdio::inherit()).output()?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", output.status);
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

async fn ready(addr: SocketAddr) -> bool {
    let answer = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut send, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::get("/ready")
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let response = send.send_request(request).await?;
        let ok = response.status().is_success();
        _ = response.into_body().collect().await;
        anyhow::Ok(ok)
    };
    answer.await.unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    fs::create_dir_all(&args.out)?;

    // The tables and the data set.
    run_to_end(command(&args.server).arg("create-tables"))?;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let tables = Tables::new(APP, DEPLOYMENT);
    let floor = Arc::new(Floor::new(client.clone(), tables.clone()));
    let present = client
        .get_item()
        .table_name(&tables.users)
        .key(
            "UserId",
            aws_sdk_dynamodb::types::AttributeValue::S(dataset::user_id(0)),
        )
        .send()
        .await?
        .item
        .is_some();
    if present {
        eprintln!("the data set is in place already");
    } else {
        let written = dataset::write(&client, &tables).await?;
        eprintln!("wrote the data set: {written} items");
    }

    // The server.
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = fs::File::create(args.out.join("server.log"))?;
    let child = command(&args.server)
        .arg("serve")
        .env("PORT", port.to_string())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the server")?;
    let process = ServerProcess(child);
    let server_proc = Proc::new(process.0.id());
    let mut waited = 0;
    while !ready(addr).await {
        waited += 1;
        if waited > 300 {
            bail!(
                "the server was not ready after 30 s; see {}",
                args.out.join("server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What the server must answer, as the floor reads it.
    let mut expected = Expected::default();
    let posts: Vec<String> = (0..READ_USERS)
        .flat_map(|u| (0..dataset::POSTS_PER_USER).map(move |j| dataset::post_id(u, j)))
        .collect();
    expected.posts = stream::iter(posts)
        .map(|id| {
            let floor = floor.clone();
            async move { anyhow::Ok((id.clone(), floor.post_details(&id).await?.answer()?)) }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    expected.users = stream::iter((0..READ_USERS).map(dataset::user_id))
        .map(|id| {
            let floor = floor.clone();
            async move { anyhow::Ok((id.clone(), floor.user_feed(&id).await?.answer()?)) }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let writers = (0..WRITERS)
        .map(|i| {
            let id = dataset::user_id(i);
            let token = run_to_end(command(&args.server).args(["token", "--user", &id]))?;
            anyhow::Ok((id, format!("user{i:03}"), token))
        })
        .collect::<anyhow::Result<_>>()?;
    let server = Arc::new(Server {
        addr,
        expected,
        writers,
    });

    // Every operation's DynamoDB requests, on both sides: they must be equal.
    let mut requests = Vec::new();
    let probes = [
        (
            "PostDetails",
            Workload::PostDetails.pick(&mut fastrand::Rng::with_seed(1), 0),
        ),
        (
            "UserFeed",
            Workload::UserFeed.pick(&mut fastrand::Rng::with_seed(1), 0),
        ),
        ("UsersPage", Op::UsersPage),
        (
            "AddComment",
            Op::AddComment {
                post: dataset::post_id(READ_USERS, 0),
                author: 0,
                content: "Benchmark comment 0: measured, not guessed.".to_owned(),
            },
        ),
    ];
    for (name, op) in probes {
        refresh_users_page(&floor, &server).await?;
        let before = floor.requests();
        load::on_floor(&floor, &server, &op).await?;
        let by_floor = floor.requests() - before;
        refresh_users_page(&floor, &server).await?;
        let mut connection = server.connect().await?;
        let response = server.send(&mut connection, &op, true).await?;
        let by_server = response["extensions"]["dynamodb"]["requests"]
            .as_u64()
            .unwrap_or(0);
        server
            .check(&op, response)
            .with_context(|| format!("the server's answer to {name}"))?;
        eprintln!("{name}: floor {by_floor} DynamoDB requests, server {by_server}");
        requests.push(report::Requests {
            operation: name,
            floor: by_floor,
            server: by_server,
        });
    }

    // The runs.
    let ticks = report::clock_ticks();
    let mut runs = Vec::new();
    for round in 0..args.rounds {
        for &workload in &args.workloads {
            for &connections in &args.connections {
                let order = if round % 2 == 0 {
                    ["floor", "server"]
                } else {
                    ["server", "floor"]
                };
                for system in order {
                    if workload == Workload::UsersPage && system == "server" {
                        refresh_users_page(&floor, &server).await?;
                    }
                    let (target, proc) = match system {
                        "floor" => (Target::Floor(floor.clone()), Proc::own()),
                        _ => (Target::Server(server.clone()), server_proc.clone()),
                    };
                    proc.reset_peak();
                    let mut marks = Vec::new();
                    let measured = load::run(
                        target,
                        server.clone(),
                        workload,
                        connections,
                        Duration::from_secs(args.warmup),
                        Duration::from_secs(args.duration),
                        round as u64 + 1,
                        || marks.push(proc.cpu_ticks()),
                    )
                    .await;
                    let result = RunResult::new(
                        round,
                        workload,
                        connections,
                        system,
                        measured,
                        args.duration as f64,
                        (marks[1] - marks[0]) as f64 * 1000.0 / ticks,
                        proc.peak_rss_mb(),
                    );
                    eprintln!("{}", result.line());
                    runs.push(result);
                }
            }
        }
    }

    let machine = report::machine();
    let summary = report::summarize(&runs, &requests);
    let markdown = report::markdown(&summary, &requests, &machine, &args_line(&args));
    fs::write(args.out.join("bench.md"), &markdown)?;
    fs::write(
        args.out.join("bench.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "machine": machine, "requests": requests, "summary": summary, "runs": runs,
        }))?,
    )?;
    println!("{markdown}");
    eprintln!(
        "written: {} and bench.json",
        args.out.join("bench.md").display()
    );
    drop(process);
    Ok(())
}

fn args_line(args: &Args) -> String {
    format!(
        "{} s measured after {} s of warm-up, {} rounds, medians",
        args.duration, args.warmup, args.rounds
    )
}

/// Reads `UsersPage` again: the mix's comments move its counters.
async fn refresh_users_page(floor: &Floor, server: &Server) -> anyhow::Result<()> {
    let answer = floor.users_page().await?.answer()?;
    *server
        .expected
        .users_page
        .write()
        .map_err(|_| anyhow::anyhow!("poisoned"))? = answer;
    Ok(())
}
