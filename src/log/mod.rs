//! The message log behind a seam: what is published, in id order, and
//! what is kept of it for readers.
//!
//! # The seam
//!
//! A publish is *appended* ([`Log::append`] returns a [`Ticket`] at once)
//! and *committed* later: the log hands back a [`Commit`] carrying the
//! message with its id, or why it failed, through [`Log::poll_commit`], in
//! id order. Only committed messages are fanned out, and a publisher is
//! answered when its message commits (`engine`). Committed messages that
//! no local append asked for (another node's, on a shared log) come
//! through the same call with no ticket.
//!
//! What differs between logs is *when* the commit comes:
//! - [`MemoryLog`] (this process only) commits inside `append`: the engine
//!   collects the commit before the turn ends, so nothing waits.
//! - A log on another process or on disk commits when its driver reports
//!   back: the driver (a thin I/O layer in `server/`) performs what
//!   [`Log::poll_output`] asks (bytes for a socket, records for a disk
//!   writer) and feeds what it hears to [`Log::handle_event`]. The log's
//!   state machine stays sans-I/O, so it can be stepped, recorded and
//!   replayed like the sessions.
//!
//! Reads ([`Log::read`]) answer from what the log keeps: every log keeps
//! its committed history in a [`History`] (bounded by `--history`,
//! `--history-ttl`, `--history-memory`, `--max-topics`).
//!
//! # Ids and cursors (docs/api.md § Ids and cursors)
//!
//! A message id is `E-N`: `E` is the log's epoch, and `N` a log-wide
//! sequence 1, 2, 3, … shared by every topic, so one cursor serves any set
//! of topics. Gaps are never silent: see [`Batch::missed`] and [`History`].

mod history;
mod memory;

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

pub use crate::file_log::disk::Completion;
pub use crate::file_log::journal::Group;
pub use crate::ids::Cursor;
use crate::time::Instant;
pub use history::{History, FORGOTTEN_BUCKETS};
pub use memory::MemoryLog;

/// Names one append until its commit: given by the hub, unique for the
/// life of the process.
pub type Ticket = u64;

/// What a log says about one message: committed with its id, or refused.
#[derive(Debug)]
pub struct Commit {
    /// The append this answers; `None` for a message committed elsewhere
    /// (another node's, on a shared log).
    pub ticket: Option<Ticket>,
    pub outcome: Result<Rc<Message>, HubError>,
}

/// Which connection of a log with several an event or output concerns
/// (the Redis log has two: one for appends, one tailing the log).
pub type Link = u8;

/// What a log's I/O driver heard, fed to [`Log::handle_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// Bytes read from one of the log's connections (a shared log's replies).
    Received { link: Link, bytes: Vec<u8> },
    /// A disk writer's report: records durable up to a point, or failed.
    Disk(Completion),
    /// The connection `link` asked for by [`LogOutput::Connect`] is
    /// established.
    Up { link: Link },
    /// The connection `link` failed or was closed by the peer (or could not
    /// be made); appends waiting for it fail.
    Down { link: Link, why: Box<str> },
}

/// What a log asks its I/O driver to do, from [`Log::poll_output`].
#[derive(Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// Open connection `link` to the log's server, dropping the one it
    /// had: the driver answers [`LogEvent::Up`] or [`LogEvent::Down`].
    Connect { link: Link },
    /// Bytes for connection `link` (a shared log's commands), in order.
    Send { link: Link, bytes: Vec<u8> },
    /// Drop connection `link` (the log gave up on it: a timeout, replies it
    /// cannot trust). No event follows.
    Close { link: Link },
    /// A group of encoded records for the disk writer: one write, one
    /// `fdatasync`, then a [`LogEvent::Disk`] report.
    Records(Group),
    /// The disk writer may delete segments whose records are all below
    /// `keep_from` (they have left the history).
    Trim { keep_from: u64 },
}

