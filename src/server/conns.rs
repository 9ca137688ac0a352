//! The connection table: a slab of connections indexed by their mio token.

use mio::net::TcpStream;
use mio::Token;

use crate::session::Session;
use crate::timers::Instant;

/// Tokens below this are the listener, signals and the waker.
const FIRST: usize = 3;

/// One client connection: its socket and its sans-I/O session.
pub struct Conn {
    pub socket: TcpStream,
    pub session: Session,
    /// Already in the loop's list of connections to write this turn.
    pub dirty: bool,
    /// Registered for WRITABLE (output is waiting for the socket).
    pub want_writable: bool,
    /// Stopped reading before `WouldBlock` (back-pressure).
    pub read_pending: bool,
    /// The deadline armed in the loop's timers for this connection.
    pub armed: Option<Instant>,
}

impl Conn {
    pub fn new(socket: TcpStream, session: Session) -> Conn {
        Conn {
            socket,
            session,
            dirty: false,
            want_writable: false,
            read_pending: false,
            armed: None,
        }
    }
}

/// Slab of connections with a free list; a slot's token is `FIRST + index`.
pub struct Conns {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    len: usize,
    max: usize,
}

impl Conns {
    pub fn new(max: usize) -> Conns {
        Conns {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            max,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.max
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The token the next [`Conns::insert`] should use.
    pub fn vacant_token(&self) -> Token {
        Token(FIRST + self.free.last().copied().unwrap_or(self.slots.len()))
    }

    pub fn insert(&mut self, token: Token, conn: Conn) {
        let i = token.0 - FIRST;
        if self.free.last() == Some(&i) {
            self.free.pop();
        } else {
            debug_assert_eq!(i, self.slots.len());
            self.slots.push(None);
        }
        self.slots[i] = Some(conn);
        self.len += 1;
    }

    pub fn get_mut(&mut self, token: Token) -> Option<&mut Conn> {
        self.slots.get_mut(token.0.checked_sub(FIRST)?)?.as_mut()
    }

    pub fn remove(&mut self, token: Token) -> Option<Conn> {
        let i = token.0.checked_sub(FIRST)?;
        let conn = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(conn)
    }

    /// Tokens of every open connection.
    pub fn tokens(&self) -> Vec<Token> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| Token(FIRST + i))
            .collect()
    }
}
