use tracing_subscriber::{EnvFilter, fmt};

/// Structured logs on standard error; `RUST_LOG` filters them (default `info`),
/// `LOG_FORMAT=json` makes them one JSON object a line.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
