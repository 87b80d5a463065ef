//! Logs and traces. Logs go to standard error: `RUST_LOG` filters them (default `info`),
//! `LOG_FORMAT=json` makes them one JSON object a line, each with the fields of the
//! request it belongs to (its `request_id` and, with tracing on, its `trace_id`). Text is
//! coloured only on a terminal. Traces go to an OpenTelemetry collector over OTLP/HTTP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//! with the SDK's own variables for the rest (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, …); off otherwise.

use std::{
    io::IsTerminal,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    propagation::Extractor,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// Whether traces are exported: spans that only traces read are made then only.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces.
pub fn tracing() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// What has to be flushed before the process ends.
#[must_use = "call `shutdown` before the process ends, or spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.trim().is_empty())
}

/// Starts logging, and tracing when the environment asks for it.
pub fn init() -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // The exporter's own HTTP calls are never traced or logged through themselves.
        .add_directive("hyper=off".parse().expect("a directive"))
        .add_directive("reqwest=off".parse().expect("a directive"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = if json {
        fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed()
    };
    let (traces, provider, failed) = match tracer_provider() {
        Ok(Some(provider)) => {
            TRACING.store(true, Ordering::Relaxed);
            let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_threads(false)
                .with_tracked_inactivity(false);
            (Some(layer), Some(provider), None)
        }
        Ok(None) => (None, None, None),
        Err(err) => (None, None, Some(err)),
    };
    // Each layer filters for itself: `RUST_LOG` says what is logged, never what is traced.
    let traces = traces.map(|layer| {
        layer.with_filter(
            EnvFilter::new("info")
                .add_directive("hyper=off".parse().expect("a directive"))
                .add_directive("reqwest=off".parse().expect("a directive")),
        )
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .init();
    if let Some(err) = failed {
        tracing::error!(error = %err, "traces are off: the OTLP exporter could not be built");
    }
    Telemetry { provider }
}

/// The tracer provider the environment asks for: none without an OTLP endpoint.
fn tracer_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // The exporter's HTTP client uses rustls, with the provider the AWS SDK uses.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Endpoint, headers and protocol come from the standard variables; JSON is the
    // protocol built in.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    // The resource (`OTEL_SERVICE_NAME`) and the sampler (`OTEL_TRACES_SAMPLER`) too.
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build(),
    ))
}

impl Telemetry {
    /// Sends the spans not sent yet, and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(err)) = done {
                eprintln!("traces: the exporter did not shut down cleanly: {err}");
            }
        }
    }
}

/// A request's headers, as the W3C trace context propagator reads them.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// Makes `span` continue the trace an incoming `traceparent` names (when tracing is on),
/// and records its trace id, for the log lines of the request.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(headers))
    });
    let _ = span.set_parent(parent);
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}
