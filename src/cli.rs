//! The command line: flags, each with an environment fallback, and the settings they
//! make (`config.rs`).

use std::{net::IpAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::config::{
    Config, HttpSettings, LiveSettings, QueryLimits, SdkTimeouts, Secret, StorageSettings,
    TokenRules,
};

/// The `blog-graphql` command line.
#[derive(Debug, Parser)]
#[command(
    name = "blog-graphql",
    version,
    about = "A GraphQL API over a blog's DynamoDB tables"
)]
pub struct Cli {
    /// What to do: serve, create or seed the tables, export the schema, or mint a token.
    #[command(subcommand)]
    pub command: Command,
}

/// What the command line asks the program to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GraphQL API.
    Serve(Box<ServeArgs>),
    /// Serve the GraphQL API as an AWS Lambda function (API Gateway HTTP or REST API, or a
    /// function URL), through the Lambda Runtime API; subscriptions are off.
    Lambda(Box<ServeArgs>),
    /// Create the tables and their indexes if they are missing, and wait until they are ACTIVE.
    CreateTables(TablesArgs),
    /// Write demo users, posts and comments (creates the tables first if needed).
    Seed(TablesArgs),
    /// Print the GraphQL schema (SDL) to standard output.
    ExportSchema,
    /// Mint a development token (HS256, signed with JWT_SECRET) for a user id.
    Token(TokenArgs),
    /// The relay of the scale-out mode: read the tables' streams (each shard by one relay
    /// at a time, through leases in DynamoDB), keep comment counters exact, and publish
    /// every event on Redis for the serving instances. Run two for failover.
    Relay(RelayArgs),
    /// Recount the counters behind `commentCount` and `totalCount` (every post's, every
    /// user's and the users', or one post's or user's), and repair the ones that drifted.
    /// Safe to run while the API serves writes.
    Recount(RecountArgs),
}

/// Flags of `relay`: the engine, this relay's name, and the tables.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The Redis or Valkey to publish events on (`redis://host:6379`, `rediss://` for TLS).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: String,
    /// This relay's name in the leases it holds (unique among relays); by default the
    /// host name, the process id and a random suffix.
    #[arg(long, env = "RELAY_ID")]
    pub relay_id: Option<String>,
    /// Serve `/health`, `/ready` and `/metrics` on this port (all interfaces); unset, no
    /// HTTP.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Which DynamoDB tables to use, and where they are.
    #[command(flatten)]
    pub dynamo: DynamoArgs,
}

/// Flags of `recount`: which counters, in which tables.
#[derive(Debug, Args)]
pub struct RecountArgs {
    /// Only this post's comment counter.
    #[arg(long, conflicts_with = "user")]
    pub post: Option<String>,
    /// Only this user's post counter.
    #[arg(long)]
    pub user: Option<String>,
    /// Which DynamoDB tables to use, and where they are.
    #[command(flatten)]
    pub dynamo: DynamoArgs,
}

/// Flags of `serve`: where to listen, how to verify tokens, which tables, and the limits.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on; the server binds all interfaces.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// How bearer tokens are verified.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Which DynamoDB tables to use, and where they are.
    #[command(flatten)]
    pub dynamo: DynamoArgs,
    /// Limits on documents, requests, connections and subscriptions.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Production mode: no introspection and no GraphiQL page.
    #[arg(long, env = "PRODUCTION")]
    pub production: bool,
    /// Serve Prometheus metrics on `GET /metrics` (text exposition format).
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
}

