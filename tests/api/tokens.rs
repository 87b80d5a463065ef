//! RS256/ES256 tokens through a JWKS URL: validation, key rotation, algorithm confusion.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use axum::{Json, Router, response::IntoResponse, routing::get};
use base64::Engine as _;
use blog_graphql::config::TokenRules;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, spawn_app_on};

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    public: Vec<u8>,
}

fn es256_key(kid: &str) -> SigningKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let public = pair.public_key().as_ref().to_vec();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SigningKey {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({ "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                     "x": b64(&public[1..33]), "y": b64(&public[33..65]) }),
        public,
    }
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": "https://issuer.test", "aud": "blog", "exp": now() + 600, "iat": now() })
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("token")
}

pub(crate) struct Provider {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    /// How long the provider takes to answer a fetch, in milliseconds.
    delay_ms: Arc<AtomicUsize>,
    /// While set, the provider answers `503`.
    failing: Arc<AtomicBool>,
    pub url: String,
}

pub(crate) async fn provider(keys: Vec<Value>) -> Provider {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let (k, f, d, x) = (
        keys.clone(),
        fetches.clone(),
        delay_ms.clone(),
        failing.clone(),
    );
    let router = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let (k, f, d, x) = (k.clone(), f.clone(), d.clone(), x.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let delay = d.load(Ordering::SeqCst) as u64;
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if x.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                let keys = k.lock().expect("lock").clone();
                Json(json!({ "keys": keys })).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Provider {
        keys,
        fetches,
        delay_ms,
        failing,
        url,
    }
}

async fn app_with_jwks(url: &str, cooldown: Duration) -> TestApp {
    let (mut config, storage) = crate::helpers::fresh_tables().await;
    config.jwt_secret = None;
    config.jwks_url = Some(url.to_owned());
    config.token_rules = TokenRules {
        issuer: Some("https://issuer.test".into()),
        audience: Some("blog".into()),
        jwks_refresh_cooldown: cooldown,
        ..TokenRules::default()
    };
    spawn_app_on(config, storage).await
}

pub(crate) async fn viewer(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("accept", "application/graphql-response+json")
        .bearer_auth(token)
        .json(&json!({ "query": "{ viewer { id } }" }))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let mut body: Value = response.json().await.expect("json");
    if let Some(o) = body.as_object_mut() {
        o.remove("extensions");
    }
    (status, body)
}

#[tokio::test]
async fn es256_tokens_from_a_jwks_are_checked_in_full() {
    let key = es256_key("k1");
    let other = es256_key("k1");
    let provider = provider(vec![key.jwk.clone()]).await;
    let app = app_with_jwks(&provider.url, Duration::from_secs(30)).await;
    app.add_user("u1", "alice").await;

    let (status, body) = viewer(&app, &sign(&key, &claims("u1"))).await;
    assert_eq!(
        (status, body),
        (200, json!({ "data": { "viewer": { "id": "u1" } } }))
    );

    let mut wrong_issuer = claims("u1");
    wrong_issuer["iss"] = json!("https://evil.test");
    let mut wrong_audience = claims("u1");
    wrong_audience["aud"] = json!("other-app");
    let mut not_yet = claims("u1");
    not_yet["nbf"] = json!(now() + 3600);
    let mut expired = claims("u1");
    expired["exp"] = json!(now() - 3600);
    // A configured issuer and audience are required, not only checked when present.
    let mut no_issuer = claims("u1");
    no_issuer.as_object_mut().expect("object").remove("iss");
    let mut no_audience = claims("u1");
    no_audience.as_object_mut().expect("object").remove("aud");
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "kid": "k1" })),
        b64(&claims("u1"))
    );
    // Algorithm confusion: HS256 keyed with the public key the JWKS publishes.
    let confused = jsonwebtoken::encode(
        &Header {
            kid: Some("k1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &claims("u1"),
        &EncodingKey::from_secret(&key.public),
    )
    .expect("token");
    for (name, token) in [
        ("wrong issuer", sign(&key, &wrong_issuer)),
        ("wrong audience", sign(&key, &wrong_audience)),
        ("not valid yet", sign(&key, &not_yet)),
        ("expired", sign(&key, &expired)),
        ("no issuer", sign(&key, &no_issuer)),
        ("no audience", sign(&key, &no_audience)),
        (
            "signed by another key with the same kid",
            sign(&other, &claims("u1")),
        ),
        ("alg none", unsigned),
        ("HS256 keyed with the public key", confused),
    ] {
        let (status, body) = viewer(&app, &token).await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("UNAUTHENTICATED")),
            "{name}: {body}"
        );
    }
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "keys are cached"
    );
}

