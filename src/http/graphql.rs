//! GraphQL over HTTP, as the GraphQL-over-HTTP spec describes it: `POST` with JSON, `GET`
//! with URL parameters (queries only), and both `application/json` and
//! `application/graphql-response+json` responses.

use std::sync::Arc;

use async_graphql::{
    Request, Response, Variables,
    http::GraphiQLSource,
    parser::types::{DocumentOperations, OperationType},
};
use axum::{
    body::Body,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse},
};
use serde::Deserialize;

use super::AppState;
use crate::{
    error::AppError,
    graphql::{
        error::{coded, error_code},
        limits::OperationName,
    },
    loaders::Loaders,
    storage::CostRecorder,
};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";
/// Clients send `x-dynamodb-cost: 1` to get the request's DynamoDB cost in `extensions`.
const COST_HEADER: &str = "x-dynamodb-cost";

/// The media type of the answer: the spec's own when the client accepts it, else JSON.
#[derive(Clone, Copy, PartialEq)]
enum MediaType {
    GraphQLResponse,
    Json,
}

impl MediaType {
    fn of(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains(GRAPHQL_RESPONSE) {
            Self::GraphQLResponse
        } else {
            Self::Json
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::GraphQLResponse => GRAPHQL_RESPONSE,
            Self::Json => JSON,
        }
    }
}

pub async fn post_graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> axum::response::Response {
    let media = MediaType::of(&headers);
    let limit = state.settings.max_body_bytes;
    let too_large = || {
        request_error(
            media,
            StatusCode::PAYLOAD_TOO_LARGE,
            AppError::BadUserInput(format!(
                "the request body is over the limit of {limit} bytes"
            )),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return too_large();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(JSON) {
        return request_error(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::BadUserInput(format!(
                "a GraphQL POST must have Content-Type: application/json (got {content_type:?})"
            )),
        );
    }
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return too_large();
    };
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return request_error(
                media,
                StatusCode::BAD_REQUEST,
                AppError::BadUserInput(format!("the body is not a GraphQL request: {err}")),
            );
        }
    };
    execute(&state, &headers, media, request).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
}

pub async fn get_graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> axum::response::Response {
    let media = MediaType::of(&headers);
    let params: GetParams = match serde_urlencoded_params(raw.as_deref().unwrap_or("")) {
        Ok(params) => params,
        Err(message) => {
            return request_error(
                media,
                StatusCode::BAD_REQUEST,
                AppError::BadUserInput(message),
            );
        }
    };
    let Some(query) = params.query else {
        let wants_html = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if wants_html && !state.settings.production {
            let page = GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("Blog GraphQL")
                .finish();
            return Html(page).into_response();
        }
        return request_error(
            media,
            StatusCode::BAD_REQUEST,
            AppError::BadUserInput("a GraphQL GET needs a `query` parameter".to_owned()),
        );
    };
    let variables = match params.variables.as_deref().map(serde_json::from_str) {
        None => Variables::default(),
        Some(Ok(value)) => Variables::from_json(value),
        Some(Err(_)) => {
            return request_error(
                media,
                StatusCode::BAD_REQUEST,
                AppError::BadUserInput("`variables` is not a JSON object".to_owned()),
            );
        }
    };
    if !is_query(&query, params.operation_name.as_deref()) {
        let mut response = request_error(
            media,
            StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadUserInput("mutations and subscriptions must be sent with POST".to_owned()),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    let mut request = Request::new(query).variables(variables);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    execute(&state, &headers, media, request).await
}

fn serde_urlencoded_params(raw: &str) -> Result<GetParams, String> {
    axum::extract::Query::<GetParams>::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| "the URL's parameters are malformed".to_owned())?,
    )
    .map(|q| q.0)
    .map_err(|_| "the URL's parameters are malformed".to_owned())
}

/// Whether the operation a GET would run is a query. A document that does not parse
/// counts as a query here, so that execution reports the parse error as usual.
fn is_query(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return true;
    };
    let ty = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    };
    !matches!(
        ty,
        Some(OperationType::Mutation | OperationType::Subscription)
    )
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    media: MediaType,
    request: Request,
) -> axum::response::Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let viewer = match state.auth.viewer(authorization).await {
        Ok(viewer) => viewer,
        Err(err) => return request_error(media, StatusCode::UNAUTHORIZED, err),
    };
    let cost = headers
        .get(COST_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
        .then(|| Arc::new(CostRecorder::default()));
    let storage = match &cost {
        Some(recorder) => state.storage.with_cost(recorder.clone()),
        None => state.storage.clone(),
    };
    let operation = OperationName(request.operation_name.clone());
    let request = request
        .data(viewer)
        .data(Loaders::new(storage))
        .data(operation);
    let timeout = state.settings.request_timeout;
    let Ok(mut response) = tokio::time::timeout(timeout, state.schema.execute(request)).await
    else {
        tracing::warn!(?timeout, "a GraphQL request timed out");
        return request_error(
            media,
            StatusCode::SERVICE_UNAVAILABLE,
            AppError::unavailable(anyhow::anyhow!("the request took longer than {timeout:?}")),
        );
    };
    if let Some(recorder) = cost {
        let report = serde_json::to_value(recorder.report()).unwrap_or_default();
        response.extensions.insert(
            "dynamodb".to_owned(),
            async_graphql::Value::from_json(report).unwrap_or_default(),
        );
    }
    respond(media, response)
}

/// A request that failed before execution: no `data` at all, per the spec.
fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

fn respond(media: MediaType, response: Response) -> axum::response::Response {
    let request_error = is_request_error(&response);
    let status = match media {
        // `application/json` answers every well-formed GraphQL response with 200.
        MediaType::Json => StatusCode::OK,
        MediaType::GraphQLResponse if !request_error => StatusCode::OK,
        MediaType::GraphQLResponse => {
            let unauthenticated = response
                .errors
                .iter()
                .any(|e| error_code(e) == Some("UNAUTHENTICATED"));
            if unauthenticated {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            }
        }
    };
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    if request_error && let Some(object) = body.as_object_mut() {
        object.remove("data");
    }
    json_response(media, status, &body)
}

/// The answer when the server is at its concurrency limit.
pub fn overloaded() -> axum::response::Response {
    let mut response = request_error(
        MediaType::Json,
        StatusCode::SERVICE_UNAVAILABLE,
        AppError::unavailable(anyhow::anyhow!("too many requests at once")),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn request_error(media: MediaType, status: StatusCode, err: AppError) -> axum::response::Response {
    let body = serde_json::json!({ "errors": [coded(err.client_message(), err.code())] });
    let status = if media == MediaType::Json && status != StatusCode::METHOD_NOT_ALLOWED {
        // Legacy clients expect 200 for GraphQL errors, but not for transport errors.
        match status {
            StatusCode::UNAUTHORIZED => StatusCode::OK,
            other => other,
        }
    } else {
        status
    };
    json_response(media, status, &body)
}

fn json_response(
    media: MediaType,
    status: StatusCode,
    body: &serde_json::Value,
) -> axum::response::Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    response
}
