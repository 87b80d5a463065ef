//! The only module that knows tables, keys, indexes and the AWS SDK.
//!
//! Every call returns domain types or an [`AppError`]; SDK errors are sorted here into
//! "DynamoDB is unavailable" and "something is wrong", with the AWS details kept for the log.

mod attributes;
mod batch;
mod comments;
mod cost;
mod counted;
mod counters;
mod cursor;
mod edits;
mod idempotency;
mod items;
mod observe;
mod pages;
mod posts;
mod range;
mod recount;
mod streams;
mod tables;
mod users;
mod writes;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_dynamodb::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    types::ConsumedCapacity,
};

pub use batch::Found;
pub use cost::{CostRecorder, CostReport};
pub use cursor::{CursorError, List, PageKey};
pub use pages::{Page, Window};
pub use range::TimeRange;
pub use recount::{RecountScope, Recounted, Repair};
pub use streams::{EngineSettings, EventFeed, FEED_CAPACITY, RelayStatus};
pub use tables::Tables;
pub use writes::Written;

use crate::{config::StorageSettings, error::AppError};

/// A handle on the blog's tables. Cheap to clone; a clone made by [`Storage::with_cost`]
/// also counts its requests for one client request.
#[derive(Clone, Debug)]
pub struct Storage {
    client: Client,
    /// Reads the tables' streams; `None` where there is none to read (a mocked client).
    streams: Option<aws_sdk_dynamodbstreams::Client>,
    tables: Arc<Tables>,
    cost: Option<Arc<CostRecorder>>,
    /// Held while the users are counted for their counter's first value, so that one
    /// process counts them once, not once per request that finds no counter (the ones
    /// that queued meanwhile then read the counter it made).
    counting_users: Arc<tokio::sync::Mutex<()>>,
}

/// A table's reads and writes, as a small type of its own over the shared storage:
/// `storage.posts().by_id(…)`. It derefs to the storage for what all tables share
/// (batches, pages, transactions, cost).
macro_rules! table_handle {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<'a>(&'a Storage);

        impl std::ops::Deref for $name<'_> {
            type Target = Storage;

            fn deref(&self) -> &Storage {
                self.0
            }
        }

        impl Storage {
            $(#[$doc])*
            pub fn $method(&self) -> $name<'_> {
                $name(self)
            }
        }
    };
}

table_handle!(
    /// The users table: users by id, the list of users, sign-ups and edits.
    Users,
    users
);
table_handle!(
    /// The posts table: posts by id, a user's posts, and their writes.
    Posts,
    posts
);
table_handle!(
    /// The comments table: comments by id, a post's comments, and their writes.
    Comments,
    comments
);

impl Storage {
    /// Builds a client from the standard AWS configuration chain, with `settings` on top.
    pub async fn connect(settings: &StorageSettings) -> anyhow::Result<Self> {
        let tables = Tables::new(&settings.app_name, &settings.deployment_id)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                // A hung DynamoDB must not hang a client: fail an attempt after a few seconds
                // and the whole operation (retries included) inside the HTTP request timeout.
                TimeoutConfig::builder()
                    .connect_timeout(settings.timeouts.connect)
                    .operation_attempt_timeout(settings.timeouts.attempt)
                    .operation_timeout(settings.timeouts.operation)
                    .build(),
            )
            // Throttling and dropped connections are retried with jittered backoff, but
            // briefly: a client waiting on a DynamoDB that is down learns it in well under
            // a second (unavailable), and can retry itself.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_max_backoff(Duration::from_secs(1)),
            );
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if settings.local_credentials {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "local",
            ));
        }
        let sdk_config = loader.load().await;
        if sdk_config.region().is_none() {
            anyhow::bail!("no AWS region is configured: set AWS_REGION");
        }
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .interceptor(observe::Observe)
            .build();
        let mut storage = Self::from_client(Client::from_conf(config), tables);
        storage.streams = Some(aws_sdk_dynamodbstreams::Client::new(&sdk_config));
        Ok(storage)
    }

    /// Storage over a DynamoDB client made elsewhere (tests make one from a mock); it
    /// reads no streams.
    pub fn from_client(client: Client, tables: Tables) -> Self {
        Self {
            client,
            streams: None,
            tables: Arc::new(tables),
            cost: None,
            counting_users: Arc::default(),
        }
    }

    /// A handle whose requests are also counted in `recorder`.
    pub fn with_cost(&self, recorder: Arc<CostRecorder>) -> Self {
        Self {
            cost: Some(recorder),
            ..self.clone()
        }
    }

    /// The names of the tables this storage reads and writes.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates the tables and their indexes, streams and time to live where missing, and
    /// waits until they are ACTIVE.
    pub async fn create_tables(&self) -> anyhow::Result<()> {
        tables::create_tables(&self.client, &self.tables)
            .await
            .context("creating the tables")
    }

    /// Whether DynamoDB answers and the tables are there.
    pub async fn ping(&self) -> Result<(), AppError> {
        let answer = self
            .client
            .describe_table()
            .table_name(&self.tables.users)
            .send()
            .await;
        self.record("DescribeTable", &[]);
        answer.map(|_| ()).map_err(|e| classify("DescribeTable", e))
    }

    fn record(&self, operation: &'static str, consumed: &[ConsumedCapacity]) {
        if let Some(cost) = &self.cost {
            cost.record(operation, consumed);
        }
        // One request, labelled with its table (or `several`, for a batch or transaction
        // across tables; `unknown` when DynamoDB reported no capacity, as for a failure).
        let mut tables = consumed
            .iter()
            .filter_map(ConsumedCapacity::table_name)
            .map(|name| self.tables.role(name));
        let table = match (tables.next(), tables.next()) {
            (Some(one), None) => one,
            (Some(_), Some(_)) => "several",
            (None, _) => "unknown",
        };
        crate::metrics::dynamodb_request(operation, table);
        for each in consumed {
            let role = each
                .table_name()
                .map_or("unknown", |name| self.tables.role(name));
            crate::metrics::dynamodb_capacity(
                operation,
                role,
                each.capacity_units().unwrap_or(0.0),
            );
        }
    }
}

