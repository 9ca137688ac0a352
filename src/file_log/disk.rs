//! The file log's thin I/O driver: the data directory, its lock, recovery
//! at start, and the writer thread that makes each group of records durable
//! with one write and one `fdatasync`.
//!
//! This is the only part of the file log that touches files (like
//! `server/` for sockets); what goes into the files is [`super::format`].
//!
//! # The directory
//!
//! ```text
//! DIR/LOCK                        flock(2)ed while a server uses DIR
//! DIR/00000000000000000001.seg    a segment: header, then records from seq 1
//! DIR/00000000000000052114.seg    the next one, from seq 52114
//! ```
//!
//! A segment's name is its first sequence number, so the newest segment,
//! never deleted, still tells the sequence when every message has left the
//! history.
//!
//! # The lock
//!
//! `flock(LOCK_EX | LOCK_NB)` on `DIR/LOCK`: the kernel releases it when the
//! process ends however it ends (SIGKILL included), so a crash never leaves
//! a stale lock behind. `O_EXCL` + a pid file would need a stale-pid check
//! at start, racy when pids are reused. The pid written into the file is
//! only for the refusal's message. (flock is advisory and not reliable on
//! some network file systems: the data directory belongs on a local disk.)

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use super::format::{self, Cut, Record, SegmentHeader};

/// Default size past which the writer starts a new segment
/// (`--segment-size`): small enough that history leaving frees the disk
/// soon, large enough that rotation (a create and a directory `fsync`) is
/// rare.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

const SEGMENT_SUFFIX: &str = ".seg";

/// How long an idle writer, woken by a group, waits for more before it
/// writes and syncs, when the last commit suggests more are coming
/// ([`gather_more`]). Without it the first small group after a sync takes
/// the disk at once and the publishers answered by that sync, whose next
/// publishes arrive a few tens of microseconds later, wait a whole extra
/// `fdatasync`. A fraction of one `fdatasync` (1–6 ms on the development
/// VM): the same trade as PostgreSQL's `commit_delay`, decided here from
/// what the writer has seen instead of a setting.
pub const GATHER_WAIT: std::time::Duration = std::time::Duration::from_micros(250);

/// Whether the writer, holding `have` records for its next commit, should
/// wait (up to [`GATHER_WAIT`]) for more: while it has fewer than three
/// quarters of the records its last commit took. One publisher at a time
/// (a last commit of one record) never waits; many publishers, whose
/// answers went out together, are gathered again into one commit.
pub fn gather_more(have: u64, last_commit: u64) -> bool {
    have.saturating_mul(4) < last_commit.saturating_mul(3)
}

/// Why the disk refused a group of records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// ENOSPC or EDQUOT: publishes get `507 Insufficient Storage`.
    Full(String),
    /// Any other failure (EIO, …): publishes get `503`.
    Failed(String),
}

impl DiskError {
    fn from_io(what: &str, e: &io::Error) -> DiskError {
        let text = format!("{what}: {e}");
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => DiskError::Full(text),
            _ => DiskError::Failed(text),
        }
    }

    /// The HTTP status a publish refused for this gets.
    pub fn status(&self) -> u16 {
        match self {
            DiskError::Full(_) => 507,
            DiskError::Failed(_) => 503,
        }
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::Full(e) => write!(
                f,
                "the data directory's disk is full ({e}); publishes are refused until there is room"
            ),
            DiskError::Failed(e) => write!(
                f,
                "the data directory cannot be written ({e}); publishes are refused until it recovers"
            ),
        }
    }
}

/// A data directory, locked for this process.
pub struct DataDir {
    path: PathBuf,
    /// Holds the flock; closing it (dropping) releases the lock.
    _lock: File,
}

