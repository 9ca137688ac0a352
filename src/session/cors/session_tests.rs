//! CORS as a whole session answers it: request bytes in, response bytes out.

use crate::config::Config;
use crate::session::Session;
use crate::testkit::{ms, split_head, Rig};
use crate::timers::Instant;

const ORIGIN: &str = "http://app.test";

/// A rig whose `--allow-origin` list is `allow`.
fn rig(allow: &[&str]) -> Rig {
    Rig::new(Config {
        allow_origins: allow.iter().map(|s| s.to_string()).collect(),
        ..Config::default()
    })
    .untraced()
}

/// Feeds `req` to a new session; returns everything it answered.
fn answer(rig: &mut Rig, req: &str) -> Vec<u8> {
    let mut s = Session::new(1, Instant::ZERO, &rig.config);
    s.handle_input(req.as_bytes(), &mut rig.ctx());
    rig.commit_to(&mut s);
    s.output().take_all()
}

fn head_of(bytes: &[u8]) -> String {
    split_head(bytes).0
}

/// The CORS headers of an allowed request from [`ORIGIN`], as sent.
const CORS_HEADERS: &str = "Access-Control-Allow-Origin: http://app.test\r\n\
                            Access-Control-Allow-Credentials: true\r\n\
                            Vary: Origin\r\n";

fn get(path: &str, origin: Option<&str>) -> String {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{origin}\r\n")
}

#[test]
fn an_allowed_origin_is_echoed_on_poll_long_poll_and_stats() {
    for allow in [
        &[ORIGIN][..],
        &["*", ORIGIN],
        &["http://other.test", ORIGIN],
    ] {
        for path in ["/poll?topic=a", "/long-poll?topic=a&timeout=0", "/stats"] {
            let mut rig = rig(allow);
            let head = head_of(&answer(&mut rig, &get(path, Some(ORIGIN))));
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(head.contains(CORS_HEADERS), "{allow:?} {path}: {head}");
        }
    }
}

#[test]
fn same_origin_responses_are_unchanged_byte_for_byte() {
    // With and without `--allow-origin`, a request without `Origin` (and one
    // from an origin not listed) gets exactly the bytes of the default.
    for path in ["/poll?topic=a&since=0", "/poll", "/metrics"] {
        let plain = answer(&mut rig(&[]), &get(path, None));
        let listed = answer(&mut rig(&[ORIGIN]), &get(path, None));
        assert_eq!(plain, listed, "{path}");
        let other = answer(&mut rig(&[ORIGIN]), &get(path, Some("http://evil.test")));
        assert_eq!(plain, other, "{path}");
        let off = answer(&mut rig(&[]), &get(path, Some(ORIGIN)));
        assert_eq!(plain, off, "{path}");
    }
}

#[test]
fn the_body_is_the_same_cross_origin() {
    let mut rig = rig(&[ORIGIN]);
    rig.publish("a", "hello");
    let cross = answer(&mut rig, &get("/poll?topic=a&since=0", Some(ORIGIN)));
    let same = answer(&mut rig, &get("/poll?topic=a&since=0", None));
    assert!(head_of(&cross).contains(CORS_HEADERS));
    assert_eq!(split_head(&cross).1, split_head(&same).1);
    assert_eq!(
        head_of(&cross).replace(CORS_HEADERS, ""),
        head_of(&same),
        "only the CORS headers differ"
    );
}

#[test]
fn routes_for_the_own_origin_get_no_cors_headers() {
    for path in ["/", "/metrics"] {
        let head = head_of(&answer(&mut rig(&[ORIGIN]), &get(path, Some(ORIGIN))));
        assert!(!head.contains("Access-Control"), "{path}: {head}");
    }
}

#[test]
fn a_400_is_readable_cross_origin() {
    let head = head_of(&answer(&mut rig(&[ORIGIN]), &get("/poll", Some(ORIGIN))));
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(head.contains(CORS_HEADERS), "{head}");
}

#[test]
fn a_publish_refused_before_its_body_is_readable_cross_origin() {
    let mut rig = Rig::new(Config {
        allow_origins: vec![ORIGIN.into()],
        publish_token: Some("s3cret".into()),
        ..Config::default()
    });
    let req = format!(
        "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nOrigin: {ORIGIN}\r\n\
         Content-Length: 2\r\n\r\nhi"
    );
    let head = head_of(&answer(&mut rig, &req));
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    assert!(head.contains("WWW-Authenticate: Bearer\r\n"), "{head}");
    assert!(head.contains(CORS_HEADERS), "{head}");
    let ok = req.replace("Origin:", "Authorization: Bearer s3cret\r\nOrigin:");
    let head = head_of(&answer(&mut rig, &ok));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains(CORS_HEADERS), "{head}");
}

#[test]
fn an_event_stream_head_carries_the_cors_headers() {
    let mut rig = rig(&[ORIGIN]);
    let out = answer(&mut rig, &get("/events?topic=a", Some(ORIGIN)));
    let (head, body) = split_head(&out);
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains(CORS_HEADERS), "{head}");
    assert!(body.starts_with(b"retry: "));
}

