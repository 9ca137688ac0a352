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

pub mod format;
