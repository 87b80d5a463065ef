//! Bearer tokens: who is asking.
//!
//! Two kinds of keys, chosen by the token's own `alg` and never crossed: HS256 with the
//! configured secret, and RS256/RS384/RS512/ES256/ES384 with the public keys of a JWKS
//! URL (Cognito and any OIDC provider publish one). An `alg` outside that set, `none`
//! included, is refused; a key from the JWKS is used only for its own key type and
//! algorithm, so an HS256 token can never be checked against a public key.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

mod jwks;

use self::jwks::Jwks;
use crate::{
    config::{Secret, TokenRules},
    domain::UserId,
    error::AppError,
};

/// The acting user of a request, and until when their credentials hold; anonymous
/// readers have neither.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    id: Option<UserId>,
    valid_until: Option<SystemTime>,
}

impl Viewer {
    /// A reader without a token, who may query but not change anything.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A user whose token is accepted until `valid_until`.
    pub fn user(id: UserId, valid_until: SystemTime) -> Self {
        Self {
            id: Some(id),
            valid_until: Some(valid_until),
        }
    }

    /// The acting user's id; `None` for an anonymous reader.
    pub fn id(&self) -> Option<&UserId> {
        self.id.as_ref()
    }

    /// When the token stops being accepted (its `exp`, plus the leeway allowed for
    /// clocks that disagree); `None` for an anonymous reader. A WebSocket authenticated
    /// with the token closes then.
    pub fn valid_until(&self) -> Option<SystemTime> {
        self.valid_until
    }

    /// Whether the token has stopped being accepted; never for an anonymous reader.
    pub fn expired(&self) -> bool {
        self.valid_until
            .is_some_and(|until| SystemTime::now() >= until)
    }

    /// The acting user, or `UNAUTHENTICATED` for an anonymous request.
    pub fn require(&self) -> Result<&UserId, AppError> {
        self.id.as_ref().ok_or_else(|| {
            AppError::Unauthenticated(
                "this operation needs a bearer token (Authorization: Bearer <JWT>)".to_owned(),
            )
        })
    }
}

/// The claims of the development tokens the server mints.
#[derive(Debug, Serialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

/// The claims the server reads: `sub` and `exp` are required, `nbf` checked when present,
/// `iat` (optional in RFC 7519, and left out by many issuers) ignored. Times are RFC 7519
/// NumericDates, which may have a fraction, so they are read as numbers of any kind and
/// checked here rather than by jsonwebtoken (which reads whole seconds only).
#[derive(Debug, Deserialize)]
struct ReadClaims {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
}

/// The latest NumericDate read as one (the year 9999): past it, a time is garbage.
const LAST_NUMERIC_DATE: f64 = 253_402_300_799.0;

impl ReadClaims {
    /// The token's `exp`, once it and `nbf` hold at `now` (seconds since the epoch),
    /// give or take `leeway`.
    fn check_times(&self, now: f64, leeway: f64) -> Result<f64, AppError> {
        let sane = |time: f64| time.is_finite() && (0.0..=LAST_NUMERIC_DATE).contains(&time);
        let exp = self
            .exp
            .ok_or_else(|| unauthenticated("the token lacks a required claim"))?;
        if !sane(exp) || self.nbf.is_some_and(|nbf| !sane(nbf)) {
            return Err(unauthenticated("the token is malformed"));
        }
        if exp + leeway < now {
            return Err(unauthenticated("the token has expired"));
        }
        if self.nbf.is_some_and(|nbf| nbf - leeway > now) {
            return Err(unauthenticated("the token is not valid yet"));
        }
        Ok(exp)
    }
}

/// Verifies bearer tokens (and, with a secret, mints development tokens).
#[derive(Clone)]
pub struct Authenticator {
    secret: Option<(EncodingKey, DecodingKey)>,
    jwks: Option<Arc<Jwks>>,
    rules: TokenRules,
}

fn unauthenticated(why: &str) -> AppError {
    AppError::Unauthenticated(why.to_owned())
}

/// Tokens are small; a huge one is garbage, and not worth decoding.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

impl Authenticator {
    /// HS256 with `secret` only.
    pub fn hs256(secret: &Secret) -> Self {
        Self::new(Some(secret), None, TokenRules::default())
    }

    /// Checks HS256 tokens against `secret` and RS/ES tokens against the keys at `jwks_url`
    /// (each when given), under `rules`.
    pub fn new(secret: Option<&Secret>, jwks_url: Option<String>, rules: TokenRules) -> Self {
        Self {
            secret: secret.map(|s| {
                (
                    EncodingKey::from_secret(s.expose().as_bytes()),
                    DecodingKey::from_secret(s.expose().as_bytes()),
                )
            }),
            jwks: jwks_url.map(|url| Arc::new(Jwks::new(url, rules.jwks_refresh_cooldown))),
            rules,
        }
    }

