//! The recording format of `pushlab serve --record FILE`: every input the
//! shell gave the engine, with its instant, and every effect the engine
//! asked of the shell with what the kernel answered — enough for
//! `pushlab replay` to run a fresh engine through the same session and
//! check that it writes the same bytes. Pure encoding and decoding: the
//! shell (`server/`) writes the file, `replay` reads it. See docs/replay.md.
//!
//! # Format, version 1
//!
//! Integers are LEB128 varints (`u`) unless said otherwise; a string or a
//! byte string is a varint length then the bytes.
//!
//! ```text
//! file    = magic version header record* [end]
//! magic   = "pushlab-recording\n"            (18 bytes)
//! version = u (1)
//! header  = epoch:str  hash_key:u64-LE  started_unix_ms:u  argc:u  arg:str*
//! record  = tag:u8 body
//! ```
//!
//! `args` are the command line's arguments after the program name (a
//! replay parses them again to rebuild the configuration); `hash_key` keys
//! the hub's hashes (chosen at random by the shell, see
//! [`crate::log::History::set_hash_key`]).
//!
//! Inputs carry `dt:u`, the microseconds since the previous input (the
//! first: since the engine's start, `Instant::ZERO`):
//!
//! | tag | input | body after `dt` |
//! | --- | --- | --- |
//! | 1 | accepted | `conn:u` (the id the shell registered) `peer:str` |
//! | 2 | accept failed | — |
//! | 3 | bytes read | `conn:u drained:u8 bytes:str` |
//! | 4 | read said `WouldBlock` | `conn:u` |
//! | 5 | reading stopped | `conn:u budget:u8` |
//! | 6 | end of input | `conn:u` |
//! | 7 | reset | `conn:u` |
//! | 8 | writable | `conn:u` |
//! | 9 | time passed (fire deadlines) | — |
//! | 10 | end of the turn | — |
//! | 11 | shutdown | — |
//! | 12 | the log's driver reported | `kind:u8` then 0 received `link:u8 bytes:str`; 1 durable `generation:u upto:u`; 2 up `link:u8`; 3 down `link:u8 why:str`; 4 disk failed `generation:u from:u full:u8 why:str` |
//!
//! Effects follow the input during which the engine made them, in order:
//!
//! | tag | effect | body |
//! | --- | --- | --- |
//! | 129 | write | `conn:u offered:u result:u8 taken:str` — result 0 = the kernel took `taken` (the first bytes offered), 1 = `WouldBlock`, 2 = `Interrupted`, 3 = failed |
//! | 130 | want writable | `conn:u on:u8 ok:u8` |
//! | 131 | shut the write side | `conn:u` |
//! | 132 | close | `conn:u unsent:u` |
//!
//! The file ends with `255 reason:u8` (0: the server stopped, 1: the
//! recording reached `--record-limit`). A file without it was cut short (the
//! process was killed, or the disk filled up); a replay runs what is there.

use std::io::IoSlice;

use crate::engine::{ConnId, Input, Written};
use crate::file_log::disk::{Completion, DiskError};
use crate::log::LogEvent;
use crate::time::Instant;

/// The first bytes of every recording.
pub const MAGIC: &[u8] = b"pushlab-recording\n";
/// The format version this build writes and reads.
pub const VERSION: u64 = 1;

const ACCEPTED: u8 = 1;
const ACCEPT_ERROR: u8 = 2;
const READ: u8 = 3;
const READ_DRAINED: u8 = 4;
const READ_STOPPED: u8 = 5;
const EOF: u8 = 6;
const RESET: u8 = 7;
const WRITABLE: u8 = 8;
const TIMEOUT: u8 = 9;
const END_TURN: u8 = 10;
const SHUTDOWN: u8 = 11;
const LOG: u8 = 12;
const WRITE: u8 = 129;
const WANT_WRITABLE: u8 = 130;
const SHUTDOWN_WRITE: u8 = 131;
const CLOSE: u8 = 132;
const END: u8 = 255;

/// What a replay needs before the first input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The hub's epoch (the `E` of every id `E-N`).
    pub epoch: String,
    /// The key of the hub's keyed hashes.
    pub hash_key: u64,
    /// Wall-clock time of `Instant::ZERO`, in ms since 1970 (token expiry
    /// is checked against it).
    pub started_unix_ms: u64,
    /// `pushlab`'s arguments (after the program name).
    pub args: Vec<String>,
}

