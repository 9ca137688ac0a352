//! The Redis log's state machine against the scripted fake: nodes that
//! append and tail one shared log, a Redis that restarts empty, is
//! flushed, trims what a slow node had not read, stops answering or
//! refuses connections — with a virtual clock and no socket.

use std::time::Duration;

use super::backoff::RECONNECT_MIN;
use super::fake::FakeRedis;
use super::log::{RedisLog, RedisSettings, APPEND_LINK, TAIL_BLOCK, TAIL_LINK};
use super::script::LogKeys;
use super::url::RedisUrl;
use crate::ids::Cursor;
use crate::log::{Commit, History, HubError, Kind, Link, Log, LogEvent, LogOutput, Notice, Ticket};
use crate::time::Instant;
use crate::wire::resp::{encode_reply, Reply};

const TIMEOUT: Duration = Duration::from_secs(2);
const PREFIX: &str = "t:";

/// What a node's engine would have seen, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// A committed message: its ticket (this node's) and id.
    Message {
        ticket: Option<Ticket>,
        id: String,
        topic: String,
        kind: Kind,
        data: String,
    },
    /// A failed append.
    Failed {
        ticket: Ticket,
        error: HubError,
    },
    Notice(Notice),
}

struct Node {
    log: RedisLog,
    /// The fake's connection ids are `base + link`.
    base: usize,
    seen: Vec<Seen>,
    /// Links whose bytes stay on the wire (a slow network): sent later.
    paused: [bool; 2],
    held: [Vec<u8>; 2],
    /// When each link was asked to connect.
    connects: Vec<(Link, Instant)>,
}

struct Rig {
    redis: FakeRedis,
    nodes: Vec<Node>,
    now: Instant,
    /// Connections are refused (Redis is not running).
    refusing: bool,
    /// Redis takes bytes but runs nothing (SIGSTOP).
    stopped: bool,
}

fn settings(stream_len: u64, max_pending: usize, url: &str) -> RedisSettings {
    RedisSettings {
        url: RedisUrl::parse(url).unwrap(),
        prefix: PREFIX.into(),
        max_pending,
        timeout: TIMEOUT,
        stream_len,
        max_message: 1024,
    }
}

