//! Limits on what one GraphQL document may ask for, checked on the parsed document before
//! validation or any DynamoDB request: number of operations, nesting, depth, number of
//! fields (aliases included) and cost.
//!
//! Cost counts the objects a query may return, as GitHub's node limit does: a field
//! costs 1 for each time it can appear, and a connection's `first` multiplies the
//! fields below it (async-graphql's own complexity ignores `first`). A `first` given by a
//! variable counts at the variable's value, or its default when the request leaves it out,
//! exactly as execution will use it.
//!
//! Every walk here is linear in the document: each fragment is measured once, however
//! often it is spread, and no walk goes deeper than [`RECURSION_LIMIT`], so neither a
//! fragment bomb nor a chain of thousands of fragments makes the analysis itself costly
//! (async-graphql's own checks, which run after these, follow spreads without memory).

//!
//! [`fields`] knows the schema's field types (introspection's included), [`measure`]
//! walks a document, and this module holds the limits against what it finds.

mod fields;
mod measure;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use async_graphql::{
    Positioned, ServerError, Variables,
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    },
};

use super::error::coded;
use crate::{config::QueryLimits, error::ErrorCode};

use self::measure::Analyzer;
pub use self::{
    fields::FieldTypes,
    measure::{Measure, measure},
};

/// The deepest nesting a document may have: of brackets before it is parsed, and of
/// selection sets, fragment spreads and inline fragments once it is (the parser and
/// async-graphql's own walks recurse once per level).
pub const RECURSION_LIMIT: usize = 64;
/// What a connection with a time range adds to the cost: its `totalCount` is a count on
/// the index, which reads the range (as many items as a hundred objects would be, at the
/// least).
const RANGE_COUNT_COST: u64 = 100;
/// What a backward page of `users` adds to the cost: it walks the table from its start,
/// up to 20 `Scan`s of 1,000 users, so a query holds at most three of them.
const BACKWARD_USERS_COST: u64 = 2_500;

/// Introspection's lists of fields and types, which nest into each other: at most
/// [`MAX_INTROSPECTION_LISTS`] levels of them, as graphql-js's `MaxIntrospectionDepthRule`
/// allows. The standard introspection query nests two (`types { fields }`); more only
/// multiplies the same schema into a larger answer.
const INTROSPECTION_LISTS: &[&str] = &["fields", "inputFields", "interfaces", "possibleTypes"];
const MAX_INTROSPECTION_LISTS: usize = 2;

/// `__type` lookups one operation may make (by response key; tools make one at a time).
const MAX_TYPE_LOOKUPS: usize = 20;

/// The operation a request runs: the one `operation_name` names, or the only one.
pub fn selected<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<&'d Positioned<OperationDefinition>, ServerError> {
    // An empty name is no name (some clients send `"operationName": ""`).
    match (
        &document.operations,
        operation_name.filter(|name| !name.is_empty()),
    ) {
        (DocumentOperations::Single(operation), None) => Ok(operation),
        // The only operation has no name, so it is not the one asked for.
        (DocumentOperations::Single(_), Some(name)) => Err(coded(
            format!("the document has no operation named {name:?}"),
            ErrorCode::BadUserInput,
        )),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).ok_or_else(|| {
                coded(
                    format!("the document has no operation named {name:?}"),
                    ErrorCode::BadUserInput,
                )
            })
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .values()
            .next()
            .ok_or_else(|| coded("the document has no operation", ErrorCode::BadUserInput)),
        (DocumentOperations::Multiple(_), None) => Err(coded(
            "the document has several operations: name the one to run in `operationName`",
            ErrorCode::BadUserInput,
        )),
    }
}