/// A break in the log's continuity, handed out by [`Log::poll_notice`] in
/// order with the commits and told to every subscriber (not only those of
/// some topic): gaps are never silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The log started a new epoch `epoch` (a shared log's store lost
    /// everything): every id before is void. Subscribers are told `reset`
    /// and get the new epoch's messages from its first on.
    Reset { epoch: Box<str> },
    /// `count` messages, the last of them `upto`, were committed but can
    /// never be read here (a shared log trimmed them before this node read
    /// them); their topics are unknown, so every subscriber is told.
    Missed {
        /// The epoch of `upto`.
        epoch: Box<str>,
        count: u64,
        upto: u64,
    },
}

/// A shared log's connection to its server, for `/healthz` and `/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerStatus {
    /// Why this node cannot publish, or its tail is not live (`None`:
    /// healthy). `/healthz` answers `503` with it.
    pub problem: Option<String>,
    /// The connection that appends is up and logged in.
    pub append_connected: bool,
    /// The connection that tails the log is up and logged in.
    pub tail_connected: bool,
    /// Appends sent (or waiting to be sent) and not yet committed.
    pub pending: usize,
    /// Messages the server holds that this node has not read yet (as of
    /// the tail's last look at the server's sequence).
    pub tail_lag_messages: u64,
    /// Milliseconds since the tail last heard from the server.
    pub tail_silent_ms: u64,
    /// Connections made again after the first (both links).
    pub reconnects: u64,
    /// New epochs seen ([`Notice::Reset`]).
    pub resets: u64,
    /// Messages trimmed before this node read them ([`Notice::Missed`]).
    pub missed: u64,
}

/// What a log keeps now, against its bounds (`/stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogUsage {
    /// Accounted bytes of kept history (messages, eviction records, topics).
    pub history_bytes: usize,
    /// `--history-memory`.
    pub history_limit: usize,
    pub kept_messages: usize,
    /// Topics that keep at least one message.
    pub topics_kept: usize,
    /// Appends accepted and not yet committed.
    pub pending: usize,
}

/// The seam: what the hub needs from a message log.
pub trait Log {
    /// The epoch part of every id this log gives out.
    fn epoch(&self) -> &str;
    /// Sequence number of the newest committed message (0 before any).
    fn head(&self) -> u64;
    /// Accepts `data` of `kind` for `topic` (a valid name: the hub
    /// checked it); it commits later, as a [`Commit`] with `ticket`. An
    /// error here refuses the message at once. The data is text either way
    /// (a binary message's is its standard base64, see [`Kind`]): a log
    /// stores it as it is and keeps the kind beside it, so the committed
    /// message has the kind it was appended with.
    fn append(
        &mut self,
        ticket: Ticket,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<(), HubError>;
    /// The next commit, in id order (failed appends in between as they
    /// are known).
    fn poll_commit(&mut self) -> Option<Commit>;
    /// The committed history this log keeps for readers.
    fn history(&self) -> &History;
    /// The same, to read and expire it.
    fn history_mut(&mut self) -> &mut History;
    /// Appends accepted and not yet committed.
    fn pending(&self) -> usize;
    /// Committed messages of `topics` after `cursor` that are still kept.
    fn read(&mut self, topics: &[Rc<str>], cursor: &Cursor, now: Instant) -> Batch {
        let head = self.head();
        let epoch = self.epoch().to_string();
        self.history_mut().read(topics, cursor, head, &epoch, now)
    }
    /// Evicts history older than `--history-ttl`.
    fn expire(&mut self, now: Instant) {
        self.history_mut().expire(now);
    }
    /// What the log keeps, for `/stats`.
    fn usage(&self) -> LogUsage {
        let history = self.history();
        LogUsage {
            history_bytes: history.history_bytes(),
            history_limit: history.memory_limit(),
            kept_messages: history.kept_total(),
            topics_kept: history.topic_count(),
            pending: self.pending(),
        }
    }
    /// What the log's driver heard (a log without a driver ignores it).
    fn handle_event(&mut self, event: LogEvent, now: Instant) {
        let _ = (event, now);
    }
    /// What the log's driver must do next, if anything.
    fn poll_output(&mut self) -> Option<LogOutput> {
        None
    }
    /// When the log next needs [`Log::handle_timeout`] (a retry, a timeout
    /// of appends waiting for their commit).
    fn poll_at(&self) -> Option<Instant> {
        None
    }
    /// Time passed (see [`Log::poll_at`]).
    fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }
    /// The next break in continuity, if it comes before the next commit:
    /// a log with notices hands out no commit while one is waiting, so
    /// calling this before each [`Log::poll_commit`] keeps them in order.
    fn poll_notice(&mut self) -> Option<Notice> {
        None
    }
    /// Whether reads and appends can be served: a shared log is not until
    /// it has read its server's log once (before that it knows neither the
    /// epoch nor the history, and would answer a valid cursor `reset`).
    fn is_ready(&self) -> bool {
        true
    }
    /// The connection to a shared log's server (`None`: a local log, which
    /// is always healthy).
    fn broker(&self, now: Instant) -> Option<BrokerStatus> {
        let _ = now;
        None
    }
}