fn history() -> History {
    History::new(16, Duration::from_secs(3600), 1 << 20, 100)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Rig {
    fn new() -> Rig {
        Rig {
            redis: FakeRedis::new(LogKeys::new(PREFIX)),
            nodes: Vec::new(),
            now: Instant::ZERO,
            refusing: false,
            stopped: false,
        }
    }

    /// A node whose stream keeps `stream_len` entries, started and synced.
    fn node_with(&mut self, seed: u64, settings: RedisSettings) -> usize {
        let log = RedisLog::new(settings, &format!("p{seed}"), history(), seed);
        self.nodes.push(Node {
            log,
            base: self.nodes.len() * 2,
            seen: Vec::new(),
            paused: [false; 2],
            held: [Vec::new(), Vec::new()],
            connects: Vec::new(),
        });
        let i = self.nodes.len() - 1;
        self.advance(ms(1));
        i
    }

    fn node(&mut self, seed: u64) -> usize {
        self.node_with(seed, settings(100, 4, "redis://127.0.0.1:6379"))
    }

    fn log(&mut self, node: usize) -> &mut RedisLog {
        &mut self.nodes[node].log
    }

    /// Moves bytes between the nodes and the fake until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            self.redis.set_now(self.now);
            for node in &mut self.nodes {
                let now = self.now;
                while let Some(out) = node.log.poll_output() {
                    moved = true;
                    match out {
                        LogOutput::Connect { link } => {
                            node.connects.push((link, now));
                            let event = if self.refusing {
                                LogEvent::Down {
                                    link,
                                    why: "connection refused".into(),
                                }
                            } else {
                                self.redis.connect_on(node.base + usize::from(link));
                                node.held[usize::from(link)].clear();
                                LogEvent::Up { link }
                            };
                            node.log.handle_event(event, now);
                        }
                        LogOutput::Send { link, bytes } => {
                            node.held[usize::from(link)].extend_from_slice(&bytes)
                        }
                        LogOutput::Close { link } => {
                            self.redis.disconnect(node.base + usize::from(link));
                            node.held[usize::from(link)].clear();
                        }
                        other => panic!("not a Redis log's output: {other:?}"),
                    }
                }
                for link in [APPEND_LINK, TAIL_LINK] {
                    let id = node.base + usize::from(link);
                    if self.stopped
                        || node.paused[usize::from(link)]
                        || !self.redis.is_connected(id)
                    {
                        continue;
                    }
                    let bytes = std::mem::take(&mut node.held[usize::from(link)]);
                    let mut answer = if bytes.is_empty() {
                        Vec::new()
                    } else {
                        self.redis.handle_bytes_on(id, &bytes)
                    };
                    answer.extend(self.redis.take_output(id));
                    if !answer.is_empty() {
                        moved = true;
                        let event = LogEvent::Received {
                            link,
                            bytes: answer,
                        };
                        node.log.handle_event(event, now);
                    }
                }
                loop {
                    if let Some(notice) = node.log.poll_notice() {
                        node.seen.push(Seen::Notice(notice));
                    } else if let Some(commit) = node.log.poll_commit() {
                        node.seen.push(seen(commit));
                    } else {
                        break;
                    }
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Lets `d` pass in steps of 10 ms, firing the nodes' timers.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            if self.now >= end {
                return;
            }
            self.now = (self.now + ms(10)).min(end);
            for node in &mut self.nodes {
                if node.log.poll_at().is_some_and(|at| at <= self.now) {
                    node.log.handle_timeout(self.now);
                }
            }
        }
    }

    fn append(
        &mut self,
        node: usize,
        ticket: Ticket,
        topic: &str,
        data: &str,
    ) -> Result<(), HubError> {
        let now = self.now;
        let result = self.log(node).append(ticket, topic, Kind::Text, data, now);
        self.pump();
        result
    }

    /// Redis restarted with nothing: every connection is reset.
    fn restart_redis_empty(&mut self) {
        self.redis.restart_empty();
        for node in &mut self.nodes {
            for link in [APPEND_LINK, TAIL_LINK] {
                let why = "connection reset by peer".into();
                node.log
                    .handle_event(LogEvent::Down { link, why }, self.now);
            }
        }
        self.pump();
    }

    fn messages(&self, node: usize) -> Vec<(Option<Ticket>, String, String)> {
        self.nodes[node]
            .seen
            .iter()
            .filter_map(|s| match s {
                Seen::Message {
                    ticket, id, data, ..
                } => Some((*ticket, id.clone(), data.clone())),
                _ => None,
            })
            .collect()
    }

    fn ids(&self, node: usize) -> Vec<String> {
        self.messages(node).into_iter().map(|m| m.1).collect()
    }

    fn failures(&self, node: usize) -> Vec<(Ticket, HubError)> {
        self.nodes[node]
            .seen
            .iter()
            .filter_map(|s| match s {
                Seen::Failed { ticket, error } => Some((*ticket, error.clone())),
                _ => None,
            })
            .collect()
    }

    fn notices(&self, node: usize) -> Vec<Notice> {
        self.nodes[node]
            .seen
            .iter()
            .filter_map(|s| match s {
                Seen::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn problem(&self, node: usize) -> Option<String> {
        self.status(node).problem
    }

    fn status(&self, node: usize) -> crate::log::BrokerStatus {
        self.nodes[node].log.broker(self.now).unwrap()
    }
}

fn seen(commit: Commit) -> Seen {
    match (commit.ticket, commit.outcome) {
        (ticket, Ok(m)) => Seen::Message {
            ticket,
            id: m.id.to_string(),
            topic: m.topic.to_string(),
            kind: m.kind,
            data: m.data.to_string(),
        },
        (Some(ticket), Err(error)) => Seen::Failed { ticket, error },
        (None, Err(e)) => panic!("a failure without a ticket: {e}"),
    }
}

fn status(e: &HubError) -> (u16, u32) {
    match e {
        HubError::Unavailable {
            retry_after_secs, ..
        } => (503, *retry_after_secs),
        other => (other.status(), 0),
    }
}

#[test]
fn a_node_installs_its_epoch_and_syncs_before_anything_else() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    assert!(rig.log(a).is_synced());
    assert_eq!(rig.redis.epoch.as_deref(), Some("p1"));
    assert_eq!(rig.log(a).epoch(), "p1");
    assert_eq!(rig.problem(a), None);
    // A node that starts later adopts the log's epoch, not its own.
    let b = rig.node(2);
    assert_eq!(rig.log(b).epoch(), "p1");
    assert!(rig.notices(b).is_empty(), "adopting at start is no reset");
}

#[test]
fn a_publish_commits_when_the_tail_reads_it_back_with_its_ticket() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    // Hold the tail's bytes: the script runs, but nothing is read back.
    rig.nodes[a].paused[usize::from(TAIL_LINK)] = true;
    rig.append(a, 7, "news", "hello").unwrap();
    assert_eq!(rig.redis.seq, 1, "in Redis");
    assert!(
        rig.messages(a).is_empty(),
        "not committed before the tail reads it"
    );
    assert_eq!(rig.log(a).pending(), 1);
    rig.nodes[a].paused[usize::from(TAIL_LINK)] = false;
    rig.pump();
    assert_eq!(
        rig.messages(a),
        [(Some(7), "p1-1".to_string(), "hello".to_string())]
    );
    assert_eq!(rig.log(a).pending(), 0);
    assert_eq!(rig.log(a).head(), 1);
}

#[test]
fn two_nodes_see_every_message_once_in_one_order_each_its_own_with_a_ticket() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    let b = rig.node(2);
    for i in 0..10u64 {
        let (node, ticket) = if i % 3 == 0 { (b, 100 + i) } else { (a, i) };
        let data = format!("m{i}");
        let now = rig.now;
        rig.log(node)
            .append(ticket, "t", Kind::Text, &data, now)
            .unwrap();
        if i % 2 == 0 {
            rig.pump();
        }
    }
    rig.advance(ms(50));
    let order = |rig: &Rig, n| -> Vec<(String, String)> {
        rig.messages(n)
            .into_iter()
            .map(|(_, id, d)| (id, d))
            .collect()
    };
    assert_eq!(order(&rig, a), order(&rig, b), "the same order on both");
    let ids = rig.ids(a);
    let expected: Vec<String> = (1..=10).map(|n| format!("p1-{n}")).collect();
    assert_eq!(ids, expected, "consecutive, strictly increasing");
    // B's tickets are 100 and up.
    for (node, b_is_mine) in [(a, false), (b, true)] {
        for (ticket, _, data) in rig.messages(node) {
            let i: u64 = data[1..].parse().unwrap();
            let own_ticket = if i % 3 == 0 { 100 + i } else { i };
            if (own_ticket >= 100) == b_is_mine {
                assert_eq!(ticket, Some(own_ticket), "{data} on node {node}");
            } else {
                assert_eq!(ticket, None, "{data} on node {node}");
            }
        }
    }
}

