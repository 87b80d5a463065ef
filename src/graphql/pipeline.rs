//! One request pipeline for every GraphQL operation, whatever carried it.
//!
//! A transport (`GET`, `POST`, a WebSocket message) only frames an operation: it reads it
//! within a deadline, caps its size and finds the caller's credentials. Then every
//! operation goes through the same steps, in the same order, with the same limits:
//!
//! 1. a concurrency permit, taken only now that the operation is complete (never while its
//!    bytes are still arriving); none free is `SERVICE_UNAVAILABLE` at once;
//! 2. the document's size, and its nesting as GraphQL's lexer reads it, before any parse
//!    (the parser recurses once per level);
//! 3. one parse (none for a text parsed recently: see `documents`);
//! 4. the operation to run, and whether the transport may carry it;
//! 5. the limits: nesting, depth, fields, and cost with variable defaults applied;
//! 6. async-graphql's validation and execution, within the request timeout.
//!
//! A subscription holds its permit until it has started (validated, and listening); its
//! events are then resolved with loaders shared by every subscription of the instance
//! (see `subscription::EventLoaders`), so an event costs DynamoDB the same whether ten or
//! ten thousand clients listen, and never more than `loaders::EVENT_BUDGET` requests.

use std::{sync::Arc, time::Duration};

use async_graphql::{
    Request, Response, ServerError, Value,
    futures_util::stream::BoxStream,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::{
    AppSchema,
    context::Idempotency,
    documents::Documents,
    error::{coded, with_code},
    limits::{self, FieldTypes, RECURSION_LIMIT},
    nesting::nesting,
    subscription::Live,
};
use crate::{
    auth::Viewer, config::QueryLimits, error::ErrorCode, error::UNKNOWN_OUTCOME, loaders::Loaders,
    storage::Storage,
};

/// Where a request's idempotency key is, in its `extensions` (from the `Idempotency-Key`
/// header, or from `extensions.idempotencyKey` in the request's JSON).
pub const IDEMPOTENCY_KEY: &str = "idempotencyKey";

/// Who asks, and through which storage handle (one that counts its requests, when the
/// client asked for the cost).
pub struct Caller {
    /// The acting user, or an anonymous reader.
    pub viewer: Viewer,
    /// The storage the operation reads and writes through.
    pub storage: Storage,
}

/// What carried an operation: each carries only some kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Queries only: a GET must not change anything.
    Get,
    /// Queries and mutations; subscriptions need a connection that stays open.
    Post,
    /// Everything.
    WebSocket,
}

impl Transport {
    fn carries(self, kind: OperationType) -> bool {
        match self {
            Self::Get => kind == OperationType::Query,
            Self::Post => kind != OperationType::Subscription,
            Self::WebSocket => true,
        }
    }
}

/// How an operation that runs once ended.
#[derive(Debug)]
pub enum Outcome {
    /// It ran. The response may still be a request error that validation raised.
    Ran(Response),
    /// Refused before running: the document, its variables or the limits.
    Refused(Response),
    /// The transport does not carry this kind of operation (a mutation over GET).
    WrongTransport(Response),
    /// No permit was free: the server is at its concurrency limit.
    Busy(Response),
    /// It took longer than the request timeout.
    TimedOut(Response),
}

impl Outcome {
    /// Counts the operation in the metrics: by name and type, how it ended, how long it
    /// ran (when it did), and its errors by code.
    fn observe(&self, name: Option<&str>, kind: Option<OperationType>, elapsed: Option<Duration>) {
        let (response, outcome) = match self {
            Self::Ran(response) if response.errors.is_empty() => (response, "ok"),
            Self::Ran(response) => (response, "error"),
            Self::Refused(response) | Self::WrongTransport(response) => (response, "refused"),
            Self::Busy(response) => (response, "busy"),
            Self::TimedOut(response) => (response, "timed_out"),
        };
        crate::metrics::operation(name, kind_label(kind), outcome, elapsed);
        for error in &response.errors {
            let code = error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .and_then(|code| match code {
                    async_graphql::Value::String(code) => Some(code.as_str()),
                    _ => None,
                })
                .unwrap_or("NONE");
            crate::metrics::error(code);
        }
    }
}

/// The `type` label of an operation.
fn kind_label(kind: Option<OperationType>) -> &'static str {
    match kind {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// The name of the operation a request runs: the one it names, or the document's only
/// one.
fn operation_name(request: &Request, document: &ExecutableDocument) -> Option<String> {
    if let Some(name) = request.operation_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_owned());
    }
    match &document.operations {
        DocumentOperations::Multiple(operations) if operations.len() == 1 => {
            operations.keys().next().map(ToString::to_string)
        }
        _ => None,
    }
}

/// An operation that passed the guards and holds a permit, ready to run.
pub struct Prepared {
    request: Request,
    kind: OperationType,
    permit: OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
    /// The idempotency key and fingerprint of a mutation sent with a key.
    idempotency: Option<Idempotency>,
    /// The operation's name, for the metrics.
    name: Option<String>,
    /// What every response of the operation goes through.
    finish: Finish,
}

