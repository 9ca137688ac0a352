//! Record and replay, as users run them: `pushlab serve --record FILE`
//! over real loopback sockets (short poll, a long poll released by a
//! publish from a WebSocket, SSE, WebSocket, a connection dropped), then
//! `pushlab replay --compare FILE` reproduces every written byte, and a
//! recording whose output was altered is caught, with the place named.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::{io_timeout, read_head, spawn_pushlab};
use tungstenite::Message;

/// The server under test, killed if the test fails before [`stop`].
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(record: &Path) -> (Running, String) {
    spawn_with(record, &[], Stdio::inherit())
}

fn spawn_with(record: &Path, args: &[&str], stderr: Stdio) -> (Running, String) {
    let head = ["serve", "--addr", "127.0.0.1:0", "--record"].map(std::ffi::OsStr::new);
    let args = head
        .into_iter()
        .chain([record.as_os_str()])
        .chain(args.iter().map(std::ffi::OsStr::new));
    let (child, addr) = spawn_pushlab(args, stderr);
    (Running(Some(child)), addr)
}

fn stop(mut running: Running) {
    let mut child = running.0.take().unwrap();
    // SAFETY: sending SIGTERM to a child process this test started.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let deadline = std::time::Instant::now() + io_timeout();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "server exited with {status}");
            return;
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

/// One request on a fresh connection; the whole answer (`Connection: close`).
fn request(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = connect(addr);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

fn replay(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .arg("replay")
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Reads an SSE stream until `needle` arrives.
fn read_until(r: &mut impl BufRead, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended: {seen}");
        seen.push_str(&line);
    }
    seen
}

/// A session of every transport, recorded; returns the recording's path.
fn record_a_session(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("session.rec");
    let (child, addr) = spawn(&file);

    // Short poll: the cursor to wait after.
    let poll = request(&addr, "GET", "/poll?topic=t&since=0", "");
    assert!(poll.starts_with("HTTP/1.1 200"), "{poll}");
    let next = poll
        .split("\"next\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();

    // SSE: subscribed once its head is back.
    let mut sse = BufReader::new(connect(&addr));
    sse.get_mut()
        .write_all(b"GET /events?topic=t HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_head(&mut sse).0, 200);

    // A long poll waiting after the cursor.
    let mut long_poll = connect(&addr);
    write!(
        long_poll,
        "GET /long-poll?topic=t&since={next}&timeout=30 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();

    // A WebSocket, which publishes a message to all of them.
    let url = format!("ws://{addr}/ws?topic=t");
    let (mut ws, response) = tungstenite::client(url, connect(&addr)).expect("handshake");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("from the websocket")).unwrap();
    let frame = loop {
        match ws.read().unwrap() {
            Message::Text(t) => break t,
            _ => continue,
        }
    };
    assert!(frame.contains("from the websocket"), "{frame}");
    read_until(&mut sse, "data: from the websocket");
    let mut released = String::new();
    long_poll.read_to_string(&mut released).unwrap();
    assert!(released.contains("from the websocket"), "{released}");

    // A publish over HTTP, then an SSE stream dropped mid-stream and a
    // request dropped half-sent.
    let published = request(&addr, "POST", "/publish?topic=t", "over http");
    assert!(published.starts_with("HTTP/1.1 200"), "{published}");
    read_until(&mut sse, "over http");
    drop(sse);
    let mut half = connect(&addr);
    half.write_all(b"GET /poll?topic=t HTTP/1.1\r\nHo").unwrap();
    drop(half);
    ws.close(None).unwrap();
    while ws.read().is_ok() {}

    let poll = request(&addr, "GET", "/poll?topic=t&since=0", "");
    assert!(poll.contains("over http"), "{poll}");
    stop(child);
    file
}

/// Parses "N inputs, C connections, W writes, B bytes" from the verdict.
fn figure(out: &str, unit: &str) -> u64 {
    let before = out.split(&format!(" {unit}")).next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_replay_reproduces_every_byte_of_a_recorded_session_and_catches_tampering() {
    let dir = tempdir();
    let file = record_a_session(&dir);

    let out = replay(&["--compare"], &file);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("every write identical"), "{text}");
    assert!(!text.contains("cut short"), "{text}");
    assert!(figure(&text, "inputs") > 20, "{text}");
    assert!(figure(&text, "connections") >= 7, "{text}");
    assert!(figure(&text, "bytes") > 1000, "{text}");

    // The readable form: every transport's bytes, both ways.
    let out = replay(&[], &file);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for needle in [
        "GET /poll?topic=t",
        "GET /long-poll?topic=t",
        "GET /events?topic=t",
        "HTTP/1.1 101 Switching Protocols",
        "text/event-stream",
        "from the websocket",
        "< end of input",
        "closed",
    ] {
        assert!(
            text.contains(needle),
            "no {needle:?} in the replay:\n{text}"
        );
    }

    // One byte of recorded output changed: found, and where.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = find(&bytes, b"\"next\":\"").expect("a poll body in the recording") + 8;
    bytes[at] ^= 0x01;
    let tampered = dir.join("tampered.rec");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = replay(&["--compare"], &tampered);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("DIFFERENCE at input"), "{text}");
    assert!(text.contains("differs"), "{text}");

    // A recording cut short (the server killed, the disk full): replayed
    // up to where it ends, and said so.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.join("cut.rec");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = replay(&["--check"], &cut);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cut short"), "{text}");

    // Not a recording at all.
    let out = replay(&[], Path::new("Cargo.toml"));
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recording_ends_at_its_limit_and_serving_goes_on() {
    let dir = tempdir().join("limit");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("limited.rec");
    let (child, addr) = spawn_with(&file, &["--record-limit", "2KiB"], Stdio::null());
    for i in 0..20 {
        let answer = request(&addr, "POST", "/publish?topic=t", &format!("message {i}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    stop(child);
    // Ended between two inputs, past 2 KiB by at most one input's effects.
    let size = std::fs::metadata(&file).unwrap().len();
    assert!((2048..2048 + 1024).contains(&size), "{size} bytes");
    let out = replay(&["--compare"], &file);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ended at its --record-limit"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_ends_the_recording_not_the_server() {
    // /dev/full: every write fails with ENOSPC.
    let (mut child, addr) = spawn_with(Path::new("/dev/full"), &[], Stdio::piped());
    let answer = request(&addr, "GET", "/poll?topic=t&since=0", "");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The first flush (within a second) fails: said on stderr, once.
    let mut stderr = BufReader::new(child.0.as_mut().unwrap().stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stderr.read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(io_timeout()).expect("a message on stderr");
    assert!(line.contains("recording to /dev/full ended"), "{line}");
    assert!(line.contains("serving goes on"), "{line}");
    let answer = request(&addr, "GET", "/poll?topic=t&since=0", "");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop(child);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pushlab-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
