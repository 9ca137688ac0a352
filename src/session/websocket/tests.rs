//! A WebSocket session driven by hand: a memory hub (`Hub::memory`), a virtual clock and
//! no socket. Client frames are masked with `encode_masked_frame`; what the
//! server writes is read back with the codec in the client role, which
//! refuses masked frames, so every test also checks that the server never
//! masks.

use super::*;
use crate::config::{Config, DEFAULT_MAX_PIPELINED_BYTES};
use crate::stats::Counters;
use crate::testkit::{self, ms, Rig};
use crate::wire::websocket::{encode_masked_frame, ControlOpcode};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const PING: Opcode = Opcode::Control(ControlOpcode::Ping);
const PONG: Opcode = Opcode::Control(ControlOpcode::Pong);
const CLOSE: Opcode = Opcode::Control(ControlOpcode::Close);

/// The WebSocket side of the shared [`Rig`].
trait WsRig {
    /// Connection `id` sends a request head for `target` with the RFC 6455
    /// §1.2 handshake headers, less those named in `without`, plus `extra`
    /// (each ending in CRLF), then `after` (pipelined bytes).
    fn request(
        &mut self,
        id: usize,
        target: &str,
        without: &[&str],
        extra: &str,
        after: &[u8],
    ) -> Session;
    /// An accepted WebSocket on `target`, its `101` already taken out.
    fn open(&mut self, id: usize, target: &str) -> Session;
    fn send(&mut self, s: &mut Session, frame: &[u8]);
    /// Fans out what the sessions published during their last calls.
    fn fan_out(&mut self, sessions: &mut [&mut Session]);
    fn ws(&self) -> &Counters;
}

impl WsRig for Rig {
    fn request(
        &mut self,
        id: usize,
        target: &str,
        without: &[&str],
        extra: &str,
        after: &[u8],
    ) -> Session {
        let mut s = Session::new(id, self.now, &self.config);
        let mut head = format!("GET {target} HTTP/1.1\r\nHost: server.example.com\r\n");
        for (name, value) in [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ] {
            if !without.contains(&name) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str(extra);
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(after);
        s.handle_input(&bytes, &mut self.ctx());
        s
    }

    fn open(&mut self, id: usize, target: &str) -> Session {
        let mut s = self.request(id, target, &[], "", b"");
        let (status, _, _) = split_head(&s.output().take_all());
        assert_eq!(status, 101);
        s
    }

    fn send(&mut self, s: &mut Session, frame: &[u8]) {
        s.handle_input(frame, &mut self.ctx());
        self.commit_to(s);
    }

    fn fan_out(&mut self, sessions: &mut [&mut Session]) {
        for msg in std::mem::take(&mut self.published) {
            for s in sessions.iter_mut() {
                s.handle_message(&msg, &mut self.ctx());
            }
        }
    }

    fn ws(&self) -> &Counters {
        self.stats.get(Transport::Ws)
    }
}

/// A masked client frame.
fn client(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_masked_frame(opcode, true, MASK, payload, &mut out);
    out
}

fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    client(CLOSE, &payload)
}

/// Status, head text, and the bytes after the head.
fn split_head(bytes: &[u8]) -> (u16, String, Vec<u8>) {
    let (head, rest) = testkit::split_head(bytes);
    let status = head[9..12].parse().unwrap();
    (status, head, rest)
}

/// What a client decodes from server bytes (which must be unmasked).
fn events(bytes: &[u8]) -> Vec<Event> {
    let mut client = Protocol::new(Role::Client, 1 << 30);
    client.receive_data(bytes);
    let mut events = Vec::new();
    loop {
        match client.next_event() {
            Ok(Event::NeedData) => return events,
            Ok(e) => events.push(e),
            Err(e) => panic!("server bytes broke {e}: {bytes:?}"),
        }
    }
}

fn output_events(s: &mut Session) -> Vec<Event> {
    events(&s.output().take_all())
}

fn text(s: &str) -> Event {
    Event::Text(s.into())
}

