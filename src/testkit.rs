//! A session's world without a server, for tests: everything a
//! [`Ctx`] borrows (config, hub, counters, trace, published messages), owned
//! in one [`Rig`] with a virtual clock.
//!
//! Shared by the session unit tests, `tests/session_props.rs` and the fuzz
//! harness (`fuzz/src/harness.rs`), which are compiled outside this crate's
//! `cfg(test)`; hence public, but hidden from the docs: it is no part of the
//! server. It holds no socket and reads no clock, like the `session` it
//! drives.

use std::rc::Rc;

use crate::clients::Clients;
use crate::config::Config;
use crate::hub::{Hub, Message, Ticket};
use crate::session::{Assembly, Ctx, Deflate, Session};
use crate::stats::{Stats, Tracer};
use crate::timers::Instant;

/// The hub's epoch in every rig, so ids read `e1-N`.
pub const EPOCH: &str = "e1";

/// What the event loop lends a session, owned, with the time of the next call.
pub struct Rig {
    pub config: Config,
    pub hub: Hub,
    pub stats: Stats,
    pub tracer: Tracer,
    /// Tickets the sessions appended and [`Rig::commit_to`] has not yet
    /// answered.
    pub appended: Vec<Ticket>,
    /// Messages the sessions published, once committed
    /// ([`Rig::commit_to`]); nobody fans them out unless asked.
    pub published: Vec<Rc<Message>>,
    /// The budget for messages being assembled.
    pub assembly: Assembly,
    pub deflate: Deflate,
    /// The virtual clock: the `now` of the next [`Rig::ctx`].
    pub now: Instant,
    pub clients: Clients,
    /// The Unix time (ms) of [`Instant::ZERO`]: [`RIG_WALL_ORIGIN_MS`].
    pub wall_origin_ms: u64,
}

/// The Unix time at the rig's [`Instant::ZERO`]: 2027-01-15, in milliseconds.
pub const RIG_WALL_ORIGIN_MS: u64 = 1_800_000_000_000;

impl Rig {
    /// A hub of epoch [`EPOCH`] keeping `config.history` messages per topic,
    /// tracing on (so the trace closures run too), the clock at zero.
    pub fn new(config: Config) -> Rig {
        let hub = Hub::memory_bounded(
            EPOCH,
            config.history,
            config.history_ttl,
            config.history_memory,
            config.max_topics,
        );
        let assembly = Assembly::new(config.assembly_memory);
        Rig {
            config,
            hub,
            stats: Stats::default(),
            tracer: Tracer {
                enabled: true,
                ..Tracer::default()
            },
            appended: Vec::new(),
            published: Vec::new(),
            assembly,
            deflate: Deflate::default(),
            wall_origin_ms: RIG_WALL_ORIGIN_MS,
            now: Instant::ZERO,
            clients: Clients::new(usize::MAX),
        }
    }

    /// The same rig with a hub that keeps `history` messages per topic,
    /// whatever `config.history` says.
    pub fn with_history(mut self, history: usize) -> Rig {
        self.hub = Hub::memory_bounded(
            EPOCH,
            history,
            self.config.history_ttl,
            self.config.history_memory,
            self.config.max_topics,
        );
        self
    }

    /// The same rig with tracing off (trace closures not run).
    pub fn untraced(mut self) -> Rig {
        self.tracer = Tracer::default();
        self
    }

    /// The context for one call into a session, at [`Rig::now`].
    pub fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            now: self.now,
            config: &self.config,
            hub: &mut self.hub,
            stats: &mut self.stats,
            tracer: &mut self.tracer,
            appended: &mut self.appended,
            assembly: &mut self.assembly,
            deflate: &mut self.deflate,
            started: Instant::ZERO,
            clients: &mut self.clients,
            wall_origin_ms: self.wall_origin_ms,
        }
    }

    /// Hands the log's commits to `session` (the one connection a rig
    /// drives, which appended them) as the engine does, and keeps the
    /// committed messages in [`Rig::published`]. Call after a session call
    /// that may have published.
    pub fn commit_to(&mut self, session: &mut Session) {
        while let Some(commit) = self.hub.poll_commit() {
            if let Some(ticket) = commit.ticket.filter(|t| self.appended.contains(t)) {
                self.appended.retain(|t| *t != ticket);
                let mut ctx = self.ctx();
                session.handle_commit(ticket, &commit.outcome, &mut ctx);
            }
            if let Ok(msg) = commit.outcome {
                self.published.push(msg);
            }
        }
    }

    /// Publishes to the hub directly, as another connection would.
    pub fn publish(&mut self, topic: &str, data: &str) -> Rc<Message> {
        self.hub.publish(topic, data, self.now).unwrap()
    }

    /// Publishes the bytes `data` as a binary message, as another
    /// connection would.
    pub fn publish_binary(&mut self, topic: &str, data: &[u8]) -> Rc<Message> {
        self.hub.publish_binary(topic, data, self.now).unwrap()
    }

    /// Publishes and fans the message out to `sessions`, as the loop does.
    pub fn publish_to(&mut self, topic: &str, data: &str, sessions: &mut [&mut Session]) {
        let msg = self.publish(topic, data);
        for s in sessions {
            s.handle_message(&msg, &mut self.ctx());
        }
    }

    /// Moves the clock to `at` and fires the session's deadline if due, as
    /// the event loop's timer does.
    pub fn advance(&mut self, s: &mut Session, at: Instant) {
        self.now = at;
        if s.next_deadline().is_some_and(|d| d <= at) {
            s.handle_timeout(&mut self.ctx());
        }
    }
}

/// `n` milliseconds after the rig's start.
pub fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// A response's head, as text, and the bytes after it.
///
/// # Panics
/// When `bytes` holds no complete head.
pub fn split_head(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    (
        String::from_utf8(bytes[..end].to_vec()).unwrap(),
        bytes[end..].to_vec(),
    )
}
