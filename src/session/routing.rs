//! The route table of docs/api.md § Endpoints: which path goes to which transport, and
//! which methods each path allows (for `405` and its `Allow` header).

use crate::stats::Transport;
use crate::wire::http1::Method;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the demo page.
    Page,
    /// `GET /pushlab.js`: the browser client.
    Client,
    /// `POST /publish?topic=T`.
    Publish,
    /// `GET /poll`: short polling.
    Poll,
    /// `GET /long-poll`: held until a message or the timeout.
    LongPoll,
    /// `GET /events`: Server-Sent Events.
    Events,
    /// `GET /ws`: WebSocket pub/sub.
    Ws,
    /// `GET /echo`: WebSocket echo.
    Echo,
    /// `GET /stats`: JSON counters.
    Stats,
    /// `GET /metrics`: Prometheus counters.
    Metrics,
    /// `GET /healthz`: can this node publish and read its log?
    Health,
    /// `GET /trace`: SSE stream of socket events.
    Trace,
}

impl Route {
    /// The transport a socket counts under once it makes this request.
    pub fn transport(self) -> Transport {
        match self {
            Route::Poll => Transport::Poll,
            Route::LongPoll => Transport::LongPoll,
            Route::Events => Transport::Sse,
            Route::Ws | Route::Echo => Transport::Ws,
            Route::Page
            | Route::Client
            | Route::Publish
            | Route::Stats
            | Route::Metrics
            | Route::Health
            | Route::Trace => Transport::Http,
        }
    }

    /// Whether a page from another origin may use this route when
    /// `--allow-origin` allows it (CORS, see `session/cors.rs`): the push
    /// and publish endpoints and `/stats`. The page, `/metrics` and
    /// `/trace` are for the server's own origin and its operators; the
    /// WebSocket routes have their own origin check (RFC 6455 §10.2).
    pub fn is_cross_origin(self) -> bool {
        matches!(
            self,
            Route::Publish | Route::Poll | Route::LongPoll | Route::Events | Route::Stats
        )
    }
}

/// The outcome of routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routed {
    Found(Route),
    /// The path exists but not for this method → 405 with `Allow`.
    MethodNotAllowed {
        allow: &'static str,
    },
    NotFound,
}

/// Every path, the methods it takes, and its route.
const TABLE: &[(&str, &str, Route)] = &[
    ("/", "GET, HEAD", Route::Page),
    ("/index.html", "GET, HEAD", Route::Page),
    ("/pushlab.js", "GET, HEAD", Route::Client),
    ("/publish", "POST", Route::Publish),
    ("/poll", "GET, HEAD", Route::Poll),
    ("/long-poll", "GET, HEAD", Route::LongPoll),
    ("/events", "GET", Route::Events),
    ("/ws", "GET", Route::Ws),
    ("/echo", "GET", Route::Echo),
    ("/stats", "GET, HEAD", Route::Stats),
    ("/metrics", "GET, HEAD", Route::Metrics),
    ("/healthz", "GET, HEAD", Route::Health),
    ("/trace", "GET", Route::Trace),
];

/// The route of `path` and the methods it takes, whatever the method.
pub fn lookup(path: &str) -> Option<(Route, &'static str)> {
    TABLE
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|&(_, allow, route)| (route, allow))
}

/// Routes `method path`.
pub fn route(method: &Method, path: &str) -> Routed {
    let Some((route, allow)) = lookup(path) else {
        return Routed::NotFound;
    };
    let allowed = allow.split(',').any(|m| m.trim_start() == method.as_str());
    if allowed {
        Routed::Found(route)
    } else {
        Routed::MethodNotAllowed { allow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_path_routes() {
        assert_eq!(route(&Method::Get, "/poll"), Routed::Found(Route::Poll));
        assert_eq!(route(&Method::Head, "/poll"), Routed::Found(Route::Poll));
        assert_eq!(
            route(&Method::Post, "/publish"),
            Routed::Found(Route::Publish)
        );
        assert_eq!(route(&Method::Get, "/nope"), Routed::NotFound);
    }

    #[test]
    fn a_wrong_method_names_the_allowed_ones() {
        assert_eq!(
            route(&Method::Get, "/publish"),
            Routed::MethodNotAllowed { allow: "POST" }
        );
        assert_eq!(
            route(&Method::Delete, "/poll"),
            Routed::MethodNotAllowed { allow: "GET, HEAD" }
        );
    }
}