/// What [`Pipeline::check`] found out about a request's document.
struct Checked {
    kind: OperationType,
    /// The operation's name, for the metrics.
    name: Option<String>,
    document: Arc<ExecutableDocument>,
}

/// The last step of every response (each event's, for a subscription): its fields in the
/// order the document selected them, and every error with the contract's code. Done
/// here rather than in schema extensions, as async-graphql runs every field of every
/// query through the extensions' resolve chain once it has any.
struct Finish {
    document: Arc<ExecutableDocument>,
    /// The operation the request named.
    operation: Option<String>,
}

impl Finish {
    fn response(&self, mut response: Response) -> Response {
        if is_request_error(&response) {
            // Parsing, the limits and the choice of operation ran before async-graphql
            // did: what it refuses before running anything failed validation.
            for error in &mut response.errors {
                *error = with_code(error.clone(), ErrorCode::GraphqlValidationFailed);
            }
        } else {
            super::order::in_selection_order(
                &mut response.data,
                &self.document,
                self.operation.as_deref(),
            );
        }
        super::error::coded_response(response)
    }
}

impl Prepared {
    /// Whether the operation is a query, a mutation or a subscription.
    pub fn kind(&self) -> OperationType {
        self.kind
    }
}

/// An operation that has started.
// One of these exists per operation, moved once or twice: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Started {
    /// A query or mutation, run to its end (or refused).
    Done(Outcome),
    /// A subscription: one response per event.
    Stream(BoxStream<'static, Response>),
}

/// The pipeline: the schema, the limits, the permits and the timeout every transport shares.
pub struct Pipeline {
    schema: AppSchema,
    limits: QueryLimits,
    /// The schema's field types, for the limits to weigh what a selection returns.
    types: FieldTypes,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    timeout: Duration,
    live: Option<Live>,
    /// Parsed documents of recent query texts.
    documents: Documents,
}

impl Pipeline {
    /// A pipeline that runs at most `max_concurrent` operations at once, each for at most
    /// `timeout`.
    pub fn new(
        schema: AppSchema,
        limits: QueryLimits,
        max_concurrent: usize,
        timeout: Duration,
        live: Option<Live>,
    ) -> Self {
        Self {
            types: FieldTypes::from_sdl(&schema.sdl()),
            schema,
            limits,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            timeout,
            live,
            documents: Documents::default(),
        }
    }

    /// The limits every document is checked against.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// How long an operation may run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs a query or mutation to its end, or starts a subscription.
    pub async fn start(&self, request: Request, caller: Caller, transport: Transport) -> Started {
        match self.prepare(request, transport) {
            Ok(prepared) => self.run(prepared, caller).await,
            Err(outcome) => Started::Done(outcome),
        }
    }

    /// Steps 1 to 5: the permit, then the document's guards and limits. A transport that
    /// has to know the kind of operation before it runs it (a WebSocket counts each kind
    /// against its own per-connection limit) calls this, then [`Pipeline::run`].
    #[allow(clippy::result_large_err)] // see `Started`
    pub fn prepare(&self, request: Request, transport: Transport) -> Result<Prepared, Outcome> {
        // Refused before its document was read: its name is not one the metrics trust.
        self.guard(request, transport).inspect_err(|refused| {
            refused.observe(None, None, None);
        })
    }