/// Limits that keep one client from taking the server down.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Deepest nesting of fields a query may have.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = QueryLimits::default().max_depth)]
    pub max_query_depth: usize,
    /// Most objects a query may return; each connection's `first` or `last` multiplies what it selects.
    #[arg(long, env = "MAX_QUERY_COST", default_value_t = QueryLimits::default().max_cost)]
    pub max_query_cost: u64,
    /// Most fields (aliases included) a query may select.
    #[arg(long, env = "MAX_QUERY_FIELDS", default_value_t = QueryLimits::default().max_fields)]
    pub max_query_fields: u64,
    /// Most directives one field, fragment or operation may carry (each at most once).
    #[arg(long, env = "MAX_QUERY_DIRECTIVES", default_value_t = QueryLimits::default().max_directives)]
    pub max_query_directives: usize,
    /// Most operations one document may hold.
    #[arg(long, env = "MAX_QUERY_OPERATIONS", default_value_t = QueryLimits::default().max_operations)]
    pub max_query_operations: usize,
    /// Longest query document, in bytes.
    #[arg(long, env = "MAX_QUERY_BYTES", default_value_t = QueryLimits::default().max_bytes)]
    pub max_query_bytes: usize,
    /// Largest `variables` object of a request, in bytes of JSON.
    #[arg(long, env = "MAX_VARIABLES_BYTES", default_value_t = QueryLimits::default().max_variables_bytes)]
    pub max_variables_bytes: usize,
    /// Most objects a subscription may select for each event.
    #[arg(long, env = "MAX_SUBSCRIPTION_COST", default_value_t = QueryLimits::default().max_subscription_cost)]
    pub max_subscription_cost: u64,
    /// Largest request body, in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = HttpSettings::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Longest an operation may run, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = HttpSettings::default().request_timeout.as_secs())]
    pub request_timeout_secs: u64,
    /// Longest a client may take to send a request's headers, in seconds.
    #[arg(long, env = "HEADER_TIMEOUT_SECS", default_value_t = HttpSettings::default().header_timeout.as_secs())]
    pub header_timeout_secs: u64,
    /// Longest a client may take to send a request's body, in seconds.
    #[arg(long, env = "BODY_TIMEOUT_SECS", default_value_t = HttpSettings::default().body_timeout.as_secs())]
    pub body_timeout_secs: u64,
    /// Longest a client may accept nothing of what it is sent, in seconds (then it is dropped).
    #[arg(long, env = "WRITE_TIMEOUT_SECS", default_value_t = HttpSettings::default().write_timeout.as_secs())]
    pub write_timeout_secs: u64,
    /// Operations run at once, on every transport; beyond that the server answers 503 at once.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = HttpSettings::default().max_concurrent_requests)]
    pub max_concurrent_requests: usize,
    /// HTTP connections served at once (WebSockets count apart); beyond, new ones wait.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = HttpSettings::default().max_connections)]
    pub max_connections: usize,
    /// Origins allowed by CORS, comma-separated (`*` for any); none by default.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// Serve subscriptions (reads the tables' DynamoDB Streams).
    #[arg(long, env = "SUBSCRIPTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub subscriptions: bool,
    /// The scale-out mode: subscribe to the events that relays (`blog-graphql relay`)
    /// publish on this Redis or Valkey (`redis://host:6379`, `rediss://` for TLS), instead
    /// of reading the tables' streams.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// WebSocket connections served at once.
    #[arg(long, env = "MAX_WEBSOCKET_CONNECTIONS", default_value_t = LiveSettings::default().max_connections)]
    pub max_websocket_connections: usize,
    /// Subscriptions one WebSocket connection may hold at once (and queries or mutations
    /// it may have running at once).
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = LiveSettings::default().max_subscriptions_per_connection)]
    pub max_subscriptions_per_connection: usize,
    /// Longest a new WebSocket may take to send `connection_init`, in seconds (then 4408).
    #[arg(long, env = "WEBSOCKET_INIT_TIMEOUT_SECS", default_value_t = LiveSettings::default().init_timeout.as_secs())]
    pub websocket_init_timeout_secs: u64,
    /// How often an idle WebSocket is pinged, in seconds; one silent for two of these is closed.
    #[arg(long, env = "WEBSOCKET_KEEPALIVE_SECS", default_value_t = LiveSettings::default().keepalive.as_secs())]
    pub websocket_keepalive_secs: u64,
}

/// Flags of `create-tables` and `seed`: which tables, and where they are.
#[derive(Debug, Args)]
pub struct TablesArgs {
    /// Which DynamoDB tables to use, and where they are.
    #[command(flatten)]
    pub dynamo: DynamoArgs,
}

/// Flags of `token`: the user, how long the token holds, and the secret that signs it.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id to put in the token's `sub`.
    #[arg(long)]
    pub user: String,
    /// How long the token is valid, in hours.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// The token flags; only the HS256 secret, which signs the token, is read.
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// How bearer tokens are verified: an HS256 secret and/or a JWKS URL, and what tokens must
/// carry.
#[derive(Debug, Args, Clone)]
pub struct AuthArgs {
    /// The HS256 secret that signs and verifies bearer tokens (at least 16 bytes).
    #[arg(long = "jwt-secret", env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// A JWKS URL whose keys verify RS256/ES256 tokens (Cognito, any OIDC provider).
    #[arg(long = "jwt-jwks-url", env = "JWT_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// The `iss` tokens must carry, when set.
    #[arg(long = "jwt-issuer", env = "JWT_ISSUER")]
    pub issuer: Option<String>,
    /// The `aud` tokens must carry, when set.
    #[arg(long = "jwt-audience", env = "JWT_AUDIENCE")]
    pub audience: Option<String>,
    /// Least time between two fetches of the JWKS for unknown key ids, in seconds.
    #[arg(long = "jwt-jwks-refresh-secs", env = "JWT_JWKS_REFRESH_SECS", default_value_t = TokenRules::default().jwks_refresh_cooldown.as_secs())]
    pub jwks_refresh_secs: u64,
    /// How far a token's `exp` and `nbf` may be off, for clocks that disagree, in seconds.
    #[arg(long = "jwt-leeway-secs", env = "JWT_LEEWAY_SECS", default_value_t = TokenRules::default().leeway.as_secs())]
    pub leeway_secs: u64,
}

