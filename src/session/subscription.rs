//! The subscriber core that long polling, SSE and WebSockets share: join a
//! set of topics (all or none), read the backlog, skip what was already
//! given, leave.
//!
//! One cursor serves any set of topics because ids are a hub-wide sequence:
//! the subscription remembers the last sequence number it gave out, and a
//! message at or below it (already in the backlog of this very turn) is
//! skipped. Joining and reading happen in one call with nothing published in
//! between, so the backlog and the live messages meet exactly.

use std::rc::Rc;

use crate::hub::{Batch, Cursor, Hub, HubError, Message, SubscriberId};
use crate::time::Instant;

/// One connection's subscription to a set of topics.
#[derive(Debug, Default)]
pub struct Subscription {
    /// The topics joined, left again by [`Subscription::leave`].
    topics: Vec<Rc<str>>,
    /// The highest sequence number given out, or skipped as already known.
    last_seq: u64,
}

impl Subscription {
    /// Adds `sub` to the subscribers of every topic, or of none: when the
    /// hub refuses one (too many topics), the topics already joined are left
    /// again and the refusal returned.
    pub fn join(
        hub: &mut Hub,
        sub: SubscriberId,
        topics: Vec<Rc<str>>,
    ) -> Result<Subscription, HubError> {
        for (i, topic) in topics.iter().enumerate() {
            if let Err(e) = hub.subscribe(topic, sub) {
                for joined in &topics[..i] {
                    hub.unsubscribe(joined, sub);
                }
                return Err(e);
            }
        }
        Ok(Subscription {
            topics,
            last_seq: 0,
        })
    }

    /// The kept messages after `cursor` (none without one: "from now on"),
    /// counted as given: later calls of [`Subscription::take_new`] skip
    /// them and everything published before this read.
    pub fn read_backlog(&mut self, hub: &mut Hub, cursor: Option<&Cursor>, now: Instant) -> Batch {
        let batch = hub.read(&self.topics, cursor.unwrap_or(&Cursor::Now), now);
        let last_replayed = batch.messages.last().map_or(0, |m| m.seq);
        self.last_seq = batch.next_seq.max(last_replayed);
        batch
    }

    /// Whether `msg` is new to this subscriber; if so it counts as given
    /// from now on.
    #[inline]
    pub fn take_new(&mut self, msg: &Message) -> bool {
        if msg.seq <= self.last_seq {
            return false;
        }
        self.last_seq = msg.seq;
        true
    }

    /// The log started a new epoch: its sequence starts again, and none
    /// of its messages was given yet.
    pub fn restart(&mut self) {
        self.last_seq = 0;
    }

    /// The highest sequence number given out so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The topics joined.
    pub fn topics(&self) -> &[Rc<str>] {
        &self.topics
    }

    /// Removes `sub` from the subscribers of every topic joined.
    pub fn leave(&self, hub: &mut Hub, sub: SubscriberId) {
        for topic in &self.topics {
            hub.unsubscribe(topic, sub);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hub::{Hub, DEFAULT_HISTORY_MEMORY};

    const HOUR: Duration = Duration::from_secs(3600);

    fn topics(names: &[&str]) -> Vec<Rc<str>> {
        names.iter().map(|&n| Rc::from(n)).collect()
    }

    fn subscribers(hub: &Hub, topic: &str) -> Vec<SubscriberId> {
        let mut out = Vec::new();
        hub.subscribers(topic, &mut out);
        out
    }

    #[test]
    fn joining_adds_the_subscriber_to_every_topic_and_leaving_removes_it() {
        let mut hub = Hub::memory("e1", 8, HOUR);
        let s = Subscription::join(&mut hub, 7, topics(&["a", "b"])).unwrap();
        assert_eq!(subscribers(&hub, "a"), [7]);
        assert_eq!(subscribers(&hub, "b"), [7]);
        s.leave(&mut hub, 7);
        assert!(subscribers(&hub, "a").is_empty());
        assert_eq!(hub.topic_count(), 0);
    }

    #[test]
    fn a_refused_topic_leaves_the_ones_already_joined() {
        let mut hub = Hub::memory_bounded("e1", 8, HOUR, DEFAULT_HISTORY_MEMORY, 2);
        hub.subscribe("t0", 1).unwrap();
        // One slot left: "new1" takes it, "new2" is refused.
        let err = Subscription::join(&mut hub, 2, topics(&["t0", "new1", "new2"])).unwrap_err();
        assert_eq!(err, HubError::TooManyTopics);
        assert_eq!(subscribers(&hub, "t0"), [1]);
        assert!(subscribers(&hub, "new1").is_empty());
        assert_eq!(hub.topic_count(), 1);
    }

    #[test]
    fn the_backlog_is_not_given_again() {
        let mut hub = Hub::memory("e1", 8, HOUR);
        let m1 = hub.publish("a", "1", Instant::ZERO).unwrap();
        let m2 = hub.publish("a", "2", Instant::ZERO).unwrap();
        let mut s = Subscription::join(&mut hub, 1, topics(&["a"])).unwrap();
        let batch = s.read_backlog(&mut hub, Some(&Cursor::All), Instant::ZERO);
        assert_eq!(batch.messages.len(), 2);
        assert!(!s.take_new(&m1) && !s.take_new(&m2));
        let m3 = hub.publish("a", "3", Instant::ZERO).unwrap();
        assert!(s.take_new(&m3));
        assert!(!s.take_new(&m3), "given once");
        assert_eq!(s.last_seq(), 3);
    }

    #[test]
    fn without_a_cursor_only_later_messages_are_new() {
        let mut hub = Hub::memory("e1", 8, HOUR);
        let old = hub.publish("a", "old", Instant::ZERO).unwrap();
        let mut s = Subscription::join(&mut hub, 1, topics(&["a"])).unwrap();
        let batch = s.read_backlog(&mut hub, None, Instant::ZERO);
        assert!(batch.messages.is_empty());
        assert!(!s.take_new(&old));
        let new = hub.publish("a", "new", Instant::ZERO).unwrap();
        assert!(s.take_new(&new));
    }
}
