//! The engine and the memory bounds: a message's wire forms live only for
//! its fan-out, and the budget for messages being assembled returns to 0
//! however connections end. Driven with a fake shell that takes every byte.

use std::collections::HashMap;
use std::io::IoSlice;

use super::{ConnId, Engine, Io, Written};
use crate::config::Config;
use crate::hub::Kind;
use crate::session::encoded;
use crate::time::Instant;

/// A shell whose sockets take everything at once.
#[derive(Default)]
pub(super) struct Sink {
    pub(super) written: HashMap<ConnId, Vec<u8>>,
}

impl Io for Sink {
    fn write(&mut self, conn: ConnId, bufs: &[IoSlice<'_>]) -> Written {
        let out = self.written.entry(conn).or_default();
        let mut n = 0;
        for b in bufs {
            out.extend_from_slice(b);
            n += b.len();
        }
        Written::Bytes(n)
    }

    fn want_writable(&mut self, _conn: ConnId, _on: bool) -> bool {
        true
    }

    fn shutdown_write(&mut self, _conn: ConnId) {}

    fn close(&mut self, _conn: ConnId, _unsent: usize) {}
}

pub(super) const T0: Instant = Instant::ZERO;

pub(super) fn open(engine: &mut Engine, io: &mut Sink, request: &str) -> ConnId {
    let conn = engine
        .handle_accept(
            T0,
            &super::Peer {
                ip: "192.0.2.1".into(),
            },
        )
        .expect("room");
    engine.handle_read(T0, conn, request.as_bytes(), true, io);
    engine.end_turn(T0, io);
    conn
}

pub(super) fn upgrade(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

#[test]
fn a_message_keeps_no_wire_form_once_every_subscriber_has_it() {
    let mut engine = Engine::new(Config::default(), "e1", T0);
    let mut io = Sink::default();
    let subscribers = [
        open(&mut engine, &mut io, &upgrade("/ws?topic=h")),
        open(
            &mut engine,
            &mut io,
            "GET /events?topic=h HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        open(
            &mut engine,
            &mut io,
            "GET /events?topic=h,x HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        open(
            &mut engine,
            &mut io,
            "GET /long-poll?topic=h HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
    ];
    let written = |io: &Sink, c: &ConnId| io.written.get(c).map_or(0, Vec::len);
    let before: Vec<usize> = subscribers.iter().map(|c| written(&io, c)).collect();
    // Control characters and newlines: several times larger in every form.
    let data = "\u{1}\n".repeat(2048);
    engine
        .handle_publish(T0, "h", Kind::Text, &data, &mut io)
        .unwrap();
    let topics: [std::rc::Rc<str>; 1] = ["h".into()];
    let batch = engine.hub_mut().read(&topics, &crate::hub::Cursor::All, T0);
    let msg = batch.messages[0].clone();
    engine.end_turn(T0, &mut io);
    for (conn, before) in subscribers.iter().zip(before) {
        let got = written(&io, conn) - before;
        assert!(got > 2 * data.len(), "conn {conn} got {got} bytes");
    }
    assert_eq!(
        encoded::cached_bytes(&msg),
        0,
        "forms dropped after the fan-out"
    );
    let kept = engine.hub().usage().history_bytes;
    assert!(
        kept < data.len() + 1024,
        "{kept} bytes kept for {}",
        data.len()
    );
    // A later poll makes its own form and keeps none.
    let poll = open(
        &mut engine,
        &mut io,
        "GET /poll?topic=h&since=0 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert!(io.written[&poll].len() > 6 * 2048);
    assert_eq!(encoded::cached_bytes(&msg), 0);
}

#[test]
fn the_assembly_budget_returns_to_zero_when_connections_end_mid_message() {
    let mut engine = Engine::new(Config::default(), "e1", T0);
    let mut io = Sink::default();
    let ws = open(&mut engine, &mut io, &upgrade("/echo"));
    let publisher = open(
        &mut engine,
        &mut io,
        "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\n",
    );
    // Half of a 1 MiB frame, and half of a 60,000-byte body.
    let mut frame = Vec::new();
    crate::wire::websocket::encode_masked_frame(
        crate::wire::websocket::Opcode::Data(crate::wire::websocket::DataOpcode::Binary),
        true,
        [1, 2, 3, 4],
        &vec![0; 1 << 20],
        &mut frame,
    );
    engine.handle_read(T0, ws, &frame[..1 << 19], true, &mut io);
    engine.handle_read(T0, publisher, &[b'x'; 30_000], true, &mut io);
    assert!(engine.assembly().used() > (1 << 19) - 32 * 1024);
    // One resets, the other hangs up.
    engine.handle_reset(T0, ws, &mut io);
    engine.handle_eof(T0, publisher, &mut io);
    engine.end_turn(T0, &mut io);
    assert_eq!(engine.assembly().used(), 0);
}
