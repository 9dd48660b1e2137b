//! Bearer-token (JWT) authentication shared by every Fleuve HTTP API.
//!
//! A client sends `Authorization: Bearer <token>` where the token is a JWT signed either with
//! a shared secret (HS256) or with an RSA private key whose public half the service knows
//! (RS256, as issued by an OAuth2/OIDC server). The service checks the signature, the token's
//! lifetime and, when configured, its issuer and audience, then checks that the token carries
//! the scope the route needs.
//!
//! # Configuration (environment)
//!
//! | variable | meaning |
//! | --- | --- |
//! | `FLEUVE_JWT_HS256_SECRET` | shared secret for HS256 tokens (at least 32 bytes, e.g. `openssl rand -hex 32`) |
//! | `FLEUVE_JWT_RS256_PUBLIC_KEY_FILE` | path of an RSA public key in PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`), for RS256 tokens |
//! | `FLEUVE_JWT_JWKS_FILE` | path of a JWKS document (`{"keys":[…]}`); its RSA signing keys verify RS256 tokens, picked by the token's `kid` |
//! | `FLEUVE_JWT_ISSUER` | if set, the token's `iss` must equal it |
//! | `FLEUVE_JWT_AUDIENCE` | if set, the token's `aud` (a string or an array) must contain it; if unset, `aud` is not checked |
//! | `FLEUVE_JWT_LEEWAY_SECS` | allowed clock skew for `exp` and `nbf`, in seconds (default 30) |
//!
//! [`AuthConfig::from_env`] reads them (and the files) once at start-up; with none of the three
//! keys set it returns `Ok(None)`, and the service decides whether running without
//! authentication is allowed. Any key that is set but unusable (unreadable file, bad PEM or
//! JWKS, short secret) stops the start-up with an error naming the variable.
//!
//! Only two algorithms are accepted, each only with its own kind of key: HS256 with the
//! secret, RS256 with the PEM key or the JWKS. `alg: none` and every other algorithm are
//! refused, so an HS256 token "signed" with the RSA public key (the algorithm-confusion
//! attack) never verifies.
//!
//! # Claims
//!
//! * `sub` (required, non-empty string): who is calling; logged and shown in 403 messages.
//! * `exp` (required), `nbf` (optional): seconds since the epoch, checked with the leeway.
//! * `iss`, `aud`: checked when configured (see above).
//! * Scopes: `scope`, a space-separated string (OAuth2 style), and/or `scp`, an array of
//!   strings (or a space-separated string); both are merged.
//!
//! # Scopes
//!
//! | scope | grants |
//! | --- | --- |
//! | `events:write` | publishing events through the ingest API (`/v1/…` of the ingest service) |
//! | `user` | query API: `sub` is a user id; reads that user's progress, bookmarks and orders (as buyer), stock, and the catalog |
//! | `seller` | query API: `sub` is a seller id; reads that seller's orders, stock, and the catalog |
//! | `partner` | query API: `sub` is a partner id (catalog distribution rights); reads only the catalog contents with a right for it |
//! | `admin` | query API: reads everything |
//!
//! # HTTP answers
//!
//! Errors use the body `{"error":{"code","message"}}`; the token itself is never echoed.
//!
//! | status | code | when | `WWW-Authenticate` |
//! | --- | --- | --- | --- |
//! | 401 | `unauthorized` | no `Authorization` header | `Bearer realm="fleuve"` |
//! | 401 | `invalid_token` | not `Bearer`, malformed, bad signature, refused algorithm, unknown `kid`, expired, not yet valid, wrong issuer/audience, no `sub` | `Bearer realm="fleuve", error="invalid_token"` |
//! | 403 | `forbidden` | valid token without the route's scope | `Bearer error="insufficient_scope", scope="<scope>"` |
//!
//! # Use
//!
//! ```
//! use axum::{routing::post, Router};
//! use fleuve_service::auth::{self, AuthConfig, Authenticator};
//!
//! fn api(auth: Authenticator) -> Router {
//!     Router::new()
//!         .route("/v1/things", post(|| async { "created" }))
//!         .route_layer(auth::layer(auth, "events:write"))
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! if let Some(config) = AuthConfig::from_env()? {
//!     let _app = api(Authenticator::new(config)?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The layer puts the verified [`Claims`] in the request extensions
//! (`Extension<Claims>` in a handler). [`mint_hs256`] makes tokens for development and tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{FromFnLayer, Next};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fleuve_schemas::text::quoted;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ApiError;

/// Environment variable: HS256 shared secret.
pub const ENV_HS256_SECRET: &str = "FLEUVE_JWT_HS256_SECRET";
/// Environment variable: path of the RS256 public key (PEM).
pub const ENV_RS256_PUBLIC_KEY_FILE: &str = "FLEUVE_JWT_RS256_PUBLIC_KEY_FILE";
/// Environment variable: path of the JWKS document.
pub const ENV_JWKS_FILE: &str = "FLEUVE_JWT_JWKS_FILE";
/// Environment variable: expected `iss`.
pub const ENV_ISSUER: &str = "FLEUVE_JWT_ISSUER";
/// Environment variable: expected `aud` member.
pub const ENV_AUDIENCE: &str = "FLEUVE_JWT_AUDIENCE";
/// Environment variable: clock-skew leeway in seconds.
pub const ENV_LEEWAY_SECS: &str = "FLEUVE_JWT_LEEWAY_SECS";

/// Default clock-skew leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: a key of at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Smallest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;

/// What goes wrong when configuring authentication or minting a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {var}={}: {source}", path.display())]
    ReadFile {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{var}={}: {reason}", path.display())]
    BadKeyFile {
        var: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{var}: {reason}")]
    BadSetting { var: &'static str, reason: String },
    #[error(
        "no token key configured: set {ENV_HS256_SECRET}, {ENV_RS256_PUBLIC_KEY_FILE} or {ENV_JWKS_FILE}"
    )]
    NoKey,
    #[error("could not sign the token: {0}")]
    Mint(String),
}

/// Settings of the authenticator. `Debug` does not print the secret.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// HS256 shared secret (`FLEUVE_JWT_HS256_SECRET`).
    pub hs256_secret: Option<String>,
    /// RSA public key in PEM, for RS256 (contents of `FLEUVE_JWT_RS256_PUBLIC_KEY_FILE`).
    pub rs256_public_key_pem: Option<String>,
    /// JWKS document, RS256 keys chosen by `kid` (contents of `FLEUVE_JWT_JWKS_FILE`).
    pub jwks_json: Option<String>,
    /// If set, `iss` must equal it (`FLEUVE_JWT_ISSUER`).
    pub issuer: Option<String>,
    /// If set, `aud` must contain it (`FLEUVE_JWT_AUDIENCE`).
    pub audience: Option<String>,
    /// Clock-skew leeway for `exp` and `nbf`, in seconds (`FLEUVE_JWT_LEEWAY_SECS`, default 30).
    pub leeway_secs: u64,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "rs256_public_key_pem",
                &self
                    .rs256_public_key_pem
                    .as_ref()
                    .map(|p| format!("{} bytes", p.len())),
            )
            .field(
                "jwks_json",
                &self
                    .jwks_json
                    .as_ref()
                    .map(|j| format!("{} bytes", j.len())),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

impl AuthConfig {
    /// An HS256-only configuration with the default leeway.
    pub fn hs256(secret: impl Into<String>) -> Self {
        Self {
            hs256_secret: Some(secret.into()),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            ..Self::default()
        }
    }

    /// Reads the `FLEUVE_JWT_*` variables (and the files they name). `Ok(None)` when no key
    /// at all is configured. A file that cannot be read, or whose PEM or JWKS is bad, is an
    /// error naming the variable and the path.
    pub fn from_env() -> Result<Option<AuthConfig>, AuthError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables' values from `get` (such as the
    /// environment, else a configuration file).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AuthConfig>, AuthError> {
        let read = |var: &'static str| -> Result<Option<String>, AuthError> {
            let Some(path) = get(var).filter(|p| !p.trim().is_empty()) else {
                return Ok(None);
            };
            let path = PathBuf::from(path.trim());
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|source| AuthError::ReadFile { var, path, source })
        };
        let hs256_secret = get(ENV_HS256_SECRET);
        let rs256_public_key_pem = read(ENV_RS256_PUBLIC_KEY_FILE)?;
        let jwks_json = read(ENV_JWKS_FILE)?;
        let leeway_secs = match get(ENV_LEEWAY_SECS).filter(|v| !v.trim().is_empty()) {
            None => DEFAULT_LEEWAY_SECS,
            Some(v) => v.trim().parse().map_err(|_| AuthError::BadSetting {
                var: ENV_LEEWAY_SECS,
                reason: format!("`{v}` is not a whole number of seconds"),
            })?,
        };
        let config = AuthConfig {
            hs256_secret,
            rs256_public_key_pem,
            jwks_json,
            issuer: get(ENV_ISSUER).filter(|v| !v.is_empty()),
            audience: get(ENV_AUDIENCE).filter(|v| !v.is_empty()),
            leeway_secs,
        };
        if config.hs256_secret.is_none()
            && config.rs256_public_key_pem.is_none()
            && config.jwks_json.is_none()
        {
            return Ok(None);
        }
        // Check the keys now, so that the error names the variable and the path.
        if let Some(pem) = &config.rs256_public_key_pem {
            parse_rsa_pem(pem).map_err(|reason| AuthError::BadKeyFile {
                var: ENV_RS256_PUBLIC_KEY_FILE,
                path: path_of(&get, ENV_RS256_PUBLIC_KEY_FILE),
                reason,
            })?;
        }
        if let Some(jwks) = &config.jwks_json {
            parse_jwks(jwks).map_err(|reason| AuthError::BadKeyFile {
                var: ENV_JWKS_FILE,
                path: path_of(&get, ENV_JWKS_FILE),
                reason,
            })?;
        }
        Ok(Some(config))
    }
}

