//! The sockets of the open connections, indexed by the engine's connection
//! ids, and the syscalls the engine asks for ([`Io`]).

use std::io::{self, ErrorKind, IoSlice, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::record::Recorder;
use crate::engine::{ConnId, Io, Written};
use crate::record::Effect;
use crate::stats::TraceEvent;

/// The listening socket on `addr`, non-blocking; with `reuse_port`,
/// `SO_REUSEPORT` is set before `bind`, so several processes can listen on
/// one port and the kernel spreads new connections among them
/// (`--reuse-port`).
pub fn listen(addr: std::net::SocketAddr, reuse_port: bool) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // What std and mio do on Unix: a restarted server may bind at once.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Tokens below this are the listener, signals and the waker.
const FIRST: usize = 3;

/// The token of connection `id`.
pub fn token(id: ConnId) -> Token {
    Token(FIRST + id)
}

/// The connection id of `token`, if it is one.
pub fn conn_id(token: Token) -> Option<ConnId> {
    token.0.checked_sub(FIRST)
}

struct Socket {
    stream: TcpStream,
    /// Registered for WRITABLE (output is waiting for the socket).
    want_writable: bool,
}

/// The connection sockets and the registry they are registered with.
pub struct Net {
    registry: Registry,
    sockets: Vec<Option<Socket>>,
    /// `--record`: every effect is written down with the kernel's answer.
    pub recorder: Option<Recorder>,
}

impl Net {
    pub fn new(registry: Registry) -> Net {
        Net {
            registry,
            sockets: Vec::new(),
            recorder: None,
        }
    }

    /// Registers `stream` for reading as connection `id`.
    pub fn insert(&mut self, id: ConnId, mut stream: TcpStream) -> io::Result<()> {
        self.registry
            .register(&mut stream, token(id), Interest::READABLE)?;
        if self.sockets.len() <= id {
            self.sockets.resize_with(id + 1, || None);
        }
        self.sockets[id] = Some(Socket {
            stream,
            want_writable: false,
        });
        Ok(())
    }

    pub fn stream(&mut self, id: ConnId) -> Option<&mut TcpStream> {
        Some(&mut self.sockets.get_mut(id)?.as_mut()?.stream)
    }
}

impl Io for Net {
    fn write(&mut self, conn: ConnId, bufs: &[IoSlice<'_>]) -> Written {
        let result = self.write_socket(conn, bufs);
        if let Some(r) = &mut self.recorder {
            r.write(conn, bufs, result);
        }
        result
    }

    fn want_writable(&mut self, conn: ConnId, on: bool) -> bool {
        let ok = self.set_writable(conn, on);
        if let Some(r) = &mut self.recorder {
            r.effect(&Effect::WantWritable { conn, on, ok });
        }
        ok
    }

    fn shutdown_write(&mut self, conn: ConnId) {
        if let Some(r) = &mut self.recorder {
            r.effect(&Effect::ShutdownWrite { conn });
        }
        if let Some(stream) = self.stream(conn) {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }

    fn close(&mut self, conn: ConnId, unsent: usize) {
        if let Some(r) = &mut self.recorder {
            r.effect(&Effect::Close { conn, unsent });
        }
        self.drop_socket(conn);
    }

    fn print_trace(&mut self, events: &[TraceEvent]) {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        for e in events {
            let _ = writeln!(out, "{}", e.to_line());
        }
        let _ = out.flush();
    }
}

impl Net {
    /// Deregisters and drops connection `id`'s socket.
    pub fn drop_socket(&mut self, id: ConnId) {
        if let Some(mut s) = self.sockets.get_mut(id).and_then(Option::take) {
            let _ = self.registry.deregister(&mut s.stream);
        }
    }

    fn write_socket(&mut self, conn: ConnId, bufs: &[IoSlice<'_>]) -> Written {
        let Some(stream) = self.stream(conn) else {
            return Written::Failed;
        };
        match stream.write_vectored(bufs) {
            Ok(n) => Written::Bytes(n),
            // The send buffer is full: wait for the WRITABLE edge.
            Err(e) if e.kind() == ErrorKind::WouldBlock => Written::WouldBlock,
            // Interrupted by a signal: try again next turn.
            Err(e) if e.kind() == ErrorKind::Interrupted => Written::Interrupted,
            // Broken pipe, reset: the peer is gone.
            Err(_e) => Written::Failed,
        }
    }

    fn set_writable(&mut self, conn: ConnId, on: bool) -> bool {
        let Some(Some(s)) = self.sockets.get_mut(conn) else {
            return false;
        };
        if s.want_writable == on {
            return true;
        }
        s.want_writable = on;
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.registry
            .reregister(&mut s.stream, token(conn), interest)
            .is_ok()
    }
}
