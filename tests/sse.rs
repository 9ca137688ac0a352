//! Server-Sent Events over real loopback sockets: the stream is read with
//! pushlab's own WHATWG parser (`wire::sse::Parser`), as a browser's
//! `EventSource` would read it, never by matching strings.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{io_timeout, read_head, read_response, wait_until, Response, TestServer};
use pushlab::config::Config;
use pushlab::wire::sse::{Decoded, Event, Parser};

/// An event-stream reader on one connection, in the manner of `EventSource`:
/// the parser (and so the last event ID) survives a reconnection.
struct SseClient {
    reader: BufReader<TcpStream>,
    status: u16,
    headers: Vec<(String, String)>,
    parser: Parser,
    pending: VecDeque<Event>,
}

impl SseClient {
    /// `GET target` with `headers` (each ending in CRLF); reads the head.
    fn open(server: &TestServer, target: &str, headers: &str) -> SseClient {
        SseClient::open_with(server, target, headers, Parser::new())
    }

    fn open_with(server: &TestServer, target: &str, headers: &str, parser: Parser) -> SseClient {
        let mut s = server.connect();
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n{headers}\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let (status, headers) = read_head(&mut reader);
        SseClient {
            reader,
            status,
            headers,
            parser,
            pending: VecDeque::new(),
        }
    }

    /// What a browser does when the stream ends: discard the partial
    /// event, then reconnect with `Last-Event-ID`.
    fn reconnect(mut self, server: &TestServer, target: &str) -> SseClient {
        self.parser.end_of_stream();
        let id = self.parser.last_event_id().to_string();
        let header = if id.is_empty() {
            String::new()
        } else {
            format!("Last-Event-ID: {id}\r\n")
        };
        SseClient::open_with(server, target, &header, self.parser)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Feeds the parser what the socket has; false at end of stream.
    fn read_more(&mut self) -> bool {
        let buf = match self.reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
            Err(e) => panic!("reading the stream: {e}"),
        };
        if buf.is_empty() {
            return false;
        }
        let n = buf.len();
        self.parser.feed(buf);
        self.reader.consume(n);
        true
    }

    fn drain(&mut self) {
        while let Decoded::Event(e) = self.parser.next_event().expect("well-formed stream") {
            self.pending.push_back(e);
        }
    }

    /// The next event; fails if the stream ends or stalls first.
    fn next_event(&mut self) -> Event {
        loop {
            self.drain();
            if let Some(e) = self.pending.pop_front() {
                return e;
            }
            assert!(self.read_more(), "the stream ended before an event");
        }
    }

    /// Events until the server closes the stream.
    fn events_until_eof(&mut self) -> Vec<Event> {
        loop {
            self.drain();
            if !self.read_more() {
                break;
            }
        }
        self.pending.drain(..).collect()
    }

    /// Reads until `n` comment lines (heartbeats) have been seen.
    fn wait_for_comments(&mut self, n: u64) {
        loop {
            self.drain();
            if self.parser.comments() >= n {
                return;
            }
            assert!(self.read_more(), "the stream ended before a heartbeat");
        }
    }
}

/// A publisher on one keep-alive connection (10,000 publishes would
/// otherwise cost 10,000 connections).
struct Publisher {
    reader: BufReader<TcpStream>,
}

impl Publisher {
    fn new(server: &TestServer) -> Publisher {
        Publisher {
            reader: BufReader::new(server.connect()),
        }
    }