/// Why a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The server stopped.
    Stopped,
    /// The file reached `--record-limit`.
    Limit,
}

/// One thing the engine asked of the shell, with the kernel's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Write {
        conn: ConnId,
        offered: usize,
        result: Written,
        /// The bytes the kernel took (empty unless `result` is `Bytes`).
        taken: Vec<u8>,
    },
    WantWritable {
        conn: ConnId,
        on: bool,
        ok: bool,
    },
    ShutdownWrite {
        conn: ConnId,
    },
    Close {
        conn: ConnId,
        unsent: usize,
    },
}

/// One record of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A connection accepted as `conn` from `peer`.
    Accepted {
        at: Instant,
        conn: ConnId,
        peer: String,
    },
    /// Any other input.
    Input {
        at: Instant,
        input: Input,
    },
    Effect(Effect),
    End(End),
}

/// Encodes records into a byte buffer (the shell writes it to the file).
pub struct Encoder {
    /// The instant of the last input.
    last: Instant,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            last: Instant::ZERO,
        }
    }

    pub fn header(&mut self, out: &mut Vec<u8>, h: &Header) {
        out.extend_from_slice(MAGIC);
        put_u(out, VERSION);
        put_str(out, h.epoch.as_bytes());
        out.extend_from_slice(&h.hash_key.to_le_bytes());
        put_u(out, h.started_unix_ms);
        put_u(out, h.args.len() as u64);
        for a in &h.args {
            put_str(out, a.as_bytes());
        }
    }

    fn input_head(&mut self, out: &mut Vec<u8>, tag: u8, at: Instant) {
        out.push(tag);
        // Instants never go back; a clock that did is recorded as 0.
        put_u(out, at.as_micros().saturating_sub(self.last.as_micros()));
        self.last = self.last.max(at);
    }

    pub fn accepted(&mut self, out: &mut Vec<u8>, at: Instant, conn: ConnId, peer: &str) {
        self.input_head(out, ACCEPTED, at);
        put_u(out, conn as u64);
        put_str(out, peer.as_bytes());
    }

    /// Bytes read: the same record as `Input::Read`, without owning them.
    pub fn read(
        &mut self,
        out: &mut Vec<u8>,
        at: Instant,
        conn: ConnId,
        bytes: &[u8],
        drained: bool,
    ) {
        self.input_head(out, READ, at);
        put_u(out, conn as u64);
        out.push(drained as u8);
        put_str(out, bytes);
    }

    /// Any input. An accept is better written with [`Encoder::accepted`],
    /// which records the slot the shell chose and the peer's address.
    pub fn input(&mut self, out: &mut Vec<u8>, at: Instant, input: &Input) {
        match input {
            Input::Accepted { peer } => self.accepted(out, at, usize::MAX, &peer.ip),
            Input::AcceptError => self.input_head(out, ACCEPT_ERROR, at),
            Input::Read {
                conn,
                bytes,
                drained,
            } => self.read(out, at, *conn, bytes, *drained),
            Input::ReadDrained { conn } => self.conn_input(out, READ_DRAINED, at, *conn),
            Input::ReadStopped { conn, budget } => {
                self.conn_input(out, READ_STOPPED, at, *conn);
                out.push(*budget as u8);
            }
            Input::Eof { conn } => self.conn_input(out, EOF, at, *conn),
            Input::Reset { conn } => self.conn_input(out, RESET, at, *conn),
            Input::Writable { conn } => self.conn_input(out, WRITABLE, at, *conn),
            Input::Timeout => self.input_head(out, TIMEOUT, at),
            Input::EndTurn => self.input_head(out, END_TURN, at),
            Input::Shutdown => self.input_head(out, SHUTDOWN, at),
            Input::Log(event) => {
                self.input_head(out, LOG, at);
                match event {
                    LogEvent::Received { link, bytes } => {
                        out.push(0);
                        out.push(*link);
                        put_str(out, bytes);
                    }
                    LogEvent::Disk(Completion::Durable { generation, upto }) => {
                        out.push(1);
                        put_u(out, *generation);
                        put_u(out, *upto);
                    }
                    LogEvent::Disk(Completion::Failed {
                        generation,
                        from,
                        error,
                    }) => {
                        out.push(4);
                        put_u(out, *generation);
                        put_u(out, *from);
                        let (full, why) = match error {
                            DiskError::Full(why) => (1, why),
                            DiskError::Failed(why) => (0, why),
                        };
                        out.push(full);
                        put_str(out, why.as_bytes());
                    }
                    LogEvent::Up { link } => {
                        out.push(2);
                        out.push(*link);
                    }
                    LogEvent::Down { link, why } => {
                        out.push(3);
                        out.push(*link);
                        put_str(out, why.as_bytes());
                    }
                }
            }
        }
    }

    fn conn_input(&mut self, out: &mut Vec<u8>, tag: u8, at: Instant, conn: ConnId) {
        self.input_head(out, tag, at);
        put_u(out, conn as u64);
    }

    /// A write of `bufs` to which the kernel answered `result`.
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        conn: ConnId,
        bufs: &[IoSlice<'_>],
        result: Written,
    ) {
        out.push(WRITE);
        put_u(out, conn as u64);
        put_u(out, bufs.iter().map(|b| b.len() as u64).sum());
        let (code, mut n) = match result {
            Written::Bytes(n) => (0, n),
            Written::WouldBlock => (1, 0),
            Written::Interrupted => (2, 0),
            Written::Failed => (3, 0),
        };
        out.push(code);
        put_u(out, n as u64);
        for b in bufs {
            if n == 0 {
                break;
            }
            let k = n.min(b.len());
            out.extend_from_slice(&b[..k]);
            n -= k;
        }
    }

    pub fn effect(&mut self, out: &mut Vec<u8>, effect: &Effect) {
        match effect {
            Effect::Write {
                conn,
                offered,
                result,
                taken,
            } => {
                // Offer `taken`, then pad the offer up to `offered`.
                let pad = vec![0; offered.saturating_sub(taken.len())];
                self.write(
                    out,
                    *conn,
                    &[IoSlice::new(taken), IoSlice::new(&pad)],
                    *result,
                );
            }
            Effect::WantWritable { conn, on, ok } => {
                out.push(WANT_WRITABLE);
                put_u(out, *conn as u64);
                out.push(*on as u8);
                out.push(*ok as u8);
            }
            Effect::ShutdownWrite { conn } => {
                out.push(SHUTDOWN_WRITE);
                put_u(out, *conn as u64);
            }
            Effect::Close { conn, unsent } => {
                out.push(CLOSE);
                put_u(out, *conn as u64);
                put_u(out, *unsent as u64);
            }
        }
    }

    pub fn end(&mut self, out: &mut Vec<u8>, end: End) {
        out.push(END);
        out.push(match end {
            End::Stopped => 0,
            End::Limit => 1,
        });
    }
}

