//! The Redis log behind the log seam (`--redis`): several nodes share one
//! ordered log in Redis (docs/scaling.md). Sans-I/O: commands leave as
//! [`LogOutput::Send`] on two links — [`APPEND_LINK`] and [`TAIL_LINK`] —
//! and replies come back as [`LogEvent::Received`]; the driver in
//! `server/redis.rs` owns the sockets. Time comes in as an argument; the
//! jitter of reconnections and the names this node makes up come from a
//! generator seeded by the caller.
//!
//! # Appending
//!
//! The publishes of one turn are sent together when the driver takes the
//! log's output after the turn: one `EVALSHA` of the append script
//! ([`super::script`]) per batch, on the append link, pipelined behind the
//! others. The script's reply only settles failures: Redis refused (`503` with its
//! reason), or `NOSCRIPT` (the script cache was lost: `SCRIPT LOAD`, then
//! the appends that got it are sent again in order, new ones waiting
//! behind them). A message **commits when the tail reads it back**, in `N`
//! order with everyone else's: the entry's origin (`<node>:<ticket>`)
//! tells this node's own messages, which are handed back with their
//! ticket, from the others' (`ticket: None`). So a publisher hears `200`
//! only once its message is in Redis *and* this node's subscribers have
//! it, and a crash can never show a message that then vanishes.
//!
//! Pending appends are bounded (`--redis-max-pending`, then `503`), and so
//! is their wait (`--redis-timeout`, then `503`: the outcome is unknown,
//! the message may still appear — as with any client that times out).
//! While a link is down and waiting to reconnect, a publish is refused at
//! once (`503`, `Retry-After` until the next attempt).
//!
//! # Tailing
//!
//! The tail link logs in, runs the epoch script (the log's epoch and last
//! `N`, installing this node's proposal when Redis has none), then loops:
//! `HMGET` of the epoch and `N`, and `XREAD BLOCK` from the last `N` read
//! ([`super::stream`]), pipelined. Each round checks the epoch:
//!
//! - another epoch, or none, or an `N` below what this node read: Redis
//!   lost the log (restarted empty, flushed, restored from an older
//!   snapshot). The history is emptied, [`Notice::Reset`] tells every
//!   subscriber, and the tail reads the new epoch from its start.
//!   Appends Redis had confirmed in the lost epoch fail (`503`).
//! - an entry after a hole: the stream was trimmed past what this node had
//!   read. The hole is exact (ids are consecutive); it is kept in the
//!   history as a gap of unknown topics and told as [`Notice::Missed`].
//!   This node's own messages in the hole commit from its copy.
//!
//! `XREAD` waits at most [`TAIL_BLOCK`], so a flush without a restart is
//! seen within that; a reply later than the block plus `--redis-timeout`
//! means Redis stopped answering: the link is dropped and made again.
//!
//! # Reconnecting
//!
//! Every failure of a link (refused, reset, timeout, bytes that are not
//! RESP) drops it and schedules the next attempt with exponential backoff
//! and jitter ([`super::backoff`]). The tail resumes after the last `N` it
//! read, so no gap is silent. An idle append link is pinged every
//! `--redis-timeout`, so `/healthz` notices a Redis that stopped even when
//! nobody publishes.
//!
//! # Reads
//!
//! Reads answer from the local history, like every log. A cursor of this
//! epoch ahead of what this node has read, but not ahead of what Redis
//! holds (a client that comes from a node whose tail is a little ahead),
//! is not "from the future": the reply is empty and its `next` is the
//! cursor, so what this node reads next continues exactly after it.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

mod append;
mod tail;

use super::backoff::{Backoff, SplitMix64};
use super::pipeline::{Matched, Pipeline};
use super::script::{
    decode_epoch_reply, epoch_eval_command, is_script_loaded, script_load_command, LogKeys,
};
use super::stream::{decode_meta_reply, Meta};
use super::url::RedisUrl;
use crate::config::Config;
use crate::ids::{base36, Cursor};
use crate::log::{
    Batch, BrokerStatus, Commit, History, HubError, Kind, Link, Log, LogEvent, LogOutput, Notice,
    Ticket,
};
use crate::time::Instant;
use crate::wire::resp::{Arg, Limits, Reply, DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_REPLY_LEN};

