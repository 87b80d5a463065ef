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

use std::collections::{HashMap, HashSet};

use async_graphql::{
    Positioned, ServerError, Value, Variables,
    parser::types::{
        Directive, DocumentOperations, ExecutableDocument, Field, OperationDefinition,
        OperationType, Selection, SelectionSet,
    },
};

use super::{error::coded, types::DEFAULT_FIRST};
use crate::{config::QueryLimits, domain::PageSize, error::ErrorCode};

/// The deepest nesting a document may have: of brackets before it is parsed, and of
/// selection sets, fragment spreads and inline fragments once it is (the parser and
/// async-graphql's own walks recurse once per level).
pub const RECURSION_LIMIT: usize = 64;

/// A connection field is one whose type is a Relay connection, `…Connection` by the
/// connection spec's naming: read from the schema, so that no connection escapes the
/// cost. Its `first` defaults to 20 when left out.
fn is_connection(ty: &str) -> bool {
    ty.ends_with("Connection")
}

/// Fields that count for more than one value: they may hold many kilobytes (a post's
/// `content` 64 KiB, a comment's 8), and count one per kilobyte. Without this, a hundred
/// aliases of `content` on a page of long posts would cost a few thousand objects yet
/// build a response of hundreds of megabytes; with it, no response passes about 10 MB.
const HEAVY_FIELDS: &[(&str, &str, u64)] = &[("Post", "content", 64), ("Comment", "content", 8)];

/// The introspection types, as the GraphQL spec defines them (fields' types only, which is
/// all the limits read): a schema's SDL leaves them out.
const INTROSPECTION: &str = "
    type __Schema { description: String types: [__Type!]! queryType: __Type!
        mutationType: __Type subscriptionType: __Type directives: [__Directive!]! }
    type __Type { kind: __TypeKind! name: String description: String
        specifiedByURL: String isOneOf: Boolean fields: [__Field!] interfaces: [__Type!]
        possibleTypes: [__Type!] enumValues: [__EnumValue!] inputFields: [__InputValue!]
        ofType: __Type }
    type __Field { name: String! description: String args: [__InputValue!]! type: __Type!
        isDeprecated: Boolean! deprecationReason: String }
    type __InputValue { name: String! description: String type: __Type!
        defaultValue: String isDeprecated: Boolean! deprecationReason: String }
    type __EnumValue { name: String! description: String isDeprecated: Boolean!
        deprecationReason: String }
    type __Directive { name: String! description: String locations: [__DirectiveLocation!]!
        args: [__InputValue!]! isRepeatable: Boolean! }
";

/// Introspection's lists of fields and types, which nest into each other: at most
/// [`MAX_INTROSPECTION_LISTS`] levels of them, as graphql-js's `MaxIntrospectionDepthRule`
/// allows. The standard introspection query nests two (`types { fields }`); more only
/// multiplies the same schema into a larger answer.
const INTROSPECTION_LISTS: &[&str] = &["fields", "inputFields", "interfaces", "possibleTypes"];
const MAX_INTROSPECTION_LISTS: usize = 2;

/// `__type` lookups one operation may make (by response key; tools make one at a time).
const MAX_TYPE_LOOKUPS: usize = 20;

/// The type of every field of the schema's object and interface types (lists and
/// non-null unwrapped), read from its SDL: what the limits need to know which `content`
/// a selection asks for.
#[derive(Clone, Debug, Default)]
pub struct FieldTypes {
    /// By type, then by field: the field's type. Looked up for every field measured, by
    /// borrowed names.
    fields: HashMap<String, HashMap<String, String>>,
    roots: [String; 3],
}

