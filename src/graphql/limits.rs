//! Limits on what one GraphQL document may ask for, checked after parsing and before
//! validation or any DynamoDB request: document size, number of operations, depth,
//! number of fields (aliases included) and cost.
//!
//! Cost counts the objects a query may return, as GitHub's node limit does: a field
//! costs 1 for each time it can appear, and a connection's `first` multiplies the
//! fields below it (async-graphql's own complexity ignores `first`). Fragments are
//! analysed once each, so a document of fragments spreading fragments cannot make the
//! analysis itself expensive.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    ServerError, ServerResult, Value, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{DocumentOperations, ExecutableDocument, Field, Selection, SelectionSet},
};

use super::{error::coded, types::DEFAULT_FIRST};
use crate::domain::PageSize;

/// The limits, each a maximum. Defaults let every canonical operation of API.md through
/// with room to spare (the costliest, `UsersPage`, costs 801).
#[derive(Clone, Copy, Debug)]
pub struct QueryLimits {
    pub max_bytes: usize,
    pub max_operations: usize,
    pub max_depth: usize,
    pub max_fields: u64,
    pub max_cost: u64,
    /// Whether `__schema` and `__type` may be queried (off in production mode).
    pub introspection: bool,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_bytes: 100_000,
            max_operations: 20,
            max_depth: 12,
            max_fields: 1_000,
            max_cost: 10_000,
            introspection: true,
        }
    }
}

/// The parser's bound on the nesting of values and fragment spreads.
pub const RECURSION_LIMIT: usize = 64;

/// The schema's connection fields: their `first` defaults to 20 when left out.
const CONNECTIONS: &[&str] = &["users", "posts", "comments"];

/// What a selection asks for, at a multiplier of 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    pub depth: usize,
    pub fields: u64,
    pub cost: u64,
}

impl Measure {
    fn add(&mut self, other: Measure) {
        self.depth = self.depth.max(other.depth);
        self.fields = self.fields.saturating_add(other.fields);
        self.cost = self.cost.saturating_add(other.cost);
    }
}

struct Analyzer<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    fragments: HashMap<&'a str, Measure>,
    /// Fragments being analysed: a spread of one of them is a cycle, which validation
    /// rejects later; here it counts as nothing.
    visiting: Vec<&'a str>,
}

impl<'a> Analyzer<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Measure {
        let mut total = Measure::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let children = self.selection_set(&field.selection_set.node);
                    let multiplier = self.first(field);
                    total.add(Measure {
                        depth: children.depth + 1,
                        fields: children.fields.saturating_add(1),
                        cost: children.cost.saturating_mul(multiplier).saturating_add(1),
                    });
                }
                Selection::InlineFragment(fragment) => {
                    total.add(self.selection_set(&fragment.node.selection_set.node));
                }
                Selection::FragmentSpread(spread) => {
                    total.add(self.fragment(spread.node.fragment_name.node.as_str()));
                }
            }
        }
        total
    }

    fn fragment(&mut self, name: &'a str) -> Measure {
        if let Some(measure) = self.fragments.get(name) {
            return *measure;
        }
        if self.visiting.contains(&name) {
            return Measure::default();
        }
        let Some((_, definition)) = self.document.fragments.get_key_value(name) else {
            return Measure::default();
        };
        self.visiting.push(name);
        let measure = self.selection_set(&definition.node.selection_set.node);
        self.visiting.pop();
        self.fragments.insert(name, measure);
        measure
    }

    /// How many times the selection below a field may appear: its `first`, clamped to
    /// what the server accepts (a `first` out of range is the resolver's `BAD_USER_INPUT`,
    /// not a cost).
    fn first(&self, field: &Field) -> u64 {
        let argument = field.get_argument("first");
        if argument.is_none() && !CONNECTIONS.contains(&field.name.node.as_str()) {
            return 1;
        }
        let value = argument.map(|value| {
            value
                .node
                .clone()
                .into_const_with(|name| self.variables.get(&name).cloned().ok_or(()))
        });
        let first = match value {
            Some(Ok(Value::Number(n))) => n.as_i64().unwrap_or(0),
            // Absent or null: the default page size.
            _ => i64::from(DEFAULT_FIRST.unwrap_or(0)),
        };
        u64::try_from(first.clamp(0, i64::from(PageSize::MAX))).unwrap_or(0)
    }
}