#[test]
fn past_max_pending_a_publish_is_refused_with_503() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    rig.nodes[a].paused[usize::from(APPEND_LINK)] = true;
    for ticket in 1..=4 {
        rig.append(a, ticket, "t", "x").unwrap();
    }
    let refused = rig.append(a, 5, "t", "x").unwrap_err();
    assert_eq!(status(&refused).0, 503);
    assert!(
        refused.to_string().contains("--redis-max-pending"),
        "{refused}"
    );
    rig.nodes[a].paused[usize::from(APPEND_LINK)] = false;
    rig.pump();
    assert_eq!(rig.ids(a).len(), 4);
    rig.append(a, 6, "t", "x").unwrap();
}

#[test]
fn a_redis_that_refuses_connections_gets_503_with_retry_after_and_a_reason() {
    let mut rig = Rig::new();
    rig.refusing = true;
    let a = rig.node(1);
    let err = rig.append(a, 1, "t", "x").unwrap_err();
    let (code, retry) = status(&err);
    assert_eq!(code, 503);
    assert!(retry >= 1);
    assert!(err.to_string().contains("connection refused"), "{err}");
    let problem = rig.problem(a).expect("unhealthy");
    assert!(problem.contains("127.0.0.1:6379"), "{problem}");
    assert!(!rig.log(a).is_synced());
    // Redis comes up: the next attempt connects and syncs.
    rig.refusing = false;
    rig.advance(Duration::from_secs(3));
    assert_eq!(rig.problem(a), None);
    rig.append(a, 2, "t", "x").unwrap();
    rig.pump();
    assert_eq!(rig.ids(a), ["p1-1"]);
}