impl FieldTypes {
    pub fn from_sdl(sdl: &str) -> Self {
        use async_graphql::parser::types::{BaseType, TypeKind, TypeSystemDefinition};

        let mut fields = HashMap::new();
        let mut roots = [
            "Query".to_owned(),
            "Mutation".to_owned(),
            "Subscription".to_owned(),
        ];
        let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
            return Self::default();
        };
        let Ok(introspection) = async_graphql::parser::parse_schema(INTROSPECTION) else {
            return Self::default();
        };
        for definition in document
            .definitions
            .into_iter()
            .chain(introspection.definitions)
        {
            match definition {
                TypeSystemDefinition::Type(definition) => {
                    let definition = definition.node;
                    let declared = match definition.kind {
                        TypeKind::Object(object) => object.fields,
                        TypeKind::Interface(interface) => interface.fields,
                        _ => continue,
                    };
                    for field in declared {
                        let mut ty = &field.node.ty.node.base;
                        while let BaseType::List(inner) = ty {
                            ty = &inner.base;
                        }
                        if let BaseType::Named(name) = ty {
                            fields
                                .entry(definition.name.node.to_string())
                                .or_insert_with(HashMap::new)
                                .insert(field.node.name.node.to_string(), name.to_string());
                        }
                    }
                }
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    for (root, name) in
                        roots
                            .iter_mut()
                            .zip([schema.query, schema.mutation, schema.subscription])
                    {
                        if let Some(name) = name {
                            *root = name.node.to_string();
                        }
                    }
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        let query: &mut HashMap<String, String> = fields.entry(roots[0].clone()).or_default();
        query.insert("__schema".to_owned(), "__Schema".to_owned());
        query.insert("__type".to_owned(), "__Type".to_owned());
        Self { fields, roots }
    }

    fn root(&self, kind: OperationType) -> &str {
        match kind {
            OperationType::Query => &self.roots[0],
            OperationType::Mutation => &self.roots[1],
            OperationType::Subscription => &self.roots[2],
        }
    }

    fn field(&self, parent: &str, field: &str) -> Option<&str> {
        self.fields.get(parent)?.get(field).map(String::as_str)
    }
}

/// What one value of a field counts for.
fn weight(parent: Option<&str>, field: &str) -> u64 {
    HEAVY_FIELDS
        .iter()
        .find(|(ty, name, _)| Some(*ty) == parent && *name == field)
        .map_or(1, |(_, _, weight)| *weight)
}

/// What a selection asks for, at a multiplier of 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    /// Levels of fields.
    pub depth: usize,
    /// Levels of selection sets, fragment spreads and inline fragments.
    pub nesting: usize,
    pub fields: u64,
    pub cost: u64,
    /// Levels of introspection's lists of fields and types (see [`INTROSPECTION_LISTS`]).
    pub introspection_lists: usize,
}

impl Measure {
    fn add(&mut self, other: Measure) {
        self.depth = self.depth.max(other.depth);
        self.nesting = self.nesting.max(other.nesting);
        self.fields = self.fields.saturating_add(other.fields);
        self.cost = self.cost.saturating_add(other.cost);
        self.introspection_lists = self.introspection_lists.max(other.introspection_lists);
    }
}

struct Analyzer<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    types: &'a FieldTypes,
    max_directives: usize,
    /// The default values of the variables of the operation being measured.
    defaults: HashMap<&'a str, &'a Value>,
    fragments: HashMap<&'a str, Measure>,
    /// Fragments being analysed: a spread of one of them is a cycle.
    visiting: Vec<&'a str>,
    cycle: Option<&'a str>,
    /// A spread of a fragment the document does not define.
    unknown: Option<&'a str>,
    /// A field given a cursor (`after`), which a subscription may not page with.
    cursor: bool,
    /// The response keys of the operation's `__schema` and `__type` fields: fields of one
    /// key merge into one answer, so these count what the answer holds.
    schemas: HashSet<&'a str>,
    type_lookups: HashSet<&'a str>,
    /// The first refusal found on the way: too many or repeated directives, an aliased
    /// introspection field.
    refusal: Option<ServerError>,
    /// How deep the walk is now; past [`RECURSION_LIMIT`] it stops and the document is
    /// refused, so the walk's own recursion stays bounded.
    level: usize,
    too_deep: bool,
}

