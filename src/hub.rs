//! The pub/sub hub: topics, message ids, ring-buffer history and subscribers.
//! Pure data — no sockets, no clock (time comes in as an argument).
//!
//! # Ids and cursors (DESIGN.md §1)
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

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::time::Duration;

pub use crate::ids::{base36, is_valid_topic, Cursor, IdHasher};
use crate::time::Instant;

/// Who is subscribed: the server uses the connection's token.
pub type SubscriberId = usize;

/// Most topics a hub tracks at once; publishing to or subscribing to a new
/// topic past it fails with [`HubError::TooManyTopics`] (→ `503`).
pub const MAX_TOPICS: usize = 100_000;

/// One published message, shared (`Rc`) by the history and every subscriber.
///
/// Each transport's encoding of the message is made the first time it is
/// asked for and then shared, so fan-out to any number of subscribers encodes
/// once per transport.
pub struct Message {
    pub topic: Rc<str>,
    pub seq: u64,
    /// `E-N`, the message id and the cursor that follows it.
    pub id: Box<str>,
    pub data: Box<str>,
    pub published_at: Instant,
    /// Encodings made on first use (see `session::encoded`).
    pub encoded: EncodedForms,
}

/// Lazily built, shared wire forms of one message.
#[derive(Default)]
pub struct EncodedForms {
    pub json: OnceCell<Rc<[u8]>>,
    /// `,` then the JSON: the message after the first in a poll body.
    pub json_list_item: OnceCell<Rc<[u8]>>,
    pub sse_single: OnceCell<Rc<[u8]>>,
    pub sse_multi: OnceCell<Rc<[u8]>>,
    pub ws_frame: OnceCell<Rc<[u8]>>,
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

/// Why a publish or subscribe was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The topic name breaks the `[A-Za-z0-9._~-]{1,128}` rule.
    InvalidTopic,
    /// The hub already tracks [`MAX_TOPICS`] topics.
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
            HubError::TooManyTopics => write!(f, "the hub already tracks {MAX_TOPICS} topics"),
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
    /// Evicts messages older than the history TTL.
    fn expire(&mut self, now: Instant);
    /// Formats `E-seq` for this hub.
    fn format_id(&self, seq: u64) -> String {
        crate::ids::format_id(self.epoch(), seq)
    }
}

/// A set of subscriber ids.
type IdSet = HashSet<SubscriberId, BuildHasherDefault<IdHasher>>;

/// One topic's state.
#[derive(Default)]
struct TopicState {
    name: Option<Rc<str>>,
    /// Kept messages, oldest first, ascending `seq`.
    history: VecDeque<Rc<Message>>,
    /// Ids of evicted messages, ascending, at most `capacity` of them.
    evicted: VecDeque<u64>,
    /// The largest id that fell off `evicted` (0 if none did): evictions
    /// after a cursor older than this can only be counted as "at least one".
    forgotten_upto: u64,
    subscribers: IdSet,
}

impl TopicState {
    fn evict_front(&mut self, capacity: usize) {
        if let Some(m) = self.history.pop_front() {
            self.evicted.push_back(m.seq);
            while self.evicted.len() > capacity.max(1) {
                if let Some(seq) = self.evicted.pop_front() {
                    self.forgotten_upto = seq;
                }
            }
        }
    }

    /// Evicted messages with id > `after`: exact when remembered, else ≥ 1.
    fn missed_after(&self, after: u64) -> u64 {
        let remembered = self.evicted.len() - self.evicted.partition_point(|&s| s <= after);
        let forgotten = u64::from(after < self.forgotten_upto);
        remembered as u64 + forgotten
    }

    fn is_unused(&self) -> bool {
        self.history.is_empty() && self.evicted.is_empty() && self.subscribers.is_empty()
    }
}

/// The single-process hub.
pub struct MemoryHub {
    epoch: String,
    seq: u64,
    capacity: usize,
    ttl: Duration,
    topics: HashMap<Rc<str>, TopicState>,
}

