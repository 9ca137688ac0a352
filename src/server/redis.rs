//! `--redis`: the Redis log's driver on the loop's side. Two non-blocking
//! TCP connections — the log's links, one that appends and one that tails
//! (`redis::log`) — registered in the server's `mio::Poll` with tokens of
//! their own. The driver only performs what the log asks
//! ([`LogOutput::Connect`], [`LogOutput::Send`], [`LogOutput::Close`]) and
//! reports what the sockets say as [`LogEvent`]s; when to connect, what to
//! send and what a timeout is are the log's to decide.
//!
//! Redis's address is resolved once, at start (`ToSocketAddrs` may block
//! on DNS, which the loop must never do); a node whose Redis moves to
//! another address is restarted.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::log::{Link, LogEvent, LogOutput};
use crate::redis::log::{APPEND_LINK, TAIL_LINK};
use crate::redis::url::RedisUrl;

/// The tokens of the two links: at the top of the range, far from the
/// connections' (which count up from 3). `usize::MAX` is left alone.
const TOKENS: [Token; 2] = [Token(usize::MAX - 2), Token(usize::MAX - 1)];

/// The link a token belongs to, if it is one of the driver's.
pub fn link_of(token: Token) -> Option<Link> {
    if token == TOKENS[usize::from(APPEND_LINK)] {
        Some(APPEND_LINK)
    } else if token == TOKENS[usize::from(TAIL_LINK)] {
        Some(TAIL_LINK)
    } else {
        None
    }
}

/// One link's socket.
struct Socket {
    stream: TcpStream,
    /// The connection is established (the first writable event said so).
    connected: bool,
    /// Bytes the kernel has not taken yet.
    out: Vec<u8>,
}

/// The sockets of the Redis log.
pub struct Redis {
    addr: SocketAddr,
    links: [Option<Socket>; 2],
}

impl Redis {
    /// Resolves `url`'s host once (the loop does not resolve names).
    pub fn new(url: &RedisUrl) -> io::Result<Redis> {
        let authority = url.authority();
        let addr = authority.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                ErrorKind::NotFound,
                format!("--redis: {authority} has no address"),
            )
        })?;
        Ok(Redis {
            addr,
            links: [None, None],
        })
    }

    /// Performs one output of the log; what it causes at once (a connect
    /// refused before any event, a write to a reset connection) comes
    /// back as events to feed the log.
    pub fn perform(&mut self, registry: &Registry, output: LogOutput, events: &mut Vec<LogEvent>) {
        match output {
            LogOutput::Connect { link } => {
                self.close(registry, link);
                match TcpStream::connect(self.addr) {
                    Ok(mut stream) => {
                        let token = TOKENS[usize::from(link)];
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        if let Err(e) = registry.register(&mut stream, token, interest) {
                            events.push(down(link, &e));
                            return;
                        }
                        self.links[usize::from(link)] = Some(Socket {
                            stream,
                            connected: false,
                            out: Vec::new(),
                        });
                    }
                    Err(e) => events.push(down(link, &e)),
                }
            }
            LogOutput::Send { link, bytes } => {
                let Some(socket) = self.links[usize::from(link)].as_mut() else {
                    return;
                };
                socket.out.extend_from_slice(&bytes);
                if socket.connected {
                    if let Err(e) = flush(socket) {
                        self.close(registry, link);
                        events.push(down(link, &e));
                    }
                }
            }
            LogOutput::Close { link } => self.close(registry, link),
            LogOutput::Records(_) | LogOutput::Trim { .. } => {}
        }
    }

    /// A readiness event on `link`'s socket: connected, bytes read, room
    /// to write, or the end. `buf` is the loop's read buffer.
    pub fn handle_ready(
        &mut self,
        registry: &Registry,
        link: Link,
        event: &Event,
        buf: &mut [u8],
        events: &mut Vec<LogEvent>,
    ) {
        let Some(socket) = self.links[usize::from(link)].as_mut() else {
            return;
        };
        if !socket.connected {
            // A non-blocking connect finished: writable, or an error.
            if let Ok(Some(e)) | Err(e) = socket.stream.take_error() {
                self.close(registry, link);
                events.push(down(link, &e));
                return;
            }
            match socket.stream.peer_addr() {
                Ok(_) => {
                    socket.connected = true;
                    let _ = socket.stream.set_nodelay(true);
                    events.push(LogEvent::Up { link });
                }
                // Not yet: the next event will tell.
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => {
                    self.close(registry, link);
                    events.push(down(link, &e));
                    return;
                }
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let mut read = Vec::new();
            let end = loop {
                match socket.stream.read(buf) {
                    // Redis closed the connection (a restart, `CLIENT KILL`).
                    Ok(0) => break Some("Redis closed the connection".to_string()),
                    Ok(n) => read.extend_from_slice(&buf[..n]),
                    // Read everything the kernel had.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break None,
                    // A signal: read again.
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // Reset, or another hard error: the connection is gone.
                    Err(e) => break Some(e.to_string()),
                }
            };
            if !read.is_empty() {
                events.push(LogEvent::Received { link, bytes: read });
            }
            if let Some(why) = end {
                self.close(registry, link);
                events.push(LogEvent::Down {
                    link,
                    why: why.into(),
                });
                return;
            }
        }
        if event.is_writable() {
            if let Some(socket) = self.links[usize::from(link)].as_mut() {
                if let Err(e) = flush(socket) {
                    self.close(registry, link);
                    events.push(down(link, &e));
                }
            }
        }
    }

    fn close(&mut self, registry: &Registry, link: Link) {
        if let Some(mut socket) = self.links[usize::from(link)].take() {
            let _ = registry.deregister(&mut socket.stream);
        }
    }
}

/// Writes what the kernel takes; the rest waits for the next writable
/// event.
fn flush(socket: &mut Socket) -> io::Result<()> {
    while !socket.out.is_empty() {
        match socket.stream.write(&socket.out) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                socket.out.drain(..n);
            }
            // The send buffer is full: a writable event comes when it is not.
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            // A signal: write again.
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn down(link: Link, e: &io::Error) -> LogEvent {
    LogEvent::Down {
        link,
        why: e.to_string().into(),
    }
}
