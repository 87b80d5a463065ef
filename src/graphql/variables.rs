//! The values of a request's variables, checked where async-graphql leaves it to
//! execution.

use async_graphql::{
    ServerError, Value, Variables,
    parser::types::{BaseType, OperationDefinition},
};

use super::error::coded;
use crate::error::ErrorCode;

/// The spec's coercion of variable values, where async-graphql leaves it to execution:
/// every variable of a non-null type without a default is given, and not as `null`; an
/// `Int` (alone or in lists) fits in 32 bits. Checked before execution, so that a bad
/// value is a request error on every transport, as the GraphQL-over-HTTP spec and
/// graphql-transport-ws want, rather than a field error once execution has begun.
pub(super) fn coerce(
    operation: &OperationDefinition,
    variables: &Variables,
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
            Some(value) if !ints_fit(&ty.base, value) => {
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

/// Whether every `Int` of `value`, read as `ty`, fits in 32 bits (other mismatches are
/// validation's to report).
fn ints_fit(ty: &BaseType, value: &Value) -> bool {
    match (ty, value) {
        (BaseType::Named(name), Value::Number(number)) if name == "Int" => {
            number.as_i64().is_none_or(|n| i32::try_from(n).is_ok())
        }
        (BaseType::List(inner), Value::List(items)) => {
            items.iter().all(|item| ints_fit(&inner.base, item))
        }
        // A single value where a list is expected is a list of one.
        (BaseType::List(inner), value) => ints_fit(&inner.base, value),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::Type;

    use super::*;

    #[test]
    fn ints_must_fit_in_32_bits_in_lists_too() {
        let fits = |ty: &str, value: serde_json::Value| {
            let ty = Type::new(ty).expect("a type");
            ints_fit(&ty.base, &Value::from_json(value).expect("a value"))
        };
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
