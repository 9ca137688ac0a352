//! The pub/sub hub: topics, message ids, ring-buffer history and subscribers.
//! Pure data — no sockets, no clock (time comes in as an argument).
//!
//! # Ids and cursors (docs/api.md § Ids and cursors)
//!
//! A message id is `E-N`: `E` is the hub's epoch, chosen by whoever creates
//! the hub (the server uses its start time), and `N` a hub-wide sequence
//! 1, 2, 3, … shared by every topic, so one cursor serves any set of topics.
//! A [`Cursor`] asks for "messages after this id"; [`Cursor::Now`] for "from
//! now on" and [`Cursor::All`] (`since=0`) for "all that is still kept".
//! Ids, cursors and topic names are defined in [`crate::ids`] (re-exported
//! here), which the codecs use without depending on the hub.
//!
//! Gaps are never silent. When messages after a cursor were already evicted,
//! [`Batch::missed`] counts them: exactly while the hub still remembers the
//! evicted ids (each topic remembers as many evicted ids as it keeps
//! messages), and as a lower bound of 1 beyond that. A cursor from another
//! epoch (the server restarted) or from the future gives [`Batch::reset`] and
//! the oldest kept messages.
//!
//! # The interface
//!
//! The server and the sessions use the [`Hub`] trait; [`MemoryHub`] is the
//! single-process implementation. A multi-node hub (several pushlab processes
//! sharing topics through a broker) is another implementation of the same
//! trait.

mod log;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::time::Duration;

pub use crate::ids::{base36, is_valid_topic, Cursor, IdHasher};
use crate::time::Instant;

pub use log::{MemoryLog, FORGOTTEN_BUCKETS};

/// Who is subscribed: the server uses the connection's token.
pub type SubscriberId = usize;

/// Most topics with kept messages, and most topics with subscribers, a hub
/// tracks at once, unless told otherwise (`--max-topics`). A publish to a
/// new topic past it evicts the oldest history of the hub until a topic
/// frees its slot; a subscription to a new topic past it fails with
/// [`HubError::TooManyTopics`] (→ `503`) until a subscriber leaves.
pub const DEFAULT_MAX_TOPICS: usize = 100_000;

/// Most bytes of history a hub keeps over all topics, unless told otherwise
/// (`--history-memory`; see [`Message::kept_cost`]).
pub const DEFAULT_HISTORY_MEMORY: usize = 256 * 1024 * 1024;

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
    pub data: Box<str>,
    pub published_at: Instant,
    /// Encodings shared during the fan-out (see `session::encoded`).
    pub encoded: EncodedForms,
}

/// Bytes a kept message costs beyond its data and id: the message itself
/// and its reference counts, its slot in the topic's ring, its entries in
/// the log's id-order queue (at most two, see `MemoryLog`), and the
/// allocator's headers of data and id.
pub const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>() + 16 + 8 + 2 * 32 + 2 * 16;

impl Message {
    /// What keeping this message costs in the `--history-memory`
    /// accounting: its data and id plus [`MESSAGE_OVERHEAD`]. No encoding
    /// is kept with it, so this is the whole cost whatever the content
    /// (control characters that JSON escapes sixfold, newlines that SSE
    /// prefixes with `data:`) and however many transports read it.
    pub fn kept_cost(&self) -> usize {
        self.data.len() + self.id.len() + MESSAGE_OVERHEAD
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

/// What a hub keeps now, against its bounds (`/stats`, `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Accounted bytes of kept history (messages, eviction records, topics).
    pub history_bytes: usize,
    /// `--history-memory`.
    pub history_limit: usize,
    pub kept_messages: usize,
    /// Topics that keep at least one message.
    pub topics_kept: usize,
    /// Topics with at least one subscriber.
    pub topics_subscribed: usize,
}

/// Why a publish or subscribe was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The topic name breaks the `[A-Za-z0-9._~-]{1,128}` rule.
    InvalidTopic,
    /// `--max-topics` topics already have subscribers.
    TooManyTopics,
}

impl HubError {
    /// The HTTP status this refusal maps to.
    pub fn status(&self) -> u16 {
        match self {
            HubError::InvalidTopic => 400,
            HubError::TooManyTopics => 503,
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
        }
    }
}

impl std::error::Error for HubError {}

