//! `--record FILE`: the shell writes every engine input and effect to a
//! file, in the format of [`crate::record`], for `pushlab replay`.
//!
//! Buffered: records collect in memory and go to the file when 64 KiB
//! have gathered, once a second, and when the server stops (a `write` on
//! the loop's thread, like every other syscall of the shell). Bounded: past
//! `--record-limit` bytes the recording ends (with an end record saying
//! so) at the next input, and the server goes on serving; a failed write
//! (the disk is full) also ends it, with a message on stderr — the file
//! then stops at the last complete flush, and a replay runs what is there.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::{ConnId, Input, Written};
use crate::record::{Effect, Encoder, End, Header};
use crate::time::Instant;

/// Buffered records are written to the file past this many bytes.
const FLUSH_BYTES: usize = 64 * 1024;
/// And at least this often.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The recording in progress.
pub struct Recorder {
    /// `None` once the recording has ended.
    file: Option<File>,
    path: PathBuf,
    enc: Encoder,
    buf: Vec<u8>,
    /// Bytes written to the file so far.
    flushed: u64,
    limit: u64,
    last_flush: Instant,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path, header: &Header, limit: u64) -> io::Result<Recorder> {
        let file = File::create(path)?;
        let mut r = Recorder {
            file: Some(file),
            path: path.to_path_buf(),
            enc: Encoder::new(),
            buf: Vec::with_capacity(2 * FLUSH_BYTES),
            flushed: 0,
            limit,
            last_flush: Instant::ZERO,
        };
        // Written with the first flush, like every record: a disk that is
        // full already ends the recording then, not the server now.
        r.enc.header(&mut r.buf, header);
        Ok(r)
    }

    /// Whether an input may be recorded: false once the recording ended;
    /// ends it here when the file has reached its limit (so that it ends
    /// between two inputs, with every effect of the last one).
    fn open_input(&mut self) -> bool {
        if self.file.is_none() {
            return false;
        }
        if self.flushed + self.buf.len() as u64 >= self.limit {
            self.enc.end(&mut self.buf, End::Limit);
            self.flush();
            self.stop(&format!("it reached --record-limit ({} bytes)", self.limit));
            return false;
        }
        true
    }

    pub fn accepted(&mut self, now: Instant, conn: ConnId, peer: &str) {
        if self.open_input() {
            self.enc.accepted(&mut self.buf, now, conn, peer);
            self.after_record();
        }
    }

    pub fn read(&mut self, now: Instant, conn: ConnId, bytes: &[u8], drained: bool) {
        if self.open_input() {
            self.enc.read(&mut self.buf, now, conn, bytes, drained);
            self.after_record();
        }
    }

    pub fn input(&mut self, now: Instant, input: &Input) {
        if self.open_input() {
            self.enc.input(&mut self.buf, now, input);
            self.after_record();
        }
    }

    pub fn write(&mut self, conn: ConnId, bufs: &[IoSlice<'_>], result: Written) {
        if self.file.is_some() {
            self.enc.write(&mut self.buf, conn, bufs, result);
            self.after_record();
        }
    }

    pub fn effect(&mut self, effect: &Effect) {
        if self.file.is_some() {
            self.enc.effect(&mut self.buf, effect);
            self.after_record();
        }
    }

    fn after_record(&mut self) {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// Once per loop turn: writes what gathered if a second has passed.
    pub fn tick(&mut self, now: Instant) {
        if now.saturating_since(self.last_flush) >= FLUSH_INTERVAL {
            self.last_flush = now;
            self.flush();
        }
    }

    /// The server stopped: the end record, and everything to the file.
    pub fn finish(&mut self) {
        if self.file.is_some() {
            self.enc.end(&mut self.buf, End::Stopped);
            self.flush();
            if let Some(f) = &mut self.file {
                let _ = f.sync_data();
            }
        }
    }

    fn flush(&mut self) {
        let Some(file) = &mut self.file else {
            self.buf.clear();
            return;
        };
        if self.buf.is_empty() {
            return;
        }
        match file.write_all(&self.buf) {
            Ok(()) => self.flushed += self.buf.len() as u64,
            // ENOSPC, EIO…: recording is not worth stopping the server for.
            Err(e) => self.stop(&format!("writing it failed: {e}")),
        }
        self.buf.clear();
    }

    fn stop(&mut self, why: &str) {
        self.file = None;
        self.buf = Vec::new();
        eprintln!(
            "pushlab: recording to {} ended after {} bytes: {why}; serving goes on",
            self.path.display(),
            self.flushed
        );
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}