    fn publish(&mut self, topic: &str, data: &str) -> String {
        let head = format!(
            "POST /publish?topic={topic} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            data.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(data.as_bytes()).unwrap();
        let r: Response = read_response(&mut self.reader);
        assert_eq!(r.status, 200, "publish failed: {}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    }
}

fn config() -> Config {
    Config {
        heartbeat: Duration::from_millis(100),
        ..Config::default()
    }
}

fn sse_stats(server: &TestServer) -> serde_json::Value {
    server.stats()["transports"]["sse"].clone()
}

fn datas(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

#[test]
fn a_stream_answers_with_the_event_stream_head_and_retry_first() {
    let server = TestServer::start(config());
    let mut c = SseClient::open(&server, "/events?topic=news", "");
    assert_eq!(c.status, 200);
    assert_eq!(c.header("content-type"), Some("text/event-stream"));
    assert_eq!(c.header("cache-control"), Some("no-cache"));
    assert_eq!(c.header("x-accel-buffering"), Some("no"));
    assert_eq!(c.header("connection"), Some("close"));
    assert_eq!(c.header("content-length"), None);
    assert_eq!(c.header("transfer-encoding"), None);
    let first = c.reader.fill_buf().unwrap();
    assert!(first.starts_with(b"retry: 2000\n"), "{first:?}");
    c.read_more();
    c.drain();
    assert_eq!(c.parser.retry(), Some(2000));
    assert_eq!(sse_stats(&server)["sockets_open"], 1);
}

#[test]
fn live_messages_arrive_in_order_with_their_ids() {
    let server = TestServer::start(config());
    let mut c = SseClient::open(&server, "/events?topic=news", "");
    let mut p = Publisher::new(&server);
    let ids: Vec<String> = ["one", "two\nlines", ""]
        .iter()
        .map(|d| p.publish("news", d))
        .collect();
    p.publish("other", "not for this stream");
    let events: Vec<Event> = (0..3).map(|_| c.next_event()).collect();
    assert_eq!(datas(&events), ["one", "two\nlines", ""]);
    for (e, id) in events.iter().zip(&ids) {
        assert_eq!(&e.last_event_id, id);
        assert_eq!(e.event_type, "message");
    }
    assert_eq!(sse_stats(&server)["messages_delivered"], 3);
}

#[test]
fn resume_with_the_last_event_id_header() {
    let server = TestServer::start(config());
    let first = server.publish("news", "1");
    server.publish("news", "2");
    server.publish("news", "3");
    let mut c = SseClient::open(
        &server,
        "/events?topic=news",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    assert_eq!(c.next_event().data, "2");
    assert_eq!(c.next_event().data, "3");
    server.publish("news", "4");
    assert_eq!(c.next_event().data, "4");
    assert_eq!(sse_stats(&server)["resumes"], 1);
}

#[test]
fn resume_with_the_last_event_id_or_since_query_parameter() {
    let server = TestServer::start(config());
    let first = server.publish("news", "1");
    let second = server.publish("news", "2");
    server.publish("news", "3");
    let mut c = SseClient::open(
        &server,
        &format!("/events?topic=news&last_event_id={first}"),
        "",
    );
    assert_eq!(c.next_event().data, "2");
    let mut c = SseClient::open(&server, &format!("/events?topic=news&since={second}"), "");
    assert_eq!(c.next_event().data, "3");
    let mut c = SseClient::open(&server, "/events?topic=news&since=0", "");
    assert_eq!(c.next_event().data, "1");
    // The header wins over the query: a browser reconnecting to a URL with
    // `since` in it sends the newer `Last-Event-ID`.
    let mut c = SseClient::open(
        &server,
        "/events?topic=news&since=0",
        &format!("Last-Event-ID: {second}\r\n"),
    );
    assert_eq!(c.next_event().data, "3");
    assert_eq!(sse_stats(&server)["resumes"], 4);
}

#[test]
fn a_bad_cursor_or_topic_is_a_400_and_head_is_not_routed() {
    let server = TestServer::start(config());
    for path in [
        "/events?topic=news&since=yesterday",
        "/events?topic=news&last_event_id=42",
        "/events?topic=no%20spaces",
        "/events",
    ] {
        let r = server.request("GET", path, b"");
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    let c = SseClient::open(&server, "/events?topic=news", "Last-Event-ID: garbage\r\n");
    assert_eq!(c.status, 400);
    let r = server.request("HEAD", "/events?topic=news", b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn missed_is_reported_after_eviction() {
    let server = TestServer::start(Config {
        history: 2,
        ..config()
    });
    let first = server.publish("news", "1");
    for d in ["2", "3", "4", "5"] {
        server.publish("news", d);
    }
    let mut c = SseClient::open(
        &server,
        "/events?topic=news",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    let gap = c.next_event();
    assert_eq!(
        (gap.event_type.as_str(), gap.data.as_str()),
        ("missed", "2")
    );
    assert_eq!(c.next_event().data, "4");
    assert_eq!(c.next_event().data, "5");
    assert_eq!(sse_stats(&server)["gaps_reported"], 1);
}

#[test]
fn a_restarted_server_answers_an_old_cursor_with_reset() {
    let before = TestServer::start(config());
    let old_id = before.publish("news", "before the restart");
    let old_epoch = before.stats()["epoch"].as_str().unwrap().to_string();
    drop(before);
    // Epochs are the start time in milliseconds: start until it differs.
    let after = loop {
        let s = TestServer::start(config());
        if s.stats()["epoch"].as_str() != Some(&old_epoch) {
            break s;
        }
    };
    after.publish("news", "after the restart");
    let mut c = SseClient::open(
        &after,
        "/events?topic=news",
        &format!("Last-Event-ID: {old_id}\r\n"),
    );
    let reset = c.next_event();
    assert_eq!(
        (reset.event_type.as_str(), reset.data.as_str()),
        ("reset", "true")
    );
    let kept = c.next_event();
    assert_eq!(kept.data, "after the restart");
    assert!(!kept.last_event_id.starts_with(&old_epoch));
    assert_eq!(sse_stats(&after)["resets_reported"], 1);
}

#[test]
fn heartbeats_arrive_on_the_configured_interval() {
    let server = TestServer::start(config()); // 100 ms
    let start = Instant::now();
    let mut c = SseClient::open(&server, "/events?topic=quiet", "");
    c.wait_for_comments(3);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(290), "too early: {took:?}");
    assert!(took < Duration::from_secs(2), "too late: {took:?}");
    assert!(c.pending.is_empty(), "a comment dispatches no event");
    assert!(sse_stats(&server)["heartbeats"].as_u64().unwrap() >= 3);
}

#[test]
fn a_subscriber_that_never_reads_is_cut_while_a_fast_one_gets_everything() {
    const SIZE: usize = 16 * 1024;
    const COUNT: usize = 20 * 1024 * 1024 / SIZE;
    // How far the publisher may run ahead of the fast reader: a few
    // messages, well inside the kernel's socket buffers.
    const LAG: usize = 4;
    let server = TestServer::start(Config {
        max_queued_bytes: 64 * 1024,
        ..config()
    });
    let mut slow = SseClient::open(&server, "/events?topic=big", "");
    let mut fast = SseClient::open(&server, "/events?topic=big", "");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for _ in 0..COUNT {
            let e = fast.next_event();
            let n: usize = e.data[..8].parse().unwrap();
            assert_eq!(e.data.len(), SIZE);
            tx.send(n).unwrap();
        }
        fast
    });
    let mut p = Publisher::new(&server);
    let mut expected = 0;
    for i in 0..COUNT {
        let mut data = format!("{i:08}");
        data.extend(std::iter::repeat('x').take(SIZE - 8));
        p.publish("big", &data);
        if i >= LAG {
            assert_eq!(rx.recv_timeout(io_timeout()).unwrap(), expected);
            expected += 1;
        }
    }
    while expected < COUNT {
        assert_eq!(rx.recv_timeout(io_timeout()).unwrap(), expected);
        expected += 1;
    }
    let _fast = reader.join().unwrap();
    wait_until("the slow consumer cut", || {
        sse_stats(&server)["slow_consumer_cuts"] == 1
    });
    // The cut subscriber received an in-order prefix, then the end.
    let got = slow.events_until_eof();
    assert!(got.len() < COUNT, "{} of {COUNT}", got.len());
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.data[..8].parse::<usize>().unwrap(), i);
    }
    let stats = sse_stats(&server);
    assert_eq!(stats["slow_consumer_cuts"], 1);
    assert_eq!(stats["sockets_open"], 1, "the fast stream is still open");
}

#[test]
fn several_topics_on_one_stream_carry_json_with_the_topic() {
    let server = TestServer::start(config());
    let mut c = SseClient::open(&server, "/events?topic=a,b", "");
    let mut p = Publisher::new(&server);
    let id_a = p.publish("a", "from a");
    let id_b = p.publish("b", "from \"b\"");
    p.publish("c", "not subscribed");
    for (topic, id, data) in [("a", &id_a, "from a"), ("b", &id_b, "from \"b\"")] {
        let e = c.next_event();
        let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"topic": topic, "id": id, "data": data})
        );
        assert_eq!(&e.last_event_id, id);
    }
    // One cursor resumes both topics.
    let mut c = SseClient::open(
        &server,
        "/events?topic=b,a",
        &format!("Last-Event-ID: {id_a}\r\n"),
    );
    let v: serde_json::Value = serde_json::from_str(&c.next_event().data).unwrap();
    assert_eq!(v["topic"], "b");
}

#[test]
fn the_stream_ends_cleanly_when_the_server_shuts_down() {
    let mut server = TestServer::start(config());
    let mut c = SseClient::open(&server, "/events?topic=news", "");
    server.publish("news", "last words");
    assert_eq!(c.next_event().data, "last words");
    let start = Instant::now();
    server.stop();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "shutdown waited for the stream: {:?}",
        start.elapsed()
    );
    assert!(c.events_until_eof().is_empty());
}

