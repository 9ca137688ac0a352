//! Shared helpers for the integration tests: a pushlab server on a free
//! loopback port in a thread of the test process, and small raw-socket
//! clients. Every read has a short timeout, so a hung server fails a test
//! instead of hanging it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pushlab::config::Config;
use pushlab::server::{Handle, Server};

/// How long a test waits for any one thing before failing. Override with
/// `PUSHLAB_TEST_TIMEOUT_MS` on a slow machine.
pub fn io_timeout() -> Duration {
    let ms = std::env::var("PUSHLAB_TEST_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    Duration::from_millis(ms)
}

/// A server running in a background thread; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The publish token the server requires, sent by [`TestServer::publish`].
    pub token: Option<String>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with `config` (its address is replaced by a free port).
    pub fn start(mut config: Config) -> TestServer {
        config.addr = "127.0.0.1:0".parse().unwrap();
        let token = config.publish_token.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pushlab-server".into())
            .spawn(move || {
                let mut server = Server::bind(config).expect("bind");
                tx.send((server.local_addr(), server.handle())).unwrap();
                server.run().expect("event loop");
            })
            .unwrap();
        let (addr, handle) = rx.recv_timeout(io_timeout()).expect("server started");
        TestServer {
            addr,
            token,
            handle,
            thread: Some(thread),
        }
    }

    /// Starts a server with the default configuration.
    pub fn default() -> TestServer {
        TestServer::start(Config::default())
    }

    /// A new raw connection with read/write timeouts.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(io_timeout())).unwrap();
        s.set_write_timeout(Some(io_timeout())).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// `http://addr`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// CPU time the server thread has used so far (needs no descriptor,
    /// so it works when the process has run out of them).
    pub fn cpu_time(&self) -> Duration {
        use std::os::unix::thread::JoinHandleExt;
        let thread = self.thread.as_ref().expect("running").as_pthread_t();
        // SAFETY: the thread is alive (joined only in stop()); both calls
        // only write the out-parameters we pass.
        unsafe {
            let mut clock: libc::clockid_t = 0;
            assert_eq!(
                libc::pthread_getcpuclockid(thread as libc::pthread_t, &mut clock),
                0
            );
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            assert_eq!(libc::clock_gettime(clock, &mut ts), 0);
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        }
    }

    /// Stops the server and waits for its thread.
    pub fn stop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }

    /// One request on a new connection (`Connection: close`); the response.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.request_with(method, path, "", body)
    }

    /// [`TestServer::request`] with more header lines (each ending in CRLF).
    pub fn request_with(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> Response {
        let mut s = self.connect();
        let auth = match &self.token {
            Some(t) if method == "POST" => format!("Authorization: Bearer {t}\r\n"),
            _ => String::new(),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut r = BufReader::new(s);
        if method == "HEAD" {
            // RFC 9110 §9.3.2: the answer to HEAD is a head alone, whatever
            // its Content-Length says.
            let (status, headers) = read_head(&mut r);
            return Response {
                status,
                headers,
                body: Vec::new(),
            };
        }
        read_response(&mut r)
    }

    /// Publishes the bytes `data` to `topic` as a binary message
    /// (`Content-Type: application/octet-stream`); returns the message id.
    pub fn publish_binary(&self, topic: &str, data: &[u8]) -> String {
        let octets = "Content-Type: application/octet-stream\r\n";
        let r = self.request_with("POST", &format!("/publish?topic={topic}"), octets, data);
        assert_eq!(r.status, 200, "publish failed: {}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Publishes `data` to `topic`; returns the message id.
    pub fn publish(&self, topic: &str, data: &str) -> String {
        let r = self.request("POST", &format!("/publish?topic={topic}"), data.as_bytes());
        assert_eq!(r.status, 200, "publish failed: {}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// `GET /stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        self.request("GET", "/stats", b"").json()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Starts the `pushlab` binary with `args` (they should pick a free port:
/// `--addr 127.0.0.1:0`); the child and the address from its first stdout
/// line, "pushlab listening on http://ADDR/".
pub fn spawn_pushlab<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
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

/// Reads one response head (status + headers) from `r`.
pub fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header line");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').expect("header colon");
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    (status, headers)
}

/// Reads one `Content-Length` response from `r` (skipping `100 Continue`).
pub fn read_response(r: &mut impl BufRead) -> Response {
    loop {
        let (status, headers) = read_head(r);
        if status == 100 {
            continue;
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("body");
        return Response {
            status,
            headers,
            body,
        };
    }
}

/// Reads until EOF (for checking the server closed the connection).
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

/// Polls `cond` until it holds or the test timeout passes (for counters
/// that the server updates asynchronously, such as a close noticed later).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < io_timeout(),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Raises the soft open-files limit to the hard limit, for tests that hold
/// thousands of sockets (client and server ends live in this one process).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}
