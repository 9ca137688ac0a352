//! A connection's life while its answers are written, over real loopback
//! sockets: a slow but steady reader outlives `--idle-timeout`, a client
//! that never reads is closed by `--send-timeout` (also after a closing
//! response), and requests pipelined before a half-close are all answered
//! even while they wait behind a full output queue.
//!
//! The client's receive buffer is made small so the kernel cannot absorb the
//! answers and the server really holds output.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{read_response, read_to_end, wait_until, TestServer};
use pushlab::config::Config;

/// Shrinks the socket's receive buffer (and turns off its autotuning), so
/// at most a few tens of KiB can wait on the client's side.
fn shrink_receive_buffer(s: &TcpStream) {
    let size: libc::c_int = 16 * 1024;
    // SAFETY: setsockopt only reads the `c_int` we pass, for its length.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF)");
}

/// A server holding one message of `len` bytes on topic `big`.
fn server_with_big_message(config: Config, len: usize) -> TestServer {
    let srv = TestServer::start(Config {
        max_message: len,
        ..config
    });
    srv.publish("big", &"x".repeat(len));
    srv
}

const POLL_BIG: &str = "GET /poll?topic=big&since=0 HTTP/1.1\r\nHost: t\r\n\r\n";

/// The counters of the `poll` transport.
fn poll_stats(srv: &TestServer) -> serde_json::Value {
    srv.stats()["transports"]["poll"].clone()
}

/// 8 MiB read 64 KiB at a time every 10 ms (about 1.3 s, the first half of
/// it with the server holding output) with a 200 ms idle timeout: the whole
/// answer arrives, then the idle timeout closes the socket cleanly.
#[test]
fn a_slow_steady_reader_gets_a_large_answer_whole_past_the_idle_timeout() {
    let idle = Duration::from_millis(200);
    let len = 8 << 20;
    let srv = server_with_big_message(
        Config {
            idle_timeout: idle,
            send_timeout: Duration::from_secs(5),
            ..Config::default()
        },
        len,
    );
    let mut s = srv.connect();
    shrink_receive_buffer(&s);
    s.write_all(POLL_BIG.as_bytes()).unwrap();
    let mut r = BufReader::with_capacity(64 * 1024, s.try_clone().unwrap());
    let (status, headers) = common::read_head(&mut r);
    assert_eq!(status, 200);
    let body_len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    assert!(body_len > len);
    let started = Instant::now();
    let mut got = 0;
    let mut buf = vec![0; 64 * 1024];
    while got < body_len {
        let want = buf.len().min(body_len - got);
        // The pace of a slow client is the point here: sleeping is the test.
        let n = r.read(&mut buf[..want]).expect("the answer keeps coming");
        assert!(n > 0, "closed after {got} of {body_len} bytes");
        got += n;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(started.elapsed() > idle * 3, "the read was not slow");
    // Then the idle timeout, counted from when the server wrote the last
    // byte into the socket, closes it cleanly.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("a clean close");
    assert!(rest.is_empty());
    assert_eq!(poll_stats(&srv)["send_timeouts"], 0);
}

/// A client that asks for a large answer with `Connection: close` and never
/// reads it is closed by `--send-timeout`; it does not keep its slot.
#[test]
fn a_closing_connection_whose_client_never_reads_is_closed_by_the_send_timeout() {
    let srv = server_with_big_message(
        Config {
            send_timeout: Duration::from_millis(300),
            ..Config::default()
        },
        4 << 20,
    );
    let mut s = srv.connect();
    shrink_receive_buffer(&s);
    s.write_all(b"GET /poll?topic=big&since=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    wait_until("the server to close the stalled connection", || {
        let poll = poll_stats(&srv);
        poll["send_timeouts"] == 1 && poll["sockets_open"] == 0
    });
    drop(s);
}

/// The same for a keep-alive connection that stops reading halfway.
#[test]
fn a_keep_alive_client_that_stops_reading_is_closed_by_the_send_timeout() {
    let srv = server_with_big_message(
        Config {
            send_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(3600),
            ..Config::default()
        },
        4 << 20,
    );
    let mut s = srv.connect();
    shrink_receive_buffer(&s);
    s.write_all(POLL_BIG.as_bytes()).unwrap();
    let mut buf = vec![0; 64 * 1024];
    s.read_exact(&mut buf).unwrap();
    wait_until("the server to close the stalled connection", || {
        poll_stats(&srv)["send_timeouts"] == 1
    });
}

/// `printf 'GET …' | nc -N`: the client pipelines sixteen requests for a
/// 1 MiB answer each, shuts its write side, and only then reads. The
/// answers wait behind a full output queue when the EOF arrives; every one
/// is still sent, then the server closes.
#[test]
fn requests_pipelined_before_a_half_close_are_all_answered_behind_a_full_queue() {
    let srv = server_with_big_message(
        Config {
            max_queued_bytes: 64 * 1024,
            ..Config::default()
        },
        1 << 20,
    );
    let s = srv.connect();
    shrink_receive_buffer(&s);
    let n = 16;
    (&s).write_all(POLL_BIG.repeat(n).as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut r = BufReader::with_capacity(64 * 1024, s.try_clone().unwrap());
    for i in 0..n {
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200, "answer {i}");
        assert!(resp.body.len() > 1 << 20, "answer {i}");
    }
    let mut s = r.into_inner();
    assert!(read_to_end(&mut s).is_empty(), "closed after the answers");
    assert_eq!(poll_stats(&srv)["requests"], n);
}
