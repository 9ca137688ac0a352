//! `--data-dir`: the file log behind the log seam, end to end. A publish is
//! answered once its record is on disk, so a server killed with SIGKILL at
//! any moment comes back with every message it acknowledged, under the
//! same ids; cursors from before the restart keep working; one directory
//! serves one server at a time.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{io_timeout, read_response, spawn_pushlab, TestServer};
use pushlab::config::Config;

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "pushlab-durable-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the binary on a free port with `--data-dir dir`; the child and
/// the address it listens on.
fn spawn(dir: &Path) -> (Child, String) {
    // Every message a test publishes stays in the history (a fast disk
    // acknowledges well over the default 1,024 per topic in the kill test):
    // what comes back is then every acknowledged message, not the newest.
    let args = [
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--history",
        "1000000",
        "--data-dir",
    ];
    let args = args
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([dir.as_os_str()]);
    spawn_pushlab(args, Stdio::piped())
}

/// One request on a new connection; the status and body.
fn request(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(io_timeout())).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body.as_bytes()).ok()?;
    let mut all = Vec::new();
    BufReader::new(s).read_to_end(&mut all).ok()?;
    if all.is_empty() {
        // The server was killed before it answered.
        return None;
    }
    // A response cut short by the kill is no answer either.
    let r = std::panic::catch_unwind(|| read_response(&mut &all[..])).ok()?;
    Some((r.status, r.text()))
}

fn id_of(reply: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(reply).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn seq_of(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

fn kill9(child: &mut Child) {
    // SAFETY: a signal to a child this test started.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) },
        0
    );
    child.wait().unwrap();
}

/// Messages of topic `k` after `since`, as (id, data), and `missed`.
fn poll(addr: &str, since: &str) -> (Vec<(String, String)>, u64, bool) {
    let (status, body) = request(addr, "GET", &format!("/poll?topic=k&since={since}"), "").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let messages = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().into(),
                m["data"].as_str().unwrap().into(),
            )
        })
        .collect();
    (
        messages,
        v["missed"].as_u64().unwrap(),
        v["reset"].as_bool().unwrap(),
    )
}

#[test]
fn a_server_killed_mid_publish_comes_back_with_every_acknowledged_message() {
    let dir = TempDir::new("kill");
    let mut acked: Vec<(String, String)> = Vec::new();
    // A subscriber's cursor: the newest id it has read.
    let mut cursor = String::from("0");
    let mut xorshift = 0x9E37_79B9u32 ^ std::process::id();
    for round in 0..20 {
        let (mut child, addr) = spawn(&dir.0);
        // Everything acknowledged before is back, in id order, under the
        // same id.
        let (all, _, _) = poll(&addr, "0");
        let seqs: Vec<u64> = all.iter().map(|(id, _)| seq_of(id)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        for message in &acked {
            assert!(all.contains(message), "round {round}: lost {message:?}");
        }
        // The subscriber resumes by cursor: what it had not read, nothing
        // missed, no reset.
        let (newer, missed, reset) = poll(&addr, &cursor);
        assert_eq!((missed, reset), (0, false), "round {round} from {cursor}");
        let expected: Vec<_> = all
            .iter()
            .filter(|(id, _)| cursor == "0" || seq_of(id) > seq_of(&cursor))
            .cloned()
            .collect();
        assert_eq!(newer, expected);
        if let Some((id, _)) = all.last() {
            cursor = id.clone();
        }
        // Three publishers flood the server; it is killed at a random
        // moment among their publishes.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (addr, stop) = (addr.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let data = format!("r{round}-w{w}-{i}");
                        match request(&addr, "POST", "/publish?topic=k", &data) {
                            Some((200, reply)) => got.push((id_of(&reply), data)),
                            Some((status, reply)) => panic!("{status} {reply}"),
                            None => break,
                        }
                    }
                    got
                })
            })
            .collect();
        xorshift ^= xorshift << 13;
        xorshift ^= xorshift >> 17;
        xorshift ^= xorshift << 5;
        std::thread::sleep(std::time::Duration::from_millis(
            5 + u64::from(xorshift % 60),
        ));
        kill9(&mut child);
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            acked.extend(w.join().unwrap());
        }
    }
    assert!(
        acked.len() > 100,
        "the publishers got answers: {}",
        acked.len()
    );
    // The last restart: numbering goes on after everything stored.
    let (mut child, addr) = spawn(&dir.0);
    let (status, reply) = request(&addr, "POST", "/publish?topic=k", "after").unwrap();
    assert_eq!(status, 200);
    let newest = acked.iter().map(|(id, _)| seq_of(id)).max().unwrap();
    assert!(seq_of(&id_of(&reply)) > newest, "{reply} after {newest}");
    let epochs: std::collections::HashSet<&str> = acked
        .iter()
        .map(|(id, _)| id.rsplit_once('-').unwrap().0)
        .collect();
    assert_eq!(epochs.len(), 1, "one epoch across restarts: {epochs:?}");
    kill9(&mut child);
}