/// Which tables to use: the names Da Vinci gives them, and the DynamoDB that holds them.
#[derive(Debug, Args, Clone)]
pub struct DynamoArgs {
    /// Da Vinci's application name: the first part of every table name.
    #[arg(long, env = "DA_VINCI_APP_NAME", default_value = "blog")]
    pub app_name: String,
    /// Da Vinci's deployment id: the second part of every table name.
    #[arg(long, env = "DA_VINCI_DEPLOYMENT_ID", default_value = "local")]
    pub deployment_id: String,
    /// A DynamoDB endpoint other than AWS's (DynamoDB Local). Unset for real AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    pub endpoint_url: Option<String>,
    /// The AWS region; unset, the standard AWS configuration chain decides.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

impl DynamoArgs {
    /// The storage's settings: the flags, and what the environment says about the region
    /// and credentials (read here, so that storage reads no environment itself).
    pub fn settings(&self) -> StorageSettings {
        let present = |name: &str| std::env::var_os(name).is_some();
        let local = self.endpoint_url.is_some();
        // A local endpoint does not care about the region; don't go looking for one.
        let region = self
            .region
            .clone()
            .or_else(|| (local && !present("AWS_DEFAULT_REGION")).then(|| "us-east-1".to_owned()));
        StorageSettings {
            app_name: self.app_name.clone(),
            deployment_id: self.deployment_id.clone(),
            endpoint_url: self.endpoint_url.clone(),
            region,
            local_credentials: local && !present("AWS_ACCESS_KEY_ID") && !present("AWS_PROFILE"),
            timeouts: SdkTimeouts::default(),
        }
    }
}

impl TryFrom<ServeArgs> for Config {
    type Error = anyhow::Error;

    fn try_from(args: ServeArgs) -> anyhow::Result<Self> {
        let limits = args.limits;
        if args.auth.jwt_secret.is_none() && args.auth.jwks_url.is_none() {
            anyhow::bail!("set JWT_SECRET (HS256) or JWT_JWKS_URL (RS256/ES256) to verify tokens");
        }
        for (name, value) in [
            ("MAX_CONNECTIONS", limits.max_connections),
            ("MAX_CONCURRENT_REQUESTS", limits.max_concurrent_requests),
            (
                "MAX_WEBSOCKET_CONNECTIONS",
                limits.max_websocket_connections,
            ),
            (
                "MAX_SUBSCRIPTIONS_PER_CONNECTION",
                limits.max_subscriptions_per_connection,
            ),
        ] {
            if !(1..=1_000_000).contains(&value) {
                anyhow::bail!("{name} must be between 1 and 1000000 (got {value})");
            }
        }
        for (name, value) in [
            ("REQUEST_TIMEOUT_SECS", limits.request_timeout_secs),
            ("HEADER_TIMEOUT_SECS", limits.header_timeout_secs),
            ("BODY_TIMEOUT_SECS", limits.body_timeout_secs),
            ("WRITE_TIMEOUT_SECS", limits.write_timeout_secs),
            (
                "WEBSOCKET_INIT_TIMEOUT_SECS",
                limits.websocket_init_timeout_secs,
            ),
            ("WEBSOCKET_KEEPALIVE_SECS", limits.websocket_keepalive_secs),
        ] {
            // A day is far beyond any sensible setting, and keeps deadlines computable.
            if !(1..=86_400).contains(&value) {
                anyhow::bail!("{name} must be between 1 and 86400 seconds (got {value})");
            }
        }
        Ok(Self {
            host: args.host,
            port: args.port,
            jwt_secret: args.auth.jwt_secret,
            jwks_url: args.auth.jwks_url,
            token_rules: TokenRules {
                issuer: args.auth.issuer,
                audience: args.auth.audience,
                jwks_refresh_cooldown: Duration::from_secs(args.auth.jwks_refresh_secs),
                leeway: Duration::from_secs(args.auth.leeway_secs),
            },
            storage: args.dynamo.settings(),
            http: HttpSettings {
                max_body_bytes: limits.max_body_bytes,
                request_timeout: Duration::from_secs(limits.request_timeout_secs),
                max_concurrent_requests: limits.max_concurrent_requests,
                max_connections: limits.max_connections,
                header_timeout: Duration::from_secs(limits.header_timeout_secs),
                body_timeout: Duration::from_secs(limits.body_timeout_secs),
                write_timeout: Duration::from_secs(limits.write_timeout_secs),
                cors_allowed_origins: limits.cors_allowed_origins,
                production: args.production,
                metrics: args.metrics,
            },
            query: QueryLimits {
                max_bytes: limits.max_query_bytes,
                max_variables_bytes: limits.max_variables_bytes,
                max_operations: limits.max_query_operations,
                max_depth: limits.max_query_depth,
                max_fields: limits.max_query_fields,
                max_directives: limits.max_query_directives,
                max_cost: limits.max_query_cost,
                max_subscription_cost: limits.max_subscription_cost,
                introspection: !args.production,
            },
            live: LiveSettings {
                enabled: limits.subscriptions,
                max_connections: limits.max_websocket_connections,
                max_subscriptions_per_connection: limits.max_subscriptions_per_connection,
                init_timeout: Duration::from_secs(limits.websocket_init_timeout_secs),
                keepalive: Duration::from_secs(limits.websocket_keepalive_secs),
                engine_url: limits.redis_url,
                ..LiveSettings::default()
            },
        })
    }
}