/// What a message's data is (docs/api.md § Binary messages).
///
/// Every log, every history and every JSON form carries a message's data as
/// text: a binary message's bytes are kept as their standard base64
/// (RFC 4648 §4, with `=` padding), so logs that store text store binary
/// messages unchanged, and a poll's JSON carries them as they are kept.
/// Only the WebSocket frame of a binary message carries the raw bytes
/// (`session::encoded`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// UTF-8 text, delivered as it is.
    #[default]
    Text,
    /// Bytes, kept as their standard base64.
    Binary,
}

impl Kind {
    /// `text` or `binary`, for traces and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }

    /// Whether this is [`Kind::Binary`].
    pub fn is_binary(self) -> bool {
        self == Kind::Binary
    }
}

/// The standard base64 of `bytes`: how a binary message's data is kept.
pub fn encode_binary(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of a binary message's data, or `None` when `data` is not
/// canonical standard base64 (padded, no line breaks).
pub fn decode_binary(data: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .ok()
}

/// One published message, shared (`Rc`) by the history and every subscriber.
///
/// Each transport's encoding of the message is made the first time the
/// fan-out asks for it and shared by every subscriber, then dropped when the
/// fan-out is over (`session::encoded`), so what a kept message costs does
/// not depend on its content nor on how many transports read it
/// ([`Message::kept_cost`]).
pub struct Message {
    pub topic: Rc<str>,
    pub seq: u64,
    /// `E-N`, the message id and the cursor that follows it.
    pub id: Box<str>,
    /// Text, or binary bytes.
    pub kind: Kind,
    /// The message as published for text; the standard base64 of its bytes
    /// for a binary message ([`Kind`]).
    pub data: Box<str>,
    pub published_at: Instant,
    /// Encodings shared during the fan-out (see `session::encoded`).
    pub encoded: EncodedForms,
}

/// Bytes a kept message costs beyond its data and id: the message itself
/// and its reference counts, its slot in the topic's ring, its entries in
/// the history's id-order queue (at most two, see `History`), and the
/// allocator's headers of data and id.
pub const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>() + 16 + 8 + 2 * 32 + 2 * 16;

impl Message {
    /// What keeping this message costs in the `--history-memory`
    /// accounting: its data and id plus [`MESSAGE_OVERHEAD`]. No encoding
    /// is kept with it, so this is the whole cost whatever the content
    /// (control characters that JSON escapes sixfold, newlines that SSE
    /// prefixes with `data:`) and however many transports read it. A
    /// binary message is kept, and so counted, as its base64: 4 bytes for
    /// every 3 it had.
    pub fn kept_cost(&self) -> usize {
        self.data.len() + self.id.len() + MESSAGE_OVERHEAD
    }

    /// The message's bytes: the data of a text message, the decoded base64
    /// of a binary one (made when a form needs them, not kept).
    pub fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self.kind {
            Kind::Text => std::borrow::Cow::Borrowed(self.data.as_bytes()),
            // The data was encoded by `encode_binary` when it was appended
            // or checked by the log that read it back: it decodes.
            Kind::Binary => std::borrow::Cow::Owned(decode_binary(&self.data).unwrap_or_default()),
        }
    }
}

