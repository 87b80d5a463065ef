//! Bearer tokens: who is asking.
//!
//! Two kinds of keys, chosen by the token's own `alg` and never crossed: HS256 with the
//! configured secret, and RS256/RS384/RS512/ES256/ES384 with the public keys of a JWKS
//! URL (Cognito and any OIDC provider publish one). An `alg` outside that set, `none`
//! included, is refused; a key from the JWKS is used only for its own key type and
//! algorithm, so an HS256 token can never be checked against a public key.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{AlgorithmParameters, JwkSet},
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::{config::Secret, domain::UserId, error::AppError};

/// The acting user of a request: `None` for an anonymous reader.
#[derive(Clone, Debug, Default)]
pub struct Viewer(pub Option<UserId>);

impl Viewer {
    pub fn id(&self) -> Option<&UserId> {
        self.0.as_ref()
    }

    /// The acting user, or `UNAUTHENTICATED` for an anonymous request.
    pub fn require(&self) -> Result<&UserId, AppError> {
        self.0.as_ref().ok_or_else(|| {
            AppError::Unauthenticated(
                "this operation needs a bearer token (Authorization: Bearer <JWT>)".to_owned(),
            )
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

/// What a token must satisfy besides its signature, and how the JWKS is refreshed.
#[derive(Clone, Debug)]
pub struct TokenRules {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's), when set.
    pub audience: Option<String>,
    /// The JWKS is fetched again for an unknown key id at most this often, so that tokens
    /// with made-up key ids cannot make the server hammer the provider.
    pub jwks_refresh_cooldown: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            jwks_refresh_cooldown: Duration::from_secs(30),
        }
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

impl Authenticator {
    /// HS256 with `secret` only.
    pub fn hs256(secret: &Secret) -> Self {
        Self::new(Some(secret), None, TokenRules::default())
    }

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
            return Ok(Viewer(None));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <JWT>`"))?;
        self.verify(token).await.map(|id| Viewer(Some(id)))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        if let Some(issuer) = &self.rules.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.rules.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
    }

    pub async fn verify(&self, token: &str) -> Result<UserId, AppError> {
        // Tokens are small; a huge one is garbage, and not worth decoding.
        if token.len() > 16 * 1024 {
            return Err(unauthenticated("the token is malformed"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("the token is malformed"))?;
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
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| unauthenticated("the token names no key (kid)"))?;
                jwks.key(kid, header.alg).await?
            }
            _ => return Err(unauthenticated("the token's algorithm is not accepted")),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match err.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidSignature => "the token's signature is invalid",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                    ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                    ErrorKind::InvalidAudience => "the token's audience is not accepted",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is malformed",
                };
                tracing::debug!(error = %err, "rejected a bearer token");
                unauthenticated(why)
            })?;
        UserId::parse(data.claims.sub)
            .map_err(|_| unauthenticated("the token's subject is not a valid user id"))
    }

    /// Mints an HS256 token for `user`, valid for `ttl` (development only).
    pub fn mint(&self, user: &UserId, ttl: Duration) -> anyhow::Result<String> {
        let (key, _) = self
            .secret
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("minting a token needs JWT_SECRET"))?;
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
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

/// The keys of a JWKS URL, cached. Fetched on first use, again when a token names a key
/// we do not have (the provider rotated its keys) but at most once per cooldown, and at
/// least once per [`MAX_AGE`].
struct Jwks {
    url: String,
    http: reqwest::Client,
    cooldown: Duration,
    cache: RwLock<Option<(JwkSet, Instant)>>,
}

const MAX_AGE: Duration = Duration::from_secs(3600);

impl Jwks {
    fn new(url: String, cooldown: Duration) -> Self {
        // The AWS SDK's TLS provider serves us too; installing it twice is harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            url,
            http,
            cooldown,
            cache: RwLock::new(None),
        }
    }

    async fn key(&self, kid: &str, algorithm: Algorithm) -> Result<DecodingKey, AppError> {
        let cached = self.cache.read().await.clone();
        let fresh = cached
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < MAX_AGE);
        let found = cached.as_ref().and_then(|(set, _)| set.find(kid).cloned());
        let jwk = match (found, fresh) {
            (Some(jwk), true) => jwk,
            _ => {
                let may_refresh = cached
                    .as_ref()
                    .is_none_or(|(_, at)| at.elapsed() >= self.cooldown);
                let set = if may_refresh {
                    self.refresh().await?
                } else {
                    cached
                        .map(|(set, _)| set)
                        .unwrap_or(JwkSet { keys: Vec::new() })
                };
                set.find(kid)
                    .cloned()
                    .ok_or_else(|| unauthenticated("the token's key is unknown"))?
            }
        };
        // The key decides the algorithm family, and a declared `alg` must match exactly.
        let family_fits = matches!(
            (&jwk.algorithm, algorithm),
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
            ) | (
                AlgorithmParameters::EllipticCurve(_),
                Algorithm::ES256 | Algorithm::ES384
            )
        );
        let declared_fits = jwk
            .common
            .key_algorithm
            .is_none_or(|declared| format!("{declared:?}") == format!("{algorithm:?}"));
        if !family_fits || !declared_fits {
            return Err(unauthenticated(
                "the token's algorithm does not fit its key",
            ));
        }
        DecodingKey::from_jwk(&jwk).map_err(|_| unauthenticated("the token's key is unusable"))
    }

    async fn refresh(&self) -> Result<JwkSet, AppError> {
        let mut cache = self.cache.write().await;
        // Another request may have refreshed while we waited for the lock.
        if let Some((set, at)) = cache.as_ref()
            && at.elapsed() < self.cooldown
        {
            return Ok(set.clone());
        }
        let fetched: Result<JwkSet, reqwest::Error> = async {
            self.http
                .get(&self.url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        }
        .await;
        match fetched {
            Ok(set) => {
                tracing::info!(keys = set.keys.len(), "fetched the JWKS");
                *cache = Some((set.clone(), Instant::now()));
                Ok(set)
            }
            Err(err) => {
                tracing::error!(error = %err, "fetching the JWKS failed");
                // Keep serving with the keys we had; without any, tokens cannot be checked.
                match cache.as_ref() {
                    Some((set, _)) => Ok(set.clone()),
                    None => Err(AppError::unavailable(anyhow::anyhow!(
                        "fetching the JWKS failed: {err}"
                    ))),
                }
            }
        }
    }
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
        assert_eq!(a.verify(&token).await.ok(), Some(user));
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
        assert!(matches!(a.viewer(None).await, Ok(Viewer(None))));
    }
}