fn put_u(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A recording that cannot be read, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// Byte offset in the file.
    pub offset: usize,
    pub what: String,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.what)
    }
}

/// Reads a recording record by record.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    last: Instant,
}

/// What [`Decoder::next_record`] found.
pub enum Next {
    Record(Record),
    /// The end of the file, after an end record or not.
    Eof,
    /// The file ends in the middle of a record (cut short).
    Cut,
}

/// The file ended in the middle of a value.
struct Short;

impl<'a> Decoder<'a> {
    /// Reads the header of `buf`.
    pub fn new(buf: &'a [u8]) -> Result<(Header, Decoder<'a>), FormatError> {
        let mut d = Decoder {
            buf,
            pos: 0,
            last: Instant::ZERO,
        };
        let bad = |d: &Decoder, what: &str| FormatError {
            offset: d.pos,
            what: what.to_string(),
        };
        if !buf.starts_with(MAGIC) {
            return Err(bad(
                &d,
                "not a pushlab recording (no `pushlab-recording` magic)",
            ));
        }
        d.pos = MAGIC.len();
        let short = |d: &Decoder| bad(d, "the header is cut short");
        let version = d.u().map_err(|_| short(&d))?;
        if version != VERSION {
            return Err(bad(
                &d,
                &format!("format version {version}; this pushlab reads version {VERSION}"),
            ));
        }
        let epoch = d.string().map_err(|_| short(&d))?;
        let key = d.take(8).map_err(|_| short(&d))?;
        let hash_key = u64::from_le_bytes(key.try_into().expect("8 bytes"));
        let started_unix_ms = d.u().map_err(|_| short(&d))?;
        let argc = d.u().map_err(|_| short(&d))?;
        let mut args = Vec::new();
        for _ in 0..argc {
            args.push(d.string().map_err(|_| short(&d))?);
        }
        Ok((
            Header {
                epoch,
                hash_key,
                started_unix_ms,
                args,
            },
            d,
        ))
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The next record.
    pub fn next_record(&mut self) -> Result<Next, FormatError> {
        if self.pos == self.buf.len() {
            return Ok(Next::Eof);
        }
        let start = self.pos;
        let last = self.last;
        match self.record() {
            Ok(Ok(r)) => Ok(Next::Record(r)),
            Ok(Err(what)) => Err(FormatError {
                offset: start,
                what,
            }),
            Err(Short) => {
                self.pos = start;
                self.last = last;
                Ok(Next::Cut)
            }
        }
    }

    fn record(&mut self) -> Result<Result<Record, String>, Short> {
        let tag = self.byte()?;
        if tag == END {
            return Ok(match self.byte()? {
                0 => Ok(Record::End(End::Stopped)),
                1 => Ok(Record::End(End::Limit)),
                r => Err(format!("unknown end reason {r}")),
            });
        }
        if tag >= 128 {
            let conn = self.conn()?;
            let effect = match tag {
                WRITE => {
                    let offered = self.u()? as usize;
                    let code = self.byte()?;
                    let n = self.u()? as usize;
                    let taken = self.take(n)?.to_vec();
                    let result = match code {
                        0 => Written::Bytes(n),
                        1 => Written::WouldBlock,
                        2 => Written::Interrupted,
                        3 => Written::Failed,
                        c => return Ok(Err(format!("unknown write result {c}"))),
                    };
                    if n > offered || (code != 0 && n != 0) {
                        return Ok(Err(format!("a write took {n} of {offered} bytes")));
                    }
                    Effect::Write {
                        conn,
                        offered,
                        result,
                        taken,
                    }
                }
                WANT_WRITABLE => Effect::WantWritable {
                    conn,
                    on: self.byte()? != 0,
                    ok: self.byte()? != 0,
                },
                SHUTDOWN_WRITE => Effect::ShutdownWrite { conn },
                CLOSE => Effect::Close {
                    conn,
                    unsent: self.u()? as usize,
                },
                t => return Ok(Err(format!("unknown record tag {t}"))),
            };
            return Ok(Ok(Record::Effect(effect)));
        }
        let dt = self.u()?;
        let at = Instant::from_micros(self.last.as_micros().saturating_add(dt));
        self.last = at;
        let input = match tag {
            ACCEPTED => {
                let conn = self.conn()?;
                let peer = self.string()?;
                return Ok(Ok(Record::Accepted { at, conn, peer }));
            }
            ACCEPT_ERROR => Input::AcceptError,
            READ => {
                let conn = self.conn()?;
                let drained = self.byte()? != 0;
                let n = self.u()? as usize;
                let bytes = self.take(n)?.to_vec();
                Input::Read {
                    conn,
                    bytes,
                    drained,
                }
            }
            READ_DRAINED => Input::ReadDrained { conn: self.conn()? },
            READ_STOPPED => Input::ReadStopped {
                conn: self.conn()?,
                budget: self.byte()? != 0,
            },
            EOF => Input::Eof { conn: self.conn()? },
            RESET => Input::Reset { conn: self.conn()? },
            WRITABLE => Input::Writable { conn: self.conn()? },
            TIMEOUT => Input::Timeout,
            END_TURN => Input::EndTurn,
            SHUTDOWN => Input::Shutdown,
            LOG => Input::Log(match self.byte()? {
                0 => {
                    let link = self.byte()?;
                    let n = self.u()? as usize;
                    LogEvent::Received {
                        link,
                        bytes: self.take(n)?.to_vec(),
                    }
                }
                1 => LogEvent::Disk(Completion::Durable {
                    generation: self.u()?,
                    upto: self.u()?,
                }),
                4 => {
                    let generation = self.u()?;
                    let from = self.u()?;
                    let full = self.byte()? != 0;
                    let why = self.string()?;
                    let error = if full {
                        DiskError::Full(why)
                    } else {
                        DiskError::Failed(why)
                    };
                    LogEvent::Disk(Completion::Failed {
                        generation,
                        from,
                        error,
                    })
                }
                2 => LogEvent::Up { link: self.byte()? },
                3 => LogEvent::Down {
                    link: self.byte()?,
                    why: self.string()?.into(),
                },
                k => return Ok(Err(format!("unknown log event {k}"))),
            }),
            t => return Ok(Err(format!("unknown record tag {t}"))),
        };
        Ok(Ok(Record::Input { at, input }))
    }

    fn byte(&mut self) -> Result<u8, Short> {
        let b = *self.buf.get(self.pos).ok_or(Short)?;
        self.pos += 1;
        Ok(b)
    }

    fn u(&mut self) -> Result<u64, Short> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        // Longer than any u64: treat as cut (the decoder reports garbage
        // through the next record's tag).
        Err(Short)
    }

