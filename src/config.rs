//! Typed configuration: command-line flags, each with an environment fallback.

use std::{fmt, net::IpAddr, str::FromStr};

use clap::{Args, Parser, Subcommand};

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
    Serve(ServeArgs),
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
    pub jwt_secret: Secret,
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
}

/// Settings of the server itself.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub jwt_secret: Secret,
    pub dynamo: DynamoArgs,
}

impl From<ServeArgs> for Config {
    fn from(args: ServeArgs) -> Self {
        Self {
            host: args.host,
            port: args.port,
            jwt_secret: args.auth.jwt_secret,
            dynamo: args.dynamo,
        }
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
