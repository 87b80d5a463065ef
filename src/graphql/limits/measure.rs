//! The walk that measures what a document asks for.

use std::collections::{HashMap, HashSet};

use async_graphql::{
    Positioned, ServerError, Value, Variables,
    parser::types::{
        Directive, ExecutableDocument, Field, OperationDefinition, OperationType, Selection,
        SelectionSet,
    },
};

use super::{
    BACKWARD_USERS_COST, INTROSPECTION_LISTS, RANGE_COUNT_COST, RECURSION_LIMIT,
    fields::{FieldTypes, is_connection, weight},
    too_complex,
};
use crate::graphql::{error::coded, types::connection::DEFAULT_PAGE_SIZE};
use crate::{config::QueryLimits, domain::PageSize, error::ErrorCode};

/// What a selection asks for, at a multiplier of 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    /// Levels of fields.
    pub depth: usize,
    /// Levels of selection sets, fragment spreads and inline fragments.
    pub nesting: usize,
    /// Fields selected, aliases and directives included.
    pub fields: u64,
    /// Objects it may return: each connection's `first` or `last` multiplies what it selects, and a
    /// long text field counts one per kilobyte it may hold.
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

pub(super) struct Analyzer<'a> {
    pub(super) document: &'a ExecutableDocument,
    pub(super) variables: &'a Variables,
    pub(super) types: &'a FieldTypes,
    pub(super) max_directives: usize,
    /// The default values of the variables of the operation being measured.
    pub(super) defaults: HashMap<&'a str, &'a Value>,
    pub(super) fragments: HashMap<&'a str, Measure>,
    /// Fragments being analysed: a spread of one of them is a cycle.
    pub(super) visiting: Vec<&'a str>,
    pub(super) cycle: Option<&'a str>,
    /// A spread of a fragment the document does not define.
    pub(super) unknown: Option<&'a str>,
    /// A field given a cursor (`after` or `before`), which a subscription may not page with.
    pub(super) cursor: bool,
    /// The response keys of the operation's `__schema` and `__type` fields: fields of one
    /// key merge into one answer, so these count what the answer holds.
    pub(super) schemas: HashSet<&'a str>,
    pub(super) type_lookups: HashSet<&'a str>,
    /// The first refusal found on the way: too many or repeated directives, an aliased
    /// introspection field.
    pub(super) refusal: Option<ServerError>,
    /// How deep the walk is now; past [`RECURSION_LIMIT`] it stops and the document is
    /// refused, so the walk's own recursion stays bounded.
    pub(super) level: usize,
    pub(super) too_deep: bool,
}

impl<'a> Analyzer<'a> {
    pub(super) fn new(
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

    pub(super) fn operation(&mut self, operation: &'a OperationDefinition) -> Measure {
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
                    if let Some(parent) = ty {
                        self.literal_ints(parent, field);
                    }
                    let children = if field.selection_set.node.items.is_empty() {
                        Measure::default()
                    } else {
                        self.nested(&field.selection_set.node, child)
                    };
                    let connection = child.is_some_and(is_connection);
                    let multiplier = self.first(field, connection);
                    self.cursor |= ["after", "before"]
                        .iter()
                        .any(|cursor| field.get_argument(cursor).is_some());
                    let ranged = connection
                        && ["createdAfter", "createdBefore"]
                            .iter()
                            .any(|bound| field.get_argument(bound).is_some());
                    // A time range's `totalCount` is a count on the index: it may read the
                    // whole range.
                    // A backward page of `users` walks the table from its start.
                    let walked = ty == Some(self.types.root(OperationType::Query))
                        && name == "users"
                        && ["last", "before"]
                            .iter()
                            .any(|backward| field.get_argument(backward).is_some());
                    let own = weight(ty, name)
                        + if ranged { RANGE_COUNT_COST } else { 0 }
                        + if walked { BACKWARD_USERS_COST } else { 0 };
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

    /// Refuses an `Int` outside 32 bits in an argument, written in the document or coming
    /// from a variable's value or default (as execution resolves it): async-graphql's
    /// validation lets it through, and execution would fail the field rather than the
    /// request.
    fn literal_ints(&mut self, parent: &str, field: &'a Field) {
        let name = field.name.node.as_str();
        for (argument, value) in &field.arguments {
            let Some(ty) = self.types.argument(parent, name, argument.node.as_str()) else {
                continue;
            };
            let Ok(value) = value.node.clone().into_const_with(|name| {
                let value = match self.variables.get(&name) {
                    Some(value) => Some(value.clone()),
                    None => self
                        .defaults
                        .get(name.as_str())
                        .map(|value| (*value).clone()),
                };
                // A missing variable is the coercion's to report.
                Ok::<_, ()>(value.unwrap_or(Value::Null))
            }) else {
                continue;
            };
            if !self.types.ints_fit(&ty.base, &value) {
                self.refuse(coded(
                    format!(
                        "the argument `{}` of `{name}` holds an Int outside 32 bits",
                        argument.node
                    ),
                    ErrorCode::BadUserInput,
                ));
            }
        }
    }

    fn refuse(&mut self, error: ServerError) {
        self.refusal.get_or_insert(error);
    }

    /// How many times the selection below a field may appear: a connection's `first` or
    /// `last`, or the number of `ids` a lookup of many takes, clamped to what the server
    /// accepts (a number out of range is the resolver's `BAD_USER_INPUT`, not a cost).
    fn first(&self, field: &Field, connection: bool) -> u64 {
        let resolved = |name: &str| {
            field.get_argument(name).map(|value| {
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
            })
        };
        let clamp = |n: i64| u64::try_from(n.clamp(0, i64::from(PageSize::MAX))).unwrap_or(0);
        if let Some(ids) = resolved("ids") {
            return match ids {
                Ok(Value::List(ids)) => clamp(i64::try_from(ids.len()).unwrap_or(i64::MAX)),
                _ => 1,
            };
        }
        if !connection {
            return 1;
        }
        let count = |name: &str| match resolved(name) {
            Some(Ok(Value::Number(n))) => Some(n.as_i64().unwrap_or(0)),
            _ => None,
        };
        match (count("first"), count("last")) {
            (None, None) => clamp(i64::from(DEFAULT_PAGE_SIZE)),
            (first, last) => clamp(first.unwrap_or(0).max(last.unwrap_or(0))),
        }
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