/// Whether an operation asks for `__schema` or `__type` at its root, directly or through
/// fragments (each fragment looked at once).
fn introspects(document: &ExecutableDocument, operation: &OperationDefinition) -> bool {
    let mut pending = vec![&operation.selection_set.node];
    let mut seen = HashSet::new();
    while let Some(set) = pending.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    if matches!(field.node.name.node.as_str(), "__schema" | "__type") {
                        return true;
                    }
                }
                Selection::InlineFragment(fragment) => {
                    pending.push(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if seen.insert(name.as_str())
                        && let Some(fragment) = document.fragments.get(name)
                    {
                        pending.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    false
}

fn too_complex(message: String) -> ServerError {
    coded(message, ErrorCode::QueryTooComplex)
}

impl QueryLimits {
    /// Checks how many operations a document holds (before one is chosen to run).
    pub fn check_operations(&self, document: &ExecutableDocument) -> Result<(), ServerError> {
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
        Ok(())
    }

    /// Checks a parsed document against the limits: nesting, depth and fields for every
    /// operation (validation reads them all), cost for the one that runs. Returns that
    /// operation's measure.
    pub fn check(
        &self,
        document: &ExecutableDocument,
        variables: &Variables,
        run: &OperationDefinition,
        types: &FieldTypes,
    ) -> Result<Measure, ServerError> {
        self.check_operations(document)?;
        let mut analyzer = Analyzer::new(document, variables, types, self.max_directives);
        let mut reached: HashSet<&str> = HashSet::new();
        let mut selected = None;
        for (_, operation) in document.operations.iter() {
            let operation = &operation.node;
            if !self.introspection && introspects(document, operation) {
                return Err(coded(
                    "introspection is turned off on this server",
                    ErrorCode::GraphqlValidationFailed,
                ));
            }
            let measure = analyzer.operation(operation);
            if analyzer.too_deep || measure.nesting > RECURSION_LIMIT {
                return Err(too_complex(format!(
                    "the document nests selections and fragments more than \
                     {RECURSION_LIMIT} levels deep"
                )));
            }
            if let Some(fragment) = analyzer.unknown {
                return Err(coded(
                    format!("unknown fragment {fragment:?}"),
                    ErrorCode::GraphqlValidationFailed,
                ));
            }
            if let Some(fragment) = analyzer.cycle {
                return Err(coded(
                    format!("fragment {fragment:?} spreads itself, directly or through others"),
                    ErrorCode::GraphqlValidationFailed,
                ));
            }
            if let Some(refusal) = analyzer.refusal.take() {
                return Err(refusal);
            }
            reached.extend(analyzer.fragments.keys().copied());
            if analyzer.schemas.len() > 1 {
                return Err(too_complex(format!(
                    "the operation asks for `__schema` {} times; once holds all of it",
                    analyzer.schemas.len()
                )));
            }
            if analyzer.type_lookups.len() > MAX_TYPE_LOOKUPS {
                return Err(too_complex(format!(
                    "the operation looks up {} types with `__type`; the limit is \
                     {MAX_TYPE_LOOKUPS}",
                    analyzer.type_lookups.len()
                )));
            }
            if measure.introspection_lists > MAX_INTROSPECTION_LISTS {
                return Err(too_complex(format!(
                    "introspection nests `fields`, `inputFields`, `interfaces` and \
                     `possibleTypes` {} levels deep; the limit is {MAX_INTROSPECTION_LISTS}",
                    measure.introspection_lists
                )));
            }
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
            if std::ptr::eq(operation, run) {
                selected = Some(measure);
                // Each event is resolved for every distinct selection: cursors would make
                // every subscriber's selection distinct, and an event's cost theirs.
                if run.ty == OperationType::Subscription && analyzer.cursor {
                    return Err(coded(
                        "a subscription's selection may not page from a cursor (`after` or \
                         `before`): an event shows the first or last page of a connection",
                        ErrorCode::BadUserInput,
                    ));
                }
            }
        }
        // A fragment no operation uses is invalid; refusing it here spares validation
        // from walking what would never run.
        if let Some(unused) = document
            .fragments
            .keys()
            .find(|name| !reached.contains(name.as_str()))
        {
            return Err(coded(
                format!("fragment {unused:?} is never used"),
                ErrorCode::GraphqlValidationFailed,
            ));
        }
        let measure = selected.unwrap_or_else(|| measure(document, variables, run, types));
        let (limit, what) = match run.ty {
            OperationType::Subscription => (self.max_subscription_cost, "a subscription's event"),
            _ => (self.max_cost, "the query"),
        };
        if measure.cost > limit {
            return Err(too_complex(format!(
                "{what} may return {} objects (each connection's `first` or `last` multiplies what \
                 it selects); the limit is {limit}",
                measure.cost
            )));
        }
        Ok(measure)
    }
}
