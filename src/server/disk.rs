//! `--data-dir`: the file log's driver on the loop's side. At start it
//! locks the directory, reads every segment back into the history, and
//! starts the writer thread; each turn it hands the log's record groups to
//! the writer and the writer's reports back to the engine (the writer wakes
//! the loop through the [`Waker`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::Waker;

use crate::config::Config;
use crate::file_log::disk::{self, Completion, DataDir, Writer, WriterConfig};
use crate::file_log::log::{restore, FileLog};
use crate::log::{History, LogOutput};
use crate::timers::Instant;

/// The writer thread, seen from the loop.
pub struct Disk {
    writer: Writer,
}

/// What [`Disk::open`] read back, for the start-up line.
pub struct Opened {
    pub log: FileLog,
    pub disk: Disk,
    /// Messages read back.
    pub records: u64,
    /// The epoch of the directory's ids (a new one for an empty directory).
    pub epoch: String,
}

impl Disk {
    /// Locks `config.data_dir`, reads it back into a history bounded as
    /// `config` says, and starts the writer. `origin_ms` is the Unix time
    /// of `Instant::ZERO`; a record older than that is restored at
    /// `Instant::ZERO` (the shell puts the origin one `--history-ttl`
    /// before the start, so the TTL of a read-back message counts from its
    /// publication). `fresh_epoch` names the ids of an empty directory;
    /// `hash_key` keys the history's hashes.
    pub fn open(
        config: &Config,
        origin_ms: u64,
        fresh_epoch: &str,
        hash_key: u64,
        waker: Arc<Waker>,
    ) -> io::Result<Opened> {
        let path = config.data_dir.as_deref().expect("--data-dir is set");
        let dir = DataDir::open(path)?;
        let mut history = History::of_config(config);
        history.set_hash_key(hash_key);
        let recovered = disk::recover(&dir, |epoch, record| {
            let at = Instant::from_millis(record.unix_ms.saturating_sub(origin_ms));
            restore(&mut history, epoch, &record, at);
        })?;
        for (path, cut) in &recovered.cuts {
            eprintln!("pushlab: {}: cut a torn tail: {cut:?}", path.display());
        }
        let epoch = recovered
            .epoch
            .clone()
            .unwrap_or_else(|| fresh_epoch.to_string());
        let (records, next_seq) = (recovered.records, recovered.next_seq);
        let writer_config = WriterConfig {
            segment_bytes: config.segment_size,
        };
        let wake = Box::new(move || {
            let _ = waker.wake();
        });
        let writer = Writer::spawn(dir, recovered, &epoch, writer_config, wake)?;
        Ok(Opened {
            log: FileLog::new(&epoch, history, next_seq, origin_ms),
            disk: Disk { writer },
            records,
            epoch,
        })
    }

    /// Performs what the log asked.
    pub fn perform(&self, output: LogOutput) {
        match output {
            LogOutput::Records(group) => {
                // A writer that is gone reports nothing more: the appends
                // wait; the writer only stops when the server does.
                self.writer.append(
                    group.generation,
                    group.first_seq,
                    group.end_seq,
                    group.bytes,
                );
            }
            LogOutput::Trim { keep_from } => {
                self.writer.trim(keep_from);
            }
            LogOutput::Connect { .. } | LogOutput::Send { .. } | LogOutput::Close { .. } => {}
        }
    }

    /// The writer's reports since the last call.
    pub fn completions(&self) -> Vec<Completion> {
        self.writer.completions().collect()
    }
}

/// How far before the start `Instant::ZERO` is put with `--data-dir`: one
/// `--history-ttl`, so that a message read back is placed at its real age.
pub fn clock_offset(config: &Config) -> Duration {
    if config.data_dir.is_some() {
        config.history_ttl
    } else {
        Duration::ZERO
    }
}
