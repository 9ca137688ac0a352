//! The binary as users run it: the first stdout line names the bound
//! address, `--help` documents every limit, and SIGINT/SIGTERM shut down
//! cleanly — in-flight requests answered, exit status 0.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::{io_timeout, read_response, spawn_pushlab};

/// Starts the binary with `--addr 127.0.0.1:0` then `args` (which may
/// name `serve`: the address before it counts all the same).
fn spawn(args: &[&str]) -> (Child, String) {
    spawn_exactly(&[&["--addr", "127.0.0.1:0"], args].concat())
}

/// Starts the binary with exactly `args`; the address it listens on.
fn spawn_exactly(args: &[&str]) -> (Child, String) {
    spawn_pushlab(args, Stdio::inherit())
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: sending a signal to a child process we started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn wait_exit(mut child: Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + io_timeout();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(io_timeout())).unwrap();
    s
}

#[test]
fn sigterm_answers_a_held_long_poll_and_exits_zero() {
    let (child, addr) = spawn(&[]);
    let mut s = connect(&addr);
    s.write_all(b"GET /long-poll?topic=a&timeout=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Wait for the hold through a second connection's /stats.
    common::wait_until("the hold", || {
        let mut c = connect(&addr);
        c.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_response(&mut BufReader::new(c)).json()["transports"]["long_poll"]["holds_active"] == 1
    });
    signal(&child, libc::SIGTERM);
    let resp = read_response(&mut BufReader::new(s));
    assert_eq!(resp.status, 200);
    assert!(wait_exit(child).success());
}

#[test]
fn sigint_stops_the_server_with_status_zero() {
    let (child, addr) = spawn(&["serve"]);
    let mut c = connect(&addr);
    c.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut BufReader::new(c)).status, 200);
    signal(&child, libc::SIGINT);
    assert!(wait_exit(child).success());
    assert!(TcpStream::connect(&addr).is_err(), "no longer listening");
}

