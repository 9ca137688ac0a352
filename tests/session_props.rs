//! Property tests of one connection's state machine: seeded random
//! sequences of operations — request bytes split at random points, a
//! virtual clock, publishes through the hub, partial writes, peer EOF,
//! shutdown — against a `Session` with a memory hub (`Hub::memory`), through the pub API
//! only. No socket.
//!
//! The driver and the invariants live in `fuzz/src/harness.rs`, shared with
//! the `session` fuzz target, and are checked after every call:
//! - no panic;
//! - in HTTP mode the output is well-formed HTTP/1.1 (read by `httparse`,
//!   not by pushlab): status line, headers, exactly `Content-Length` bytes
//!   of body; event streams parse; nothing after `Connection: close`;
//! - pipelined requests are answered in order and exactly once;
//! - `next_deadline` is never in the past after a timeout was handled;
//! - a long-poll hold ends exactly once (message XOR timeout XOR dropped);
//! - the output queue stays within `--max-queued-bytes` plus one response;
//! - every write attempt is reported (`handle_written`, 0 bytes when the
//!   client reads nothing); the send timeout cuts a connection only after
//!   `--send-timeout` without progress, and always by then;
//! - the lifecycle only moves forward, and after `Closed` nothing is written.
//!
//! Reproduce a run with `PROPTEST_RNG_SEED=<n>`; run longer with
//! `PROPTEST_CASES=<n>` (see docs/testing.md). Failures that shrank to
//! something worth keeping are at the bottom as named regression tests.

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{canned, Kind, Rig, RigConfig, CANNED, TOPICS};
use proptest::prelude::*;
use pushlab::stats::Transport;

#[derive(Clone, Debug)]
enum Op {
    /// A canned request, sent in pieces of at most `piece` bytes (0: whole).
    Request {
        which: u8,
        close: bool,
        piece: usize,
        data: String,
    },
    Millis(u64),
    Seconds(u64),
    Publish {
        topic: usize,
        data: String,
    },
    /// Another client publishes bytes (a binary message).
    PublishBinary {
        topic: usize,
        data: Vec<u8>,
    },
    /// The client reads this many bytes.
    Write(usize),
    WriteAll,
    Eof,
    Shutdown,
    /// Raw bytes: pieces of requests, or junk.
    Raw(Vec<u8>),
}

fn data() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z \n\r]{0,12}",
        "\\PC{0,20}",
        "[x]{500,540}",
    ]
}

fn request() -> impl Strategy<Value = Op> {
    (0..CANNED, prop::bool::weighted(0.15), 0usize..40, data()).prop_map(
        |(which, close, piece, data)| Op::Request {
            which,
            close,
            piece,
            data,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => request(),
        3 => (0u64..3000).prop_map(Op::Millis),
        1 => (0u64..200).prop_map(Op::Seconds),
        3 => (0..TOPICS.len(), data()).prop_map(|(topic, data)| Op::Publish { topic, data }),
        1 => (0..TOPICS.len(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(topic, data)| Op::PublishBinary { topic, data }),
        3 => (1usize..400).prop_map(Op::Write),
        3 => Just(Op::WriteAll),
        1 => Just(Op::Eof),
        1 => Just(Op::Shutdown),
        1 => raw(),
    ]
}

fn raw() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (
            0..CANNED,
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(which, a, b)| {
                let bytes = canned(which, false, "hi").bytes;
                let (a, b) = (a.index(bytes.len()), b.index(bytes.len()));
                bytes[a.min(b)..a.max(b)].to_vec()
            }),
    ]
    .prop_map(Op::Raw)
}

fn knobs() -> impl Strategy<Value = RigConfig> {
    (
        prop_oneof![Just(0usize), 1usize..600, Just(64 * 1024)],
        0usize..6,
        prop_oneof![Just(0u64), 1u64..20],
        prop::option::weighted(0.2, 1u64..60),
        prop::bool::weighted(0.3),
        // Short send timeouts, so that the random clock steps reach them.
        prop_oneof![Just(60u64), 1u64..30],
    )
        .prop_map(
            |(max_queued_bytes, history, hb, lifetime, token, send)| RigConfig {
                max_queued_bytes,
                history,
                heartbeat: Duration::from_secs(hb),
                sse_max_lifetime: lifetime.map(Duration::from_secs),
                send_timeout: Duration::from_secs(send),
                publish_token: token.then(|| "s3cret".to_string()),
                ..RigConfig::default()
            },
        )
}

