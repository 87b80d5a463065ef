//! The public keys of a JWKS URL, fetched and cached.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, Jwk, JwkSet},
};

use crate::error::AppError;

use super::unauthenticated;

/// The keys of a JWKS URL, cached. Fetched on first use, again when a token names a key
/// we do not have (the provider rotated its keys) but at most once per cooldown, and in
/// the background once the keys are older than [`MAX_AGE`].
///
/// Tokens whose key is cached never wait for a fetch: the cache's lock is held only to
/// read it or to swap in a fetched set, never across the fetch. One fetch runs at a time,
/// in a task of its own (a client that hangs up cannot cancel it); tokens with unknown
/// keys that arrive meanwhile wait for that fetch rather than start their own.
pub(super) struct Jwks {
    url: String,
    http: reqwest::Client,
    cooldown: Duration,
    keys: RwLock<Option<(JwkSet, Instant)>>,
    fetch: std::sync::Mutex<Fetch>,
    /// Whether the last fetch failed: a key we lack may then be one we could not fetch,
    /// and the token is not known to be bad.
    failing: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Fetch {
    /// When the last fetch started, successful or not: the cooldown counts from it.
    started: Option<Instant>,
    /// The fetch running now, for everyone to wait on.
    running: Option<Shared<BoxFuture<'static, ()>>>,
}

const MAX_AGE: Duration = Duration::from_secs(3600);

impl Jwks {
    pub(super) fn new(url: String, cooldown: Duration) -> Self {
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
            keys: RwLock::new(None),
            fetch: std::sync::Mutex::new(Fetch::default()),
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The cached key `kid` names, and whether the cached set is younger than
    /// [`MAX_AGE`]. A token without `kid` (RFC 7515 makes it optional) may use the set's
    /// only key; when the set has several, it names none of them.
    fn cached(&self, kid: Option<&str>) -> (Option<Jwk>, bool) {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        match &*keys {
            Some((set, at)) => {
                let key = match (kid, set.keys.as_slice()) {
                    (Some(kid), _) => set.find(kid),
                    (None, [only]) => Some(only),
                    (None, _) => None,
                };
                (key.cloned(), at.elapsed() < MAX_AGE)
            }
            None => (None, false),
        }
    }

    pub(super) async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<DecodingKey, AppError> {
        let jwk = match self.cached(kid) {
            (Some(jwk), true) => jwk,
            (Some(jwk), false) => {
                // Known but old: serve it, and look for news without making anyone wait.
                let _ = self.fetch();
                jwk
            }
            (None, _) => {
                if let Some(fetch) = self.fetch() {
                    fetch.await;
                }
                match self.cached(kid).0 {
                    Some(jwk) => jwk,
                    None if self
                        .keys
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_none() =>
                    {
                        return Err(AppError::unavailable(anyhow::anyhow!(
                            "no JWKS could be fetched from {}",
                            self.url
                        )));
                    }
                    // Rotated keys we could not fetch: the token is not known to be bad.
                    None if self.failing.load(std::sync::atomic::Ordering::SeqCst) => {
                        return Err(AppError::unavailable(anyhow::anyhow!(
                            "a token's key is not among the cached ones, and fetching {} \
                             failed",
                            self.url
                        )));
                    }
                    None if kid.is_none() => {
                        return Err(unauthenticated(
                            "the token names no key (kid), and the key set has several",
                        ));
                    }
                    None => return Err(unauthenticated("the token's key is unknown")),
                }
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

    /// The fetch to wait for: the one running, or a new one unless the last started
    /// less than a cooldown ago (then `None`: the keys are as that fetch left them).
    fn fetch(self: &Arc<Self>) -> Option<Shared<BoxFuture<'static, ()>>> {
        let mut fetch = self.fetch.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = &fetch.running {
            return Some(running.clone());
        }
        if fetch.started.is_some_and(|at| at.elapsed() < self.cooldown) {
            return None;
        }
        fetch.started = Some(Instant::now());
        let jwks = self.clone();
        let running = async move {
            jwks.refresh().await;
            jwks.fetch
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .running = None;
        }
        .boxed()
        .shared();
        fetch.running = Some(running.clone());
        tokio::spawn(running.clone());
        Some(running)
    }

    async fn refresh(&self) {
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
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) =
                    Some((set, Instant::now()));
                self.failing
                    .store(false, std::sync::atomic::Ordering::SeqCst);
            }
            // Keep serving with the keys we had.
            Err(err) => {
                tracing::error!(error = %err, "fetching the JWKS failed");
                self.failing
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}