/// The wire forms of one message, made and emptied by `session::encoded`
/// (the one module that knows what each holds).
#[derive(Default)]
pub struct EncodedForms {
    pub json: Slot,
    /// `,` then the JSON: the message after the first in a poll body.
    pub json_list_item: Slot,
    pub sse_single: Slot,
    pub sse_multi: Slot,
    /// The WebSocket frame: a text frame holding the JSON object, or for a
    /// binary message a binary frame holding the envelope and its bytes.
    pub ws_frame: Slot,
    /// The WebSocket frame compressed with permessage-deflate (15-bit window).
    pub ws_deflate_frame: Slot,
    /// The fan-out is over: encodings are no longer kept.
    pub sealed: Cell<bool>,
}

/// One cached encoding, or none.
#[derive(Default)]
pub struct Slot(Cell<Option<Rc<[u8]>>>);

impl Slot {
    /// The cached bytes, if any (a refcount bump).
    pub fn get(&self) -> Option<Rc<[u8]>> {
        let bytes = self.0.take();
        self.0.set(bytes.clone());
        bytes
    }

    /// Caches `bytes`.
    pub fn set(&self, bytes: Rc<[u8]>) {
        self.0.set(Some(bytes));
    }

    /// Drops the cached bytes; returns how many there were.
    pub fn clear(&self) -> usize {
        self.0.take().map_or(0, |b| b.len())
    }

    /// Bytes cached.
    pub fn len(&self) -> usize {
        self.get().map_or(0, |b| b.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("data", &self.data)
            .finish()
    }
}

/// The answer to a read: what a poll body, an SSE resume or a WebSocket
/// `since` delivers.
#[derive(Debug, Default)]
pub struct Batch {
    /// Kept messages after the cursor, in id order.
    pub messages: Vec<Rc<Message>>,
    /// Messages after the cursor that were evicted before this read.
    pub missed: u64,
    /// The cursor was from another epoch or from the future.
    pub reset: bool,
    /// Sequence number of the cursor for the following read.
    pub next_seq: u64,
}

/// Why a publish or subscribe was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The topic name breaks the `[A-Za-z0-9._~-]{1,128}` rule.
    InvalidTopic,
    /// `--max-topics` topics already have subscribers.
    TooManyTopics,
    /// The log cannot take the message now (a shared log is unreachable,
    /// too many appends wait for it): try again in `retry_after_secs`.
    Unavailable {
        retry_after_secs: u32,
        why: Box<str>,
    },
    /// The log's storage is full (a durable log's disk): nothing more is
    /// accepted until room is made.
    StorageFull,
}

impl HubError {
    /// The HTTP status this refusal maps to.
    pub fn status(&self) -> u16 {
        match self {
            HubError::InvalidTopic => 400,
            HubError::TooManyTopics | HubError::Unavailable { .. } => 503,
            HubError::StorageFull => 507,
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::InvalidTopic => {
                f.write_str("topic must be 1-128 bytes of A-Z a-z 0-9 . _ ~ -")
            }
            HubError::TooManyTopics => {
                f.write_str("too many topics have subscribers (--max-topics); try again later")
            }
            HubError::Unavailable { why, .. } => write!(f, "the message log is unavailable: {why}"),
            HubError::StorageFull => f.write_str("the message log's storage is full"),
        }
    }
}

impl std::error::Error for HubError {}
