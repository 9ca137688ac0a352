//! The file log behind the log seam (`--data-dir`): a message commits when
//! the writer thread reports its record durable. Pure: the records go out
//! as [`LogOutput::Records`] and the writer's reports come back as
//! [`LogEvent::Disk`]; the shell's driver (`server/`) carries them.
//!
//! Ids are numbered by the [`Journal`] when a message is appended (so the
//! records of one turn are encoded in id order, ready for one write), kept
//! in the [`History`] and fanned out when durable. A refused group (disk
//! full: `507`; any other failure: `503` with `Retry-After`) fails every
//! message from its first record on; the journal numbers the next ones from
//! there again.

use std::collections::VecDeque;
use std::rc::Rc;

use super::disk::DiskError;
use super::format::Record;
use super::journal::{Journal, Pending, RETRY_AFTER};
use crate::log::{Commit, History, HubError, Kind, Log, LogEvent, LogOutput, Ticket};
use crate::time::Instant;

/// Messages made durable in a data directory.
pub struct FileLog {
    epoch: String,
    journal: Journal,
    history: History,
    /// The newest durable message's sequence number.
    committed: u64,
    /// Tickets of the appended, not yet durable messages, by sequence
    /// number, in id order.
    tickets: VecDeque<(u64, Ticket)>,
    commits: VecDeque<Commit>,
    /// Segments below this may go: set when history is expired (once a
    /// second), told to the writer by `poll_output`.
    trim_to: u64,
    /// What the writer was last told.
    trimmed_below: u64,
}

impl FileLog {
    /// A file log of `epoch` after recovery: `history` holds what was read
    /// back and `next_seq` is the number the next message takes.
    /// `unix_origin_ms` is the Unix time of `Instant::ZERO` (the records
    /// carry Unix times).
    pub fn new(epoch: &str, history: History, next_seq: u64, unix_origin_ms: u64) -> FileLog {
        FileLog {
            epoch: epoch.to_string(),
            journal: Journal::new(next_seq, unix_origin_ms),
            history,
            committed: next_seq - 1,
            tickets: VecDeque::new(),
            commits: VecDeque::new(),
            trim_to: 0,
            trimmed_below: 0,
        }
    }

    fn commit(&mut self, pending: Pending) {
        let ticket = self.take_ticket(pending.seq);
        let id = crate::ids::format_id(&self.epoch, pending.seq).into_boxed_str();
        let outcome = self.history.append(
            &pending.topic,
            pending.seq,
            id,
            pending.kind,
            &pending.data,
            pending.published_at,
        );
        self.committed = pending.seq;
        self.commits.push_back(Commit { ticket, outcome });
    }

    fn take_ticket(&mut self, seq: u64) -> Option<Ticket> {
        while let Some(&(s, ticket)) = self.tickets.front() {
            if s > seq {
                break;
            }
            self.tickets.pop_front();
            if s == seq {
                return Some(ticket);
            }
        }
        None
    }
}

/// What a publisher is told when the disk refused its message.
fn refusal(error: &DiskError) -> HubError {
    match error {
        DiskError::Full(_) => HubError::StorageFull,
        DiskError::Failed(_) => HubError::Unavailable {
            retry_after_secs: RETRY_AFTER.as_secs().max(1) as u32,
            why: error.to_string().into(),
        },
    }
}

impl Log for FileLog {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn head(&self) -> u64 {
        self.committed
    }

