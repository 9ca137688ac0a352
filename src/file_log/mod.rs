//! The file log: durable history on one node (`--data-dir`).
//!
//! Messages are appended to segment files as records (length, checksum,
//! id, topic, data), written in groups — the records of one loop turn in
//! one write and one `fdatasync`, off the event loop — so that a publish is
//! answered only once it would survive a crash. At start the segments are
//! scanned, a torn tail is cut, and the history is rebuilt. docs/durability.md
//! tells the whole story.
//!
//! - [`format`]: the record and segment format and the scanner. Pure.
//! - [`journal`]: the loop's side: numbering, the turn's group of records,
//!   what each report of the writer commits or refuses. Pure.
//! - [`log`]: the file log behind the log seam ([`crate::log::Log`]):
//!   appends numbered by the journal, committed when the writer says they
//!   are durable. Pure.
//! - [`disk`]: the thin I/O driver: the directory and its lock, recovery at
//!   start, the writer thread (group commit, rotation, deletion).

pub mod disk;
pub mod format;
pub mod journal;
pub mod log;
