//! Binary messages end to end over real loopback sockets (docs/api.md §
//! Binary messages): bytes published by `POST /publish` with
//! `Content-Type: application/octet-stream` or by a binary frame on `/ws`
//! reach a WebSocket as one binary frame (envelope: 2-byte length, JSON
//! header, raw bytes), an SSE stream as an event of type `binary`, and
//! polls as JSON marked `"encoding":"base64"`. The clients are independent
//! of pushlab's encoders: `tungstenite` for WebSockets, the `base64` crate
//! to decode, the envelope parsed here by hand.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use common::{read_head, read_response, wait_until, TestServer};
use pushlab::config::Config;
use pushlab::wire::sse::{Decoded, Event, Parser};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// Bytes that are not UTF-8, with a NUL, line endings and JSON syntax.
const BYTES: &[u8] = b"\x00\xff\xfe binary\r\n{\"not\":json}\x80";

fn connect(server: &TestServer, path: &str) -> Ws {
    let url = format!("ws://{}{}", server.addr, path);
    let (ws, response) = tungstenite::client(url, server.connect()).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// The next binary message's envelope: its JSON header and its bytes.
fn read_envelope(ws: &mut Ws) -> (serde_json::Value, Vec<u8>) {
    loop {
        match ws.read().expect("read a message") {
            Message::Binary(payload) => {
                let n = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
                let header = serde_json::from_slice(&payload[2..2 + n]).expect("JSON header");
                return (header, payload[2 + n..].to_vec());
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected binary, got {other:?}"),
        }
    }
}

/// A client's envelope naming `topic`, then `data`.
fn envelope(topic: &str, data: &[u8]) -> Vec<u8> {
    let header = serde_json::json!({ "topic": topic }).to_string();
    let mut out = (header.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The messages of a poll (`/poll?…`), as JSON objects.
fn poll(server: &TestServer, target: &str) -> Vec<serde_json::Value> {
    let r = server.request("GET", target, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["messages"].as_array().unwrap().clone()
}

/// A message object carrying `BYTES` as base64, with its marker.
fn marked(topic: &str, id: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "topic": topic, "id": id, "encoding": "base64", "data": BASE64.encode(data)
    })
}

/// The first event of an SSE stream on `reader` (head already read).
fn next_sse_event(reader: &mut BufReader<TcpStream>, parser: &mut Parser) -> Event {
    loop {
        if let Decoded::Event(e) = parser.next_event().expect("well-formed stream") {
            return e;
        }
        let buf = reader.fill_buf().expect("read the stream");
        assert!(!buf.is_empty(), "the stream ended before an event");
        let n = buf.len();
        parser.feed(buf);
        reader.consume(n);
    }
}

#[test]
fn bytes_posted_as_octet_stream_reach_every_transport() {
    let server = TestServer::default();
    let mut ws = connect(&server, "/ws?topic=b");
    let mut sse = BufReader::new(server.connect());
    sse.get_mut()
        .write_all(b"GET /events?topic=b HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_head(&mut sse).0,
        200,
        "subscribed once the head is out"
    );
    let mut long_poll = server.connect();
    long_poll
        .write_all(b"GET /long-poll?topic=b&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    wait_until("the long poll is held", || {
        server.stats()["transports"]["long_poll"]["holds_active"] == 1
    });

    let id = server.publish_binary("b", BYTES);

    // WebSocket: one binary frame, the envelope naming topic and id.
    let (header, data) = read_envelope(&mut ws);
    assert_eq!(header, serde_json::json!({"topic": "b", "id": id}));
    assert_eq!(data, BYTES);
    // SSE: an event of type `binary` whose data is the base64.
    let mut parser = Parser::new();
    let event = next_sse_event(&mut sse, &mut parser);
    assert_eq!(event.event_type, "binary");
    assert_eq!(event.last_event_id, id);
    assert_eq!(BASE64.decode(&event.data).unwrap(), BYTES);
    // Long poll and poll: the JSON object, marked.
    let r = read_response(&mut BufReader::new(long_poll));
    assert_eq!(
        r.json()["messages"],
        serde_json::json!([marked("b", &id, BYTES)])
    );
    assert_eq!(r.json()["next"], id.as_str());
    assert_eq!(
        poll(&server, "/poll?topic=b&since=0"),
        [marked("b", &id, BYTES)]
    );
}

#[test]
fn ids_and_cursors_are_shared_by_text_and_binary_messages() {
    let server = TestServer::default();
    let first = server.publish("m", "one");
    let binary = server.publish_binary("m", &[1, 2, 3]);
    let last = server.publish("m", "three");
    assert!(first < binary && binary < last);
    // Text messages are what they always were.
    assert_eq!(
        poll(&server, &format!("/poll?topic=m&since={binary}")),
        [serde_json::json!({"topic": "m", "id": last, "data": "three"})]
    );
    assert_eq!(
        poll(&server, &format!("/poll?topic=m&since={first}"))[0],
        marked("m", &binary, &[1, 2, 3])
    );
    // A WebSocket resuming from the text message gets the binary one next.
    let mut ws = connect(&server, &format!("/ws?topic=m&since={first}"));
    let (header, data) = read_envelope(&mut ws);
    assert_eq!(
        (header["id"].as_str(), data),
        (Some(&*binary), vec![1, 2, 3])
    );
}

#[test]
fn a_binary_frame_on_ws_is_published_and_seen_by_polls_and_subscribers() {
    let server = TestServer::default();
    let mut subscriber = connect(&server, "/ws?topic=x");
    // One topic: the frame's payload is the message.
    let mut publisher = connect(&server, "/ws?topic=w");
    publisher.send(Message::Binary(BYTES.to_vec())).unwrap();
    let mut got = Vec::new();
    wait_until("the poll sees the message", || {
        got = poll(&server, "/poll?topic=w&since=0");
        !got.is_empty()
    });
    let id = got[0]["id"].as_str().unwrap().to_string();
    assert_eq!(got, [marked("w", &id, BYTES)]);
    // Several topics: the frame is an envelope naming one of them.
    let mut several = connect(&server, "/ws?topic=w,x");
    several.send(Message::Binary(envelope("x", BYTES))).unwrap();
    let (header, data) = read_envelope(&mut subscriber);
    assert_eq!(header["topic"], "x");
    assert_eq!(data, BYTES);
    // `/echo` still echoes binary frames as they came.
    let mut echo = connect(&server, "/echo");
    echo.send(Message::Binary(BYTES.to_vec())).unwrap();
    assert_eq!(echo.read().unwrap(), Message::Binary(BYTES.to_vec()));
}

#[test]
fn max_message_counts_raw_bytes_and_text_must_still_be_utf8() {
    let server = TestServer::start(Config {
        max_message: 8,
        ..Config::default()
    });
    let octets = "Content-Type: application/octet-stream\r\n";
    let r = server.request_with("POST", "/publish?topic=l", octets, &[0xff; 8]);
    assert_eq!(r.status, 200, "8 bytes, 12 in base64: {}", r.text());
    let r = server.request_with("POST", "/publish?topic=l", octets, &[0xff; 9]);
    assert_eq!(r.status, 413);
    let r = server.request("POST", "/publish?topic=l", &[0xff; 4]);
    assert_eq!(r.status, 400, "not UTF-8 without the octet-stream type");
}