/// The link that appends (and is pinged when idle).
pub const APPEND_LINK: Link = 0;

/// The link that reads the log back.
pub const TAIL_LINK: Link = 1;

/// Longest one `XREAD` waits for new entries before the tail looks at the
/// log's epoch again: how soon a Redis flushed without a restart is seen.
pub const TAIL_BLOCK: Duration = Duration::from_secs(1);

/// Most entries one `XREAD` asks for (fewer when messages may be large:
/// one reply stays within the RESP decoder's reply limit).
pub const TAIL_COUNT_MAX: u64 = 1000;

/// How many times one append is sent again after `NOSCRIPT` before it
/// fails: a Redis that loses the script that often is not usable.
const MAX_NOSCRIPT: u32 = 3;

/// Commands of the login and upkeep that may wait beside the appends.
const SPARE_COMMANDS: usize = 8;

/// `--redis-prefix` by default: the keys are `pushlab:meta` and `pushlab:log`.
pub const DEFAULT_PREFIX: &str = "pushlab:";

/// `--redis-max-pending` by default.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// `--redis-timeout` by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the log is and how it is bounded (from the command line).
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `--redis`.
    pub url: RedisUrl,
    /// `--redis-prefix`: the keys are `<prefix>meta` and `<prefix>log`.
    pub prefix: String,
    /// `--redis-max-pending`: appends waiting for their commit at once.
    pub max_pending: usize,
    /// `--redis-timeout`: longest wait for a connection, a login, a reply
    /// and a commit.
    pub timeout: Duration,
    /// Entries the stream keeps, all topics together (`--history`).
    pub stream_len: u64,
    /// `--max-message`: sizes the tail's reads.
    pub max_message: usize,
}

impl RedisSettings {
    /// The settings `config` names, if it names a Redis.
    pub fn from_config(config: &Config) -> Option<RedisSettings> {
        Some(RedisSettings {
            url: config.redis.clone()?,
            prefix: config.redis_prefix.clone(),
            max_pending: config.redis_max_pending,
            timeout: config.redis_timeout,
            stream_len: config.history as u64,
            max_message: config.max_message,
        })
    }
}

/// What a command was, to read its reply.
#[derive(Debug)]
enum Cmd {
    Auth,
    Select,
    Load,
    Ping,
    /// A batch of appends, in order, and the script generation it was sent
    /// in (see [`RedisLog::script_gen`]).
    Append(Box<[Ticket]>, u64),
    Epoch,
    Meta,
    Read,
}

/// Where a link is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No connection; the next attempt at `retry_at`.
    Down {
        retry_at: Instant,
    },
    /// Asked the driver to connect.
    Connecting {
        since: Instant,
    },
    /// Connected; the login (and the script or the epoch) is answered.
    LoggingIn {
        since: Instant,
    },
    Ready,
}

/// One connection to Redis.
struct Conn {
    phase: Phase,
    /// What one reply may hold, and how many commands may wait (each new
    /// connection's pipeline is made with them).
    limits: Limits,
    max_pending: usize,
    pipeline: Pipeline<Cmd>,
    /// When each command waiting for its reply is overdue, oldest first.
    deadlines: VecDeque<Instant>,
    backoff: Backoff,
    /// Why it last failed.
    error: Option<String>,
    /// It was connected at least once (the next connection counts as a
    /// reconnection).
    was_up: bool,
    /// The last reply, or the connection.
    heard_at: Instant,
}

impl Conn {
    fn new(limits: Limits, max_pending: usize) -> Conn {
        Conn {
            phase: Phase::Down {
                retry_at: Instant::ZERO,
            },
            limits,
            max_pending,
            pipeline: Pipeline::new(limits, max_pending),
            deadlines: VecDeque::new(),
            backoff: Backoff::default(),
            error: None,
            was_up: false,
            heard_at: Instant::ZERO,
        }
    }

    fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::LoggingIn { .. } | Phase::Ready)
    }

    /// A new connection's empty pipeline.
    fn renew(&mut self) {
        self.pipeline = Pipeline::new(self.limits, self.max_pending);
        self.deadlines.clear();
    }

    /// Queues a command overdue at `deadline`.
    fn send(&mut self, cmd: Cmd, args: &[Arg<'_>], deadline: Instant) -> bool {
        if self.pipeline.send(cmd, args).is_err() {
            return false;
        }
        self.deadlines.push_back(deadline);
        true
    }
}

/// Where an append is.
#[derive(Debug)]
enum Sent {
    /// Not sent yet: waiting for the end of the turn (appends go out
    /// together), for the link to log in, or for the script to reload.
    Held,
    InFlight,
    /// Redis took it as `epoch-seq`; the tail has not read it back yet.
    Acked {
        epoch: Rc<str>,
        seq: u64,
    },
}

/// An append waiting for its commit.
struct Pending {
    topic: Box<str>,
    kind: Kind,
    data: Box<str>,
    /// When the publisher is told `503` if the commit has not come.
    deadline: Instant,
    state: Sent,
    /// `NOSCRIPT` replies it got.
    noscripts: u32,
}

/// What the engine takes from the log, in order.
enum Item {
    Commit(Commit),
    Notice(Notice),
}

/// The shared log in Redis (see the module docs).
pub struct RedisLog {
    settings: RedisSettings,
    keys: LogKeys,
    /// This node's name in the origin of its entries.
    node: String,
    epoch: String,
    /// The epoch this node proposes when Redis has none: never the epoch
    /// in use, so a lost epoch is never installed again.
    proposal: String,
    /// The newest `N` read back (committed here).
    head: u64,
    /// The newest `N` Redis is known to hold (its last `HMGET`, or an
    /// append's reply).
    known_seq: u64,
    /// The tail has caught up with Redis once.
    synced: bool,
    history: History,
    links: [Conn; 2],
    appends: BTreeMap<Ticket, Pending>,
    /// Appends not sent yet, in order: a turn's appends go out together
    /// when the driver takes the output.
    held: VecDeque<Ticket>,
    /// The time of the latest call that brought one (the commands sent by
    /// [`Log::poll_output`] are overdue from it).
    clock: Instant,
    /// Append batches sent and not answered.
    appends_in_flight: usize,
    /// Bumped by every `SCRIPT LOAD` after a `NOSCRIPT`: appends sent
    /// before it may get `NOSCRIPT` and are sent again.
    script_gen: u64,
    /// While appends of an older generation are still in flight: how many.
    /// New appends wait meanwhile, so they go after the ones sent again.
    reload_draining: usize,
    /// The bytes of the tail's last `XREAD` reply (kept for its capacity).
    raw_reply: Vec<u8>,
    /// The tail's `HMGET` of this round, kept until its `XREAD` answers.
    round_meta: Option<Meta>,
    tail_count: u64,
    items: VecDeque<Item>,
    actions: VecDeque<LogOutput>,
    rng: SplitMix64,
    reconnects: u64,
    resets: u64,
    missed: u64,
}

