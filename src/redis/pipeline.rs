//! One Redis connection as a sans-I/O state machine: commands pipelined out,
//! replies matched to them in order.
//!
//! Redis answers the commands of one connection one reply each, in the
//! order it received them (spec, "Pipelining"), so a client need not wait
//! for a reply before sending the next command: it remembers what it sent
//! in a FIFO and pairs each reply with the oldest command still waiting.
//! [`Pipeline`] is that FIFO, the output buffer and the reply decoder
//! together; the caller's `K` says what each command was (an append, a
//! `SCRIPT LOAD`, a read of the log) and what to do with its reply.
//!
//! The caller owns the socket. Its contract, in the order of the loop:
//!
//! 1. [`send`](Pipeline::send) a command (refused past
//!    [`max_pending`](Pipeline::max_pending), so memory stays bounded: the
//!    caller answers `503`);
//! 2. write [`output`](Pipeline::output) to the socket until it would
//!    block, telling [`handle_written`](Pipeline::handle_written) how much
//!    went right after each write (a reply to a command not yet written
//!    whole is taken for one nobody asked for);
//! 3. give what it reads to [`handle_read`](Pipeline::handle_read), then
//!    take [`next_reply`](Pipeline::next_reply) until it says
//!    [`Matched::Incomplete`];
//! 4. when the connection ends or fails, [`handle_closed`](Pipeline::handle_closed)
//!    says which commands may have run (sent whole, no reply) and which
//!    surely did not (not sent whole), and the caller makes a new
//!    `Pipeline` for the next connection.
//!
//! A [`PipelineError`] (bytes that are not RESP, a limit passed, a reply
//! nobody asked for) means the stream can no longer be trusted: close the
//! connection and go to step 4.
//!
//! Left out: `MULTI`/`EXEC` (each queued command answers `+QUEUED`, which
//! the caller can still match as one reply per command) and pub/sub, whose
//! pushes answer no command.

use std::collections::VecDeque;
use std::fmt;

use crate::wire::resp::{encode_command, Arg, Decoder, Limits, Next, Reply, RespError};

/// Default for [`Pipeline::max_pending`]: commands sent and not yet
/// answered on one connection.
pub const DEFAULT_MAX_PENDING: usize = 4096;

/// The result of [`Pipeline::next_reply`] that is not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matched<K> {
    /// The reply to the oldest command waiting, and what that command was.
    Reply(K, Reply),
    /// The reply to the oldest command waiting, taken raw (see
    /// [`Pipeline::next_match`]), and what that command was.
    Raw(K),
    /// Every reply received so far was matched; read more.
    Incomplete,
}

/// Why the connection's replies can no longer be trusted. Close it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipelineError {
    /// The reply bytes broke RESP2 or a [`Limits`].
    Decode(RespError),
    /// A reply arrived while no command was waiting for one.
    Unsolicited,
    /// [`Pipeline::handle_closed`] was called: the connection is gone.
    Closed,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Decode(e) => write!(f, "{e}"),
            PipelineError::Unsolicited => f.write_str("Redis sent a reply to no command"),
            PipelineError::Closed => f.write_str("the Redis connection is closed"),
        }
    }
}

impl std::error::Error for PipelineError {}

/// [`Pipeline::send`] refused: [`Pipeline::max_pending`] commands are
/// already waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineFull {
    /// The limit.
    pub limit: usize,
}

impl fmt::Display for PipelineFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Redis commands already wait for a reply", self.limit)
    }
}

impl std::error::Error for PipelineFull {}

/// What became of the commands left without a reply when a connection
/// ended ([`Pipeline::handle_closed`]), each list in the order sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unanswered<K> {
    /// Written whole: Redis may have run them (the reply was lost), or not.
    pub maybe_run: Vec<K>,
    /// Not written whole: Redis never saw them complete, so never ran them;
    /// safe to send again on the next connection.
    pub not_run: Vec<K>,
}

/// A command waiting for its reply.
#[derive(Debug)]
struct Waiting<K> {
    kind: K,
    /// Where its bytes end in the connection's output, counted from the
    /// first byte ever sent.
    end: u64,
}

/// Commands out, replies in, matched in order (see the module docs).
#[derive(Debug)]
pub struct Pipeline<K> {
    /// Output not yet written: `out[out_start..]`.
    out: Vec<u8>,
    out_start: usize,
    /// Bytes written since the connection began.
    written: u64,
    /// Bytes queued since the connection began.
    queued: u64,
    waiting: VecDeque<Waiting<K>>,
    decoder: Decoder,
    max_pending: usize,
    failed: Option<PipelineError>,
}

