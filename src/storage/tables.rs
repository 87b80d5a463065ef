//! Table names and definitions, exactly as Da Vinci lays them out.

use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_dynamodb::{
    Client,
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement,
        KeyType, Projection, ProjectionType, ScalarAttributeType, StreamSpecification,
        StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    },
};

use super::attributes::{
    CLAIM_KEY, COMMENT_ID, CREATED_AT, EXPIRES_AT, POST_ID, USER_ID, USERNAME_KEY,
};

pub(crate) const USER_POSTS_INDEX: &str = "user_posts_index";
pub(crate) const POST_COMMENTS_INDEX: &str = "post_comments_index";

/// The physical table names of one deployment: `{app_name}-{deployment_id}-{table}`.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Da Vinci's `UserTable`, keyed by `UserId`.
    pub users: String,
    /// Da Vinci's `PostTable`, keyed by `PostId`; `user_posts_index` lists a user's posts.
    pub posts: String,
    /// Da Vinci's `CommentTable`, keyed by `CommentId`; `post_comments_index` lists each
    /// post's comments.
    pub comments: String,
    /// Ours: one guard item per taken username (lowercased), so that two users can
    /// never hold the same name. Kept apart from the three tables Da Vinci code scans.
    pub usernames: String,
    /// Ours: what makes things happen once: the records of changes made under idempotency
    /// keys and the guards of counted comment changes (both expired by TTL), and relays'
    /// shard leases with their positions.
    pub idempotency: String,
}

impl Tables {
    /// The table names of one deployment; an error if DynamoDB would refuse one.
    pub fn new(app_name: &str, deployment_id: &str) -> anyhow::Result<Self> {
        let name = |table: &str| -> anyhow::Result<String> {
            let name = format!("{app_name}-{deployment_id}-{table}");
            // DynamoDB's own rule for table names.
            let valid = (3..=255).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                bail!(
                    "table name {name:?} is not valid: DA_VINCI_APP_NAME and DA_VINCI_DEPLOYMENT_ID \
                     may use letters, digits, '_', '-' and '.' only"
                );
            }
            Ok(name)
        };
        Ok(Self {
            users: name("users")?,
            posts: name("posts")?,
            comments: name("comments")?,
            usernames: name("usernames")?,
            idempotency: name("idempotency")?,
        })
    }

    /// The role of a table of this deployment (`users`, `posts`, …), as metrics label it:
    /// a bounded set, whatever the deployment's names.
    pub fn role(&self, name: &str) -> &'static str {
        [
            (&self.users, "users"),
            (&self.posts, "posts"),
            (&self.comments, "comments"),
            (&self.usernames, "usernames"),
            (&self.idempotency, "idempotency"),
        ]
        .into_iter()
        .find(|(table, _)| table.as_str() == name)
        .map_or("other", |(_, role)| role)
    }

    fn specs(&self) -> [TableSpec<'_>; 5] {
        [
            TableSpec {
                name: &self.users,
                key: USER_ID,
                index: None,
                stream: false,
                ttl: None,
            },
            TableSpec {
                name: &self.posts,
                key: POST_ID,
                index: Some((USER_POSTS_INDEX, USER_ID, CREATED_AT)),
                stream: true,
                ttl: None,
            },
            TableSpec {
                name: &self.comments,
                key: COMMENT_ID,
                index: Some((POST_COMMENTS_INDEX, POST_ID, CREATED_AT)),
                stream: true,
                ttl: None,
            },
            TableSpec {
                name: &self.usernames,
                key: USERNAME_KEY,
                index: None,
                stream: false,
                ttl: None,
            },
            TableSpec {
                name: &self.idempotency,
                key: CLAIM_KEY,
                index: None,
                stream: false,
                ttl: Some(EXPIRES_AT),
            },
        ]
    }
}

struct TableSpec<'a> {
    name: &'a str,
    key: &'static str,
    /// (index name, partition key S, sort key N), projection ALL.
    index: Option<(&'static str, &'static str, &'static str)>,
    /// A stream of new images feeds subscriptions.
    stream: bool,
    /// The attribute DynamoDB's time to live reads, if any.
    ttl: Option<&'static str>,
}

fn key(name: &str, kind: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()?)
}

fn attribute(name: &str, kind: ScalarAttributeType) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()?)
}