    /// The viewer named by an `Authorization` header value; no header is an anonymous reader.
    pub async fn viewer(&self, authorization: Option<&str>) -> Result<Viewer, AppError> {
        let Some(header) = authorization else {
            return Ok(Viewer::anonymous());
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <JWT>`"))?;
        self.verify(token).await
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // A configured issuer or audience is required, not only checked when present
        // (RFC 8725, 3.8 and 3.9): otherwise any token the same provider signs for
        // another client would pass.
        let mut required = vec!["sub"];
        if self.rules.issuer.is_some() {
            required.push("iss");
        }
        if self.rules.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        // `exp` and `nbf` are checked by `ReadClaims::check_times`, fractions and all.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        if let Some(issuer) = &self.rules.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.rules.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
    }

    /// Checks a token and returns who it names, with until when it holds.
    pub async fn verify(&self, token: &str) -> Result<Viewer, AppError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated("the token is malformed"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("the token is malformed"))?;
        // RFC 7515, 4.1.11: a token whose header lists extensions the recipient must
        // understand (`crit`) is refused when it does not; this server understands none.
        if names_critical_extensions(token) {
            return Err(unauthenticated(
                "the token requires header extensions (crit) this server does not support",
            ));
        }
        let key = match header.alg {
            Algorithm::HS256 => match &self.secret {
                Some((_, key)) => key.clone(),
                None => return Err(unauthenticated("the token's algorithm is not accepted")),
            },
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::ES256
            | Algorithm::ES384 => {
                let Some(jwks) = &self.jwks else {
                    return Err(unauthenticated("the token's algorithm is not accepted"));
                };
                jwks.key(header.kid.as_deref(), header.alg).await?
            }
            _ => return Err(unauthenticated("the token's algorithm is not accepted")),
        };
        let data = jsonwebtoken::decode::<ReadClaims>(token, &key, &self.validation(header.alg))
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match err.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidSignature => "the token's signature is invalid",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                    ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                    ErrorKind::InvalidAudience => "the token's audience is not accepted",
                    ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                        "iss" => "the token has no issuer (iss), and this server requires one",
                        "aud" => "the token has no audience (aud), and this server requires one",
                        _ => "the token lacks a required claim",
                    },
                    _ => "the token is malformed",
                };
                tracing::debug!(error = %err, "rejected a bearer token");
                unauthenticated(why)
            })?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let leeway = self.rules.leeway;
        let exp = data.claims.check_times(now, leeway.as_secs_f64())?;
        let sub = data
            .claims
            .sub
            .ok_or_else(|| unauthenticated("the token lacks a required claim"))?;
        let id = UserId::parse(sub)
            .map_err(|_| unauthenticated("the token's subject is not a valid user id"))?;
        // `exp` is finite and within the year 9999: a valid Duration.
        let valid_until = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(exp) + leeway;
        Ok(Viewer::user(id, valid_until))
    }

    /// Mints an HS256 token for `user`, valid for `ttl` (development only).
    pub fn mint(&self, user: &UserId, ttl: Duration) -> anyhow::Result<String> {
        let (key, _) = self
            .secret
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("minting a token needs JWT_SECRET"))?;
        let iat = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs();
        let claims = Claims {
            sub: user.to_string(),
            iat,
            exp: iat + ttl.as_secs(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            key,
        )?)
    }
}

/// Whether a token's header carries `crit` (jsonwebtoken's `Header` drops it).
fn names_critical_extensions(token: &str) -> bool {
    let Some(encoded) = token.split('.').next() else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|header| header.get("crit").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &str) -> Authenticator {
        Authenticator::hs256(&secret.parse().expect("long enough"))
    }

    #[tokio::test]
    async fn minted_tokens_verify() {
        let a = auth("0123456789abcdef-secret");
        let user = UserId::parse("user-1").expect("valid");
        let token = a.mint(&user, Duration::from_secs(60)).expect("mints");
        let viewer = a.verify(&token).await.expect("verifies");
        assert_eq!(viewer.id(), Some(&user));
        assert!(!viewer.expired());
    }

    #[tokio::test]
    async fn forged_and_malformed_tokens_fail() {
        let user = UserId::parse("user-1").expect("valid");
        let token = auth("another-secret-0123456")
            .mint(&user, Duration::from_secs(60))
            .expect("mints");
        let a = auth("0123456789abcdef-secret");
        assert!(matches!(
            a.verify(&token).await,
            Err(AppError::Unauthenticated(_))
        ));
        assert!(matches!(
            a.verify("garbage").await,
            Err(AppError::Unauthenticated(_))
        ));
        assert!(matches!(
            a.viewer(Some("Basic abc")).await,
            Err(AppError::Unauthenticated(_))
        ));
        assert!(matches!(a.viewer(None).await, Ok(v) if v.id().is_none()));
    }
}
