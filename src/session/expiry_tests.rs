//! Streams opened with a token end when the token does, with a virtual
//! clock: an SSE stream ends, a `/ws` connection closes with 4401, a parked
//! long poll is answered, each exactly at `exp` + `--jwt-leeway` and not a
//! microsecond before; a client that comes back with a fresh token and its
//! cursor gets what was published meanwhile (docs/security.md § "When a
//! token expires").
//!
//! The rig's clock starts at Unix time [`RIG_WALL_ORIGIN_MS`], so a token
//! with `exp = ORIGIN + n` expires at `ms(n * 1000)` (leeway 0).

use std::time::Duration;

use super::websocket::{TOKEN_EXPIRED, TOKEN_EXPIRED_REASON};
use super::*;
use crate::auth::{sign_hs256, Key, Policy, TopicPattern, Verifier};
use crate::testkit::{ms, split_head, Rig, RIG_WALL_ORIGIN_MS};
use crate::wire::sse::{Decoded, Parser};
use crate::wire::websocket::{encode_masked_frame, ControlOpcode, Event, Opcode, Protocol, Role};

const SECRET: &[u8] = b"a-session-test-secret-of-32-bytes+";
/// The rig's [`Instant::ZERO`] in Unix seconds.
const ORIGIN: u64 = RIG_WALL_ORIGIN_MS / 1000;

/// A key with `leeway` seconds of skew, `pub.*` public; heartbeats and
/// pings far away, so the only deadline that matters is the token's.
fn rig(leeway: u64) -> Rig {
    Rig::new(Config {
        auth: Policy {
            verifier: Some(Verifier::new(Key::hs256(SECRET).unwrap(), None, leeway)),
            public_topics: vec![TopicPattern::parse("pub.*").unwrap()],
        },
        heartbeat: Duration::from_secs(3600),
        ws_ping: Duration::ZERO,
        ..Config::default()
    })
}