fn close_event(code: u16, reason: &str) -> Event {
    Event::Close {
        code: Some(CloseCode(code)),
        reason: reason.into(),
    }
}

/// The code of a lone close frame; `None` for any other `events`.
fn close_code_of(events: &[Event]) -> Option<u16> {
    match events {
        [Event::Close { code: Some(c), .. }] => Some(c.0),
        _ => None,
    }
}

fn json(e: &Event) -> serde_json::Value {
    let Event::Text(t) = e else {
        panic!("expected text, got {e:?}")
    };
    serde_json::from_str(t).unwrap()
}

// The opening handshake.

#[test]
fn the_rfc_example_handshake_is_accepted_with_the_rfc_accept_key() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.request(
        3,
        "/echo",
        &[],
        "Origin: http://server.example.com\r\n",
        b"",
    );
    let (status, head, rest) = split_head(&s.output().take_all());
    assert_eq!(status, 101);
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        )
    );
    assert!(rest.is_empty());
    assert!(matches!(s.state, State::WebSocket(_)));
    assert_eq!(s.transport(), Transport::Ws);
    assert_eq!(rig.ws().requests, 1);
    assert_eq!(s.lifecycle(), Lifecycle::Open);
}

#[test]
fn a_missing_or_unknown_version_is_426_naming_version_13() {
    let mut rig = Rig::new(Config::default());
    for extra in ["", "Sec-WebSocket-Version: 8\r\n"] {
        let mut s = rig.request(1, "/echo", &["Sec-WebSocket-Version"], extra, b"");
        let (status, head, body) = split_head(&s.output().take_all());
        assert_eq!(status, 426, "{extra}");
        assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{head}");
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("Sec-WebSocket-Version"));
        // A well-framed request: the connection stays for the next one.
        assert_eq!(s.lifecycle(), Lifecycle::Open);
        assert!(matches!(s.state, State::Head { .. }));
    }
}

#[test]
fn malformed_handshakes_are_400_and_keep_the_connection() {
    let mut rig = Rig::new(Config::default());
    let cases: [(&[&str], &str); 4] = [
        (&["Upgrade"], ""),
        (&["Connection"], ""),
        (&["Sec-WebSocket-Key"], ""),
        (&["Sec-WebSocket-Key"], "Sec-WebSocket-Key: c2hvcnQ=\r\n"),
    ];
    for (without, extra) in cases {
        let mut s = rig.request(1, "/ws?topic=a", without, extra, b"");
        let (status, _, _) = split_head(&s.output().take_all());
        assert_eq!(status, 400, "{without:?} {extra}");
        assert_eq!(s.lifecycle(), Lifecycle::Open);
    }
    assert_eq!(rig.hub.topic_count(), 0, "nothing stays subscribed");
}

