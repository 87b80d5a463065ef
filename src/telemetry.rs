use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

/// Structured logs on standard error; `RUST_LOG` filters them (default `info`),
/// `LOG_FORMAT=json` makes them one JSON object a line, each with the fields of the
/// request it belongs to (its `request_id`). Text is coloured only on a terminal: a file
/// or a pipe gets no escape codes.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!json && std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
