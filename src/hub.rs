//! The pub/sub hub: who subscribes to which topic, beside the message log
//! that orders and keeps what is published. Pure data — no sockets, no
//! clock (time comes in as an argument).
//!
//! The hub is two halves:
//! - a [`Registry`] of subscribers per topic, always local to this process
//!   (a subscriber is a connection of this server);
//! - a [`Log`] behind the seam of [`crate::log`]: [`MemoryLog`] for one
//!   process, a shared or durable log for more. Publishing goes through
//!   [`Hub::append`] and comes back as a [`Commit`] ([`Hub::poll_commit`]);
//!   the engine fans out only committed messages.
//!
//! Ids, cursors and topic names are defined in [`crate::ids`]; messages,
//! batches and the rules of `missed` in [`crate::log`] (all re-exported
//! here).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::time::Duration;

pub use crate::ids::{base36, is_valid_topic, Cursor, IdHasher};
pub use crate::log::{
    decode_binary, encode_binary, Batch, BrokerStatus, Commit, Completion, EncodedForms, Group,
    History, HubError, Kind, Link, Log, LogEvent, LogOutput, LogUsage, MemoryLog, Message, Notice,
    Slot, Ticket, FORGOTTEN_BUCKETS, MESSAGE_OVERHEAD,
};
use crate::time::Instant;

/// Who is subscribed: the engine uses the connection's slot.
pub type SubscriberId = usize;

/// Most topics with kept messages, and most topics with subscribers, a hub
/// tracks at once, unless told otherwise (`--max-topics`). A publish to a
/// new topic past it evicts the oldest history of the log until a topic
/// frees its slot; a subscription to a new topic past it fails with
/// [`HubError::TooManyTopics`] (→ `503`) until a subscriber leaves.
pub const DEFAULT_MAX_TOPICS: usize = 100_000;

/// Most bytes of history a log keeps over all topics, unless told otherwise
/// (`--history-memory`; see [`Message::kept_cost`]).
pub const DEFAULT_HISTORY_MEMORY: usize = 256 * 1024 * 1024;

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
    /// Publishes appended and not yet committed.
    pub pending: usize,
}

/// A set of subscriber ids.
type IdSet = HashSet<SubscriberId, BuildHasherDefault<IdHasher>>;

/// Who listens to which topic: the subscriber half of the hub. A topic is
/// here only while someone subscribes to it.
pub struct Registry {
    topics: HashMap<Rc<str>, IdSet>,
    /// Most topics with subscribers at once (`--max-topics`).
    max_topics: usize,
}

impl Registry {
    /// An empty registry of at most `max_topics` topics.
    pub fn new(max_topics: usize) -> Registry {
        Registry {
            topics: HashMap::new(),
            max_topics,
        }
    }

    /// Adds `sub` to the subscribers of `topic` (a valid name).
    pub fn subscribe(&mut self, topic: &str, sub: SubscriberId) -> Result<(), HubError> {
        if let Some(subs) = self.topics.get_mut(topic) {
            subs.insert(sub);
            return Ok(());
        }
        if self.topics.len() >= self.max_topics {
            return Err(HubError::TooManyTopics);
        }
        self.topics.entry(Rc::from(topic)).or_default().insert(sub);
        Ok(())
    }