#[test]
fn http_1_0_is_refused_and_closed() {
    let mut rig = Rig::new(Config::default());
    let mut s = Session::new(1, rig.now, &rig.config);
    let req = format!(
        "GET /echo HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.handle_input(req.as_bytes(), &mut rig.ctx());
    let (status, _, _) = split_head(&s.output().take_all());
    assert_eq!(status, 400);
    assert_eq!(
        s.lifecycle(),
        Lifecycle::Closing,
        "HTTP/1.0 without keep-alive"
    );
}

#[test]
fn another_method_is_405_with_allow_get() {
    let mut rig = Rig::new(Config::default());
    let mut s = Session::new(1, rig.now, &rig.config);
    s.handle_input(
        b"POST /ws?topic=a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        &mut rig.ctx(),
    );
    let (status, head, _) = split_head(&s.output().take_all());
    assert_eq!(status, 405);
    assert!(head.contains("\r\nAllow: GET\r\n"), "{head}");
}

#[test]
fn a_foreign_origin_is_403_unless_allowed() {
    let mut rig = Rig::new(Config::default());
    for origin in [
        "https://evil.example",
        "null",
        "http://server.example.com.evil",
    ] {
        let extra = format!("Origin: {origin}\r\n");
        let mut s = rig.request(1, "/ws?topic=a", &[], &extra, b"");
        let (status, _, body) = split_head(&s.output().take_all());
        assert_eq!(status, 403, "{origin}");
        assert!(String::from_utf8(body).unwrap().contains(origin));
        assert_eq!(s.lifecycle(), Lifecycle::Open);
    }
    assert_eq!(rig.hub.topic_count(), 0);
    // Same origin, and no Origin at all (not a browser), are fine.
    for extra in ["Origin: http://server.example.com\r\n", ""] {
        let mut s = rig.request(2, "/echo", &[], extra, b"");
        assert_eq!(split_head(&s.output().take_all()).0, 101);
    }
    let mut rig = Rig::new(Config {
        allow_origins: vec!["https://app.example".into()],
        ..Config::default()
    });
    let mut s = rig.request(1, "/echo", &[], "Origin: https://app.example\r\n", b"");
    assert_eq!(split_head(&s.output().take_all()).0, 101);
    let mut s = rig.request(1, "/echo", &[], "Origin: https://other.example\r\n", b"");
    assert_eq!(split_head(&s.output().take_all()).0, 403);
}

#[test]
fn bad_ws_parameters_are_400() {
    let mut rig = Rig::new(Config::default());
    for target in ["/ws", "/ws?topic=a%20b", "/ws?topic=a&since=nope"] {
        let mut s = rig.request(1, target, &[], "", b"");
        assert_eq!(split_head(&s.output().take_all()).0, 400, "{target}");
    }
}

#[test]
fn frames_pipelined_behind_the_handshake_are_read() {
    let mut rig = Rig::new(Config::default());
    let mut after = client(TEXT, b"early");
    after.extend(client(PING, b"p"));
    let mut s = rig.request(1, "/echo", &[], "", &after);
    let (status, _, rest) = split_head(&s.output().take_all());
    assert_eq!(status, 101);
    assert_eq!(events(&rest), [text("early"), Event::Pong(b"p".to_vec())]);
}

// Echo.

#[test]
fn echo_sends_every_message_back_with_its_opcode_unmasked() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/echo");
    rig.send(&mut s, &client(TEXT, "héllo".as_bytes()));
    rig.send(&mut s, &client(BINARY, &[0, 0xff, 7]));
    let out = s.output().take_all();
    // RFC 6455 §5.7: a single-frame unmasked text message.
    assert_eq!(&out[..2], [0x81, 6]);
    assert_eq!(
        events(&out),
        [text("héllo"), Event::Binary(vec![0, 0xff, 7])]
    );
    assert_eq!((rig.ws().frames_in, rig.ws().frames_out), (2, 2));
}

#[test]
fn a_fragmented_message_is_echoed_whole() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/echo");
    let mut bytes = Vec::new();
    encode_masked_frame(TEXT, false, MASK, b"Hel", &mut bytes);
    encode_masked_frame(PING, true, MASK, b"", &mut bytes);
    encode_masked_frame(
        Opcode::Data(DataOpcode::Continue),
        true,
        MASK,
        b"lo",
        &mut bytes,
    );
    for b in bytes.chunks(3) {
        rig.send(&mut s, b);
    }
    assert_eq!(output_events(&mut s), [Event::Pong(vec![]), text("Hello")]);
}

// Pub/sub.

#[test]
fn a_text_message_on_ws_is_published_and_comes_back_as_json() {
    let mut rig = Rig::new(Config::default());
    let mut a = rig.open(1, "/ws?topic=news");
    let mut b = rig.open(2, "/ws?topic=news");
    rig.send(&mut a, &client(TEXT, b"hello \"all\""));
    assert_eq!(rig.published.len(), 1);
    assert_eq!(rig.stats.messages_published, 1);
    rig.fan_out(&mut [&mut a, &mut b]);
    for s in [&mut a, &mut b] {
        let got = output_events(s);
        assert_eq!(got.len(), 1);
        assert_eq!(
            json(&got[0]),
            serde_json::json!({"topic": "news", "id": "e1-1", "data": "hello \"all\""})
        );
    }
    assert_eq!(rig.ws().messages_delivered, 2);
}

