//! One publish through the whole engine: `POST /publish` read from a
//! connection, appended to the log, committed, answered, and fanned out to
//! 1,000 SSE subscribers, with a shell whose sockets take everything
//! (`cargo bench --bench engine_publish`). What the log seam adds to a
//! publish (the ticket, the commit queue) shows here, beside the fan-out it
//! drives.

use std::io::IoSlice;

use criterion::{criterion_group, Criterion, Throughput};
use pushlab::config::Config;
use pushlab::engine::{ConnId, Engine, Io, Peer, Written};
use pushlab::time::Instant;

/// Sockets that take every byte and keep none.
struct Sink;

impl Io for Sink {
    fn write(&mut self, _conn: ConnId, bufs: &[IoSlice<'_>]) -> Written {
        Written::Bytes(bufs.iter().map(|b| b.len()).sum())
    }
    fn want_writable(&mut self, _conn: ConnId, _on: bool) -> bool {
        true
    }
    fn shutdown_write(&mut self, _conn: ConnId) {}
    fn close(&mut self, _conn: ConnId, _unsent: usize) {}
}

fn open(engine: &mut Engine, io: &mut Sink, request: &[u8]) -> ConnId {
    let peer = Peer {
        ip: "127.0.0.1".into(),
    };
    let conn = engine.handle_accept(Instant::ZERO, &peer).expect("room");
    engine.handle_read(Instant::ZERO, conn, request, true, io);
    engine.end_turn(Instant::ZERO, io);
    conn
}

const REQUEST: &[u8] = b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 64\r\n\r\n\
    0123456789012345678901234567890123456789012345678901234567890123";

/// An engine with `subscribers` SSE streams on topic `a`, and a publisher.
fn setup(subscribers: usize) -> (Engine, ConnId) {
    let config = Config {
        max_connections: 10_000,
        max_connections_per_ip: 10_000,
        ..Config::default()
    };
    let mut engine = Engine::new(config, "e1", Instant::ZERO);
    for _ in 0..subscribers {
        open(
            &mut engine,
            &mut Sink,
            b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n",
        );
    }
    let publisher = open(&mut engine, &mut Sink, b"");
    (engine, publisher)
}

fn publish(c: &mut Criterion) {
    for subscribers in [0usize, 1_000] {
        let (mut engine, publisher) = setup(subscribers);
        let mut g = c.benchmark_group("engine_publish");
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("to_{subscribers}_sse"), |b| {
            b.iter(|| {
                engine.handle_read(Instant::ZERO, publisher, REQUEST, true, &mut Sink);
                engine.end_turn(Instant::ZERO, &mut Sink);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, publish);

/// `ENGINE_PUBLISH_FIXED=N`: N publishes to 1,000 subscribers and nothing
/// else, for an instruction count that does not depend on the machine's
/// load (`valgrind --tool=callgrind`).
fn main() {
    if let Some(n) = std::env::var("ENGINE_PUBLISH_FIXED")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let (mut engine, publisher) = setup(1_000);
        for _ in 0..n {
            engine.handle_read(Instant::ZERO, publisher, REQUEST, true, &mut Sink);
            engine.end_turn(Instant::ZERO, &mut Sink);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