impl<'a> Analyzer<'a> {
    fn new(
        document: &'a ExecutableDocument,
        variables: &'a Variables,
        types: &'a FieldTypes,
        max_directives: usize,
    ) -> Self {
        Self {
            document,
            variables,
            types,
            max_directives,
            defaults: HashMap::new(),
            fragments: HashMap::new(),
            visiting: Vec::new(),
            cycle: None,
            unknown: None,
            cursor: false,
            schemas: HashSet::new(),
            type_lookups: HashSet::new(),
            refusal: None,
            level: 0,
            too_deep: false,
        }
    }

    fn operation(&mut self, operation: &'a OperationDefinition) -> Measure {
        self.defaults = operation
            .variable_definitions
            .iter()
            .filter_map(|definition| {
                let definition = &definition.node;
                definition
                    .default_value()
                    .map(|value| (definition.name.node.as_str(), value))
            })
            .collect();
        // Fragment measures depend on the operation's variables.
        self.fragments.clear();
        self.cursor = false;
        self.schemas.clear();
        self.type_lookups.clear();
        let mut directives = self.directives(&operation.directives, || "the operation".to_owned());
        for definition in &operation.variable_definitions {
            directives += self.directives(&definition.node.directives, || {
                format!("the variable ${}", definition.node.name.node)
            });
        }
        let root = self.types.root(operation.ty);
        let mut measure = self.selection_set(&operation.selection_set.node, Some(root));
        measure.fields = measure.fields.saturating_add(directives);
        measure
    }

    /// Measures a selection set (of type `ty`, when known) one level below the current one.
    fn nested(&mut self, set: &'a SelectionSet, ty: Option<&'a str>) -> Measure {
        if self.level >= RECURSION_LIMIT {
            self.too_deep = true;
            return Measure::default();
        }
        self.level += 1;
        let mut measure = self.selection_set(set, ty);
        self.level -= 1;
        measure.nesting += 1;
        measure
    }