/// A token for topic `a` (subscribe and publish) with `exp` = `exp`.
fn token(exp: u64) -> String {
    let claims = format!(r#"{{"exp":{exp},"pushlab":{{"subscribe":["a"],"publish":["a"]}}}}"#);
    sign_hs256(SECRET, br#"{"alg":"HS256"}"#, claims.as_bytes())
}

fn cookie(token: &str) -> String {
    format!("Cookie: pushlab_token={token}\r\n")
}

/// Connection `id` sends `GET target` with `headers`; its status and the
/// bytes after the head.
fn get(rig: &mut Rig, id: usize, target: &str, headers: &str) -> (Session, u16, Vec<u8>) {
    let mut s = Session::new(id, rig.now, &rig.config);
    let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
    s.handle_input(req.as_bytes(), &mut rig.ctx());
    let (head, body) = split_head(&s.output().take_all());
    let status = head[9..12].parse().unwrap();
    (s, status, body)
}

const WS_HEADERS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                          Sec-WebSocket-Version: 13\r\n";

/// The data of the events in `body`.
fn sse_datas(body: &[u8]) -> Vec<String> {
    let mut parser = Parser::new();
    parser.feed(body);
    let mut out = Vec::new();
    while let Decoded::Event(e) = parser.next_event().unwrap() {
        out.push(e.data);
    }
    out
}

/// What a client decodes from the server's WebSocket bytes.
fn ws_events(bytes: &[u8]) -> Vec<Event> {
    let mut client = Protocol::new(Role::Client, 1 << 20);
    client.receive_data(bytes);
    let mut events = Vec::new();
    loop {
        match client.next_event().unwrap() {
            Event::NeedData => return events,
            e => events.push(e),
        }
    }
}

#[test]
fn an_sse_stream_ends_exactly_when_its_token_expires() {
    for leeway in [0, 5] {
        let mut rig = rig(leeway);
        rig.now = ms(3_500);
        let t = token(ORIGIN + 10);
        let (mut s, status, _) = get(&mut rig, 1, "/events?topic=a", &cookie(&t));
        assert_eq!(status, 200);
        let expiry = ms((10 + leeway) * 1000);
        assert_eq!(s.next_deadline(), Some(expiry), "leeway {leeway}");
        // A microsecond before: still streaming.
        rig.advance(&mut s, Instant::from_micros(expiry.as_micros() - 1));
        rig.publish_to("a", "before", &mut [&mut s]);
        assert_eq!(s.lifecycle(), Lifecycle::Open);
        assert_eq!(sse_datas(&s.output().take_all()), ["before"]);
        rig.advance(&mut s, expiry);
        assert_eq!(s.lifecycle(), Lifecycle::Closing, "leeway {leeway}");
        assert_eq!(s.next_deadline(), None, "nothing more fires");
        assert_eq!(rig.stats.get(Transport::Sse).token_expiry_closes, 1);
        assert_eq!(rig.stats.get(Transport::Sse).max_lifetime_closes, 0);
        rig.publish_to("a", "after", &mut [&mut s]);
        assert!(s.output().is_empty(), "nothing is written after expiry");
    }
}

#[test]
fn an_expired_stream_resumes_with_a_fresh_token_and_its_last_event_id() {
    let mut rig = rig(0);
    let old = token(ORIGIN + 10);
    let (mut s, _, _) = get(&mut rig, 1, "/events?topic=a", &cookie(&old));
    let first = rig.publish("a", "one");
    s.handle_message(&first, &mut rig.ctx());
    rig.advance(&mut s, ms(10_000));
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
    s.handle_close(&mut rig.ctx());
    // Published while the client is away.
    rig.publish("a", "two");
    rig.publish("a", "three");
    let last = format!("Last-Event-ID: {}\r\n", first.id);
    let (_, status, body) = get(&mut rig, 2, "/events?topic=a", &(cookie(&old) + &last));
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    let fresh = token(ORIGIN + 60);
    let (s, status, body) = get(&mut rig, 3, "/events?topic=a", &(cookie(&fresh) + &last));
    assert_eq!(status, 200);
    assert_eq!(
        sse_datas(&body),
        ["two", "three"],
        "nothing lost, nothing twice"
    );
    assert_eq!(s.next_deadline(), Some(ms(60_000)));
}

#[test]
fn the_earliest_of_heartbeat_lifetime_and_expiry_comes_first() {
    let mut rig = rig(0);
    rig.config.heartbeat = Duration::from_secs(4);
    rig.config.sse_max_lifetime = Some(Duration::from_secs(3600));
    let (mut s, _, _) = get(&mut rig, 1, "/events?topic=a", &cookie(&token(ORIGIN + 10)));
    assert_eq!(s.next_deadline(), Some(ms(4_000)));
    rig.advance(&mut s, ms(4_000));
    rig.advance(&mut s, ms(8_000));
    assert_eq!(s.output().take_all(), b": ping\n\n: ping\n\n");
    assert_eq!(
        s.next_deadline(),
        Some(ms(10_000)),
        "expiry before the 3rd ping"
    );
    rig.advance(&mut s, ms(10_000));
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
    assert!(s.output().is_empty(), "no ping on the way out");
}

#[test]
fn streams_that_needed_no_token_never_expire() {
    let mut rig = rig(0);
    let t = token(ORIGIN + 10);
    // Public topics only: a token sent along is not even looked at.
    let (s, status, _) = get(&mut rig, 1, "/events?topic=pub.news", &cookie(&t));
    assert_eq!(status, 200);
    assert_eq!(s.next_deadline(), Some(ms(3_600_000)), "the heartbeat only");
    let (s, status, _) = get(
        &mut rig,
        2,
        "/ws?topic=pub.news",
        &(cookie(&t) + WS_HEADERS),
    );
    assert_eq!(status, 101);
    assert_eq!(s.next_deadline(), None);
    let (s, status, _) = get(&mut rig, 3, "/echo", &(cookie(&t) + WS_HEADERS));
    assert_eq!(status, 101);
    assert_eq!(s.next_deadline(), None);
    // No key configured: nothing is ever checked or expires.
    let mut open = Rig::new(Config::default());
    let (s, status, _) = get(&mut open, 4, "/ws?topic=a", &(cookie(&t) + WS_HEADERS));
    assert_eq!(status, 101);
    assert_eq!(s.next_deadline(), Some(ms(30_000)), "the ping only");
}

#[test]
fn a_websocket_closes_with_4401_exactly_when_its_token_expires() {
    let mut rig = rig(0);
    rig.now = ms(1_250);
    let t = token(ORIGIN + 5);
    let headers = format!("Authorization: Bearer {t}\r\n{WS_HEADERS}");
    let (mut s, status, _) = get(&mut rig, 1, "/ws?topic=a", &headers);
    assert_eq!(status, 101);
    assert_eq!(s.next_deadline(), Some(ms(5_000)));
    rig.advance(&mut s, Instant::from_micros(4_999_999));
    rig.publish_to("a", "before", &mut [&mut s]);
    assert_eq!(s.lifecycle(), Lifecycle::Open);
    let events = ws_events(&s.output().take_all());
    assert!(matches!(&events[..], [Event::Text(t)] if t.contains("\"before\"")));

    rig.advance(&mut s, ms(5_000));
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
    let events = ws_events(&s.output().take_all());
    assert_eq!(
        events,
        [Event::Close {
            code: Some(TOKEN_EXPIRED),
            reason: TOKEN_EXPIRED_REASON.into(),
        }]
    );
    assert_eq!(TOKEN_EXPIRED.0, 4401);
    assert!(TOKEN_EXPIRED.is_valid_on_wire());
    // Waiting for the peer's close now, not for the token any more.
    assert_eq!(
        s.next_deadline(),
        Some(ms(5_000) + websocket::CLOSE_TIMEOUT)
    );
    rig.publish_to("a", "after", &mut [&mut s]);
    assert!(s.output().is_empty(), "nothing is sent after the close");
    s.handle_close(&mut rig.ctx());
    assert_eq!(rig.stats.get(Transport::Ws).close_codes, [(4401, 1)]);
}

#[test]
fn a_websocket_whose_peer_closes_first_has_no_expiry_left() {
    let mut rig = rig(0);
    let headers = cookie(&token(ORIGIN + 5)) + WS_HEADERS;
    let (mut s, _, _) = get(&mut rig, 1, "/ws?topic=a", &headers);
    let mut close = Vec::new();
    encode_masked_frame(
        Opcode::Control(ControlOpcode::Close),
        true,
        [1, 2, 3, 4],
        &1000u16.to_be_bytes(),
        &mut close,
    );
    rig.now = ms(1_000);
    s.handle_input(&close, &mut rig.ctx());
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
    assert_eq!(
        s.next_deadline(),
        Some(ms(1_000) + websocket::CLOSE_TIMEOUT)
    );
}

/// Connection `id` sends `GET target` with `headers` and is parked.
fn park(rig: &mut Rig, id: usize, target: &str, headers: &str) -> Session {
    let mut s = Session::new(id, rig.now, &rig.config);
    let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
    s.handle_input(req.as_bytes(), &mut rig.ctx());
    assert!(s.is_parked(), "{target}");
    s
}

#[test]
fn a_parked_long_poll_is_answered_when_its_token_expires() {
    let mut rig = rig(0);
    rig.now = ms(2_000);
    // Asked to wait 60 s: the token allows 8 more.
    let t = cookie(&token(ORIGIN + 10));
    let mut s = park(&mut rig, 1, "/long-poll?topic=a&timeout=60s", &t);
    assert_eq!(s.next_deadline(), Some(ms(10_000)));
    rig.advance(&mut s, Instant::from_micros(9_999_999));
    assert!(s.is_parked());
    rig.advance(&mut s, ms(10_000));
    assert!(!s.is_parked());
    let (head, body) = split_head(&s.output().take_all());
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["messages"], serde_json::json!([]));
    // The next poll with the same token is refused.
    let (_, status, _) = get(&mut rig, 2, "/long-poll?topic=a&timeout=60s", &t);
    assert_eq!(status, 401);
    // A hold shorter than the token's life keeps its own deadline.
    let t = cookie(&token(ORIGIN + 600));
    let s = park(&mut rig, 3, "/long-poll?topic=a&timeout=5s", &t);
    assert_eq!(s.next_deadline(), Some(ms(15_000)));
}

#[test]
fn an_expiry_beyond_the_clock_saturates_instead_of_overflowing() {
    let mut rig = rig(30);
    let mut at = |unix| rig.ctx().instant_of_unix(unix);
    assert_eq!(at(0), Instant::ZERO);
    assert_eq!(at(ORIGIN), Instant::ZERO);
    assert_eq!(at(ORIGIN + 2), ms(2_000));
    let far = at(u64::MAX);
    assert_eq!(far, Instant::from_micros(u64::MAX));
    // A token that claims to last for ever: accepted, and it never fires.
    let (s, status, _) = get(
        &mut rig,
        1,
        "/ws?topic=a",
        &(cookie(&token(u64::MAX)) + WS_HEADERS),
    );
    assert_eq!(status, 101);
    assert_eq!(s.next_deadline(), Some(far));
}