/// The directory's one segment file.
fn segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Stderr of a child, once it was killed.
fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn a_torn_or_damaged_tail_is_cut_at_start_and_said_so() {
    let dir = TempDir::new("tail");
    let (mut child, addr) = spawn(&dir.0);
    for i in 0..10 {
        let (status, _) = request(&addr, "POST", "/publish?topic=k", &format!("m{i}")).unwrap();
        assert_eq!(status, 200);
    }
    kill9(&mut child);
    let seg = segment(&dir.0);
    let good = std::fs::read(&seg).unwrap();

    // A torn write: half a record's worth of bytes after the last one.
    let mut torn = good.clone();
    torn.extend_from_slice(&good[good.len() - 20..good.len() - 8]);
    std::fs::write(&seg, &torn).unwrap();
    let (mut child, addr) = spawn(&dir.0);
    let (all, _, _) = poll(&addr, "0");
    assert_eq!(all.len(), 10, "nothing acknowledged is cut");
    kill9(&mut child);
    let said = stderr_of(&mut child);
    assert!(said.contains("cut a torn tail"), "{said}");
    assert_eq!(std::fs::read(&seg).unwrap(), good, "the file is cut back");

    // A damaged last record (a flipped byte in its data): it fails its
    // checksum and goes; the nine before it stay.
    let mut damaged = good.clone();
    let at = damaged.len() - 1;
    damaged[at] ^= 0xff;
    std::fs::write(&seg, &damaged).unwrap();
    let (mut child, addr) = spawn(&dir.0);
    let (all, _, _) = poll(&addr, "0");
    let datas: Vec<&str> = all.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(datas, (0..9).map(|i| format!("m{i}")).collect::<Vec<_>>());
    // The next message takes the number of the one that was cut.
    let (_, reply) = request(&addr, "POST", "/publish?topic=k", "again").unwrap();
    assert_eq!(seq_of(&id_of(&reply)), 10);
    kill9(&mut child);
    let said = stderr_of(&mut child);
    assert!(said.contains("cut a torn tail"), "{said}");
}

#[test]
fn a_cursor_from_before_a_restart_resumes_exactly() {
    let dir = TempDir::new("cursor");
    let config = || Config {
        data_dir: Some(dir.0.clone()),
        ..Config::default()
    };
    let mut first = TestServer::start(config());
    first.publish("c", "one");
    let cursor = first.publish("c", "two");
    first.publish("c", "three");
    first.stop();
    let second = TestServer::start(config());
    let r = second.request("GET", &format!("/poll?topic=c&since={cursor}"), b"");
    assert_eq!(r.status, 200);
    let body = r.json();
    let datas: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .collect();
    assert_eq!(datas, ["three"], "{body}");
    assert_eq!(
        (body["missed"].as_u64(), body["reset"].as_bool()),
        (Some(0), Some(false))
    );
}

#[test]
fn one_directory_serves_one_server_at_a_time() {
    let dir = TempDir::new("lock");
    let (mut first, _) = spawn(&dir.0);
    let out = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another pushlab"), "{stderr}");
    kill9(&mut first);
}

#[test]
fn a_binary_message_comes_back_after_a_restart_as_bytes() {
    let dir = TempDir::new("binary");
    let config = || Config {
        data_dir: Some(dir.0.clone()),
        ..Config::default()
    };
    let bytes = [0u8, 0xff, b'\n', 0x80];
    let mut first = TestServer::start(config());
    first.publish("b", "text");
    let id = first.publish_binary("b", &bytes);
    first.stop();

    let second = TestServer::start(config());
    let r = second.request("GET", "/poll?topic=b&since=0", b"");
    let body = r.json();
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"topic": "b", "id": body["messages"][0]["id"], "data": "text"},
            {"topic": "b", "id": id, "encoding": "base64", "data": "AP8KgA=="},
        ])
    );
    // Its kind came back with it: a WebSocket gets the bytes in a binary
    // frame, not their base64 in a text one.
    let (mut ws, _) = tungstenite::client(
        format!("ws://{}/ws?topic=b&since=0", second.addr),
        second.connect(),
    )
    .unwrap();
    assert!(matches!(ws.read().unwrap(), tungstenite::Message::Text(_)));
    let tungstenite::Message::Binary(payload) = ws.read().unwrap() else {
        panic!("a binary frame");
    };
    assert!(payload.ends_with(&bytes));
    assert!(String::from_utf8_lossy(&payload).contains(&id));
}
