//! HTTP/1.1 over real loopback sockets: publish and poll with an independent
//! client (minreq) and with raw bytes; keep-alive, pipelining, 100-continue,
//! chunked bodies, HEAD; and every error status, each while a second,
//! healthy client is served normally.

mod common;

use std::io::{BufReader, Write};
use std::time::Duration;

use common::{read_response, read_to_end, wait_until, TestServer};
use pushlab::config::Config;

/// A healthy client's full round trip, to run while another misbehaves.
fn healthy_round_trip(srv: &TestServer, topic: &str) {
    let id = srv.publish(topic, "still fine");
    // The poll goes through an independent client.
    let r = minreq::get(srv.url(&format!("/poll?topic={topic}&since=0")))
        .with_timeout(10)
        .send()
        .unwrap();
    assert_eq!(r.status_code, 200);
    let v: serde_json::Value = serde_json::from_str(r.as_str().unwrap()).unwrap();
    assert_eq!(v["next"], id);
}

#[test]
fn publish_then_poll_then_poll_again_with_next() {
    let srv = TestServer::default();
    let r = minreq::post(srv.url("/publish?topic=news"))
        .with_body("hello")
        .with_timeout(10)
        .send()
        .unwrap();
    assert_eq!(r.status_code, 200);
    let published: serde_json::Value = serde_json::from_str(r.as_str().unwrap()).unwrap();
    let id = published["id"].as_str().unwrap().to_string();
    assert_eq!(published["topic"], "news");

    let r = minreq::get(srv.url("/poll?topic=news&since=0"))
        .with_timeout(10)
        .send()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(r.as_str().unwrap()).unwrap();
    assert_eq!(body["messages"][0]["data"], "hello");
    assert_eq!(body["messages"][0]["id"], id.as_str());
    assert_eq!(body["next"], id.as_str());
    assert_eq!(
        (body["missed"].as_u64(), body["reset"].as_bool()),
        (Some(0), Some(false))
    );

    let r = minreq::get(srv.url(&format!("/poll?topic=news&since={id}")))
        .with_timeout(10)
        .send()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(r.as_str().unwrap()).unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 0);
    assert_eq!(body["next"], id.as_str());
    let stats = srv.stats();
    assert_eq!(stats["transports"]["poll"]["empty_responses"], 1);
    assert_eq!(stats["transports"]["poll"]["messages_delivered"], 1);
}

