//! Bearer tokens: who is asking.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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

/// Verifies (and, for development, mints) HS256 tokens.
#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Authenticator {
    pub fn hs256(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// The viewer named by an `Authorization` header value; no header is an anonymous reader.
    pub fn viewer(&self, authorization: Option<&str>) -> Result<Viewer, AppError> {
        let Some(header) = authorization else {
            return Ok(Viewer(None));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthenticated(
                    "the Authorization header must be `Bearer <JWT>`".to_owned(),
                )
            })?;
        self.verify(token).map(|id| Viewer(Some(id)))
    }

    pub fn verify(&self, token: &str) -> Result<UserId, AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match err.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidSignature => "the token's signature is invalid",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is malformed",
                };
                tracing::debug!(error = %err, "rejected a bearer token");
                AppError::Unauthenticated(why.to_owned())
            })?;
        UserId::parse(data.claims.sub).map_err(|_| {
            AppError::Unauthenticated("the token's subject is not a valid user id".to_owned())
        })
    }

    /// Mints a token for `user`, valid for `ttl`.
    pub fn mint(&self, user: &UserId, ttl: Duration) -> anyhow::Result<String> {
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
            &self.encoding,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &str) -> Authenticator {
        Authenticator::hs256(&secret.parse().expect("long enough"))
    }

    #[test]
    fn minted_tokens_verify() {
        let a = auth("0123456789abcdef-secret");
        let user = UserId::parse("user-1").expect("valid");
        let token = a.mint(&user, Duration::from_secs(60)).expect("mints");
        assert_eq!(a.verify(&token).ok(), Some(user));
    }

    #[test]
    fn forged_and_malformed_tokens_fail() {
        let user = UserId::parse("user-1").expect("valid");
        let token = auth("another-secret-0123456")
            .mint(&user, Duration::from_secs(60))
            .expect("mints");
        let a = auth("0123456789abcdef-secret");
        assert!(matches!(
            a.verify(&token),
            Err(AppError::Unauthenticated(_))
        ));
        assert!(matches!(
            a.verify("garbage"),
            Err(AppError::Unauthenticated(_))
        ));
        assert!(matches!(
            a.viewer(Some("Basic abc")),
            Err(AppError::Unauthenticated(_))
        ));
        assert!(matches!(a.viewer(None), Ok(Viewer(None))));
    }
}
