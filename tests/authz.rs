//! Signed tokens enforced over real loopback sockets, on every transport
//! and on `/publish`: which carrier each accepts and the status each
//! refusal gets (docs/security.md). Tokens are HS256, signed here with the
//! test's secret.

mod common;

use std::io::{BufReader, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{read_head, read_response, Response, TestServer};
use pushlab::auth::{sign_hs256, Key, Policy, TopicPattern, Verifier};
use pushlab::config::Config;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token granting `subscribe` and `publish`, valid `secs` more seconds.
fn token(subscribe: &[&str], publish: &[&str], secs: i64) -> String {
    token_until(subscribe, publish, unix_now() as i64 + secs)
}

/// A token granting `subscribe` and `publish` whose `exp` is `exp`.
fn token_until(subscribe: &[&str], publish: &[&str], exp: i64) -> String {
    let claims = serde_json::json!({
        "exp": exp,
        "pushlab": {"subscribe": subscribe, "publish": publish},
    });
    sign_hs256(
        SECRET,
        br#"{"alg":"HS256","typ":"JWT"}"#,
        claims.to_string().as_bytes(),
    )
}

fn config() -> Config {
    Config {
        auth: Policy {
            verifier: Some(Verifier::new(Key::hs256(SECRET).unwrap(), None, 0)),
            public_topics: vec![TopicPattern::parse("public.*").unwrap()],
        },
        ..Config::default()
    }
}

/// One request with extra header lines; the response (the head alone for
/// a stream: `stream` true).
fn send(server: &TestServer, method: &str, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut s = server.connect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s))
}

/// The status and headers of a stream's answer (SSE never ends).
fn stream_head(server: &TestServer, path: &str, headers: &str) -> (u16, Vec<(String, String)>) {
    let mut s = server.connect();
    let head = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
    s.write_all(head.as_bytes()).unwrap();
    read_head(&mut BufReader::new(s))
}

fn www_authenticate(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
}

fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}\r\n")
}

fn cookie(t: &str) -> String {
    format!("Cookie: theme=dark; pushlab_token={t}\r\n")
}

/// The statuses every subscribing transport gives: 401 without a token or
/// with a bad one, 403 for a topic outside the claim, 200 with the header
/// (any case) or the cookie, and public topics open to anyone.
#[test]
fn polls_and_sse_need_a_token_granting_the_topic() {
    let server = TestServer::start(config());
    let good = token(&["user.42.*"], &[], 60);
    let expired = token(&["user.42.*"], &[], -60);
    let mut forged = token(&["user.42.*"], &[], 60);
    // Another last character: a signature that differs but is still
    // canonical base64url (the last of 43 characters carries 4 bits, so only
    // A, E, I, … Q, … are canonical), so the refusal is for the signature.
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'Q' } else { 'A' });
    for path in [
        "/poll?topic=user.42.inbox",
        "/long-poll?topic=user.42.inbox&timeout=10ms",
        "/events?topic=user.42.inbox",
    ] {
        let cases = [
            (String::new(), 401, Some("Bearer realm=\"pushlab\"")),
            (bearer(&expired), 401, Some("error=\"invalid_token\"")),
            (bearer(&forged), 401, Some("error=\"invalid_token\"")),
            (bearer("not.a.jwt"), 401, Some("error=\"invalid_token\"")),
            (
                bearer(&token(&["user.43.*"], &["user.42.inbox"], 60)),
                403,
                Some("error=\"insufficient_scope\""),
            ),
            (bearer(&good), 200, None),
            (format!("Authorization: bEaReR {good}\r\n"), 200, None),
            (cookie(&good), 200, None),
            (cookie(&expired), 401, Some("error=\"invalid_token\"")),
        ];
        for (headers, status, challenge) in cases {
            let (got, h) = stream_head(&server, path, &headers);
            assert_eq!(got, status, "{path} {headers:?}");
            match challenge {
                Some(c) => {
                    let w = www_authenticate(&h).unwrap_or_else(|| panic!("{path}: no challenge"));
                    assert!(w.contains(c), "{path} {headers:?}: {w}");
                }
                None => assert_eq!(www_authenticate(&h), None),
            }
        }
        let public = path.replace("user.42.inbox", "public.news");
        assert_eq!(stream_head(&server, &public, "").0, 200, "{public}");
        // One private topic among public ones needs the token.
        let mixed = path.replace("user.42.inbox", "public.news,user.42.inbox");
        assert_eq!(stream_head(&server, &mixed, "").0, 401, "{mixed}");
    }
}

#[test]
fn the_query_token_is_accepted_only_with_allow_query_token() {
    let good = token(&["user.42.*"], &[], 60);
    let path = format!("/poll?topic=user.42.inbox&access_token={good}");
    let server = TestServer::start(config());
    assert_eq!(send(&server, "GET", &path, "", b"").status, 401);
    let server = TestServer::start(Config {
        allow_query_token: true,
        ..config()
    });
    assert_eq!(send(&server, "GET", &path, "", b"").status, 200);
}

