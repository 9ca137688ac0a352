//! The sans-I/O boundary, enforced: the codecs (`wire/`), the sessions
//! (`session/`), the hub and its leaf modules, the message log, the engine,
//! the timers and the counters never name `mio` or `std::net`, never read the clock, and never touch a
//! file or the terminal. Only `server/` (and `main.rs`, `lab/`) may.
//!
//! The check reads the source, line by line, skipping comments: a line
//! that names a forbidden item fails the test with its file and line.

use std::fs;
use std::path::{Path, PathBuf};

/// The sans-I/O part of `src/`: folders and single files.
const CORE: &[&str] = &[
    "wire",
    "session",
    "engine",
    "log",
    "hub",
    "hub.rs",
    "auth",
    "redis/script.rs",
    "redis/pipeline.rs",
    "redis/log.rs",
    "redis/log",
    "redis/stream.rs",
    "redis/backoff.rs",
    "file_log/format.rs",
    "file_log/journal.rs",
    "file_log/log.rs",
    "ids.rs",
    "time.rs",
    "timers.rs",
    "stats.rs",
    "clients.rs",
    "record.rs",
    "replay.rs",
];

/// What the core must not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("mio", "the event loop's crate: only server/ owns sockets"),
    ("std::net", "sockets and addresses belong to server/"),
    ("TcpStream", "sockets belong to server/"),
    ("UdpSocket", "sockets belong to server/"),
    ("Instant::now", "the clock: time comes in as an argument"),
    ("SystemTime", "the clock: time comes in as an argument"),
    ("UNIX_EPOCH", "the clock: time comes in as an argument"),
    (
        "std::time::Instant",
        "the clock: use time::Instant, passed in",
    ),
    ("std::fs", "files belong to an I/O driver"),
    ("File::", "files belong to an I/O driver"),
    ("OpenOptions", "files belong to an I/O driver"),
    ("stdout()", "the terminal belongs to server/"),
    ("stderr()", "the terminal belongs to server/"),
    ("println!", "the terminal belongs to server/"),
    ("eprintln!", "the terminal belongs to server/"),
    (
        "std::thread",
        "the core runs on the loop's thread, never sleeps",
    ),
    ("std::env", "configuration comes in through Config"),
];

/// Every `.rs` file under `path` (or `path` itself).
fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let Ok(dir) = fs::read_dir(path) else {
        return;
    };
    for entry in dir.flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The forbidden names `source` uses outside comments, as `(line, name)`.
fn violations(source: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        for (name, _) in FORBIDDEN {
            let hit = code.match_indices(name).any(|(at, _)| {
                // A whole word: `mio` but not `prometheus_mio_x` or `mion`.
                let before = code[..at].chars().next_back();
                let after = code[at + name.len()..].chars().next();
                let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                !is_word(before) && (!is_word(after) || !name.chars().all(char::is_alphanumeric))
            });
            if hit {
                found.push((i + 1, *name));
            }
        }
    }
    found
}

#[test]
fn the_sans_io_core_names_no_socket_clock_or_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for part in CORE {
        rust_files(&src.join(part), &mut files);
    }
    assert!(files.len() > 20, "the core was not found: {files:?}");
    let mut report = Vec::new();
    for file in &files {
        let source = fs::read_to_string(file).unwrap();
        for (line, name) in violations(&source) {
            let why = FORBIDDEN.iter().find(|(n, _)| *n == name).unwrap().1;
            report.push(format!("{}:{line}: `{name}` ({why})", file.display()));
        }
    }
    assert!(
        report.is_empty(),
        "the sans-I/O core does I/O:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_check_sees_imports_and_calls_but_not_comments() {
    let bad = "use mio::net::TcpListener;\nlet t = std::time::Instant::now();\n\
               let f = std::fs::read(\"x\");\nuse std::net::SocketAddr;";
    let names: Vec<&str> = violations(bad).iter().map(|(_, n)| *n).collect();
    for name in [
        "mio",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::time::Instant",
    ] {
        assert!(names.contains(&name), "{name} not seen in {names:?}");
    }
    let fine = "// the mio loop reads Instant::now() once per turn\n\
                let now = ctx.now; // std::net stays in server/\nlet domino = 1;";
    assert_eq!(violations(fine), []);
}