#[test]
fn max_lifetime_closes_streams_and_a_reconnecting_client_misses_nothing() {
    const COUNT: usize = 60;
    let server = TestServer::start(Config {
        sse_max_lifetime: Some(Duration::from_millis(300)),
        ..config()
    });
    let target = "/events?topic=news";
    let mut c = SseClient::open(&server, target, "");
    let addr = server.addr;
    let publisher = std::thread::spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(io_timeout())).unwrap();
        let mut reader = BufReader::new(s);
        for i in 0..COUNT {
            let body = i.to_string();
            let head = format!(
                "POST /publish?topic=news HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            reader.get_mut().write_all(head.as_bytes()).unwrap();
            assert_eq!(read_response(&mut reader).status, 200);
            // Pacing, so the messages span several stream lifetimes.
            std::thread::sleep(Duration::from_millis(15));
        }
    });
    let mut got = Vec::new();
    let mut streams = 0;
    while got.len() < COUNT {
        let opened = Instant::now();
        streams += 1;
        for e in c.events_until_eof() {
            got.push(e.data.parse::<usize>().unwrap());
        }
        if got.len() < COUNT {
            let lived = opened.elapsed();
            assert!(
                lived >= Duration::from_millis(260),
                "closed early: {lived:?}"
            );
        }
        assert!(streams < 50, "too many reconnections");
        c = c.reconnect(&server, target);
    }
    publisher.join().unwrap();
    assert_eq!(
        got,
        (0..COUNT).collect::<Vec<_>>(),
        "in order, none missing"
    );
    assert!(streams >= 2, "the lifetime never ended a stream");
    let stats = sse_stats(&server);
    assert!(stats["max_lifetime_closes"].as_u64().unwrap() >= 2);
    assert_eq!(stats["gaps_reported"], 0);
}

