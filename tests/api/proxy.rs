//! A fault-injecting proxy between a server and DynamoDB Local: it forwards every request,
//! and, as a test asks, fails some requests of one operation, or forwards one and holds
//! its answer back (the write happens; its answer comes too late, or never).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};

/// What to do to the next requests of one operation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// Forward as usual (to let some requests through before the faults).
    Pass,
    /// Answer `500 InternalServerError` without forwarding.
    Fail,
    /// Answer `400` with this error type (`ExpiredIteratorException`, say) without forwarding.
    Error(&'static str),
    /// Forward, then hold the answer back this long before sending it.
    Hold(Duration),
}

#[derive(Default)]
struct Plan {
    /// By operation (`TransactWriteItems`, `DescribeStream`, ...): faults still to inject,
    /// each into a request whose body holds its text (any request, without one).
    faults: HashMap<String, Vec<(Option<String>, Fault)>>,
    /// Requests seen, by operation.
    seen: HashMap<String, usize>,
}

#[derive(Clone)]
pub(crate) struct Proxy {
    pub endpoint: String,
    plan: Arc<Mutex<Plan>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (DynamoDB Local's endpoint).
    pub(crate) async fn start(upstream: &str) -> Self {
        // reqwest's rustls needs the process's crypto provider (plain HTTP or not).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let state = (upstream.to_owned(), plan.clone(), reqwest::Client::new());
        let router = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { endpoint, plan }
    }

    /// Injects `fault` into the next `count` requests of `operation`.
    pub(crate) fn inject(&self, operation: &str, fault: Fault, count: usize) {
        self.inject_when(operation, None, fault, count);
    }

    /// Injects `fault` into the next `count` requests of `operation` whose body holds
    /// `needle` (a table's name, say).
    pub(crate) fn inject_when(
        &self,
        operation: &str,
        needle: Option<&str>,
        fault: Fault,
        count: usize,
    ) {
        let mut plan = self.plan.lock().expect("plan");
        plan.faults
            .entry(operation.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(
                (needle.map(str::to_owned), fault),
                count,
            ));
    }

    /// How many requests of `operation` the proxy has seen.
    pub(crate) fn seen(&self, operation: &str) -> usize {
        let plan = self.plan.lock().expect("plan");
        plan.seen.get(operation).copied().unwrap_or(0)
    }

    /// Faults of `operation` not injected yet.
    pub(crate) fn pending(&self, operation: &str) -> usize {
        let plan = self.plan.lock().expect("plan");
        plan.faults.get(operation).map_or(0, Vec::len)
    }
}

type ProxyState = (String, Arc<Mutex<Plan>>, reqwest::Client);

async fn forward(
    State((upstream, plan, http)): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // `X-Amz-Target: DynamoDB_20120810.TransactWriteItems` names the operation.
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    let fault = {
        let mut plan = plan.lock().expect("plan");
        *plan.seen.entry(operation.clone()).or_default() += 1;
        let text = String::from_utf8_lossy(&body);
        plan.faults.get_mut(&operation).and_then(|faults| {
            let at = faults
                .iter()
                .position(|(needle, _)| needle.as_deref().is_none_or(|n| text.contains(n)))?;
            Some(faults.remove(at).1)
        })
    };
    let refusal = match fault {
        Some(Fault::Fail) => Some((StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError")),
        Some(Fault::Error(kind)) => Some((StatusCode::BAD_REQUEST, kind)),
        _ => None,
    };
    if let Some((status, kind)) = refusal {
        let body = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected"}}"#
        );
        return (
            status,
            [("content-type", "application/x-amz-json-1.0")],
            body,
        )
            .into_response();
    }
    let mut request = http.request(method, format!("{upstream}{}", uri.path()));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.body(body).send().await {
        Ok(answer) => answer,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if let Some(Fault::Hold(hold)) = fault {
        tokio::time::sleep(hold).await;
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}