#[tokio::test]
async fn rotated_keys_are_fetched_and_made_up_key_ids_do_not_hammer_the_provider() {
    let old = es256_key("old");
    let provider = provider(vec![old.jwk.clone()]).await;
    let app = app_with_jwks(&provider.url, Duration::from_millis(200)).await;
    app.add_user("u1", "alice").await;
    assert_eq!(viewer(&app, &sign(&old, &claims("u1"))).await.0, 200);

    // The provider rotates: a new key appears, and tokens start to use it.
    let new = es256_key("new");
    provider.keys.lock().expect("lock").push(new.jwk.clone());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(viewer(&app, &sign(&new, &claims("u1"))).await.0, 200);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);

    // Tokens naming unknown keys: at most one fetch per cooldown, however many arrive.
    for i in 0..20 {
        let stranger = es256_key(&format!("made-up-{i}"));
        let (status, body) = viewer(&app, &sign(&stranger, &claims("u1"))).await;
        assert_eq!((status, code(&body)), (401, Some("UNAUTHENTICATED")));
    }
    assert!(
        provider.fetches.load(Ordering::SeqCst) <= 4,
        "{:?}",
        provider.fetches
    );
}

#[tokio::test]
async fn a_slow_key_fetch_stalls_no_token_whose_key_is_known() {
    let known = es256_key("known");
    let provider = provider(vec![known.jwk.clone()]).await;
    let app = app_with_jwks(&provider.url, Duration::from_millis(100)).await;
    app.add_user("u1", "alice").await;
    assert_eq!(viewer(&app, &sign(&known, &claims("u1"))).await.0, 200);

    // From now on the provider takes two seconds to answer.
    provider.delay_ms.store(2000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stranger = sign(&es256_key("unknown"), &claims("u1"));
    let (unknown, timed) = tokio::join!(viewer(&app, &stranger), async {
        // While the fetch for the unknown key runs, a known key is checked at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let (status, _) = viewer(&app, &sign(&known, &claims("u1"))).await;
        (status, started.elapsed())
    });
    assert_eq!(unknown.0, 401);
    let (status, took) = timed;
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(500),
        "waited {took:?} for another token's fetch"
    );
}

#[tokio::test]
async fn a_token_without_kid_uses_the_only_key_of_the_set() {
    let key = es256_key("only");
    let one = provider(vec![key.jwk.clone()]).await;
    let app = app_with_jwks(&one.url, Duration::from_secs(30)).await;
    let unnamed = |key: &SigningKey| {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims("u1"), &key.encoding)
            .expect("token")
    };
    assert_eq!(viewer(&app, &unnamed(&key)).await.0, 200);
    // Signed by another key: the only key does not verify it.
    assert_eq!(viewer(&app, &unnamed(&es256_key("other"))).await.0, 401);

    // With two keys in the set, a token without `kid` names neither.
    let second = es256_key("second");
    let two = provider(vec![key.jwk.clone(), second.jwk.clone()]).await;
    let app = app_with_jwks(&two.url, Duration::from_secs(30)).await;
    let (status, body) = viewer(&app, &unnamed(&key)).await;
    assert_eq!(status, 401);
    assert!(body.to_string().contains("names no key (kid)"), "{body}");
    assert_eq!(viewer(&app, &sign(&key, &claims("u1"))).await.0, 200);
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_are_unavailable_not_a_bad_token() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

    let key = es256_key("k1");
    let jwks = provider(vec![key.jwk.clone()]).await;
    jwks.failing.store(true, Ordering::SeqCst);
    let app = app_with_jwks(&jwks.url, Duration::from_millis(100)).await;
    let token = sign(&key, &claims("u1"));

    // Over HTTP: 503 with Retry-After, under either media type, never 401.
    for accept in ["application/graphql-response+json", "application/json"] {
        let response = app
            .http
            .post(format!("{}/graphql", app.url))
            .header("accept", accept)
            .bearer_auth(&token)
            .json(&json!({ "query": "{ viewer { id } }" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 503, "{accept}");
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.expect("json");
        assert_eq!(code(&body), Some("SERVICE_UNAVAILABLE"), "{body}");
    }

    // Over WebSocket: closed with "try again later", not `4403 Forbidden`.
    let mut ws = crate::ws_client::open(&app, "graphql-transport-ws")
        .await
        .expect("opens");
    let init = json!({ "type": "connection_init",
                       "payload": { "Authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string()))
        .await
        .expect("sent");
    let mut closed = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
    {
        if let Message::Close(frame) = message {
            closed = frame.map(|f| f.code);
            break;
        }
    }
    assert_eq!(closed, Some(CloseCode::from(1013)));

    // The keys are back: the same token is accepted.
    jwks.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(viewer(&app, &token).await.0, 200);

    // The provider rotates to a key the server could not fetch: with the old keys still
    // cached, a token of the new key is not known to be bad either.
    let rotated = es256_key("k2");
    *jwks.keys.lock().expect("lock") = vec![rotated.jwk.clone()];
    jwks.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let new_token = sign(&rotated, &claims("u1"));
    let (status, body) = viewer(&app, &new_token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(code(&body), Some("SERVICE_UNAVAILABLE"));
    jwks.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(viewer(&app, &new_token).await.0, 200);
}