#[test]
fn a_message_is_encoded_once_and_shared_by_every_subscriber() {
    let mut rig = Rig::new(Config::default());
    let mut a = rig.open(1, "/ws?topic=t");
    let mut b = rig.open(2, "/ws?topic=t");
    let msg = rig.publish("t", "x");
    a.handle_message(&msg, &mut rig.ctx());
    b.handle_message(&msg, &mut rig.ctx());
    let frame = msg.encoded.ws_frame.get().expect("encoded");
    // One in the message, one in each queue, one here: a refcount bump,
    // not a copy.
    assert_eq!(Rc::strong_count(&frame), 4);
    assert_eq!(&frame[2..], &*crate::session::encoded::json(&msg));
}

#[test]
fn several_topics_publish_json_naming_one_of_them() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a,b");
    rig.send(&mut s, &client(TEXT, br#"{"topic":"b","data":"hi"}"#));
    assert_eq!(rig.published.len(), 1);
    assert_eq!(
        (&*rig.published[0].topic, &*rig.published[0].data),
        ("b", "hi")
    );
    rig.fan_out(&mut [&mut s]);
    assert_eq!(json(&output_events(&mut s)[0])["topic"], "b");
    for bad in [
        r#"{"topic":"c","data":"x"}"#,
        r#"{"data":"x"}"#,
        "plain",
        r#"{"topic":"a","data":1}"#,
    ] {
        let mut s = rig.open(2, "/ws?topic=a,b");
        rig.send(&mut s, &client(TEXT, bad.as_bytes()));
        let got = output_events(&mut s);
        assert_eq!(close_code_of(&got), Some(1008), "{bad}: {got:?}");
        assert_eq!(s.lifecycle(), Lifecycle::Closing);
    }
    assert!(rig.published.is_empty());
    assert_eq!(rig.hub.head(), 1, "only the good one was published");
}

#[test]
fn with_a_publish_token_only_a_handshake_that_carries_it_may_publish() {
    let mut rig = Rig::new(Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    });
    let mut reader = rig.open(1, "/ws?topic=a");
    rig.send(&mut reader, &client(TEXT, b"x"));
    assert_eq!(
        output_events(&mut reader),
        [close_event(1008, "publishing needs the publish token")]
    );
    let mut s = rig.request(
        2,
        "/ws?topic=a",
        &[],
        "Authorization: Bearer s3cret\r\n",
        b"",
    );
    s.output().take_all();
    rig.send(&mut s, &client(TEXT, b"x"));
    assert_eq!(rig.published.len(), 1);
    assert_eq!(s.lifecycle(), Lifecycle::Open);
}

#[test]
fn a_message_over_max_message_closes_with_1009() {
    let mut rig = Rig::new(Config {
        max_message: 10,
        ..Config::default()
    });
    let mut s = rig.open(1, "/ws?topic=a");
    rig.send(&mut s, &client(TEXT, b"0123456789a"));
    let got = output_events(&mut s);
    assert_eq!(close_code_of(&got), Some(1009), "{got:?}");
    assert!(rig.published.is_empty());
    // The echo endpoint takes up to --ws-max-message.
    let mut e = rig.open(2, "/echo");
    rig.send(&mut e, &client(TEXT, b"0123456789a"));
    assert_eq!(output_events(&mut e), [text("0123456789a")]);
}

#[test]
fn since_replays_what_is_kept_after_the_cursor_then_goes_live() {
    let mut rig = Rig::new(Config::default());
    for d in ["1", "2", "3"] {
        rig.publish("a", d);
    }
    let mut s = rig.request(1, "/ws?topic=a&since=e1-1", &[], "", b"");
    let (_, _, rest) = split_head(&s.output().take_all());
    let got: Vec<_> = events(&rest)
        .iter()
        .map(|e| json(e)["data"].clone())
        .collect();
    assert_eq!(got, ["2", "3"]);
    rig.publish_to("a", "4", &mut [&mut s]);
    assert_eq!(json(&output_events(&mut s)[0])["id"], "e1-4");
    assert_eq!(rig.ws().resumes, 1);
    assert_eq!(rig.ws().messages_delivered, 3);
}