fn apply(rig: &mut Rig, op: &Op) {
    match op {
        Op::Request {
            which,
            close,
            piece,
            data,
        } => rig.send_canned(canned(*which, *close, data), *piece),
        Op::Millis(ms) => rig.advance(Duration::from_millis(*ms)),
        Op::Seconds(s) => rig.advance(Duration::from_secs(*s)),
        Op::Publish { topic, data } => rig.publish(TOPICS[*topic], data),
        Op::PublishBinary { topic, data } => rig.publish_binary(TOPICS[*topic], data),
        Op::Write(n) => rig.write(*n),
        Op::WriteAll => rig.write_all(),
        Op::Eof => rig.eof(),
        Op::Shutdown => rig.shutdown(),
        Op::Raw(bytes) => rig.send_raw(bytes),
    }
}

fn run(rc: &RigConfig, ops: &[Op]) -> Rig {
    let mut rig = Rig::new(rc);
    for op in ops {
        apply(&mut rig, op);
    }
    rig.finish();
    rig
}

/// Requests that get one plain response each (no stream, no upgrade).
fn plain_request() -> impl Strategy<Value = (u8, String)> {
    let plain: Vec<u8> = (0..CANNED)
        .filter(|&w| !matches!(canned(w, false, "").kind, Kind::Events | Kind::WebSocket))
        .collect();
    (prop::sample::select(plain), data())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    /// Any sequence of operations keeps every invariant of the harness.
    #[test]
    fn random_operation_sequences_keep_every_session_invariant(
        rc in knobs(),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        run(&rc, &ops);
    }

    /// Pipelined plain requests, split anywhere and read in any amounts,
    /// are each answered once, in order; nothing is left unanswered.
    #[test]
    fn pipelined_requests_are_answered_in_order_exactly_once(
        rc in knobs(),
        reqs in prop::collection::vec((plain_request(), 0usize..50), 1..12),
        writes in prop::collection::vec(0usize..300, 0..12),
    ) {
        let mut rig = Rig::new(&rc);
        for (i, ((which, data), piece)) in reqs.iter().enumerate() {
            rig.send_canned(canned(*which, false, data), *piece);
            if let Some(&n) = writes.get(i) {
                rig.write(n);
            }
        }
        rig.finish();
        prop_assume!(!rig.cut() && !rig.closed_unread);
        // A 413 (publish over --max-message) closes the connection: the
        // requests after it are never read.
        let answered = rig.wire().responses.len();
        let closed_at = rig.wire().responses.iter().position(|r| r.close);
        match closed_at {
            Some(i) => prop_assert_eq!(answered, i + 1),
            None => prop_assert_eq!(answered, reqs.len()),
        }
        for (r, ((which, data), _)) in rig.wire().responses.iter().zip(&reqs) {
            let sent = canned(*which, false, data);
            let got = r.answers.as_ref().expect("exact mode");
            prop_assert_eq!(&got.bytes, &sent.bytes, "answered out of order");
        }
    }

    /// The bytes the server writes do not depend on how the client's bytes
    /// were split into reads (chunking invariance of the whole session).
    #[test]
    fn how_requests_are_split_does_not_change_the_answers(
        reqs in prop::collection::vec((plain_request(), 1usize..30), 1..8),
    ) {
        let rc = RigConfig::default();
        let mut whole = Rig::new(&rc);
        let mut split = Rig::new(&rc);
        for ((which, data), piece) in &reqs {
            whole.send_canned(canned(*which, false, data), 0);
            split.send_canned(canned(*which, false, data), *piece);
        }
        whole.finish();
        split.finish();
        prop_assert_eq!(whole.wire().responses.len(), split.wire().responses.len());
        for (a, b) in whole.wire().responses.iter().zip(&split.wire().responses) {
            prop_assert_eq!(a.status, b.status);
            // `/stats` and `/metrics` count the bytes read so far, which
            // depends on the split by design (a socket observation).
            let target = a.answers.as_ref().map_or(&[][..], |c| &c.bytes[..]);
            let counters = target.starts_with(b"GET /stats") || target.starts_with(b"GET /metrics");
            if !counters {
                prop_assert_eq!(&a.body, &b.body);
            }
        }
    }

    /// A parked long poll is answered exactly once — by a message on its
    /// topics, or by its timeout — or dropped when the client hangs up.
    #[test]
    fn a_long_poll_hold_ends_exactly_once(
        which in prop::sample::select(vec![2u8, 4]),
        steps in prop::collection::vec(
            prop_oneof![
                (0..TOPICS.len()).prop_map(Some),
                Just(None),
            ],
            0..6,
        ),
        millis in prop::collection::vec(0u64..1500, 0..6),
        hang_up in prop::bool::weighted(0.2),
    ) {
        let rc = RigConfig::default();
        let mut rig = Rig::new(&rc);
        rig.send_canned(canned(which, false, ""), 0);
        // Canned 2 holds topic a for 1 s; canned 4 holds topic c for 30 s.
        let (held, timeout) = if which == 2 { ("a", 1_000) } else { ("c", 30_000) };
        let mut released_by = None;
        let mut elapsed = 0;
        for (i, step) in steps.iter().enumerate() {
            if let Some(t) = step {
                rig.publish(TOPICS[*t], "m");
                if TOPICS[*t] == held && released_by.is_none() && elapsed < timeout {
                    released_by = Some("message");
                }
            }
            let ms = *millis.get(i).unwrap_or(&0);
            elapsed += ms;
            rig.advance(Duration::from_millis(ms));
        }
        if hang_up {
            rig.eof();
        }
        rig.finish();
        let c = rig.stats().get(Transport::LongPoll).clone();
        prop_assert_eq!(c.holds_started, 1);
        let ends = c.holds_released_by_message + c.holds_released_by_timeout
            + c.holds_dropped_by_client;
        prop_assert_eq!(ends, 1, "{:?}", c);
        let answers = rig.wire().responses.len();
        if c.holds_dropped_by_client == 1 {
            prop_assert_eq!(answers, 0);
        } else {
            prop_assert_eq!(answers, 1);
            let body = String::from_utf8_lossy(&rig.wire().responses[0].body).into_owned();
            if released_by == Some("message") {
                prop_assert_eq!(c.holds_released_by_message, 1);
                prop_assert!(body.contains("\"data\":\"m\""), "{}", body);
            } else {
                prop_assert!(body.starts_with("{\"messages\":[]"), "{}", body);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    })]

    /// A client that reads its answers a little at a time, more often than
    /// `--send-timeout`, is never cut, however long it takes; one that then
    /// stops reading is cut once `--send-timeout` has passed.
    #[test]
    fn the_send_timeout_cuts_a_client_that_stops_reading_not_a_slow_one(
        reqs in prop::collection::vec(plain_request(), 1..6),
        piece in 1usize..200,
        gaps in prop::collection::vec(0u64..5_000, 0..40),
    ) {
        let send_timeout = Duration::from_secs(5);
        let rc = RigConfig { send_timeout, ..RigConfig::default() };
        let mut rig = Rig::new(&rc);
        for i in 0..8 {
            rig.publish(TOPICS[i % 2], &"x".repeat(500));
        }
        for (which, data) in &reqs {
            rig.send_canned(canned(*which, false, data), 0);
        }
        for gap in &gaps {
            rig.write(piece);
            rig.advance(Duration::from_millis(*gap));
        }
        prop_assert_eq!(rig.send_timeouts(), 0, "a steady reader was cut");
        let unread = !rig.closed && rig.queued() > 0;
        rig.advance(send_timeout);
        if unread {
            prop_assert!(rig.closed, "a client that stopped reading is still connected");
            prop_assert_eq!(rig.send_timeouts(), 1);
        }
    }
}

