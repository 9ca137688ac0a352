//! Who may subscribe and publish: signed tokens (JWT, RFC 7519, signed as a
//! JWS, RFC 7515), topic patterns, and the errors a refusal turns into
//! (RFC 6750 §3).
//!
//! Sans-I/O like the rest of the core: keys arrive as bytes the I/O shell
//! read, tokens as bytes a request carried, time as Unix seconds.
//!
//! - [`jwt`]: compact serialization, strict base64url and JSON;
//! - [`key`]: HS256 / RS256 / ES256 keys, fixed by configuration;
//! - [`verifier`]: RFC 7519 validation and the `pushlab` grants claim;
//! - [`pattern`]: `news` and `user.42.*`;
//! - [`carrier`]: the `Authorization` header, the `pushlab_token` cookie;
//! - [`Policy`]: key + `--public-topic`: may this request go on?
//!
//! Every refusal is an [`AuthError`] that knows its status (`401` / `403`),
//! its `WWW-Authenticate` challenge and a description that names the
//! problem without echoing the token, the key or the expected signature.

pub mod carrier;
pub mod jwt;
pub mod key;
pub mod pattern;
pub mod verifier;

#[cfg(test)]
mod tests;

use std::fmt;

pub use jwt::sign_hs256;
pub use key::{Algorithm, Key, KeyError};
pub use pattern::TopicPattern;
pub use verifier::{Grants, Verifier};

/// What a token is asked to allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Subscribe,
    Publish,
}

/// Why a request is not authorized. Every variant but [`Missing`] and
/// [`NotGranted`] is RFC 6750's `invalid_token`.
///
/// [`Missing`]: AuthError::Missing
/// [`NotGranted`]: AuthError::NotGranted
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No token in any carrier the request may use.
    Missing,
    /// Longer than `config::MAX_TOKEN_BYTES`.
    TooLong,
    /// Not three dot-separated parts (a JWE has five).
    NotCompact,
    /// A part that is not canonical, unpadded base64url.
    BadBase64,
    /// The header or the claims are not a JSON object with unique names.
    BadJson,
    /// A header the verifier cannot accept (no `alg`, `crit`).
    BadHeader(&'static str),
    /// `alg: none`: an unsigned token.
    Unsigned,
    /// `alg` other than the configured algorithm.
    WrongAlgorithm,
    /// The signature does not verify.
    BadSignature,
    /// No `exp` claim.
    MissingExpiry,
    /// A claim of the wrong type or shape.
    BadClaim(&'static str),
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) is still ahead.
    NotYetValid,
    /// `iat` (minus leeway) is in the future.
    IssuedInFuture,
    /// `--jwt-audience` is set and `aud` does not name it.
    WrongAudience,
    /// The token names an audience and none is configured.
    UnexpectedAudience,
    /// A valid token that does not grant this topic: `403`.
    NotGranted(Action),
}

impl AuthError {
    /// RFC 6750 §3.1: `401` for a missing or invalid token, `403` for one
    /// without the needed scope.
    pub fn status(self) -> u16 {
        match self {
            AuthError::NotGranted(_) => 403,
            _ => 401,
        }
    }

