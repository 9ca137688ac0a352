//! The file log's state on the loop's side: messages appended and not yet
//! durable, the turn's records waiting to be handed to the writer, and what
//! each report of the writer commits or refuses. Pure: no file, no thread,
//! no clock (the Unix time of `Instant::ZERO` is given once, and each call
//! brings its instant).
//!
//! # Call protocol
//!
//! 1. [`Journal::append`] numbers a message and encodes its record into the
//!    turn's group (or refuses at once while the disk is in trouble);
//! 2. at the end of the turn, [`Journal::take_group`] gives the group to
//!    hand to the writer thread (one write, one `fdatasync`);
//! 3. each [`Completion`] the writer reports goes to
//!    [`Journal::handle_completion`], which returns the messages that are
//!    now durable — to commit: answer, keep, fan out, in id order — and
//!    those refused, with the error their publishers get.
//!
//! A failure refuses every message from its first record on (later ones
//! were numbered after it and cannot be stored before it), numbers the next
//! messages from there again in a new generation, and refuses publishes at
//! once for [`RETRY_AFTER`] before the disk is tried again.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use super::disk::{Completion, DiskError};
use super::format::{encode_record, Record};
use crate::log::Kind;
use crate::time::Instant;

/// How long publishes are refused at once after the disk failed, before a
/// group is tried again (and `Retry-After` of the refusal).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A message appended and not yet durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub seq: u64,
    pub topic: Rc<str>,
    pub kind: Kind,
    pub data: Box<str>,
    pub published_at: Instant,
}

/// A group of records for the writer (see `disk::Writer::append`).
#[derive(Debug, PartialEq, Eq)]
pub struct Group {
    pub generation: u64,
    pub first_seq: u64,
    pub end_seq: u64,
    pub bytes: Vec<u8>,
}

/// What one completion decided.
#[derive(Debug, Default)]
pub struct Settled {
    /// Durable now, in id order: commit them.
    pub committed: Vec<Pending>,
    /// Not stored, in id order: refuse them with the error.
    pub refused: Vec<Pending>,
    pub error: Option<DiskError>,
}

/// The loop's side of the file log.
pub struct Journal {
    next_seq: u64,
    generation: u64,
    /// Unix milliseconds at `Instant::ZERO`.
    unix_origin_ms: u64,
    group: Vec<u8>,
    group_first: u64,
    /// Appended, not yet durable, in id order (those of the turn's group
    /// included).
    pending: VecDeque<Pending>,
    /// After a failure: refuse at once until then, with this error.
    refusing: Option<(Instant, DiskError)>,
}

impl Journal {
    /// A journal numbering from `next_seq` (what recovery found), whose
    /// `Instant::ZERO` is `unix_origin_ms` on the wall clock.
    pub fn new(next_seq: u64, unix_origin_ms: u64) -> Journal {
        Journal {
            next_seq,
            generation: 0,
            unix_origin_ms,
            group: Vec::new(),
            group_first: next_seq,
            pending: VecDeque::new(),
            refusing: None,
        }
    }

    /// The sequence number of the newest message appended (durable or not).
    pub fn head(&self) -> u64 {
        self.next_seq - 1
    }

