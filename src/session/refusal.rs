//! Refusals: an HTTP error answer as one value — the status, the reason the
//! plain-text body gives, and the one header some statuses call for
//! (`Allow` with 405, RFC 9110 §15.5.6; `WWW-Authenticate` with 401,
//! §11.6.1; `Sec-WebSocket-Version` with 426, RFC 6455 §4.4).
//!
//! Each layer's error becomes a refusal through `From`, keeping the status
//! that layer gave it, so a refusal is passed around whole and written in
//! one place ([`Session::refuse`](super::Session::refuse)).

use std::borrow::Cow;
use std::fmt;

use crate::auth::AuthError;

use crate::hub::HubError;
use crate::wire::http1::{BodyError, HeadError};
use crate::wire::query::ParamError;
use crate::wire::websocket::HandshakeError;

/// An HTTP request the server answers with an error status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The response status (4xx or 5xx).
    pub status: u16,
    /// Why, in words: the body of the response and the trace line.
    pub reason: String,
    /// A header the status calls for, if any. The value is computed for
    /// some (`WWW-Authenticate` names the token's problem), fixed for most.
    pub header: Option<(&'static str, Cow<'static, str>)>,
}

impl Refusal {
    /// `status` with `reason` and no extra header.
    pub fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            header: None,
        }
    }

    /// The same refusal with the header `name: value`.
    pub fn with_header(self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal {
            header: Some((name, value.into())),
            ..self
        }
    }

    /// `401`: RFC 9110 §11.6.1, the server "MUST send a WWW-Authenticate
    /// header field containing at least one challenge" — here `Bearer`.
    pub fn unauthorized(reason: impl Into<String>) -> Refusal {
        Refusal::new(401, reason).with_header("WWW-Authenticate", "Bearer")
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

/// A token refused (RFC 6750 §3): `401` or `403`, with the
/// `WWW-Authenticate` challenge naming the error.
impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Refusal {
        Refusal::new(e.status(), e.description())
            .with_header("WWW-Authenticate", e.www_authenticate())
    }
}

/// A bad query parameter: `400`, naming the parameter.
impl From<ParamError> for Refusal {
    fn from(e: ParamError) -> Refusal {
        Refusal::new(400, e.0)
    }
}

/// An invalid topic (`400`), a full hub (`503`), a log that cannot take
/// the message now (`503` with `Retry-After`), a full disk (`507`).
impl From<HubError> for Refusal {
    fn from(e: HubError) -> Refusal {
        let refusal = Refusal::new(e.status(), e.to_string());
        match e {
            HubError::Unavailable {
                retry_after_secs, ..
            } => refusal.with_header("Retry-After", retry_after_secs.to_string()),
            _ => refusal,
        }
    }
}

/// A request head that cannot be served (`400`, `417`, `431`, `501`).
impl From<HeadError> for Refusal {
    fn from(e: HeadError) -> Refusal {
        Refusal::new(e.status(), e.to_string())
    }
}

/// A request body that cannot be read (`400`, `413`).
impl From<BodyError> for Refusal {
    fn from(e: BodyError) -> Refusal {
        Refusal::new(e.status(), e.to_string())
    }
}

/// A WebSocket opening handshake refused (RFC 6455 §4.2.1, §4.4), with the
/// header its status calls for.
impl From<HandshakeError> for Refusal {
    fn from(e: HandshakeError) -> Refusal {
        Refusal {
            status: e.status(),
            reason: e.to_string(),
            header: e.response_header().map(|(n, v)| (n, Cow::Borrowed(v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layer_keeps_its_status_and_words() {
        let r = Refusal::from(ParamError("missing `topic` parameter".into()));
        assert_eq!(r, Refusal::new(400, "missing `topic` parameter"));
        assert_eq!(Refusal::from(HubError::TooManyTopics).status, 503);
        assert_eq!(Refusal::from(HubError::InvalidTopic).status, 400);
        let r = Refusal::from(HeadError::TooLarge);
        assert_eq!((r.status, r.reason), (431, HeadError::TooLarge.to_string()));
        assert_eq!(Refusal::from(BodyError::TooLarge).status, 413);
    }

    #[test]
    fn statuses_that_call_for_a_header_carry_it() {
        let r = Refusal::from(HandshakeError::MethodNotGet);
        assert_eq!((r.status, r.header), (405, Some(("Allow", "GET".into()))));
        let r = Refusal::from(HandshakeError::VersionMissing);
        assert_eq!(r.status, 426);
        assert_eq!(r.header.map(|h| h.0), Some("Sec-WebSocket-Version"));
        let r = Refusal::unauthorized("no token");
        assert_eq!(r.header, Some(("WWW-Authenticate", "Bearer".into())));
        assert_eq!(r.to_string(), "401 no token");
        assert_eq!(Refusal::new(404, "no such path").header, None);
        let r = Refusal::from(AuthError::Expired);
        assert_eq!(r.status, 401);
        let (name, value) = r.header.unwrap();
        assert_eq!(name, "WWW-Authenticate");
        assert!(
            value.starts_with("Bearer realm=\"pushlab\", error=\"invalid_token\""),
            "{value}"
        );
        let r = Refusal::from(AuthError::NotGranted(crate::auth::Action::Subscribe));
        assert_eq!(r.status, 403);
        assert!(r.header.unwrap().1.contains("insufficient_scope"));
    }
}
