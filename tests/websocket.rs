//! WebSockets over real loopback sockets. The clients are independent of
//! pushlab's codec wherever possible: `tungstenite` (client side) for the
//! normal cases; a raw socket read with the codec in the client role only
//! where a client must misbehave (never answer pings, never read).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{io_timeout, read_head, wait_until, TestServer};
use pushlab::config::Config;
use pushlab::wire::sse;
use pushlab::wire::websocket::{encode_masked_frame, DataOpcode, Event, Opcode, Protocol, Role};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// A `tungstenite` client on `path` (the handshake must succeed).
fn connect(server: &TestServer, path: &str) -> Ws {
    let url = format!("ws://{}{}", server.addr, path);
    let (ws, response) = tungstenite::client(url, server.connect()).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// The next text message, skipping control frames (tungstenite answers
/// pings by itself).
fn read_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read a message") {
            Message::Text(t) => return t,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn read_json(ws: &mut Ws) -> serde_json::Value {
    serde_json::from_str(&read_text(ws)).expect("JSON")
}

/// Reads until the server's close frame and the end of the connection;
/// returns the close code.
fn read_close(ws: &mut Ws) -> u16 {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                // tungstenite answers the close; the server then ends TCP.
                loop {
                    match ws.read() {
                        Ok(_) => continue,
                        Err(tungstenite::Error::ConnectionClosed) => return code,
                        Err(e) => panic!("after the close: {e}"),
                    }
                }
            }
            Ok(_) => continue,
            Err(e) => panic!("expected a close frame: {e}"),
        }
    }
}

/// A WebSocket client that does the handshake by hand and reads frames
/// with pushlab's codec in the client role (which refuses masked frames):
/// for clients that must not behave.
struct RawWs {
    reader: BufReader<TcpStream>,
    protocol: Protocol,
}

impl RawWs {
    fn open(server: &TestServer, path: &str) -> RawWs {
        let mut s = server.connect();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let (status, _) = read_head(&mut reader);
        assert_eq!(status, 101);
        RawWs {
            reader,
            protocol: Protocol::new(Role::Client, 1 << 24),
        }
    }

    fn send(&mut self, opcode: Opcode, payload: &[u8]) {
        let mut out = Vec::new();
        encode_masked_frame(opcode, true, [1, 2, 3, 4], payload, &mut out);
        self.reader.get_mut().write_all(&out).unwrap();
    }

    /// The next event, or `None` at the end of the connection.
    fn next(&mut self) -> Option<Event> {
        loop {
            match self.protocol.next_event().expect("server frames are valid") {
                Event::NeedData => {}
                event => return Some(event),
            }
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading frames: {e}"),
            };
            if buf.is_empty() {
                return None;
            }
            let n = buf.len();
            self.protocol.receive_data(buf);
            self.reader.consume(n);
        }
    }
}

fn ws_stats(server: &TestServer) -> serde_json::Value {
    server.stats()["transports"]["ws"].clone()
}

#[test]
fn a_message_published_by_one_client_reaches_every_subscriber() {
    let server = TestServer::default();
    let mut a = connect(&server, "/ws?topic=chat");
    let mut b = connect(&server, "/ws?topic=chat");
    let mut other = connect(&server, "/ws?topic=elsewhere");
    a.send(Message::text("hello from a")).unwrap();
    for ws in [&mut a, &mut b] {
        let msg = read_json(ws);
        assert_eq!(msg["topic"], "chat");
        assert_eq!(msg["data"], "hello from a");
        assert!(msg["id"].as_str().unwrap().ends_with("-1"));
    }
    // HTTP publishes reach WebSocket subscribers too, in order.
    server.publish("chat", "from http");
    assert_eq!(read_json(&mut b)["data"], "from http");
    other.send(Message::text("x")).unwrap();
    assert_eq!(read_json(&mut other)["topic"], "elsewhere");
    let stats = ws_stats(&server);
    assert_eq!(stats["sockets_open"], 3);
    assert!(stats["frames_in"].as_u64().unwrap() >= 2);
}