// ------------------------------------------------- regression tests --
// Failures found by the `session` fuzz target and kept as sequences of
// operations (the fixes and their unit tests are in src/session/mod.rs).

fn ops_of(rc: RigConfig, ops: &[Op]) {
    run(&rc, ops);
}

fn req(which: u8, close: bool, data: &str) -> Op {
    Op::Request {
        which,
        close,
        piece: 0,
        data: data.to_string(),
    }
}

/// Two pipelined requests, the first answer over `--max-queued-bytes`:
/// the second was never answered (a 408 at the head timeout instead).
#[test]
fn regression_pipelined_request_behind_a_full_queue_is_answered() {
    for max_queued_bytes in [0, 50] {
        let rc = RigConfig {
            max_queued_bytes,
            ..RigConfig::default()
        };
        let rig = run(&rc, &[req(3, false, ""), req(0, false, "")]);
        assert_eq!(rig.wire().responses.len(), 2);
    }
}

/// `100 Continue` alone filled the queue; the empty body behind it was
/// never read.
#[test]
fn regression_empty_body_behind_100_continue_is_read() {
    let rc = RigConfig {
        max_queued_bytes: 1,
        ..RigConfig::default()
    };
    let rig = run(&rc, &[req(7, true, "")]);
    assert_eq!(rig.wire().continues, 1);
    assert_eq!(rig.wire().responses[0].status, 200);
}

/// An HTTP/1.0 answer not read for a while got a 408 appended after it.
#[test]
fn regression_no_408_after_a_closing_response_read_late() {
    ops_of(
        RigConfig::default(),
        &[req(15, true, ""), Op::Seconds(101), Op::WriteAll],
    );
}

/// Shutdown while a second request was half sent, answer read late: a
/// 408 was appended and the session went from lingering back to closing.
#[test]
fn regression_no_408_after_shutdown_with_a_half_sent_request() {
    ops_of(
        RigConfig::default(),
        &[
            req(15, false, ""),
            Op::Raw(vec![0xff; 6]),
            Op::Shutdown,
            Op::Millis(9_727),
            Op::WriteAll,
            Op::Seconds(5),
        ],
    );
}