#[test]
fn a_replay_longer_than_one_vectored_write_arrives_whole() {
    // One shared chunk per message: 1,000 of them are more than one
    // `writev` takes (MAX_IOVECS), so the replay needs several turns.
    const COUNT: usize = 1000;
    let server = TestServer::start(config());
    let mut p = Publisher::new(&server);
    for i in 0..COUNT {
        p.publish("many", &i.to_string());
    }
    let mut c = SseClient::open(&server, "/events?topic=many&since=0", "");
    for i in 0..COUNT {
        assert_eq!(c.next_event().data, i.to_string());
    }
    assert_eq!(sse_stats(&server)["messages_delivered"], COUNT);
}

/// A released long poll is written during the fan-out; its pipelined
/// publish is then answered inside the fan-out too. That message must wait
/// its turn: every stream still sees the two messages in publish order,
/// whether it comes before or after the long poll among the subscribers.
#[test]
fn a_message_published_inside_a_fan_out_keeps_publish_order() {
    let server = TestServer::start(config());
    let mut streams: Vec<SseClient> = (0..16)
        .map(|_| SseClient::open(&server, "/events?topic=order", ""))
        .collect();
    let mut parked = server.connect();
    parked
        .write_all(
            b"GET /long-poll?topic=order&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n\
              POST /publish?topic=order HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond",
        )
        .unwrap();
    wait_until("the long poll parked", || {
        server.stats()["transports"]["long_poll"]["holds_active"] == 1
    });
    streams.extend((0..16).map(|_| SseClient::open(&server, "/events?topic=order", "")));
    Publisher::new(&server).publish("order", "first");
    for c in &mut streams {
        let events = [c.next_event(), c.next_event()];
        assert_eq!(datas(&events), ["first", "second"]);
    }
    let mut reader = BufReader::new(parked);
    let released = read_response(&mut reader);
    assert_eq!(released.json()["messages"][0]["data"], "first");
    assert_eq!(
        read_response(&mut reader).status,
        200,
        "the pipelined publish"
    );
}