fn path_of(get: &impl Fn(&str) -> Option<String>, var: &str) -> PathBuf {
    PathBuf::from(get(var).unwrap_or_default().trim())
}

/// Verifies bearer tokens. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    hs256: Option<DecodingKey>,
    rs256_pem: Option<DecodingKey>,
    /// JWKS keys by `kid`.
    jwks: BTreeMap<String, DecodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
    /// Tokens already verified, until their `exp`: a front sends the same token with every
    /// request, and verifying it (decode, signature, claims) costs more than the read.
    verified: Mutex<HashMap<String, Claims>>,
}

/// Most verified tokens remembered; past it the memory is emptied and refills.
const MAX_VERIFIED: usize = 10_000;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field("rs256_pem", &self.rs256_pem.is_some())
            .field("jwks_kids", &self.jwks.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

impl Authenticator {
    /// Checks every configured key up front.
    pub fn new(config: AuthConfig) -> Result<Self, AuthError> {
        let hs256 = match &config.hs256_secret {
            None => None,
            Some(secret) if secret.len() < MIN_HS256_SECRET_BYTES => {
                return Err(AuthError::BadSetting {
                    var: ENV_HS256_SECRET,
                    reason: format!(
                        "the secret is {} bytes; use at least {MIN_HS256_SECRET_BYTES} (e.g. `openssl rand -hex 32`)",
                        secret.len()
                    ),
                })
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())),
        };
        let rs256_pem = match &config.rs256_public_key_pem {
            None => None,
            Some(pem) => Some(parse_rsa_pem(pem).map_err(|reason| AuthError::BadSetting {
                var: ENV_RS256_PUBLIC_KEY_FILE,
                reason,
            })?),
        };
        let jwks = match &config.jwks_json {
            None => BTreeMap::new(),
            Some(json) => parse_jwks(json).map_err(|reason| AuthError::BadSetting {
                var: ENV_JWKS_FILE,
                reason,
            })?,
        };
        if hs256.is_none() && rs256_pem.is_none() && jwks.is_empty() {
            return Err(AuthError::NoKey);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                hs256,
                rs256_pem,
                jwks,
                issuer: config.issuer,
                audience: config.audience,
                leeway_secs: config.leeway_secs,
                verified: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Verifies a token (without the `Bearer ` prefix): algorithm allow-list, signature,
    /// `exp` (required), `nbf`, `iss`/`aud` when configured, `sub` (required).
    /// Every failure is a 401 `invalid_token` whose message gives the reason.
    ///
    /// A token that verified once is remembered until its `exp` (at most
    /// [`MAX_VERIFIED`] tokens): the same token is not decoded and checked again on every
    /// request. A remembered token is still refused once expired.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut verified = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(claims) = verified.get(token) {
            if claims.expires_at > now {
                return Ok(claims.clone());
            }
            verified.remove(token);
        }
        drop(verified);
        let claims = self.verify_uncached(token)?;
        if claims.expires_at > now {
            let mut verified = self
                .inner
                .verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<Claims, ApiError> {
        let inner = &self.inner;
        let token = token.trim();
        if token.is_empty() {
            return Err(invalid_token("the bearer token is empty"));
        }
        let head = token.split('.').next().unwrap_or("");
        if token.split('.').count() != 3 {
            return Err(invalid_token(
                "the token is not a JWT: expected three base64url parts separated by dots",
            ));
        }
        let header: JoseHeader = URL_SAFE_NO_PAD
            .decode(head)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                invalid_token("the token's header is not base64url-encoded JSON with an `alg`")
            })?;
        let (algorithm, key) = match header.alg.as_str() {
            "HS256" => match &inner.hs256 {
                Some(key) => (Algorithm::HS256, key),
                None => return Err(invalid_token(format!(
                    "the token is signed with HS256, which this service does not accept; accepted: {}",
                    inner.accepted()
                ))),
            },
            "RS256" if inner.rs256_pem.is_some() || !inner.jwks.is_empty() => {
                (Algorithm::RS256, inner.rsa_key(header.kid.as_deref())?)
            }
            "none" => {
                return Err(invalid_token(
                    "unsigned tokens (`alg: none`) are refused; send a signed token",
                ))
            }
            other => {
                return Err(invalid_token(format!(
                    "the token's algorithm `{}` is not accepted; accepted: {}",
                    quoted(other),
                    inner.accepted()
                )))
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = inner.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &inner.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        match &inner.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<RawClaims>(token, key, &validation)
            .map_err(|e| self.explain(e, token))?;
        let raw = data.claims;
        let sub = match raw.sub {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            _ => {
                return Err(invalid_token(
                    "the token has no `sub` (subject) claim; it must be a non-empty string",
                ))
            }
        };
        let expires_at = raw.exp.as_ref().and_then(Value::as_i64).ok_or_else(|| {
            invalid_token("the token's `exp` claim must be a whole number of seconds since 1970")
        })?;
        let mut scopes = BTreeSet::new();
        for claim in [raw.scope, raw.scp].into_iter().flatten() {
            match claim {
                Value::String(s) => scopes.extend(s.split_whitespace().map(str::to_owned)),
                Value::Array(items) => {
                    scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                _ => {}
            }
        }
        Ok(Claims {
            sub,
            scopes,
            expires_at,
        })
    }

    /// Reads `Authorization: Bearer <token>` from request headers and verifies the token.
    /// Only the header counts: a token in the query string or a cookie is ignored.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required: send `Authorization: Bearer <token>`",
            ));
        };
        if values.next().is_some() {
            return Err(invalid_token(
                "several Authorization headers; send exactly one `Authorization: Bearer <token>`",
            ));
        }
        let value = value.to_str().map_err(|_| {
            invalid_token(
                "the Authorization header is not ASCII; send `Authorization: Bearer <token>`",
            )
        })?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid_token(format!(
                "the Authorization header uses the `{}` scheme; send `Authorization: Bearer <token>`",
                quoted(scheme)
            )));
        }
        self.verify(token)
    }

    /// [`authenticate`](Self::authenticate), then [`Claims::require`] the scope.
    pub fn authorize(&self, headers: &HeaderMap, scope: &str) -> Result<Claims, ApiError> {
        let claims = self.authenticate(headers)?;
        claims.require(scope)?;
        Ok(claims)
    }

    /// A layer that lets through only requests whose token carries `scope`.
    pub fn require(&self, scope: &'static str) -> RequireScopeLayer {
        layer(self.clone(), scope)
    }

    /// Turns a decoding failure into a message a user can act on.
    fn explain(&self, e: jsonwebtoken::errors::Error, token: &str) -> ApiError {
        // Reached only after the signature verified when the error is about a claim: the
        // library checks the signature before it validates claims.
        let claims = || jsonwebtoken::dangerous::insecure_decode::<RawClaims>(token).ok();
        let at = |claim: fn(&RawClaims) -> Option<&Value>| {
            claims()
                .and_then(|d| claim(&d.claims).and_then(Value::as_i64))
                .map(describe_instant)
                .unwrap_or_else(|| "an unreadable time".to_owned())
        };
        let message = match e.kind() {
            ErrorKind::InvalidSignature => {
                "the token's signature does not verify with the configured key; it was not issued for this service or was altered".to_owned()
            }
            ErrorKind::ExpiredSignature => format!(
                "the token expired at {}; get a new token",
                at(|c| c.exp.as_ref())
            ),
            ErrorKind::ImmatureSignature => format!(
                "the token is not valid before {}",
                at(|c| c.nbf.as_ref())
            ),
            ErrorKind::InvalidIssuer => format!(
                "the token's issuer (`iss`) is not `{}`",
                self.inner.issuer.as_deref().unwrap_or("")
            ),
            ErrorKind::InvalidAudience => format!(
                "the token's audience (`aud`) does not include `{}`",
                self.inner.audience.as_deref().unwrap_or("")
            ),
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "sub" => "the token has no `sub` (subject) claim; it must be a non-empty string".to_owned(),
                "exp" => "the token has no `exp` (expiry) claim; tokens must expire".to_owned(),
                other => format!("the token has no `{other}` claim"),
            },
            ErrorKind::InvalidClaimFormat(claim) => {
                format!("the token's `{claim}` claim must be a whole number of seconds since 1970")
            }
            ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".to_owned(),
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => {
                "the token is malformed: its parts must be base64url-encoded JSON objects".to_owned()
            }
            other => {
                tracing::error!(error = ?other, "token verification failed on the service side");
                "the token could not be verified".to_owned()
            }
        };
        invalid_token(message)
    }
}

