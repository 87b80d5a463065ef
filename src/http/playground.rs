//! The GraphQL playground (GraphiQL) and the schema as SDL, served by the binary alone:
//! the page, its scripts and styles are embedded at build time (see
//! `scripts/vendor-playground.sh`), so that it works with no internet and loads nothing
//! from another origin. Neither is served in production mode.

use std::sync::LazyLock;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::AppState;

/// The page may load and connect to this server only, and run no inline script. Style
/// elements need the page's nonce (GraphiQL's dialogs add one, with the nonce it reads from
/// the page); style attributes (editor widgets set some) can load nothing beyond `img-src`.
fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
         style-src-attr 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

const PAGE: &str = include_str!("../../assets/playground/index.html");
const NONCE_SLOT: &str = "{{STYLE_NONCE}}";

/// An embedded file: its name under `/graphql/playground/`, media type, bytes, gzip copy,
/// and whether its name carries its version (and so may be cached for good).
struct Asset {
    name: &'static str,
    media: &'static str,
    bytes: &'static [u8],
    gzip: Option<&'static [u8]>,
    versioned: bool,
}

macro_rules! vendored {
    ($name:literal, $media:expr) => {
        Asset {
            name: $name,
            media: $media,
            bytes: include_bytes!(concat!("../../assets/playground/", $name)),
            gzip: Some(include_bytes!(concat!(
                "../../assets/playground/",
                $name,
                ".gz"
            ))),
            versioned: true,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const ASSETS: &[Asset] = &[
    vendored!("react-18.3.1.min.js", JS),
    vendored!("react-dom-18.3.1.min.js", JS),
    vendored!("graphiql-4.1.2.min.js", JS),
    vendored!("graphiql-4.1.2.min.css", CSS),
    vendored!("graphql-ws-5.16.2.min.js", JS),
    Asset {
        name: "playground.js",
        media: JS,
        bytes: include_bytes!("../../assets/playground/playground.js"),
        gzip: None,
        versioned: false,
    },
    Asset {
        name: "playground.css",
        media: CSS,
        bytes: include_bytes!("../../assets/playground/playground.css"),
        gzip: None,
        versioned: false,
    },
];

/// The playground page, with the policy that keeps it to this server and a new nonce.
pub(super) fn page() -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CONTENT_SECURITY_POLICY, page_policy(&nonce)),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        PAGE.replace(NONCE_SLOT, &nonce),
    )
        .into_response()
}

/// `GET /graphql/playground/{file}`: one of the page's files.
pub(super) async fn asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == file) else {
        return not_found();
    };
    if state.settings.production {
        return not_found();
    }
    let cache = if asset.versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let gzip = asset.gzip.filter(|_| accepts_gzip(&headers));
    let mut response = gzip.unwrap_or(asset.bytes).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if asset.gzip.is_some() {
        response_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzip.is_some() {
        response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// `GET /graphql/schema.graphql`: the schema in SDL, byte for byte `schema.graphql`, for
/// tools that read SDL rather than introspect. Off with introspection, in production.
pub(super) async fn schema(State(state): State<AppState>) -> Response {
    static SDL: LazyLock<String> = LazyLock::new(crate::graphql::sdl);
    if !state.pipeline.limits().introspection {
        return not_found();
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SDL.as_str(),
    )
        .into_response()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page names every vendored file with the hash of the bytes served for it, so
    /// that a re-vendored file cannot be served under a stale integrity attribute.
    #[test]
    fn the_page_carries_the_integrity_of_every_vendored_file() {
        use aws_lc_rs::digest::{SHA384, digest};
        use base64::{Engine, engine::general_purpose::STANDARD};

        for asset in ASSETS.iter().filter(|asset| asset.versioned) {
            let integrity = format!(
                "sha384-{}",
                STANDARD.encode(digest(&SHA384, asset.bytes).as_ref())
            );
            let tag = format!("\"graphql/playground/{}\"\n", asset.name);
            let at = PAGE
                .find(&tag)
                .unwrap_or_else(|| panic!("the page loads {}", asset.name));
            let rest = &PAGE[at + tag.len()..];
            let attribute = rest.trim_start();
            assert!(
                attribute.starts_with(&format!("integrity=\"{integrity}\"")),
                "{}: the page's integrity is not {integrity}",
                asset.name
            );
        }
        for asset in ASSETS {
            assert!(
                PAGE.contains(&format!("\"graphql/playground/{}\"", asset.name)),
                "the page loads {}",
                asset.name
            );
        }
    }

    #[test]
    fn gzip_is_served_only_to_clients_that_take_it() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&headers)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
