//! The in-memory message log: every topic's kept history, what was evicted
//! from it, and the server-wide bounds on both. Pure data, like the hub:
//! time comes in as an argument. Subscribers are none of its business
//! ([`crate::hub::Registry`] keeps them apart).
//!
//! # What is kept, and for how long
//!
//! A topic keeps its last `--history` messages for at most `--history-ttl`,
//! and all topics together keep at most `--history-memory` bytes
//! ([`History::history_bytes`], accounted as [`Message::kept_cost`] per
//! message plus the eviction records and per-topic overhead below). Past the
//! byte budget, or when a new topic needs a slot and `--max-topics` topics
//! already keep messages, the oldest kept message of the whole log goes
//! first, whatever its topic: one queue in id order ([`History::order`])
//! makes that O(1), and makes the TTL sweep cost what it evicts.
//!
//! A topic whose last message was evicted keeps only its eviction record,
//! for one more TTL (so `missed` stays exact for readers that come back in
//! that time), then [`History::expire`] reclaims it. Such topics go first,
//! before any kept message, when the byte budget or a new topic needs room:
//! no table fills for good, and nothing the log holds escapes the budget.
//!
//! # `missed` stays honest
//!
//! Each kept topic remembers the ids it evicted (up to `--history` of them),
//! so `missed` is exact for cursors within that record, and the largest id
//! that fell off the record makes older cursors count "at least 1". When a
//! topic is reclaimed, its record folds into one of [`FORGOTTEN_BUCKETS`]
//! watermarks picked by a keyed hash of its name: a later read of that name
//! (absent, or kept again since) with a cursor below the watermark gets
//! `missed` ≥ 1. Never silent; the price is a possible "1" for another topic
//! of the same bucket read with a cursor that old, once.
//!
//! Messages a shared log committed but this process never saw (its tail
//! fell behind the log's trimming) have no topic here: they are kept as
//! gaps ([`History::record_gap`]) and every read whose cursor is before a
//! gap counts its messages as `missed`, whatever its topics — exact for
//! the log as a whole, since the topics are unknown. At most [`MAX_GAPS`]
//! are kept; past that the two oldest merge, and a cursor inside a merged
//! gap is told at most what the merged range could hold (never 0).

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::mem::size_of;
use std::rc::Rc;
use std::time::Duration;

use super::{Batch, Cursor, EncodedForms, HubError, Kind, Message};
use crate::time::Instant;

/// Watermarks of reclaimed topics' evictions (a keyed hash of the name picks
/// one). More buckets, fewer false "missed: 1" for topics that share one;
/// 4096 cost 32 KiB.
pub const FORGOTTEN_BUCKETS: usize = 4096;

/// Gaps of unknown topics kept apart (see the module docs); 64 cost 1.5 KiB.
pub const MAX_GAPS: usize = 64;

/// Messages `from..=to` of which `count` were lost with their topics
/// unknown (`count` is `to - from + 1` until two gaps merge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gap {
    from: u64,
    to: u64,
    count: u64,
}

/// Bytes one remembered evicted id costs in the accounting.
const RECORD_COST: usize = size_of::<u64>();

/// Bytes a kept topic costs beyond its name and records: its state, its
/// slot in the table, its entries in [`History::emptied`] (at most two)
/// and the allocator's headers.
const TOPIC_OVERHEAD: usize =
    size_of::<TopicLog>() + size_of::<Rc<str>>() + 2 * size_of::<Emptied>() + 64;

/// One kept message in [`History::order`]. Entries of messages evicted
/// from their topic by other means (the per-topic bound) stay until they
/// reach the front or a compaction: [`History::is_kept`] tells.
struct Kept {
    seq: u64,
    at: Instant,
    topic: Rc<str>,
}

/// A topic whose history emptied at `at`, in [`History::emptied`].
struct Emptied {
    at: Instant,
    topic: Rc<str>,
}