/// Measures the operation `operation_name` names (all of them when it names none).
pub fn measure(
    document: &ExecutableDocument,
    variables: &Variables,
    operation_name: Option<&str>,
) -> Measure {
    let mut analyzer = Analyzer {
        document,
        variables,
        fragments: HashMap::new(),
        visiting: Vec::new(),
    };
    let mut total = Measure::default();
    for (name, operation) in document.operations.iter() {
        let selected = match (operation_name, name) {
            (Some(wanted), Some(name)) => wanted == name.as_str(),
            _ => true,
        };
        if selected {
            let measure = analyzer.selection_set(&operation.node.selection_set.node);
            total.depth = total.depth.max(measure.depth);
            total.fields = total.fields.max(measure.fields);
            total.cost = total.cost.max(measure.cost);
        }
    }
    total
}

/// Whether any operation asks for `__schema` or `__type` at its root (directly or
/// through fragments).
fn introspects(document: &ExecutableDocument) -> bool {
    fn root(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
        depth < 16
            && set.items.iter().any(|item| match &item.node {
                Selection::Field(field) => {
                    matches!(field.node.name.node.as_str(), "__schema" | "__type")
                }
                Selection::InlineFragment(fragment) => {
                    root(document, &fragment.node.selection_set.node, depth + 1)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|f| root(document, &f.node.selection_set.node, depth + 1)),
            })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| root(document, &op.node.selection_set.node, 0))
}

fn too_complex(message: String) -> ServerError {
    coded(message, "QUERY_TOO_COMPLEX")
}

impl QueryLimits {
    /// Checks a parsed document against the limits.
    pub fn check(
        &self,
        document: &ExecutableDocument,
        variables: &Variables,
        operation_name: Option<&str>,
    ) -> Result<Measure, ServerError> {
        let operations = match &document.operations {
            DocumentOperations::Single(_) => 1,
            DocumentOperations::Multiple(ops) => ops.len(),
        };
        if operations > self.max_operations {
            return Err(too_complex(format!(
                "the document has {operations} operations; the limit is {}",
                self.max_operations
            )));
        }
        if !self.introspection && introspects(document) {
            return Err(coded(
                "introspection is turned off on this server",
                "GRAPHQL_VALIDATION_FAILED",
            ));
        }
        let measure = measure(document, variables, operation_name);
        if measure.depth > self.max_depth {
            return Err(too_complex(format!(
                "the query is nested {} levels deep; the limit is {}",
                measure.depth, self.max_depth
            )));
        }
        if measure.fields > self.max_fields {
            return Err(too_complex(format!(
                "the query selects {} fields (aliases included); the limit is {}",
                measure.fields, self.max_fields
            )));
        }
        if measure.cost > self.max_cost {
            return Err(too_complex(format!(
                "the query may return {} objects (each connection's `first` multiplies what \
                 it selects); the limit is {}",
                measure.cost, self.max_cost
            )));
        }
        Ok(measure)
    }
}

/// The extension that applies [`QueryLimits`] to every request.
pub struct Limits(pub QueryLimits);

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension(self.0))
    }
}

struct LimitsExtension(QueryLimits);

#[async_graphql::async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > self.0.max_bytes {
            return Err(too_complex(format!(
                "the document is {} bytes long; the limit is {}",
                query.len(),
                self.0.max_bytes
            )));
        }
        let nesting = bracket_depth(query);
        if nesting > RECURSION_LIMIT {
            return Err(too_complex(format!(
                "the document nests brackets {nesting} levels deep; the limit is {RECURSION_LIMIT}"
            )));
        }
        // Measured on our own parse before async-graphql's: its checks walk fragment
        // spreads without memory, which a fragment bomb makes exponential.
        if let Ok(document) = async_graphql::parser::parse_query(query) {
            let operation_name = ctx
                .data_opt::<OperationName>()
                .and_then(|name| name.0.as_deref());
            self.0.check(&document, variables, operation_name)?;
        }
        let document = next.run(ctx, query, variables).await.map_err(|err| {
            // The parser's own bound on nesting (lists, objects, and fragments spreading
            // fragments, cycles included) is a limit too.
            if err.message.starts_with("The recursion depth of the query") {
                too_complex(format!(
                    "the document nests (or spreads fragments) deeper than {RECURSION_LIMIT} levels"
                ))
            } else {
                err
            }
        })?;
        Ok(document)
    }
}