/// What the server and sessions need from a hub.
pub trait Hub {
    /// The epoch part of every id this hub gives out.
    fn epoch(&self) -> &str;
    /// Sequence number of the newest message published (0 before any).
    fn head(&self) -> u64;
    /// Stores a message and returns it; the caller fans it out to
    /// [`Hub::subscribers`] of its topic.
    fn publish(&mut self, topic: &str, data: &str, now: Instant) -> Result<Rc<Message>, HubError>;
    /// Messages of `topics` after `cursor` that are still kept.
    fn read(&mut self, topics: &[Rc<str>], cursor: &Cursor, now: Instant) -> Batch;
    /// Adds `sub` to the subscribers of `topic`.
    fn subscribe(&mut self, topic: &str, sub: SubscriberId) -> Result<(), HubError>;
    /// Removes `sub` from the subscribers of `topic` (no-op if absent).
    fn unsubscribe(&mut self, topic: &str, sub: SubscriberId);
    /// Appends the subscribers of `topic` to `out`.
    fn subscribers(&self, topic: &str, out: &mut Vec<SubscriberId>);
    /// Evicts messages older than the history TTL; topics left with no
    /// message are reclaimed.
    fn expire(&mut self, now: Instant);
    /// What the hub keeps, for `/stats`.
    fn usage(&self) -> Usage;
    /// Formats `E-seq` for this hub.
    fn format_id(&self, seq: u64) -> String {
        crate::ids::format_id(self.epoch(), seq)
    }
}

/// A set of subscriber ids.
type IdSet = HashSet<SubscriberId, BuildHasherDefault<IdHasher>>;

/// Who listens to which topic: the subscriber half of the hub. A topic is
/// here only while someone subscribes to it.
struct Registry {
    topics: HashMap<Rc<str>, IdSet>,
    /// Most topics with subscribers at once (`--max-topics`).
    max_topics: usize,
}

/// The single-process hub: a [`Registry`] of subscribers beside a
/// [`MemoryLog`] of kept messages.
pub struct MemoryHub {
    epoch: String,
    seq: u64,
    log: MemoryLog,
    registry: Registry,
}

impl MemoryHub {
    /// A hub whose ids start with `epoch` (ASCII alphanumeric), keeping at
    /// most `capacity` messages per topic for at most `ttl`, within the
    /// default `--history-memory` and `--max-topics` (see [`MemoryHub::with_limits`]).
    pub fn new(epoch: &str, capacity: usize, ttl: Duration) -> MemoryHub {
        assert!(
            !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric()),
            "epoch must be ASCII alphanumeric"
        );
        MemoryHub {
            epoch: epoch.to_string(),
            seq: 0,
            log: MemoryLog::new(capacity, ttl, DEFAULT_HISTORY_MEMORY, DEFAULT_MAX_TOPICS),
            registry: Registry {
                topics: HashMap::new(),
                max_topics: DEFAULT_MAX_TOPICS,
            },
        }
    }

    /// The same hub (still empty) keeping at most `history_memory` bytes of
    /// history over all topics, and at most `max_topics` topics with kept
    /// messages and as many with subscribers.
    pub fn with_limits(mut self, history_memory: usize, max_topics: usize) -> MemoryHub {
        let (capacity, ttl) = (self.log.capacity(), self.log.ttl());
        let key = self.log.hash_key();
        self.log = MemoryLog::new(capacity, ttl, history_memory, max_topics);
        self.log.set_hash_key(key);
        self.registry.max_topics = max_topics;
        self
    }

    /// The same hub with the key of its keyed hashes set (random by
    /// default; the shell records it and a replay gives it back).
    pub fn with_hash_key(mut self, key: u64) -> MemoryHub {
        self.log.set_hash_key(key);
        self
    }

    /// The key of its keyed hashes.
    pub fn hash_key(&self) -> u64 {
        self.log.hash_key()
    }

    /// Topics tracked: with kept messages, subscribers, or both.
    pub fn topic_count(&self) -> usize {
        let only_subscribed = self
            .registry
            .topics
            .keys()
            .filter(|t| !self.log.has_topic(t))
            .count();
        self.log.topic_count() + only_subscribed
    }

    /// Messages kept in `topic`.
    pub fn kept(&self, topic: &str) -> usize {
        self.log.kept(topic)
    }

    /// The message log (history and its bounds).
    pub fn log(&self) -> &MemoryLog {
        &self.log
    }
}

impl Hub for MemoryHub {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn head(&self) -> u64 {
        self.seq
    }

    fn publish(&mut self, topic: &str, data: &str, now: Instant) -> Result<Rc<Message>, HubError> {
        if !is_valid_topic(topic) {
            return Err(HubError::InvalidTopic);
        }
        let seq = self.seq + 1;
        let id = crate::ids::format_id(&self.epoch, seq).into_boxed_str();
        let message = self.log.append(topic, seq, id, data, now)?;
        self.seq = seq;
        Ok(message)
    }