/// One topic's kept history and eviction record.
struct TopicLog {
    /// When the last kept message was evicted, while none is kept.
    emptied_at: Option<Instant>,
    name: Rc<str>,
    /// Kept messages, oldest first, ascending `seq`.
    history: VecDeque<Rc<Message>>,
    /// Ids of evicted messages, ascending, at most `capacity` of them.
    evicted: VecDeque<u64>,
    /// The largest evicted id no longer in `evicted` (0 if none): a cursor
    /// older than it can only be told "at least one" was missed.
    forgotten_upto: u64,
}

impl TopicLog {
    /// Evicted messages with id > `after`: exact when remembered, else ≥ 1.
    fn missed_after(&self, after: u64) -> u64 {
        let remembered = self.evicted.len() - self.evicted.partition_point(|&s| s <= after);
        remembered as u64 + u64::from(after < self.forgotten_upto)
    }

    /// The newest id this topic lost (0 if none).
    fn last_evicted(&self) -> u64 {
        self.evicted
            .back()
            .copied()
            .unwrap_or(0)
            .max(self.forgotten_upto)
    }

    fn cost(name: &str) -> usize {
        TOPIC_OVERHEAD + name.len()
    }
}

/// Every topic's history, bounded per topic and server-wide.
pub struct History {
    /// Messages kept per topic (`--history`); 0 keeps none.
    capacity: usize,
    ttl: Duration,
    /// Most bytes kept over all topics (`--history-memory`).
    memory_limit: usize,
    /// Most topics keeping messages at once (`--max-topics`).
    max_topics: usize,
    topics: HashMap<Rc<str>, TopicLog>,
    /// Every kept message, in id order (plus stale entries, see [`Kept`]).
    order: VecDeque<Kept>,
    /// Topics that keep only an eviction record, oldest first (plus stale
    /// entries of topics kept again or reclaimed since).
    emptied: VecDeque<Emptied>,
    /// Messages kept over all topics.
    kept: usize,
    /// Accounted bytes: kept messages, eviction records, topics.
    bytes: usize,
    /// Evictions of reclaimed topics, by bucket (see the module docs).
    forgotten: Box<[u64]>,
    /// The key of the bucket hash: random unless set (a replay sets the
    /// recorded one, [`History::set_hash_key`]).
    bucket_key: u64,
    /// Messages lost with their topics unknown, oldest first (at most
    /// [`MAX_GAPS`]).
    gaps: VecDeque<Gap>,
}

impl History {
    /// The history the server's flags ask for: `--history`,
    /// `--history-ttl`, `--history-memory`, `--max-topics`.
    pub fn of_config(config: &crate::config::Config) -> Self {
        History::new(
            config.history,
            config.history_ttl,
            config.history_memory,
            config.max_topics,
        )
    }

    /// A log keeping `capacity` messages per topic for at most `ttl`, at
    /// most `memory_limit` bytes and `max_topics` topics in all.
    pub fn new(capacity: usize, ttl: Duration, memory_limit: usize, max_topics: usize) -> Self {
        History {
            capacity,
            ttl,
            memory_limit,
            max_topics,
            topics: HashMap::new(),
            order: VecDeque::new(),
            emptied: VecDeque::new(),
            kept: 0,
            bytes: 0,
            forgotten: vec![0; FORGOTTEN_BUCKETS].into_boxed_slice(),
            bucket_key: RandomState::new().hash_one(0u8),
            gaps: VecDeque::new(),
        }
    }

    /// An empty history with the same bounds and hash key: what a log
    /// whose epoch changed keeps from then on.
    pub fn emptied(&self) -> History {
        let mut fresh = History::new(self.capacity, self.ttl, self.memory_limit, self.max_topics);
        fresh.bucket_key = self.bucket_key;
        fresh
    }

    /// Messages `from..=to` were committed but will never be kept here
    /// (their topics unknown): reads from a cursor before them count them
    /// as `missed`, whatever their topics. `from` is above every id kept or
    /// recorded before.
    pub fn record_gap(&mut self, from: u64, to: u64) {
        if to < from {
            return;
        }
        self.gaps.push_back(Gap {
            from,
            to,
            count: to - from + 1,
        });
        if self.gaps.len() > MAX_GAPS {
            let (a, b) = (self.gaps.pop_front(), self.gaps.pop_front());
            if let (Some(a), Some(b)) = (a, b) {
                self.gaps.push_front(Gap {
                    from: a.from,
                    to: b.to,
                    count: a.count + b.count,
                });
            }
        }
    }