/// `/publish` takes the header (never the cookie alone: CSRF), checks the
/// publish grant, and `--publish-token` keeps working beside tokens.
#[test]
fn publish_needs_a_header_token_granting_publish() {
    let server = TestServer::start(Config {
        publish_token: Some("backend-secret".into()),
        ..config()
    });
    let path = "/publish?topic=user.42.inbox";
    let both = token(&["user.42.*"], &["user.42.*"], 60);
    let sub_only = token(&["user.42.*"], &[], 60);
    let r = send(&server, "POST", path, "", b"x");
    assert_eq!(r.status, 401);
    let r = send(&server, "POST", path, &cookie(&both), b"x");
    assert_eq!(r.status, 401, "a cookie alone must not publish");
    assert!(r.text().contains("cookie is not accepted"), "{}", r.text());
    let r = send(&server, "POST", path, &bearer(&sub_only), b"x");
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));
    let r = send(&server, "POST", path, &bearer(&both), b"x");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(&server, "POST", path, &bearer("backend-secret"), b"x");
    assert_eq!(r.status, 200, "{}", r.text());
    // Even a public topic needs a token to publish.
    let r = send(&server, "POST", "/publish?topic=public.news", "", b"x");
    assert_eq!(r.status, 401);
}

fn ws_request(
    server: &TestServer,
    path: &str,
    header: Option<(&'static str, String)>,
) -> tungstenite::handshake::client::Request {
    let mut req = format!("ws://{}{}", server.addr, path)
        .into_client_request()
        .unwrap();
    if let Some((name, value)) = header {
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    req
}

/// The WebSocket handshake is refused before the upgrade (401/403); with
/// the cookie it opens, and text publishes only where the claim allows
/// (otherwise close 1008).
#[test]
fn websocket_handshakes_and_publishes_are_checked() {
    let server = TestServer::start(config());
    let path = "/ws?topic=user.42.inbox";
    let refused = |header: Option<(&'static str, String)>, status: u16| {
        let req = ws_request(&server, path, header);
        match tungstenite::client(req, server.connect()) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
                assert_eq!(r.status(), status);
                if status == 401 {
                    assert!(r.headers().contains_key("www-authenticate"));
                }
            }
            other => panic!(
                "expected {status}, got {:?}",
                other.map(|(_, r)| r.status())
            ),
        }
    };
    refused(None, 401);
    refused(
        Some((
            "Cookie",
            format!("pushlab_token={}", token(&["user.42.*"], &[], -60)),
        )),
        401,
    );
    refused(
        Some((
            "Cookie",
            format!("pushlab_token={}", token(&["x"], &[], 60)),
        )),
        403,
    );

    // Subscribe-only token by cookie: receives, but may not publish.
    let sub_only = token(&["user.42.*"], &[], 60);
    let req = ws_request(
        &server,
        path,
        Some(("Cookie", format!("pushlab_token={sub_only}"))),
    );
    let (mut ws, r) = tungstenite::client(req, server.connect()).expect("handshake");
    assert_eq!(r.status(), 101);
    server.publish_as(&token(&[], &["user.42.*"], 60), "user.42.inbox", "hello");
    assert!(read_text(&mut ws).contains("\"data\":\"hello\""));
    ws.send(Message::text("mine")).unwrap();
    assert_eq!(read_close(&mut ws), 1008);

    // A token granting publish, by header.
    let both = token(&["user.42.*"], &["user.42.*"], 60);
    let req = ws_request(
        &server,
        path,
        Some(("Authorization", format!("Bearer {both}"))),
    );
    let (mut ws, _) = tungstenite::client(req, server.connect()).expect("handshake");
    ws.send(Message::text("from ws")).unwrap();
    assert!(read_text(&mut ws).contains("\"data\":\"from ws\""));
    // Another topic of the same connection outside the publish claim.
    let multi = "/ws?topic=user.42.inbox,public.news";
    let req = ws_request(
        &server,
        multi,
        Some(("Authorization", format!("Bearer {both}"))),
    );
    let (mut ws, _) = tungstenite::client(req, server.connect()).expect("handshake");
    ws.send(Message::text(r#"{"topic":"public.news","data":"x"}"#))
        .unwrap();
    assert_eq!(read_close(&mut ws), 1008);
}

fn read_text(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> String {
    loop {
        match ws.read().expect("read a message") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn read_close(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> u16 {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map_or(1005, |f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

trait PublishAs {
    fn publish_as(&self, token: &str, topic: &str, data: &str);
}

impl PublishAs for TestServer {
    fn publish_as(&self, token: &str, topic: &str, data: &str) {
        let r = send(
            self,
            "POST",
            &format!("/publish?topic={topic}"),
            &bearer(token),
            data.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// `--admin-token-file`: `/stats`, `/metrics` and `/trace` need the admin
/// token in the header, from loopback too; publish and subscribe tokens
/// do not open them. The trace shows paths, never queries (topics,
/// `access_token`).
#[test]
fn operator_endpoints_need_the_admin_token() {
    let mut config = config();
    config.admin_token = pushlab::auth::Secret::from_file_bytes(b"admin-s3cret\n");
    config.allow_query_token = true;
    let server = TestServer::start(config);
    let jwt = token(&["*"], &["*"], 60);
    for path in ["/stats", "/metrics", "/trace"] {
        let (status, h) = stream_head(&server, path, "");
        assert_eq!(status, 401, "{path}");
        assert!(www_authenticate(&h).is_some(), "{path}");
        assert_eq!(stream_head(&server, path, &bearer(&jwt)).0, 401, "{path}");
        assert_eq!(
            stream_head(&server, path, &bearer("admin-s3cret")).0,
            200,
            "{path}"
        );
        assert_eq!(
            stream_head(&server, path, "Authorization: BEARER admin-s3cret\r\n").0,
            200
        );
    }
    // A trace watcher sees the request's path, not its query.
    let mut watch = server.connect();
    watch
        .write_all(b"GET /trace HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer admin-s3cret\r\n\r\n")
        .unwrap();
    let mut watch = BufReader::new(watch);
    assert_eq!(read_head(&mut watch).0, 200);
    let secret_query = format!("/poll?topic=user.42.secret&access_token={jwt}");
    assert_eq!(send(&server, "GET", &secret_query, "", b"").status, 200);
    let mut seen = String::new();
    while !seen.contains("GET /poll") {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut watch, &mut line).unwrap();
        seen.push_str(&line);
    }
    assert!(!seen.contains("user.42.secret"), "{seen}");
    assert!(!seen.contains(&jwt), "{seen}");
}

/// Publishes `count` messages (`"0"`, `"1"`, …) to `topic` from another
/// thread, one every 40 ms, with `token`: a steady stream that outlives a
/// token of a couple of seconds. Returns the ids, in order.
fn publish_steadily(
    server: &TestServer,
    token: String,
    topic: &'static str,
    count: usize,
) -> std::thread::JoinHandle<Vec<String>> {
    let addr = server.addr;
    std::thread::spawn(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(common::io_timeout())).unwrap();
        let mut reader = BufReader::new(s);
        let mut ids = Vec::new();
        for i in 0..count {
            let body = i.to_string();
            let head = format!(
                "POST /publish?topic={topic} HTTP/1.1\r\nHost: t\r\n{}Content-Length: {}\r\n\r\n{body}",
                bearer(&token),
                body.len()
            );
            reader.get_mut().write_all(head.as_bytes()).unwrap();
            let r = read_response(&mut reader);
            assert_eq!(r.status, 200, "{}", r.text());
            ids.push(r.json()["id"].as_str().unwrap().to_string());
            // Pacing, so that the messages span the token's expiry.
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        ids
    })
}

fn unix_now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Checks that a stream ended at its token's `exp` (leeway 0): not
/// before, and not long after.
fn assert_ended_at_expiry(exp: u64, what: &str) {
    let ended = unix_now_ms();
    let exp_ms = u128::from(exp) * 1000;
    // The server's Unix time is the wall clock read at its start plus its
    // monotonic clock: a few milliseconds of drift at most.
    assert!(
        ended + 50 >= exp_ms,
        "{what} ended {} ms early",
        exp_ms - ended
    );
    assert!(
        ended < exp_ms + common::io_timeout().as_millis(),
        "{what} ended {} ms late",
        ended - exp_ms
    );
}

/// An SSE stream opened with a token that expires in about two seconds
/// ends when it expires (not before); the client, refused with the old
/// token, comes back with a fresh one and its `Last-Event-ID` and gets every
/// message published meanwhile, once and in order.
#[test]
fn an_sse_stream_ends_when_its_token_expires_and_resumes_with_a_fresh_one() {
    use pushlab::wire::sse::{Decoded, Parser};
    use std::io::BufRead;
    const COUNT: usize = 75;
    let server = TestServer::start(config());
    let topic = "user.42.inbox";
    let target = format!("/events?topic={topic}");
    // `exp` has one-second resolution: this token has 1 to 2 s left.
    let exp = unix_now() + 2;
    let short = token_until(&["user.42.*"], &[], exp as i64);
    let publisher_token = token(&[], &["user.42.*"], 60);
    let mut publisher = None;

    let mut parser = Parser::new();
    let mut got: Vec<String> = Vec::new();
    let mut per_stream = Vec::new();
    let mut headers = cookie(&short);
    for stream in 0.. {
        assert!(stream < 3, "more reconnections than token expiries");
        let mut s = server.connect();
        let req = format!("GET {target} HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        assert_eq!(read_head(&mut r).0, 200);
        // Subscribed "from now on": publishing starts now.
        publisher.get_or_insert_with(|| {
            publish_steadily(&server, publisher_token.clone(), topic, COUNT)
        });
        let before = got.len();
        // Until the server ends the stream, or the last message arrives.
        loop {
            let buf = r.fill_buf().expect("the stream is read without error");
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            parser.feed(buf);
            r.consume(n);
            while let Decoded::Event(e) = parser.next_event().unwrap() {
                got.push(e.data);
            }
            if got.len() == COUNT {
                break;
            }
        }
        per_stream.push(got.len() - before);
        if got.len() == COUNT {
            break;
        }
        // The stream ended: the token's expiry, not before.
        assert_eq!(stream, 0, "only the short token's stream ends");
        assert_ended_at_expiry(exp, "the SSE stream");
        parser.end_of_stream();
        let last = format!("Last-Event-ID: {}\r\n", parser.last_event_id());
        let (status, h) = stream_head(&server, &target, &(cookie(&short) + &last));
        assert_eq!(status, 401, "the expired token is refused");
        assert!(www_authenticate(&h).unwrap().contains("invalid_token"));
        headers = cookie(&token(&["user.42.*"], &[], 60)) + &last;
    }
    publisher.unwrap().join().unwrap();
    let expected: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "every message, once, in order");
    assert!(
        per_stream.len() == 2 && per_stream.iter().all(|&n| n > 0),
        "the expiry fell mid-stream: {per_stream:?}"
    );
    let stats = server.stats();
    assert_eq!(stats["transports"]["sse"]["token_expiry_closes"], 1);
    assert_eq!(stats["transports"]["sse"]["gaps_reported"], 0);
}

/// The same over `/ws`: the server closes with 4401 "token expired" at
/// expiry; the client reconnects with a fresh cookie and `since` = the last
/// id it received, and misses nothing.
#[test]
fn a_websocket_closes_with_4401_when_its_token_expires_and_resumes_with_a_fresh_one() {
    const COUNT: usize = 75;
    let server = TestServer::start(config());
    let topic = "user.42.inbox";
    let exp = unix_now() + 2;
    let short = token_until(&["user.42.*"], &[], exp as i64);
    let publisher_token = token(&[], &["user.42.*"], 60);
    let mut publisher = None;

    let mut got: Vec<String> = Vec::new();
    let mut last_id = String::new();
    let mut per_connection = Vec::new();
    let mut path = format!("/ws?topic={topic}");
    let mut jwt = short.clone();
    for connection in 0.. {
        assert!(connection < 3, "more reconnections than token expiries");
        let req = ws_request(
            &server,
            &path,
            Some(("Cookie", format!("pushlab_token={jwt}"))),
        );
        let (mut ws, _) = tungstenite::client(req, server.connect()).expect("handshake");
        // Subscribed "from now on": publishing starts now.
        publisher.get_or_insert_with(|| {
            publish_steadily(&server, publisher_token.clone(), topic, COUNT)
        });
        let before = got.len();
        let close = loop {
            match ws.read().expect("read a message") {
                Message::Text(t) => {
                    let m: serde_json::Value = serde_json::from_str(&t).unwrap();
                    got.push(m["data"].as_str().unwrap().to_string());
                    last_id = m["id"].as_str().unwrap().to_string();
                    if got.len() == COUNT {
                        break None;
                    }
                }
                Message::Close(frame) => break frame,
                _ => continue,
            }
        };
        per_connection.push(got.len() - before);
        let Some(frame) = close else {
            break;
        };
        assert_eq!(connection, 0, "only the short token's connection closes");
        assert_ended_at_expiry(exp, "the WebSocket");
        assert_eq!(u16::from(frame.code), 4401);
        assert_eq!(&*frame.reason, "token expired");
        path = format!("/ws?topic={topic}&since={last_id}");
        // The old token no longer opens a connection.
        let req = ws_request(
            &server,
            &path,
            Some(("Cookie", format!("pushlab_token={jwt}"))),
        );
        match tungstenite::client(req, server.connect()) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
                assert_eq!(r.status(), 401)
            }
            other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
        }
        jwt = token(&["user.42.*"], &[], 60);
    }
    publisher.unwrap().join().unwrap();
    let expected: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "every message, once, in order");
    assert!(
        per_connection.len() == 2 && per_connection.iter().all(|&n| n > 0),
        "the expiry fell mid-stream: {per_connection:?}"
    );
    common::wait_until("the closed connection counted", || {
        server.stats()["transports"]["ws"]["close_codes"]["4401"] == 1
    });
}
