//! Cross-origin requests to the HTTP endpoints: the server side of the CORS
//! protocol of the [WHATWG Fetch standard, §3.2](https://fetch.spec.whatwg.org/#http-cors-protocol),
//! driven by `--allow-origin` (the same list that governs WebSocket
//! handshakes, see `session/websocket.rs`).
//!
//! - A request to a cross-origin route (`Route::is_cross_origin`) whose
//!   `Origin` is **listed by name** gets, on every response head — success
//!   or error, SSE stream included — `Access-Control-Allow-Origin: <that
//!   origin>`, `Access-Control-Allow-Credentials: true` and `Vary: Origin`
//!   ([`with_headers`]): a page of that origin may send credentials.
//! - One let in only by `*` gets `Access-Control-Allow-Origin: *` and no
//!   `Access-Control-Allow-Credentials`: any origin, without credentials.
//!   Fetch's CORS check (§3.2.5) passes `*` only for a request whose
//!   credentials mode is not "include", so the browser refuses the answer
//!   to a credentialed request; echoing the origin with credentials would
//!   lend the user's cookies to every site, which `*` must not mean.
//! - A CORS-preflight request (Fetch §3.2.2: `OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) to such a route is answered `204` with
//!   the route's methods, [`ALLOW_HEADERS`] and a max-age
//!   ([`with_preflight_headers`]), under the same origin and credentials
//!   rule; from an origin not allowed, `403`.
//! - No `--allow-origin` (the default), no `Origin` header, an origin not
//!   listed, or another route: no CORS header at all, and the response bytes
//!   are those of a same-origin request.
//!
//! Left out: `Access-Control-Expose-Headers` (pushlab's clients read bodies
//! and CORS-safelisted headers only: `Content-Type`, `Content-Length`,
//! `Cache-Control`); `Vary: Origin` on responses to requests without an
//! allowed `Origin` (so same-origin responses stay byte for byte as they
//! were; these routes answer `no-store`/`no-cache` anyway); private network
//! access preflights.

use super::routing::lookup;
use crate::config::CORS_MAX_AGE;
use crate::wire::http1::{Method, RequestHead, ResponseHead};

/// The request headers a cross-origin page may send (Fetch §3.2.3
/// `Access-Control-Allow-Headers`): `Authorization` carries the
/// `--publish-token` (`Bearer <token>`), `Content-Type` a non-safelisted
/// type such as `application/json`, `Last-Event-ID` a `fetch`-based event
/// stream resuming. Listed by name: with credentials, `*` is not a wildcard
/// (Fetch §3.2.3), and it never covers `Authorization`.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";

/// How a cross-origin request was let in, which decides its CORS headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// The origin is listed by name: echoed, with credentials.
    Named(Box<str>),
    /// Only `*` lets it in: the wildcard, without credentials. `vary` when
    /// the list also names origins, so the answer depends on `Origin`.
    Any { vary: bool },
}

/// How the request `head` is let in, when it is cross-origin, allowed, and
/// to a route that takes cross-origin requests. Costs one comparison (no
/// lookup, no allocation) when `allow` is empty, and no allocation when the
/// request has no `Origin` or is let in by `*`.
pub fn allowed_origin(head: &RequestHead, allow: &[String]) -> Option<Allowed> {
    if allow.is_empty() {
        return None;
    }
    let origin = head.header("origin")?;
    // A serialized origin (RFC 6454 §6.2) is visible ASCII; anything else is
    // not echoed (httparse already refuses CR and LF in a field value).
    if origin.is_empty() || !origin.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (route, _) = lookup(head.path())?;
    if !route.is_cross_origin() {
        return None;
    }
    let named = |entry: &String| entry != "*" && entry.as_bytes().eq_ignore_ascii_case(origin);
    if allow.iter().any(named) {
        // Visible ASCII, so valid UTF-8.
        return std::str::from_utf8(origin)
            .ok()
            .map(|o| Allowed::Named(o.into()));
    }
    allow
        .iter()
        .any(|entry| entry == "*")
        .then(|| Allowed::Any {
            vary: allow.iter().any(|entry| entry != "*"),
        })
}

/// When `head` is a CORS-preflight request (Fetch §3.2.2: `OPTIONS` with an
/// `Origin` and an `Access-Control-Request-Method`) to a cross-origin route
/// and `--allow-origin` is set: the route's methods. Otherwise `None`, and
/// the request is routed as any other (`OPTIONS` → `405`).
pub fn preflight_methods(head: &RequestHead, allow: &[String]) -> Option<&'static str> {
    if allow.is_empty()
        || head.method != Method::Options
        || head.header("origin").is_none()
        || head.header("access-control-request-method").is_none()
    {
        return None;
    }
    match lookup(head.path()) {
        Some((route, methods)) if route.is_cross_origin() => Some(methods),
        _ => None,
    }
}

/// Adds the headers of an allowed cross-origin response (Fetch §3.2.3).
pub fn with_headers<'a>(h: ResponseHead<'a>, allowed: &Allowed) -> ResponseHead<'a> {
    match allowed {
        Allowed::Named(origin) => h
            .header("Access-Control-Allow-Origin", origin)
            .header("Access-Control-Allow-Credentials", "true")
            // RFC 9110 §12.5.5: the response depends on the request's Origin.
            .header("Vary", "Origin"),
        // Fetch §3.2.5: `*` passes the CORS check only without credentials;
        // no `Access-Control-Allow-Credentials`, which `*` never goes with.
        Allowed::Any { vary: false } => h.header("Access-Control-Allow-Origin", "*"),
        Allowed::Any { vary: true } => h
            .header("Access-Control-Allow-Origin", "*")
            .header("Vary", "Origin"),
    }
}

