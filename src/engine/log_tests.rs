//! The engine behind the log seam, with a log that commits later: what a
//! log on another process or on disk looks like to the engine. A publisher
//! is answered only when its message commits, subscribers see only
//! committed messages, pipelined requests wait behind the publish, and a
//! failed commit reaches the publisher as `503` / close `1013`.

use std::collections::VecDeque;

use super::memory_tests::{open, upgrade, Sink, T0};
use super::{Engine, Input};
use crate::config::Config;
use crate::hub::{
    Commit, Completion, Group, History, Hub, HubError, Kind, Log, LogEvent, LogOutput, Ticket,
    DEFAULT_HISTORY_MEMORY, DEFAULT_MAX_TOPICS,
};
use crate::time::Instant;
use crate::wire::websocket::{encode_masked_frame, DataOpcode, Opcode};

/// A log that holds every append until its driver reports it synced, like
/// a disk writer's fsync: ids are given at append, commits come with
/// a durable report ([`LogEvent::Disk`]), and [`LogEvent::Down`] fails what waits.
struct HeldLog {
    seq: u64,
    history: History,
    /// Appended, not yet synced: (ticket, seq, topic, kind, data, at).
    waiting: VecDeque<(Ticket, u64, String, Kind, String, Instant)>,
    commits: VecDeque<Commit>,
    output: VecDeque<LogOutput>,
}

impl HeldLog {
    fn new() -> HeldLog {
        HeldLog {
            seq: 0,
            history: History::new(
                16,
                std::time::Duration::from_secs(60),
                DEFAULT_HISTORY_MEMORY,
                DEFAULT_MAX_TOPICS,
            ),
            waiting: VecDeque::new(),
            commits: VecDeque::new(),
            output: VecDeque::new(),
        }
    }
}

impl Log for HeldLog {
    fn epoch(&self) -> &str {
        "e1"
    }

    fn head(&self) -> u64 {
        self.history_head()
    }

