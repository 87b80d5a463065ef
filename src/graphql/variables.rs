//! The values of a request's variables, checked where async-graphql leaves it to
//! execution.

use async_graphql::{ServerError, Value, Variables, parser::types::OperationDefinition};

use super::{error::coded, limits::FieldTypes};
use crate::error::ErrorCode;

/// The spec's coercion of variable values, where async-graphql leaves it to execution:
/// every variable of a non-null type without a default is given, and not as `null`; an
/// `Int` (alone, in lists or in input objects) fits in 32 bits. Checked before execution, so that a bad
/// value is a request error on every transport, as the GraphQL-over-HTTP spec and
/// graphql-transport-ws want, rather than a field error once execution has begun.
pub(super) fn coerce(
    operation: &OperationDefinition,
    variables: &Variables,
    types: &FieldTypes,
) -> Result<(), ServerError> {
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        let name = &definition.name.node;
        let ty = &definition.var_type.node;
        let given = variables.get(name).filter(|value| **value != Value::Null);
        match given {
            None if !ty.nullable && definition.default_value.is_none() => {
                return Err(coded(
                    format!("the variable ${name} of type {ty} is required and was not given"),
                    ErrorCode::BadUserInput,
                ));
            }
            Some(value) if !types.ints_fit(&ty.base, value) => {
                return Err(coded(
                    format!("the variable ${name} holds an Int outside 32 bits"),
                    ErrorCode::BadUserInput,
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::Type;

    use super::*;

    #[test]
    fn ints_must_fit_in_32_bits_in_lists_and_inputs_too() {
        let types = FieldTypes::from_sdl(&crate::graphql::sdl());
        let fits = |ty: &str, value: serde_json::Value| {
            let ty = Type::new(ty).expect("a type");
            types.ints_fit(&ty.base, &Value::from_json(value).expect("a value"))
        };
        assert!(!fits(
            "UpdatePostInput!",
            serde_json::json!({ "title": "t", "expectedVersion": 5_000_000_000_i64 })
        ));
        assert!(fits(
            "UpdatePostInput!",
            serde_json::json!({ "title": "t", "expectedVersion": 5 })
        ));
        assert!(fits("Int", serde_json::json!(2_147_483_647)));
        assert!(!fits("Int", serde_json::json!(2_147_483_648_i64)));
        assert!(!fits(
            "[[Int!]]",
            serde_json::json!([[1], [2, -3_000_000_000_i64]])
        ));
        assert!(fits("[Int]", serde_json::json!([1, null, 3])));
        // A single value where a list is expected is a list of one.
        assert!(!fits("[Int]", serde_json::json!(5_000_000_000_i64)));
        // Not Ints: validation's to judge.
        assert!(fits("String", serde_json::json!(5_000_000_000_i64)));
        assert!(fits("Int", serde_json::json!(1.5)));
    }
}