impl<K> Pipeline<K> {
    /// A pipeline for a new connection, refusing replies beyond `limits`
    /// and commands beyond `max_pending` waiting at once.
    pub fn new(limits: Limits, max_pending: usize) -> Self {
        Pipeline {
            out: Vec::new(),
            out_start: 0,
            written: 0,
            queued: 0,
            waiting: VecDeque::new(),
            decoder: Decoder::with_limits(limits),
            max_pending,
            failed: None,
        }
    }

    /// Most commands waiting for a reply at once.
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// Commands sent (or queued to send) and not yet answered.
    pub fn pending(&self) -> usize {
        self.waiting.len()
    }

    /// Nothing to write and no reply expected.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.output().is_empty()
    }

    /// Queues one command, `args` encoded as RESP, remembered as `kind`.
    pub fn send(&mut self, kind: K, args: &[Arg<'_>]) -> Result<(), PipelineFull> {
        if self.waiting.len() >= self.max_pending {
            return Err(PipelineFull {
                limit: self.max_pending,
            });
        }
        let before = self.out.len();
        encode_command(&mut self.out, args);
        self.queued += (self.out.len() - before) as u64;
        self.waiting.push_back(Waiting {
            kind,
            end: self.queued,
        });
        Ok(())
    }

    /// Bytes to write to the socket, oldest first.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// The socket took the first `n` bytes of [`output`](Self::output).
    pub fn handle_written(&mut self, n: usize) {
        let n = n.min(self.out.len() - self.out_start);
        self.out_start += n;
        self.written += n as u64;
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        } else if self.out_start >= self.out.len() / 2 {
            self.out.drain(..self.out_start);
            self.out_start = 0;
        }
    }

    /// Bytes read from the socket, in order.
    pub fn handle_read(&mut self, bytes: &[u8]) {
        self.decoder.feed(bytes);
    }

    /// The next reply with the command it answers, [`Matched::Incomplete`],
    /// or the error that ended the stream (returned again on later calls).
    pub fn next_reply(&mut self) -> Result<Matched<K>, PipelineError> {
        self.next_match(|_| false, &mut Vec::new())
    }

    /// Like [`next_reply`](Self::next_reply), but the reply to a command
    /// for which `raw` says so is not built: its bytes, checked as RESP2
    /// within the limits, are appended to `raw_out` (walk them with a
    /// [`Reader`](crate::wire::resp::Reader)) and [`Matched::Raw`] names
    /// the command. A reply of many values then costs no allocation each.
    pub fn next_match(
        &mut self,
        raw: impl Fn(&K) -> bool,
        raw_out: &mut Vec<u8>,
    ) -> Result<Matched<K>, PipelineError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let want_raw = self.waiting.front().is_some_and(|w| raw(&w.kind));
        let result = match self.decoder.next(want_raw) {
            Ok(Next::Incomplete) => return Ok(Matched::Incomplete),
            Ok(next) => match self.waiting.front() {
                // Redis reads a command before answering it: a reply to a
                // command not yet written whole is one nobody asked for.
                Some(w) if w.end <= self.written => {
                    let w = self.waiting.pop_front().expect("checked above");
                    return Ok(match next {
                        Next::Reply(reply) => Matched::Reply(w.kind, reply),
                        Next::Raw(bytes) => {
                            raw_out.extend_from_slice(bytes);
                            Matched::Raw(w.kind)
                        }
                        Next::Incomplete => unreachable!("matched above"),
                    });
                }
                _ => PipelineError::Unsolicited,
            },
            Err(e) => PipelineError::Decode(e),
        };
        self.failed = Some(result.clone());
        Err(result)
    }

    /// The connection ended (closed by either side, or after an error):
    /// the commands left without a reply, sorted by whether Redis may have
    /// run them. The pipeline is spent.
    pub fn handle_closed(&mut self) -> Unanswered<K> {
        let mut unanswered = Unanswered {
            maybe_run: Vec::new(),
            not_run: Vec::new(),
        };
        for w in self.waiting.drain(..) {
            if w.end <= self.written {
                unanswered.maybe_run.push(w.kind);
            } else {
                unanswered.not_run.push(w.kind);
            }
        }
        self.out = Vec::new();
        self.out_start = 0;
        self.failed.get_or_insert(PipelineError::Closed);
        unanswered
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