#[test]
fn reconnections_back_off_with_jitter_from_the_seed() {
    let delays = |seed: u64| {
        let mut rig = Rig::new();
        rig.refusing = true;
        let a = rig.node(seed);
        rig.advance(Duration::from_secs(10));
        let times: Vec<Instant> = rig.nodes[a]
            .connects
            .iter()
            .filter(|(link, _)| *link == APPEND_LINK)
            .map(|(_, at)| *at)
            .collect();
        times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    };
    let d = delays(1);
    assert!(d.len() >= 5, "{d:?}");
    // Each within [step/2, step] (+ the 10 ms steps of the rig's clock),
    // steps doubling from RECONNECT_MIN to the cap.
    let mut step = RECONNECT_MIN;
    for delay in &d {
        assert!(
            *delay >= step / 2 && *delay <= step + ms(10),
            "{delay:?} for step {step:?}"
        );
        step = (step * 2).min(super::backoff::RECONNECT_MAX);
    }
    assert_eq!(delays(1), d, "the same seed, the same delays");
    assert_ne!(delays(2), d, "another node, other delays");
}

#[test]
fn noscript_loads_the_script_again_and_keeps_the_order_of_appends() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    rig.append(a, 1, "t", "m1").unwrap();
    // SCRIPT FLUSH: the next appends, pipelined together, get NOSCRIPT.
    rig.redis.scripts.clear();
    let now = rig.now;
    for (ticket, data) in [(2, "m2"), (3, "m3")] {
        rig.log(a)
            .append(ticket, "t", Kind::Text, data, now)
            .unwrap();
    }
    rig.pump();
    // One sent while the reloaded ones are still on their way waits.
    rig.append(a, 4, "t", "m4").unwrap();
    rig.advance(ms(20));
    let data: Vec<String> = rig.messages(a).into_iter().map(|m| m.2).collect();
    assert_eq!(data, ["m1", "m2", "m3", "m4"]);
    assert!(rig.failures(a).is_empty());
    let loads = rig
        .redis
        .received
        .iter()
        .filter(|c| c[0].eq_ignore_ascii_case(b"SCRIPT"))
        .count();
    assert_eq!(loads, 2, "at login, and once after the loss");
}

#[test]
fn redis_restarted_empty_starts_a_new_epoch_and_every_subscriber_is_told_reset() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    let b = rig.node(2);
    rig.append(a, 1, "t", "before").unwrap();
    rig.advance(ms(10));
    assert_eq!(rig.log(b).head(), 1);
    rig.restart_redis_empty();
    rig.advance(Duration::from_secs(1));
    let epoch = rig.redis.epoch.clone().expect("a node installed an epoch");
    assert_ne!(epoch, "p1", "never the lost epoch again");
    for node in [a, b] {
        assert_eq!(rig.log(node).epoch(), epoch);
        assert_eq!(
            rig.notices(node),
            [Notice::Reset {
                epoch: epoch.as_str().into()
            }]
        );
        assert_eq!(rig.log(node).history().kept_total(), 0, "history emptied");
        let old = Cursor::After {
            epoch: "p1".into(),
            seq: 1,
        };
        let now = rig.now;
        assert!(rig.log(node).read(&["t".into()], &old, now).reset);
        assert_eq!(rig.problem(node), None);
    }
    // Publishing works again, from 1 in the new epoch.
    rig.append(b, 2, "t", "after").unwrap();
    rig.advance(ms(10));
    assert_eq!(rig.ids(a).last().unwrap(), &format!("{epoch}-1"));
    assert_eq!(rig.messages(b).last().unwrap().0, Some(2));
}

