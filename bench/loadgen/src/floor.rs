//! The floor: the least work any one-threaded server can do to release
//! parked long polls, so the release test can tell how much of a server's
//! time is its own and how much is the kernel's.
//!
//! `loadgen floor --addr A` serves just enough HTTP/1.1 for
//! `loadgen fanout --server pushlab --transport longpoll`: every `GET` is
//! parked without being parsed beyond its end (`\r\n\r\n`); a `POST` with a
//! `Content-Length` body is answered `204`, and its body goes to every parked
//! request as one prebuilt response shaped like pushlab's
//! (`{"messages":[…],"next":…}`, so clients can ask again), one `write` per
//! socket, nothing built per subscriber. No timers, no hub, no cursor, no keep-alive bookkeeping:
//! what is left is the system calls, which is what a real server cannot
//! avoid either. It runs until killed (SIGTERM).

use std::io::{ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::{net, Args};

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
    parked: bool,
}

pub fn run(args: &Args) -> String {
    let addr = args.addr();
    // `--call write|send|sendmsg`: which system call carries the response.
    let call = args.str("call", "write");
    let mut poll = Poll::new().expect("poll");
    let mut listener = TcpListener::bind(addr).expect("bind");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register");
    eprintln!("floor server on {addr}");
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut parked: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut released = 0u64;
    loop {
        poll.poll(&mut events, None).expect("poll");
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let _ = sock.set_nodelay(true);
                    let i = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry()
                        .register(&mut sock, Token(i), Interest::READABLE)
                        .expect("register");
                    conns[i] = Some(Conn {
                        sock,
                        buf: Vec::new(),
                        parked: false,
                    });
                }
                continue;
            }
            let i = ev.token().0;
            let mut closed = false;
            let mut publish: Option<Vec<u8>> = None;
            if let Some(c) = conns[i].as_mut() {
                loop {
                    match c.sock.read(&mut scratch) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => c.buf.extend_from_slice(&scratch[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                while let Some(end) = net::find(&c.buf, b"\r\n\r\n") {
                    let head_len = end + 4;
                    if c.buf.starts_with(b"POST") {
                        let head = String::from_utf8_lossy(&c.buf[..head_len]).to_lowercase();
                        let len: usize = head
                            .split("content-length:")
                            .nth(1)
                            .and_then(|v| v.split("\r\n").next())
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if c.buf.len() < head_len + len {
                            break;
                        }
                        publish = Some(c.buf[head_len..head_len + len].to_vec());
                        c.buf.drain(..head_len + len);
                        let _ = c.sock.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
                    } else {
                        c.buf.drain(..head_len);
                        if !c.parked {
                            c.parked = true;
                            parked.push(i);
                        }
                    }
                }
            }
            if closed {
                conns[i] = None;
            }
            if let Some(data) = publish {
                // Shaped like pushlab's answer, so the clients can ask again.
                let body = format!(
                    "{{\"messages\":[{{\"id\":\"f-{n}\",\"data\":\"{}\"}}],\"next\":\"f-{n}\"}}",
                    String::from_utf8_lossy(&data),
                    n = released + 1,
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes();
                for j in parked.drain(..) {
                    if let Some(c) = conns[j].as_mut() {
                        c.parked = false;
                        let ok = match call.as_str() {
                            "send" => sys_send(&c.sock, &resp),
                            "sendmsg" => sys_sendmsg(&c.sock, &resp),
                            _ => c.sock.write(&resp).is_ok(),
                        };
                        if ok {
                            released += 1;
                        }
                    }
                }
                eprintln!("released {released}");
            }
        }
    }
}

fn sys_send(sock: &TcpStream, bytes: &[u8]) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a valid buffer.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    n >= 0
}

fn sys_sendmsg(sock: &TcpStream, bytes: &[u8]) -> bool {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    // SAFETY: zeroed msghdr is valid; iov outlives the call.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    n >= 0
}
