//! `--redis` without a Redis: the node says why on `/healthz`, refuses
//! what needs the shared log with `503` and `Retry-After`, and keeps
//! serving the rest; without `--redis`, `/healthz` is `200`. (The checks
//! against a real Redis need `redis-server`: `scripts/redis.sh`.)

mod common;

use common::{wait_until, TestServer};
use pushlab::config::Config;
use pushlab::redis::url::RedisUrl;

/// A loopback port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn without_redis_healthz_is_200() {
    let server = TestServer::default();
    let r = server.request("GET", "/healthz", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({ "ok": true }));
    assert!(server.stats().get("broker").is_none());
}

#[test]
fn a_node_that_cannot_reach_redis_says_why_and_refuses_what_needs_the_log() {
    let port = closed_port();
    let url = format!("redis://:secret@127.0.0.1:{port}/2");
    let server = TestServer::start(Config {
        redis: Some(RedisUrl::parse(&url).unwrap()),
        ..Config::default()
    });
    // The first attempt fails at once (connection refused).
    let mut health = None;
    wait_until("/healthz names the refused connection", || {
        let r = server.request("GET", "/healthz", b"");
        let refused = r.text().contains("refused");
        health = Some(r);
        refused
    });
    let health = health.unwrap();
    assert_eq!(health.status, 503);
    let why = health.json()["why"].as_str().unwrap().to_string();
    assert!(why.contains(&format!("127.0.0.1:{port}")), "{why}");
    assert!(
        !why.contains("secret"),
        "the password is never shown: {why}"
    );
    for (method, path) in [
        ("POST", "/publish?topic=t"),
        ("GET", "/poll?topic=t&since=0"),
        ("GET", "/long-poll?topic=t"),
        ("GET", "/events?topic=t"),
    ] {
        let r = server.request(method, path, b"x");
        assert_eq!(r.status, 503, "{method} {path}: {}", r.text());
        assert_eq!(r.header("Retry-After"), Some("1"), "{method} {path}");
        assert!(r.text().contains("shared log"), "{}", r.text());
    }
    // The rest is served; /stats and /metrics show the broker's state.
    assert_eq!(server.request("GET", "/", b"").status, 200);
    let stats = server.stats();
    assert_eq!(stats["broker"]["append_connected"], false);
    assert_eq!(stats["broker"]["healthy"], false);
    let metrics = server.request("GET", "/metrics", b"").text();
    assert!(metrics.contains("pushlab_broker_healthy 0"), "{metrics}");
}
