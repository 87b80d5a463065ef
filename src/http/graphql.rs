//! GraphQL over HTTP, as the GraphQL-over-HTTP spec describes it: `POST` with JSON, `GET`
//! with URL parameters (queries only), and both `application/json` and
//! `application/graphql-response+json` responses. This module only frames requests (the
//! body within a deadline and a size limit, the credentials); the pipeline does the rest.

use std::sync::Arc;

use async_graphql::Response;
use axum::{
    body::Body,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use serde::Deserialize;

use super::{
    AppState,
    body::{DRAIN_BYTES, Received, closing, read_body},
    wire,
};
use crate::{
    domain::IdempotencyKey,
    error::{AppError, ErrorCode},
    graphql::{
        Caller, Outcome, Started, Transport,
        error::{coded, error_code, refusal},
        pipeline::is_request_error,
    },
    storage::CostRecorder,
};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";
/// Clients send `x-dynamodb-cost: 1` to get the request's DynamoDB cost in `extensions`.
const COST_HEADER: &str = "x-dynamodb-cost";
/// The IETF HTTP API working group's header naming a change, so that retries make it once.
pub(super) const IDEMPOTENCY_HEADER: &str = "idempotency-key";

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

pub(super) async fn post_graphql(
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
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|length| length > limit)
        && (expects_continue || declared.is_some_and(|length| length > DRAIN_BYTES))
    {
        // The client waits for a go-ahead it will not get, or the body is too large to
        // read through: answer now, and end the connection there.
        return closing(too_large());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(JSON) {
        let refused = request_error(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::BadUserInput(format!(
                "a GraphQL POST must have Content-Type: application/json (got {content_type:?})"
            )),
        );
        let deadline = tokio::time::Instant::now() + state.settings.body_timeout;
        return match read_body(body, 0, deadline).await {
            Received::Read(_) | Received::TooLarge { drained: true } => refused,
            _ => closing(refused),
        };
    }
    // The whole body within the deadline: a client trickling its body holds a
    // connection, never an operation's permit, and not for long.
    let timeout = state.settings.body_timeout;
    let body = match read_body(body, limit, tokio::time::Instant::now() + timeout).await {
        Received::Read(bytes) => bytes,
        Received::TooLarge { drained } if drained => return too_large(),
        Received::TooLarge { .. } => return closing(too_large()),
        Received::Failed => {
            return closing(request_error(
                media,
                StatusCode::BAD_REQUEST,
                AppError::BadUserInput("the request body could not be read".to_owned()),
            ));
        }
        Received::TimedOut => {
            // The rest of the body is still on its way: this connection is done.
            return closing(request_error(
                media,
                StatusCode::REQUEST_TIMEOUT,
                AppError::BadUserInput(format!(
                    "the request body did not arrive within {} seconds",
                    timeout.as_secs_f32()
                )),
            ));
        }
    };
    let request = match wire::decode(&body, state.pipeline.limits().max_variables_bytes) {
        Ok(request) => request,
        Err(err) => return request_error(media, StatusCode::BAD_REQUEST, err),
    };
    execute(&state, &headers, media, request, Transport::Post).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
}

pub(super) async fn get_graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> axum::response::Response {
    let media = MediaType::of(&headers);
    let params: GetParams = match url_params(raw.as_deref().unwrap_or("")) {
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
            return super::playground::page();
        }
        return request_error(
            media,
            StatusCode::BAD_REQUEST,
            AppError::BadUserInput("a GraphQL GET needs a `query` parameter".to_owned()),
        );
    };
    let request = match wire::request(
        query,
        params.operation_name,
        params.variables.as_deref(),
        state.pipeline.limits().max_variables_bytes,
    ) {
        Ok(request) => request,
        Err(err) => return request_error(media, StatusCode::BAD_REQUEST, err),
    };
    execute(&state, &headers, media, request, Transport::Get).await
}