    /// Removes `sub` from the subscribers of `topic` (no-op if absent); a
    /// topic left with none is forgotten.
    pub fn unsubscribe(&mut self, topic: &str, sub: SubscriberId) {
        if let Some(subs) = self.topics.get_mut(topic) {
            subs.remove(&sub);
            if subs.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    /// Appends the subscribers of `topic` to `out`.
    pub fn subscribers(&self, topic: &str, out: &mut Vec<SubscriberId>) {
        if let Some(subs) = self.topics.get(topic) {
            out.extend(subs.iter().copied());
        }
    }

    /// Topics with at least one subscriber.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Whether no topic has a subscriber.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

/// The hub the sessions and the engine use: a [`Registry`] beside a
/// [`Log`].
pub struct Hub {
    log: Box<dyn Log>,
    registry: Registry,
    /// The ticket of the next append.
    next_ticket: Ticket,
}

impl Hub {
    /// A hub on `log`, with at most `max_topics` subscribed topics.
    pub fn new(log: Box<dyn Log>, max_topics: usize) -> Hub {
        Hub {
            log,
            registry: Registry::new(max_topics),
            next_ticket: 1,
        }
    }

    /// A single-process hub ([`MemoryLog`]) whose ids start with `epoch`,
    /// keeping at most `capacity` messages per topic for at most `ttl`,
    /// within the default `--history-memory` and `--max-topics`.
    pub fn memory(epoch: &str, capacity: usize, ttl: Duration) -> Hub {
        Hub::memory_bounded(
            epoch,
            capacity,
            ttl,
            DEFAULT_HISTORY_MEMORY,
            DEFAULT_MAX_TOPICS,
        )
    }

    /// [`Hub::memory`] keeping at most `history_memory` bytes of history
    /// over all topics, and at most `max_topics` topics with kept messages
    /// and as many with subscribers.
    pub fn memory_bounded(
        epoch: &str,
        capacity: usize,
        ttl: Duration,
        history_memory: usize,
        max_topics: usize,
    ) -> Hub {
        let log = MemoryLog::with_bounds(epoch, capacity, ttl, history_memory, max_topics);
        Hub::new(Box::new(log), max_topics)
    }

    /// The log, to inspect it.
    pub fn log(&self) -> &dyn Log {
        &*self.log
    }

    /// The log, for its driver's events and output.
    pub fn log_mut(&mut self) -> &mut dyn Log {
        &mut *self.log
    }

    /// The epoch part of every id.
    pub fn epoch(&self) -> &str {
        self.log.epoch()
    }

    /// Sequence number of the newest committed message (0 before any).
    pub fn head(&self) -> u64 {
        self.log.head()
    }

    /// Formats `E-seq` for this hub.
    pub fn format_id(&self, seq: u64) -> String {
        crate::ids::format_id(self.epoch(), seq)
    }

    /// Appends a message of `kind` to `topic` (`data` is a binary
    /// message's base64, see [`Kind`]): the [`Commit`] carrying this ticket
    /// comes from [`Hub::poll_commit`] (at once for a [`MemoryLog`]).
    pub fn append(
        &mut self,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<Ticket, HubError> {
        if !is_valid_topic(topic) {
            return Err(HubError::InvalidTopic);
        }
        let ticket = self.next_ticket;
        self.log.append(ticket, topic, kind, data, now)?;
        self.next_ticket += 1;
        Ok(ticket)
    }

    /// The next commit of the log, in id order.
    pub fn poll_commit(&mut self) -> Option<Commit> {
        self.log.poll_commit()
    }

    /// The log's next break in continuity, if it comes before its next
    /// commit (see [`Log::poll_notice`]).
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.log.poll_notice()
    }

    /// Appends and takes the commit at once: for a log that commits inside
    /// `append` ([`MemoryLog`]) — tests, benches, tools. The server never
    /// waits for a commit; it goes through [`Hub::append`].
    ///
    /// # Panics
    ///
    /// When the log does not commit within the call.
    pub fn publish(
        &mut self,
        topic: &str,
        data: &str,
        now: Instant,
    ) -> Result<Rc<Message>, HubError> {
        self.publish_kind(topic, Kind::Text, data, now)
    }

    /// [`Hub::publish`] of the bytes `data` as a binary message.
    pub fn publish_binary(
        &mut self,
        topic: &str,
        data: &[u8],
        now: Instant,
    ) -> Result<Rc<Message>, HubError> {
        self.publish_kind(topic, Kind::Binary, &encode_binary(data), now)
    }

    fn publish_kind(
        &mut self,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<Rc<Message>, HubError> {
        let ticket = self.append(topic, kind, data, now)?;
        let commit = self
            .poll_commit()
            .expect("Hub::publish needs a log that commits within append");
        assert_eq!(commit.ticket, Some(ticket), "the commit of another append");
        commit.outcome
    }

    /// Messages of `topics` after `cursor` that are still kept.
    pub fn read(&mut self, topics: &[Rc<str>], cursor: &Cursor, now: Instant) -> Batch {
        self.log.read(topics, cursor, now)
    }

    /// Adds `sub` to the subscribers of `topic`.
    pub fn subscribe(&mut self, topic: &str, sub: SubscriberId) -> Result<(), HubError> {
        if !is_valid_topic(topic) {
            return Err(HubError::InvalidTopic);
        }
        self.registry.subscribe(topic, sub)
    }

    /// Removes `sub` from the subscribers of `topic` (no-op if absent).
    pub fn unsubscribe(&mut self, topic: &str, sub: SubscriberId) {
        self.registry.unsubscribe(topic, sub);
    }

    /// Appends the subscribers of `topic` to `out`.
    pub fn subscribers(&self, topic: &str, out: &mut Vec<SubscriberId>) {
        self.registry.subscribers(topic, out);
    }

    /// Evicts messages older than the history TTL; topics left with no
    /// message are reclaimed.
    pub fn expire(&mut self, now: Instant) {
        self.log.expire(now);
    }

    /// Topics tracked: with kept messages, subscribers, or both.
    pub fn topic_count(&self) -> usize {
        let only_subscribed = self
            .registry
            .topics
            .keys()
            .filter(|t| !self.log.history().has_topic(t))
            .count();
        self.log.history().topic_count() + only_subscribed
    }

    /// Messages kept in `topic`.
    pub fn kept(&self, topic: &str) -> usize {
        self.log.history().kept(topic)
    }

    /// The log's kept history.
    pub fn history(&self) -> &History {
        self.log.history()
    }

    /// What the hub keeps, for `/stats`.
    pub fn usage(&self) -> Usage {
        let log = self.log.usage();
        Usage {
            history_bytes: log.history_bytes,
            history_limit: log.history_limit,
            kept_messages: log.kept_messages,
            topics_kept: log.topics_kept,
            topics_subscribed: self.registry.len(),
            pending: log.pending,
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
        let mut hub = Hub::memory("e1", 8, HOUR);
        let a = hub.publish("a", "x", Instant::ZERO).unwrap();
        let b = hub.publish("b", "y", Instant::ZERO).unwrap();
        assert_eq!(&*a.id, "e1-1");
        assert_eq!(&*b.id, "e1-2");
        assert_eq!(hub.head(), 2);
    }

    #[test]
    fn a_read_returns_exactly_the_messages_after_the_cursor() {
        let mut hub = Hub::memory("e1", 8, HOUR);
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
        let mut hub = Hub::memory("e1", 8, HOUR);
        for (topic, d) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4"), ("b", "5")] {
            hub.publish(topic, d, Instant::ZERO).unwrap();
        }
        let b = hub.read(&t("b,a"), &after(1), Instant::ZERO);
        assert_eq!(datas(&b), ["2", "4", "5"]);
    }

    #[test]
    fn evicted_messages_are_counted_as_missed() {
        let mut hub = Hub::memory("e1", 2, HOUR);
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
        let mut hub = Hub::memory("e1", 1, HOUR);
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
        let mut hub = Hub::memory("e1", 8, Duration::from_secs(10));
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
        let mut hub = Hub::memory("e1", 8, HOUR);
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
        let mut hub = Hub::memory("e1", 8, HOUR);
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
        let mut hub = Hub::memory("e1", 8, HOUR);
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
            let mut hub = Hub::memory("e1", capacity, HOUR);
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