impl RedisLog {
    /// A log that proposes `epoch` to an empty Redis and keeps what
    /// `history` allows. `seed` seeds the jitter and this node's name (the
    /// server gives a random one; a replay the recorded one). Connects at
    /// the first [`Log::handle_timeout`].
    pub fn new(settings: RedisSettings, epoch: &str, history: History, seed: u64) -> RedisLog {
        assert!(
            !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric()),
            "epoch must be ASCII alphanumeric"
        );
        let mut rng = SplitMix64::new(seed);
        let node = base36(rng.next_u64() >> 12);
        let per_entry = settings.max_message as u64 + 256;
        let tail_count = (DEFAULT_MAX_REPLY_LEN as u64 / per_entry).clamp(1, TAIL_COUNT_MAX);
        let limits = Limits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN.max(settings.max_message + 1024),
            max_reply_len: DEFAULT_MAX_REPLY_LEN.max((tail_count * per_entry) as usize),
            ..Limits::default()
        };
        let links = [
            Conn::new(limits, settings.max_pending + SPARE_COMMANDS),
            Conn::new(limits, SPARE_COMMANDS),
        ];
        RedisLog {
            keys: LogKeys::new(&settings.prefix),
            settings,
            node,
            epoch: epoch.to_string(),
            proposal: epoch.to_string(),
            head: 0,
            known_seq: 0,
            synced: false,
            history,
            links,
            appends: BTreeMap::new(),
            held: VecDeque::new(),
            clock: Instant::ZERO,
            appends_in_flight: 0,
            script_gen: 0,
            reload_draining: 0,
            raw_reply: Vec::new(),
            round_meta: None,
            tail_count,
            items: VecDeque::new(),
            actions: VecDeque::new(),
            rng,
            reconnects: 0,
            resets: 0,
            missed: 0,
        }
    }

    /// This node's name in its entries' origin.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether the tail has caught up with Redis once: before that, this
    /// node knows neither the log's epoch nor its history (the server
    /// waits for it before accepting clients).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    fn link(&mut self, link: Link) -> &mut Conn {
        &mut self.links[usize::from(link)]
    }

    fn unavailable(retry_after: Duration, why: String) -> HubError {
        let secs = retry_after.as_millis().div_ceil(1000).clamp(1, 3600) as u32;
        HubError::Unavailable {
            retry_after_secs: secs,
            why: why.into(),
        }
    }

    /// A new name for an epoch: random, so no two nodes nor two losses
    /// propose the same.
    fn fresh_epoch(&mut self) -> String {
        base36(self.rng.next_u64() >> 14)
    }

    /// The log's epoch is `epoch` (whoever installed it): this node's
    /// proposal must differ from it from now on.
    fn learn_epoch(&mut self, epoch: &str) {
        if self.proposal == epoch {
            self.proposal = self.fresh_epoch();
        }
    }

    // ------------------------------------------------------------ links --

    fn connect(&mut self, link: Link, now: Instant) {
        let c = self.link(link);
        c.phase = Phase::Connecting { since: now };
        if c.was_up {
            self.reconnects += 1;
        }
        self.actions.push_back(LogOutput::Connect { link });
    }

    /// The driver connected `link`: log in, then load the script (append)
    /// or read the epoch (tail).
    fn handle_up(&mut self, link: Link, now: Instant) {
        let timeout = self.timeout();
        let c = &mut self.links[usize::from(link)];
        if !matches!(c.phase, Phase::Connecting { .. }) {
            return;
        }
        c.phase = Phase::LoggingIn { since: now };
        c.was_up = true;
        c.heard_at = now;
        c.renew();
        let deadline = now + timeout;
        if let Some(auth) = self.settings.url.auth_command() {
            c.send(Cmd::Auth, &auth, deadline);
        }
        if let Some(select) = self.settings.url.select_command() {
            c.send(Cmd::Select, &select, deadline);
        }
        if link == APPEND_LINK {
            c.send(Cmd::Load, &script_load_command(), deadline);
        } else {
            c.send(
                Cmd::Epoch,
                &epoch_eval_command(&self.keys, &self.proposal),
                deadline,
            );
        }
    }

    /// `link` failed: drop it (`close`: the driver still has it), try
    /// again after a backoff. Appends that were on the append link fail.
    fn fail(&mut self, link: Link, why: String, now: Instant, close: bool) {
        if close {
            self.actions.push_back(LogOutput::Close { link });
        }
        let c = &mut self.links[usize::from(link)];
        let delay = c.backoff.next_delay(&mut self.rng);
        c.phase = Phase::Down {
            retry_at: now + delay,
        };
        c.renew();
        c.error = Some(why.clone());
        if link == TAIL_LINK {
            self.round_meta = None;
            return;
        }
        self.appends_in_flight = 0;
        self.reload_draining = 0;
        self.held.clear();
        let lost: Vec<Ticket> = self
            .appends
            .iter()
            .filter(|(_, p)| !matches!(p.state, Sent::Acked { .. }))
            .map(|(&t, _)| t)
            .collect();
        for ticket in lost {
            let why =
                format!("lost the connection to Redis ({why}); the message may still be published");
            self.fail_append(ticket, Self::unavailable(delay, why));
        }
    }

    /// Tells the publisher of `ticket` why its message did not commit.
    fn fail_append(&mut self, ticket: Ticket, error: HubError) {
        if self.appends.remove(&ticket).is_some() {
            self.items.push_back(Item::Commit(Commit {
                ticket: Some(ticket),
                outcome: Err(error),
            }));
        }
    }

    // ---------------------------------------------------------- replies --

    fn handle_reply(&mut self, link: Link, cmd: Cmd, reply: Reply, now: Instant) {
        match cmd {
            Cmd::Auth | Cmd::Select if reply.is_error() => {
                let what = if matches!(cmd, Cmd::Auth) {
                    "login"
                } else {
                    "SELECT"
                };
                let why = format!("Redis refused the {what}: {}", error_text(&reply));
                self.fail(link, why, now, true);
            }
            Cmd::Auth | Cmd::Select | Cmd::Ping => {}
            Cmd::Load => {
                if !is_script_loaded(&reply) {
                    let why = format!("SCRIPT LOAD failed: {}", error_text(&reply));
                    return self.fail(link, why, now, true);
                }
                let c = self.link(APPEND_LINK);
                if matches!(c.phase, Phase::LoggingIn { .. }) {
                    c.phase = Phase::Ready;
                    c.backoff.reset();
                    c.error = None;
                    self.send_held(now);
                }
            }
            Cmd::Append(tickets, gen) => self.handle_append_reply(tickets, gen, reply, now),
            Cmd::Epoch => match decode_epoch_reply(reply) {
                Ok(log) => {
                    self.see_epoch(&log.epoch, log.seq, now);
                    if self.head >= self.known_seq {
                        self.synced = true;
                    }
                    let c = self.link(TAIL_LINK);
                    if matches!(c.phase, Phase::LoggingIn { .. }) {
                        c.phase = Phase::Ready;
                        c.backoff.reset();
                        c.error = None;
                    }
                    self.start_round(now);
                }
                Err(e) => {
                    let why = format!("the epoch script failed: {e:?}");
                    self.fail(link, why, now, true);
                }
            },
            Cmd::Meta => match decode_meta_reply(&reply) {
                Ok(meta) => {
                    let lost = match &meta.epoch {
                        None => true,
                        Some(epoch) => *epoch != self.epoch || meta.seq < self.head,
                    };
                    if lost {
                        // Redis lost the log. The XREAD behind may block
                        // for a while: start the tail over at once, its
                        // login runs the epoch script.
                        self.actions.push_back(LogOutput::Close { link: TAIL_LINK });
                        self.round_meta = None;
                        self.connect(TAIL_LINK, now);
                    } else {
                        self.round_meta = Some(meta);
                    }
                }
                Err(e) => self.fail(link, e.to_string(), now, true),
            },
            // Taken raw (see `handle_event`); built only if it began
            // otherwise, which cannot happen.
            Cmd::Read => {
                let mut bytes = Vec::new();
                crate::wire::resp::encode_reply(&mut bytes, &reply);
                self.handle_read_reply(&bytes, now);
            }
        }
    }

    /// Why this node cannot publish, or its tail is not live.
    fn problem(&self, now: Instant) -> Option<String> {
        let [append, tail] = &self.links;
        let authority = self.settings.url.authority();
        let describe = |c: &Conn| match c.phase {
            Phase::Down { retry_at } => format!(
                "not connected to Redis at {authority} ({}); next attempt in {} ms",
                c.error.as_deref().unwrap_or("not tried yet"),
                retry_at.saturating_since(now).as_millis()
            ),
            Phase::Connecting { .. } => format!("connecting to Redis at {authority}"),
            Phase::LoggingIn { .. } => format!("logging in to Redis at {authority}"),
            Phase::Ready => String::new(),
        };
        if append.phase != Phase::Ready {
            return Some(format!("cannot publish: {}", describe(append)));
        }
        if tail.phase != Phase::Ready {
            return Some(format!("not reading the log: {}", describe(tail)));
        }
        if !self.synced {
            return Some(format!(
                "catching up with the log in Redis ({} messages behind)",
                self.known_seq.saturating_sub(self.head)
            ));
        }
        None
    }
}