    /// Messages appended and not yet durable.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The Unix time of `now`.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        self.unix_origin_ms + now.as_micros() / 1000
    }

    /// Numbers a message and adds its record to the turn's group; refused
    /// while the disk is in trouble (for [`RETRY_AFTER`] after a failure).
    pub fn append(
        &mut self,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<u64, DiskError> {
        if let Some((until, error)) = &self.refusing {
            if now < *until {
                return Err(error.clone());
            }
            self.refusing = None;
        }
        let seq = self.next_seq;
        if self.group.is_empty() {
            self.group_first = seq;
        }
        let unix_ms = self.unix_ms(now);
        encode_record(
            &mut self.group,
            &Record {
                seq,
                unix_ms,
                topic,
                kind,
                data,
            },
        );
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            topic: Rc::from(topic),
            kind,
            data: data.into(),
            published_at: now,
        });
        Ok(seq)
    }

    /// The turn's records, for the writer (none if nothing was appended).
    pub fn take_group(&mut self) -> Option<Group> {
        if self.group.is_empty() {
            return None;
        }
        Some(Group {
            generation: self.generation,
            first_seq: self.group_first,
            end_seq: self.next_seq,
            bytes: std::mem::take(&mut self.group),
        })
    }

    /// Applies one report of the writer at `now`.
    pub fn handle_completion(&mut self, completion: Completion, now: Instant) -> Settled {
        let mut settled = Settled::default();
        match completion {
            Completion::Durable { generation, upto } if generation == self.generation => {
                while self.pending.front().is_some_and(|p| p.seq < upto) {
                    settled.committed.extend(self.pending.pop_front());
                }
            }
            Completion::Failed {
                generation,
                from,
                error,
            } if generation == self.generation => {
                while self.pending.back().is_some_and(|p| p.seq >= from) {
                    settled.refused.extend(self.pending.pop_back());
                }
                settled.refused.reverse();
                // Records of this turn not yet handed over go too: they
                // were numbered after the failed ones.
                self.group.clear();
                self.next_seq = from;
                self.group_first = from;
                self.generation += 1;
                self.refusing = Some((now + RETRY_AFTER, error.clone()));
                settled.error = Some(error);
            }
            // A report on a generation already given up: those messages
            // were refused with the failure that ended it.
            _ => {}
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_log::format::{decode_record, RECORD_HEAD};

    fn full() -> DiskError {
        DiskError::Full("write: No space left on device".into())
    }

    fn seqs(p: &[Pending]) -> Vec<u64> {
        p.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn a_turn_of_appends_is_one_group_committed_when_the_writer_says_durable() {
        let mut j = Journal::new(5, 1_000_000);
        let t = Instant::from_millis(250);
        assert_eq!(j.append("a", Kind::Text, "x", t), Ok(5));
        assert_eq!(j.append("b", Kind::Text, "yy", t), Ok(6));
        let g = j.take_group().unwrap();
        assert_eq!((g.generation, g.first_seq, g.end_seq), (0, 5, 7));
        let (r, len) = decode_record(&g.bytes, 5).unwrap();
        assert_eq!((r.topic, r.data, r.unix_ms), ("a", "x", 1_000_250));
        assert_eq!(decode_record(&g.bytes[len..], 6).unwrap().0.data, "yy");
        assert!(j.take_group().is_none(), "nothing new this turn");
        assert_eq!(j.append("a", Kind::Text, "z", t), Ok(7));
        let g2 = j.take_group().unwrap();
        assert_eq!((g2.first_seq, g2.end_seq), (7, 8));
        assert!(g2.bytes.len() > RECORD_HEAD);
        // Durable in order: the first group, then the second.
        let s = j.handle_completion(
            Completion::Durable {
                generation: 0,
                upto: 7,
            },
            t,
        );
        assert_eq!(seqs(&s.committed), [5, 6]);
        assert_eq!(j.pending(), 1);
        let s = j.handle_completion(
            Completion::Durable {
                generation: 0,
                upto: 8,
            },
            t,
        );
        assert_eq!(seqs(&s.committed), [7]);
        assert_eq!((j.pending(), j.head()), (0, 7));
    }

    #[test]
    fn a_failure_refuses_from_its_first_record_on_and_numbering_starts_over_there() {
        let mut j = Journal::new(1, 0);
        let t = Instant::ZERO;
        for d in ["1", "2"] {
            j.append("a", Kind::Text, d, t).unwrap();
        }
        j.take_group().unwrap();
        for d in ["3", "4"] {
            j.append("a", Kind::Text, d, t).unwrap();
        }
        j.take_group().unwrap();
        j.append("a", Kind::Text, "5", t).unwrap(); // still in the turn's group
        let s = j.handle_completion(
            Completion::Durable {
                generation: 0,
                upto: 3,
            },
            t,
        );
        assert_eq!(seqs(&s.committed), [1, 2]);
        let s = j.handle_completion(
            Completion::Failed {
                generation: 0,
                from: 3,
                error: full(),
            },
            t,
        );
        assert_eq!(seqs(&s.refused), [3, 4, 5]);
        assert_eq!(s.error.unwrap().status(), 507);
        assert!(j.take_group().is_none(), "refused records are not written");
        // Refused at once for a while, with the same clear error…
        let soon = t + Duration::from_millis(500);
        assert_eq!(j.append("a", Kind::Text, "6", soon), Err(full()));
        // …then tried again, numbered from 3 in a new generation.
        let later = t + RETRY_AFTER;
        assert_eq!(j.append("a", Kind::Text, "6", later), Ok(3));
        let g = j.take_group().unwrap();
        assert_eq!((g.generation, g.first_seq, g.end_seq), (1, 3, 4));
        // A late report on the old generation changes nothing.
        let s = j.handle_completion(
            Completion::Failed {
                generation: 0,
                from: 5,
                error: full(),
            },
            later,
        );
        assert!(s.refused.is_empty() && s.committed.is_empty());
        let s = j.handle_completion(
            Completion::Durable {
                generation: 1,
                upto: 4,
            },
            later,
        );
        assert_eq!(seqs(&s.committed), [3]);
        assert_eq!(&*s.committed[0].data, "6");
    }
}