#[test]
fn help_documents_every_limit() {
    let out = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--addr",
        "--history",
        "--history-ttl",
        "--history-memory",
        "--max-topics",
        "--assembly-memory",
        "--max-message",
        "--max-connections",
        "--head-timeout",
        "--idle-timeout",
        "--send-timeout",
        "--long-poll-max",
        "--heartbeat",
        "--ws-ping",
        "--ws-max-message",
        "--max-queued-bytes",
        "--max-pipelined-bytes",
        "--publish-token",
        "--allow-origin",
        "--trace",
        "--record",
        "--record-limit",
        "--redis",
        "--redis-prefix",
        "--redis-max-pending",
        "--redis-timeout",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

fn stop(child: Child) {
    signal(&child, libc::SIGTERM);
    assert!(wait_exit(child).success());
}

/// One request on a new connection; the response.
fn request(addr: &str, method: &str, target: &str, body: &str) -> common::Response {
    let mut c = connect(addr);
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    read_response(&mut BufReader::new(c))
}

/// Options before `serve` count (they were ignored, so this bound 8080).
#[test]
fn options_before_serve_are_honoured() {
    let (child, addr) = spawn_exactly(&["--addr", "127.0.0.1:0", "--history", "2", "serve"]);
    assert!(!addr.ends_with(":8080"), "{addr}");
    for m in ["1", "2", "3"] {
        assert_eq!(request(&addr, "POST", "/publish?topic=h", m).status, 200);
    }
    let kept = request(&addr, "GET", "/poll?topic=h&since=0", "").json();
    assert_eq!(kept["messages"].as_array().unwrap().len(), 2, "{kept}");
    stop(child);
    // After `serve` too, and the later of two values wins.
    let (child, addr) =
        spawn_exactly(&["--history", "5", "serve", "--history", "1", "--addr", ":0"]);
    for m in ["1", "2"] {
        request(&addr, "POST", "/publish?topic=h", m);
    }
    let kept = request(&addr, "GET", "/poll?topic=h&since=0", "").json();
    assert_eq!(kept["messages"].as_array().unwrap().len(), 1, "{kept}");
    stop(child);
}

/// The `Sec-WebSocket-Extensions` of the `101` to an offer of
/// permessage-deflate, if any.
fn deflate_answer(addr: &str) -> Option<String> {
    let mut c = connect(addr);
    c.write_all(
        b"GET /ws?topic=d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut c, &mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    head.lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_string)
}

/// `--ws-deflate on|off` takes its value (it was a value-less flag that
/// refused `off`).
#[test]
fn ws_deflate_is_switched_on_and_off_from_the_command_line() {
    for (value, agreed) in [(None, true), (Some("on"), true), (Some("off"), false)] {
        let args: Vec<&str> = value.map_or(vec![], |v| vec!["--ws-deflate", v]);
        let (child, addr) = spawn(&args);
        let answer = deflate_answer(&addr);
        assert_eq!(answer.is_some(), agreed, "{value:?}: {answer:?}");
        stop(child);
    }
    assert!(refused(&["--ws-deflate", "maybe"]).contains("on or off"));
}

/// `:0` and `localhost:0` pick a free loopback port.
#[test]
fn an_address_without_a_host_or_with_localhost_listens_on_loopback() {
    for a in [":0", "localhost:0"] {
        let (child, addr) = spawn_exactly(&["--addr", a]);
        assert!(addr.starts_with("127.0.0.1:"), "{a} → {addr}");
        assert!(!addr.ends_with(":0"), "{addr}");
        assert_eq!(request(&addr, "GET", "/stats", "").status, 200);
        stop(child);
    }
}

/// A refused command line: exit status 2 and a message naming the problem.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn zero_limits_and_unknown_units_are_refused_clearly() {
    for flag in [
        "--max-connections",
        "--head-timeout",
        "--idle-timeout",
        "--send-timeout",
        "--heartbeat",
        "--ws-ping",
        "--history",
        "--history-ttl",
        "--max-message",
        "--max-queued-bytes",
    ] {
        let err = refused(&["--addr", "127.0.0.1:0", flag, "0"]);
        assert!(
            err.contains(flag) && err.contains("more than 0"),
            "{flag}: {err}"
        );
    }
    // Below the largest request head a half-received head could stall.
    let err = refused(&["--addr", "127.0.0.1:0", "--max-pipelined-bytes", "8KiB"]);
    assert!(
        err.contains("--max-pipelined-bytes") && err.contains("at least 16KiB"),
        "{err}"
    );
    let err = refused(&["--max-message", "64xb"]);
    assert!(err.contains("KiB") && err.contains("MiB"), "{err}");
    let err = refused(&["--addr", "example.com:80"]);
    assert!(err.contains(":0"), "{err}");
    let err = refused(&["--history", "2", "compare"]);
    assert!(err.contains("before `compare`"), "{err}");
    // Every message must fit one record of the data directory.
    let dir = std::env::temp_dir().join("pushlab-cli-never-created");
    let dir = dir.to_str().unwrap();
    let err = refused(&["--data-dir", dir, "--max-message", "49MiB"]);
    assert!(
        err.contains("--max-message") && err.contains("--data-dir"),
        "{err}"
    );
    assert!(!std::path::Path::new(dir).exists());
    let err = refused(&["--redis", "rediss://h"]);
    assert!(err.contains("--redis") && err.contains("TLS"), "{err}");
    let err = refused(&["--redis", "redis://h", "--data-dir", "/tmp/x"]);
    assert!(err.contains("--data-dir"), "{err}");
    for flag in ["--redis-max-pending", "--redis-timeout"] {
        let err = refused(&["--redis", "redis://h", flag, "0"]);
        assert!(err.contains(flag) && err.contains("more than 0"), "{err}");
    }
}

/// `64kb` is read like `64KiB`, whatever the case.
#[test]
fn sizes_take_units_in_any_case() {
    let (child, addr) = spawn(&["--max-message", "1kb"]);
    let big = "x".repeat(1025);
    assert_eq!(request(&addr, "POST", "/publish?topic=s", &big).status, 413);
    assert_eq!(
        request(&addr, "POST", "/publish?topic=s", &big[..1024]).status,
        200
    );
    stop(child);
}

/// The `epoch` a server reports in `/stats`, on a new connection.
fn epoch_of(addr: &str) -> String {
    let mut s = connect(addr);
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut BufReader::new(s));
    r.json()["epoch"].as_str().unwrap().to_string()
}

#[test]
fn with_reuse_port_two_servers_share_one_port_and_the_kernel_spreads_connections() {
    let (first, addr) = spawn(&["--reuse-port"]);
    // Not without the flag: the port is taken.
    let refused = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["--addr", &addr])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let (second, again) = spawn_exactly(&["--addr", &addr, "--reuse-port"]);
    assert_eq!(again, addr);
    let epochs: std::collections::HashSet<String> = (0..40).map(|_| epoch_of(&addr)).collect();
    assert_eq!(epochs.len(), 2, "both servers answered: {epochs:?}");
    for child in [first, second] {
        signal(&child, libc::SIGTERM);
        assert!(wait_exit(child).success());
    }
}
