//! The single-process log: a message commits the moment it is appended.
//!
//! Ids are `epoch-N` with `N` counted here; the history is a [`History`].
//! Each append leaves its [`Commit`] in a queue that the engine empties
//! before the turn ends ([`Log::poll_commit`]), so a publisher is answered
//! and subscribers are written in the same turn, as if the log were not
//! there: the seam costs one queue push and pop per message.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Commit, History, HubError, Kind, Log, Ticket};
use crate::time::Instant;

/// Messages kept in this process's memory only.
pub struct MemoryLog {
    epoch: String,
    seq: u64,
    history: History,
    commits: VecDeque<Commit>,
}

impl MemoryLog {
    /// A log whose ids start with `epoch` (ASCII alphanumeric), keeping what
    /// `history` allows.
    pub fn new(epoch: &str, history: History) -> MemoryLog {
        assert!(
            !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric()),
            "epoch must be ASCII alphanumeric"
        );
        MemoryLog {
            epoch: epoch.to_string(),
            seq: 0,
            history,
            commits: VecDeque::new(),
        }
    }

    /// A log keeping `capacity` messages per topic for at most `ttl`, with
    /// the history's other bounds given.
    pub fn with_bounds(
        epoch: &str,
        capacity: usize,
        ttl: Duration,
        history_memory: usize,
        max_topics: usize,
    ) -> MemoryLog {
        MemoryLog::new(
            epoch,
            History::new(capacity, ttl, history_memory, max_topics),
        )
    }
}

impl Log for MemoryLog {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn head(&self) -> u64 {
        self.seq
    }

    fn append(
        &mut self,
        ticket: Ticket,
        topic: &str,
        kind: Kind,
        data: &str,
        now: Instant,
    ) -> Result<(), HubError> {
        let seq = self.seq + 1;
        let id = crate::ids::format_id(&self.epoch, seq).into_boxed_str();
        let message = self.history.append(topic, seq, id, kind, data, now)?;
        self.seq = seq;
        self.commits.push_back(Commit {
            ticket: Some(ticket),
            outcome: Ok(message),
        });
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
        self.commits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_commits_at_once_with_the_next_id() {
        let mut log = MemoryLog::with_bounds("e1", 8, Duration::from_secs(60), 1 << 20, 10);
        log.append(7, "a", Kind::Text, "x", Instant::ZERO).unwrap();
        log.append(8, "b", Kind::Text, "y", Instant::ZERO).unwrap();
        assert_eq!(log.usage().pending, 2);
        let first = log.poll_commit().unwrap();
        assert_eq!(first.ticket, Some(7));
        assert_eq!(&*first.outcome.unwrap().id, "e1-1");
        let second = log.poll_commit().unwrap();
        assert_eq!(
            (second.ticket, &*second.outcome.unwrap().id),
            (Some(8), "e1-2")
        );
        assert!(log.poll_commit().is_none());
        assert_eq!(log.head(), 2);
    }

    #[test]
    fn a_refused_append_takes_no_id_and_leaves_no_commit() {
        // No topic may keep messages: nothing can give way to a new one.
        let mut log = MemoryLog::with_bounds("e1", 8, Duration::from_secs(60), 1 << 20, 0);
        assert_eq!(
            log.append(1, "a", Kind::Text, "x", Instant::ZERO),
            Err(HubError::TooManyTopics)
        );
        assert_eq!(log.head(), 0);
        assert!(log.poll_commit().is_none());
    }
}
