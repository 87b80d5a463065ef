//! A token's claims as RFC 7519 defines them: only `sub` and `exp` required, and
//! NumericDates that may have a fraction but must be sane.

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use crate::helpers::spawn_app_on;
use crate::tokens::{now, viewer};

#[tokio::test]
async fn tokens_need_only_sub_and_exp() {
    let (config, storage) = crate::helpers::fresh_tables().await;
    let app = spawn_app_on(config, storage).await;
    let secret = jsonwebtoken::EncodingKey::from_secret(crate::helpers::SECRET.as_bytes());
    let plain = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "u1", "exp": now() + 600 }),
        &secret,
    )
    .expect("token");
    assert_eq!(viewer(&app, &plain).await.0, 200, "sub and exp are enough");
}

#[tokio::test]
async fn numeric_dates_may_have_fractions_and_must_be_sane() {
    let (config, storage) = crate::helpers::fresh_tables().await;
    let app = spawn_app_on(config, storage).await;
    let secret = jsonwebtoken::EncodingKey::from_secret(crate::helpers::SECRET.as_bytes());
    let token = |claims: Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &secret).expect("token")
    };
    let now = now() as f64;
    let cases = [
        (json!({ "sub": "u1", "exp": now + 600.5 }), 200, None),
        (
            json!({ "sub": "u1", "exp": now + 600.25, "nbf": now - 0.5, "iat": now - 0.5 }),
            200,
            None,
        ),
        (
            json!({ "sub": "u1", "exp": now - 60.5 }),
            401,
            Some("expired"),
        ),
        (
            json!({ "sub": "u1", "exp": now + 600.0, "nbf": now + 120.5 }),
            401,
            Some("not valid yet"),
        ),
        (json!({ "sub": "u1", "exp": 1e300 }), 401, Some("malformed")),
        (json!({ "sub": "u1", "exp": -5 }), 401, Some("malformed")),
        (
            json!({ "sub": "u1", "exp": "soon" }),
            401,
            Some("malformed"),
        ),
        (json!({ "sub": "u1" }), 401, Some("lacks a required claim")),
        (
            json!({ "exp": now + 600.0 }),
            401,
            Some("lacks a required claim"),
        ),
    ];
    for (claims, status, why) in cases {
        let (got, body) = viewer(&app, &token(claims.clone())).await;
        assert_eq!(got, status, "{claims}: {body}");
        if let Some(why) = why {
            let message = body["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains(why), "{claims}: {body}");
        }
    }
}