impl Inner {
    fn accepted(&self) -> &'static str {
        match (
            self.hs256.is_some(),
            self.rs256_pem.is_some() || !self.jwks.is_empty(),
        ) {
            (true, true) => "HS256, RS256",
            (true, false) => "HS256",
            _ => "RS256",
        }
    }

    fn rsa_key(&self, kid: Option<&str>) -> Result<&DecodingKey, ApiError> {
        if let Some(key) = kid.and_then(|kid| self.jwks.get(kid)) {
            return Ok(key);
        }
        if let Some(key) = &self.rs256_pem {
            return Ok(key);
        }
        match kid {
            Some(kid) => Err(invalid_token(format!(
                "no key with id (`kid`) `{}` is configured; known: {}",
                quoted(kid),
                self.jwks.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            None => match self.jwks.values().next() {
                Some(only) if self.jwks.len() == 1 => Ok(only),
                _ => Err(invalid_token(
                "the token names no key (`kid` header); it is needed to pick the key in the JWKS",
                )),
            },
        }
    }
}

/// The verified identity and permissions of a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: who is calling.
    pub sub: String,
    /// From `scope` (space-separated) and `scp` (array).
    pub scopes: BTreeSet<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// 403 `forbidden` naming the missing scope and the subject when the scope is absent.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.has_scope(scope) {
            return Ok(());
        }
        let has = if self.scopes.is_empty() {
            "none".to_owned()
        } else {
            self.scopes.iter().cloned().collect::<Vec<_>>().join(" ")
        };
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the token of `{}` lacks the scope `{scope}` (its scopes: {has}); ask for a token with `{scope}`",
                quoted(&self.sub)
            ),
        ))
    }
}