    fn append(
        &mut self,
        ticket: Ticket,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<(), HubError> {
        self.seq += 1;
        self.output.push_back(LogOutput::Records(Group {
            generation: 0,
            first_seq: self.seq,
            end_seq: self.seq + 1,
            bytes: data.as_bytes().to_vec(),
        }));
        self.waiting
            .push_back((ticket, self.seq, topic.into(), kind, data.into(), now));
        Ok(())
    }

    fn poll_commit(&mut self) -> Option<Commit> {
        self.commits.pop_front()
    }

    fn history(&self) -> &History {
        &self.history
    }

    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    fn pending(&self) -> usize {
        self.waiting.len()
    }

    fn handle_event(&mut self, event: LogEvent, _now: Instant) {
        match event {
            LogEvent::Disk(Completion::Durable { upto, .. }) => {
                while self.waiting.front().is_some_and(|w| w.1 < upto) {
                    let (ticket, seq, topic, kind, data, at) = self.waiting.pop_front().unwrap();
                    let id = crate::ids::format_id("e1", seq).into_boxed_str();
                    let outcome = self.history.append(&topic, seq, id, kind, &data, at);
                    self.commits.push_back(Commit {
                        ticket: Some(ticket),
                        outcome,
                    });
                }
            }
            LogEvent::Down { why, .. } => {
                for (ticket, ..) in self.waiting.drain(..) {
                    self.commits.push_back(Commit {
                        ticket: Some(ticket),
                        outcome: Err(HubError::Unavailable {
                            retry_after_secs: 1,
                            why: why.clone(),
                        }),
                    });
                }
            }
            LogEvent::Received { .. } | LogEvent::Up { .. } | LogEvent::Disk(_) => {}
        }
    }

    fn poll_output(&mut self) -> Option<LogOutput> {
        self.output.pop_front()
    }
}

impl HeldLog {
    /// The newest committed id.
    fn history_head(&self) -> u64 {
        self.seq - self.waiting.len() as u64
    }
}

/// The writer's report that message `seq` (and all before) is durable.
fn synced(seq: u64) -> LogEvent {
    LogEvent::Disk(Completion::Durable {
        generation: 0,
        upto: seq + 1,
    })
}

/// The driver lost the log (a disk failure, a lost connection): what waits fails.
fn down(why: &str) -> LogEvent {
    LogEvent::Down {
        link: 0,
        why: why.into(),
    }
}

/// The driver reports message `seq` (and all before) durable, then the
/// turn ends (the engine writes).
fn report_synced(engine: &mut Engine, io: &mut Sink, seq: u64) {
    engine.handle_log_event(T0, synced(seq), io);
    engine.end_turn(T0, io);
}

/// An SSE subscriber of topic `a`.
fn subscribe(engine: &mut Engine, io: &mut Sink) -> usize {
    open(
        engine,
        io,
        "GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n",
    )
}

fn engine() -> Engine {
    let hub = Hub::new(Box::new(HeldLog::new()), DEFAULT_MAX_TOPICS);
    Engine::with_hub(Config::default(), hub, T0)
}

fn text(io: &Sink, conn: usize) -> String {
    String::from_utf8_lossy(io.written.get(&conn).map_or(&[][..], |v| v)).into_owned()
}

const PUBLISH: &str = "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi";

#[test]
fn a_publish_is_answered_and_fanned_out_only_when_it_commits() {
    let mut engine = engine();
    let mut io = Sink::default();
    let sub = subscribe(&mut engine, &mut io);
    let before = text(&io, sub).len();
    let publisher = open(&mut engine, &mut io, PUBLISH);
    assert_eq!(text(&io, publisher), "", "no answer before the commit");
    assert_eq!(text(&io, sub).len(), before, "no fan-out before the commit");
    assert_eq!(engine.hub().usage().pending, 1);
    // The driver performs what the log asks, then reports the sync.
    let Some(LogOutput::Records(group)) = engine.poll_log_output() else {
        panic!("the log asks its driver to write the message");
    };
    assert_eq!((group.bytes.as_slice(), group.first_seq), (&b"hi"[..], 1));
    assert!(engine.poll_log_output().is_none());
    engine.handle(T0, Input::Log(synced(1)), &mut io);
    engine.end_turn(T0, &mut io);
    let answer = text(&io, publisher);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\r\n\r\n{\"topic\":\"a\",\"id\":\"e1-1\"}"),
        "{answer}"
    );
    assert!(text(&io, sub)[before..].contains("data: hi\n"));
    assert_eq!(engine.hub().usage().pending, 0);
    assert_eq!(engine.stats().messages_published, 1);
}

