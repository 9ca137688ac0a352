//! JWT validation (RFC 7519 §7.2) against one configured key, and the
//! grants a valid token carries.
//!
//! In order, for a token of at most [`MAX_TOKEN_BYTES`]:
//!
//! 1. three base64url parts; the header a JSON object ([`super::jwt`]);
//! 2. `alg` is the configured algorithm, exactly — `none` (in any case) and
//!    every other value are refused before any key is touched, so an HS256
//!    token can never be checked with an RSA public key as its HMAC secret
//!    (algorithm confusion); a `crit` header is refused (RFC 7515 §4.1.11:
//!    no extension is understood);
//! 3. the signature over `header "." payload` (constant-time for HMAC);
//! 4. only then the claims are parsed: `exp` required, `nbf` and `iat`
//!    optional, each an integer NumericDate, all checked with a leeway for
//!    clock skew; `aud` against `--jwt-audience`;
//! 5. `"pushlab": {"subscribe": [...], "publish": [...]}`: topic patterns.
//!
//! Time comes in as Unix seconds (`now`); this module reads no clock.
//! Left out: `iss`, `sub` and `jti` are not checked (no issuer allow-list,
//! no revocation list); NumericDates with a fraction are refused.

use serde_json::{Map, Value};

use super::jwt::{decode_compact, decode_object};
use super::key::{Algorithm, Key};
use super::pattern::{any_matches, TopicPattern};
use super::{Action, AuthError};
#[cfg(doc)]
use crate::config::MAX_TOKEN_BYTES;

/// Checks tokens against one key, one audience and one leeway.
#[derive(Clone, Debug)]
pub struct Verifier {
    key: Key,
    audience: Option<String>,
    leeway: u64,
}

/// What a valid token allows, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    /// `pushlab.subscribe`.
    pub subscribe: Vec<TopicPattern>,
    /// `pushlab.publish`.
    pub publish: Vec<TopicPattern>,
    /// The first Unix second at which the token is refused (`exp` plus the
    /// leeway): a stream it opened should end then.
    pub valid_until: u64,
}

impl Grants {
    /// Whether the token allows subscribing to `topic`.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        any_matches(&self.subscribe, topic)
    }

    /// Whether the token allows publishing to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        any_matches(&self.publish, topic)
    }

    /// `Ok` when the token allows `action` on `topic`, else the `403`.
    pub fn check(&self, action: Action, topic: &str) -> Result<(), AuthError> {
        let granted = match action {
            Action::Subscribe => self.may_subscribe(topic),
            Action::Publish => self.may_publish(topic),
        };
        if granted {
            Ok(())
        } else {
            Err(AuthError::NotGranted(action))
        }
    }
}

impl Verifier {
    /// Tokens signed with `key`'s algorithm only; `audience` required in
    /// `aud` when given; `leeway_secs` of clock skew allowed on `exp`, `nbf`
    /// and `iat`.
    pub fn new(key: Key, audience: Option<String>, leeway_secs: u64) -> Verifier {
        Verifier {
            key,
            audience,
            leeway: leeway_secs,
        }
    }

    /// The one algorithm accepted.
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// Validates `token` at `now` (Unix seconds) and returns its grants.
    pub fn verify(&self, token: &[u8], now: u64) -> Result<Grants, AuthError> {
        let compact = decode_compact(token)?;
        self.check_header(&compact.header)?;
        if !self.key.verify(compact.signing_input, &compact.signature) {
            return Err(AuthError::BadSignature);
        }
        let claims = decode_object(compact.payload)?;
        self.check_claims(&claims, now)
    }

    fn check_header(&self, header: &Map<String, Value>) -> Result<(), AuthError> {
        let Some(Value::String(alg)) = header.get("alg") else {
            return Err(AuthError::BadHeader("the header has no alg string"));
        };
        // RFC 7518 §3.6: "none" means unsecured; refused whatever its case.
        if alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::Unsigned);
        }
        // RFC 8725 §3.1: the algorithm comes from configuration, never from
        // the token.
        if alg != self.algorithm().name() {
            return Err(AuthError::WrongAlgorithm);
        }
        // RFC 7515 §4.1.11: recipients MUST reject a JWS whose `crit` names
        // an extension they do not understand; this one understands none.
        if header.contains_key("crit") {
            return Err(AuthError::BadHeader("the header has crit extensions"));
        }
        Ok(())
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<Grants, AuthError> {
        let exp = numeric_date(claims, "exp", "the exp claim is not an integer date")?
            .ok_or(AuthError::MissingExpiry)?;
        let nbf = numeric_date(claims, "nbf", "the nbf claim is not an integer date")?;
        let iat = numeric_date(claims, "iat", "the iat claim is not an integer date")?;
        let grants = grants(claims.get("pushlab"))?;
        // RFC 7519 §4.1.4: the current time MUST be before `exp`.
        let valid_until = exp.saturating_add(self.leeway);
        if now >= valid_until {
            return Err(AuthError::Expired);
        }
        // RFC 7519 §4.1.5: the current time MUST be after or equal to `nbf`.
        if nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
            return Err(AuthError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(AuthError::IssuedInFuture);
        }
        self.check_audience(claims.get("aud"))?;
        Ok(Grants {
            valid_until,
            ..grants
        })
    }

    /// RFC 7519 §4.1.3: a recipient that does not identify itself with a
    /// value in `aud`, when `aud` is present, MUST reject the token.
    fn check_audience(&self, aud: Option<&Value>) -> Result<(), AuthError> {
        let names_us = |want: &str| match aud {
            Some(Value::String(s)) => Ok(s == want),
            Some(Value::Array(items)) => {
                let mut found = false;
                for item in items {
                    let Value::String(s) = item else {
                        return Err(AuthError::BadClaim(
                            "the aud claim is not a string or strings",
                        ));
                    };
                    found |= s == want;
                }
                Ok(found)
            }
            _ => Err(AuthError::BadClaim(
                "the aud claim is not a string or strings",
            )),
        };
        match (&self.audience, aud) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(AuthError::UnexpectedAudience),
            (Some(_), None) => Err(AuthError::WrongAudience),
            (Some(want), Some(_)) => match names_us(want)? {
                true => Ok(()),
                false => Err(AuthError::WrongAudience),
            },
        }
    }
}

/// An optional NumericDate claim (RFC 7519 §2), as a non-negative integer.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    error: &'static str,
) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(AuthError::BadClaim(error)),
    }
}

/// `"pushlab": {"subscribe": [...], "publish": [...]}`; absent means none.
fn grants(claim: Option<&Value>) -> Result<Grants, AuthError> {
    let mut grants = Grants {
        subscribe: Vec::new(),
        publish: Vec::new(),
        valid_until: 0,
    };
    let Some(claim) = claim else {
        return Ok(grants);
    };
    let Value::Object(claim) = claim else {
        return Err(AuthError::BadClaim("the pushlab claim is not an object"));
    };
    grants.subscribe = patterns(claim.get("subscribe"))?;
    grants.publish = patterns(claim.get("publish"))?;
    Ok(grants)
}

fn patterns(list: Option<&Value>) -> Result<Vec<TopicPattern>, AuthError> {
    const BAD: AuthError = AuthError::BadClaim(
        "pushlab.subscribe and pushlab.publish must be lists of topics or prefix* patterns",
    );
    match list {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(|s| TopicPattern::parse(s).ok())
                    .ok_or(BAD)
            })
            .collect(),
        Some(_) => Err(BAD),
    }
}