#[test]
fn a_flush_without_a_restart_is_seen_by_the_next_round_of_the_tail() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    rig.append(a, 1, "t", "x").unwrap();
    rig.redis.flush_all();
    rig.advance(TAIL_BLOCK + ms(50));
    let epoch = rig
        .redis
        .epoch
        .clone()
        .expect("the tail installed a new epoch");
    assert_ne!(epoch, "p1");
    assert_eq!(
        rig.notices(a),
        [Notice::Reset {
            epoch: epoch.as_str().into()
        }]
    );
}

#[test]
fn a_tail_that_fell_behind_the_trimming_is_told_exactly_how_many_it_missed() {
    let mut rig = Rig::new();
    let a = rig.node_with(1, settings(3, 100, "redis://127.0.0.1:6379"));
    let b = rig.node_with(2, settings(3, 100, "redis://127.0.0.1:6379"));
    rig.append(a, 1, "x", "1").unwrap();
    rig.advance(ms(10));
    // B's tail stalls while A appends 7 more; Redis keeps the last 3.
    // (B's read, blocked in Redis, was answered with 2 at once.)
    rig.nodes[b].paused[usize::from(TAIL_LINK)] = true;
    for ticket in 2..=8 {
        rig.append(a, ticket, "y", &ticket.to_string()).unwrap();
    }
    rig.nodes[b].paused[usize::from(TAIL_LINK)] = false;
    rig.advance(TAIL_BLOCK + ms(50));
    assert_eq!(rig.ids(b), ["p1-1", "p1-2", "p1-6", "p1-7", "p1-8"]);
    assert_eq!(
        rig.notices(b),
        [Notice::Missed {
            epoch: "p1".into(),
            count: 3,
            upto: 5
        }]
    );
    // Readers resuming before the hole count it, whatever their topic.
    let now = rig.now;
    let after = |seq| Cursor::After {
        epoch: "p1".into(),
        seq,
    };
    assert_eq!(rig.log(b).read(&["x".into()], &after(1), now).missed, 3);
    assert_eq!(rig.log(b).read(&["y".into()], &after(1), now).missed, 3);
    assert_eq!(rig.log(b).read(&["y".into()], &after(4), now).missed, 1);
    assert_eq!(rig.log(b).read(&["y".into()], &after(5), now).missed, 0);
    assert_eq!(rig.status(b).missed, 3);
    assert!(rig.notices(a).is_empty(), "A read everything");
}

#[test]
fn a_nodes_own_message_trimmed_before_it_read_it_back_commits_from_its_copy() {
    let mut rig = Rig::new();
    let a = rig.node_with(1, settings(2, 100, "redis://127.0.0.1:6379"));
    let b = rig.node_with(2, settings(2, 100, "redis://127.0.0.1:6379"));
    rig.nodes[a].paused[usize::from(TAIL_LINK)] = true;
    // B's first message answers A's read, blocked in Redis; then A's own,
    // then three more of B's: Redis keeps the last 2 (4 and 5).
    rig.append(b, 10, "t", "theirs-1").unwrap();
    rig.append(a, 1, "t", "mine").unwrap();
    for ticket in 11..=13 {
        rig.append(b, ticket, "t", "theirs").unwrap();
    }
    rig.nodes[a].paused[usize::from(TAIL_LINK)] = false;
    rig.advance(TAIL_BLOCK + ms(50));
    assert_eq!(rig.ids(a), ["p1-1", "p1-2", "p1-4", "p1-5"]);
    assert_eq!(
        rig.messages(a)[1],
        (Some(1), "p1-2".to_string(), "mine".to_string()),
        "committed from this node's copy, with its ticket"
    );
    assert_eq!(
        rig.notices(a),
        [Notice::Missed {
            epoch: "p1".into(),
            count: 1,
            upto: 3
        }]
    );
    assert_eq!(rig.log(a).pending(), 0);
}

