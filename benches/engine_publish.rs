//! One publish through the whole engine: `POST /publish` read from a
//! connection, appended to the log, committed, answered, and fanned out to
//! 1,000 SSE subscribers, with a shell whose sockets take everything
//! (`cargo bench --bench engine_publish`). What the log seam adds to a
//! publish (the ticket, the commit queue) shows here, beside the fan-out it
//! drives.

use std::io::IoSlice;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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

fn publish(c: &mut Criterion) {
    for subscribers in [0usize, 1_000] {
        let config = Config {
            max_connections: 10_000,
            max_connections_per_ip: 10_000,
            ..Config::default()
        };
        let mut engine = Engine::new(config, "e1", Instant::ZERO);
        let mut io = Sink;
        for _ in 0..subscribers {
            open(
                &mut engine,
                &mut io,
                b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n",
            );
        }
        let publisher = open(&mut engine, &mut io, b"");
        let request = b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 64\r\n\r\n\
              0123456789012345678901234567890123456789012345678901234567890123";
        let mut g = c.benchmark_group("engine_publish");
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("to_{subscribers}_sse"), |b| {
            b.iter(|| {
                engine.handle_read(Instant::ZERO, publisher, request, true, &mut io);
                engine.end_turn(Instant::ZERO, &mut io);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, publish);
criterion_main!(benches);