    #[allow(clippy::result_large_err)] // see `Started`
    fn guard(&self, mut request: Request, transport: Transport) -> Result<Prepared, Outcome> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = self.max_concurrent,
                "refused an operation: at the concurrency limit"
            );
            return Err(Outcome::Busy(unavailable(
                "the server is at its limit of operations at once; try again shortly",
            )));
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let refused = |error| Outcome::Refused(Response::from_errors(vec![error]));
        let key = Idempotency::key_of(&request).map_err(refused)?;
        let Checked {
            kind,
            name,
            document,
        } = self.check(&mut request).map_err(refused)?;
        // A key names a change: it matters to mutations only (queries change nothing).
        let idempotency = key
            .filter(|_| kind == OperationType::Mutation)
            .map(|key| Idempotency::new(key, &request));
        if !transport.carries(kind) {
            let message = match transport {
                Transport::Get => "only queries may be sent with GET; send mutations with POST",
                _ => {
                    "subscriptions are served over a WebSocket on this path (graphql-transport-ws)"
                }
            };
            return Err(Outcome::WrongTransport(refusal(
                message,
                ErrorCode::BadUserInput,
            )));
        }
        Ok(Prepared {
            finish: Finish {
                document,
                operation: request.operation_name.clone(),
            },
            request,
            kind,
            permit,
            deadline,
            idempotency,
            name,
        })
    }

    /// Step 6: validation and execution, within the timeout that started with the permit.
    pub async fn run(&self, prepared: Prepared, caller: Caller) -> Started {
        let Prepared {
            request,
            kind,
            permit,
            deadline,
            idempotency,
            name,
            finish,
        } = prepared;
        let started = tokio::time::Instant::now();
        let mut request = request.data(caller.viewer);
        if let Some(idempotency) = idempotency {
            request = request.data(idempotency);
        }
        if kind == OperationType::Subscription {
            let Some(live) = &self.live else {
                let outcome = Outcome::Refused(refusal(
                    "subscriptions are turned off on this server",
                    ErrorCode::ServiceUnavailable,
                ));
                outcome.observe(name.as_deref(), Some(kind), None);
                return Started::Done(outcome);
            };
            crate::metrics::operation(name.as_deref(), kind_label(Some(kind)), "subscribed", None);
            let stream = self
                .schema
                .execute_stream(request.data(live.loaders()))
                .map(move |response| finish.response(response))
                .boxed();
            // The stream validates the document and starts the subscription when first
            // polled: hold the permit until then.
            return Started::Stream(HoldUntilFirstPoll::new(stream, permit).boxed());
        }
        let loaders = Arc::new(Loaders::new(caller.storage));
        let request = request.data(loaders.clone());
        let span = tracing::info_span!(
            "graphql",
            otel.name = tracing::field::Empty,
            graphql.operation.type = kind_label(Some(kind)),
            graphql.operation.name = name.as_deref().unwrap_or_default(),
        );
        if crate::telemetry::tracing() {
            let operation = name.as_deref().unwrap_or("anonymous");
            span.record(
                "otel.name",
                format!("{} {operation}", kind_label(Some(kind))),
            );
        }
        let execution = loaders
            .run(self.schema.execute(request))
            .instrument(span.clone());
        let outcome = match tokio::time::timeout_at(deadline, execution).await {
            // In the operation's span, so that its errors are logged within it.
            Ok(response) => Outcome::Ran(span.in_scope(|| finish.response(response))),
            Err(_) if kind == OperationType::Mutation => {
                // Cut off mid-write: what was written is written.
                tracing::warn!(timeout = ?self.timeout, "a mutation timed out");
                let mut error = coded(UNKNOWN_OUTCOME, ErrorCode::ServiceUnavailable);
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("outcome", "UNKNOWN");
                Outcome::TimedOut(Response::from_errors(vec![error]))
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "an operation timed out");
                Outcome::TimedOut(unavailable(&format!(
                    "the operation took longer than {} seconds; try again shortly",
                    self.timeout.as_secs_f32()
                )))
            }
        };
        drop(permit);
        outcome.observe(name.as_deref(), Some(kind), Some(started.elapsed()));
        Started::Done(outcome)
    }

    /// Steps 2 to 5: size, nesting, parse, operation, limits. The parsed document goes
    /// into the request, so that async-graphql does not parse it again.
    fn check(&self, request: &mut Request) -> Result<Checked, ServerError> {
        let query = &request.query;
        if query.len() > self.limits.max_bytes {
            return Err(coded(
                format!(
                    "the document is {} bytes long; the limit is {}",
                    query.len(),
                    self.limits.max_bytes
                ),
                ErrorCode::QueryTooComplex,
            ));
        }
        let document = match self.documents.get(query) {
            Some(document) => document,
            None => {
                let depth = nesting(query);
                if depth > RECURSION_LIMIT {
                    return Err(coded(
                        format!(
                            "the document nests brackets {depth} levels deep; the limit is {RECURSION_LIMIT}"
                        ),
                        ErrorCode::QueryTooComplex,
                    ));
                }
                Arc::new(
                    async_graphql::parser::parse_query(query)
                        .map_err(|err| with_code(err.into(), ErrorCode::GraphqlParseFailed))?,
                )
            }
        };
        self.limits.check_operations(&document)?;
        let operation = limits::selected(&document, request.operation_name.as_deref())?;
        let kind = operation.node.ty;
        self.limits
            .check(&document, &request.variables, &operation.node, &self.types)?;
        // Kept only once within the limits: a refused document could be large.
        self.documents.keep(query, document.clone());
        super::variables::coerce(&operation.node, &request.variables, &self.types)?;
        let name = operation_name(request, &document);
        request.set_parsed_query(ExecutableDocument::clone(&document));
        Ok(Checked {
            kind,
            name,
            document,
        })
    }
}

/// A stream whose first poll (where async-graphql validates a subscription and starts
/// it) happens under the operation's permit; the permit goes with that first poll.
struct HoldUntilFirstPoll {
    inner: BoxStream<'static, Response>,
    permit: Option<OwnedSemaphorePermit>,
}

impl HoldUntilFirstPoll {
    fn new(inner: BoxStream<'static, Response>, permit: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            permit: Some(permit),
        }
    }
}

impl futures::Stream for HoldUntilFirstPoll {
    type Item = Response;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Response>> {
        let poll = self.inner.as_mut().poll_next(cx);
        self.permit = None;
        poll
    }
}

fn refusal(message: &str, code: ErrorCode) -> Response {
    Response::from_errors(vec![coded(message, code)])
}

fn unavailable(message: &str) -> Response {
    refusal(message, ErrorCode::ServiceUnavailable)
}

/// Whether a response is a request error: it failed before execution (parse, validation,
/// limits), so it has no `data` and no error has a path.
pub fn is_request_error(response: &Response) -> bool {
    response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}
