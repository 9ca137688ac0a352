//! A connection's pending output: a bounded queue of byte chunks, some owned
//! by this connection (response heads, poll bodies' framing) and some shared
//! with every other subscriber of the same message (`Rc<[u8]>`).
//!
//! Fan-out pushes a reference, never a copy; the event loop hands the chunks
//! to one vectored write per turn ([`OutQueue::io_slices`]) and reports how
//! much the kernel took ([`OutQueue::consume`]).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;

/// Owned chunks smaller than this are appended to a previous owned chunk, so
/// a response made of many small pieces costs few iovecs.
const COALESCE_BELOW: usize = 4 * 1024;

/// One queued piece of output.
#[derive(Debug)]
pub enum Chunk {
    Owned(Vec<u8>),
    Shared(Rc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => s,
        }
    }
}

/// Pending output of one connection.
///
/// The front chunk lives inline and only the chunks behind it go to a ring:
/// the usual case of a fan-out — one message waiting for the turn's write —
/// allocates nothing, and an idle connection holds no heap memory.
#[derive(Debug, Default)]
pub struct OutQueue {
    /// The chunk being written; `None` only when the queue is empty.
    front: Option<Chunk>,
    /// The chunks behind `front`, in order.
    rest: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Bytes queued and not yet written.
    pending: usize,
}

impl OutQueue {
    /// An empty queue (allocates nothing until used).
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Bytes waiting to be written.
    #[inline]
    pub fn len(&self) -> usize {
        self.pending
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    fn back_mut(&mut self) -> Option<&mut Chunk> {
        match self.rest.back_mut() {
            Some(back) => Some(back),
            None => self.front.as_mut(),
        }
    }

    #[inline]
    fn push_back(&mut self, chunk: Chunk) {
        if self.front.is_none() {
            self.front = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.front.iter().chain(self.rest.iter())
    }

    /// Queues bytes owned by this connection.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.pending += bytes.len();
        if let Some(Chunk::Owned(last)) = self.back_mut() {
            if bytes.len() < COALESCE_BELOW && last.len() < COALESCE_BELOW {
                last.extend_from_slice(&bytes);
                return;
            }
        }
        self.push_back(Chunk::Owned(bytes));
    }

    /// Queues a copy of `bytes`.
    pub fn push_slice(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(Chunk::Owned(last)) = self.back_mut() {
            if last.len() < COALESCE_BELOW {
                last.extend_from_slice(bytes);
                self.pending += bytes.len();
                return;
            }
        }
        self.push_owned(bytes.to_vec());
    }

    /// Queues bytes shared with other connections (a refcount bump).
    #[inline]
    pub fn push_shared(&mut self, bytes: &Rc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        self.pending += bytes.len();
        self.push_back(Chunk::Shared(bytes.clone()));
    }

    /// Fills `dst` with up to `max` slices of the pending bytes, in order.
    pub fn io_slices<'a>(&'a self, dst: &mut Vec<IoSlice<'a>>, max: usize) {
        dst.clear();
        for (i, chunk) in self.chunks().take(max).enumerate() {
            let bytes = chunk.bytes();
            let bytes = if i == 0 {
                &bytes[self.front_written..]
            } else {
                bytes
            };
            dst.push(IoSlice::new(bytes));
        }
    }

    /// Drops the first `n` pending bytes (what a write accepted).
    #[inline]
    pub fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.pending);
        n = n.min(self.pending);
        self.pending -= n;
        while n > 0 {
            let Some(front) = &self.front else {
                break;
            };
            let left = front.bytes().len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            self.front_written = 0;
            self.front = self.rest.pop_front();
        }
        if self.front.is_none() && self.rest.capacity() > 0 {
            // Give the ring's memory back: idle connections hold no buffers.
            self.rest = VecDeque::new();
        }
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        *self = OutQueue::default();
    }

    /// Copies the pending bytes out (for tests and the sans-I/O fuzz targets).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.pending);
        for (i, chunk) in self.chunks().enumerate() {
            let b = chunk.bytes();
            v.extend_from_slice(if i == 0 { &b[self.front_written..] } else { b });
        }
        v
    }

    /// Takes all pending bytes out, leaving the queue empty.
    pub fn take_all(&mut self) -> Vec<u8> {
        let v = self.to_vec();
        self.clear();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_pending_message_needs_no_ring_and_an_empty_queue_holds_none() {
        let msg: Rc<[u8]> = Rc::from(&b"data: hi\n\n"[..]);
        let mut q = OutQueue::new();
        q.push_shared(&msg);
        assert_eq!(q.rest.capacity(), 0, "the front chunk is inline");
        q.push_shared(&msg);
        q.push_owned(b": ping\n\n".to_vec());
        assert_eq!(q.to_vec(), b"data: hi\n\ndata: hi\n\n: ping\n\n");
        q.consume(q.len());
        assert!(q.is_empty());
        assert!(q.front.is_none());
        assert_eq!(q.rest.capacity(), 0, "the ring is given back");
    }

    proptest! {
        /// Whatever the write sizes, the bytes come out once and in order.
        #[test]
        fn partial_writes_deliver_every_byte_once_in_order(
            pieces in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..6000), any::<bool>()), 0..20),
            writes in proptest::collection::vec(1usize..9000, 1..40),
        ) {
            let mut q = OutQueue::new();
            let mut expected = Vec::new();
            for (bytes, shared) in &pieces {
                expected.extend_from_slice(bytes);
                if *shared { q.push_shared(&Rc::from(bytes.as_slice())) } else { q.push_owned(bytes.clone()) }
            }
            prop_assert_eq!(q.len(), expected.len());
            let mut got = Vec::new();
            for w in writes.iter().cycle().take(10_000) {
                if q.is_empty() { break; }
                let mut n = 0;
                {
                    let mut slices = Vec::new();
                    q.io_slices(&mut slices, 3);
                    let mut take = *w;
                    for s in &slices {
                        let k = take.min(s.len());
                        got.extend_from_slice(&s[..k]);
                        n += k;
                        take -= k;
                        if take == 0 { break; }
                    }
                }
                q.consume(n);
            }
            prop_assert_eq!(got, expected);
            prop_assert!(q.is_empty());
        }
    }
}
