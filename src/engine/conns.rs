//! The engine's connection table: a slab of sessions with the bookkeeping
//! the engine keeps per connection. Slots are reused; the shell uses a
//! slot's index for its own socket table (and its `mio` token).

use crate::session::Session;
use crate::timers::Instant;

/// A connection's slot in the table, shared by the engine and the shell
/// (and the hub's subscriber id). Reused once the connection is gone: the
/// trace names connections by their serial number instead
/// ([`crate::session::Session::serial`]).
pub type ConnId = usize;

/// One connection as the engine sees it.
pub struct Conn {
    pub session: Session,
    /// Already in the engine's list of connections to write this turn.
    pub dirty: bool,
    /// Reading stopped before `WouldBlock` (back-pressure or the per-turn
    /// budget): bytes may be waiting in the kernel with no edge to come.
    pub read_pending: bool,
    /// The deadline armed in the engine's timers for this connection.
    pub armed: Option<Instant>,
    /// The peer address it is counted under (`--max-connections-per-ip`).
    pub client: Option<Box<str>>,
    /// Refused at accept: answered `503`, then closed.
    pub refusing: bool,
}

impl Conn {
    pub fn new(session: Session) -> Conn {
        Conn {
            session,
            dirty: false,
            read_pending: false,
            armed: None,
            client: None,
            refusing: false,
        }
    }
}

/// Slab of connections with a free list.
#[derive(Default)]
pub struct Conns {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    len: usize,
}

impl Conns {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id the next [`Conns::insert`] takes.
    pub fn vacant(&self) -> ConnId {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    /// Inserts `conn` at [`Conns::vacant`] and returns that id.
    pub fn insert(&mut self, conn: Conn) -> ConnId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[id] = Some(conn);
        self.len += 1;
        id
    }

    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slots.get(id)?.as_ref()
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots.get_mut(id)?.as_mut()
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.slots.get_mut(id)?.take()?;
        self.free.push(id);
        self.len -= 1;
        Some(conn)
    }

    /// Ids of every open connection.
    pub fn ids(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| i)
            .collect()
    }
}