#[test]
fn a_message_published_over_websocket_reaches_sse_and_poll_subscribers() {
    let server = TestServer::default();
    // An SSE subscriber on a raw socket, read with pushlab's WHATWG parser.
    let mut sse_socket = server.connect();
    sse_socket
        .write_all(b"GET /events?topic=mixed HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut sse_reader = BufReader::new(sse_socket);
    let (status, _) = read_head(&mut sse_reader);
    assert_eq!(status, 200);
    wait_until("the SSE subscriber", || {
        server.stats()["transports"]["sse"]["sockets_open"] == 1
    });

    let mut ws = connect(&server, "/ws?topic=mixed");
    ws.send(Message::text("one for all")).unwrap();
    assert_eq!(read_json(&mut ws)["data"], "one for all");

    let mut parser = sse::Parser::new();
    let event = loop {
        if let sse::Decoded::Event(e) = parser.next_event().unwrap() {
            break e;
        }
        let buf = sse_reader.fill_buf().expect("SSE bytes");
        assert!(!buf.is_empty(), "SSE stream ended");
        let n = buf.len();
        parser.feed(buf);
        sse_reader.consume(n);
    };
    assert_eq!(event.data, "one for all");
    assert!(event.last_event_id.ends_with("-1"));

    let poll = server.request("GET", "/poll?topic=mixed&since=0", b"");
    assert_eq!(poll.status, 200);
    assert_eq!(poll.json()["messages"][0]["data"], "one for all");
}

#[test]
fn echo_returns_text_and_binary_of_any_size_then_closes_cleanly() {
    let server = TestServer::default();
    let mut ws = connect(&server, "/echo");
    ws.send(Message::text("héllo")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("héllo"));
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(big));
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .unwrap();
    // The server echoes the close, then closes TCP first.
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    wait_until("the close to be counted", || {
        ws_stats(&server)["close_codes"]["1000"] == 1
    });
}

#[test]
fn a_foreign_origin_is_refused_with_403() {
    let server = TestServer::default();
    let mut request = format!("ws://{}/ws?topic=a", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    match tungstenite::client(request, server.connect()) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 403)
        }
        Ok(_) => panic!("a foreign origin was let in"),
        Err(e) => panic!("unexpected error {e}"),
    }
    // The same origin is welcome.
    let mut request = format!("ws://{}/echo", server.addr)
        .into_client_request()
        .unwrap();
    let origin = format!("http://{}", server.addr);
    request
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    assert!(tungstenite::client(request, server.connect()).is_ok());
}

