//! A GraphQL request as clients send it: the JSON object of a `POST` body or of a WebSocket
//! `subscribe` payload, or the parameters of a `GET`. Decoded here once for every
//! transport, with `variables` capped before they are parsed, and with errors that say
//! what is wrong in the client's terms (never a Rust type name).

use async_graphql::{Request, Variables};
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use crate::error::AppError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    query: Option<String>,
    operation_name: Option<String>,
    #[serde(borrow)]
    variables: Option<&'a RawValue>,
    #[serde(default)]
    extensions: Extensions,
}

/// The request's `extensions` this server reads.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extensions {
    /// The way to send an idempotency key where there is no header: over a WebSocket.
    idempotency_key: Option<String>,
}

pub(super) use crate::graphql::pipeline::IDEMPOTENCY_KEY;

const SHAPE: &str = "the request must be a JSON object with a `query` string, and optionally \
                     `operationName` (a string), `variables` and `extensions` (objects; \
                     `extensions.idempotencyKey` a string)";

/// Decodes a request's JSON.
pub(super) fn decode(json: &[u8], max_variables_bytes: usize) -> Result<Request, AppError> {
    let body: Body<'_> = serde_json::from_slice(json).map_err(|err| {
        let message = match err.classify() {
            serde_json::error::Category::Data => SHAPE.to_owned(),
            // Syntax errors name a position, never a type.
            _ => format!("the request is not valid JSON: {err}"),
        };
        AppError::BadUserInput(message)
    })?;
    let query = body
        .query
        .ok_or_else(|| AppError::BadUserInput("the request has no `query`".to_owned()))?;
    let mut request = request(
        query,
        body.operation_name,
        body.variables.map(RawValue::get),
        max_variables_bytes,
    )?;
    if let Some(key) = body.extensions.idempotency_key {
        request.extensions.insert(
            IDEMPOTENCY_KEY.to_owned(),
            async_graphql::Value::String(key),
        );
    }
    Ok(request)
}

/// Builds a request from its parts; `variables` is the JSON text of an object, if any.
pub(super) fn request(
    query: String,
    operation_name: Option<String>,
    variables: Option<&str>,
    max_variables_bytes: usize,
) -> Result<Request, AppError> {
    let variables = match variables {
        None => Variables::default(),
        Some(json) if json.len() > max_variables_bytes => {
            return Err(AppError::BadUserInput(format!(
                "`variables` is {} bytes of JSON; the limit is {max_variables_bytes}",
                json.len()
            )));
        }
        Some(json) => match serde_json::from_str::<Value>(json) {
            Ok(Value::Null) => Variables::default(),
            Ok(value @ Value::Object(_)) => Variables::from_json(value),
            Ok(_) | Err(_) => {
                return Err(AppError::BadUserInput(
                    "`variables` must be a JSON object".to_owned(),
                ));
            }
        },
    };
    let mut request = Request::new(query).variables(variables);
    if let Some(name) = operation_name.filter(|name| !name.is_empty()) {
        request = request.operation_name(name);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> String {
        match decode(json.as_bytes(), 1024) {
            Err(AppError::BadUserInput(message)) => message,
            other => panic!("{json}: {:?}", other.map(|r| r.query)),
        }
    }

    #[test]
    fn requests_decode_with_their_parts() {
        let request = decode(
            br#"{"query":"query Q($a: ID) { user(id: $a) { id } }","operationName":"Q","variables":{"a":"u1"},"extensions":{}}"#,
            1024,
        )
        .expect("decodes");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(
            request.variables.into_value().into_json().expect("json"),
            serde_json::json!({ "a": "u1" })
        );
        assert!(decode(br#"{"query":"{ viewer { id } }","variables":null}"#, 1024).is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong_without_type_names() {
        for (json, expected) in [
            ("\"x\"", "must be a JSON object"),
            ("[{\"query\":\"{ a }\"}]", "must be a JSON object"),
            ("{\"query\": 5}", "must be a JSON object"),
            ("{\"query\": ", "not valid JSON"),
            ("{}", "has no `query`"),
            (
                "{\"query\":\"{ a }\",\"variables\":[1]}",
                "must be a JSON object",
            ),
        ] {
            let message = message(json);
            assert!(message.contains(expected), "{json}: {message}");
            for leak in ["struct", "Body", "Request", "enum"] {
                assert!(!message.contains(leak), "{json}: {message}");
            }
        }
    }

    #[test]
    fn variables_are_capped_before_they_are_parsed() {
        let big = format!(
            r#"{{"query":"{{ a }}","variables":{{"x":"{}"}}}}"#,
            "y".repeat(2000)
        );
        assert!(message(&big).contains("the limit is 1024"));
    }
}