impl MemoryHub {
    /// A hub whose ids start with `epoch` (ASCII alphanumeric), keeping at
    /// most `capacity` messages per topic for at most `ttl`.
    pub fn new(epoch: &str, capacity: usize, ttl: Duration) -> MemoryHub {
        assert!(
            !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric()),
            "epoch must be ASCII alphanumeric"
        );
        MemoryHub {
            epoch: epoch.to_string(),
            seq: 0,
            capacity,
            ttl,
            topics: HashMap::new(),
        }
    }

    /// Number of topics tracked.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Messages kept in `topic`.
    pub fn kept(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |t| t.history.len())
    }

    fn topic_mut(&mut self, topic: &str) -> Result<&mut TopicState, HubError> {
        if !is_valid_topic(topic) {
            return Err(HubError::InvalidTopic);
        }
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= MAX_TOPICS {
                return Err(HubError::TooManyTopics);
            }
            let name: Rc<str> = Rc::from(topic);
            let state = TopicState {
                name: Some(name.clone()),
                ..TopicState::default()
            };
            self.topics.insert(name, state);
        }
        Ok(self.topics.get_mut(topic).expect("inserted above"))
    }

    fn expire_topic(state: &mut TopicState, capacity: usize, ttl: Duration, now: Instant) {
        while let Some(front) = state.history.front() {
            if now.saturating_since(front.published_at) <= ttl {
                break;
            }
            state.evict_front(capacity);
        }
    }

    fn drop_if_unused(&mut self, topic: &str) {
        if self.topics.get(topic).is_some_and(TopicState::is_unused) {
            self.topics.remove(topic);
        }
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
        let capacity = self.capacity;
        let ttl = self.ttl;
        let seq = self.seq + 1;
        let id = crate::ids::format_id(&self.epoch, seq).into_boxed_str();
        let state = self.topic_mut(topic)?;
        let message = Rc::new(Message {
            topic: state.name.clone().expect("named at creation"),
            seq,
            id,
            data: data.into(),
            published_at: now,
            encoded: EncodedForms::default(),
        });
        Self::expire_topic(state, capacity, ttl, now);
        if capacity == 0 {
            // History disabled: the message is delivered live and at once
            // counts as evicted for any later reader.
            state.history.push_back(message.clone());
            state.evict_front(1);
        } else {
            state.history.push_back(message.clone());
            while state.history.len() > capacity {
                state.evict_front(capacity);
            }
        }
        self.seq = seq;
        Ok(message)
    }

    fn read(&mut self, topics: &[Rc<str>], cursor: &Cursor, now: Instant) -> Batch {
        let head = self.seq;
        let (after, reset) = match cursor {
            Cursor::Now => {
                return Batch {
                    next_seq: head,
                    ..Batch::default()
                }
            }
            Cursor::All => (0, false),
            Cursor::After { epoch, seq } => {
                if *epoch != self.epoch || *seq > head {
                    (0, true)
                } else {
                    (*seq, false)
                }
            }
        };
        let mut batch = Batch {
            reset,
            next_seq: head,
            ..Batch::default()
        };
        let (capacity, ttl) = (self.capacity, self.ttl);
        for name in topics {
            let Some(state) = self.topics.get_mut(&**name) else {
                continue;
            };
            Self::expire_topic(state, capacity, ttl, now);
            let start = state.history.partition_point(|m| m.seq <= after);
            batch.messages.extend(state.history.range(start..).cloned());
            if matches!(cursor, Cursor::After { .. }) && !reset {
                batch.missed += state.missed_after(after);
            }
        }
        if topics.len() > 1 {
            batch.messages.sort_unstable_by_key(|m| m.seq);
        }
        batch
    }

    fn subscribe(&mut self, topic: &str, sub: SubscriberId) -> Result<(), HubError> {
        self.topic_mut(topic)?.subscribers.insert(sub);
        Ok(())
    }

    fn unsubscribe(&mut self, topic: &str, sub: SubscriberId) {
        if let Some(state) = self.topics.get_mut(topic) {
            state.subscribers.remove(&sub);
        }
        self.drop_if_unused(topic);
    }

    fn subscribers(&self, topic: &str, out: &mut Vec<SubscriberId>) {
        if let Some(state) = self.topics.get(topic) {
            out.extend(state.subscribers.iter().copied());
        }
    }

    fn expire(&mut self, now: Instant) {
        let (capacity, ttl) = (self.capacity, self.ttl);
        for state in self.topics.values_mut() {
            Self::expire_topic(state, capacity, ttl, now);
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