fn url_params(raw: &str) -> Result<GetParams, String> {
    axum::extract::Query::<GetParams>::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| "the URL's parameters are malformed".to_owned())?,
    )
    .map(|q| q.0)
    .map_err(|_| "the URL's parameters are malformed".to_owned())
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    media: MediaType,
    mut request: async_graphql::Request,
    transport: Transport,
) -> axum::response::Response {
    if let Some(header) = headers.get(IDEMPOTENCY_HEADER) {
        let text = header.to_str().unwrap_or("\u{0}");
        let key = async_graphql::Value::String(text.to_owned());
        // Both forms of one key ("k" as a structured field, k as it is) are the same key.
        let same = |given: &async_graphql::Value| match (given, IdempotencyKey::parse(text)) {
            (async_graphql::Value::String(given), Ok(parsed)) => {
                IdempotencyKey::parse(given).is_ok_and(|given| given == parsed)
            }
            (given, _) => given == &key,
        };
        let given = request.extensions.get(wire::IDEMPOTENCY_KEY);
        if given.is_some_and(|given| !same(given)) {
            return request_error(
                media,
                StatusCode::BAD_REQUEST,
                AppError::BadUserInput(
                    "the Idempotency-Key header and extensions.idempotencyKey differ".to_owned(),
                ),
            );
        }
        request
            .extensions
            .insert(wire::IDEMPOTENCY_KEY.to_owned(), key);
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let viewer = match state.auth.viewer(authorization).await {
        Ok(viewer) => viewer,
        // A bad token is 401; keys that could not be fetched are 503: the error says which.
        Err(err) => return refused(media, err),
    };
    let cost = headers
        .get(COST_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
        .then(|| Arc::new(CostRecorder::default()));
    let storage = match &cost {
        Some(recorder) => state.storage.with_cost(recorder.clone()),
        None => state.storage.clone(),
    };
    let caller = Caller { viewer, storage };
    let outcome = match state.pipeline.start(request, caller, transport).await {
        Started::Done(outcome) => outcome,
        // The pipeline starts subscriptions only on transports that carry them.
        Started::Stream(_) => Outcome::WrongTransport(Response::from_errors(vec![coded(
            "subscriptions are served over a WebSocket on this path",
            ErrorCode::BadUserInput,
        )])),
    };
    let (mut response, status) = match outcome {
        Outcome::Ran(response) | Outcome::Refused(response) => (response, None),
        Outcome::WrongTransport(response) if transport == Transport::Get => {
            (response, Some(StatusCode::METHOD_NOT_ALLOWED))
        }
        Outcome::WrongTransport(response) => (response, Some(StatusCode::BAD_REQUEST)),
        Outcome::Busy(response) | Outcome::TimedOut(response) => {
            (response, Some(StatusCode::SERVICE_UNAVAILABLE))
        }
    };
    if let Some(recorder) = cost {
        let report = serde_json::to_value(recorder.report()).unwrap_or_default();
        response.extensions.insert(
            "dynamodb".to_owned(),
            async_graphql::Value::from_json(report).unwrap_or_default(),
        );
    }
    match status {
        Some(status) => {
            let mut body = serde_json::to_value(&response).unwrap_or_default();
            if let Some(object) = body.as_object_mut() {
                object.remove("data");
            }
            json_response(media, status, &body)
        }
        None => respond(media, response),
    }
}

fn respond(media: MediaType, response: Response) -> axum::response::Response {
    let request_error = is_request_error(&response);
    let status = match media {
        // `application/json` answers every well-formed GraphQL response with 200.
        MediaType::Json => StatusCode::OK,
        MediaType::GraphQLResponse if !request_error => StatusCode::OK,
        MediaType::GraphQLResponse => response
            .errors
            .first()
            .and_then(error_code)
            .map_or(StatusCode::BAD_REQUEST, status_of),
    };
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    if request_error && let Some(object) = body.as_object_mut() {
        object.remove("data");
    }
    json_response(media, status, &body)
}

/// The status of a request refused with `code` before it ran.
fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A request refused before it ran, answered with the status its error calls for.
fn refused(media: MediaType, err: AppError) -> axum::response::Response {
    request_error(media, status_of(err.code()), err)
}

fn request_error(media: MediaType, status: StatusCode, err: AppError) -> axum::response::Response {
    let body = serde_json::json!({ "errors": [refusal(err)] });
    // Legacy clients expect 200 for a GraphQL error (a bad token), but not for transport
    // errors (a body too large, a server too busy).
    let status = match (media, status) {
        (MediaType::Json, StatusCode::UNAUTHORIZED) => StatusCode::OK,
        (_, status) => status,
    };
    json_response(media, status, &body)
}

fn json_response(
    media: MediaType,
    status: StatusCode,
    body: &serde_json::Value,
) -> axum::response::Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    // What the status calls for, whichever way the answer came to it.
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}
