use super::*;
use crate::file_log::format::encode_record;

/// A fresh directory under the target dir's temp area, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "pushlab-disk-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn records(first: u64, n: u64, topic: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in first..first + n {
        encode_record(
            &mut out,
            &Record {
                seq,
                unix_ms: 1000 + seq,
                topic,
                kind: crate::log::Kind::Text,
                data: &format!("m{seq}"),
            },
        );
    }
    out
}

fn read_back(path: &Path) -> (Vec<(u64, String)>, Recovered) {
    let dir = DataDir::open(path).unwrap();
    let mut got = Vec::new();
    let r = recover(&dir, |epoch, rec| {
        assert_eq!(epoch, "ep");
        got.push((rec.seq, rec.data.to_string()));
    })
    .unwrap();
    (got, r)
}

fn writer(path: &Path, segment_bytes: u64) -> Writer {
    let dir = DataDir::open(path).unwrap();
    let recovered = recover(&dir, |_, _| {}).unwrap();
    Writer::spawn(
        dir,
        recovered,
        "ep",
        WriterConfig { segment_bytes },
        Box::new(|| {}),
    )
    .unwrap()
}

fn segment_count(path: &Path) -> usize {
    fs::read_dir(path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(".seg")
        })
        .count()
}

#[test]
fn a_second_process_on_the_same_directory_is_refused_until_the_first_lets_go() {
    let tmp = TempDir::new("lock");
    let first = DataDir::open(&tmp.0).unwrap();
    // flock locks belong to the open file description: a second open in
    // this process conflicts just as another process would.
    let err = DataDir::open(&tmp.0).err().expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(first);
    DataDir::open(&tmp.0).expect("free again");
}

#[test]
fn what_the_writer_reports_durable_is_read_back_after_a_restart() {
    let tmp = TempDir::new("roundtrip");
    let w = writer(&tmp.0, DEFAULT_SEGMENT_BYTES);
    assert!(w.append(0, 1, 4, records(1, 3, "a")));
    assert_eq!(
        w.wait(),
        Some(Completion::Durable {
            generation: 0,
            upto: 4
        })
    );
    assert!(w.append(0, 4, 6, records(4, 2, "b")));
    assert_eq!(
        w.wait(),
        Some(Completion::Durable {
            generation: 0,
            upto: 6
        })
    );
    drop(w);
    let (got, r) = read_back(&tmp.0);
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(got[4].1, "m5");
    assert_eq!((r.next_seq, r.epoch.as_deref()), (6, Some("ep")));
    assert!(r.cuts.is_empty());
}

#[test]
fn segments_rotate_by_size_and_those_out_of_the_history_are_deleted() {
    let tmp = TempDir::new("rotate");
    let w = writer(&tmp.0, 200);
    let mut seq = 1;
    for _ in 0..10 {
        assert!(w.append(0, seq, seq + 5, records(seq, 5, "a")));
        assert!(matches!(w.wait(), Some(Completion::Durable { .. })));
        seq += 5;
    }
    let before = segment_count(&tmp.0);
    assert!(before >= 5, "{before} segments");
    // Everything below 41 left the history: only the segments holding
    // 41.. stay (and the one being written always does).
    assert!(w.trim(41));
    assert!(w.append(0, seq, seq + 1, records(seq, 1, "a")));
    assert!(matches!(w.wait(), Some(Completion::Durable { .. })));
    drop(w);
    assert!(segment_count(&tmp.0) < before);
    let (got, r) = read_back(&tmp.0);
    assert!(got.first().unwrap().0 <= 41, "nothing kept was deleted");
    assert_eq!(got.last().unwrap().0, 51);
    assert_eq!(r.next_seq, 52);
    // A trim past everything keeps the newest segment: it names the
    // sequence.
    let w = writer(&tmp.0, 200);
    assert!(w.trim(u64::MAX));
    assert!(w.append(0, 52, 53, records(52, 1, "a")));
    assert!(matches!(w.wait(), Some(Completion::Durable { .. })));
    drop(w);
    assert_eq!(segment_count(&tmp.0), 1);
    assert_eq!(read_back(&tmp.0).1.next_seq, 53);
}

