//! The server's settings, as plain data: what each part of the server is given to run
//! with. `cli.rs` builds them from flags and the environment; nothing here depends on
//! another module of the crate.

use std::{fmt, net::IpAddr, str::FromStr, time::Duration};

/// Settings of subscriptions.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    /// Whether to read the tables' streams and serve subscriptions.
    pub enabled: bool,
    /// WebSocket connections served at once.
    pub max_connections: usize,
    /// Subscriptions one connection may hold at once (and queries or mutations it may have
    /// running at once).
    pub max_subscriptions_per_connection: usize,
    /// How long a new connection has to send `connection_init`.
    pub init_timeout: Duration,
    /// How often the server pings a connection; one silent for two of these is closed.
    pub keepalive: Duration,
    /// How often the tables' streams are listed again for new shards.
    pub describe_interval: Duration,
    /// The scale-out mode: the Redis (or Valkey) whose channel relays publish events to.
    /// Set, the server subscribes there instead of reading the streams itself.
    pub engine_url: Option<String>,
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
            engine_url: None,
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
    /// Origins allowed by CORS (`*` for any); none, no cross-origin access.
    pub cors_allowed_origins: Vec<String>,
    /// No introspection, no GraphiQL.
    pub production: bool,
    /// Serve Prometheus metrics on `GET /metrics`.
    pub metrics: bool,
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
            metrics: true,
        }
    }
}

/// Limits on what one GraphQL document may ask for (see `graphql::limits`). Defaults let
/// every canonical operation of the API contract through with room to spare (the costliest,
/// `UsersPage`, costs 801; `CommentAdded` 12).
#[derive(Clone, Copy, Debug)]
pub struct QueryLimits {
    /// Longest query document, in bytes.
    pub max_bytes: usize,
    /// Largest `variables` object of a request, in bytes of JSON.
    pub max_variables_bytes: usize,
    /// Most operations one document may hold.
    pub max_operations: usize,
    /// Deepest nesting of fields a query may have.
    pub max_depth: usize,
    /// Most fields (aliases and directives included) a query may select.
    pub max_fields: u64,
    /// Directives one location (a field, a fragment, an operation) may carry.
    pub max_directives: usize,
    /// Most objects a query or mutation may return; each connection's `first` multiplies
    /// what it selects.
    pub max_cost: u64,
    /// The cost limit of a subscription's selection, which is resolved for every event.
    pub max_subscription_cost: u64,
    /// Whether `__schema` and `__type` may be queried (off in production mode).
    pub introspection: bool,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_bytes: 100_000,
            max_variables_bytes: 256 * 1024,
            max_operations: 20,
            max_depth: 12,
            max_fields: 1_000,
            max_directives: 4,
            max_cost: 10_000,
            max_subscription_cost: 100,
            introspection: true,
        }
    }
}

/// What a token must satisfy besides its signature, and how the JWKS is refreshed.
#[derive(Clone, Debug)]
pub struct TokenRules {
    /// Required `iss`, when set: a token without one is refused too.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's), when set: a token without one is refused too.
    pub audience: Option<String>,
    /// The JWKS is fetched again for an unknown key id at most this often, so that tokens
    /// with made-up key ids cannot make the server hammer the provider.
    pub jwks_refresh_cooldown: Duration,
    /// How far `exp` and `nbf` may be off, for clocks that disagree.
    pub leeway: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            jwks_refresh_cooldown: Duration::from_secs(30),
            leeway: Duration::from_secs(30),
        }
    }
}

/// Where the tables are and how to reach them.
#[derive(Clone, Debug)]
pub struct StorageSettings {
    /// Da Vinci's application name: the first part of every table name.
    pub app_name: String,
    /// Da Vinci's deployment id: the second part of every table name.
    pub deployment_id: String,
    /// A DynamoDB endpoint other than AWS's (DynamoDB Local). Unset for real AWS.
    pub endpoint_url: Option<String>,
    /// The AWS region; unset, the standard AWS configuration chain decides.
    pub region: Option<String>,
    /// Whether to sign with made-up credentials: DynamoDB Local takes any, and a local
    /// user need not configure some.
    pub local_credentials: bool,
    /// How long DynamoDB calls may take (tests shorten them).
    pub timeouts: SdkTimeouts,
}

/// How long a DynamoDB call may take: a hung DynamoDB must not hang a client, so an
/// attempt fails after a few seconds and the whole call (retries included) well inside
/// the request timeout.
#[derive(Clone, Copy, Debug)]
pub struct SdkTimeouts {
    /// How long connecting to DynamoDB may take.
    pub connect: Duration,
    /// How long one attempt of a call may take.
    pub attempt: Duration,
    /// How long a whole call may take, retries included.
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
    /// Address to listen on.
    pub host: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// HS256 secret; at least one of it and `jwks_url` is set.
    pub jwt_secret: Option<Secret>,
    /// URL of the JWKS whose keys verify RS256/ES256 tokens.
    pub jwks_url: Option<String>,
    /// What a token must carry besides its signature, and how often the JWKS may be fetched.
    pub token_rules: TokenRules,
    /// Which tables to use, and how to reach DynamoDB.
    pub storage: StorageSettings,
    /// Sizes, timeouts, concurrency and CORS of the HTTP layer, and production mode.
    pub http: HttpSettings,
    /// Limits on what one GraphQL document may ask for.
    pub query: QueryLimits,
    /// Subscriptions and their WebSocket connections.
    pub live: LiveSettings,
}

/// A secret that `Debug` cannot print.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The shortest secret accepted, in bytes.
    pub const MIN_BYTES: usize = 16;

    /// The secret itself, for signing and verifying tokens.
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
