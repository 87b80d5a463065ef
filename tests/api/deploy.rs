//! The deployable template (`deploy/template.json`, AWS SAM): its tables are the ones
//! `create-tables` makes, its policy grants what the README lists, and `cfn-lint` passes it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{fresh_tables, raw_client};

const TEMPLATE: &str = include_str!("../../deploy/template.json");
const README: &str = include_str!("../../README.md");

/// A key: each attribute with its role (`HASH`, `RANGE`).
type Key = Vec<(String, String)>;

/// A table as both sides describe it: name, billing mode, key, attributes, indexes (name,
/// key, projection), stream view and time-to-live attribute.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    name: String,
    billing: String,
    key: Key,
    attributes: BTreeSet<(String, String)>,
    indexes: BTreeSet<(String, Key, String)>,
    stream: Option<String>,
    ttl: Option<String>,
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn pairs(list: &Value, first: &str, second: &str) -> Vec<(String, String)> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| (text(&item[first]), text(&item[second])))
                .collect()
        })
        .unwrap_or_default()
}

/// The template's tables, their names as CloudFormation substitutes them.
fn template_tables(app: &str, deployment: &str) -> BTreeSet<Shape> {
    let template: Value = serde_json::from_str(TEMPLATE).expect("the template is JSON");
    let resources = template["Resources"].as_object().expect("resources");
    resources
        .values()
        .filter(|resource| resource["Type"] == "AWS::DynamoDB::Table")
        .map(|table| {
            let properties = &table["Properties"];
            let name = text(&properties["TableName"]["Fn::Sub"])
                .replace("${AppName}", app)
                .replace("${DeploymentId}", deployment);
            let indexes = properties["GlobalSecondaryIndexes"]
                .as_array()
                .map(|indexes| {
                    indexes
                        .iter()
                        .map(|index| {
                            (
                                text(&index["IndexName"]),
                                pairs(&index["KeySchema"], "AttributeName", "KeyType"),
                                text(&index["Projection"]["ProjectionType"]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Shape {
                name,
                billing: text(&properties["BillingMode"]),
                key: pairs(&properties["KeySchema"], "AttributeName", "KeyType"),
                attributes: pairs(
                    &properties["AttributeDefinitions"],
                    "AttributeName",
                    "AttributeType",
                )
                .into_iter()
                .collect(),
                indexes,
                stream: properties["StreamSpecification"]["StreamViewType"]
                    .as_str()
                    .map(str::to_owned),
                ttl: properties["TimeToLiveSpecification"]["AttributeName"]
                    .as_str()
                    .map(str::to_owned),
            }
        })
        .collect()
}

#[tokio::test]
async fn the_templates_tables_are_the_ones_create_tables_makes() {
    let (config, storage) = fresh_tables().await;
    let tables = storage.tables();
    let client = raw_client();
    let mut made = BTreeSet::new();
    for name in [
        &tables.users,
        &tables.posts,
        &tables.comments,
        &tables.usernames,
        &tables.idempotency,
    ] {
        let table = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("described")
            .table
            .expect("a table");
        let ttl = client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .expect("time to live")
            .time_to_live_description
            .filter(|ttl| {
                ttl.time_to_live_status()
                    .is_some_and(|status| status.as_str() == "ENABLED")
            })
            .and_then(|ttl| ttl.attribute_name().map(str::to_owned));
        let key = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            schema
                .iter()
                .map(|k| {
                    (
                        k.attribute_name().to_owned(),
                        k.key_type().as_str().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        made.insert(Shape {
            name: name.clone(),
            billing: table
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|b| b.as_str().to_owned())
                .unwrap_or_default(),
            key: key(table.key_schema()),
            attributes: table
                .attribute_definitions()
                .iter()
                .map(|a| {
                    (
                        a.attribute_name().to_owned(),
                        a.attribute_type().as_str().to_owned(),
                    )
                })
                .collect(),
            indexes: table
                .global_secondary_indexes()
                .iter()
                .map(|index| {
                    (
                        index.index_name().unwrap_or_default().to_owned(),
                        key(index.key_schema()),
                        index
                            .projection()
                            .and_then(|p| p.projection_type())
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            stream: table
                .stream_specification()
                .filter(|s| s.stream_enabled())
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_owned()),
            ttl,
        });
    }
    let settings = &config.storage;
    assert_eq!(
        template_tables(&settings.app_name, &settings.deployment_id),
        made
    );
}

#[test]
fn the_templates_policy_grants_what_the_readme_lists_on_those_tables_only() {
    let template: Value = serde_json::from_str(TEMPLATE).expect("the template is JSON");
    let function = &template["Resources"]["ApiFunction"]["Properties"];
    let statements = function["Policies"][0]["Statement"]
        .as_array()
        .expect("statements");
    let actions = |sid: &str| -> BTreeSet<String> {
        statements
            .iter()
            .filter(|s| s["Sid"] == sid)
            .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
            .map(|a| text(&a).trim_start_matches("dynamodb:").to_owned())
            .collect()
    };
    let tables: BTreeSet<String> = [
        "BatchGetItem",
        "BatchWriteItem",
        "GetItem",
        "Query",
        "Scan",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "ConditionCheckItem",
        "TransactWriteItems",
        "DescribeTable",
    ]
    .map(str::to_owned)
    .into();
    let streams: BTreeSet<String> = ["DescribeStream", "GetShardIterator", "GetRecords"]
        .map(str::to_owned)
        .into();
    assert_eq!(actions("Tables"), tables);
    assert_eq!(actions("Streams"), streams);
    assert_eq!(statements.len(), 2, "nothing else is granted");
    // The README's list is the same one.
    let listed = README
        .split("the server\nneeds")
        .nth(1)
        .or_else(|| README.split("the server needs").nth(1))
        .expect("the README lists the actions");
    for action in tables.iter().chain(&streams) {
        assert!(
            listed.contains(&format!("`{action}`"))
                || listed.contains(&format!("dynamodb:{action}")),
            "{action}"
        );
    }
    // On the five tables and their indexes, and the two streams: nothing with a wildcard
    // but the indexes of those tables.
    let resources: Vec<String> = statements
        .iter()
        .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
        .map(|r| r.to_string())
        .collect();
    assert_eq!(resources.len(), 5 * 2 + 2, "{resources:?}");
    for resource in &resources {
        assert!(
            [
                "UsersTable",
                "PostsTable",
                "CommentsTable",
                "UsernamesTable",
                "IdempotencyTable"
            ]
            .iter()
            .any(|t| resource.contains(t)),
            "{resource}"
        );
        assert!(!resource.contains("\"*\""), "{resource}");
    }
}

#[tokio::test]
async fn cfn_lint_passes_the_template() {
    let root = env!("CARGO_MANIFEST_DIR");
    let install = tokio::process::Command::new(format!("{root}/scripts/cfn-lint.sh"))
        .arg("install")
        .status()
        .await
        .expect("scripts/cfn-lint.sh runs");
    assert!(install.success(), "cfn-lint could not be installed");
    let lint = tokio::process::Command::new(format!("{root}/target/cfn-lint/bin/cfn-lint"))
        .arg(format!("{root}/deploy/template.json"))
        .output()
        .await
        .expect("cfn-lint runs");
    assert!(
        lint.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}