#[test]
fn requests_pipelined_behind_a_publish_wait_for_its_commit() {
    let mut engine = engine();
    let mut io = Sink::default();
    let conn = open(
        &mut engine,
        &mut io,
        &format!("{PUBLISH}GET /poll?topic=a&since=0 HTTP/1.1\r\nHost: t\r\n\r\n"),
    );
    assert_eq!(text(&io, conn), "");
    report_synced(&mut engine, &mut io, 1);
    let out = text(&io, conn);
    let publish = out
        .find(r#"{"topic":"a","id":"e1-1"}"#)
        .expect("publish answered");
    let poll = out
        .rfind(r#""data":"hi""#)
        .expect("the poll sees the message");
    assert!(publish < poll, "answers in request order: {out}");
}

#[test]
fn a_failed_commit_is_a_503_with_retry_after_and_reaches_no_subscriber() {
    let mut engine = engine();
    let mut io = Sink::default();
    let sub = subscribe(&mut engine, &mut io);
    let before = text(&io, sub).len();
    let publisher = open(&mut engine, &mut io, PUBLISH);
    engine.handle_log_event(T0, down("disk gone"), &mut io);
    engine.end_turn(T0, &mut io);
    let answer = text(&io, publisher);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1\r\n"), "{answer}");
    assert!(answer.contains("disk gone"), "{answer}");
    assert_eq!(text(&io, sub).len(), before);
}

#[test]
fn a_websocket_whose_message_fails_to_commit_is_closed_1013() {
    let mut engine = engine();
    let mut io = Sink::default();
    let ws = open(&mut engine, &mut io, &upgrade("/ws?topic=a"));
    let before = text(&io, ws).len();
    let mut frame = Vec::new();
    encode_masked_frame(
        Opcode::Data(DataOpcode::Text),
        true,
        [1, 2, 3, 4],
        b"hi",
        &mut frame,
    );
    engine.handle_read(T0, ws, &frame, true, &mut io);
    engine.end_turn(T0, &mut io);
    assert_eq!(text(&io, ws).len(), before, "nothing before the commit");
    engine.handle_log_event(T0, down("down"), &mut io);
    engine.end_turn(T0, &mut io);
    let out = io.written[&ws][before..].to_vec();
    // A close frame: 0x88, length, then the code 1013 (0x03f5).
    assert_eq!(out[0], 0x88, "{out:?}");
    assert_eq!(&out[2..4], &1013u16.to_be_bytes());
}

#[test]
fn a_commit_whose_publisher_left_is_still_fanned_out_and_answers_nobody_else() {
    let mut engine = engine();
    let mut io = Sink::default();
    let sub = subscribe(&mut engine, &mut io);
    let before = text(&io, sub).len();
    let publisher = open(&mut engine, &mut io, PUBLISH);
    engine.handle_reset(T0, publisher, &mut io);
    // A new connection takes the slot and waits for a request of its own.
    let next = open(&mut engine, &mut io, "");
    assert_eq!(next, publisher, "the slot is reused");
    io.written.remove(&next);
    report_synced(&mut engine, &mut io, 1);
    assert!(text(&io, sub)[before..].contains("data: hi\n"));
    assert_eq!(
        text(&io, next),
        "",
        "the answer is not given to the slot's new owner"
    );
}

#[test]
fn messages_committed_together_reach_subscribers_in_id_order() {
    let mut engine = engine();
    let mut io = Sink::default();
    let sub = subscribe(&mut engine, &mut io);
    let before = text(&io, sub).len();
    let first = open(&mut engine, &mut io, PUBLISH);
    let second = open(&mut engine, &mut io, PUBLISH);
    // One report commits both: answering the first publisher (whose write
    // goes on to what follows it) must not let the second overtake it.
    report_synced(&mut engine, &mut io, 2);
    for publisher in [first, second] {
        assert!(text(&io, publisher).starts_with("HTTP/1.1 200"));
    }
    let stream = text(&io, sub)[before..].to_string();
    let one = stream.find("id: e1-1\n").expect("e1-1 delivered");
    let two = stream.find("id: e1-2\n").expect("e1-2 delivered");
    assert!(one < two, "{stream}");
}

/// The answers' ids in `out`, in order, and the statuses of every answer.
fn answers(out: &str) -> (Vec<String>, Vec<String>) {
    let ids = out
        .match_indices("\"id\":\"")
        .map(|(at, m)| {
            let rest = &out[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    let statuses = out
        .match_indices("HTTP/1.1 ")
        .map(|(at, m)| out[at + m.len()..at + m.len() + 3].to_string())
        .collect();
    (ids, statuses)
}

#[test]
fn publishes_pipelined_behind_a_publish_are_appended_at_once_and_answered_in_order() {
    let mut engine = engine();
    let mut io = Sink::default();
    let poll = "GET /poll?topic=a&since=0 HTTP/1.1\r\nHost: t\r\n\r\n";
    let conn = open(
        &mut engine,
        &mut io,
        &format!("{PUBLISH}{PUBLISH}{PUBLISH}{poll}"),
    );
    // All three wait for one commit (a disk's group commit, one Redis round
    // trip), not one commit each; the poll waits behind them.
    assert_eq!(engine.hub().usage().pending, 3);
    assert_eq!(text(&io, conn), "");
    report_synced(&mut engine, &mut io, 2);
    let (ids, statuses) = answers(&text(&io, conn));
    assert_eq!(
        (ids, statuses),
        (
            vec!["e1-1".into(), "e1-2".into()],
            vec!["200".into(), "200".into()]
        )
    );
    report_synced(&mut engine, &mut io, 3);
    let out = text(&io, conn);
    let (ids, statuses) = answers(&out);
    assert_eq!(statuses, ["200", "200", "200", "200"], "{out}");
    // The three publishes' ids, then the poll's three messages.
    assert_eq!(
        ids,
        ["e1-1", "e1-2", "e1-3", "e1-1", "e1-2", "e1-3"],
        "{out}"
    );
    assert_eq!(engine.stats().messages_published, 3);
}

#[test]
fn a_pipelined_publish_that_would_be_refused_waits_its_turn() {
    let mut engine = engine();
    let mut io = Sink::default();
    // Not UTF-8 and not sent as bytes: 400, and the connection goes on.
    let mut bad =
        b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n\xff\xfe".to_vec();
    bad.extend_from_slice(PUBLISH.as_bytes());
    let conn = open(&mut engine, &mut io, PUBLISH);
    engine.handle_read(T0, conn, &bad, false, &mut io);
    assert_eq!(
        engine.hub().usage().pending,
        1,
        "nothing taken past the refusal"
    );
    report_synced(&mut engine, &mut io, 1);
    let (_, statuses) = answers(&text(&io, conn));
    assert_eq!(statuses, ["200", "400"]);
    assert_eq!(
        engine.hub().usage().pending,
        1,
        "the third is appended after"
    );
    report_synced(&mut engine, &mut io, 2);
    let (ids, statuses) = answers(&text(&io, conn));
    assert_eq!(
        (ids, statuses),
        (
            vec!["e1-1".into(), "e1-2".into()],
            vec!["200".into(), "400".into(), "200".into()]
        )
    );
}

#[test]
fn nothing_is_taken_past_a_publish_that_closes_the_connection() {
    let mut engine = engine();
    let mut io = Sink::default();
    let last = "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
    let conn = open(&mut engine, &mut io, &format!("{PUBLISH}{last}{PUBLISH}"));
    assert_eq!(engine.hub().usage().pending, 2);
    report_synced(&mut engine, &mut io, 2);
    let out = text(&io, conn);
    let (ids, _) = answers(&out);
    assert_eq!(ids, ["e1-1", "e1-2"], "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert_eq!(
        engine.hub().usage().pending,
        0,
        "the request after it is never read"
    );
}

#[test]
fn pipelined_publishes_waiting_together_stay_within_the_pipelining_bound() {
    let mut engine = engine();
    let mut io = Sink::default();
    let body = "x".repeat(crate::config::DEFAULT_MAX_PIPELINED_BYTES / 2 - 100);
    let publish = format!(
        "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let conn = open(&mut engine, &mut io, &publish.repeat(3));
    assert_eq!(engine.hub().usage().pending, 2, "a third would pass 64 KiB");
    report_synced(&mut engine, &mut io, 1);
    assert_eq!(
        engine.hub().usage().pending,
        2,
        "room for the third once the first is answered"
    );
    report_synced(&mut engine, &mut io, 3);
    let (ids, _) = answers(&text(&io, conn));
    assert_eq!(ids, ["e1-1", "e1-2", "e1-3"]);
}

#[test]
fn a_failure_answers_every_pipelined_publish_in_order() {
    let mut engine = engine();
    let mut io = Sink::default();
    let conn = open(&mut engine, &mut io, &PUBLISH.repeat(3));
    assert_eq!(engine.hub().usage().pending, 3);
    engine.handle_log_event(T0, down("disk gone"), &mut io);
    engine.end_turn(T0, &mut io);
    let (ids, statuses) = answers(&text(&io, conn));
    assert!(ids.is_empty());
    assert_eq!(statuses, ["503", "503", "503"]);
    // The connection goes on: a publish after the failure is taken.
    engine.handle_read(T0, conn, PUBLISH.as_bytes(), false, &mut io);
    assert_eq!(engine.hub().usage().pending, 1);
}