    fn selection_set(&mut self, set: &'a SelectionSet, ty: Option<&'a str>) -> Measure {
        let mut total = Measure::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let directives =
                        self.directives(&field.directives, || format!("the field `{name}`"));
                    let child = ty.and_then(|ty| self.types.field(ty, name));
                    let children = if field.selection_set.node.items.is_empty() {
                        Measure::default()
                    } else {
                        self.nested(&field.selection_set.node, child)
                    };
                    let multiplier = self.first(field, child.is_some_and(is_connection));
                    self.cursor |= field.get_argument("after").is_some();
                    let own = weight(ty, name);
                    let key = field
                        .alias
                        .as_ref()
                        .map_or(name, |alias| alias.node.as_str());
                    match name {
                        "__schema" => _ = self.schemas.insert(key),
                        "__type" => _ = self.type_lookups.insert(key),
                        _ => {}
                    }
                    let introspective = ty.is_some_and(|ty| ty.starts_with("__"));
                    if introspective && field.alias.as_ref().is_some_and(|alias| alias.node != name)
                    {
                        self.refuse(too_complex(format!(
                            "introspection fields may not be renamed (`{name}` is): each is \
                             asked for once"
                        )));
                    }
                    total.add(Measure {
                        // `ofType` unwraps lists and non-nulls: tools chain seven to nine.
                        depth: children.depth + usize::from(!(introspective && name == "ofType")),
                        nesting: children.nesting,
                        fields: children.fields.saturating_add(1 + directives),
                        cost: children.cost.saturating_mul(multiplier).saturating_add(own),
                        introspection_lists: children.introspection_lists
                            + usize::from(introspective && INTROSPECTION_LISTS.contains(&name)),
                    });
                }
                Selection::InlineFragment(fragment) => {
                    let fragment = &fragment.node;
                    let directives =
                        self.directives(&fragment.directives, || "an inline fragment".to_owned());
                    let ty = match &fragment.type_condition {
                        Some(condition) => Some(condition.node.on.node.as_str()),
                        None => ty,
                    };
                    let mut measure = self.nested(&fragment.selection_set.node, ty);
                    measure.fields = measure.fields.saturating_add(directives);
                    total.add(measure);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let directives = self.directives(&spread.node.directives, || {
                        format!("the spread of `{name}`")
                    });
                    let mut measure = self.fragment(name);
                    measure.fields = measure.fields.saturating_add(directives);
                    total.add(measure);
                }
            }
        }
        total
    }

    fn fragment(&mut self, name: &'a str) -> Measure {
        if let Some(measure) = self.fragments.get(name) {
            return *measure;
        }
        if let Some(at) = self.visiting.iter().position(|v| *v == name) {
            self.cycle = Some(self.visiting[at]);
            return Measure::default();
        }
        let Some((name, definition)) = self.document.fragments.get_key_value(name) else {
            // Refused: async-graphql's own walks skip unknown spreads and would expand
            // everything around them, however often it is spread.
            self.unknown = Some(name);
            return Measure::default();
        };
        self.visiting.push(name.as_str());
        let directives = self.directives(&definition.node.directives, || {
            format!("the fragment `{name}`")
        });
        let ty = definition.node.type_condition.node.on.node.as_str();
        let mut measure = self.nested(&definition.node.selection_set.node, Some(ty));
        measure.fields = measure.fields.saturating_add(directives);
        self.visiting.pop();
        self.fragments.insert(name.as_str(), measure);
        measure
    }

    /// Checks the directives of one location (at most [`QueryLimits::max_directives`], each
    /// at most once: none of the schema's directives is repeatable); returns how many
    /// there are, which count as fields.
    fn directives(
        &mut self,
        directives: &'a [Positioned<Directive>],
        place: impl Fn() -> String,
    ) -> u64 {
        if directives.len() > self.max_directives {
            self.refuse(too_complex(format!(
                "{} carries {} directives; the limit is {}",
                place(),
                directives.len(),
                self.max_directives
            )));
        } else if let Some(twice) = directives.iter().enumerate().find_map(|(at, directive)| {
            let name = &directive.node.name.node;
            directives[..at]
                .iter()
                .any(|earlier| earlier.node.name.node == *name)
                .then_some(name)
        }) {
            self.refuse(coded(
                format!(
                    "the directive @{twice} is used twice on {}; it is not repeatable",
                    place()
                ),
                ErrorCode::GraphqlValidationFailed,
            ));
        }
        directives.len() as u64
    }

    fn refuse(&mut self, error: ServerError) {
        self.refusal.get_or_insert(error);
    }

    /// How many times the selection below a field may appear: its `first`, clamped to
    /// what the server accepts (a `first` out of range is the resolver's `BAD_USER_INPUT`,
    /// not a cost).
    fn first(&self, field: &Field, connection: bool) -> u64 {
        let argument = field.get_argument("first");
        if argument.is_none() && !connection {
            return 1;
        }
        let value = argument.map(|value| {
            value.node.clone().into_const_with(|name| {
                // As execution resolves it: the request's value, else the default.
                match self.variables.get(&name) {
                    Some(value) => Ok(value.clone()),
                    None => self
                        .defaults
                        .get(name.as_str())
                        .map(|value| (*value).clone())
                        .ok_or(()),
                }
            })
        });
        let first = match value {
            Some(Ok(Value::Number(n))) => n.as_i64().unwrap_or(0),
            // Absent or null: the default page size.
            _ => i64::from(DEFAULT_FIRST.unwrap_or(0)),
        };
        u64::try_from(first.clamp(0, i64::from(PageSize::MAX))).unwrap_or(0)
    }
}