    fn read(&mut self, topics: &[Rc<str>], cursor: &Cursor, now: Instant) -> Batch {
        self.log.read(topics, cursor, self.seq, &self.epoch, now)
    }

    fn subscribe(&mut self, topic: &str, sub: SubscriberId) -> Result<(), HubError> {
        if !is_valid_topic(topic) {
            return Err(HubError::InvalidTopic);
        }
        let registry = &mut self.registry;
        if let Some(subs) = registry.topics.get_mut(topic) {
            subs.insert(sub);
            return Ok(());
        }
        if registry.topics.len() >= registry.max_topics {
            return Err(HubError::TooManyTopics);
        }
        registry
            .topics
            .entry(Rc::from(topic))
            .or_default()
            .insert(sub);
        Ok(())
    }

    fn unsubscribe(&mut self, topic: &str, sub: SubscriberId) {
        if let Some(subs) = self.registry.topics.get_mut(topic) {
            subs.remove(&sub);
            if subs.is_empty() {
                self.registry.topics.remove(topic);
            }
        }
    }

    fn subscribers(&self, topic: &str, out: &mut Vec<SubscriberId>) {
        if let Some(subs) = self.registry.topics.get(topic) {
            out.extend(subs.iter().copied());
        }
    }

    fn expire(&mut self, now: Instant) {
        self.log.expire(now);
    }