    /// Messages of the gaps after `after`: exact for a cursor outside a
    /// merged gap; inside one, at most what the rest of its range holds.
    fn gap_missed(&self, after: u64) -> u64 {
        self.gaps
            .iter()
            .filter(|g| g.to > after)
            .map(|g| {
                if after < g.from {
                    g.count
                } else {
                    g.count.min(g.to - after)
                }
            })
            .sum()
    }

    /// Messages kept per topic (`--history`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long a message is kept (`--history-ttl`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Accounted bytes of everything kept (≤ `--history-memory` between calls).
    pub fn history_bytes(&self) -> usize {
        self.bytes
    }

    /// The `--history-memory` budget.
    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// Messages kept over all topics.
    pub fn kept_total(&self) -> usize {
        self.kept
    }

    /// Topics that keep at least one message.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Whether `topic` keeps a message.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// Messages kept in `topic`.
    pub fn kept(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |t| t.history.len())
    }

    /// Keys the bucket hash with `key` (secret: an outsider who knew it
    /// could pick names that share a bucket) so that a replay picks the
    /// same buckets as the recorded run.
    pub fn set_hash_key(&mut self, key: u64) {
        self.bucket_key = key;
    }

    /// The key of the bucket hash (recorded by `--record`).
    pub fn hash_key(&self) -> u64 {
        self.bucket_key
    }

    fn bucket(&self, topic: &str) -> usize {
        // SipHash with the key hashed first: a keyed hash whose key is a
        // plain value, unlike `RandomState`'s.
        let mut h = DefaultHasher::new();
        self.bucket_key.hash(&mut h);
        topic.hash(&mut h);
        (h.finish() % FORGOTTEN_BUCKETS as u64) as usize
    }

    /// Keeps a message published at `now` (the caller checked the name and
    /// chose `seq` above every kept one). It may be evicted at once: by a
    /// `--history` of 0, or when it alone exceeds `--history-memory`; it is
    /// still returned, for the live fan-out.
    pub fn append(
        &mut self,
        topic: &str,
        seq: u64,
        id: Box<str>,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<Rc<Message>, HubError> {
        self.expire(now);
        if self.capacity == 0 {
            // History disabled: the message is delivered live and at once
            // counts as evicted for any later reader.
            let bucket = self.bucket(topic);
            self.forgotten[bucket] = seq;
            return Ok(Rc::new(Message {
                topic: Rc::from(topic),
                seq,
                id,
                kind,
                data: data.into(),
                published_at: now,
                encoded: EncodedForms::default(),
            }));
        }
        if !self.topics.contains_key(topic) {
            // A slot for a new topic: eviction records, then the oldest
            // history, give way.
            while self.topics.len() >= self.max_topics {
                if !self.reclaim_emptied() && !self.evict_oldest(now) {
                    return Err(HubError::TooManyTopics);
                }
            }
            let name: Rc<str> = Rc::from(topic);
            let forgotten_upto = self.forgotten[self.bucket(topic)];
            self.bytes += TopicLog::cost(topic);
            self.topics.insert(
                name.clone(),
                TopicLog {
                    emptied_at: None,
                    name,
                    history: VecDeque::new(),
                    evicted: VecDeque::new(),
                    forgotten_upto,
                },
            );
        }
        let state = self.topics.get_mut(topic).expect("inserted above");
        state.emptied_at = None;
        let message = Rc::new(Message {
            topic: state.name.clone(),
            seq,
            id,
            kind,
            data: data.into(),
            published_at: now,
            encoded: EncodedForms::default(),
        });
        self.bytes += message.kept_cost();
        self.kept += 1;
        state.history.push_back(message.clone());
        self.order.push_back(Kept {
            seq,
            at: now,
            topic: state.name.clone(),
        });
        while self
            .topics
            .get(topic)
            .is_some_and(|t| t.history.len() > self.capacity)
        {
            self.evict_front(topic, now);
        }
        while self.bytes > self.memory_limit && (self.reclaim_emptied() || self.evict_oldest(now)) {
        }
        self.compact();
        Ok(message)
    }

    /// Kept messages of `topics` after `cursor`, with what was missed.
    pub fn read(
        &mut self,
        topics: &[Rc<str>],
        cursor: &Cursor,
        head: u64,
        epoch: &str,
        now: Instant,
    ) -> Batch {
        let (after, reset) = match cursor {
            Cursor::Now => {
                return Batch {
                    next_seq: head,
                    ..Batch::default()
                }
            }
            Cursor::All => (0, false),
            Cursor::After { epoch: e, seq } => {
                if e != epoch || *seq > head {
                    (0, true)
                } else {
                    (*seq, false)
                }
            }
        };
        self.expire(now);
        let count_missed = matches!(cursor, Cursor::After { .. }) && !reset;
        let mut batch = Batch {
            reset,
            next_seq: head,
            ..Batch::default()
        };
        for name in topics {
            match self.topics.get(&**name) {
                Some(state) => {
                    let start = state.history.partition_point(|m| m.seq <= after);
                    batch.messages.extend(state.history.range(start..).cloned());
                    if count_missed {
                        batch.missed += state.missed_after(after);
                    }
                }
                None if count_missed => {
                    batch.missed += u64::from(after < self.forgotten[self.bucket(name)]);
                }
                None => {}
            }
        }
        if count_missed {
            batch.missed += self.gap_missed(after);
        }
        if topics.len() > 1 {
            batch.messages.sort_unstable_by_key(|m| m.seq);
        }
        batch
    }

    /// Evicts every message older than the TTL, oldest first, and reclaims
    /// the topics that have kept nothing for a TTL.
    pub fn expire(&mut self, now: Instant) {
        while let Some(front) = self.order.front() {
            if !self.is_kept(front) {
                self.order.pop_front();
                continue;
            }
            if now.saturating_since(front.at) <= self.ttl {
                break;
            }
            self.evict_oldest(now);
        }
        while let Some(front) = self.emptied.front() {
            if !self.is_emptied(front) {
                self.emptied.pop_front();
                continue;
            }
            if now.saturating_since(front.at) <= self.ttl {
                break;
            }
            self.reclaim_emptied();
        }
    }

    /// The sequence number of the oldest message kept (none when nothing
    /// is). Skips the stale entries at the front of the id-order queue.
    pub fn oldest_kept(&self) -> Option<u64> {
        self.order.iter().find(|e| self.is_kept(e)).map(|e| e.seq)
    }

    /// Whether `entry`'s topic still keeps nothing since then.
    fn is_emptied(&self, entry: &Emptied) -> bool {
        self.topics
            .get(&*entry.topic)
            .is_some_and(|t| t.emptied_at == Some(entry.at))
    }

    /// Reclaims the topic that has kept nothing for longest: its eviction
    /// record folds into its bucket's watermark. False when there is none.
    fn reclaim_emptied(&mut self) -> bool {
        while let Some(entry) = self.emptied.pop_front() {
            if !self.is_emptied(&entry) {
                continue;
            }
            let Some(state) = self.topics.remove(&*entry.topic) else {
                continue;
            };
            self.bytes -= state.evicted.len() * RECORD_COST + TopicLog::cost(&state.name);
            let bucket = self.bucket(&state.name);
            self.forgotten[bucket] = self.forgotten[bucket].max(state.last_evicted());
            return true;
        }
        false
    }

    /// Whether `entry`'s message is still kept by its topic: histories are
    /// suffixes in id order, so it is iff the topic's oldest is no newer.
    fn is_kept(&self, entry: &Kept) -> bool {
        self.topics
            .get(&*entry.topic)
            .and_then(|t| t.history.front())
            .is_some_and(|m| m.seq <= entry.seq)
    }

    /// Evicts the oldest kept message of the whole log. False when nothing
    /// is kept.
    fn evict_oldest(&mut self, now: Instant) -> bool {
        while let Some(entry) = self.order.pop_front() {
            if self.is_kept(&entry) {
                self.evict_front(&entry.topic, now);
                return true;
            }
        }
        false
    }

    /// Moves `topic`'s oldest message to its eviction record at `now`.
    fn evict_front(&mut self, topic: &str, now: Instant) {
        let capacity = self.capacity.max(1);
        let Some(state) = self.topics.get_mut(topic) else {
            return;
        };
        let Some(m) = state.history.pop_front() else {
            return;
        };
        self.bytes -= m.kept_cost();
        self.kept -= 1;
        state.evicted.push_back(m.seq);
        self.bytes += RECORD_COST;
        while state.evicted.len() > capacity {
            if let Some(seq) = state.evicted.pop_front() {
                state.forgotten_upto = seq;
                self.bytes -= RECORD_COST;
            }
        }
        if state.history.is_empty() {
            state.emptied_at = Some(now);
            self.emptied.push_back(Emptied {
                at: now,
                topic: state.name.clone(),
            });
        }
    }

    /// Drops stale entries from the two queues once they outnumber the
    /// live ones: amortised O(1) per append, and each queue stays within
    /// twice what it tracks.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.kept + 64 {
            let order = std::mem::take(&mut self.order);
            self.order = order.into_iter().filter(|e| self.is_kept(e)).collect();
        }
        if self.emptied.len() > 2 * self.topics.len() + 64 {
            let emptied = std::mem::take(&mut self.emptied);
            self.emptied = emptied.into_iter().filter(|e| self.is_emptied(e)).collect();
        }
    }
}

