//! Typed configuration: command-line flags, each with an environment fallback.

use std::{fmt, net::IpAddr, str::FromStr, time::Duration};

use clap::{Args, Parser, Subcommand};

pub use crate::{auth::TokenRules, graphql::limits::QueryLimits};

#[derive(Debug, Parser)]
#[command(
    name = "blog-graphql",
    version,
    about = "A GraphQL API over a blog's DynamoDB tables"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GraphQL API.
    Serve(Box<ServeArgs>),
    /// Create the tables and their indexes if they are missing, and wait until they are ACTIVE.
    CreateTables(TablesArgs),
    /// Write demo users, posts and comments (creates the tables first if needed).
    Seed(TablesArgs),
    /// Print the GraphQL schema (SDL) to standard output.
    ExportSchema,
    /// Mint a development token (HS256, signed with JWT_SECRET) for a user id.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on; the server binds all interfaces.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub dynamo: DynamoArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Production mode: no introspection and no GraphiQL page.
    #[arg(long, env = "PRODUCTION")]
    pub production: bool,
}

/// Limits that keep one client from taking the server down.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Deepest nesting of fields a query may have.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = QueryLimits::default().max_depth)]
    pub max_query_depth: usize,
    /// Most objects a query may return; each connection's `first` multiplies what it selects.
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

/// Settings of subscriptions.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    /// Whether to read the tables' streams and serve subscriptions.
    pub enabled: bool,
    pub max_connections: usize,
    pub max_subscriptions_per_connection: usize,
    /// How long a new connection has to send `connection_init`.
    pub init_timeout: Duration,
    /// How often the server pings a connection; one silent for two of these is closed.
    pub keepalive: Duration,
    /// How often the tables' streams are listed again for new shards.
    pub describe_interval: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_connections: 10_000,
            max_subscriptions_per_connection: 20,
            init_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(15),
            describe_interval: Duration::from_secs(10),
        }
    }
}

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The largest request body, and the largest WebSocket message.
    pub max_body_bytes: usize,
    /// How long an operation may run, on any transport.
    pub request_timeout: Duration,
    /// Operations running at once, on all transports together.
    pub max_concurrent_requests: usize,
    /// HTTP connections served at once (upgraded WebSockets count apart).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// How long a client may accept nothing of what it is sent.
    pub write_timeout: Duration,
    pub cors_allowed_origins: Vec<String>,
    /// No introspection, no GraphiQL.
    pub production: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            cors_allowed_origins: Vec::new(),
            production: false,
        }
    }
}

#[derive(Debug, Args)]
pub struct TablesArgs {
    #[command(flatten)]
    pub dynamo: DynamoArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id to put in the token's `sub`.
    #[arg(long)]
    pub user: String,
    /// How long the token is valid, in hours.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    #[command(flatten)]
    pub auth: AuthArgs,
}

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
    /// How long DynamoDB calls may take (tests shorten them).
    #[arg(skip)]
    pub timeouts: SdkTimeouts,
}

/// How long a DynamoDB call may take: a hung DynamoDB must not hang a client, so an
/// attempt fails after a few seconds and the whole call (retries included) well inside
/// the request timeout.
#[derive(Clone, Copy, Debug)]
pub struct SdkTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

impl Default for SdkTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(3),
            operation: Duration::from_secs(8),
        }
    }
}

/// Settings of the server itself.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// HS256 secret; at least one of it and `jwks_url` is set.
    pub jwt_secret: Option<Secret>,
    pub jwks_url: Option<String>,
    pub token_rules: TokenRules,
    pub dynamo: DynamoArgs,
    pub http: HttpSettings,
    pub query: QueryLimits,
    pub live: LiveSettings,
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
            dynamo: args.dynamo,
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
                ..LiveSettings::default()
            },
        })
    }
}

/// A secret that `Debug` cannot print.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub const MIN_BYTES: usize = 16;

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < Self::MIN_BYTES {
            return Err(format!(
                "the secret must be at least {} bytes long",
                Self::MIN_BYTES
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let secret: Secret = "a-very-secret-value".parse().expect("long enough");
        assert!(!format!("{secret:?}").contains("very"));
        assert!("short".parse::<Secret>().is_err());
    }
}