#[test]
fn a_redis_that_stops_answering_fails_publishes_within_the_timeout_then_recovers() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    rig.stopped = true;
    rig.append(a, 1, "t", "x").unwrap();
    rig.advance(TIMEOUT - ms(10));
    assert!(rig.failures(a).is_empty());
    rig.advance(ms(20));
    let failures = rig.failures(a);
    assert_eq!(failures.len(), 1, "told within --redis-timeout");
    assert_eq!(status(&failures[0].1).0, 503);
    assert!(failures[0].1.to_string().contains("may still be published"));
    // The tail's blocked read is overdue too: not live.
    rig.advance(TAIL_BLOCK);
    let problem = rig.problem(a).expect("unhealthy while Redis is stopped");
    assert!(problem.contains("Redis"), "{problem}");
    assert_eq!(status(&rig.append(a, 2, "t", "y").unwrap_err()).0, 503);
    // SIGCONT: the stale bytes of the old connections are gone with them;
    // the log reconnects and works again.
    rig.stopped = false;
    rig.advance(Duration::from_secs(4));
    assert_eq!(rig.problem(a), None);
    rig.append(a, 3, "t", "z").unwrap();
    rig.advance(ms(10));
    assert_eq!(rig.messages(a).last().unwrap().0, Some(3));
}

#[test]
fn an_idle_append_link_is_pinged_so_a_stopped_redis_is_noticed() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    rig.advance(TIMEOUT + ms(20));
    let pings = |rig: &Rig| {
        rig.redis
            .received
            .iter()
            .filter(|c| c[0].eq_ignore_ascii_case(b"PING"))
            .count()
    };
    assert!(pings(&rig) >= 1);
    rig.stopped = true;
    rig.advance(2 * TIMEOUT + ms(20));
    let problem = rig.problem(a).expect("noticed without a publish");
    assert!(problem.starts_with("cannot publish"), "{problem}");
}

#[test]
fn a_wrong_password_is_the_reason_given_and_a_right_one_logs_in() {
    let mut rig = Rig::new();
    rig.redis.password = Some(b"secret".to_vec());
    let a = rig.node_with(1, settings(10, 4, "redis://:wrong@127.0.0.1:6379/3"));
    let problem = rig.problem(a).expect("refused");
    assert!(problem.contains("WRONGPASS"), "{problem}");
    assert!(
        !problem.contains("wrong"),
        "the password is not shown: {problem}"
    );
    let b = rig.node_with(2, settings(10, 4, "redis://:secret@127.0.0.1:6379/3"));
    assert_eq!(rig.problem(b), None);
    assert_eq!(rig.redis.db, 3);
}

