//! A whole connection: one `Session` fed arbitrary bytes, canned requests,
//! time steps, publishes, partial writes, EOF and shutdown, driven as the
//! event loop drives it (`pushlab_fuzz::harness`).
//!
//! Oracle (checked by the harness after every call): no panic; what the
//! server writes in HTTP mode is well-formed HTTP/1.1 (status line, headers,
//! exactly Content-Length bytes of body) and, in streaming modes, a valid
//! event stream or valid WebSocket frames; requests answered in order and
//! exactly once; the lifecycle only moves forward; `next_deadline` is never
//! in the past after a timeout; the output queue stays bounded; every
//! long-poll hold ends exactly one way; nothing is written after
//! `Connection: close` or once the connection is closed.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pushlab_fuzz::harness::{canned, Rig, RigConfig, TOPICS};

#[derive(Arbitrary, Debug)]
struct Knobs {
    max_queued_bytes: u16,
    history: u8,
    heartbeat_s: u8,
    lifetime_s: Option<u8>,
    token: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Raw bytes from the client.
    Raw(Vec<u8>),
    /// A canned request, sent in pieces of at most `piece` bytes.
    Request {
        which: u8,
        close: bool,
        piece: u8,
        data: String,
    },
    /// Milliseconds pass.
    Millis(u16),
    /// Seconds pass.
    Seconds(u8),
    /// Another client publishes.
    Publish { topic: u8, data: String },
    /// Another client publishes bytes (a binary message).
    PublishBinary { topic: u8, data: Vec<u8> },
    /// The server writes this many bytes.
    Write(u16),
    /// The server writes everything queued.
    WriteAll,
    /// The client shuts its write side.
    Eof,
    /// The server shuts down.
    Shutdown,
}

#[derive(Arbitrary, Debug)]
struct Run {
    knobs: Knobs,
    ops: Vec<Op>,
}

fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fuzz_target!(|run: Run| {
    let k = &run.knobs;
    let rc = RigConfig {
        max_queued_bytes: usize::from(k.max_queued_bytes),
        history: usize::from(k.history % 16),
        heartbeat: Duration::from_secs(u64::from(k.heartbeat_s % 40)),
        sse_max_lifetime: k.lifetime_s.map(|s| Duration::from_secs(u64::from(s) + 1)),
        publish_token: k.token.then(|| "s3cret".to_string()),
        ..RigConfig::default()
    };
    let mut rig = Rig::new(&rc);
    for op in run.ops.iter().take(64) {
        match op {
            Op::Raw(bytes) => rig.send_raw(&bytes[..bytes.len().min(4096)]),
            Op::Request {
                which,
                close,
                piece,
                data,
            } => rig.send_canned(canned(*which, *close, clip(data, 600)), usize::from(*piece)),
            Op::Millis(ms) => rig.advance(Duration::from_millis(u64::from(*ms))),
            Op::Seconds(s) => rig.advance(Duration::from_secs(u64::from(*s))),
            Op::Publish { topic, data } => {
                rig.publish(TOPICS[usize::from(*topic) % TOPICS.len()], clip(data, 512))
            }
            Op::PublishBinary { topic, data } => {
                let topic = TOPICS[usize::from(*topic) % TOPICS.len()];
                rig.publish_binary(topic, &data[..data.len().min(512)])
            }
            Op::Write(n) => rig.write(usize::from(*n)),
            Op::WriteAll => rig.write_all(),
            Op::Eof => rig.eof(),
            Op::Shutdown => rig.shutdown(),
        }
    }
    rig.finish();
});