#[test]
fn a_preflight_from_an_allowed_origin_gets_204_and_the_route_methods() {
    let mut rig = rig(&[ORIGIN]);
    let req = format!(
        "OPTIONS /publish?topic=a HTTP/1.1\r\nHost: t\r\nOrigin: {ORIGIN}\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: authorization\r\n\r\n"
    );
    let out = answer(&mut rig, &req);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "HTTP/1.1 204 No Content\r\nServer: pushlab\r\n{CORS_HEADERS}\
             Access-Control-Allow-Methods: POST\r\n\
             Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID\r\n\
             Access-Control-Max-Age: 600\r\n\
             Connection: keep-alive\r\n\r\n"
        )
    );
    let events = req
        .replace("/publish?topic=a", "/events")
        .replace("POST", "GET");
    let head = head_of(&answer(&mut rig, &events));
    assert!(
        head.contains("Access-Control-Allow-Methods: GET\r\n"),
        "{head}"
    );
}

#[test]
fn a_preflight_from_another_origin_gets_403_without_cors_headers() {
    let req = "OPTIONS /poll HTTP/1.1\r\nHost: t\r\nOrigin: http://evil.test\r\n\
               Access-Control-Request-Method: GET\r\n\r\n";
    let head = head_of(&answer(&mut rig(&[ORIGIN]), req));
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert!(!head.contains("Access-Control"), "{head}");
    assert!(!head.contains("Vary"), "{head}");
}

#[test]
fn options_stays_405_without_allow_origin_or_without_the_preflight_header() {
    let preflight = format!(
        "OPTIONS /poll HTTP/1.1\r\nHost: t\r\nOrigin: {ORIGIN}\r\n\
         Access-Control-Request-Method: GET\r\n\r\n"
    );
    let plain = format!("OPTIONS /poll HTTP/1.1\r\nHost: t\r\nOrigin: {ORIGIN}\r\n\r\n");
    for (allow, req) in [(&[][..], &preflight), (&["*"][..], &plain)] {
        let head = head_of(&answer(&mut rig(allow), req));
        assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
        assert!(head.contains("Allow: GET, HEAD\r\n"), "{head}");
    }
}

#[test]
fn a_held_long_poll_answers_with_the_cors_headers_and_the_next_request_without() {
    let mut rig = rig(&[ORIGIN]);
    let mut s = Session::new(1, Instant::ZERO, &rig.config);
    let held = get("/long-poll?topic=a&timeout=5", Some(ORIGIN));
    let next = get("/poll?topic=a", None);
    s.handle_input(format!("{held}{next}").as_bytes(), &mut rig.ctx());
    assert!(s.is_parked());
    assert!(s.output().is_empty());
    rig.now = ms(10);
    rig.publish_to("a", "x", &mut [&mut s]);
    let out = String::from_utf8(s.output().take_all()).unwrap();
    let (first, second) = out.split_at(out.rfind("HTTP/1.1 200").unwrap());
    assert!(first.contains(CORS_HEADERS), "{first}");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(!second.contains("Access-Control"), "{second}");
}

/// `*` is any origin without credentials (Fetch §3.2.5): a wildcard on the
/// answer, never `Access-Control-Allow-Credentials`, for simple requests and
/// preflights alike — so a browser refuses the credentialed request.
#[test]
fn star_answers_any_origin_with_the_wildcard_and_without_credentials() {
    for origin in ["http://evil.test", "null"] {
        let head = head_of(&answer(
            &mut rig(&["*"]),
            &get("/poll?topic=a", Some(origin)),
        ));
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(
            head.contains("Access-Control-Allow-Origin: *\r\n"),
            "{head}"
        );
        assert!(!head.contains(origin), "{head}");
        assert!(!head.contains("Credentials"), "{head}");
        let preflight = format!(
            "OPTIONS /publish?topic=a HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization\r\n\r\n"
        );
        let out = answer(&mut rig(&["*"]), &preflight);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 204 No Content\r\nServer: pushlab\r\n\
             Access-Control-Allow-Origin: *\r\n\
             Access-Control-Allow-Methods: POST\r\n\
             Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID\r\n\
             Access-Control-Max-Age: 600\r\n\
             Connection: keep-alive\r\n\r\n"
        );
    }
    // Beside named origins, a named one keeps its credentials and the
    // others get the wildcard with `Vary: Origin`.
    let mixed = ["*", ORIGIN];
    let head = head_of(&answer(
        &mut rig(&mixed),
        &get("/poll?topic=a", Some(ORIGIN)),
    ));
    assert!(head.contains(CORS_HEADERS), "{head}");
    let head = head_of(&answer(
        &mut rig(&mixed),
        &get("/poll?topic=a", Some("http://x.test")),
    ));
    assert!(
        head.contains("Access-Control-Allow-Origin: *\r\nVary: Origin\r\n"),
        "{head}"
    );
    assert!(!head.contains("Credentials"), "{head}");
}
