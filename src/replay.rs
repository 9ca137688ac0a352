//! `pushlab replay FILE`: runs a fresh [`Engine`] through a recording made
//! with `pushlab serve --record FILE` — same configuration, epoch and hash
//! key, the recorded instants as its clock, the recorded inputs in order,
//! and an [`Io`] that answers every write as the kernel did — and prints
//! every byte it writes, or (`--compare`) checks each write against the
//! bytes recorded and stops at the first difference.
//!
//! Nothing here touches a socket or the clock: a replay is the engine
//! alone, so a debugger can stop anywhere in it (docs/replay.md).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IoSlice, Write};

use crate::config::Config;
use crate::engine::{ConnId, Engine, Input, Io, Peer, Written};
use crate::log::LogEvent;
use crate::record::{Decoder, Effect, End, FormatError, Header, Next, Record};
use crate::time::Instant;

/// A recording, read and checked.
pub struct Recording {
    pub header: Header,
    records: Vec<Record>,
    /// How the file ended: an end record, or cut short (at this offset).
    pub end: Option<End>,
    pub cut_at: Option<usize>,
}

impl Recording {
    pub fn parse(bytes: &[u8]) -> Result<Recording, FormatError> {
        let (header, mut d) = Decoder::new(bytes)?;
        let mut records = Vec::new();
        let mut end = None;
        let mut cut_at = None;
        loop {
            let offset = d.offset();
            match d.next_record()? {
                Next::Record(Record::End(e)) => {
                    end = Some(e);
                    if d.offset() != bytes.len() {
                        return Err(FormatError {
                            offset: d.offset(),
                            what: "bytes after the end record".into(),
                        });
                    }
                    break;
                }
                Next::Record(r) => records.push(r),
                Next::Eof => break,
                Next::Cut => {
                    cut_at = Some(offset);
                    break;
                }
            }
        }
        if end.is_none() && cut_at.is_none() {
            cut_at = Some(bytes.len());
        }
        Ok(Recording {
            header,
            records,
            end,
            cut_at,
        })
    }

    /// Inputs in the recording.
    pub fn inputs(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, Record::Accepted { .. } | Record::Input { .. }))
            .count()
    }
}

/// How to replay.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Check every write against the recorded bytes; print only the verdict.
    pub compare: bool,
}

/// What a replay went through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub inputs: usize,
    pub connections: u64,
    pub writes: usize,
    /// Bytes the kernel took, all checked against the recording.
    pub bytes: u64,
    /// The recording was cut short: the replay stopped where it ends.
    pub cut: bool,
}

/// The first point where the replay did not do what the recording says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The input during which it happened (1 = the first).
    pub input: usize,
    pub at: Instant,
    pub what: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input {} at {}: {}",
            self.input,
            seconds(self.at),
            self.what
        )
    }
}

/// Replays `rec` with `config` (made from the recording's arguments).
pub fn run(
    rec: &Recording,
    config: Config,
    opts: Options,
    out: &mut dyn Write,
) -> Result<Summary, Difference> {
    let h = &rec.header;
    let mut engine = Engine::new_keyed(config, &h.epoch, h.hash_key, Instant::ZERO)
        .with_wall_origin(h.started_unix_ms);
    let mut io = ReplayIo {
        records: &rec.records,
        pos: 0,
        cut: rec.cut_at.is_some(),
        exhausted: false,
        print: !opts.compare,
        out,
        serials: HashMap::new(),
        diff: None,
        at: Instant::ZERO,
        summary: Summary::default(),
    };
    let mut input_no = 0;
    while let Some(record) = io.records.get(io.pos) {
        io.pos += 1;
        input_no += 1;
        match record {
            Record::Accepted { at, conn, peer } => {
                io.at = *at;
                let vacant = engine.vacant();
                if vacant != *conn {
                    io.differ(format!(
                        "the shell registered the connection as slot {conn}, the engine offers {vacant}"
                    ));
                } else {
                    engine.handle(*at, accepted(peer), &mut io);
                    if engine.session(*conn).is_some() {
                        io.summary.connections += 1;
                        let serial = io.summary.connections;
                        io.serials.insert(*conn, serial);
                        io.line(format_args!("#{serial} accepted from {peer}"));
                    } else {
                        io.line(format_args!("accept from {peer} refused"));
                    }
                }
            }
            Record::Input { at, input } => {
                io.at = *at;
                io.show_input(input);
                engine.handle(*at, input.clone(), &mut io);
                if *input == Input::EndTurn {
                    // The shell reads these again within the turn; the reads
                    // are inputs of their own, recorded as they happened.
                    engine.take_unread();
                }
                if takes_log_output(input) {
                    // The shell hands the log's work to its driver here;
                    // what the driver did comes back as recorded inputs.
                    // Taking it matters: a Redis log counts a command as
                    // sent (a reply may match it) only once it is taken,
                    // and forms its batches of appends then.
                    while engine.poll_log_output().is_some() {}
                }
            }
            Record::Effect(e) => io.differ(format!(
                "the recording has {} here, which the replay did not do",
                describe(e)
            )),
            Record::End(_) => break,
        }
        if io.exhausted {
            io.summary.cut = true;
            break;
        }
        if let Some(what) = io.diff.take() {
            return Err(Difference {
                input: input_no,
                at: io.at,
                what,
            });
        }
        io.summary.inputs = input_no;
    }
    io.summary.cut |= rec.cut_at.is_some();
    Ok(io.summary)
}

