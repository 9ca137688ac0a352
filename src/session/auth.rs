//! Who may do what on a request: the glue between the sessions and
//! [`crate::auth`] (docs/security.md is the user's view).
//!
//! - Carriers, in order: `Authorization: Bearer <token>` (the scheme in any
//!   case, RFC 9110 §11.1; parsed by [`carrier::bearer_token`]), then the
//!   `pushlab_token` cookie, then the `access_token` query parameter when
//!   `--allow-query-token` is set. The first one present is the token; a
//!   bad one is not replaced by another.
//! - Subscribing (polls, SSE, `/ws`): with a key configured, every topic not
//!   matched by `--public-topic` needs a token granting it
//!   ([`Policy::authorize_subscribe`]).
//! - Publishing on `/publish`: the `--publish-token` secret, or with a key
//!   a token granting the topic. **Never the cookie**: a browser attaches
//!   cookies to a cross-site form `POST` on its own, so a cookie-only
//!   publish would be forgeable (CSRF). A publisher sends the header (or,
//!   with `--allow-query-token`, the parameter — which a forging page
//!   cannot know either).
//! - Publishing on `/ws`: the WebSocket handshake is origin-checked
//!   (`--allow-origin`, RFC 6455 §10.2) before anything else, so its cookie
//!   cannot be ridden by another site; a text message is published when the
//!   handshake carried the publish token, or a token granting that topic.
//! - Secrets (`--publish-token`, `--admin-token-file`) are compared by
//!   SHA-256 digest ([`auth::digests_equal`]).
//! - Expiry: a subscription that needed a token lasts as long as the token
//!   ([`Session::token_expiry`]): an SSE stream ends, a `/ws` connection
//!   closes with [`super::websocket::TOKEN_EXPIRED`], a parked long poll is
//!   answered (empty) at that instant. The next request with the same token
//!   is refused `401`; one with a fresh token resumes from its cursor.

use crate::auth::{self, carrier, AuthError, Grants};
use crate::config::Config;
use crate::wire::http1::RequestHead;
use crate::wire::query::Query;
use crate::wire::websocket::origin_allowed;

use super::{Ctx, Refusal, Session};
use crate::timers::Instant;

/// The token of a `Bearer` `Authorization` header, whatever the case of
/// the scheme; `None` without one.
pub fn bearer_token(head: &RequestHead) -> Option<&[u8]> {
    carrier::bearer_token(head.header("authorization")?)
}

/// Whether `head` carries `Authorization: Bearer <token>`.
pub fn bearer_matches(head: &RequestHead, token: &[u8]) -> bool {
    bearer_token(head).is_some_and(|given| auth::digests_equal(given, token))
}

/// Whether the request carries the `--publish-token` secret in its header.
fn has_publish_token(head: &RequestHead, config: &Config) -> bool {
    config
        .publish_token
        .as_ref()
        .is_some_and(|t| bearer_matches(head, t.as_bytes()))
}

/// Where a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Header,
    Cookie,
    Query,
}

/// The token a request presents and its carrier, in the order of the module
/// documentation. `cookie` false leaves the cookie out (publishing).
pub fn presented<'a>(
    head: &'a RequestHead,
    query: &'a Query,
    config: &Config,
    cookie: bool,
) -> Option<(&'a [u8], Carrier)> {
    if let Some(t) = bearer_token(head) {
        return Some((t, Carrier::Header));
    }
    if cookie && cookie_origin_ok(head, config) {
        if let Some(t) = head
            .header("cookie")
            .and_then(|c| carrier::cookie(c, carrier::COOKIE_NAME))
        {
            return Some((t, Carrier::Cookie));
        }
    }
    if config.allow_query_token {
        if let Some(t) = query.get(carrier::QUERY_PARAM) {
            return Some((t.as_bytes(), Carrier::Query));
        }
    }
    None
}

/// Whether the cookie of `head` may count as a credential: the request has
/// no `Origin` (not from a page's script, or a same-origin `GET`), or its
/// `Origin` is the server's own or listed by name in `--allow-origin` —
/// never merely matched by `*`, which would let any site's page read
/// private topics with the user's cookie (a `WebSocket` from any origin,
/// RFC 6455 §10.2).
pub fn cookie_origin_ok(head: &RequestHead, config: &Config) -> bool {
    let Some(origin) = head.header("origin") else {
        return true;
    };
    origin_allowed(Some(origin), head.header("host"), &[])
        || config
            .allow_origins
            .iter()
            .any(|a| a != "*" && a.as_bytes().eq_ignore_ascii_case(origin))
}

