//! Server-wide memory bounds over real loopback sockets: the topic table
//! (`--max-topics`), kept history (`--history-memory`) and messages being
//! assembled (`--assembly-memory`). Each test reads the budgets' usage from
//! `/stats` (`memory`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{read_head, read_response, wait_until, TestServer};
use pushlab::config::Config;
use pushlab::wire::websocket::{encode_masked_frame, DataOpcode, Event, Opcode, Protocol, Role};

const KIB: usize = 1024;
const TEXT: Opcode = Opcode::Data(DataOpcode::Text);

fn memory(server: &TestServer) -> serde_json::Value {
    server.stats()["memory"].clone()
}

/// A raw `GET` on a new connection; returns the status and the reader.
fn get(server: &TestServer, path: &str) -> (u16, BufReader<TcpStream>) {
    let mut s = server.connect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let (status, _) = read_head(&mut reader);
    (status, reader)
}

#[test]
fn a_full_topic_table_takes_new_topics_again_once_the_ttl_has_passed() {
    let server = TestServer::start(Config {
        max_topics: 3,
        history_ttl: Duration::from_millis(300),
        ..Config::default()
    });
    for topic in ["a", "b", "c"] {
        server.publish(topic, "x");
    }
    assert_eq!(memory(&server)["topics_kept"], 3);
    // The table is full: a new topic takes the slot of the oldest history,
    // and readers of that history are told what they missed.
    let r = server.request("POST", "/publish?topic=d", b"y");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(memory(&server)["topics_kept"], 3);
    let epoch = server.stats()["epoch"].as_str().unwrap().to_string();
    let poll = server
        .request("GET", &format!("/poll?topic=a&since={epoch}-0"), b"")
        .json();
    assert!(poll["missed"].as_u64().unwrap() >= 1, "{poll}");
    // Messages expire, then their eviction records: every slot comes back.
    wait_until("every topic to be reclaimed", || {
        memory(&server)["topics_kept"] == 0
    });
    assert_eq!(memory(&server)["history_bytes"], 0);
    for topic in ["e", "f", "g"] {
        assert_eq!(
            server
                .request("POST", &format!("/publish?topic={topic}"), b"z")
                .status,
            200
        );
    }
}

#[test]
fn subscribing_to_a_new_topic_past_max_topics_is_refused_until_a_stream_ends() {
    let server = TestServer::start(Config {
        max_topics: 2,
        ..Config::default()
    });
    let (status, a) = get(&server, "/events?topic=a");
    assert_eq!(status, 200);
    let (status, _b) = get(&server, "/events?topic=b");
    assert_eq!(status, 200);
    let r = server.request("GET", "/poll?topic=c", b"");
    assert_eq!(r.status, 200, "a poll subscribes to nothing");
    let (status, mut refused) = get(&server, "/events?topic=c");
    assert_eq!(status, 503);
    let mut body = String::new();
    refused.read_line(&mut body).unwrap();
    assert!(body.contains("--max-topics"), "{body}");
    drop(a);
    wait_until("the stream on a to end", || {
        memory(&server)["topics_subscribed"] == 1
    });
    let (status, _c) = get(&server, "/events?topic=c");
    assert_eq!(status, 200);
}

#[test]
fn past_history_memory_the_oldest_history_goes_and_is_reported_missed() {
    let server = TestServer::start(Config {
        history_memory: 64 * KIB,
        ..Config::default()
    });
    let data = "m".repeat(10 * KIB);
    for i in 0..10 {
        server.publish(if i % 2 == 0 { "a" } else { "b" }, &data);
        let m = memory(&server);
        assert!(
            m["history_bytes"].as_u64() <= m["history_limit"].as_u64(),
            "{m}"
        );
    }
    let epoch = server.stats()["epoch"].as_str().unwrap().to_string();
    let poll = server
        .request("GET", &format!("/poll?topic=a,b&since={epoch}-0"), b"")
        .json();
    let kept = poll["messages"].as_array().unwrap().len() as u64;
    assert!((1..10).contains(&kept), "{kept} kept");
    assert_eq!(poll["missed"].as_u64().unwrap(), 10 - kept, "exact");
    // What is kept is the newest.
    assert_eq!(
        poll["messages"].as_array().unwrap().last().unwrap()["id"],
        format!("{epoch}-10")
    );
}

/// A WebSocket on `/echo` that sends raw bytes and reads with pushlab's
/// codec in the client role.
struct RawWs {
    reader: BufReader<TcpStream>,
    protocol: Protocol,
}

impl RawWs {
    fn open(server: &TestServer) -> RawWs {
        let mut s = server.connect();
        s.write_all(
            b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        assert_eq!(read_head(&mut reader).0, 101);
        RawWs {
            reader,
            protocol: Protocol::new(Role::Client, 1 << 24),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// The close code the server sends, skipping other frames.
    fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.protocol.next_event().expect("valid frames") {
                Event::Close { code, .. } => return code.map(|c| c.0),
                Event::NeedData => {}
                _ => continue,
            }
            let buf = self.reader.fill_buf().unwrap();
            if buf.is_empty() {
                return None;
            }
            let n = buf.len();
            self.protocol.receive_data(buf);
            self.reader.consume(n);
        }
    }
}

/// The first `n` bytes of a masked 1 MiB text frame.
fn start_of_a_large_message(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    encode_masked_frame(TEXT, true, [1, 2, 3, 4], &vec![b'x'; 1024 * KIB], &mut out);
    out.truncate(n);
    out
}

#[test]
fn websocket_messages_past_assembly_memory_close_with_1013_and_nothing_leaks() {
    let server = TestServer::start(Config {
        assembly_memory: 300 * KIB,
        ..Config::default()
    });
    let mut first = RawWs::open(&server);
    first.write(&start_of_a_large_message(200 * KIB));
    wait_until("the first message to be charged", || {
        memory(&server)["assembling_bytes"].as_u64() > Some(100 * KIB as u64)
    });
    let mut second = RawWs::open(&server);
    second.write(&start_of_a_large_message(200 * KIB));
    assert_eq!(second.close_code(), Some(1013));
    assert_eq!(memory(&server)["assembly_refusals"], 1);
    // The first peer vanishes mid-message: its bytes come back.
    drop(first);
    drop(second);
    wait_until("the budget to return to 0", || {
        memory(&server)["assembling_bytes"] == 0
    });
    wait_until("the 1013 to be counted", || {
        server.stats()["transports"]["ws"]["close_codes"]["1013"] == 1
    });
}

#[test]
fn a_publish_body_past_assembly_memory_gets_503_and_nothing_leaks() {
    let server = TestServer::start(Config {
        assembly_memory: 64 * KIB,
        max_message: 1024 * KIB,
        ..Config::default()
    });
    let head = format!(
        "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        512 * KIB
    );
    // One client leaves a large body unfinished, then vanishes.
    let mut partial = server.connect();
    partial.write_all(head.as_bytes()).unwrap();
    partial.write_all(&vec![b'x'; 60 * KIB]).unwrap();
    wait_until("the partial body to be charged", || {
        memory(&server)["assembling_bytes"].as_u64() > Some(0)
    });
    // Another's large body does not fit beside it.
    let mut s = server.connect();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b'x'; 100 * KIB]);
    let r = read_response(&mut BufReader::new(s));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("Retry-After"), Some("1"));
    // Small publishes still pass.
    assert_eq!(
        server.request("POST", "/publish?topic=a", b"small").status,
        200
    );
    drop(partial);
    wait_until("the budget to return to 0", || {
        memory(&server)["assembling_bytes"] == 0
    });
}
