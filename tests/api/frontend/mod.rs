//! What frontend clients (Relay, Apollo Client, urql) reach for: object identification
//! (`node`, `nodes`), `totalCount` on every connection, paging both ways, and time ranges;
//! and `recount`, which repairs the counters behind `totalCount`. Here: what several of
//! those files share (the cost of a request, writes behind the server's back, and a
//! reader of one page of any connection).

mod counts;
mod nodes;
mod paging;
mod ranges;
mod recount;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

use crate::helpers::{TestApp, raw_client};

/// How many DynamoDB requests a response's cost counts, and how many of each operation.
fn requests(cost: &Value) -> (u64, Value) {
    (
        cost["requests"].as_u64().expect("requests"),
        cost["byOperation"].clone(),
    )
}

// ---------------------------------------------------------------------------------------
// Writes through the API, and behind its back.
// ---------------------------------------------------------------------------------------

const CREATE_POST: &str =
    "mutation($t: String!) { createPost(input: { title: $t, content: \"Some content\" }) { id } }";
const DELETE_POST: &str = "mutation($id: ID!) { deletePost(id: $id) }";
const DELETE_COMMENT: &str = "mutation($id: ID!) { deleteComment(id: $id) }";

/// A string attribute.
fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Puts an item straight into one of the test's tables, as another program would.
async fn put(table: &str, item: Vec<(&str, AttributeValue)>) {
    raw_client()
        .put_item()
        .table_name(table)
        .set_item(Some(
            item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
        .send()
        .await
        .expect("put");
}

// ---------------------------------------------------------------------------------------
// One page of a connection, read and checked: for paging both ways and time ranges.
// ---------------------------------------------------------------------------------------

const PAGE_FIELDS: &str = "totalCount nodes { id } edges { cursor node { id } } \
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }";
const PAGE_VARIABLES: &str = "$first: Int, $after: String, $last: Int, $before: String";
const PAGE_ARGUMENTS: &str = "first: $first, after: $after, last: $last, before: $before";

/// The arguments of one page; unset ones are left out of the request.
#[derive(Clone, Debug, Default)]
struct Args {
    first: Option<i64>,
    after: Option<String>,
    last: Option<i64>,
    before: Option<String>,
}

fn forward(first: i64) -> Args {
    Args {
        first: Some(first),
        ..Args::default()
    }
}

fn backward(last: i64) -> Args {
    Args {
        last: Some(last),
        ..Args::default()
    }
}

impl Args {
    fn after(mut self, cursor: &str) -> Self {
        self.after = Some(cursor.to_owned());
        self
    }

    fn before(mut self, cursor: &str) -> Self {
        self.before = Some(cursor.to_owned());
        self
    }
}

/// One page as read, its cursors checked against its `pageInfo`.
#[derive(Debug)]
struct Page {
    ids: Vec<String>,
    cursors: Vec<String>,
    has_previous: bool,
    has_next: bool,
    total: i64,
}

impl Page {
    fn start(&self) -> Option<String> {
        self.cursors.first().cloned()
    }

    fn end(&self) -> Option<String> {
        self.cursors.last().cloned()
    }
}

/// One connection of the API: the query that reads a page of it, and where the page is.
struct Conn {
    name: String,
    query: String,
    variables: Value,
    path: &'static [&'static str],
}

impl Conn {
    fn users() -> Self {
        Self {
            name: "users".into(),
            query: format!(
                "query({PAGE_VARIABLES}) {{ users({PAGE_ARGUMENTS}) {{ {PAGE_FIELDS} }} }}"
            ),
            variables: json!({}),
            path: &["users"],
        }
    }

    fn posts_of(user: &str) -> Self {
        Self {
            name: format!("posts of {user}"),
            query: format!(
                "query($parent: ID!, {PAGE_VARIABLES}, $from: DateTime, $to: DateTime) {{ \
                 user(id: $parent) {{ posts({PAGE_ARGUMENTS}, createdAfter: $from, createdBefore: $to) \
                 {{ {PAGE_FIELDS} }} }} }}"
            ),
            variables: json!({ "parent": user }),
            path: &["user", "posts"],
        }
    }

    fn comments_of(post: &str) -> Self {
        Self {
            name: format!("comments of {post}"),
            query: format!(
                "query($parent: ID!, {PAGE_VARIABLES}, $from: DateTime, $to: DateTime) {{ \
                 post(id: $parent) {{ comments({PAGE_ARGUMENTS}, createdAfter: $from, createdBefore: $to) \
                 {{ {PAGE_FIELDS} }} }} }}"
            ),
            variables: json!({ "parent": post }),
            path: &["post", "comments"],
        }
    }

    /// The same list under a time range (`createdAfter`, `createdBefore`).
    fn within(mut self, after: Option<String>, before: Option<String>) -> Self {
        self.name = format!(
            "{} created after {after:?} and before {before:?}",
            self.name
        );
        let variables = self.variables.as_object_mut().expect("an object");
        if let Some(after) = after {
            variables.insert("from".into(), json!(after));
        }
        if let Some(before) = before {
            variables.insert("to".into(), json!(before));
        }
        self
    }

    /// The whole response to a request for one page.
    async fn body(&self, app: &TestApp, args: &Args) -> Value {
        let mut variables = self.variables.clone();
        let map = variables.as_object_mut().expect("an object");
        if let Some(first) = args.first {
            map.insert("first".into(), json!(first));
        }
        if let Some(after) = &args.after {
            map.insert("after".into(), json!(after));
        }
        if let Some(last) = args.last {
            map.insert("last".into(), json!(last));
        }
        if let Some(before) = &args.before {
            map.insert("before".into(), json!(before));
        }
        app.query(&self.query, variables).await
    }

    /// One page, which must come without errors.
    async fn page(&self, app: &TestApp, args: &Args) -> Page {
        let body = self.body(app, args).await;
        self.read(&body, args)
    }

    fn read(&self, body: &Value, args: &Args) -> Page {
        let what = format!("{} with {args:?}", self.name);
        assert!(body.get("errors").is_none(), "{what}: {body}");
        let mut connection = &body["data"];
        for key in self.path {
            connection = &connection[*key];
        }
        let ids: Vec<String> = connection["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: nodes: {body}"))
            .iter()
            .map(|node| node["id"].as_str().expect("id").to_owned())
            .collect();
        let edges = connection["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: edges: {body}"));
        let edge_ids: Vec<String> = edges
            .iter()
            .map(|edge| edge["node"]["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(edge_ids, ids, "{what}: edges and nodes agree");
        let cursors: Vec<String> = edges
            .iter()
            .map(|edge| edge["cursor"].as_str().expect("cursor").to_owned())
            .collect();
        let info = &connection["pageInfo"];
        assert_eq!(
            info["startCursor"],
            cursors.first().map_or(Value::Null, |c| json!(c)),
            "{what}: startCursor is the first edge's cursor (null on an empty page)"
        );
        assert_eq!(
            info["endCursor"],
            cursors.last().map_or(Value::Null, |c| json!(c)),
            "{what}: endCursor is the last edge's cursor (null on an empty page)"
        );
        Page {
            ids,
            cursors,
            has_previous: info["hasPreviousPage"]
                .as_bool()
                .unwrap_or_else(|| panic!("{what}: hasPreviousPage: {body}")),
            has_next: info["hasNextPage"]
                .as_bool()
                .unwrap_or_else(|| panic!("{what}: hasNextPage: {body}")),
            total: connection["totalCount"]
                .as_i64()
                .unwrap_or_else(|| panic!("{what}: totalCount: {body}")),
        }
    }
}

/// Walks `conn` forward in pages of `size`, checking each page against `expected`.
async fn walk_forward(app: &TestApp, conn: &Conn, expected: &[String], size: usize) {
    let n = expected.len();
    let mut after: Option<String> = None;
    let mut at = 0;
    loop {
        let mut args = forward(size as i64);
        args.after = after.clone();
        let page = conn.page(app, &args).await;
        let end = (at + size).min(n);
        let what = format!("{}: forward page of {size} from {at} of {n}", conn.name);
        assert_eq!(page.ids, expected[at..end].to_vec(), "{what}: items");
        assert_eq!(
            page.has_previous,
            after.is_some(),
            "{what}: hasPreviousPage is whether `after` was given"
        );
        assert_eq!(
            page.has_next,
            end < n,
            "{what}: hasNextPage is whether items follow"
        );
        assert_eq!(page.total, n as i64, "{what}: totalCount");
        if end == n {
            return;
        }
        after = Some(page.end().expect("a cursor to go on from"));
        at = end;
    }
}

/// Walks `conn` backward from its end in pages of `size`, checking each page against
/// `expected` and that the pages, put together, are the list.
async fn walk_backward(app: &TestApp, conn: &Conn, expected: &[String], size: usize) {
    let n = expected.len();
    let mut before: Option<String> = None;
    let mut end = n;
    let mut collected: Vec<String> = Vec::new();
    loop {
        let mut args = backward(size as i64);
        args.before = before.clone();
        let page = conn.page(app, &args).await;
        let start = end.saturating_sub(size);
        let what = format!(
            "{}: backward page of {size} ending at {end} of {n}",
            conn.name
        );
        assert_eq!(
            page.ids,
            expected[start..end].to_vec(),
            "{what}: the items right before, in list order"
        );
        assert_eq!(
            page.has_previous,
            start > 0,
            "{what}: hasPreviousPage is whether items precede"
        );
        assert_eq!(
            page.has_next,
            before.is_some(),
            "{what}: hasNextPage is whether `before` was given"
        );
        assert_eq!(page.total, n as i64, "{what}: totalCount");
        collected.splice(0..0, page.ids.iter().cloned());
        if start == 0 {
            break;
        }
        before = Some(page.start().expect("a cursor to go on from"));
        end = start;
    }
    assert_eq!(
        collected,
        expected.to_vec(),
        "{}: walking back in pages of {size} collects the forward walk's items",
        conn.name
    );
}

async fn walk_both_ways(app: &TestApp, conn: &Conn, expected: &[String], sizes: &[usize]) {
    for &size in sizes {
        walk_forward(app, conn, expected, size).await;
        walk_backward(app, conn, expected, size).await;
    }
}