/// Sorts an SDK error: DynamoDB out of reach, throttling or failing on its side is
/// unavailable; anything else is a bug or a misconfiguration, internal.
fn classify<E, R>(operation: &'static str, err: SdkError<E, R>) -> AppError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &err
        && matches!(
            service.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
            )
        )
    {
        crate::metrics::throttled(operation);
    }
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionConflictException"
            )
        ),
        _ => false,
    };
    let source = anyhow::Error::new(err).context(format!("DynamoDB {operation} failed"));
    if unavailable {
        AppError::unavailable(source)
    } else {
        AppError::internal(source)
    }
}

/// What a failed write attempt tells about the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteFailure {
    /// DynamoDB did not apply it (throttling, a refused connection): it may be sent again.
    NotApplied,
    /// The attempt went out and no definite answer came back (a timeout, a connection lost
    /// after the request went out, an answer that could not be read, a server error): it
    /// may have been applied.
    Unanswered,
    /// Anything else (the request itself is wrong): sending it again changes nothing.
    Final,
}

pub(crate) fn write_failure<E, R>(err: &SdkError<E, R>) -> WriteFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => WriteFailure::Unanswered,
        SdkError::DispatchFailure(_) if refused_connection(err) => WriteFailure::NotApplied,
        SdkError::DispatchFailure(_) => WriteFailure::Unanswered,
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => WriteFailure::NotApplied,
            Some("InternalServerError" | "ServiceUnavailable") => WriteFailure::Unanswered,
            // A server error without a code (from a proxy on the way, say).
            None if format!("{:?}", service.raw()).contains("status: 5") => {
                WriteFailure::Unanswered
            }
            _ => WriteFailure::Final,
        },
        _ => WriteFailure::Final,
    }
}

/// Sorts the error of a write's last attempt: when it went out and got no definite
/// answer, the change may have been made, the outcome is unknown, and the client is told
/// so (`uncertain` says an earlier attempt of the same write was left so). Otherwise as
/// [`classify`].
fn classify_write<E, R>(operation: &'static str, err: SdkError<E, R>, uncertain: bool) -> AppError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if uncertain || write_failure(&err) == WriteFailure::Unanswered {
        AppError::outcome_unknown(
            anyhow::Error::new(err).context(format!("DynamoDB {operation} got no answer")),
        )
    } else {
        classify(operation, err)
    }
}

impl Storage {
    /// Writes are retried here rather than by the SDK: a retry must know what the
    /// attempts before it did, which the SDK does not tell. Each call of a write carries
    /// this: the client's own configuration (its timeouts above all), without retries.
    pub(crate) fn no_sdk_retries(&self) -> aws_sdk_dynamodb::config::Builder {
        self.client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
    }
}

/// How many times a write is sent when DynamoDB did not apply it (throttling).
const WRITE_ATTEMPTS: u32 = 3;

/// Sends a single-item write (`UpdateItem`, `DeleteItem`), again when DynamoDB did not
/// apply it (throttling); never again when the outcome is open, as such a write is not
/// idempotent (`Version + 1` applied twice is two edits).
pub(crate) async fn write_once<T, E, R, Fut>(
    mut send: impl FnMut() -> Fut,
) -> Result<T, SdkError<E, R>>
where
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let mut attempt = 1;
    loop {
        match send().await {
            Err(err)
                if attempt < WRITE_ATTEMPTS && write_failure(&err) == WriteFailure::NotApplied =>
            {
                tokio::time::sleep(backoff(
                    attempt,
                    Duration::from_millis(50),
                    Duration::from_secs(1),
                ))
                .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Whether an error comes from a connection that was refused (nothing was sent).
fn refused_connection(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// Full-jitter exponential backoff: a random wait up to `base * 2^attempt`, capped.
fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1 << attempt.min(16)).min(cap);
    ceiling.mul_f64(fastrand::f64())
}