/// Adds the headers of a successful preflight for a route taking `methods`.
pub fn with_preflight_headers<'a>(
    h: ResponseHead<'a>,
    allowed: &Allowed,
    methods: &str,
) -> ResponseHead<'a> {
    with_headers(h, allowed)
        .header("Access-Control-Allow-Methods", methods)
        .header("Access-Control-Allow-Headers", ALLOW_HEADERS)
        .header("Access-Control-Max-Age", CORS_MAX_AGE.as_secs())
}

#[cfg(test)]
mod session_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http1::parse_head;
    use crate::wire::websocket::handshake::origin_listed;

    fn head(text: &str) -> RequestHead {
        parse_head(text.as_bytes()).unwrap()
    }

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_origin_is_allowed_when_listed_or_by_a_star() {
        let app = b"https://app.example";
        assert!(origin_listed(app, &list(&["https://app.example"])));
        assert!(origin_listed(app, &list(&["https://APP.example"])));
        assert!(origin_listed(app, &list(&["https://x.example", "*"])));
        assert!(!origin_listed(app, &list(&["https://x.example"])));
        assert!(!origin_listed(app, &list(&[])));
    }

    fn named(origin: &str) -> Option<Allowed> {
        Some(Allowed::Named(origin.into()))
    }

    #[test]
    fn cors_applies_only_to_cross_origin_routes() {
        let allow = list(&["http://o.test"]);
        for path in ["/events", "/poll", "/long-poll", "/stats", "/publish"] {
            let h = head(&format!(
                "GET {path}?topic=a HTTP/1.1\r\nHost: t\r\nOrigin: http://o.test\r\n\r\n"
            ));
            assert_eq!(allowed_origin(&h, &allow), named("http://o.test"), "{path}");
        }
        for path in ["/", "/ws", "/echo", "/metrics", "/trace", "/nope"] {
            let h = head(&format!(
                "GET {path} HTTP/1.1\r\nHost: t\r\nOrigin: http://o.test\r\n\r\n"
            ));
            assert_eq!(allowed_origin(&h, &allow), None, "{path}");
            assert_eq!(allowed_origin(&h, &list(&["*"])), None, "{path}");
        }
    }

    #[test]
    fn star_lets_any_origin_in_without_credentials() {
        let get = |origin: &str| {
            head(&format!(
                "GET /poll HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n\r\n"
            ))
        };
        let star = list(&["*"]);
        for origin in ["http://o.test", "null", "https://evil.example"] {
            assert_eq!(
                allowed_origin(&get(origin), &star),
                Some(Allowed::Any { vary: false }),
                "{origin}"
            );
        }
        // Named entries keep credentials, even beside a star.
        let mixed = list(&["*", "http://app.test"]);
        assert_eq!(
            allowed_origin(&get("http://APP.test"), &mixed),
            named("http://APP.test")
        );
        assert_eq!(
            allowed_origin(&get("http://o.test"), &mixed),
            Some(Allowed::Any { vary: true })
        );
    }

    #[test]
    fn a_wildcard_answer_never_allows_credentials() {
        let mut out = Vec::new();
        with_headers(
            ResponseHead::new(&mut out, 200),
            &Allowed::Any { vary: false },
        )
        .finish(0, true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Access-Control-Allow-Origin: *\r\n"),
            "{text}"
        );
        assert!(!text.contains("Credentials"), "{text}");
        assert!(!text.contains("Vary"), "{text}");
    }

    #[test]
    fn nothing_is_allowed_without_a_visible_listed_origin() {
        let get = |origin: &str| {
            head(&format!(
                "GET /poll HTTP/1.1\r\nHost: t\r\n{origin}\r\n",
                origin = if origin.is_empty() {
                    String::new()
                } else {
                    format!("Origin: {origin}\r\n")
                }
            ))
        };
        let allow = list(&["*"]);
        assert_eq!(allowed_origin(&get(""), &allow), None);
        assert_eq!(allowed_origin(&get("a b"), &allow), None);
        assert_eq!(allowed_origin(&get("http://o.test"), &[]), None);
        let only = list(&["http://a.test"]);
        assert_eq!(allowed_origin(&get("http://o.test"), &only), None);
        assert_eq!(
            allowed_origin(&get("http://a.test"), &only),
            named("http://a.test")
        );
    }

    #[test]
    fn a_preflight_needs_options_origin_and_a_requested_method() {
        let allow = list(&["*"]);
        let pre = "OPTIONS /publish HTTP/1.1\r\nHost: t\r\nOrigin: http://o.test\r\n\
                   Access-Control-Request-Method: POST\r\n\r\n";
        assert_eq!(preflight_methods(&head(pre), &allow), Some("POST"));
        assert_eq!(preflight_methods(&head(pre), &[]), None);
        let plain = "OPTIONS /publish HTTP/1.1\r\nHost: t\r\nOrigin: http://o.test\r\n\r\n";
        assert_eq!(preflight_methods(&head(plain), &allow), None);
        let ws = pre.replace("/publish", "/ws");
        assert_eq!(preflight_methods(&head(&ws), &allow), None);
        let events = pre.replace("/publish", "/events");
        assert_eq!(preflight_methods(&head(&events), &allow), Some("GET"));
    }
}