#[test]
fn evicted_messages_are_announced_as_missed_and_a_foreign_cursor_as_reset() {
    let mut rig = Rig::new(Config {
        history: 2,
        ..Config::default()
    });
    for d in ["1", "2", "3", "4", "5"] {
        rig.publish("a", d);
    }
    let mut s = rig.request(1, "/ws?topic=a&since=e1-1", &[], "", b"");
    let (_, _, rest) = split_head(&s.output().take_all());
    let got = events(&rest);
    assert_eq!(json(&got[0]), serde_json::json!({"missed": 2}));
    assert_eq!(json(&got[1])["data"], "4");
    assert_eq!(got.len(), 3);

    let mut s = rig.request(2, "/ws?topic=a&since=old-9", &[], "", b"");
    let (_, _, rest) = split_head(&s.output().take_all());
    let got = events(&rest);
    assert_eq!(json(&got[0]), serde_json::json!({"reset": true}));
    assert_eq!(json(&got[1])["data"], "4");
    assert_eq!((rig.ws().gaps_reported, rig.ws().resets_reported), (1, 1));
}

#[test]
fn a_message_in_the_replay_is_not_sent_again_when_it_arrives_live() {
    let mut rig = Rig::new(Config::default());
    let msg = rig.publish("a", "once");
    let mut s = rig.request(1, "/ws?topic=a&since=0", &[], "", b"");
    s.handle_message(&msg, &mut rig.ctx());
    let (_, _, rest) = split_head(&s.output().take_all());
    assert_eq!(events(&rest).len(), 1);
}

// Liveness.

#[test]
fn a_client_ping_gets_a_pong_with_its_payload() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a");
    rig.send(&mut s, &client(PING, b"are you there"));
    assert_eq!(
        output_events(&mut s),
        [Event::Pong(b"are you there".to_vec())]
    );
}

#[test]
fn the_server_pings_every_interval_and_counts_pongs() {
    let mut rig = Rig::new(Config::default()); // ws_ping 30 s
    let mut s = rig.open(1, "/echo");
    assert_eq!(s.next_deadline(), Some(ms(30_000)));
    rig.advance(&mut s, ms(30_000));
    let got = output_events(&mut s);
    let [Event::Ping(payload)] = &got[..] else {
        panic!("expected a ping: {got:?}")
    };
    rig.now = ms(30_005);
    rig.send(&mut s, &client(PONG, payload));
    assert_eq!(rig.ws().pongs_received, 1);
    let pong = rig
        .tracer
        .events
        .iter()
        .rfind(|e| e.kind == "frame")
        .unwrap();
    assert_eq!(pong.detail, "in pong rtt_us=5000");
    rig.advance(&mut s, ms(60_000));
    assert!(matches!(&output_events(&mut s)[..], [Event::Ping(_)]));
    assert_eq!(s.lifecycle(), Lifecycle::Open);
    assert_eq!(rig.ws().pings_sent, 2);
}

#[test]
fn a_peer_silent_for_an_interval_after_a_ping_is_closed_with_1011() {
    let mut rig = Rig::new(Config {
        ws_ping: Duration::from_millis(200),
        ..Config::default()
    });
    let mut s = rig.open(1, "/echo");
    rig.advance(&mut s, ms(200));
    assert!(matches!(&output_events(&mut s)[..], [Event::Ping(_)]));
    rig.advance(&mut s, ms(399));
    assert_eq!(s.lifecycle(), Lifecycle::Open);
    rig.advance(&mut s, ms(400));
    assert_eq!(output_events(&mut s), [close_event(1011, "ping timeout")]);
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
    s.handle_close(&mut rig.ctx());
    assert_eq!(rig.ws().close_codes, [(1011, 1)]);
}