    fn append(
        &mut self,
        ticket: Ticket,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<(), HubError> {
        let seq = self
            .journal
            .append(topic, kind, data, now)
            .map_err(|e| refusal(&e))?;
        self.tickets.push_back((seq, ticket));
        Ok(())
    }

    fn poll_commit(&mut self) -> Option<Commit> {
        self.commits.pop_front()
    }

    fn history(&self) -> &History {
        &self.history
    }

    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    fn pending(&self) -> usize {
        self.journal.pending()
    }

    fn handle_event(&mut self, event: LogEvent, now: Instant) {
        let LogEvent::Disk(completion) = event else {
            return;
        };
        let settled = self.journal.handle_completion(completion, now);
        for pending in settled.committed {
            self.commit(pending);
        }
        if let Some(error) = &settled.error {
            for pending in settled.refused {
                let ticket = self.take_ticket(pending.seq);
                self.commits.push_back(Commit {
                    ticket,
                    outcome: Err(refusal(error)),
                });
            }
        }
    }

    fn poll_output(&mut self) -> Option<LogOutput> {
        if let Some(group) = self.journal.take_group() {
            return Some(LogOutput::Records(group));
        }
        if self.trim_to > self.trimmed_below {
            self.trimmed_below = self.trim_to;
            return Some(LogOutput::Trim {
                keep_from: self.trim_to,
            });
        }
        None
    }

    fn expire(&mut self, now: Instant) {
        self.history.expire(now);
        // Segments whose records have all left the history may go.
        self.trim_to = self.history.oldest_kept().unwrap_or(self.committed + 1);
    }
}

/// A message read back at start (its record's `kind` and data), for
/// [`History::append`].
pub fn restore(history: &mut History, epoch: &str, record: &Record<'_>, at: Instant) {
    let id: Rc<str> = Rc::from(crate::ids::format_id(epoch, record.seq));
    // A recovered message the history cannot keep (its bounds are smaller
    // than the directory's) is simply not kept: reads report it missed.
    let _ = history.append(
        record.topic,
        record.seq,
        id.as_ref().into(),
        record.kind,
        record.data,
        at,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_log::disk::Completion;
    use std::time::Duration;

    fn log() -> FileLog {
        let history = History::new(8, Duration::from_secs(60), 1 << 20, 100);
        FileLog::new("e1", history, 1, 0)
    }

    #[test]
    fn messages_commit_when_the_writer_says_they_are_durable() {
        let mut log = log();
        log.append(10, "a", Kind::Text, "x", Instant::ZERO).unwrap();
        log.append(11, "b", Kind::Text, "y", Instant::ZERO).unwrap();
        assert!(log.poll_commit().is_none());
        let Some(LogOutput::Records(group)) = log.poll_output() else {
            panic!("one group of records");
        };
        assert_eq!((group.first_seq, group.end_seq), (1, 3));
        log.handle_event(
            LogEvent::Disk(Completion::Durable {
                generation: 0,
                upto: 2,
            }),
            Instant::ZERO,
        );
        let c = log.poll_commit().unwrap();
        assert_eq!((c.ticket, &*c.outcome.unwrap().id), (Some(10), "e1-1"));
        assert!(log.poll_commit().is_none(), "2 is not durable yet");
        assert_eq!(log.head(), 1);
        log.handle_event(
            LogEvent::Disk(Completion::Durable {
                generation: 0,
                upto: 3,
            }),
            Instant::ZERO,
        );
        assert_eq!(log.poll_commit().unwrap().ticket, Some(11));
        assert_eq!(log.head(), 2);
    }

    #[test]
    fn a_binary_message_commits_with_its_kind_and_its_record_says_so() {
        let mut log = log();
        log.append(1, "a", Kind::Binary, "AP8=", Instant::ZERO)
            .unwrap();
        let Some(LogOutput::Records(group)) = log.poll_output() else {
            panic!("one group of records");
        };
        let (record, _) = super::super::format::decode_record(&group.bytes, 1).unwrap();
        assert_eq!((record.kind, record.data), (Kind::Binary, "AP8="));
        log.handle_event(
            LogEvent::Disk(Completion::Durable {
                generation: 0,
                upto: 2,
            }),
            Instant::ZERO,
        );
        let msg = log.poll_commit().unwrap().outcome.unwrap();
        assert_eq!((msg.kind, &*msg.bytes()), (Kind::Binary, &[0, 0xff][..]));
        // Read back at start, it is binary again.
        let mut history = History::new(8, Duration::from_secs(60), 1 << 20, 100);
        restore(&mut history, "e1", &record, Instant::ZERO);
        let batch = history.read(
            &["a".into()],
            &crate::ids::Cursor::All,
            1,
            "e1",
            Instant::ZERO,
        );
        assert_eq!(batch.messages[0].kind, Kind::Binary);
    }

    #[test]
    fn a_full_disk_refuses_with_507_and_a_failing_one_with_503() {
        for (error, status) in [
            (DiskError::Full("ENOSPC".into()), 507),
            (DiskError::Failed("EIO".into()), 503),
        ] {
            let mut log = log();
            log.append(1, "a", Kind::Text, "x", Instant::ZERO).unwrap();
            log.poll_output();
            log.handle_event(
                LogEvent::Disk(Completion::Failed {
                    generation: 0,
                    from: 1,
                    error: error.clone(),
                }),
                Instant::ZERO,
            );
            let c = log.poll_commit().unwrap();
            assert_eq!(c.ticket, Some(1));
            assert_eq!(c.outcome.unwrap_err().status(), status);
            // Refused at once for a while, then tried again.
            let err = log
                .append(2, "a", Kind::Text, "x", Instant::ZERO)
                .unwrap_err();
            assert_eq!(err.status(), status);
            assert!(log
                .append(3, "a", Kind::Text, "x", Instant::ZERO + RETRY_AFTER)
                .is_ok());
            assert_eq!(log.head(), 0);
        }
    }

    #[test]
    fn the_writer_is_told_what_history_has_left() {
        let history = History::new(1, Duration::from_secs(60), 1 << 20, 100);
        let mut log = FileLog::new("e1", history, 1, 0);
        for (ticket, seq) in [(1, 1), (2, 2)] {
            log.append(ticket, "a", Kind::Text, "x", Instant::ZERO)
                .unwrap();
            let Some(LogOutput::Records(_)) = log.poll_output() else {
                panic!("records first");
            };
            log.handle_event(
                LogEvent::Disk(Completion::Durable {
                    generation: 0,
                    upto: seq + 1,
                }),
                Instant::ZERO,
            );
        }
        // History keeps one message per topic: 1 left, 2 is kept. The
        // writer hears of it after the next sweep.
        assert_eq!(log.poll_output(), None);
        log.expire(Instant::ZERO);
        assert_eq!(log.poll_output(), Some(LogOutput::Trim { keep_from: 2 }));
        assert_eq!(log.poll_output(), None);
    }
}