/// Whether the shell takes the log's output right after `input`: at the
/// end of every turn (`Server::flush_log`) and after each event of a log's
/// connections (`Server::feed_redis`); a disk writer's reports wait for the
/// end of the turn.
fn takes_log_output(input: &Input) -> bool {
    match input {
        Input::EndTurn => true,
        Input::Log(event) => !matches!(event, LogEvent::Disk(_)),
        _ => false,
    }
}

/// The engine's input for a connection accepted from `peer` (recorded as
/// `ip:port`; the engine counts connections per address).
fn accepted(peer: &str) -> Input {
    // `192.0.2.7:5000` → `192.0.2.7`, `[2001:db8::1]:5000` → `2001:db8::1`.
    let host = peer.rsplit_once(':').map_or(peer, |(host, _port)| host);
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    Input::Accepted {
        peer: Peer { ip: ip.into() },
    }
}

/// The kernel, as recorded.
struct ReplayIo<'a> {
    records: &'a [Record],
    pos: usize,
    /// The recording was cut short.
    cut: bool,
    /// It ran out in the middle of an input's effects (only when cut).
    exhausted: bool,
    print: bool,
    out: &'a mut dyn Write,
    /// Connection slot → serial number (for people: slots are reused).
    serials: HashMap<ConnId, u64>,
    diff: Option<String>,
    at: Instant,
    summary: Summary,
}

impl ReplayIo<'_> {
    fn differ(&mut self, what: String) {
        if self.diff.is_none() {
            self.diff = Some(what);
        }
    }

    fn name(&self, conn: ConnId) -> String {
        match self.serials.get(&conn) {
            Some(s) => format!("#{s}"),
            None => format!("slot {conn}"),
        }
    }

    fn line(&mut self, what: std::fmt::Arguments<'_>) {
        if self.print {
            let _ = writeln!(self.out, "{:>12}  {what}", seconds(self.at));
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        if self.print {
            let _ = self.out.write_all(escape_lines(bytes, 14).as_bytes());
        }
    }

    fn show_input(&mut self, input: &Input) {
        match input {
            Input::Read { conn, bytes, .. } => {
                let name = self.name(*conn);
                self.line(format_args!("{name} < read {} bytes", bytes.len()));
                self.bytes(bytes);
            }
            Input::Eof { conn } => {
                let name = self.name(*conn);
                self.line(format_args!("{name} < end of input"));
            }
            Input::Reset { conn } => {
                let name = self.name(*conn);
                self.line(format_args!("{name} < reset"));
            }
            Input::Shutdown => self.line(format_args!("shutdown")),
            Input::AcceptError => self.line(format_args!("accept failed")),
            _ => {}
        }
    }

    /// The next recorded effect, if the engine's call matches it.
    fn expect(&mut self, what: &str, conn: ConnId, ok: impl Fn(&Effect) -> bool) -> Option<Effect> {
        if self.diff.is_some() || self.exhausted {
            return None;
        }
        match self.records.get(self.pos) {
            Some(Record::Effect(e)) if ok(e) => {
                self.pos += 1;
                Some(e.clone())
            }
            None if self.cut => {
                self.exhausted = true;
                None
            }
            other => {
                let recorded = match other {
                    Some(Record::Effect(e)) => describe(e),
                    Some(Record::End(_)) | None => "the end of the recording".into(),
                    Some(_) => "the next input".into(),
                };
                let name = self.name(conn);
                self.differ(format!(
                    "the replay asked to {what} {name}; the recording has {recorded}"
                ));
                None
            }
        }
    }
}