/// Mints an HS256 token (development tooling and tests): `sub`, the scopes as `scope`, `iat`,
/// and `exp` = now + `ttl`.
pub fn mint_hs256(
    secret: &str,
    sub: &str,
    scopes: &[&str],
    ttl: Duration,
) -> Result<String, AuthError> {
    #[derive(Serialize)]
    struct Minted<'a> {
        sub: &'a str,
        scope: String,
        iat: i64,
        exp: i64,
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ttl = i64::try_from(ttl.as_secs()).map_err(|_| AuthError::Mint("ttl too long".into()))?;
    let claims = Minted {
        sub,
        scope: scopes.join(" "),
        iat: now,
        exp: now.saturating_add(ttl),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Mint(e.to_string()))
}

/// The layer made by [`layer`]: [`require_scope`] as axum middleware.
pub type RequireScopeLayer = FromFnLayer<Guard, RequireScope, (State<RequireScope>, Request)>;

/// [`require_scope`] as a nameable function type.
type Guard = fn(State<RequireScope>, Request, Next) -> BoxFuture;
type BoxFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A layer that requires a valid bearer token carrying `scope`, for
/// `Router::route_layer` / `Router::layer`. Puts [`Claims`] in the request extensions.
pub fn layer(auth: Authenticator, scope: &'static str) -> RequireScopeLayer {
    axum::middleware::from_fn_with_state(RequireScope { auth, scope }, require_scope as Guard)
}

/// [`layer`] when `auth` is `Some`; with `None` every request goes through unauthenticated,
/// which is only for tests and an explicit development opt-out.
pub fn optional_layer(
    auth: Option<Authenticator>,
    scope: &'static str,
) -> tower::util::Either<RequireScopeLayer, tower::layer::util::Identity> {
    tower::util::option_layer(auth.map(|auth| layer(auth, scope)))
}

/// What [`require_scope`] checks: a token verified by `auth`, carrying `scope`.
#[derive(Clone, Debug)]
pub struct RequireScope {
    pub auth: Authenticator,
    pub scope: &'static str,
}

/// Middleware (`axum::middleware::from_fn_with_state`): lets the request through with its
/// [`Claims`] in the extensions when its token carries the scope, else answers with the
/// [`challenge`].
pub fn require_scope(
    State(guard): State<RequireScope>,
    mut request: Request,
    next: Next,
) -> BoxFuture {
    match guard.auth.authorize(request.headers(), guard.scope) {
        Ok(claims) => {
            tracing::debug!(sub = %claims.sub, scope = guard.scope, "authorized");
            request.extensions_mut().insert(claims);
            Box::pin(next.run(request))
        }
        Err(error) => {
            let response = challenge(error, guard.scope);
            Box::pin(std::future::ready(response))
        }
    }
}

