//! The schema's field types, as the limits read them.

use std::collections::HashMap;

use async_graphql::{
    Value,
    parser::types::{BaseType, OperationType, Type},
};

/// A connection field is one whose type is a Relay connection, `…Connection` by the
/// connection spec's naming: read from the schema, so that no connection escapes the
/// cost. Its `first` defaults to 20 when left out.
pub(super) fn is_connection(ty: &str) -> bool {
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

/// The type of every field of the schema's object and interface types (lists and
/// non-null unwrapped), read from its SDL: what the limits need to know which `content`
/// a selection asks for.
#[derive(Clone, Debug, Default)]
pub struct FieldTypes {
    /// By type, then by field: the field's type. Looked up for every field measured, by
    /// borrowed names.
    fields: HashMap<String, HashMap<String, String>>,
    /// By type, then by field, then by argument: the argument's type.
    arguments: HashMap<String, HashMap<String, HashMap<String, Type>>>,
    /// By input type, then by field: the field's type.
    inputs: HashMap<String, HashMap<String, Type>>,
    roots: [String; 3],
}

impl FieldTypes {
    /// The field types of the schema `sdl` describes, introspection's included; empty for
    /// an SDL that does not parse.
    pub fn from_sdl(sdl: &str) -> Self {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

        let mut fields = HashMap::new();
        let mut arguments: HashMap<String, HashMap<String, HashMap<String, Type>>> = HashMap::new();
        let mut inputs: HashMap<String, HashMap<String, Type>> = HashMap::new();
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
                    let type_name = definition.name.node.to_string();
                    let declared = match definition.kind {
                        TypeKind::Object(object) => object.fields,
                        TypeKind::Interface(interface) => interface.fields,
                        TypeKind::InputObject(input) => {
                            let fields = input.fields.into_iter().map(|field| {
                                (field.node.name.node.to_string(), field.node.ty.node)
                            });
                            inputs.entry(type_name).or_default().extend(fields);
                            continue;
                        }
                        _ => continue,
                    };
                    for field in declared {
                        let field_arguments = field.node.arguments.iter().map(|argument| {
                            let argument = &argument.node;
                            (argument.name.node.to_string(), argument.ty.node.clone())
                        });
                        arguments
                            .entry(type_name.clone())
                            .or_default()
                            .entry(field.node.name.node.to_string())
                            .or_default()
                            .extend(field_arguments);
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
        Self {
            fields,
            arguments,
            inputs,
            roots,
        }
    }

    pub(super) fn root(&self, kind: OperationType) -> &str {
        match kind {
            OperationType::Query => &self.roots[0],
            OperationType::Mutation => &self.roots[1],
            OperationType::Subscription => &self.roots[2],
        }
    }

    pub(super) fn field(&self, parent: &str, field: &str) -> Option<&str> {
        self.fields.get(parent)?.get(field).map(String::as_str)
    }

    /// The declared type of argument `argument` of `parent.field`.
    pub(super) fn argument(&self, parent: &str, field: &str, argument: &str) -> Option<&Type> {
        self.arguments.get(parent)?.get(field)?.get(argument)
    }

    /// Whether every `Int` of `value`, read as `ty` (through lists and input objects),
    /// fits in 32 bits. async-graphql's validation takes any 64-bit integer for an `Int`
    /// and only execution refuses it, as an error of no request; other mismatches are
    /// validation's to report.
    pub(crate) fn ints_fit(&self, ty: &BaseType, value: &Value) -> bool {
        match (ty, value) {
            (BaseType::Named(name), Value::Number(number)) if name == "Int" => {
                number.as_i64().is_none_or(|n| i32::try_from(n).is_ok())
            }
            (BaseType::Named(name), Value::Object(fields)) => {
                let Some(declared) = self.inputs.get(name.as_str()) else {
                    return true;
                };
                fields.iter().all(|(field, value)| {
                    declared
                        .get(field.as_str())
                        .is_none_or(|ty| self.ints_fit(&ty.base, value))
                })
            }
            (BaseType::List(inner), Value::List(items)) => {
                items.iter().all(|item| self.ints_fit(&inner.base, item))
            }
            // A single value where a list is expected is a list of one.
            (BaseType::List(inner), value) => self.ints_fit(&inner.base, value),
            _ => true,
        }
    }
}

/// What one value of a field counts for.
pub(super) fn weight(parent: Option<&str>, field: &str) -> u64 {
    HEAVY_FIELDS
        .iter()
        .find(|(ty, name, _)| Some(*ty) == parent && *name == field)
        .map_or(1, |(_, _, weight)| *weight)
}