impl Io for ReplayIo<'_> {
    fn write(&mut self, conn: ConnId, bufs: &[IoSlice<'_>]) -> Written {
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        let Some(Effect::Write {
            offered: rec_offered,
            result,
            taken,
            ..
        }) = self.expect(
            "write",
            conn,
            |e| matches!(e, Effect::Write { conn: c, .. } if *c == conn),
        )
        else {
            return Written::Failed;
        };
        let name = self.name(conn);
        self.summary.writes += 1;
        // The bytes this replay offered, as far as the kernel took them.
        let mut mine = Vec::with_capacity(taken.len());
        for b in bufs {
            let k = (taken.len() - mine.len()).min(b.len());
            mine.extend_from_slice(&b[..k]);
        }
        if let Some(i) = (0..taken.len()).find(|&i| mine.get(i) != taken.get(i)) {
            self.differ(format!(
                "write to {name}: byte {i} of the {} the kernel took differs\n  recorded: {}\n  replayed: {}",
                taken.len(),
                context(&taken, i),
                context(&mine, i)
            ));
            return Written::Failed;
        }
        if offered != rec_offered {
            self.differ(format!(
                "write to {name}: the replay offered {offered} bytes, the recording {rec_offered}"
            ));
            return Written::Failed;
        }
        self.summary.bytes += taken.len() as u64;
        match result {
            Written::Bytes(n) => {
                let partial = if n < offered {
                    format!(" (of {offered})")
                } else {
                    String::new()
                };
                self.line(format_args!("{name} > wrote {n} bytes{partial}"));
                self.bytes(&taken);
            }
            other => self.line(format_args!("{name} > write: {other:?}")),
        }
        result
    }

    fn want_writable(&mut self, conn: ConnId, on: bool) -> bool {
        match self.expect(
            if on {
                "wait for writable"
            } else {
                "stop waiting for writable"
            },
            conn,
            |e| matches!(e, Effect::WantWritable { conn: c, on: o, .. } if *c == conn && *o == on),
        ) {
            Some(Effect::WantWritable { ok, .. }) => ok,
            _ => true,
        }
    }

    fn shutdown_write(&mut self, conn: ConnId) {
        if self
            .expect(
                "shut the write side of",
                conn,
                |e| matches!(e, Effect::ShutdownWrite { conn: c } if *c == conn),
            )
            .is_some()
        {
            let name = self.name(conn);
            self.line(format_args!("{name} > end of output (half-close)"));
        }
    }

    fn close(&mut self, conn: ConnId, unsent: usize) {
        let recorded = self.expect(
            "close",
            conn,
            |e| matches!(e, Effect::Close { conn: c, .. } if *c == conn),
        );
        if let Some(Effect::Close { unsent: u, .. }) = recorded {
            let name = self.name(conn);
            if u != unsent {
                self.differ(format!(
                    "close of {name}: {unsent} bytes left unsent, the recording says {u}"
                ));
            }
            self.line(format_args!("{name} closed"));
        }
        self.serials.remove(&conn);
    }
}

fn describe(e: &Effect) -> String {
    match e {
        Effect::Write {
            conn,
            offered,
            result,
            ..
        } => format!("a write of {offered} bytes to slot {conn} ({result:?})"),
        Effect::WantWritable { conn, on, .. } => {
            format!(
                "a request to {} slot {conn}",
                if *on {
                    "wait for writable"
                } else {
                    "stop waiting for writable"
                }
            )
        }
        Effect::ShutdownWrite { conn } => format!("a half-close of slot {conn}"),
        Effect::Close { conn, .. } => format!("a close of slot {conn}"),
    }
}

/// `12.345678s`.
fn seconds(at: Instant) -> String {
    let us = at.as_micros();
    format!("{}.{:06}s", us / 1_000_000, us % 1_000_000)
}

/// A few escaped bytes around `i`.
fn context(bytes: &[u8], i: usize) -> String {
    let from = i.saturating_sub(24);
    let to = (i + 24).min(bytes.len());
    let mut s = String::new();
    if from > 0 {
        s.push('…');
    }
    s.push('"');
    s.push_str(&escape(&bytes[from..to.max(from)]));
    s.push('"');
    if to < bytes.len() {
        s.push('…');
    }
    if i >= bytes.len() {
        s.push_str(" (ends here)");
    }
    s
}

/// Printable ASCII as is; `\r`, `\n`, `\t`, `\\`, `"` and every other byte
/// escaped (`\x81`).
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

/// [`escape`]d, one line per `\n` in the bytes, each indented.
fn escape_lines(bytes: &[u8], indent: usize) -> String {
    let mut s = String::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let _ = writeln!(s, "{:indent$}{}", "", escape(line));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_text_readable_and_shows_every_other_byte() {
        assert_eq!(escape(b"GET / HTTP/1.1\r\n"), "GET / HTTP/1.1\\r\\n");
        assert_eq!(escape(&[0x81, 0x05, b'h']), "\\x81\\x05h");
        assert_eq!(escape(b"a\"b\\"), "a\\\"b\\\\");
        assert_eq!(escape_lines(b"a\nb", 2), "  a\\n\n  b\n");
    }
}