#[cfg(test)]
impl History {
    /// The accounted bytes recomputed from scratch.
    fn recount(&self) -> usize {
        self.topics
            .values()
            .map(|t| {
                TopicLog::cost(&t.name)
                    + t.evicted.len() * RECORD_COST
                    + t.history.iter().map(|m| m.kept_cost()).sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use proptest::prelude::*;

    const TTL: Duration = Duration::from_secs(10);

    fn hub(capacity: usize, memory: usize, max_topics: usize) -> Hub {
        Hub::memory_bounded("e1", capacity, TTL, memory, max_topics)
    }

    fn t(s: &str) -> Vec<Rc<str>> {
        s.split(',').map(Rc::from).collect()
    }

    fn after(seq: u64) -> Cursor {
        Cursor::After {
            epoch: "e1".into(),
            seq,
        }
    }

    fn seqs(b: &Batch) -> Vec<u64> {
        b.messages.iter().map(|m| m.seq).collect()
    }

    fn at(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    #[test]
    fn a_topic_that_kept_nothing_for_a_ttl_is_reclaimed_and_still_reports_missed() {
        let mut hub = hub(8, 1 << 20, 100);
        hub.publish("a", "1", at(0)).unwrap();
        hub.publish("a", "2", at(0)).unwrap();
        hub.expire(at(11));
        assert_eq!(hub.kept("a"), 0);
        assert_eq!(hub.topic_count(), 1, "the eviction record stays a TTL");
        assert_eq!(hub.read(&t("a"), &after(0), at(11)).missed, 2, "exact");
        hub.expire(at(22));
        assert_eq!(hub.topic_count(), 0, "then the slot is free");
        assert_eq!(hub.history().history_bytes(), 0);
        let b = hub.read(&t("a"), &after(0), at(22));
        assert!(b.missed >= 1, "never silent");
        assert_eq!(hub.read(&t("a"), &after(2), at(22)).missed, 0);
        // Kept again: a cursor older than the reclaimed record still hears of it.
        hub.publish("a", "3", at(23)).unwrap();
        let b = hub.read(&t("a"), &after(1), at(23));
        assert_eq!(seqs(&b), [3]);
        assert!(b.missed >= 1);
        assert_eq!(hub.read(&t("a"), &after(2), at(23)).missed, 0);
    }

    #[test]
    fn a_full_topic_table_empties_after_the_ttl_and_takes_new_topics() {
        let mut hub = hub(8, 1 << 20, 3);
        for topic in ["a", "b", "c"] {
            hub.publish(topic, "x", at(0)).unwrap();
        }
        assert_eq!(hub.history().topic_count(), 3);
        // The messages go after a TTL, the eviction records after another.
        hub.expire(at(11));
        assert_eq!(hub.history().topic_count(), 3);
        hub.expire(at(22));
        assert_eq!(hub.history().topic_count(), 0);
        for topic in ["d", "e", "f"] {
            hub.publish(topic, "y", at(25)).unwrap();
        }
        assert_eq!(hub.history().topic_count(), 3);
    }

    #[test]
    fn a_new_topic_past_max_topics_takes_the_slot_of_the_oldest_history() {
        let mut hub = hub(8, 1 << 20, 2);
        hub.publish("a", "1", at(0)).unwrap();
        hub.publish("b", "2", at(0)).unwrap();
        hub.publish("c", "3", at(0)).unwrap();
        assert_eq!(hub.history().topic_count(), 2);
        assert_eq!((hub.kept("a"), hub.kept("b"), hub.kept("c")), (0, 1, 1));
        let b = hub.read(&t("a,b,c"), &after(0), at(0));
        assert_eq!(seqs(&b), [2, 3]);
        assert!(b.missed >= 1, "the evicted message is reported");
    }

    #[test]
    fn subscribing_to_a_new_topic_past_max_topics_is_refused_until_one_leaves() {
        let mut hub = hub(8, 1 << 20, 2);
        hub.subscribe("a", 1).unwrap();
        hub.subscribe("b", 1).unwrap();
        hub.subscribe("a", 2).unwrap();
        assert_eq!(hub.subscribe("c", 2), Err(HubError::TooManyTopics));
        assert_eq!(HubError::TooManyTopics.status(), 503);
        // Publishing is no subscription: it still works.
        hub.publish("c", "x", at(0)).unwrap();
        hub.unsubscribe("b", 1);
        hub.subscribe("c", 2).unwrap();
    }

    #[test]
    fn past_the_memory_budget_the_oldest_history_of_the_hub_goes_first() {
        let data = "x".repeat(1000);
        let cost = data.len() + "e1-1".len() + crate::hub::MESSAGE_OVERHEAD;
        let topic = TopicLog::cost("a") + 8 * RECORD_COST;
        let mut hub = hub(100, 4 * cost + 2 * topic, 100);
        for (i, topic) in ["a", "b", "a", "b", "a", "b"].iter().enumerate() {
            hub.publish(topic, &data, at(i as u64)).unwrap();
            assert!(hub.history().history_bytes() <= hub.history().memory_limit());
            assert_eq!(hub.history().history_bytes(), hub.history().recount());
        }
        // Messages 1 and 2 (one of each topic) made room for 5 and 6.
        let b = hub.read(&t("a,b"), &after(0), at(6));
        assert_eq!(seqs(&b), [3, 4, 5, 6]);
        assert_eq!(b.missed, 2, "exact: both topics remember");
        assert_eq!(hub.read(&t("a"), &after(0), at(6)).missed, 1);
        let u = hub.usage();
        assert_eq!((u.kept_messages, u.topics_kept), (4, 2));
    }

    #[test]
    fn a_message_larger_than_the_budget_is_delivered_but_not_kept() {
        let mut hub = hub(8, 500, 100);
        let m = hub.publish("a", &"x".repeat(1000), at(0)).unwrap();
        assert_eq!(m.seq, 1);
        assert_eq!(hub.kept("a"), 0);
        assert_eq!(hub.read(&t("a"), &after(0), at(0)).missed, 1);
        assert!(hub.history().history_bytes() <= 500);
    }

    #[test]
    fn a_gap_of_unknown_topics_is_missed_by_every_reader_before_it() {
        let mut h = History::new(8, TTL, 1 << 20, 100);
        h.append("a", 1, "e1-1".into(), Kind::Text, "1", at(0))
            .unwrap();
        // 2..=4 were committed elsewhere and never seen here; 5 was.
        h.record_gap(2, 4);
        h.append("a", 5, "e1-5".into(), Kind::Text, "5", at(0))
            .unwrap();
        for (topics, cursor, missed) in [("a", 0, 3), ("b", 1, 3), ("a,b", 2, 2), ("a", 4, 0)] {
            let b = h.read(&t(topics), &after(cursor), 5, "e1", at(0));
            assert_eq!(b.missed, missed, "{topics} after {cursor}");
        }
        // Not a resume: nothing to report.
        assert_eq!(h.read(&t("a"), &Cursor::All, 5, "e1", at(0)).missed, 0);
    }

    #[test]
    fn gaps_past_the_bound_merge_and_are_never_reported_as_zero() {
        let mut h = History::new(8, TTL, 1 << 20, 100);
        // Gaps of one message at 10, 20, 30, …
        for i in 1..=(MAX_GAPS as u64 + 1) {
            h.record_gap(10 * i, 10 * i);
        }
        assert_eq!(h.gaps.len(), MAX_GAPS);
        let total = MAX_GAPS as u64 + 1;
        let head = 10 * total;
        let read = |h: &mut History, seq| h.read(&t("a"), &after(seq), head, "e1", at(0)).missed;
        assert_eq!(read(&mut h, 0), total, "exact before every gap");
        // Inside the merged gap (10 and 20): 20 was lost after 15, but the
        // merged record can only say "at most 2".
        assert_eq!(read(&mut h, 15), total, "never less than was lost");
        assert_eq!(read(&mut h, 25), total - 2, "exact after the merged gap");
        assert_eq!(read(&mut h, head), 0);
    }

    #[test]
    fn an_emptied_history_keeps_bounds_and_key_but_nothing_else() {
        let mut h = History::new(3, TTL, 1000, 7);
        h.set_hash_key(42);
        h.append("a", 1, "e1-1".into(), Kind::Text, "x", at(0))
            .unwrap();
        h.record_gap(2, 5);
        let e = h.emptied();
        assert_eq!(
            (e.capacity(), e.ttl(), e.memory_limit(), e.max_topics),
            (3, TTL, 1000, 7)
        );
        assert_eq!(e.hash_key(), 42);
        assert_eq!((e.kept_total(), e.topic_count(), e.gaps.len()), (0, 0, 0));
    }

    proptest! {
        /// Against a model that keeps everything, with the per-topic,
        /// byte and topic bounds and the TTL all at work: the accounting is
        /// exact and within the budget; a read returns the newest suffix of
        /// what is expected; `missed` is never 0 when something was lost,
        /// and over-counts by at most one (a reclaimed record).
        #[test]
        fn bounded_log_agrees_with_a_model_that_keeps_everything(
            capacity in 1usize..5,
            memory in 0usize..4000,
            max_topics in 1usize..4,
            ops in proptest::collection::vec((0u8..5, 0u8..3, 0usize..600, 0u64..60), 1..150),
        ) {
            let mut hub = hub(capacity, memory, max_topics);
            let names = ["a", "b", "c", "d", "e"];
            let mut all: Vec<(u64, &str)> = Vec::new();
            let mut now = 0;
            for (topic, op, size, cursor) in ops {
                let topic = names[topic as usize];
                match op {
                    0 => {
                        let m = hub.publish(topic, &"x".repeat(size), at(now)).unwrap();
                        all.push((m.seq, topic));
                    }
                    1 => {
                        now += size as u64 % 8;
                        hub.expire(at(now));
                    }
                    _ => {
                        let cursor = cursor.min(hub.head());
                        let b = hub.read(&t(topic), &after(cursor), at(now));
                        let expected: Vec<u64> = all.iter()
                            .filter(|(s, n)| *n == topic && *s > cursor)
                            .map(|(s, _)| *s)
                            .collect();
                        let got = seqs(&b);
                        prop_assert!(expected.ends_with(&got));
                        let lost = (expected.len() - got.len()) as u64;
                        prop_assert!(lost == 0 || b.missed >= 1);
                        prop_assert!(b.missed <= lost + 1);
                    }
                }
                let log = hub.history();
                prop_assert_eq!(log.history_bytes(), log.recount());
                prop_assert!(log.history_bytes() <= memory.max(1) || log.kept_total() == 0);
                prop_assert!(log.topic_count() <= max_topics);
            }
        }
    }
}