#[test]
fn a_torn_tail_is_cut_at_start_and_reported() {
    let tmp = TempDir::new("torn");
    let w = writer(&tmp.0, DEFAULT_SEGMENT_BYTES);
    assert!(w.append(0, 1, 3, records(1, 2, "a")));
    w.wait();
    drop(w);
    let seg = tmp.0.join(format!("{:020}.seg", 1));
    let good_len = fs::metadata(&seg).unwrap().len();
    // Half of a third record: what a crash in the middle of a write leaves.
    let third = records(3, 1, "a");
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&third[..third.len() / 2]).unwrap();
    drop(f);
    let (got, r) = read_back(&tmp.0);
    assert_eq!(got.len(), 2);
    assert_eq!(r.next_seq, 3);
    assert_eq!(r.cuts.len(), 1);
    let cut = r.cuts[0].1;
    assert_eq!(
        (cut.offset as u64, cut.bytes, cut.reason),
        (good_len, third.len() / 2, format::RecordError::Incomplete)
    );
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len, "truncated");
    // The next start finds nothing to cut, and writing goes on from 3.
    let w = writer(&tmp.0, DEFAULT_SEGMENT_BYTES);
    assert!(w.append(0, 3, 4, records(3, 1, "a")));
    assert!(matches!(
        w.wait(),
        Some(Completion::Durable { upto: 4, .. })
    ));
    drop(w);
    let (got, r) = read_back(&tmp.0);
    assert_eq!(got.len(), 3);
    assert!(r.cuts.is_empty());
}

#[test]
fn damage_before_records_a_later_segment_proves_acknowledged_refuses_the_start() {
    let tmp = TempDir::new("damage");
    let w = writer(&tmp.0, 100);
    for seq in [1, 4] {
        assert!(w.append(0, seq, seq + 3, records(seq, 3, "a")));
        w.wait();
    }
    drop(w);
    assert_eq!(segment_count(&tmp.0), 2);
    let seg = tmp.0.join(format!("{:020}.seg", 1));
    let mut bytes = fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    fs::write(&seg, bytes).unwrap();
    let dir = DataDir::open(&tmp.0).unwrap();
    let err = recover(&dir, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("refusing to start"), "{err}");
}

#[test]
fn a_segment_created_without_its_header_is_removed() {
    let tmp = TempDir::new("header");
    fs::create_dir_all(&tmp.0).unwrap();
    fs::write(tmp.0.join(format!("{:020}.seg", 1)), b"PUSH").unwrap();
    let (got, r) = read_back(&tmp.0);
    assert!(got.is_empty());
    assert_eq!((r.next_seq, r.epoch, r.removed.len()), (1, None, 1));
    assert_eq!(segment_count(&tmp.0), 0);
}

/// A full disk, simulated with /dev/full as the next segment: the group
/// fails with ENOSPC (507), later batches of that generation are refused,
/// and once the disk has room again a new generation from the same
/// sequence number is stored.
#[test]
fn a_full_disk_refuses_the_group_and_writing_recovers_when_there_is_room() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let tmp = TempDir::new("full");
    let w = writer(&tmp.0, 100);
    assert!(w.append(0, 1, 4, records(1, 3, "a")));
    assert!(matches!(
        w.wait(),
        Some(Completion::Durable { upto: 4, .. })
    ));
    // The segment is past 100 bytes: the next group starts segment 4.
    std::os::unix::fs::symlink("/dev/full", tmp.0.join(format!("{:020}.seg", 4))).unwrap();
    assert!(w.append(0, 4, 6, records(4, 2, "a")));
    match w.wait() {
        Some(Completion::Failed {
            generation: 0,
            from: 4,
            error,
        }) => {
            assert_eq!(error.status(), 507, "{error}");
            assert!(error.to_string().contains("full"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // Numbered after the failure, in the same generation: refused too.
    assert!(w.append(0, 6, 7, records(6, 1, "a")));
    // The loop starts over from 4 in generation 1.
    assert!(w.append(1, 4, 6, records(4, 2, "b")));
    assert!(matches!(
        w.wait(),
        Some(Completion::Durable {
            generation: 1,
            upto: 6
        })
    ));
    drop(w);
    let (got, r) = read_back(&tmp.0);
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(r.cuts.is_empty());
}

#[test]
fn disk_errors_map_to_507_when_full_and_503_otherwise() {
    let full = DiskError::from_io("write", &io::Error::from_raw_os_error(libc::ENOSPC));
    let eio = DiskError::from_io("write", &io::Error::from_raw_os_error(libc::EIO));
    assert_eq!((full.status(), eio.status()), (507, 503));
}

#[test]
fn the_writer_gathers_only_when_its_last_commit_was_a_crowd() {
    // One publisher at a time: never wait.
    assert!(!gather_more(1, 0));
    assert!(!gather_more(1, 1));
    // 64 publishers answered together: wait for most of them again.
    assert!(gather_more(1, 64));
    assert!(gather_more(47, 64));
    assert!(!gather_more(48, 64));
    assert!(!gather_more(500, 64));
    assert!(!gather_more(u64::MAX, u64::MAX));
}
