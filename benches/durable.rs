//! The file log's costs on this machine's disk (docs/performance.md,
//! "Durable history"): `cargo bench --bench durable [-- DIR]`.
//!
//! 1. `fdatasync` latency alone: 2,000 appends of 1 KiB, each synced.
//! 2. The writer's group commit with 64 publishers that each wait for
//!    their answer before publishing again (64 records of 100 bytes per
//!    group, the next group handed over when the last is durable), and with
//!    groups handed over without waiting (the writer merges what queued).
//! 3. Start-up: recovering 1,000,000 records of 100 bytes.
//!
//! DIR defaults to a directory under the system's temp dir (use one on the
//! disk `--data-dir` will use).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pushlab::file_log::disk::{recover, Completion, DataDir, Writer, WriterConfig};
use pushlab::file_log::format::{encode_record, Record};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn group(first: u64, n: u64, data: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in first..first + n {
        encode_record(
            &mut out,
            &Record {
                seq,
                unix_ms: 0,
                topic: "bench",
                kind: pushlab::hub::Kind::Text,
                data,
            },
        );
    }
    out
}

fn spawn(dir: &PathBuf) -> Writer {
    let _ = fs::remove_dir_all(dir);
    let data_dir = DataDir::open(dir).unwrap();
    let recovered = recover(&data_dir, |_, _| {}).unwrap();
    Writer::spawn(
        data_dir,
        recovered,
        "bench",
        WriterConfig {
            segment_bytes: 64 << 20,
        },
        Box::new(|| {}),
    )
    .unwrap()
}

fn main() {
    let base = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pushlab-durable-bench"));
    fs::create_dir_all(&base).unwrap();

    // 1. fdatasync alone.
    let path = base.join("fsync-probe");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = vec![b'x'; 1024];
    let mut lat = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "fdatasync of a 1 KiB append: p50 {:?} p99 {:?} max {:?}",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
    drop(f);
    let _ = fs::remove_file(&path);

    let data = "x".repeat(100);
    let dir = base.join("log");

    // 2a. 64 publishers waiting for their answers: one group of 64 at a time.
    let w = spawn(&dir);
    let (mut seq, mut lat) = (1, Vec::new());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        w.append(0, seq, seq + 64, group(seq, 64, &data));
        assert!(matches!(w.wait(), Some(Completion::Durable { .. })));
        lat.push(t.elapsed());
        seq += 64;
    }
    let rate = (seq - 1) as f64 / t0.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "64 publishers, one group in flight: {rate:.0} records/s, group latency p50 {:?} p99 {:?}",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    drop(w);

    // 2b. Groups of 64 handed over without waiting: the writer merges them.
    let w = spawn(&dir);
    let mut seq = 1;
    let t0 = Instant::now();
    let mut syncs = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        for _ in 0..16 {
            w.append(0, seq, seq + 64, group(seq, 64, &data));
            seq += 64;
        }
        // Keep at most 16 groups queued.
        loop {
            match w.wait() {
                Some(Completion::Durable { upto, .. }) => {
                    syncs += 1;
                    if upto == seq {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let rate = (seq - 1) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "groups of 64 queued, merged by the writer: {rate:.0} records/s, {:.0} records per fdatasync",
        (seq - 1) as f64 / syncs as f64
    );
    drop(w);

    // 3. Start-up with 1,000,000 records.
    let w = spawn(&dir);
    let mut seq = 1;
    while seq <= 1_000_000 {
        w.append(0, seq, seq + 10_000, group(seq, 10_000, &data));
        seq += 10_000;
        w.wait();
    }
    drop(w);
    let t = Instant::now();
    let data_dir = DataDir::open(&dir).unwrap();
    let mut n = 0u64;
    let mut bytes = 0usize;
    let r = recover(&data_dir, |_, rec| {
        n += 1;
        bytes += rec.data.len();
    })
    .unwrap();
    println!(
        "recovering {n} records ({} MiB of data): {:?}, next seq {}",
        bytes >> 20,
        t.elapsed(),
        r.next_seq
    );
    drop(data_dir);
    let _ = fs::remove_dir_all(&base);
}