/// Feeds `replies` to `link` as one read.
fn answer(log: &mut RedisLog, link: Link, replies: &[Reply], now: Instant) {
    let mut bytes = Vec::new();
    for r in replies {
        encode_reply(&mut bytes, r);
    }
    log.handle_event(LogEvent::Received { link, bytes }, now);
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// A log driven by hand to the point where both links are logged in and
/// the tail's first round is sent (its output taken: written).
fn ready_by_hand(now: Instant) -> RedisLog {
    let mut log = RedisLog::new(settings(100, 4, "redis://h"), "p1", history(), 1);
    log.handle_timeout(now);
    while log.poll_output().is_some() {}
    for link in [APPEND_LINK, TAIL_LINK] {
        log.handle_event(LogEvent::Up { link }, now);
    }
    // (Taking the output marks the commands written: a reply may come.)
    while log.poll_output().is_some() {}
    let sha = bulk(super::script::APPEND_SCRIPT_SHA1);
    answer(&mut log, APPEND_LINK, &[sha], now);
    let epoch = Reply::Array(vec![bulk("p1"), Reply::Integer(0)]);
    answer(&mut log, TAIL_LINK, &[epoch], now);
    while log.poll_output().is_some() {}
    log
}

/// What the log sent on the append link: each command's name, or for an
/// append its data.
fn sent_appends(log: &mut RedisLog) -> Vec<String> {
    let mut decoder = crate::wire::resp::Decoder::new();
    while let Some(out) = log.poll_output() {
        if let LogOutput::Send { link, bytes } = out {
            if link == APPEND_LINK {
                decoder.feed(&bytes);
            }
        }
    }
    let text = |r: &Reply| match r {
        Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let mut names = Vec::new();
    while let Ok(crate::wire::resp::Decoded::Reply(Reply::Array(args))) = decoder.next_reply() {
        names.push(match text(&args[0]).as_str() {
            "EVALSHA" => args[8..]
                .iter()
                .step_by(4)
                .map(text)
                .collect::<Vec<_>>()
                .join("+"),
            other => other.to_string(),
        });
    }
    names
}

#[test]
fn after_noscript_new_appends_wait_for_those_sent_before_the_reload() {
    let now = Instant::ZERO;
    let mut log = ready_by_hand(now);
    for (ticket, data) in [(1, "m1"), (2, "m2")] {
        log.append(ticket, "t", Kind::Text, data, now).unwrap();
    }
    assert_eq!(sent_appends(&mut log), ["m1+m2"], "one turn, one batch");
    log.append(3, "t", Kind::Text, "m3", now).unwrap();
    assert_eq!(sent_appends(&mut log), ["m3"], "the next turn's batch");
    let noscript = Reply::Error(b"NOSCRIPT No matching script.".to_vec());
    // The first batch's NOSCRIPT comes first: reload, send it again; the
    // second is still out.
    answer(&mut log, APPEND_LINK, std::slice::from_ref(&noscript), now);
    log.append(4, "t", Kind::Text, "m4", now).unwrap();
    assert_eq!(sent_appends(&mut log), ["SCRIPT", "m1+m2"], "m4 waits");
    // The second's NOSCRIPT: sent again, then m4, in the order published.
    answer(&mut log, APPEND_LINK, &[noscript], now);
    assert_eq!(sent_appends(&mut log), ["m3", "m4"]);
}

/// The `EVALSHA`s the fake ran: how many messages each carried.
fn batch_sizes(redis: &FakeRedis) -> Vec<usize> {
    redis
        .received
        .iter()
        .filter(|c| c[0].eq_ignore_ascii_case(b"EVALSHA"))
        .map(|c| (c.len() - 7) / 4)
        .collect()
}

#[test]
fn a_turns_publishes_go_in_one_script_call_and_commit_in_order_with_their_tickets() {
    let mut rig = Rig::new();
    let a = rig.node_with(1, settings(1000, 600, "redis://127.0.0.1:6379"));
    let b = rig.node(2);
    let now = rig.now;
    for ticket in 1..=5 {
        let data = format!("m{ticket}");
        rig.log(a)
            .append(ticket, "t", Kind::Text, &data, now)
            .unwrap();
    }
    rig.pump();
    assert_eq!(batch_sizes(&rig.redis), [5]);
    let expected: Vec<(Option<Ticket>, String, String)> = (1..=5)
        .map(|n| (Some(n), format!("p1-{n}"), format!("m{n}")))
        .collect();
    assert_eq!(rig.messages(a), expected);
    let others: Vec<(Option<Ticket>, String, String)> = expected
        .into_iter()
        .map(|(_, id, d)| (None, id, d))
        .collect();
    assert_eq!(
        rig.messages(b),
        others,
        "the other node: same ids, no tickets"
    );
    // A turn of more than one batch holds: split at MAX_BATCH_MESSAGES,
    // still in order.
    let now = rig.now;
    let many = super::script::MAX_BATCH_MESSAGES as u64 + 44;
    for ticket in 100..100 + many {
        rig.log(a)
            .append(ticket, "t", Kind::Text, "x", now)
            .unwrap();
    }
    rig.pump();
    assert_eq!(
        batch_sizes(&rig.redis),
        [5, super::script::MAX_BATCH_MESSAGES, 44]
    );
    let tickets: Vec<Option<Ticket>> = rig.messages(a)[5..].iter().map(|m| m.0).collect();
    let expected: Vec<Option<Ticket>> = (100..100 + many).map(Some).collect();
    assert_eq!(tickets, expected);
    assert_eq!(rig.log(a).head(), 5 + many);
    assert!(rig.failures(a).is_empty());
}

#[test]
fn a_message_redis_refuses_mid_batch_fails_with_the_rest_and_those_before_commit() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    rig.redis.refuse_data = Some(b"m2".to_vec());
    let now = rig.now;
    for (ticket, data) in [(1, "m1"), (2, "m2"), (3, "m3")] {
        rig.log(a)
            .append(ticket, "t", Kind::Text, data, now)
            .unwrap();
    }
    rig.pump();
    assert_eq!(batch_sizes(&rig.redis), [3]);
    assert_eq!(
        rig.messages(a),
        [(Some(1), "p1-1".to_string(), "m1".to_string())]
    );
    let failed = rig.failures(a);
    let tickets: Vec<Ticket> = failed.iter().map(|f| f.0).collect();
    assert_eq!(tickets, [2, 3]);
    for (_, error) in &failed {
        assert_eq!(status(error).0, 503);
        assert!(
            error.to_string().contains("Redis refused the message: OOM"),
            "{error}"
        );
    }
    // Nothing was lost from the sequence: the next message is p1-2.
    rig.redis.refuse_data = None;
    rig.append(a, 4, "t", "m4").unwrap();
    assert_eq!(rig.ids(a), ["p1-1", "p1-2"]);
    assert_eq!(rig.log(a).pending(), 0);
}

#[test]
fn a_cursor_ahead_of_this_nodes_tail_but_not_of_redis_is_no_reset() {
    // Driven by hand: Redis holds 1..=3 but the first XREAD brought only 1.
    let now = Instant::ZERO;
    let mut log = ready_by_hand(now);
    let meta = Reply::Array(vec![bulk("p1"), bulk("3")]);
    let entry = Reply::Array(vec![
        bulk("1-0"),
        Reply::Array(vec![bulk("t"), bulk("t"), bulk("d"), bulk("one")]),
    ]);
    let read = Reply::Array(vec![Reply::Array(vec![
        bulk("t:log"),
        Reply::Array(vec![entry]),
    ])]);
    answer(&mut log, TAIL_LINK, &[meta, read], now);
    assert_eq!(log.head(), 1);
    let topics = ["t".into()];
    let at = |seq| Cursor::After {
        epoch: "p1".into(),
        seq,
    };
    // A client that read 3 on another node: nothing yet, and 2..=3 will
    // be skipped when this node reads them.
    let batch = log.read(&topics, &at(3), now);
    assert!(!batch.reset);
    assert_eq!((batch.next_seq, batch.messages.len()), (3, 0));
    // Beyond what Redis holds: from the future, a reset.
    assert!(log.read(&topics, &at(4), now).reset);
    assert_eq!(log.broker(now).unwrap().tail_lag_messages, 2);
}

#[test]
fn the_broker_status_counts_pending_lag_and_reconnects() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    rig.nodes[a].paused[usize::from(TAIL_LINK)] = true;
    rig.append(a, 1, "t", "x").unwrap();
    let s = rig.status(a);
    assert!(s.append_connected && s.tail_connected);
    assert_eq!(s.pending, 1);
    assert_eq!(s.reconnects, 0);
    rig.nodes[a].paused[usize::from(TAIL_LINK)] = false;
    rig.restart_redis_empty();
    rig.advance(Duration::from_secs(1));
    let s = rig.status(a);
    assert_eq!(s.reconnects, 2, "both links");
    assert_eq!(s.resets, 1);
    assert_eq!(s.pending, 0, "the lost append was told");
    assert_eq!(status(&rig.failures(a)[0].1).0, 503);
}

#[test]
fn a_binary_message_keeps_its_kind_on_every_node() {
    let mut rig = Rig::new();
    let a = rig.node(1);
    let b = rig.node(2);
    let data = crate::log::encode_binary(&[0, 159, 255]);
    let now = rig.now;
    rig.log(a).append(1, "t", Kind::Binary, &data, now).unwrap();
    rig.append(a, 2, "t", "text").unwrap();
    rig.advance(ms(10));
    let kinds: Vec<(Kind, String)> = rig.nodes[b]
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Message { kind, data, .. } => Some((*kind, data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [(Kind::Binary, data), (Kind::Text, "text".into())]);
}