/// The deepest nesting of `{`, `[` and `(` outside strings and comments: a cheap bound
/// taken before the parser, whose recursion follows the nesting.
fn bracket_depth(query: &str) -> usize {
    let bytes = query.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// The name of the operation a request selects, for the limits to measure that one.
#[derive(Clone, Debug, Default)]
pub struct OperationName(pub Option<String>);

#[cfg(test)]
mod tests {
    use super::*;

    fn measure_of(query: &str) -> Measure {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        measure(&document, &Variables::default(), None)
    }

    #[test]
    fn first_multiplies_what_a_connection_selects() {
        let m =
            measure_of("{ users(first: 50) { nodes { id posts(first: 3) { nodes { title } } } } }");
        // users 1 + 50 × (nodes 1 + id 1 + posts 1 + 3 × (nodes 1 + title 1))
        assert_eq!(
            m,
            Measure {
                depth: 5,
                fields: 6,
                cost: 1 + 50 * (3 + 3 * 2)
            }
        );
        // No `first`: the default page size, 20.
        assert_eq!(measure_of("{ users { nodes { id } } }").cost, 1 + 20 * 2);
        // Out of range counts as the nearest valid size; the resolver refuses it.
        assert_eq!(
            measure_of("{ users(first: 100000) { nodes { id } } }").cost,
            1 + 100 * 2
        );
    }

    #[test]
    fn the_canonical_operations_are_well_inside_the_default_limits() {
        let document =
            async_graphql::parser::parse_query(include_str!("../../tests/api/operations.graphql"))
                .expect("parses");
        let limits = QueryLimits::default();
        let mut costs = Vec::new();
        for (name, _) in document.operations.iter() {
            let name = name.map(|n| n.to_string());
            let m = limits
                .check(&document, &Variables::default(), name.as_deref())
                .expect("within the limits");
            costs.push((name.unwrap_or_default(), m.cost));
        }
        let most = costs.iter().map(|(_, c)| *c).max().unwrap_or(0);
        assert_eq!(most, 801, "{costs:?}");
        assert!(most * 10 <= limits.max_cost);
    }

    #[test]
    fn fragments_count_where_they_are_spread_and_cycles_end() {
        let m = measure_of(
            "query { a: user(id: \"1\") { ...F } b: user(id: \"2\") { ...F } } \
             fragment F on User { id username ...G } fragment G on User { ...F }",
        );
        assert_eq!(m.fields, 2 + 2 * 2);
        assert_eq!(m.depth, 2);
    }

    #[test]
    fn bracket_depth_ignores_strings_and_comments() {
        assert_eq!(bracket_depth("{ a { b(x: [1, [2]]) } }"), 5);
        assert_eq!(bracket_depth("{ a(s: \"{{{{\\\"{{\") # {{{{\n }"), 2);
        assert_eq!(bracket_depth("{ a(s: \"\"\" {{{{ \"\"\") }"), 2);
        assert_eq!(bracket_depth(&"[".repeat(50_000)), 50_000);
    }

    #[test]
    fn fragment_bombs_are_measured_in_linear_time() {
        // Each fragment spreads the previous one twice: 2^40 fields if expanded.
        let mut query = String::from("{ user(id: \"1\") { ...F0 } } fragment F0 on User { id }");
        for i in 1..=40 {
            query.push_str(&format!(
                " fragment F{i} on User {{ ...F{p} ...F{p} }}",
                p = i - 1
            ));
        }
        query = query.replace("...F0 } }", "...F40 } }");
        let m = measure_of(&query);
        assert!(
            m.fields > 1_000_000_000,
            "counted as expanded: {}",
            m.fields
        );
    }
}
