//! The `blog-graphql` command: serves the GraphQL API, creates and seeds the tables,
//! exports the schema, and mints development tokens.

use std::{process::ExitCode, time::Duration};

use blog_graphql::{
    app::App,
    auth::Authenticator,
    cli::{Cli, Command},
    config::Config,
    domain::{PostId, UserId},
    graphql, seed,
    storage::{EngineSettings, RecountScope, RelayStatus, Storage},
    telemetry,
};
use clap::Parser;

/// How often a relay lists the streams' shards again, for new ones.
const RELAY_DESCRIBE_INTERVAL: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    // Lambda runs a custom runtime's `bootstrap` without arguments: that is `lambda`.
    let cli =
        if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            Cli::parse_from(["blog-graphql", "lambda"])
        } else {
            Cli::parse()
        };
    let telemetry = telemetry::init();
    let result = run(cli.command).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let app = App::build(Config::try_from(*args)?).await?;
            tracing::info!(port = app.port(), "serving GraphQL on /graphql");
            app.run(shutdown_signal()).await?;
        }
        Command::Lambda(args) => App::serve_lambda(Config::try_from(*args)?).await?,
        Command::CreateTables(args) => {
            let storage = Storage::connect(&args.dynamo.settings()).await?;
            storage.create_tables().await?;
            let t = storage.tables();
            println!(
                "tables ready: {}, {}, {}, {}",
                t.users, t.posts, t.comments, t.usernames
            );
        }
        Command::Seed(args) => {
            let storage = Storage::connect(&args.dynamo.settings()).await?;
            let seeded = seed::seed(&storage).await?;
            if !seeded.fresh {
                println!("demo data is there already");
            }
            for user in &seeded.users {
                println!("user {:<8} {}", user.id, user.username);
            }
            for post in &seeded.posts {
                println!(
                    "post {:<10} by {:<8} {}",
                    post.id, post.author_id, post.title
                );
            }
        }
        Command::ExportSchema => print!("{}", graphql::sdl()),
        Command::Relay(args) => {
            let storage = Storage::connect(&args.dynamo.settings()).await?;
            let engine = EngineSettings::new(&args.redis_url, storage.tables());
            let owner = args.relay_id.unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "relay".to_owned());
                let suffix = uuid::Uuid::new_v4().simple().to_string();
                format!("{host}-{}-{}", std::process::id(), &suffix[..8])
            });
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            // Listening for the signal from the start: a relay stopped early still gives
            // back what it took.
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
            let status = RelayStatus::default();
            if let Some(port) = args.port {
                // Counted from the start, scraped on /metrics.
                blog_graphql::metrics::handle();
                let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on port {port}: {e}"))?;
                let router = blog_graphql::http::relay_router(status.clone());
                let mut stopped = shutdown.clone();
                tokio::spawn(async move {
                    let stop = async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(stop)
                        .await;
                });
            }
            tracing::info!(relay = %owner, channel = %engine.channel, "relaying the tables' streams");
            storage
                .run_relay(&engine, owner, shutdown, RELAY_DESCRIBE_INTERVAL, &status)
                .await?;
        }
        Command::Recount(args) => {
            let scope = match (args.post, args.user) {
                (Some(post), _) => RecountScope::Post(
                    PostId::parse(post).map_err(|e| anyhow::anyhow!("--post: {e}"))?,
                ),
                (None, Some(user)) => RecountScope::User(
                    UserId::parse(user).map_err(|e| anyhow::anyhow!("--user: {e}"))?,
                ),
                (None, None) => RecountScope::All,
            };
            let storage = Storage::connect(&args.dynamo.settings()).await?;
            let done = storage
                .recount(scope)
                .await
                .map_err(|e| anyhow::anyhow!("recounting failed: {e:?}"))?;
            for repair in &done.repairs {
                let was = repair.was.map_or("none".to_owned(), |was| was.to_string());
                println!("repaired {}: {was} -> {}", repair.counter, repair.now);
            }
            for counter in &done.moving {
                println!(
                    "not repaired {counter}: writes kept moving it, or reading it failed (see the log); run recount again"
                );
            }
            println!(
                "checked {} counters, repaired {}",
                done.checked,
                done.repairs.len()
            );
            if !done.moving.is_empty() {
                anyhow::bail!("{} counters were left to check again", done.moving.len());
            }
        }
        Command::Token(args) => {
            let user = UserId::parse(args.user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            let secret = args
                .auth
                .jwt_secret
                .ok_or_else(|| anyhow::anyhow!("minting a token needs JWT_SECRET"))?;
            let auth = Authenticator::hs256(&secret);
            let ttl = Duration::from_secs(u64::from(args.hours) * 3600);
            println!("{}", auth.mint(&user, ttl)?);
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (what container runtimes send) starts a graceful shutdown.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