#[test]
fn keep_alive_reuses_one_socket_for_many_requests() {
    let srv = TestServer::default();
    let s = srv.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..5 {
        w.write_all(b"GET /poll?topic=a HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    let poll = &srv.stats()["transports"]["poll"];
    assert_eq!(poll["requests"], 5);
    assert_eq!(poll["requests_on_reused_socket"], 4);
    assert_eq!(poll["sockets_opened"], 1);
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let srv = TestServer::default();
    let mut s = srv.connect();
    let mut batch = Vec::new();
    for i in 0..3 {
        batch.extend(
            format!("POST /publish?topic=p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nm{i}")
                .as_bytes(),
        );
    }
    batch.extend(b"GET /poll?topic=p&since=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(&batch).unwrap();
    let mut r = BufReader::new(s);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            read_response(&mut r).json()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let poll = read_response(&mut r).json();
    let got: Vec<&str> = poll["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["m0", "m1", "m2"]);
    assert_eq!(poll["next"], ids[2].as_str());
    assert!(
        read_to_end(r.get_mut()).is_empty(),
        "closed after Connection: close"
    );
}

#[test]
fn expect_100_continue_gets_an_interim_response_before_the_body() {
    let srv = TestServer::default();
    let s = srv.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"POST /publish?topic=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let (status, _) = common::read_head(&mut r);
    assert_eq!(status, 100);
    w.write_all(b"hello").unwrap();
    let resp = read_response(&mut r);
    assert_eq!(resp.status, 200);
    // Too large: refused at once, without reading the body.
    w.write_all(b"POST /publish?topic=c HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).status, 413);
}

#[test]
fn a_chunked_body_is_published_whole() {
    let srv = TestServer::default();
    let mut s = srv.connect();
    s.write_all(b"POST /publish?topic=ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n").unwrap();
    let resp = read_response(&mut BufReader::new(s));
    assert_eq!(resp.status, 200);
    let r = srv.request("GET", "/poll?topic=ch&since=0", b"").json();
    assert_eq!(r["messages"][0]["data"], "abcdefg");
}

#[test]
fn head_gets_the_headers_without_the_body() {
    let srv = TestServer::default();
    srv.publish("h", "x");
    let mut s = srv.connect();
    s.write_all(b"HEAD /poll?topic=h&since=0 HTTP/1.1\r\nHost: x\r\n\r\nGET /poll?topic=h&since=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = common::read_head(&mut r);
    assert_eq!(status, 200);
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "Content-Length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    // The next bytes are the second response, not a body.
    let get = read_response(&mut r);
    assert_eq!(get.body.len(), len);
}

#[test]
fn http_1_0_closes_after_the_response() {
    let srv = TestServer::default();
    let mut s = srv.connect();
    s.write_all(b"GET /stats HTTP/1.0\r\n\r\n").unwrap();
    let raw = read_to_end(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"));
}

#[test]
fn the_demo_page_is_served_at_the_root() {
    let srv = TestServer::default();
    let r = srv.request("GET", "/", b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("<html"));
}

#[test]
fn metrics_are_prometheus_text() {
    let srv = TestServer::default();
    srv.publish("m", "x");
    let r = srv.request("GET", "/metrics", b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("pushlab_messages_published_total 1"));
    assert!(r
        .text()
        .contains("pushlab_requests_total{transport=\"http\"}"));
}

/// Sends `raw` on its own connection and returns the status of the answer;
/// the healthy client is served meanwhile.
fn bad_request_status(srv: &TestServer, raw: &[u8]) -> (u16, common::Response) {
    let mut s = srv.connect();
    s.write_all(raw).unwrap();
    healthy_round_trip(srv, "healthy");
    let resp = read_response(&mut BufReader::new(s));
    (resp.status, resp)
}

#[test]
fn each_error_has_its_status_and_disturbs_no_one_else() {
    let srv = TestServer::start(Config {
        max_message: 1024,
        ..Config::default()
    });
    let cases: &[(&[u8], u16)] = &[
        (b"GET /poll?topic=a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /poll?topic=a&since=yesterday HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /poll?topic=bad/topic HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"POST /publish?topic=a HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        (b"POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n", 413),
        (b"POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n", 413),
        (b"POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n\xff\xfe", 400),
        (b"POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br\r\n\r\n", 501),
    ];
    for (raw, status) in cases {
        let (got, resp) = bad_request_status(&srv, raw);
        assert_eq!(
            got,
            *status,
            "{:?} → {}",
            String::from_utf8_lossy(raw),
            resp.text()
        );
        assert!(
            resp.text().starts_with(&status.to_string()),
            "the body says why: {}",
            resp.text()
        );
    }
    let (status, resp) = bad_request_status(&srv, b"DELETE /publish HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 405);
    assert_eq!(resp.header("allow"), Some("POST"));
}

#[test]
fn a_head_larger_than_the_limit_is_431() {
    let srv = TestServer::default();
    let mut raw = b"GET /poll?topic=a HTTP/1.1\r\nHost: x\r\n".to_vec();
    while raw.len() < pushlab::config::MAX_HEAD_BYTES + 100 {
        raw.extend(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    raw.extend(b"\r\n");
    let (status, _) = bad_request_status(&srv, &raw);
    assert_eq!(status, 431);
    // Never-ending head without a blank line: 431 as soon as the limit passes.
    let (status, _) = bad_request_status(&srv, &raw[..raw.len() - 2]);
    assert_eq!(status, 431);
}

#[test]
fn a_slowloris_client_gets_408_and_its_slot_back() {
    let srv = TestServer::start(Config {
        head_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    let mut slow = srv.connect();
    slow.write_all(b"GET /poll?topic=a HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    healthy_round_trip(&srv, "healthy");
    // It keeps trickling bytes, but the deadline counts from the first one.
    std::thread::sleep(Duration::from_millis(150));
    let _ = slow.write_all(b"X-A: b\r\n");
    let resp = read_response(&mut BufReader::new(slow.try_clone().unwrap()));
    assert_eq!(resp.status, 408);
    assert!(read_to_end(&mut slow).is_empty());
    // A client that connects and says nothing is timed out as well.
    let mut silent = srv.connect();
    let resp = read_response(&mut BufReader::new(silent.try_clone().unwrap()));
    assert_eq!(resp.status, 408);
    assert!(read_to_end(&mut silent).is_empty());
    wait_until("both slots freed", || {
        srv.stats()["transports"]["http"]["sockets_open"] == 1
    });
}

#[test]
fn a_wrong_or_missing_publish_token_is_401() {
    let srv = TestServer::start(Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    });
    let (status, resp) = bad_request_status(
        &srv,
        b"POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(status, 401);
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    let (status, _) = bad_request_status(&srv, b"POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(status, 401);
    let r = minreq::post(srv.url("/publish?topic=a"))
        .with_header("Authorization", "Bearer s3cret")
        .with_body("x")
        .with_timeout(10)
        .send()
        .unwrap();
    assert_eq!(r.status_code, 200);
}

#[test]
fn over_the_connection_limit_new_sockets_get_503() {
    let srv = TestServer::start(Config {
        max_connections: 2,
        ..Config::default()
    });
    let held: Vec<_> = (0..2).map(|_| srv.connect()).collect();
    wait_until("two connections open", || {
        // Only a third socket can ask; it is refused while two are held.
        let mut s = srv.connect();
        let raw = read_to_end(&mut s);
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 503")
    });
    drop(held);
    wait_until("slots free again", || {
        srv.request("GET", "/stats", b"").status == 200
    });
    assert!(srv.stats()["connections_refused"].as_u64().unwrap() >= 1);
}

#[test]
fn shutdown_answers_in_flight_requests_and_stops() {
    let mut srv = TestServer::default();
    let mut s = srv.connect();
    s.write_all(b"GET /long-poll?topic=a&timeout=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_until("the hold to start", || {
        srv.stats()["transports"]["long_poll"]["holds_active"] == 1
    });
    srv.stop();
    let resp = read_response(&mut BufReader::new(s));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
}

#[test]
fn the_trace_stream_shows_other_sockets_and_never_itself() {
    let srv = TestServer::default();
    let mut watcher = srv.connect();
    watcher
        .write_all(b"GET /trace HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(watcher);
    let (status, headers) = common::read_head(&mut r);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "Content-Type" && v == "text/event-stream"));
    let id = srv.publish("traced", "x");
    let mut parser = pushlab::wire::sse::Parser::new();
    let mut kinds = Vec::new();
    let mut buf = [0u8; 4096];
    // The publish's socket: accept, request, response, close.
    while !kinds.contains(&"close".to_string()) {
        let n = std::io::Read::read(r.get_mut(), &mut buf).unwrap();
        assert!(n > 0, "trace stream ended");
        parser.feed(&buf[..n]);
        while let Ok(pushlab::wire::sse::Decoded::Event(e)) = parser.next_event() {
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["kind"].as_str(), Some(e.event_type.as_str()));
            assert!(v["conn"].is_u64() && v["transport"].is_string());
            kinds.push(e.event_type);
        }
    }
    assert_eq!(kinds[..2], ["accept".to_string(), "request".to_string()]);
    assert!(kinds.contains(&"response".to_string()));
    let _ = id;
}

/// Connections are named in the trace by a serial number, never by their
/// reused slot: three clients one after the other are three connections.
#[test]
fn the_trace_names_each_connection_once_even_when_its_slot_is_reused() {
    let srv = TestServer::default();
    let mut watcher = srv.connect();
    watcher
        .write_all(b"GET /trace HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(watcher);
    assert_eq!(common::read_head(&mut r).0, 200);
    let mut parser = pushlab::wire::sse::Parser::new();
    let mut buf = [0u8; 4096];
    let mut accepted = Vec::new();
    for i in 0..3 {
        srv.publish("traced", &i.to_string());
        // Wait for this client's close, so the next one can take its slot.
        let mut closed = false;
        while !closed {
            let n = std::io::Read::read(r.get_mut(), &mut buf).unwrap();
            assert!(n > 0, "trace stream ended");
            parser.feed(&buf[..n]);
            while let Ok(pushlab::wire::sse::Decoded::Event(e)) = parser.next_event() {
                let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                let conn = v["conn"].as_u64().unwrap();
                match e.event_type.as_str() {
                    "accept" => accepted.push(conn),
                    "close" => closed = accepted.last() == Some(&conn),
                    _ => {}
                }
            }
        }
    }
    assert_eq!(accepted.len(), 3, "{accepted:?}");
    assert!(
        accepted[0] < accepted[1] && accepted[1] < accepted[2],
        "ids reused: {accepted:?}"
    );
}

/// Regression (fuzz target `session`): requests pipelined behind an answer
/// that fills `--max-queued-bytes` are answered once it is written, instead
/// of waiting for the head timeout and a 408.
#[test]
fn pipelined_requests_behind_a_full_output_queue_are_all_answered() {
    let srv = TestServer::start(Config {
        max_queued_bytes: 100,
        head_timeout: Duration::from_secs(60),
        ..Config::default()
    });
    let s = srv.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let req = b"GET /poll?topic=a HTTP/1.1\r\nHost: x\r\n\r\n";
    w.write_all(&req.repeat(5)).unwrap();
    for _ in 0..5 {
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200);
    }
}
