//! The tail half of the Redis log: rounds of `HMGET` and `XREAD`, the
//! epoch checks, committing entries in `N` order, gaps and resets.

use std::time::Duration;

use super::{Cmd, Item, RedisLog, Sent, TAIL_BLOCK, TAIL_LINK};
use crate::ids::{format_id, is_valid_topic};
use crate::log::{Commit, Kind, Notice, Ticket};
use crate::redis::script::Origin;
use crate::redis::stream::{decode_read_reply, meta_command, Entry, ReadCommand};
use crate::time::Instant;

impl RedisLog {
    /// Sends the tail's next round: `HMGET` and `XREAD`.
    pub(super) fn start_round(&mut self, now: Instant) {
        let timeout = self.timeout();
        let c = &mut self.links[usize::from(TAIL_LINK)];
        c.send(Cmd::Meta, &meta_command(&self.keys), now + timeout);
        let read = ReadCommand::new(self.head, self.tail_count, TAIL_BLOCK.as_millis() as u64);
        c.send(
            Cmd::Read,
            &read.args(&self.keys),
            now + TAIL_BLOCK + timeout,
        );
    }

    /// What Redis says the log is now: another epoch, or an `N` below what
    /// was read here, means it lost the log.
    pub(super) fn see_epoch(&mut self, epoch: &str, seq: u64, now: Instant) {
        self.learn_epoch(epoch);
        if epoch != self.epoch {
            if self.head == 0 && self.resets == 0 && !self.synced {
                // The first look: this node had read nothing yet.
                self.epoch = epoch.to_string();
            } else {
                self.reset(epoch, now);
            }
        } else if seq < self.head {
            // Restored from an older snapshot: what was read here after
            // `seq` is not in Redis; start over from what it holds.
            self.reset(epoch, now);
        }
        self.known_seq = seq.max(self.head);
    }

    /// Redis lost the log: forget what was read, tell every subscriber.
    pub(super) fn reset(&mut self, epoch: &str, _now: Instant) {
        self.epoch = epoch.to_string();
        self.head = 0;
        self.known_seq = 0;
        self.history = self.history.emptied();
        self.resets += 1;
        self.items.push_back(Item::Notice(Notice::Reset {
            epoch: epoch.into(),
        }));
        let lost: Vec<Ticket> = self
            .appends
            .iter()
            .filter(|(_, p)| matches!(&p.state, Sent::Acked { epoch: e, .. } if **e != *epoch))
            .map(|(&t, _)| t)
            .collect();
        for ticket in lost {
            let why = "Redis lost its data before this node read the message back".to_string();
            self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
        }
    }

    /// `XREAD`'s reply, taken raw: its entries borrow from `reply`.
    pub(super) fn handle_read_reply(&mut self, reply: &[u8], now: Instant) {
        let Some(meta) = self.round_meta.take() else {
            return self.fail(TAIL_LINK, "XREAD answered before HMGET".into(), now, true);
        };
        let entries = match decode_read_reply(reply) {
            Ok(entries) => entries,
            Err(e) => return self.fail(TAIL_LINK, e.to_string(), now, true),
        };
        self.known_seq = self.known_seq.max(meta.seq);
        for entry in entries {
            self.apply(entry, now);
        }
        self.known_seq = self.known_seq.max(self.head);
        if self.head >= self.known_seq {
            self.synced = true;
        }
        self.start_round(now);
    }

    /// One entry read back, in `N` order.
    pub(super) fn apply(&mut self, entry: Entry<'_>, now: Instant) {
        if entry.seq <= self.head {
            return;
        }
        if entry.seq > self.head + 1 {
            self.gap(self.head + 1, entry.seq - 1, now);
        }
        let ticket = Origin::parse(entry.origin)
            .filter(|o| o.node == self.node.as_bytes())
            .map(|o| o.ticket)
            .filter(|t| self.appends.remove(t).is_some());
        let topic = std::str::from_utf8(entry.topic)
            .ok()
            .filter(|t| is_valid_topic(t));
        let Some(topic) = topic else {
            // Not written by the append script: a message nobody can read.
            self.missed(entry.seq, entry.seq);
            self.head = entry.seq;
            return;
        };
        let data = String::from_utf8_lossy(entry.data);
        self.commit(ticket, topic, entry.kind, &data, entry.seq, now);
    }

    pub(super) fn commit(
        &mut self,
        ticket: Option<Ticket>,
        topic: &str,
        kind: Kind,
        data: &str,
        seq: u64,
        now: Instant,
    ) {
        let id = format_id(&self.epoch, seq).into_boxed_str();
        let outcome = self.history.append(topic, seq, id, kind, data, now);
        self.head = seq;
        self.items
            .push_back(Item::Commit(Commit { ticket, outcome }));
    }

    /// Entries `from..=to` were trimmed before the tail read them. This
    /// node's own commit from its copy; the rest are missed.
    pub(super) fn gap(&mut self, from: u64, to: u64, now: Instant) {
        let mut own: Vec<(u64, Ticket)> = self
            .appends
            .iter()
            .filter_map(|(&t, p)| match &p.state {
                Sent::Acked { epoch, seq }
                    if **epoch == *self.epoch && (from..=to).contains(seq) =>
                {
                    Some((*seq, t))
                }
                _ => None,
            })
            .collect();
        own.sort_unstable();
        let mut start = from;
        for (seq, ticket) in own {
            if seq > start {
                self.missed(start, seq - 1);
            }
            if let Some(p) = self.appends.remove(&ticket) {
                self.commit(Some(ticket), &p.topic, p.kind, &p.data, seq, now);
            }
            start = seq + 1;
        }
        if start <= to {
            self.missed(start, to);
        }
        self.head = to;
    }

    pub(super) fn missed(&mut self, from: u64, to: u64) {
        let count = to - from + 1;
        self.history.record_gap(from, to);
        self.missed += count;
        self.items.push_back(Item::Notice(Notice::Missed {
            epoch: self.epoch.as_str().into(),
            count,
            upto: to,
        }));
    }
}