    fn conn(&mut self) -> Result<ConnId, Short> {
        Ok(self.u()? as ConnId)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let s = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(s)
    }

    fn string(&mut self) -> Result<String, Short> {
        let n = self.u()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            epoch: "abc".into(),
            hash_key: 0x0102_0304_0506_0708,
            started_unix_ms: 1_700_000_000_000,
            args: vec!["serve".into(), "--addr".into(), "127.0.0.1:0".into()],
        }
    }

    #[test]
    fn every_record_round_trips() {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        e.header(&mut out, &header());
        let t = |ms| Instant::from_millis(ms);
        let records = vec![
            Record::Accepted {
                at: t(1),
                conn: 0,
                peer: "127.0.0.1:5000".into(),
            },
            Record::Input {
                at: t(2),
                input: Input::Read {
                    conn: 0,
                    bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
                    drained: true,
                },
            },
            Record::Effect(Effect::Write {
                conn: 0,
                offered: 10,
                result: Written::Bytes(4),
                taken: b"HTTP".to_vec(),
            }),
            Record::Effect(Effect::Write {
                conn: 0,
                offered: 6,
                result: Written::WouldBlock,
                taken: vec![],
            }),
            Record::Effect(Effect::WantWritable {
                conn: 0,
                on: true,
                ok: true,
            }),
            Record::Input {
                at: t(2),
                input: Input::ReadStopped {
                    conn: 0,
                    budget: true,
                },
            },
            Record::Input {
                at: t(300),
                input: Input::Writable { conn: 200 },
            },
            Record::Input {
                at: t(301),
                input: Input::Timeout,
            },
            Record::Effect(Effect::ShutdownWrite { conn: 0 }),
            Record::Effect(Effect::Close { conn: 0, unsent: 9 }),
            Record::Input {
                at: t(350),
                input: Input::Log(LogEvent::Up { link: 1 }),
            },
            Record::Input {
                at: t(351),
                input: Input::Log(LogEvent::Received {
                    link: 1,
                    bytes: b"*2\r\n$2\r\ne1\r\n:7\r\n".to_vec(),
                }),
            },
            Record::Input {
                at: t(352),
                input: Input::Log(LogEvent::Down {
                    link: 0,
                    why: "connection reset".into(),
                }),
            },
            Record::Input {
                at: t(353),
                input: Input::Log(LogEvent::Disk(Completion::Durable {
                    generation: 2,
                    upto: 9,
                })),
            },
            Record::Input {
                at: t(400),
                input: Input::Shutdown,
            },
            Record::End(End::Stopped),
        ];
        for r in &records {
            match r {
                Record::Accepted { at, conn, peer } => e.accepted(&mut out, *at, *conn, peer),
                Record::Input { at, input } => e.input(&mut out, *at, input),
                Record::Effect(x) => e.effect(&mut out, x),
                Record::End(end) => e.end(&mut out, *end),
            }
        }
        let (h, mut d) = Decoder::new(&out).unwrap();
        assert_eq!(h, header());
        let mut back = Vec::new();
        while let Next::Record(r) = d.next_record().unwrap() {
            back.push(r);
        }
        assert_eq!(back, records);
        // Cut anywhere inside the last records: the decoder says so.
        let (_, mut d) = Decoder::new(&out[..out.len() - 1]).unwrap();
        let mut n = 0;
        loop {
            match d.next_record().unwrap() {
                Next::Record(_) => n += 1,
                Next::Cut => break,
                Next::Eof => panic!("a cut file read as whole"),
            }
        }
        assert_eq!(n, records.len() - 1);
    }

    #[test]
    fn foreign_files_and_versions_are_refused() {
        assert!(Decoder::new(b"GET / HTTP/1.1\r\n").is_err());
        let mut out = MAGIC.to_vec();
        put_u(&mut out, 2);
        let err = Decoder::new(&out).err().unwrap();
        assert!(err.what.contains("version 2"), "{err}");
    }
}
