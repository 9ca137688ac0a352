//! The binary as users run it: the first stdout line names the bound
//! address, `--help` documents every limit, and SIGINT/SIGTERM shut down
//! cleanly — in-flight requests answered, exit status 0.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::{io_timeout, read_response};

fn spawn(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("pushlab listening on http://")
        .and_then(|r| r.trim_end().strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr)
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
        "--publish-token",
        "--allow-origin",
        "--trace",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