    /// The RFC 6750 §3.1 error code, if any (none when no token was sent).
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::NotGranted(_) => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    /// What went wrong, in words safe to show anyone: fixed text only
    /// (RFC 6750 §3: printable ASCII without `"` or `\`).
    pub fn description(self) -> &'static str {
        match self {
            AuthError::Missing => {
                "no token: send Authorization: Bearer or the pushlab_token cookie"
            }
            AuthError::TooLong => "the token is too long",
            AuthError::NotCompact => "the token is not three dot-separated parts",
            AuthError::BadBase64 => "a token part is not unpadded base64url",
            AuthError::BadJson => {
                "the token header or claims are not a JSON object with unique member names"
            }
            AuthError::BadHeader(what) | AuthError::BadClaim(what) => what,
            AuthError::Unsigned => "unsigned tokens (alg none) are not accepted",
            AuthError::WrongAlgorithm => {
                "the token is not signed with the algorithm this server uses"
            }
            AuthError::BadSignature => "the token signature is invalid",
            AuthError::MissingExpiry => "the token has no exp claim",
            AuthError::Expired => "the token has expired",
            AuthError::NotYetValid => "the token is not valid yet (nbf)",
            AuthError::IssuedInFuture => "the token was issued in the future (iat)",
            AuthError::WrongAudience => "the token is not meant for this server (aud)",
            AuthError::UnexpectedAudience => {
                "the token names an audience (aud) and this server has none configured"
            }
            AuthError::NotGranted(Action::Subscribe) => {
                "the token does not allow subscribing to this topic"
            }
            AuthError::NotGranted(Action::Publish) => {
                "the token does not allow publishing to this topic"
            }
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3).
    pub fn www_authenticate(self) -> String {
        match self.error_code() {
            None => format!("Bearer realm=\"{REALM}\""),
            Some(code) => format!(
                "Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{}\"",
                self.description()
            ),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AuthError {}

/// The protection space named in challenges (RFC 9110 §11.5).
pub const REALM: &str = "pushlab";

/// The server's authorization settings: a verifier when a key is
/// configured, and the topics anyone may subscribe to.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `--jwt-secret-file` or `--jwt-public-key-file`; `None`: no token is
    /// ever needed.
    pub verifier: Option<Verifier>,
    /// `--public-topic`: subscribable without a token when a key is set.
    pub public_topics: Vec<TopicPattern>,
}

impl Policy {
    /// Whether any topic needs a token.
    pub fn is_enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Whether anyone may subscribe to `topic`.
    pub fn is_public(&self, topic: &str) -> bool {
        self.verifier.is_none() || pattern::any_matches(&self.public_topics, topic)
    }

    /// May a request with `token` (`None`: it carried none) subscribe to
    /// all of `topics` at `now` (Unix seconds)? `Ok(None)`: yes, no token
    /// needed, nothing expires; `Ok(Some(grants))`: yes, until
    /// `grants.valid_until`. A token is only looked at when some topic is
    /// not public.
    pub fn authorize_subscribe(
        &self,
        token: Option<&[u8]>,
        topics: &[&str],
        now: u64,
    ) -> Result<Option<Grants>, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        if topics.iter().all(|t| self.is_public(t)) {
            return Ok(None);
        }
        let grants = verifier.verify(token.ok_or(AuthError::Missing)?, now)?;
        for topic in topics.iter().filter(|t| !self.is_public(t)) {
            grants.check(Action::Subscribe, topic)?;
        }
        Ok(Some(grants))
    }

    /// May a request with `token` publish to `topic` at `now`? Public
    /// topics are public to read only: publishing always needs a grant
    /// when a key is configured.
    pub fn authorize_publish(
        &self,
        token: Option<&[u8]>,
        topic: &str,
        now: u64,
    ) -> Result<Option<Grants>, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let grants = verifier.verify(token.ok_or(AuthError::Missing)?, now)?;
        grants.check(Action::Publish, topic)?;
        Ok(Some(grants))
    }
}

/// A shared secret (`--admin-token-file`), compared in constant time and
/// never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// The secret in a file's bytes, without one final line ending; `None`
    /// when nothing is left.
    pub fn from_file_bytes(file: &[u8]) -> Option<Secret> {
        let secret = file
            .strip_suffix(b"\r\n")
            .or_else(|| file.strip_suffix(b"\n"))
            .unwrap_or(file);
        (!secret.is_empty()).then(|| Secret(secret.into()))
    }

    /// Whether `candidate` is this secret. Both are hashed and the SHA-256
    /// digests compared to the last byte, so the time taken depends neither
    /// on where they differ nor on the secret's length.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        digests_equal(candidate, &self.0)
    }
}

/// Compares a candidate with a secret without an early exit and without a
/// loop bounded by either length: both are hashed with SHA-256 and the
/// 32-byte digests compared byte by byte to the end. The one comparison of
/// secrets in the server (`--publish-token`, `--admin-token-file`).
pub fn digests_equal(candidate: &[u8], secret: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(candidate), Sha256::digest(secret));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}