/// A subscription to `topics`: `Ok(Some(grants))` when a token was needed
/// and grants them all, `Ok(None)` when none was needed.
pub fn check_subscribe(
    head: &RequestHead,
    query: &Query,
    topics: &[&str],
    ctx: &Ctx,
) -> Result<Option<Grants>, Refusal> {
    let policy = &ctx.config.auth;
    let token = presented(head, query, ctx.config, true).map(|(t, _)| t);
    Ok(policy.authorize_subscribe(token, topics, ctx.unix_secs())?)
}

impl Session {
    /// When the token of the subscribing request being served stops being
    /// accepted, on the loop's clock: `exp` plus `--jwt-leeway` (the first
    /// Unix second [`auth::Verifier::verify`] refuses). `None` when the
    /// request needed no token (no key, or public topics only): nothing
    /// expires.
    pub(super) fn token_expiry(&self, ctx: &Ctx) -> Option<Instant> {
        self.grants
            .as_ref()
            .map(|g| ctx.instant_of_unix(g.valid_until))
    }
}

/// What a `/ws` subscriber may publish, decided at its handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishRight {
    /// Any of its topics: no credential is configured, or it sent
    /// `--publish-token`.
    Any,
    /// The topics its token grants, until the token expires.
    Granted(Box<Grants>),
    /// Nothing, for the reason given.
    Nothing(&'static str),
}

impl PublishRight {
    /// Whether publishing to `topic` at Unix time `now` is allowed.
    pub fn check(&self, topic: &str, now: u64) -> Result<(), &'static str> {
        match self {
            PublishRight::Any => Ok(()),
            PublishRight::Granted(g) if now >= g.valid_until => Err("the token has expired"),
            PublishRight::Granted(g) if g.may_publish(topic) => Ok(()),
            PublishRight::Granted(_) => {
                Err(AuthError::NotGranted(auth::Action::Publish).description())
            }
            PublishRight::Nothing(why) => Err(why),
        }
    }
}

const NO_PUBLISH_TOKEN: &str = "publishing needs a valid token that allows it";

/// The publish right of a `/ws` handshake whose subscription check gave
/// `grants`.
pub fn ws_publish_right(
    head: &RequestHead,
    query: &Query,
    grants: Option<&Grants>,
    ctx: &Ctx,
) -> PublishRight {
    let config = ctx.config;
    if has_publish_token(head, config) {
        return PublishRight::Any;
    }
    let Some(verifier) = &config.auth.verifier else {
        return match config.publish_token {
            None => PublishRight::Any,
            Some(_) => PublishRight::Nothing("publishing needs the publish token"),
        };
    };
    if let Some(g) = grants {
        return PublishRight::Granted(Box::new(g.clone()));
    }
    // Public topics only: the token was not needed to subscribe, but it
    // may still grant publishing.
    match presented(head, query, config, true) {
        Some((token, _)) => match verifier.verify(token, ctx.unix_secs()) {
            Ok(g) => PublishRight::Granted(Box::new(g)),
            Err(_) => PublishRight::Nothing(NO_PUBLISH_TOKEN),
        },
        None => PublishRight::Nothing(NO_PUBLISH_TOKEN),
    }
}

/// `POST /publish?topic=T`: the publish token, or with a key a token (not
/// the cookie) granting `topic`.
pub fn check_publish(
    head: &RequestHead,
    query: &Query,
    topic: &str,
    ctx: &Ctx,
) -> Result<(), Refusal> {
    let config = ctx.config;
    if has_publish_token(head, config) {
        return Ok(());
    }
    if !config.auth.is_enabled() {
        return match config.publish_token {
            None => Ok(()),
            Some(_) => Err(Refusal::unauthorized(
                "publish needs Authorization: Bearer <token>",
            )),
        };
    }
    let token = presented(head, query, config, false).map(|(t, _)| t);
    match config.auth.authorize_publish(token, topic, ctx.unix_secs()) {
        Ok(_) => Ok(()),
        Err(AuthError::Missing) if presented(head, query, config, true).is_some() => {
            let mut r = Refusal::from(AuthError::Missing);
            r.reason = "publishing needs Authorization: Bearer; the pushlab_token cookie is \
                        not accepted for it (a cookie alone could be sent by another site)"
                .into();
            Err(r)
        }
        Err(e) => Err(e.into()),
    }
}