    fn usage(&self) -> Usage {
        Usage {
            history_bytes: self.log.history_bytes(),
            history_limit: self.log.memory_limit(),
            kept_messages: self.log.kept_total(),
            topics_kept: self.log.topic_count(),
            topics_subscribed: self.registry.topics.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t(s: &str) -> Vec<Rc<str>> {
        s.split(',').map(Rc::from).collect()
    }

    fn after(seq: u64) -> Cursor {
        Cursor::After {
            epoch: "e1".into(),
            seq,
        }
    }

    fn datas(b: &Batch) -> Vec<&str> {
        b.messages.iter().map(|m| &*m.data).collect()
    }

    #[test]
    fn ids_are_epoch_dash_a_hub_wide_sequence() {
        let mut hub = MemoryHub::new("e1", 8, HOUR);
        let a = hub.publish("a", "x", Instant::ZERO).unwrap();
        let b = hub.publish("b", "y", Instant::ZERO).unwrap();
        assert_eq!(&*a.id, "e1-1");
        assert_eq!(&*b.id, "e1-2");
        assert_eq!(hub.head(), 2);
    }

    #[test]
    fn a_read_returns_exactly_the_messages_after_the_cursor() {
        let mut hub = MemoryHub::new("e1", 8, HOUR);
        for d in ["1", "2", "3"] {
            hub.publish("a", d, Instant::ZERO).unwrap();
        }
        let b = hub.read(&t("a"), &after(1), Instant::ZERO);
        assert_eq!(datas(&b), ["2", "3"]);
        assert_eq!((b.missed, b.reset, b.next_seq), (0, false, 3));
        let b = hub.read(&t("a"), &Cursor::Now, Instant::ZERO);
        assert!(b.messages.is_empty());
        assert_eq!(b.next_seq, 3);
        assert_eq!(
            datas(&hub.read(&t("a"), &Cursor::All, Instant::ZERO)),
            ["1", "2", "3"]
        );
    }

    #[test]
    fn several_topics_merge_in_id_order() {
        let mut hub = MemoryHub::new("e1", 8, HOUR);
        for (topic, d) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4"), ("b", "5")] {
            hub.publish(topic, d, Instant::ZERO).unwrap();
        }
        let b = hub.read(&t("b,a"), &after(1), Instant::ZERO);
        assert_eq!(datas(&b), ["2", "4", "5"]);
    }

    #[test]
    fn evicted_messages_are_counted_as_missed() {
        let mut hub = MemoryHub::new("e1", 2, HOUR);
        for d in ["1", "2", "3", "4", "5"] {
            hub.publish("a", d, Instant::ZERO).unwrap();
        }
        let b = hub.read(&t("a"), &after(1), Instant::ZERO);
        assert_eq!(datas(&b), ["4", "5"]);
        assert_eq!(b.missed, 2); // 2 and 3 are gone
        let b = hub.read(&t("a"), &after(3), Instant::ZERO);
        assert_eq!(b.missed, 0);
    }

    #[test]
    fn missed_is_at_least_one_when_the_eviction_record_is_gone_too() {
        let mut hub = MemoryHub::new("e1", 1, HOUR);
        for d in ["1", "2", "3", "4"] {
            hub.publish("a", d, Instant::ZERO).unwrap();
        }
        // Kept: 4. Remembered evicted: 3. Forgotten: 1, 2.
        let b = hub.read(&t("a"), &after(0), Instant::ZERO);
        assert_eq!(datas(&b), ["4"]);
        assert!(b.missed >= 1);
        assert_eq!(hub.read(&t("a"), &after(2), Instant::ZERO).missed, 1);
    }

    #[test]
    fn old_messages_expire_after_the_ttl() {
        let mut hub = MemoryHub::new("e1", 8, Duration::from_secs(10));
        hub.publish("a", "old", Instant::ZERO).unwrap();
        hub.publish("a", "new", Instant::from_millis(9_000))
            .unwrap();
        hub.expire(Instant::from_millis(10_500));
        assert_eq!(hub.kept("a"), 1);
        let b = hub.read(&t("a"), &after(0), Instant::from_millis(10_500));
        assert_eq!(datas(&b), ["new"]);
        assert_eq!(b.missed, 1);
    }

    #[test]
    fn a_cursor_from_another_epoch_or_the_future_resets() {
        let mut hub = MemoryHub::new("e1", 8, HOUR);
        hub.publish("a", "1", Instant::ZERO).unwrap();
        for cursor in [
            Cursor::After {
                epoch: "old".into(),
                seq: 1,
            },
            after(99),
        ] {
            let b = hub.read(&t("a"), &cursor, Instant::ZERO);
            assert!(b.reset);
            assert_eq!(datas(&b), ["1"]);
            assert_eq!(b.missed, 0);
        }
    }

    #[test]
    fn invalid_topics_are_refused() {
        let mut hub = MemoryHub::new("e1", 8, HOUR);
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129)] {
            assert_eq!(
                hub.publish(bad, "x", Instant::ZERO).unwrap_err(),
                HubError::InvalidTopic
            );
        }
        assert!(hub.publish(&"x".repeat(128), "x", Instant::ZERO).is_ok());
        assert!(hub.publish("A-z_0.9~", "x", Instant::ZERO).is_ok());
    }

    #[test]
    fn unused_topics_are_forgotten_when_the_last_subscriber_leaves() {
        let mut hub = MemoryHub::new("e1", 8, HOUR);
        hub.subscribe("a", 1).unwrap();
        hub.subscribe("a", 2).unwrap();
        let mut subs = Vec::new();
        hub.subscribers("a", &mut subs);
        subs.sort_unstable();
        assert_eq!(subs, [1, 2]);
        hub.unsubscribe("a", 1);
        hub.unsubscribe("a", 2);
        assert_eq!(hub.topic_count(), 0);
    }

    proptest! {
        /// Hub invariants against a model that keeps everything: ids
        /// increase; a read returns exactly the kept messages after the
        /// cursor; the history bound holds; missed counts are exact while the
        /// eviction record lasts and never zero when something was lost.
        #[test]
        fn hub_agrees_with_a_model_that_keeps_everything(
            capacity in 1usize..6,
            ops in proptest::collection::vec((0u8..3, any::<bool>(), 0u64..40), 1..120),
        ) {
            let mut hub = MemoryHub::new("e1", capacity, HOUR);
            let names = ["a", "b", "c"];
            let mut all: Vec<(u64, &str)> = Vec::new();
            let mut last = 0;
            for (topic, is_publish, cursor) in ops {
                let topic = names[topic as usize];
                if is_publish {
                    let m = hub.publish(topic, "x", Instant::ZERO).unwrap();
                    prop_assert!(m.seq > last);
                    last = m.seq;
                    all.push((m.seq, topic));
                    prop_assert!(hub.kept(topic) <= capacity);
                } else {
                    let cursor = cursor.min(hub.head());
                    let b = hub.read(&t(topic), &after(cursor), Instant::ZERO);
                    let expected: Vec<u64> = all.iter()
                        .filter(|(s, n)| *n == topic && *s > cursor)
                        .map(|(s, _)| *s)
                        .collect();
                    let got: Vec<u64> = b.messages.iter().map(|m| m.seq).collect();
                    // What is returned is the newest suffix of what is expected.
                    prop_assert!(expected.ends_with(&got));
                    let lost = (expected.len() - got.len()) as u64;
                    // Every topic remembers `capacity` evictions, so the
                    // count is exact unless more than that were lost.
                    if lost <= capacity as u64 {
                        prop_assert_eq!(b.missed, lost);
                    } else {
                        prop_assert!(b.missed >= 1 && b.missed <= lost);
                    }
                    prop_assert_eq!(b.missed == 0, lost == 0);
                }
            }
        }
    }
}