/// Measures one operation of a document.
pub fn measure(
    document: &ExecutableDocument,
    variables: &Variables,
    operation: &OperationDefinition,
    types: &FieldTypes,
) -> Measure {
    Analyzer::new(
        document,
        variables,
        types,
        QueryLimits::default().max_directives,
    )
    .operation(operation)
}

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
                        "a subscription's selection may not page with `after`: an event \
                         shows the first page of a connection",
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
                "{what} may return {} objects (each connection's `first` multiplies what \
                 it selects); the limit is {limit}",
                measure.cost
            )));
        }
        Ok(measure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).expect("parses")
    }

    fn measure_of(query: &str) -> Measure {
        measure_with(query, Variables::default())
    }

    fn types() -> FieldTypes {
        FieldTypes::from_sdl(&crate::graphql::sdl())
    }

    fn measure_with(query: &str, variables: Variables) -> Measure {
        let document = parse(query);
        let operation = selected(&document, None).expect("one operation");
        measure(&document, &variables, &operation.node, &types())
    }

    fn check(limits: QueryLimits, query: &str) -> Result<Measure, String> {
        let document = parse(query);
        let operation = selected(&document, None).expect("one operation");
        limits
            .check(&document, &Variables::default(), &operation.node, &types())
            .map_err(|e| e.message)
    }

    #[test]
    fn every_field_with_a_first_argument_is_a_connection() {
        // The cost multiplies by `first` wherever it is given, and by the default page
        // size where a connection leaves it out: the two must name the same fields.
        let sdl = crate::graphql::sdl();
        let document = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
        let types = types();
        let mut connections = 0;
        for definition in document.definitions {
            use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
            let TypeSystemDefinition::Type(definition) = definition else {
                continue;
            };
            let TypeKind::Object(object) = &definition.node.kind else {
                continue;
            };
            let parent = definition.node.name.node.as_str();
            for field in &object.fields {
                let name = field.node.name.node.as_str();
                let pages = field
                    .node
                    .arguments
                    .iter()
                    .any(|argument| argument.node.name.node == "first");
                let connection = types.field(parent, name).is_some_and(is_connection);
                assert_eq!(pages, connection, "{parent}.{name}");
                connections += usize::from(connection);
            }
        }
        assert!(connections >= 3, "users, posts and comments at least");
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
                nesting: 4,
                fields: 6,
                cost: 1 + 50 * (3 + 3 * 2),
                ..Measure::default()
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
    fn a_first_from_a_variable_counts_at_its_value_or_its_default() {
        let query = "query($n: Int = 100) { users(first: $n) { nodes { id } } }";
        // Left out of `variables`: the default, as execution will use it.
        assert_eq!(measure_of(query).cost, 1 + 100 * 2);
        let given = Variables::from_json(serde_json::json!({ "n": 5 }));
        assert_eq!(measure_with(query, given).cost, 1 + 5 * 2);
        let null = Variables::from_json(serde_json::json!({ "n": null }));
        assert_eq!(measure_with(query, null).cost, 1 + 20 * 2);
        // No default, not given: null, so the default page size.
        assert_eq!(
            measure_of("query($n: Int) { users(first: $n) { nodes { id } } }").cost,
            1 + 20 * 2
        );
    }

    #[test]
    fn the_canonical_operations_are_well_inside_the_default_limits() {
        let document = parse(include_str!("../../tests/api/operations.graphql"));
        let limits = QueryLimits::default();
        let types = types();
        let mut costs = Vec::new();
        for (name, operation) in document.operations.iter() {
            let m = limits
                .check(&document, &Variables::default(), &operation.node, &types)
                .expect("within the limits");
            costs.push((name.map(|n| n.to_string()).unwrap_or_default(), m.cost));
        }
        costs.sort();
        // The figures the README gives.
        assert_eq!(
            costs,
            [
                ("AddComment".to_owned(), 16),
                ("CommentAdded".to_owned(), 12),
                ("CreatePost".to_owned(), 5),
                ("CreateUser".to_owned(), 4),
                ("PostDetails".to_owned(), 413),
                ("UserFeed".to_owned(), 654),
                ("UsersPage".to_owned(), 801),
            ]
        );
        assert!(801 * 10 <= limits.max_cost);
        assert!(12 * 5 <= limits.max_subscription_cost);
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

    #[test]
    fn long_chains_of_fragments_are_refused_without_deep_recursion() {
        // 5,000 fragments, each spreading the next: the walk stops at the limit.
        let mut query = String::from("{ ...F0 }");
        for i in 0..5_000 {
            query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        query.push_str(" fragment F5000 on Query { viewer { id } }");
        let error = check(QueryLimits::default(), &query).expect_err("refused");
        assert!(error.contains("more than 64 levels"), "{error}");
        // At the limit and below, a chain is fine.
        let mut query = String::from("{ ...F0 }");
        for i in 0..40 {
            query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        query.push_str(" fragment F40 on Query { viewer { id } }");
        assert!(check(QueryLimits::default(), &query).is_ok());
    }

    #[test]
    fn spreads_in_production_are_checked_once_each() {
        let limits = QueryLimits {
            introspection: false,
            ..QueryLimits::default()
        };
        // Four, then eight spreads of a fragment that spreads itself: exponential if
        // followed without memory, refused at once here.
        for spreads in [4, 8] {
            let query = format!(
                "{{ ...F }} fragment F on Query {{ {} }}",
                "...F ".repeat(spreads)
            );
            let started = std::time::Instant::now();
            let error = check(limits, &query).expect_err("a cycle");
            assert!(error.contains("spreads itself"), "{error}");
            assert!(started.elapsed() < std::time::Duration::from_millis(100));
        }
        let error = check(
            limits,
            "{ ...I } fragment I on Query { __schema { types { name } } }",
        )
        .expect_err("introspection through a fragment");
        assert!(error.contains("introspection"), "{error}");
    }

    #[test]
    fn spreads_of_unknown_fragments_are_refused_before_anything_expands_them() {
        // Doubling chains over a fragment that spreads one the document lacks: it counts
        // nothing here, and async-graphql would walk 2^40 spreads to find out.
        let mut query = String::from("{ ...F40 } fragment F0 on Query { ...Missing }");
        for i in 1..=40 {
            query.push_str(&format!(
                " fragment F{i} on Query {{ ...F{p} ...F{p} }}",
                p = i - 1
            ));
        }
        let started = std::time::Instant::now();
        let error = check(QueryLimits::default(), &query).expect_err("refused");
        assert!(error.contains("unknown fragment \"Missing\""), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn content_counts_for_what_it_may_hold() {
        let aliases: String = (0..97).map(|i| format!("c{i}: content ")).collect();
        let query =
            format!("{{ user(id: \"u\") {{ posts(first: 100) {{ nodes {{ {aliases} }} }} }} }}");
        let error = check(QueryLimits::default(), &query).expect_err("too costly");
        assert!(error.contains("may return"), "{error}");
    }

    #[test]
    fn a_subscription_may_not_page_with_a_cursor() {
        let error = check(
            QueryLimits::default(),
            "subscription { commentAdded(postId: \"p\") { post { comments(first: 2, after: \"x\") { nodes { id } } } } }",
        )
        .expect_err("refused");
        assert!(error.contains("`after`"), "{error}");
        assert!(check(
            QueryLimits::default(),
            "subscription { commentAdded(postId: \"p\") { post { comments(first: 2) { nodes { id } } } } }",
        )
        .is_ok());
    }

    #[test]
    fn unused_fragments_are_refused_before_validation() {
        let error = check(
            QueryLimits::default(),
            "{ viewer { id } } fragment U on Query { viewer { id } }",
        )
        .expect_err("unused");
        assert!(error.contains("never used"), "{error}");
    }

    #[test]
    fn subscriptions_have_their_own_cost_limit() {
        let costly = "subscription { commentAdded(postId: \"p\") { post { comments(first: 50) { nodes { id author { username } } } } } }";
        let error = check(QueryLimits::default(), costly).expect_err("too costly per event");
        assert!(error.contains("a subscription's event"), "{error}");
        let canonical =
            "subscription { commentAdded(postId: \"p\") { id content author { username } } }";
        assert!(check(QueryLimits::default(), canonical).is_ok());
    }

    const INTROSPECTION_QUERY: &str = include_str!("../../tests/api/introspection.graphql");

    #[test]
    fn the_standard_introspection_query_passes_the_default_limits() {
        let m = check(QueryLimits::default(), INTROSPECTION_QUERY).expect("within the limits");
        // `__schema types fields args type name`: `ofType` does not count.
        assert_eq!(m.depth, 6);
        assert_eq!(m.introspection_lists, 1);
        // Nine `ofType`s deep, the document still nests well inside the recursion limit.
        assert!(m.nesting < RECURSION_LIMIT, "{m:?}");
    }

    #[test]
    fn introspection_that_no_tool_sends_is_refused() {
        let limits = QueryLimits::default();
        // Two levels of lists of fields and types, as in `types { fields }` or
        // `__type { fields { type { fields } } }`, pass; a third does not.
        check(
            limits,
            "{ __type(name: \"Post\") { fields { type { fields { name } } } } }",
        )
        .expect("two levels");
        let error = check(
            limits,
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        )
        .expect_err("three levels");
        assert!(error.contains("3 levels deep; the limit is 2"), "{error}");
        let error = check(
            limits,
            "{ __schema { types { ...T } } } fragment T on __Type { \
             interfaces { possibleTypes { inputFields { name } } } }",
        )
        .expect_err("three levels through a fragment");
        assert!(error.contains("3 levels deep"), "{error}");
        // One `__schema` holds all of it; aliases only repeat it.
        let error = check(
            limits,
            "{ a: __schema { types { name } } b: __schema { types { name } } }",
        )
        .expect_err("two schemas");
        assert!(error.contains("`__schema` 2 times"), "{error}");
        let error = check(
            limits,
            "{ __schema { a: types { name } b: types { name } } }",
        )
        .expect_err("renamed lists");
        assert!(error.contains("may not be renamed"), "{error}");
        check(limits, "{ __schema { types: types { name } } }").expect("an alias of its own name");
        // Fields of one response key merge into one answer: that is still one `__schema`.
        check(
            limits,
            "{ ...A ...B } fragment A on Query { __schema { types { name } } } \
             fragment B on Query { __schema { directives { name } } }",
        )
        .expect("one __schema, selected twice");
        // Twenty `__type` lookups, and no more.
        let lookups = |n: usize| {
            let aliases: String = (0..n)
                .map(|i| format!("t{i}: __type(name: \"Post\") {{ name }} "))
                .collect();
            check(limits, &format!("{{ {aliases} }}"))
        };
        lookups(20).expect("twenty");
        let error = lookups(21).expect_err("twenty-one");
        assert!(error.contains("looks up 21 types"), "{error}");
        // Outside `ofType`, introspection counts toward the depth like any field.
        let deep = "{ __type(name: \"Post\") { fields { args { type { ofType { ofType { \
                    fields { args { type { enumValues { name } } } } } } } } } } }";
        assert_eq!(check(limits, deep).map(|m| m.depth), Ok(9));
        let shallow = QueryLimits {
            max_depth: 8,
            ..limits
        };
        let error = check(shallow, deep).expect_err("deeper than 8");
        assert!(error.contains("nested 9 levels deep"), "{error}");
    }

    #[test]
    fn directives_count_and_none_repeats() {
        let limits = QueryLimits::default();
        check(
            limits,
            "query($a: Boolean!, $b: Boolean!) { __typename @include(if: $a) @skip(if: $b) }",
        )
        .expect("two directives");
        let many = format!("{{ __typename {} }}", "@include(if: true) ".repeat(1000));
        let error = check(limits, &many).expect_err("a thousand");
        assert!(
            error.contains("the field `__typename` carries 1000 directives; the limit is 4"),
            "{error}"
        );
        let error = check(
            limits,
            "{ __typename @include(if: true) @include(if: true) }",
        )
        .expect_err("repeated");
        assert!(error.contains("@include is used twice"), "{error}");
        // On every kind of location, fragments included.
        for query in [
            "{ ...F @skip(if: false) @skip(if: false) } fragment F on Query { __typename }",
            "{ ... @skip(if: false) @skip(if: false) { __typename } }",
            "{ ...F } fragment F on Query @skip(if: false) @skip(if: false) { __typename }",
            "query @skip(if: false) @skip(if: false) { __typename }",
        ] {
            let error = check(limits, query).expect_err(query);
            assert!(error.contains("twice"), "{query}: {error}");
        }
        // And each counts as a field.
        let fields = |query: &str| measure_of(query).fields;
        assert_eq!(
            fields("{ __typename @include(if: true) @skip(if: false) }"),
            3
        );
    }
}