#[test]
fn any_frame_from_the_peer_proves_it_alive() {
    let mut rig = Rig::new(Config {
        ws_ping: Duration::from_millis(200),
        ..Config::default()
    });
    let mut s = rig.open(1, "/echo");
    rig.advance(&mut s, ms(200));
    rig.now = ms(300);
    rig.send(&mut s, &client(TEXT, b"busy, not ponging"));
    rig.advance(&mut s, ms(400));
    rig.advance(&mut s, ms(500));
    assert_eq!(s.lifecycle(), Lifecycle::Open);
    rig.advance(&mut s, ms(600));
    assert_eq!(
        s.lifecycle(),
        Lifecycle::Closing,
        "then silent for an interval"
    );
}

#[test]
fn a_zero_ping_interval_turns_pings_off() {
    let mut rig = Rig::new(Config {
        ws_ping: Duration::ZERO,
        ..Config::default()
    });
    let s = rig.open(1, "/echo");
    assert_eq!(s.next_deadline(), None);
}

// Closing.

#[test]
fn a_close_is_echoed_with_its_code_then_the_server_closes() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a");
    rig.send(&mut s, &close_frame(1000, "bye"));
    assert_eq!(output_events(&mut s), [close_event(1000, "")]);
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
    // Flushed: the server half-closes and lingers (RFC 6455 §7.1.1).
    assert!(s.handle_flushed(&mut rig.ctx()));
    assert_eq!(s.lifecycle(), Lifecycle::Lingering);
    s.handle_eof(&mut rig.ctx());
    assert_eq!(s.lifecycle(), Lifecycle::Closed);
    s.handle_close(&mut rig.ctx());
    assert_eq!(rig.ws().close_codes, [(1000, 1)]);
    assert_eq!(rig.hub.topic_count(), 0, "left the topic");
}

#[test]
fn an_empty_close_gets_an_empty_close() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/echo");
    rig.send(&mut s, &client(CLOSE, b""));
    assert_eq!(s.output().take_all(), [0x88, 0x00]);
    s.handle_close(&mut rig.ctx());
    assert_eq!(rig.ws().close_codes, [(1005, 1)]);
}

#[test]
fn nothing_is_sent_after_our_close() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a,b");
    let mut bytes = client(TEXT, b"not json"); // → 1008
    bytes.extend(client(PING, b"late"));
    rig.send(&mut s, &bytes);
    rig.publish_to("a", "late", &mut [&mut s]);
    assert_eq!(close_code_of(&output_events(&mut s)), Some(1008));
}

#[test]
fn each_protocol_violation_closes_with_its_code() {
    let mut unmasked = Vec::new();
    encode_frame(TEXT, true, b"x", &mut unmasked);
    let mut rsv = client(TEXT, b"x");
    rsv[0] |= 0x40;
    let mut fragmented_ping = Vec::new();
    encode_masked_frame(PING, false, MASK, b"", &mut fragmented_ping);
    let cases: [(&str, Vec<u8>, u16); 8] = [
        ("unmasked", unmasked, 1002),
        ("rsv1", rsv, 1002),
        ("reserved opcode", client(Opcode::Reserved(3), b""), 1002),
        ("fragmented ping", fragmented_ping, 1002),
        ("long ping", client(PING, &[0; 126]), 1002),
        (
            "lone continuation",
            client(Opcode::Data(DataOpcode::Continue), b"x"),
            1002,
        ),
        ("bad utf-8", client(TEXT, b"\xce\xba\xed\xa0\x80"), 1007),
        ("close code 1005", close_frame(1005, ""), 1002),
    ];
    for (what, bytes, code) in cases {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/echo");
        rig.send(&mut s, &bytes);
        let got = output_events(&mut s);
        assert_eq!(close_code_of(&got), Some(code), "{what}: {got:?}");
        assert_eq!(s.lifecycle(), Lifecycle::Closing, "{what}");
        s.handle_close(&mut rig.ctx());
        assert_eq!(rig.ws().close_codes, [(code, 1)], "{what}");
    }
}

#[test]
fn a_message_over_ws_max_message_closes_with_1009() {
    let mut rig = Rig::new(Config {
        ws_max_message: 100,
        ..Config::default()
    });
    let mut s = rig.open(1, "/echo");
    rig.send(&mut s, &client(BINARY, &[1; 101]));
    let got = output_events(&mut s);
    assert_eq!(close_code_of(&got), Some(1009), "{got:?}");
}