impl DataDir {
    /// Creates `path` if needed and locks it; refuses when another process
    /// holds the lock.
    pub fn open(path: &Path) -> io::Result<DataDir> {
        fs::create_dir_all(path)?;
        let lock_path = path.join("LOCK");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        // SAFETY: flock on a descriptor this function owns; no memory involved.
        let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use by another pushlab (pid {})",
                        path.display(),
                        holder.trim()
                    ),
                ));
            }
            return Err(e);
        }
        lock.set_len(0)?;
        lock.seek(SeekFrom::Start(0))?;
        write!(lock, "{}", std::process::id())?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The segments, oldest first, by the first sequence their name says.
    fn segments(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
                continue;
            };
            if let Ok(seq) = stem.parse::<u64>() {
                out.push((seq, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.path.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
    }
}

/// What a start found in the directory.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The epoch of the stored ids (none: the directory held no segment).
    pub epoch: Option<String>,
    /// The sequence number the next message takes.
    pub next_seq: u64,
    /// Records read back.
    pub records: u64,
    /// What was cut from torn or damaged tails, by segment.
    pub cuts: Vec<(PathBuf, Cut)>,
    /// Segments with an unusable header that were removed (they held
    /// nothing that was acknowledged).
    pub removed: Vec<PathBuf>,
    segments: Vec<(u64, PathBuf)>,
}

/// Reads every segment of `dir` in order, handing each good record to
/// `each` with its epoch; cuts a torn or damaged tail (the file is
/// truncated and synced), and refuses to start when damage would cut a
/// record that a later segment proves was acknowledged.
pub fn recover(dir: &DataDir, mut each: impl FnMut(&str, Record<'_>)) -> io::Result<Recovered> {
    let mut found = Recovered {
        next_seq: 1,
        ..Recovered::default()
    };
    let segments = dir.segments()?;
    let mut bytes = Vec::new();
    for (i, (named_seq, path)) in segments.iter().enumerate() {
        let next_named = segments.get(i + 1).map(|(s, _)| *s);
        bytes.clear();
        File::open(path)?.read_to_end(&mut bytes)?;
        let mut scan = match format::scan(&bytes) {
            Ok(scan) => scan,
            Err(e) => {
                // The header goes out with the first group of records in
                // one write and one fdatasync: a segment without a whole
                // header never held an acknowledged record. Unless a later
                // segment's name says messages were stored after it.
                if next_named.is_some_and(|n| n > *named_seq) {
                    return Err(corrupt(path, &format!("{e}, and later segments exist")));
                }
                fs::remove_file(path)?;
                found.removed.push(path.clone());
                continue;
            }
        };
        if scan.header.first_seq != *named_seq {
            return Err(corrupt(
                path,
                "header and file name disagree on the first id",
            ));
        }
        if let Some(epoch) = &found.epoch {
            if *epoch != scan.header.epoch {
                return Err(corrupt(path, "another epoch than the segments before it"));
            }
        }
        if !found.segments.is_empty() && found.next_seq != *named_seq {
            return Err(corrupt(
                path,
                &format!(
                    "expected to start at {}: records are missing",
                    found.next_seq
                ),
            ));
        }
        let epoch = scan.header.epoch.clone();
        for record in scan.by_ref() {
            each(&epoch, record);
            found.records += 1;
        }
        found.next_seq = scan.next_seq();
        if let Some(cut) = scan.cut() {
            // Nothing acknowledged may be cut: a later segment must start
            // right where this one's good records end.
            if next_named.is_some_and(|n| n != scan.next_seq()) {
                return Err(corrupt(
                    path,
                    &format!(
                        "{} at offset {}, before acknowledged records",
                        cut.reason, cut.offset
                    ),
                ));
            }
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(scan.valid_len() as u64)?;
            file.sync_all()?;
            found.cuts.push((path.clone(), cut));
        }
        found.epoch = Some(epoch);
        found.segments.push((*named_seq, path.clone()));
    }
    Ok(found)
}

fn corrupt(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: {what}; refusing to start rather than lose acknowledged messages (move the file aside to start without it)",
            path.display()
        ),
    )
}

/// A group of records for the writer: the encoded records of sequence
/// numbers `first_seq..end_seq`, made by one loop turn.
struct Batch {
    generation: u64,
    first_seq: u64,
    end_seq: u64,
    bytes: Vec<u8>,
}

enum Command {
    Append(Batch),
    /// Segments holding only sequence numbers below this may go.
    Trim(u64),
}

/// What the writer reports back to the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Every record below `upto` is durable.
    Durable { generation: u64, upto: u64 },
    /// The records from `from` on (those of this generation) were not
    /// stored: the loop refuses them and numbers the next ones from `from`
    /// again, in a new generation.
    Failed {
        generation: u64,
        from: u64,
        error: DiskError,
    },
}

/// The loop's handle on the writer thread.
pub struct Writer {
    commands: Option<Sender<Command>>,
    completions: Receiver<Completion>,
    thread: Option<JoinHandle<()>>,
}