/// The operator endpoints. With `--admin-token-file`, `/trace`, `/stats`
/// and `/metrics` need that token in the `Authorization` header, from
/// loopback clients too. Without it, `/trace` (`trace` true) needs the
/// `--publish-token` when one is set — watching every socket is restricted
/// whenever publishing is (docs/api.md § /trace) — and `/stats`,
/// `/metrics` are open.
pub fn check_admin(head: &RequestHead, config: &Config, trace: bool) -> Result<(), Refusal> {
    let ok = match (&config.admin_token, &config.publish_token) {
        (Some(secret), _) => bearer_token(head).is_some_and(|given| secret.matches(given)),
        (None, Some(_)) if trace => has_publish_token(head, config),
        (None, _) => true,
    };
    if ok {
        return Ok(());
    }
    let why = match config.admin_token {
        Some(_) => "this endpoint needs Authorization: Bearer <admin token>",
        None => "/trace needs Authorization: Bearer <token>",
    };
    Err(Refusal::unauthorized(why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http1::parse_head;

    fn with_auth(value: &str) -> RequestHead {
        let raw = format!("POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: {value}\r\n\r\n");
        parse_head(raw.as_bytes()).unwrap()
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "bEaReR   s3cret",
        ] {
            assert!(bearer_matches(&with_auth(value), b"s3cret"), "{value}");
        }
    }

    #[test]
    fn other_schemes_and_wrong_tokens_do_not_match() {
        for value in [
            "Basic s3cret",
            "Bearers3cret",
            "Bearer",
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "s3cret",
        ] {
            assert!(!bearer_matches(&with_auth(value), b"s3cret"), "{value}");
        }
        let none = parse_head(b"POST /publish HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert!(!bearer_matches(&none, b"s3cret"));
    }

    #[test]
    fn the_header_comes_first_then_the_cookie_then_the_query_if_allowed() {
        let raw = b"GET /events?topic=a&access_token=q HTTP/1.1\r\nHost: t\r\n\
                    Cookie: x=1; pushlab_token=c\r\nAuthorization: bearer h\r\n\r\n";
        let head = parse_head(raw).unwrap();
        let query = Query::parse(head.query()).unwrap();
        let mut config = Config::default();
        let got = presented(&head, &query, &config, true);
        assert_eq!(got, Some((&b"h"[..], Carrier::Header)));
        let raw = b"GET /events?topic=a&access_token=q HTTP/1.1\r\nHost: t\r\n\
                    Cookie: x=1; pushlab_token=c\r\n\r\n";
        let head = parse_head(raw).unwrap();
        let got = presented(&head, &query, &config, true);
        assert_eq!(got, Some((&b"c"[..], Carrier::Cookie)));
        assert_eq!(presented(&head, &query, &config, false), None);
        config.allow_query_token = true;
        let got = presented(&head, &query, &config, false);
        assert_eq!(got, Some((&b"q"[..], Carrier::Query)));
    }

    #[test]
    fn the_cookie_counts_only_without_origin_or_from_a_named_or_the_same_origin() {
        let with_origin = |origin: &str| {
            let raw = format!("GET /ws?topic=a HTTP/1.1\r\nHost: push.example\r\nOrigin: {origin}\r\nCookie: pushlab_token=c\r\n\r\n");
            parse_head(raw.as_bytes()).unwrap()
        };
        let config = Config {
            allow_origins: vec!["*".into(), "https://app.example".into()],
            ..Config::default()
        };
        assert!(cookie_origin_ok(
            &with_origin("https://app.example"),
            &config
        ));
        assert!(cookie_origin_ok(
            &with_origin("http://push.example"),
            &config
        ));
        assert!(!cookie_origin_ok(
            &with_origin("https://evil.example"),
            &config
        ));
        let head = with_origin("https://evil.example");
        let query = Query::parse(head.query()).unwrap();
        assert_eq!(presented(&head, &query, &config, true), None);
        let none = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(cookie_origin_ok(&none, &config));
    }
}