/// The error response with its `WWW-Authenticate` header (RFC 6750 §3).
pub fn challenge(error: ApiError, scope: &str) -> Response {
    let www = match error.code {
        "unauthorized" => r#"Bearer realm="fleuve""#.to_owned(),
        "forbidden" => format!(r#"Bearer error="insufficient_scope", scope="{scope}""#),
        _ => r#"Bearer realm="fleuve", error="invalid_token""#.to_owned(),
    };
    tracing::info!(code = error.code, reason = %error.message, "request refused");
    let mut response = error.into_response();
    if let Ok(value) = HeaderValue::from_str(&www) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn invalid_token(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
}

fn describe_instant(secs: i64) -> String {
    let when = time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} (seconds since 1970)"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let delta = now - secs;
    if delta >= 0 {
        format!("{when} ({delta} s ago)")
    } else {
        format!("{when} (in {} s)", -delta)
    }
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Claims as sent, checked by hand for clear messages.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
    #[serde(default)]
    nbf: Option<Value>,
    #[serde(default)]
    scope: Option<Value>,
    #[serde(default)]
    scp: Option<Value>,
}

fn rsa_decoding_key(key: &RsaPublicKey) -> Result<DecodingKey, String> {
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key is {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(DecodingKey::from_rsa_raw_components(
        &key.n().to_bytes_be(),
        &key.e().to_bytes_be(),
    ))
}

fn parse_rsa_pem(pem: &str) -> Result<DecodingKey, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let pem = pem.trim();
    let key = if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
        RsaPublicKey::from_public_key_pem(pem).map_err(|e| e.to_string())
    } else if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())
    } else if pem.contains("PRIVATE KEY-----") {
        return Err("this is a private key; give the public key (`openssl rsa -in key.pem -pubout`)".into());
    } else {
        return Err(
            "expected an RSA public key in PEM (`-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----`)"
                .into(),
        );
    }
    .map_err(|e| format!("not a valid RSA public key: {e}"))?;
    rsa_decoding_key(&key)
}

/// RSA signing keys of a JWKS, by `kid`. Keys of other types or uses are skipped.
fn parse_jwks(json: &str) -> Result<BTreeMap<String, DecodingKey>, String> {
    let set: JwkSet = serde_json::from_str(json)
        .map_err(|e| format!("not a JWKS document (`{{\"keys\":[…]}}`): {e}"))?;
    let mut keys = BTreeMap::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let kid = jwk.common.key_id.as_deref().filter(|k| !k.is_empty());
        let rsa = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => Some(rsa),
            // An RSA key without its `n` or `e` does not parse as one.
            AlgorithmParameters::Other(other)
                if other.fields.get("kty").and_then(Value::as_str) == Some("RSA") =>
            {
                let kid = kid.ok_or_else(|| no_kid(i))?;
                let missing = ["n", "e"]
                    .into_iter()
                    .find(|c| !other.fields.get(*c).is_some_and(Value::is_string))
                    .unwrap_or("n");
                return Err(format!("key `{kid}` has no `{missing}`"));
            }
            _ => None,
        };
        let signs = jwk
            .common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == PublicKeyUse::Signature);
        let rs256 = jwk
            .common
            .key_algorithm
            .is_none_or(|a| a == KeyAlgorithm::RS256);
        let Some(rsa) = rsa.filter(|_| signs && rs256) else {
            tracing::warn!(key = i, kid = ?kid, "JWKS key skipped: only RSA keys for RS256 signatures are used");
            continue;
        };
        let kid = kid.ok_or_else(|| no_kid(i))?;
        let modulus = URL_SAFE_NO_PAD
            .decode(rsa.n.trim_end_matches('='))
            .map_err(|e| format!("key `{kid}`: `n` is not base64url: {e}"))?;
        let bits = modulus_bits(&modulus);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "key `{kid}`: the RSA key is {bits} bits; at least {MIN_RSA_BITS} are required"
            ));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
            format!("key `{kid}` is not a valid RSA public key (base64url `n` and `e`): {e}")
        })?;
        if keys.insert(kid.to_owned(), key).is_some() {
            return Err(format!("two keys have the `kid` `{kid}`"));
        }
    }
    if keys.is_empty() {
        return Err("no RSA signing key (`\"kty\":\"RSA\"`, for RS256) in the set".into());
    }
    Ok(keys)
}

fn no_kid(i: usize) -> String {
    format!("key #{i} has no `kid`; every key must have one")
}