impl Log for RedisLog {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn head(&self) -> u64 {
        self.head
    }

    fn append(
        &mut self,
        ticket: Ticket,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<(), HubError> {
        if self.appends.len() >= self.settings.max_pending {
            let why = format!(
                "{} publishes already wait for Redis (--redis-max-pending)",
                self.appends.len()
            );
            return Err(Self::unavailable(Duration::ZERO, why));
        }
        for (name, c) in [("publish to", &self.links[0]), ("read", &self.links[1])] {
            if let Phase::Down { retry_at } = c.phase {
                let why = format!(
                    "cannot {name} Redis at {}: {}",
                    self.settings.url.authority(),
                    c.error.as_deref().unwrap_or("not connected yet")
                );
                return Err(Self::unavailable(retry_at.saturating_since(now), why));
            }
        }
        self.appends.insert(
            ticket,
            Pending {
                topic: topic.into(),
                kind,
                data: data.into(),
                deadline: now + self.timeout(),
                state: Sent::Held,
                noscripts: 0,
            },
        );
        // Sent with the rest of the turn's appends, in one script call
        // ([`Log::poll_output`]).
        self.held.push_back(ticket);
        self.clock = self.clock.max(now);
        Ok(())
    }

    fn poll_commit(&mut self) -> Option<Commit> {
        if !matches!(self.items.front()?, Item::Commit(_)) {
            return None;
        }
        match self.items.pop_front()? {
            Item::Commit(c) => Some(c),
            Item::Notice(_) => None,
        }
    }

    fn poll_notice(&mut self) -> Option<Notice> {
        if !matches!(self.items.front()?, Item::Notice(_)) {
            return None;
        }
        match self.items.pop_front()? {
            Item::Notice(n) => Some(n),
            Item::Commit(_) => None,
        }
    }

    fn history(&self) -> &History {
        &self.history
    }

    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    fn pending(&self) -> usize {
        self.appends.len()
    }

    fn read(&mut self, topics: &[Rc<str>], cursor: &Cursor, now: Instant) -> Batch {
        if let Cursor::After { epoch, seq } = cursor {
            if *epoch == self.epoch && *seq > self.head && *seq <= self.known_seq {
                // Ahead of this node's tail, not of the log: nothing here
                // yet, and what the tail reads next continues after it.
                return Batch {
                    next_seq: *seq,
                    ..Batch::default()
                };
            }
        }
        let head = self.head;
        self.history.read(topics, cursor, head, &self.epoch, now)
    }

    fn handle_event(&mut self, event: LogEvent, now: Instant) {
        self.clock = self.clock.max(now);
        match event {
            LogEvent::Up { link } if link <= TAIL_LINK => self.handle_up(link, now),
            LogEvent::Down { link, why } if link <= TAIL_LINK => {
                let c = self.link(link);
                if matches!(c.phase, Phase::Connecting { .. }) || c.is_connected() {
                    self.fail(link, why.into(), now, false);
                }
            }
            LogEvent::Received { link, bytes } if link <= TAIL_LINK => {
                if !self.link(link).is_connected() {
                    return;
                }
                self.link(link).pipeline.handle_read(&bytes);
                loop {
                    let c = &mut self.links[usize::from(link)];
                    // The log's entries are read from the reply's bytes,
                    // not built into a value each (a read brings up to
                    // TAIL_COUNT_MAX of them).
                    let mut raw = std::mem::take(&mut self.raw_reply);
                    raw.clear();
                    let matched = c
                        .pipeline
                        .next_match(|cmd| matches!(cmd, Cmd::Read), &mut raw);
                    let incomplete = matches!(matched, Ok(Matched::Incomplete));
                    if matches!(matched, Ok(Matched::Reply(..) | Matched::Raw(_))) {
                        c.deadlines.pop_front();
                        c.heard_at = now;
                    }
                    match matched {
                        Ok(Matched::Reply(cmd, reply)) => self.handle_reply(link, cmd, reply, now),
                        Ok(Matched::Raw(_)) => self.handle_read_reply(&raw, now),
                        Ok(Matched::Incomplete) => {}
                        Err(e) => {
                            let why = format!("Redis sent what cannot be trusted: {e}");
                            return self.fail(link, why, now, true);
                        }
                    }
                    // Kept for its capacity.
                    self.raw_reply = raw;
                    if incomplete {
                        return;
                    }
                }
            }
            _ => {}
        }
    }

    fn poll_output(&mut self) -> Option<LogOutput> {
        if !self.held.is_empty() {
            self.send_held(self.clock);
        }
        if let Some(action) = self.actions.pop_front() {
            return Some(action);
        }
        for link in [APPEND_LINK, TAIL_LINK] {
            let c = self.link(link);
            if c.is_connected() && !c.pipeline.output().is_empty() {
                let bytes = c.pipeline.output().to_vec();
                c.pipeline.handle_written(bytes.len());
                return Some(LogOutput::Send { link, bytes });
            }
        }
        None
    }

    fn poll_at(&self) -> Option<Instant> {
        let timeout = self.timeout();
        let links = self
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.phase {
                Phase::Down { retry_at } => Some(retry_at),
                Phase::Connecting { since } | Phase::LoggingIn { since } => Some(since + timeout),
                Phase::Ready => {
                    let ping = (i == usize::from(APPEND_LINK) && c.deadlines.is_empty())
                        .then(|| c.heard_at + timeout);
                    [c.deadlines.front().copied(), ping]
                        .into_iter()
                        .flatten()
                        .min()
                }
            });
        let commit = self.appends.values().next().map(|p| p.deadline);
        links.chain(commit).min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
        let timeout = self.timeout();
        for link in [APPEND_LINK, TAIL_LINK] {
            let c = self.link(link);
            match c.phase {
                Phase::Down { retry_at } if now >= retry_at => self.connect(link, now),
                Phase::Connecting { since } if now >= since + timeout => {
                    let why = format!("could not connect within {timeout:?}");
                    self.fail(link, why, now, true);
                }
                Phase::LoggingIn { since } if now >= since + timeout => {
                    let why = format!("no answer to the login within {timeout:?}");
                    self.fail(link, why, now, true);
                }
                Phase::Ready if c.deadlines.front().is_some_and(|&d| now >= d) => {
                    let why = format!("Redis did not answer within {timeout:?}");
                    self.fail(link, why, now, true);
                }
                Phase::Ready
                    if link == APPEND_LINK
                        && c.deadlines.is_empty()
                        && now >= c.heard_at + timeout =>
                {
                    c.send(Cmd::Ping, &[Arg::from("PING")], now + timeout);
                }
                _ => {}
            }
        }
        while let Some((&ticket, p)) = self.appends.first_key_value() {
            if p.deadline > now {
                break;
            }
            let why = match p.state {
                Sent::Acked { .. } => format!(
                    "Redis took the message but this node did not read it back within {timeout:?}"
                ),
                _ => format!(
                    "Redis did not confirm the message within {timeout:?}; it may still be published"
                ),
            };
            self.held.retain(|&t| t != ticket);
            self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
        }
    }

    fn is_ready(&self) -> bool {
        self.synced
    }

    fn broker(&self, now: Instant) -> Option<BrokerStatus> {
        let [append, tail] = &self.links;
        Some(BrokerStatus {
            problem: self.problem(now),
            append_connected: append.phase == Phase::Ready,
            tail_connected: tail.phase == Phase::Ready,
            pending: self.appends.len(),
            tail_lag_messages: self.known_seq.saturating_sub(self.head),
            tail_silent_ms: now.saturating_since(tail.heard_at).as_millis() as u64,
            reconnects: self.reconnects,
            resets: self.resets,
            missed: self.missed,
        })
    }
}

/// The text of an error reply (or the reply itself), for messages.
fn error_text(reply: &Reply) -> String {
    match reply {
        Reply::Error(text) => String::from_utf8_lossy(text).into_owned(),
        other => {
            let mut s = format!("{other:?}");
            s.truncate(120);
            s
        }
    }
}