/// Writer settings.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Start a new segment past this size (`--segment-size`).
    pub segment_bytes: u64,
}

impl Writer {
    /// Starts the writer for `dir` after [`recover`]; new records get
    /// sequence numbers from `recovered.next_seq` under `epoch`. `wake` is
    /// called (on the writer's thread) after each completion is queued: the
    /// shell makes it a `mio::Waker::wake`.
    pub fn spawn(
        dir: DataDir,
        recovered: Recovered,
        epoch: &str,
        config: WriterConfig,
        wake: Box<dyn Fn() + Send>,
    ) -> io::Result<Writer> {
        let mut segments: VecDeque<(u64, PathBuf)> = recovered.segments.into();
        let next_seq = recovered.next_seq;
        // A last segment that holds no record starts where the new one
        // would: it is replaced.
        if let Some((first, path)) = segments.back() {
            if *first == next_seq {
                fs::remove_file(path)?;
                segments.pop_back();
            }
        }
        let (commands, rx) = mpsc::channel();
        let (done, completions) = mpsc::channel();
        let mut state = WriterState {
            dir,
            epoch: epoch.to_string(),
            config,
            segments,
            file: None,
            file_len: 0,
            durable: next_seq,
            failed_generation: None,
            keep_from: 0,
        };
        let thread = std::thread::Builder::new()
            .name("pushlab-log-writer".into())
            .spawn(move || {
                let mut last_commit = 0;
                while let Ok(first) = rx.recv() {
                    let mut commands = vec![first];
                    commands.extend(rx.try_iter());
                    let until = std::time::Instant::now() + GATHER_WAIT;
                    while gather_more(records(&commands), last_commit) {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(command) => {
                                commands.push(command);
                                commands.extend(rx.try_iter());
                            }
                            Err(_) => break,
                        }
                    }
                    last_commit = records(&commands);
                    for completion in state.run(commands) {
                        if done.send(completion).is_err() {
                            return;
                        }
                        wake();
                    }
                }
            })?;
        Ok(Writer {
            commands: Some(commands),
            completions,
            thread: Some(thread),
        })
    }

    /// Hands the records `first_seq..end_seq` (encoded in `bytes`) to the
    /// writer. Returns false if the writer is gone.
    pub fn append(&self, generation: u64, first_seq: u64, end_seq: u64, bytes: Vec<u8>) -> bool {
        self.send(Command::Append(Batch {
            generation,
            first_seq,
            end_seq,
            bytes,
        }))
    }

    /// Lets the writer delete segments whose records are all below
    /// `keep_from` (they have left the history).
    pub fn trim(&self, keep_from: u64) -> bool {
        self.send(Command::Trim(keep_from))
    }

    fn send(&self, command: Command) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|c| c.send(command).is_ok())
    }

    /// Completions reported since the last call.
    pub fn completions(&self) -> impl Iterator<Item = Completion> + '_ {
        self.completions.try_iter()
    }

    /// Waits for a completion (tests, and shutdown).
    pub fn wait(&self) -> Option<Completion> {
        self.completions.recv().ok()
    }
}

impl Drop for Writer {
    /// Lets the writer finish what it was given, then stops it.
    fn drop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How many records the appends among `commands` carry.
fn records(commands: &[Command]) -> u64 {
    commands
        .iter()
        .map(|c| match c {
            Command::Append(batch) => batch.end_seq - batch.first_seq,
            Command::Trim(_) => 0,
        })
        .sum()
}

/// The writer thread's state.
struct WriterState {
    dir: DataDir,
    epoch: String,
    config: WriterConfig,
    /// Every segment on disk, oldest first; the last is the one written.
    segments: VecDeque<(u64, PathBuf)>,
    /// The segment being written (none until the first write, or after a
    /// failure: the next write starts a new one).
    file: Option<File>,
    file_len: u64,
    /// Every record below this is durable.
    durable: u64,
    /// The generation whose records failed; its later batches are refused
    /// until the loop starts a new generation.
    failed_generation: Option<u64>,
    keep_from: u64,
}

impl WriterState {
    /// One group commit: every append waiting is written at once and
    /// synced once.
    fn run(&mut self, commands: Vec<Command>) -> Vec<Completion> {
        let mut out = Vec::new();
        let mut group: Vec<Batch> = Vec::new();
        for command in commands {
            match command {
                Command::Trim(keep_from) => self.keep_from = self.keep_from.max(keep_from),
                Command::Append(batch) => {
                    if self.failed_generation == Some(batch.generation) {
                        // Numbered after a failed batch: refused with it.
                        continue;
                    }
                    let expected = group.last().map_or(self.durable, |b| b.end_seq);
                    if batch.first_seq != expected {
                        out.push(Completion::Failed {
                            generation: batch.generation,
                            from: batch.first_seq,
                            error: DiskError::Failed(format!(
                                "records out of order: expected {expected}, got {}",
                                batch.first_seq
                            )),
                        });
                        continue;
                    }
                    group.push(batch);
                }
            }
        }
        if let (Some(first), Some(last)) = (group.first(), group.last()) {
            let (generation, from, upto) = (last.generation, first.first_seq, last.end_seq);
            match self.write_group(&group) {
                Ok(()) => {
                    self.durable = upto;
                    self.failed_generation = None;
                    out.push(Completion::Durable { generation, upto });
                }
                Err(error) => {
                    self.failed_generation = Some(generation);
                    out.push(Completion::Failed {
                        generation,
                        from,
                        error,
                    });
                }
            }
        }
        self.delete_old_segments();
        out
    }