/// Creates every missing table (with its index) and waits until all are ACTIVE.
/// Safe to run again and from several processes at once.
pub(crate) async fn create_tables(client: &Client, tables: &Tables) -> anyhow::Result<()> {
    for spec in tables.specs() {
        match describe(client, spec.name).await? {
            None => {
                create(client, &spec).await?;
                tracing::info!(table = spec.name, "created table");
            }
            Some(table) if spec.stream => enable_stream(client, spec.name, &table).await?,
            Some(_) => {}
        }
    }
    for spec in tables.specs() {
        wait_active(client, spec.name).await?;
        if let Some(attribute) = spec.ttl {
            enable_ttl(client, spec.name, attribute).await?;
        }
    }
    Ok(())
}

/// Turns on a table's time to live, unless it is on already.
async fn enable_ttl(client: &Client, name: &str, attribute: &str) -> anyhow::Result<()> {
    let current = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .with_context(|| format!("describing the time to live of {name}"))?;
    let status = current
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()?,
        )
        .send()
        .await
        .with_context(|| format!("enabling the time to live of {name}"))?;
    tracing::info!(table = name, attribute, "enabled the table's time to live");
    Ok(())
}

fn new_images() -> anyhow::Result<StreamSpecification> {
    Ok(StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()?)
}

/// Turns on the stream of a table made without one (by Da Vinci, or by an older
/// version of this server), with new and old images. A stream of new images only (an
/// older version's) is switched over: DynamoDB changes a stream's view only by turning it
/// off and on again, as a new stream; writes in between reach no stream.
async fn enable_stream(
    client: &Client,
    name: &str,
    table: &aws_sdk_dynamodb::types::TableDescription,
) -> anyhow::Result<()> {
    let current = table
        .stream_specification()
        .filter(|s| s.stream_enabled())
        .and_then(|s| s.stream_view_type());
    match current {
        Some(StreamViewType::NewAndOldImages) => Ok(()),
        Some(StreamViewType::NewImage) => {
            wait_active(client, name).await?;
            client
                .update_table()
                .table_name(name)
                .stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(false)
                        .build()?,
                )
                .send()
                .await
                .with_context(|| format!("turning off the stream of {name}"))?;
            wait_active(client, name).await?;
            client
                .update_table()
                .table_name(name)
                .stream_specification(new_images()?)
                .send()
                .await
                .with_context(|| format!("turning the stream of {name} on again"))?;
            tracing::warn!(
                table = name,
                "switched the table's stream to new and old images: writes made while it was \
                 off reached no subscriber"
            );
            Ok(())
        }
        Some(other) => bail!(
            "table {name} has a stream of {other:?}; subscriptions need new and old images \
             (NEW_AND_OLD_IMAGES); turn the stream off and run create-tables again"
        ),
        None => {
            wait_active(client, name).await?;
            client
                .update_table()
                .table_name(name)
                .stream_specification(new_images()?)
                .send()
                .await
                .with_context(|| format!("enabling the stream of {name}"))?;
            tracing::info!(table = name, "enabled the table's stream");
            Ok(())
        }
    }
}

async fn describe(
    client: &Client,
    name: &str,
) -> anyhow::Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(err) => Err(anyhow::Error::new(err).context(format!("describing table {name}"))),
    }
}

async fn create(client: &Client, spec: &TableSpec<'_>) -> anyhow::Result<()> {
    let mut request = client
        .create_table()
        .table_name(spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(spec.key, KeyType::Hash)?)
        .attribute_definitions(attribute(spec.key, ScalarAttributeType::S)?);
    if spec.stream {
        request = request.stream_specification(new_images()?);
    }
    if let Some((index, partition, sort)) = spec.index {
        request = request
            .attribute_definitions(attribute(partition, ScalarAttributeType::S)?)
            .attribute_definitions(attribute(sort, ScalarAttributeType::N)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .key_schema(key(partition, KeyType::Hash)?)
                    .key_schema(key(sort, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        // Another process created it between our describe and create.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(err) => Err(anyhow::Error::new(err).context(format!("creating table {}", spec.name))),
    }
}

async fn wait_active(client: &Client, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let table = describe(client, name)
            .await?
            .with_context(|| format!("table {name} disappeared while waiting for it"))?;
        let indexes_active = table
            .global_secondary_indexes()
            .iter()
            .all(|i| i.index_status() == Some(&IndexStatus::Active));
        if table.table_status() == Some(&TableStatus::Active) && indexes_active {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("table {name} did not become ACTIVE within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