#[test]
fn an_unsupported_version_is_426_with_the_supported_one() {
    let server = TestServer::default();
    let mut s = server.connect();
    let req = "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let r = common::read_response(&mut BufReader::new(s));
    assert_eq!(r.status, 426);
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn a_client_that_never_answers_pings_is_closed_with_1011() {
    let server = TestServer::start(Config {
        ws_ping: Duration::from_millis(200),
        ..Config::default()
    });
    let started = Instant::now();
    let mut raw = RawWs::open(&server, "/echo");
    assert!(matches!(raw.next(), Some(Event::Ping(_))));
    match raw.next() {
        Some(Event::Close { code, reason }) => {
            assert_eq!(code.map(|c| c.0), Some(1011));
            assert_eq!(reason, "ping timeout");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
    // The server closes TCP after its close frame.
    assert_eq!(raw.next(), None);
    wait_until("the ping timeout to be counted", || {
        let stats = ws_stats(&server);
        stats["close_codes"]["1011"] == 1 && stats["sockets_open"] == 0
    });
}

#[test]
fn a_client_that_answers_pings_stays() {
    let server = TestServer::start(Config {
        ws_ping: Duration::from_millis(200),
        ..Config::default()
    });
    let mut ws = connect(&server, "/ws?topic=alive");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let until = Instant::now() + Duration::from_millis(1100);
    let mut pings = 0;
    while Instant::now() < until {
        match ws.read() {
            // tungstenite queues the pong; the next read or flush sends it.
            Ok(Message::Ping(_)) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
        let _ = ws.flush();
    }
    assert!(pings >= 4, "{pings} pings");
    ws.get_mut().set_read_timeout(Some(io_timeout())).unwrap();
    server.publish("alive", "still here");
    assert_eq!(read_json(&mut ws)["data"], "still here");
    assert!(ws_stats(&server)["pongs_received"].as_u64().unwrap() >= 4);
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_while_another_gets_everything() {
    // The default limit (1 MiB): the slow client is cut once the kernel's
    // buffers for it (a few MB on loopback) and 1 MiB more are full; the
    // fast one, whose buffers are drained, has the same margin.
    let server = TestServer::start(Config {
        max_queued_bytes: 1024 * 1024,
        ..Config::default()
    });
    // The slow one never reads after its handshake.
    let mut slow = RawWs::open(&server, "/ws?topic=big");
    let mut fast = connect(&server, "/ws?topic=big");
    let data = "z".repeat(60 * 1024);
    let count = 300; // 18 MB: more than the slow client's buffers and its limit
                     // The fast reader reports each message it has read, and the publisher
                     // stays at most `AHEAD` messages (480 KiB) in front of it: on a loaded
                     // machine a reader thread that is not scheduled for a while must not be
                     // mistaken for a slow consumer. The slow one still gets all 18 MB.
    const AHEAD: usize = 8;
    let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for _ in 0..count {
            let msg = read_json(&mut fast);
            assert_eq!(msg["data"].as_str().unwrap().len(), 60 * 1024);
            ids.push(msg["id"].as_str().unwrap().to_string());
            let _ = read_tx.send(());
        }
        ids
    });
    let mut published = Vec::new();
    for i in 0..count {
        if i >= AHEAD {
            read_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("the fast reader keeps up");
        }
        published.push(server.publish("big", &data));
    }
    assert_eq!(reader.join().unwrap(), published, "every message, in order");
    wait_until("the slow consumer to be cut", || {
        ws_stats(&server)["slow_consumer_cuts"] == 1
    });
    // The slow client finds the end of its stream (after what was in flight).
    let mut sink = [0u8; 64 * 1024];
    let s = slow.reader.get_mut();
    loop {
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn since_resumes_with_missed_and_reset_notices() {
    let server = TestServer::start(Config {
        history: 2,
        ..Config::default()
    });
    let ids: Vec<String> = (1..=5)
        .map(|i| server.publish("r", &i.to_string()))
        .collect();
    // After the first: 2 and 3 were evicted, 4 and 5 are kept.
    let mut ws = connect(&server, &format!("/ws?topic=r&since={}", ids[0]));
    assert_eq!(read_json(&mut ws), serde_json::json!({"missed": 2}));
    assert_eq!(read_json(&mut ws)["data"], "4");
    assert_eq!(read_json(&mut ws)["data"], "5");
    server.publish("r", "6");
    assert_eq!(read_json(&mut ws)["data"], "6");

    // A cursor from another epoch (a restarted server): reset, then the
    // oldest kept message.
    let mut ws = connect(&server, "/ws?topic=r&since=oldepoch-3");
    assert_eq!(read_json(&mut ws), serde_json::json!({"reset": true}));
    assert_eq!(read_json(&mut ws)["data"], "5");
    assert_eq!(read_json(&mut ws)["data"], "6");
    let stats = ws_stats(&server);
    assert_eq!(
        (
            stats["gaps_reported"].as_u64(),
            stats["resets_reported"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn protocol_errors_close_with_their_code() {
    let server = TestServer::default();
    // A text message on several topics that is not their JSON: 1008.
    let mut ws = connect(&server, "/ws?topic=b,c");
    ws.send(Message::Text("plain".into())).unwrap();
    assert_eq!(read_close(&mut ws), 1008);

    // An unmasked client frame breaks RFC 6455 §5.1: 1002.
    let mut raw = RawWs::open(&server, "/echo");
    raw.send(Opcode::Data(DataOpcode::Text), b"masked");
    assert_eq!(raw.next(), Some(Event::Text("masked".into())));
    raw.reader
        .get_mut()
        .write_all(&[0x81, 0x02, b'h', b'i'])
        .unwrap();
    match raw.next() {
        Some(Event::Close { code, .. }) => assert_eq!(code.map(|c| c.0), Some(1002)),
        other => panic!("expected a close, got {other:?}"),
    }
    assert_eq!(raw.next(), None);
}

#[test]
fn shutdown_closes_websockets_with_1001() {
    let mut server = TestServer::default();
    let mut ws = connect(&server, "/ws?topic=s");
    let closer = std::thread::spawn(move || read_close(&mut ws));
    // Make sure the subscriber is in before stopping.
    wait_until("the subscriber", || ws_stats(&server)["sockets_open"] == 1);
    server.stop();
    assert_eq!(closer.join().unwrap(), 1001);
}