    fn write_group(&mut self, group: &[Batch]) -> Result<(), DiskError> {
        let first_seq = group[0].first_seq;
        let mut buf = Vec::new();
        let new_segment = self.file.is_none() || self.file_len >= self.config.segment_bytes;
        if new_segment {
            format::encode_header(
                &mut buf,
                &SegmentHeader {
                    epoch: self.epoch.clone(),
                    first_seq,
                },
            );
        }
        let header_len = buf.len();
        if group.len() == 1 && !new_segment {
            return self.write_bytes(&group[0].bytes, first_seq, false);
        }
        for batch in group {
            buf.extend_from_slice(&batch.bytes);
        }
        debug_assert!(buf.len() >= header_len);
        self.write_bytes(&buf, first_seq, new_segment)
    }

    /// One write and one fdatasync of `bytes`, at the end of the current
    /// segment or (`new_segment`) as a new segment from `first_seq`.
    fn write_bytes(
        &mut self,
        bytes: &[u8],
        first_seq: u64,
        new_segment: bool,
    ) -> Result<(), DiskError> {
        if new_segment {
            let path = self.dir.segment_path(first_seq);
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| DiskError::from_io("creating a segment", &e))?;
            self.segments.push_back((first_seq, path));
            self.file = Some(file);
            self.file_len = 0;
        }
        let file = self.file.as_mut().expect("a segment is open");
        let result = file
            .write_all(bytes)
            .map_err(|e| DiskError::from_io("write", &e))
            .and_then(|()| {
                file.sync_data()
                    .map_err(|e| DiskError::from_io("fdatasync", &e))
            });
        if let Err(e) = result {
            self.abandon_segment(new_segment);
            return Err(e);
        }
        if new_segment {
            // The new file's name must survive a crash too.
            if let Err(e) = File::open(self.dir.path()).and_then(|d| d.sync_all()) {
                self.abandon_segment(true);
                return Err(DiskError::from_io("fsync of the directory", &e));
            }
        }
        self.file_len += bytes.len() as u64;
        Ok(())
    }

    /// After a failed write: the bytes written past the durable end may or
    /// may not be on disk (after a failed fdatasync the kernel may have
    /// dropped them), so they are cut back, and the next group starts a new
    /// segment rather than trust this file's state.
    fn abandon_segment(&mut self, new_segment: bool) {
        if let Some(file) = self.file.take() {
            if new_segment {
                drop(file);
                if let Some((_, path)) = self.segments.pop_back() {
                    let _ = fs::remove_file(path);
                }
            } else {
                // Best effort: a tail left here is cut at the next start
                // (the next segment starts where the good records end).
                let _ = file.set_len(self.file_len);
                let _ = file.sync_data();
            }
        }
    }

    /// Deletes the oldest segments while every record in them is below
    /// `keep_from`; the segment being written always stays.
    fn delete_old_segments(&mut self) {
        while self.segments.len() >= 2 {
            let next_first = self.segments[1].0;
            if next_first > self.keep_from {
                break;
            }
            let (first, path) = self.segments.pop_front().expect("two segments");
            if fs::remove_file(&path).is_err() {
                // Retried at the next trim.
                self.segments.push_front((first, path));
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