#[test]
fn shutdown_closes_with_1001_going_away() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a");
    s.handle_shutdown(&mut rig.ctx());
    assert_eq!(
        output_events(&mut s),
        [close_event(1001, "server shutting down")]
    );
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
}

#[test]
fn a_close_that_cannot_be_flushed_is_dropped_after_the_close_timeout() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/echo");
    rig.now = ms(1_000);
    rig.send(&mut s, &close_frame(1000, ""));
    assert_eq!(s.lifecycle(), Lifecycle::Closing);
    assert_eq!(s.next_deadline(), Some(ms(1_000) + CLOSE_TIMEOUT));
    rig.advance(&mut s, ms(1_000) + CLOSE_TIMEOUT);
    assert_eq!(s.lifecycle(), Lifecycle::Closed);
}

#[test]
fn a_peer_that_drops_the_connection_counts_as_1006() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a,b");
    s.handle_eof(&mut rig.ctx());
    assert_eq!(s.lifecycle(), Lifecycle::Closed);
    s.handle_close(&mut rig.ctx());
    assert_eq!(rig.ws().close_codes, [(1006, 1)]);
    assert_eq!(rig.hub.topic_count(), 0);
}

// Slow consumers and back-pressure.

#[test]
fn a_subscriber_that_does_not_read_is_cut_and_the_others_are_not() {
    let mut rig = Rig::new(Config {
        max_queued_bytes: 1000,
        ..Config::default()
    });
    let mut slow = rig.open(1, "/ws?topic=a");
    let mut fast = rig.open(2, "/ws?topic=a");
    let data = "x".repeat(100);
    let mut delivered = 0;
    for _ in 0..50 {
        rig.publish_to("a", &data, &mut [&mut slow, &mut fast]);
        delivered += output_events(&mut fast).len();
    }
    assert_eq!(delivered, 50);
    assert_eq!(fast.lifecycle(), Lifecycle::Open);
    assert_eq!(slow.lifecycle(), Lifecycle::Closed);
    assert!(slow.output().is_empty(), "its queue is freed at once");
    assert_eq!(rig.ws().slow_consumer_cuts, 1);
}

#[test]
fn the_replay_does_not_count_toward_the_queue_limit() {
    let mut rig = Rig::new(Config {
        max_queued_bytes: 1000,
        ..Config::default()
    });
    let data = "y".repeat(100);
    for _ in 0..30 {
        rig.publish("a", &data);
    }
    let mut s = rig.request(1, "/ws?topic=a&since=0", &[], "", b"");
    assert!(s.output().len() > 3000);
    rig.publish_to("a", &data, &mut [&mut s]);
    assert_eq!(s.lifecycle(), Lifecycle::Open);
}

#[test]
fn an_echo_client_that_does_not_read_is_not_read_either() {
    let mut rig = Rig::new(Config {
        max_queued_bytes: 1000,
        ..Config::default()
    });
    let mut s = rig.open(1, "/echo");
    rig.send(&mut s, &client(BINARY, &[0; 600]));
    assert!(s.wants_read(DEFAULT_MAX_PIPELINED_BYTES));
    rig.send(&mut s, &client(BINARY, &[0; 600]));
    assert!(
        !s.wants_read(DEFAULT_MAX_PIPELINED_BYTES),
        "back-pressure, not a cut"
    );
    assert_eq!(s.lifecycle(), Lifecycle::Open);
    s.output().take_all();
    assert!(s.wants_read(DEFAULT_MAX_PIPELINED_BYTES));
}

#[test]
fn frames_and_closes_are_traced() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/echo");
    rig.send(&mut s, &client(TEXT, b"hi"));
    rig.send(&mut s, &close_frame(1000, "done"));
    let details: Vec<_> = rig
        .tracer
        .events
        .iter()
        .filter(|e| e.kind == "frame")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(
        details,
        ["in text", "out text", "in close 1000", "out close 1000"]
    );
}

mod binary;