/// Bits of a big-endian modulus, leading zero bytes and bits left out.
fn modulus_bits(be: &[u8]) -> usize {
    let mut bytes = be.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        None => 0,
        Some(first) => 8 - first.leading_zeros() as usize + 8 * bytes.count(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use axum::body::Body;
    use axum::routing::get;
    use axum::{Extension, Router};
    use jsonwebtoken::{encode, Header};
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::RsaPrivateKey;
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
    const SCOPE: &str = "events:write";

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, key).unwrap()
    }

    fn hs(claims: Value) -> String {
        sign(
            Algorithm::HS256,
            None,
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
    }

    fn hs256_auth() -> Authenticator {
        Authenticator::new(AuthConfig::hs256(SECRET)).unwrap()
    }

    /// Two RSA key pairs, made once per test run.
    fn rsa_keys() -> &'static [RsaPrivateKey; 2] {
        static KEYS: OnceLock<[RsaPrivateKey; 2]> = OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = rsa::rand_core::OsRng;
            [
                RsaPrivateKey::new(&mut rng, 2048).unwrap(),
                RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            ]
        })
    }

    fn rsa_encoding(i: usize) -> EncodingKey {
        EncodingKey::from_rsa_der(rsa_keys()[i].to_pkcs1_der().unwrap().as_bytes())
    }

    fn public_pem(i: usize) -> String {
        rsa_keys()[i]
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn jwk(i: usize, kid: &str) -> Value {
        let public = rsa_keys()[i].to_public_key();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }

    fn jwks() -> String {
        json!({"keys": [
            jwk(0, "key-a"),
            {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": "AA", "y": "AA"},
            jwk(1, "key-b"),
        ]})
        .to_string()
    }

    fn valid_claims() -> Value {
        json!({"sub": "svc-a", "scope": "events:write", "exp": now() + 300})
    }

    fn assert_invalid(result: Result<Claims, ApiError>, needle: &str) {
        let e = result.expect_err("the token should be refused");
        assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{e}");
        assert_eq!(e.code, "invalid_token", "{e}");
        assert!(
            e.message.contains(needle),
            "`{}` does not say `{needle}`",
            e.message
        );
    }

    #[test]
    fn a_remembered_token_is_still_refused_once_expired() {
        let auth = Authenticator::new(AuthConfig {
            leeway_secs: 0,
            ..AuthConfig::hs256(SECRET)
        })
        .unwrap();
        let exp = now() + 2;
        let token = hs(json!({"sub": "u-1", "exp": exp, "scope": "user"}));
        let first = auth.verify(&token).unwrap();
        assert_eq!(
            auth.verify(&token).unwrap(),
            first,
            "remembered as verified"
        );
        // Another token (the same claims, signed with another secret) is checked, not
        // taken from memory.
        let forged = sign(
            Algorithm::HS256,
            None,
            &json!({"sub": "u-1", "exp": exp, "scope": "user"}),
            &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        );
        assert_invalid(auth.verify(&forged), "signature");
        while now() <= exp {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_invalid(auth.verify(&token), "expired");
    }

    #[test]
    fn minted_tokens_verify_and_carry_their_scopes() {
        let token = mint_hs256(
            SECRET,
            "svc-a",
            &[SCOPE, "catalog:read"],
            Duration::from_secs(60),
        )
        .unwrap();
        let claims = hs256_auth().verify(&token).unwrap();
        assert_eq!(claims.sub, "svc-a");
        assert!(claims.has_scope(SCOPE) && claims.has_scope("catalog:read"));
        assert!(!claims.has_scope("events"));
        assert!((claims.expires_at - now() - 60).abs() <= 2);
        claims.require(SCOPE).unwrap();
    }

    #[test]
    fn scp_array_and_scope_string_are_merged() {
        let token = hs(json!({"sub": "u", "exp": now() + 60, "scope": "a b", "scp": ["c", "d"]}));
        let claims = hs256_auth().verify(&token).unwrap();
        let scopes: Vec<_> = claims.scopes.iter().map(String::as_str).collect();
        assert_eq!(scopes, ["a", "b", "c", "d"]);
    }

    #[test]
    fn missing_scope_is_403_naming_scope_and_subject() {
        let token =
            mint_hs256(SECRET, "svc-b", &["catalog:read"], Duration::from_secs(60)).unwrap();
        let claims = hs256_auth().verify(&token).unwrap();
        let e = claims.require(SCOPE).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "forbidden"));
        assert!(
            e.message.contains("`events:write`") && e.message.contains("`svc-b`"),
            "{e}"
        );
    }

    #[test]
    fn refused_tokens_say_why() {
        let auth = hs256_auth();
        assert_invalid(auth.verify(""), "empty");
        assert_invalid(auth.verify("garbage"), "not a JWT");
        assert_invalid(auth.verify("a.b.c"), "header");
        let t = hs(json!({"sub": "u", "exp": now() - 3600}));
        assert_invalid(auth.verify(&t), "expired at");
        assert_invalid(auth.verify(&t), "s ago");
        // Within the leeway an expired token still passes.
        auth.verify(&hs(json!({"sub": "u", "exp": now() - 5})))
            .unwrap();
        assert_invalid(
            auth.verify(&hs(
                json!({"sub": "u", "exp": now() + 900, "nbf": now() + 600}),
            )),
            "not valid before",
        );
        assert_invalid(auth.verify(&hs(json!({"sub": "u"}))), "no `exp`");
        assert_invalid(
            auth.verify(&hs(json!({"sub": "u", "exp": "soon"}))),
            "`exp`",
        );
        assert_invalid(auth.verify(&hs(json!({"exp": now() + 60}))), "no `sub`");
        assert_invalid(
            auth.verify(&hs(json!({"sub": "", "exp": now() + 60}))),
            "`sub`",
        );
        assert_invalid(
            auth.verify(&hs(json!({"sub": 7, "exp": now() + 60}))),
            "`sub`",
        );
        // Forged: signed with another secret.
        let forged = mint_hs256(
            "another-secret-another-secret-another",
            "svc-a",
            &[SCOPE],
            Duration::from_secs(60),
        )
        .unwrap();
        assert_invalid(auth.verify(&forged), "signature");
        // Tampered payload.
        let good = hs(valid_claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(
            json!({"sub": "admin", "scope": "events:write", "exp": now() + 300}).to_string(),
        );
        parts[1] = &payload;
        assert_invalid(auth.verify(&parts.join(".")), "signature");
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let auth = hs256_auth();
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let body = b64(valid_claims());
        let none = format!("{}.{body}.", b64(json!({"alg": "none", "typ": "JWT"})));
        assert_invalid(auth.verify(&none), "alg: none");
        let hs512 = sign(
            Algorithm::HS512,
            None,
            &valid_claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        );
        assert_invalid(auth.verify(&hs512), "`HS512` is not accepted");
        let rs256 = sign(Algorithm::RS256, None, &valid_claims(), &rsa_encoding(0));
        assert_invalid(
            auth.verify(&rs256),
            "`RS256` is not accepted; accepted: HS256",
        );
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let auth = Authenticator::new(AuthConfig {
            issuer: Some("https://id.fleuve.example".into()),
            audience: Some("fleuve-ingest".into()),
            ..AuthConfig::hs256(SECRET)
        })
        .unwrap();
        let exp = now() + 60;
        let ok = hs(
            json!({"sub": "u", "exp": exp, "iss": "https://id.fleuve.example", "aud": ["x", "fleuve-ingest"]}),
        );
        auth.verify(&ok).unwrap();
        let wrong_iss =
            hs(json!({"sub": "u", "exp": exp, "iss": "https://evil", "aud": "fleuve-ingest"}));
        assert_invalid(auth.verify(&wrong_iss), "issuer");
        let no_iss = hs(json!({"sub": "u", "exp": exp, "aud": "fleuve-ingest"}));
        assert_invalid(auth.verify(&no_iss), "`iss`");
        let wrong_aud =
            hs(json!({"sub": "u", "exp": exp, "iss": "https://id.fleuve.example", "aud": "other"}));
        assert_invalid(auth.verify(&wrong_aud), "audience");
        let no_aud = hs(json!({"sub": "u", "exp": exp, "iss": "https://id.fleuve.example"}));
        assert_invalid(auth.verify(&no_aud), "`aud`");
        // Unconfigured, iss and aud are not checked.
        hs256_auth().verify(&wrong_aud).unwrap();
    }

    #[test]
    fn rs256_with_a_pem_public_key() {
        let auth = Authenticator::new(AuthConfig {
            rs256_public_key_pem: Some(public_pem(0)),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            ..AuthConfig::default()
        })
        .unwrap();
        let token = sign(Algorithm::RS256, None, &valid_claims(), &rsa_encoding(0));
        assert_eq!(auth.verify(&token).unwrap().sub, "svc-a");
        let other_key = sign(Algorithm::RS256, None, &valid_claims(), &rsa_encoding(1));
        assert_invalid(auth.verify(&other_key), "signature");
        let rs512 = sign(Algorithm::RS512, None, &valid_claims(), &rsa_encoding(0));
        assert_invalid(
            auth.verify(&rs512),
            "`RS512` is not accepted; accepted: RS256",
        );
        let expired = sign(
            Algorithm::RS256,
            None,
            &json!({"sub": "u", "exp": now() - 3600}),
            &rsa_encoding(0),
        );
        assert_invalid(auth.verify(&expired), "expired at");
    }

    #[test]
    fn alg_confusion_hs256_signed_with_the_rsa_public_key_is_refused() {
        let pem = public_pem(0);
        let forged = sign(
            Algorithm::HS256,
            None,
            &valid_claims(),
            &EncodingKey::from_secret(pem.as_bytes()),
        );
        let rs_only = Authenticator::new(AuthConfig {
            rs256_public_key_pem: Some(pem.clone()),
            jwks_json: Some(jwks()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert_invalid(
            rs_only.verify(&forged),
            "HS256, which this service does not accept",
        );
        // With both kinds configured, HS256 is checked against the secret only.
        let both = Authenticator::new(AuthConfig {
            rs256_public_key_pem: Some(pem),
            ..AuthConfig::hs256(SECRET)
        })
        .unwrap();
        assert_invalid(both.verify(&forged), "signature");
    }

    #[test]
    fn jwks_keys_are_picked_by_kid() {
        let auth = Authenticator::new(AuthConfig {
            jwks_json: Some(jwks()),
            ..AuthConfig::default()
        })
        .unwrap();
        let claims = valid_claims();
        let a = sign(Algorithm::RS256, Some("key-a"), &claims, &rsa_encoding(0));
        let b = sign(Algorithm::RS256, Some("key-b"), &claims, &rsa_encoding(1));
        auth.verify(&a).unwrap();
        auth.verify(&b).unwrap();
        // Key b's signature under key a's kid.
        let swapped = sign(Algorithm::RS256, Some("key-a"), &claims, &rsa_encoding(1));
        assert_invalid(auth.verify(&swapped), "signature");
        let unknown = sign(Algorithm::RS256, Some("key-z"), &claims, &rsa_encoding(0));
        assert_invalid(auth.verify(&unknown), "`key-z`");
        let no_kid = sign(Algorithm::RS256, None, &claims, &rsa_encoding(0));
        assert_invalid(auth.verify(&no_kid), "`kid`");
        // The EC key was skipped, not used.
        let ec = sign(Algorithm::RS256, Some("ec-1"), &claims, &rsa_encoding(0));
        assert_invalid(auth.verify(&ec), "`ec-1`");
        // A kid only in the PEM's place falls back to the PEM key.
        let with_pem = Authenticator::new(AuthConfig {
            jwks_json: Some(jwks()),
            rs256_public_key_pem: Some(public_pem(1)),
            ..AuthConfig::default()
        })
        .unwrap();
        with_pem
            .verify(&sign(Algorithm::RS256, None, &claims, &rsa_encoding(1)))
            .unwrap();
    }

    #[test]
    fn bad_keys_are_refused_up_front() {
        let short = Authenticator::new(AuthConfig::hs256("short")).unwrap_err();
        assert!(short.to_string().contains(ENV_HS256_SECRET), "{short}");
        assert!(matches!(
            Authenticator::new(AuthConfig::default()),
            Err(AuthError::NoKey)
        ));
        let private = rsa_keys()[0]
            .to_pkcs1_pem(LineEnding::LF)
            .unwrap()
            .to_string();
        let e = parse_rsa_pem(&private).err().unwrap();
        assert!(e.contains("private key"), "{e}");
        let e = parse_rsa_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .err()
            .unwrap();
        assert!(e.contains("not a valid RSA public key"), "{e}");
        let small = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let small_pem = small
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let e = parse_rsa_pem(&small_pem).err().unwrap();
        assert!(e.contains("1024 bits"), "{e}");
        for (jwks, needle) in [
            ("{", "not a JWKS"),
            (r#"{"keys":[]}"#, "no RSA signing key"),
            (
                r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
                "no `kid`",
            ),
            (r#"{"keys":[{"kty":"RSA","kid":"k","e":"AQAB"}]}"#, "no `n`"),
            (
                r#"{"keys":[{"kty":"RSA","kid":"k","n":"@@","e":"AQAB"}]}"#,
                "base64url",
            ),
        ] {
            let e = parse_jwks(jwks).err().unwrap();
            assert!(e.contains(needle), "{jwks}: {e}");
        }
    }

    #[test]
    fn from_env_reads_files_and_names_the_variable_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("key.pem");
        std::fs::write(&pem_path, public_pem(0)).unwrap();
        let jwks_path = dir.path().join("jwks.json");
        std::fs::write(&jwks_path, jwks()).unwrap();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            }
        };
        assert!(AuthConfig::from_lookup(env(vec![])).unwrap().is_none());
        let config = AuthConfig::from_lookup(env(vec![
            (ENV_HS256_SECRET, SECRET.into()),
            (ENV_RS256_PUBLIC_KEY_FILE, pem_path.display().to_string()),
            (ENV_JWKS_FILE, jwks_path.display().to_string()),
            (ENV_ISSUER, "iss".into()),
            (ENV_AUDIENCE, "aud".into()),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.leeway_secs, DEFAULT_LEEWAY_SECS);
        assert_eq!(
            config.rs256_public_key_pem.as_deref(),
            Some(&*public_pem(0))
        );
        assert_eq!(
            (config.issuer.as_deref(), config.audience.as_deref()),
            (Some("iss"), Some("aud"))
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains(SECRET) && shown.contains("[redacted]"),
            "{shown}"
        );
        let auth = Authenticator::new(config).unwrap();
        assert!(!format!("{auth:?}").contains(SECRET));

        let missing = dir.path().join("nope.pem");
        let e = AuthConfig::from_lookup(env(vec![(
            ENV_RS256_PUBLIC_KEY_FILE,
            missing.display().to_string(),
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(ENV_RS256_PUBLIC_KEY_FILE) && e.contains("nope.pem"),
            "{e}"
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "not json").unwrap();
        let e = AuthConfig::from_lookup(env(vec![(ENV_JWKS_FILE, bad.display().to_string())]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_JWKS_FILE) && e.contains("bad.json"), "{e}");
        let e = AuthConfig::from_lookup(env(vec![(
            ENV_RS256_PUBLIC_KEY_FILE,
            jwks_path.display().to_string(),
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(ENV_RS256_PUBLIC_KEY_FILE) && e.contains("PEM"),
            "{e}"
        );
        let e = AuthConfig::from_lookup(env(vec![
            (ENV_HS256_SECRET, SECRET.into()),
            (ENV_LEEWAY_SECS, "soon".into()),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains(ENV_LEEWAY_SECS), "{e}");
    }

    async fn call(
        app: &Router,
        authorization: Option<String>,
    ) -> (StatusCode, Option<String>, Value) {
        let mut req = axum::http::Request::get("/v1/whoami");
        if let Some(value) = authorization {
            req = req.header(header::AUTHORIZATION, value);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let www = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, www, body)
    }

    #[tokio::test]
    async fn the_layer_answers_each_case_with_its_status_code_and_challenge() {
        let app: Router = Router::new()
            .route(
                "/v1/whoami",
                get(|Extension(claims): Extension<Claims>| async move { claims.sub }),
            )
            .route_layer(layer(hs256_auth(), SCOPE))
            .route("/healthz", get(|| async { "ok" }));

        let (status, www, body) = call(&app, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer <token>"));
        assert_eq!(www.as_deref(), Some(r#"Bearer realm="fleuve""#));

        let expired = hs(json!({"sub": "u", "scope": SCOPE, "exp": now() - 3600}));
        let forged = mint_hs256(
            "another-secret-another-secret-another",
            "u",
            &[SCOPE],
            Duration::from_secs(60),
        )
        .unwrap();
        for (authorization, needle) in [
            (
                format!("Basic {}", URL_SAFE_NO_PAD.encode("u:p")),
                "`Basic` scheme",
            ),
            ("Bearer".to_owned(), "empty"),
            ("Bearer not-a-jwt".to_owned(), "not a JWT"),
            (format!("Bearer {expired}"), "expired at"),
            (format!("Bearer {forged}"), "signature"),
        ] {
            let (status, www, body) = call(&app, Some(authorization.clone())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization}: {body}");
            assert_eq!(body["error"]["code"], "invalid_token", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{authorization}: {message}");
            let token = authorization.split_once(' ').map_or("", |(_, t)| t);
            assert!(
                token.len() < 8 || !message.contains(token),
                "the token was echoed"
            );
            assert_eq!(
                www.as_deref(),
                Some(r#"Bearer realm="fleuve", error="invalid_token""#)
            );
        }

        let reader =
            mint_hs256(SECRET, "svc-r", &["catalog:read"], Duration::from_secs(60)).unwrap();
        let (status, www, body) = call(&app, Some(format!("Bearer {reader}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "forbidden");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("events:write") && message.contains("svc-r"),
            "{message}"
        );
        assert_eq!(
            www.as_deref(),
            Some(r#"Bearer error="insufficient_scope", scope="events:write""#)
        );

        let writer = mint_hs256(SECRET, "svc-w", &[SCOPE], Duration::from_secs(60)).unwrap();
        let (status, www, body) = call(&app, Some(format!("bearer {writer}"))).await;
        assert_eq!((status, www), (StatusCode::OK, None));
        assert_eq!(
            body,
            Value::String("svc-w".into()),
            "claims reach the handler"
        );

        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::get("/healthz")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "routes after the layer stay open"
        );
    }

    #[tokio::test]
    async fn optional_layer_without_an_authenticator_lets_requests_through() {
        let app: Router = Router::new()
            .route("/v1/whoami", get(|| async { "anyone" }))
            .route_layer(optional_layer(None, SCOPE));
        let (status, _, _) = call(&app, None).await;
        assert_eq!(status, StatusCode::OK);
    }
}
