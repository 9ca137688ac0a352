//! The on-disk format of the file log: a segment header, then records.
//! Pure: bytes in, values out, values in, bytes out. No file is opened
//! here; the driver (`file_log::disk`) reads and writes what this module
//! encodes and scans.
//!
//! # A segment
//!
//! ```text
//! header  = magic "PUSHLOG1" (8) | epoch length (1) | epoch (1..=64, ASCII
//!           alphanumeric) | first sequence number (8, LE) | CRC-32 (4, LE)
//!           of everything before it in the header
//! record  = length (4, LE) | CRC-32 (4, LE) | payload (length bytes)
//!           the CRC covers the 4 length bytes and the payload, so a flipped
//!           length is caught like a flipped data byte
//! payload = sequence number (8, LE) | publish time, Unix ms (8, LE) |
//!           flags (1; 0 = a UTF-8 text message, 1 = a binary message
//!           whose data is its standard base64, others refused) |
//!           topic length (1) | topic | data (the rest)
//! ```
//!
//! Integers are little-endian. The first record of a segment carries the
//! header's first sequence number and each next record the one after, so a
//! record that checks out but sits in the wrong place is refused too. The
//! message id is `epoch-seq`, both from the segment.
//!
//! # Scanning
//!
//! [`scan`] reads a segment front to back and stops at the first record
//! that is incomplete (a write torn by a crash), fails its checksum, or
//! breaks a rule above; it reports what it kept and what it would cut
//! ([`Cut`]: the offset and the bytes after it), and never guesses past a
//! bad record: with no marker between records, what follows one cannot be
//! trusted to start where the broken length says.

use std::fmt;

use crate::config::MAX_TOPIC_LEN;
use crate::ids::is_valid_topic;
use crate::log::{decode_binary, Kind};

/// The first 8 bytes of every segment (the last one is the format version).
pub const MAGIC: &[u8; 8] = b"PUSHLOG1";

/// Longest epoch a header holds (the server's are about 8 characters).
pub const MAX_EPOCH_LEN: usize = 64;

/// Bytes before a record's payload: its length and its checksum.
pub const RECORD_HEAD: usize = 8;

/// Bytes of a payload before the topic.
const PAYLOAD_FIXED: usize = 8 + 8 + 1 + 1;

/// The flags byte of a text message's record: its data is the UTF-8 text.
pub const FLAGS_TEXT: u8 = 0;

/// The flags byte of a binary message's record: its data is the standard
/// base64 of the bytes, as the message keeps it (`crate::log::Kind`).
pub const FLAGS_BINARY: u8 = 1;

/// Largest payload a record may declare. Messages are bounded far below
/// (`--max-message`, `--ws-max-message`); a larger length is corruption,
/// refused before anything of that size is trusted.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Largest `--max-message` a data directory can store: a message's record
/// holds its data (a binary message's as base64, 4 bytes for every 3) and
/// the longest topic within [`MAX_PAYLOAD`]. About 48 MiB.
pub const MAX_STORED_MESSAGE: usize = (MAX_PAYLOAD - PAYLOAD_FIXED - MAX_TOPIC_LEN) / 4 * 3;

/// What a segment's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The hub epoch of every id in the segment.
    pub epoch: String,
    /// The sequence number of the segment's first record (the file name
    /// says it too).
    pub first_seq: u64,
}

impl SegmentHeader {
    /// The header's encoded length.
    pub fn encoded_len(&self) -> usize {
        MAGIC.len() + 1 + self.epoch.len() + 8 + 4
    }
}

/// One message as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    /// Wall-clock publish time in Unix milliseconds (the TTL still applies
    /// after a restart).
    pub unix_ms: u64,
    pub topic: &'a str,
    /// Text, or binary with `data` its base64 (the flags byte).
    pub kind: Kind,
    pub data: &'a str,
}

impl Record<'_> {
    /// The record's encoded length.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEAD + PAYLOAD_FIXED + self.topic.len() + self.data.len()
    }
}

/// Why a header is unusable: the whole segment holds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header (a segment created, then a crash).
    Incomplete,
    /// Not a pushlab segment, or another version of the format.
    BadMagic,
    /// The epoch's length or characters break the rule.
    BadEpoch,
    /// The checksum does not match.
    Checksum,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Incomplete => "segment header incomplete",
            HeaderError::BadMagic => "not a PUSHLOG1 segment",
            HeaderError::BadEpoch => "segment header epoch malformed",
            HeaderError::Checksum => "segment header checksum mismatch",
        })
    }
}

/// Why a record was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The bytes end inside the record: a write torn by a crash.
    Incomplete,
    /// Its declared length is below a payload's minimum or above
    /// [`MAX_PAYLOAD`].
    BadLength,
    /// The checksum does not match: a torn or damaged record.
    Checksum,
    /// It checks out but breaks a rule: unknown flags, a topic that is not
    /// a topic, data that is not UTF-8, a sequence number out of place.
    Malformed(&'static str),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Incomplete => f.write_str("incomplete record (torn write)"),
            RecordError::BadLength => f.write_str("record length out of range"),
            RecordError::Checksum => f.write_str("record checksum mismatch"),
            RecordError::Malformed(why) => write!(f, "malformed record: {why}"),
        }
    }
}

/// Where a scan stopped and what it would cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Offset of the first byte not kept (the end of the last good record).
    pub offset: usize,
    /// Bytes from there to the end of the segment.
    pub bytes: usize,
    pub reason: RecordError,
}

/// Appends the header to `out`.
pub fn encode_header(out: &mut Vec<u8>, header: &SegmentHeader) {
    assert!(
        is_valid_epoch(&header.epoch),
        "epoch must be 1-64 ASCII alphanumeric bytes"
    );
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.push(header.epoch.len() as u8);
    out.extend_from_slice(header.epoch.as_bytes());
    out.extend_from_slice(&header.first_seq.to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn is_valid_epoch(epoch: &str) -> bool {
    (1..=MAX_EPOCH_LEN).contains(&epoch.len()) && epoch.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Decodes a header from the front of `bytes`; returns it and its length.
pub fn decode_header(bytes: &[u8]) -> Result<(SegmentHeader, usize), HeaderError> {
    if bytes.len() < MAGIC.len() + 1 {
        return Err(HeaderError::Incomplete);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let epoch_len = bytes[MAGIC.len()] as usize;
    let len = MAGIC.len() + 1 + epoch_len + 8 + 4;
    if bytes.len() < len {
        return Err(HeaderError::Incomplete);
    }
    let body = &bytes[..len - 4];
    let crc = u32::from_le_bytes(bytes[len - 4..len].try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err(HeaderError::Checksum);
    }
    let epoch = std::str::from_utf8(&body[MAGIC.len() + 1..MAGIC.len() + 1 + epoch_len])
        .map_err(|_| HeaderError::BadEpoch)?;
    if !is_valid_epoch(epoch) {
        return Err(HeaderError::BadEpoch);
    }
    let first_seq = u64::from_le_bytes(body[len - 12..len - 4].try_into().expect("8 bytes"));
    Ok((
        SegmentHeader {
            epoch: epoch.to_string(),
            first_seq,
        },
        len,
    ))
}

/// Appends one record to `out`. The topic must be a valid topic name.
pub fn encode_record(out: &mut Vec<u8>, record: &Record<'_>) {
    debug_assert!(record.topic.len() <= MAX_TOPIC_LEN);
    let payload_len = PAYLOAD_FIXED + record.topic.len() + record.data.len();
    assert!(payload_len <= MAX_PAYLOAD, "record larger than MAX_PAYLOAD");
    let start = out.len();
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the checksum, below
    out.extend_from_slice(&record.seq.to_le_bytes());
    out.extend_from_slice(&record.unix_ms.to_le_bytes());
    out.push(match record.kind {
        Kind::Text => FLAGS_TEXT,
        Kind::Binary => FLAGS_BINARY,
    });
    out.push(record.topic.len() as u8);
    out.extend_from_slice(record.topic.as_bytes());
    out.extend_from_slice(record.data.as_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start..start + 4]);
    hasher.update(&out[start + RECORD_HEAD..]);
    let crc = hasher.finalize();
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record at the front of `bytes`, expected to carry
/// `expected_seq`; returns it and its encoded length.
pub fn decode_record(bytes: &[u8], expected_seq: u64) -> Result<(Record<'_>, usize), RecordError> {
    if bytes.len() < RECORD_HEAD {
        return Err(RecordError::Incomplete);
    }
    let len_bytes = &bytes[..4];
    let payload_len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
    if !(PAYLOAD_FIXED..=MAX_PAYLOAD).contains(&payload_len) {
        return Err(RecordError::BadLength);
    }
    let total = RECORD_HEAD + payload_len;
    if bytes.len() < total {
        return Err(RecordError::Incomplete);
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let payload = &bytes[RECORD_HEAD..total];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_bytes);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err(RecordError::Checksum);
    }
    let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    let unix_ms = u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes"));
    let (flags, topic_len) = (payload[16], payload[17] as usize);
    let kind = match flags {
        FLAGS_TEXT => Kind::Text,
        FLAGS_BINARY => Kind::Binary,
        _ => return Err(RecordError::Malformed("unknown flags")),
    };
    if seq != expected_seq {
        return Err(RecordError::Malformed("sequence number out of place"));
    }
    let rest = &payload[PAYLOAD_FIXED..];
    if topic_len > rest.len() {
        return Err(RecordError::Malformed("topic longer than the record"));
    }
    let topic = std::str::from_utf8(&rest[..topic_len])
        .ok()
        .filter(|t| is_valid_topic(t))
        .ok_or(RecordError::Malformed("invalid topic"))?;
    let data = std::str::from_utf8(&rest[topic_len..])
        .map_err(|_| RecordError::Malformed("data is not UTF-8"))?;
    // A binary message is delivered as its bytes: data that does not
    // decode could not be.
    if kind == Kind::Binary && decode_binary(data).is_none() {
        return Err(RecordError::Malformed("binary data is not base64"));
    }
    Ok((
        Record {
            seq,
            unix_ms,
            topic,
            kind,
            data,
        },
        total,
    ))
}

/// Reads a whole segment: its header, then records until the end or the
/// first one that is not accepted.
pub fn scan(bytes: &[u8]) -> Result<Scan<'_>, HeaderError> {
    let (header, offset) = decode_header(bytes)?;
    Ok(Scan {
        bytes,
        offset,
        next_seq: header.first_seq,
        header,
        cut: None,
    })
}

/// A segment being scanned: an iterator of its good records. Once it ends,
/// [`Scan::cut`] says whether (and where) it stopped early.
pub struct Scan<'a> {
    bytes: &'a [u8],
    offset: usize,
    next_seq: u64,
    pub header: SegmentHeader,
    cut: Option<Cut>,
}

impl<'a> Scan<'a> {
    /// What a scan that has ended would cut (`None`: the segment is whole).
    pub fn cut(&self) -> Option<Cut> {
        self.cut
    }

    /// Bytes accepted so far (header and good records): the length the
    /// segment is cut to.
    pub fn valid_len(&self) -> usize {
        self.offset
    }

    /// The sequence number the next record carries (one past the last
    /// good one).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

impl<'a> Iterator for Scan<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.cut.is_some() || self.offset == self.bytes.len() {
            return None;
        }
        match decode_record(&self.bytes[self.offset..], self.next_seq) {
            Ok((record, len)) => {
                self.offset += len;
                self.next_seq += 1;
                Some(record)
            }
            Err(reason) => {
                self.cut = Some(Cut {
                    offset: self.offset,
                    bytes: self.bytes.len() - self.offset,
                    reason,
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    struct Owned {
        unix_ms: u64,
        topic: String,
        kind: Kind,
        data: String,
    }

    /// Text records, and binary ones whose data is the base64 of any bytes.
    fn owned() -> impl Strategy<Value = Owned> {
        let data = prop_oneof![
            ".{0,40}".prop_map(|d| (Kind::Text, d)),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| (Kind::Binary, crate::log::encode_binary(&b))),
        ];
        (any::<u64>(), "[A-Za-z0-9._~-]{1,20}", data).prop_map(|(unix_ms, topic, (kind, data))| {
            Owned {
                unix_ms,
                topic,
                kind,
                data,
            }
        })
    }

    /// A segment of `records` starting at `first`, and each record's end.
    fn segment(epoch: &str, first: u64, records: &[Owned]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        encode_header(
            &mut out,
            &SegmentHeader {
                epoch: epoch.into(),
                first_seq: first,
            },
        );
        let mut ends = vec![out.len()];
        for (i, r) in records.iter().enumerate() {
            encode_record(
                &mut out,
                &Record {
                    seq: first + i as u64,
                    unix_ms: r.unix_ms,
                    topic: &r.topic,
                    kind: r.kind,
                    data: &r.data,
                },
            );
            ends.push(out.len());
        }
        (out, ends)
    }

    fn scan_all(bytes: &[u8]) -> (Vec<Owned>, Option<Cut>, usize) {
        let mut s = scan(bytes).unwrap();
        let got = s
            .by_ref()
            .map(|r| Owned {
                unix_ms: r.unix_ms,
                topic: r.topic.into(),
                kind: r.kind,
                data: r.data.into(),
            })
            .collect();
        (got, s.cut(), s.valid_len())
    }

    fn same(a: &[Owned], b: &[Owned]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.unix_ms, &x.topic, x.kind, &x.data) == (y.unix_ms, &y.topic, y.kind, &y.data)
            })
    }

    #[test]
    fn a_record_is_laid_out_as_documented() {
        let mut out = Vec::new();
        let r = Record {
            seq: 7,
            unix_ms: 1000,
            topic: "t",
            kind: Kind::Text,
            data: "hi",
        };
        encode_record(&mut out, &r);
        assert_eq!(out.len(), r.encoded_len());
        assert_eq!(&out[..4], &(18u32 + 3).to_le_bytes());
        assert_eq!(&out[8..16], &7u64.to_le_bytes());
        assert_eq!(&out[16..24], &1000u64.to_le_bytes());
        assert_eq!(&out[24..], b"\0\x01thi");
        assert_eq!(decode_record(&out, 7).unwrap(), (r, out.len()));
        assert_eq!(
            decode_record(&out, 8).unwrap_err(),
            RecordError::Malformed("sequence number out of place")
        );
    }

    #[test]
    fn a_binary_record_has_flags_1_and_its_base64_as_data() {
        let mut out = Vec::new();
        let r = Record {
            seq: 7,
            unix_ms: 1000,
            topic: "t",
            kind: Kind::Binary,
            data: "AP8=",
        };
        encode_record(&mut out, &r);
        assert_eq!(&out[24..], b"\x01\x01tAP8=");
        let (back, _) = decode_record(&out, 7).unwrap();
        assert_eq!(back, r);
        assert_eq!(decode_binary(back.data).unwrap(), [0, 255]);
    }

    #[test]
    fn the_largest_stored_message_fits_a_record_as_base64_under_the_longest_topic() {
        let base64 = MAX_STORED_MESSAGE.div_ceil(3) * 4;
        assert!(PAYLOAD_FIXED + MAX_TOPIC_LEN + base64 <= MAX_PAYLOAD);
        let one_more = (MAX_STORED_MESSAGE + 1).div_ceil(3) * 4;
        assert!(PAYLOAD_FIXED + MAX_TOPIC_LEN + one_more + 3 > MAX_PAYLOAD);
    }

    #[test]
    fn a_header_names_its_epoch_and_first_sequence() {
        let h = SegmentHeader {
            epoch: "lz3k9a".into(),
            first_seq: 42,
        };
        let mut out = Vec::new();
        encode_header(&mut out, &h);
        assert_eq!(out.len(), h.encoded_len());
        assert_eq!(decode_header(&out).unwrap(), (h, out.len()));
        assert_eq!(decode_header(&out[..5]), Err(HeaderError::Incomplete));
        assert_eq!(
            decode_header(&out[..out.len() - 1]),
            Err(HeaderError::Incomplete)
        );
        let mut bad = out.clone();
        bad[0] = b'X';
        assert_eq!(decode_header(&bad), Err(HeaderError::BadMagic));
        let mut bad = out.clone();
        bad[10] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::Checksum));
    }

    #[test]
    fn a_record_that_checks_out_but_breaks_a_rule_is_refused() {
        // Flags, topic and UTF-8 are checked after the checksum: build the
        // bad payload and a checksum that matches it.
        fn with_payload(payload: &[u8]) -> Vec<u8> {
            let mut out = (payload.len() as u32).to_le_bytes().to_vec();
            let mut h = crc32fast::Hasher::new();
            h.update(&out);
            h.update(payload);
            out.extend_from_slice(&h.finalize().to_le_bytes());
            out.extend_from_slice(payload);
            out
        }
        let mut p = Vec::new();
        p.extend_from_slice(&1u64.to_le_bytes());
        p.extend_from_slice(&0u64.to_le_bytes());
        for (flags, topic, data, why) in [
            (2u8, &b"t"[..], &b"x"[..], "unknown flags"),
            (0, b"a b", b"x", "invalid topic"),
            (0, b"t", b"\xff", "data is not UTF-8"),
            (1, b"t", b"x", "binary data is not base64"),
            (1, b"t", b"AP8", "binary data is not base64"),
        ] {
            let mut q = p.clone();
            q.push(flags);
            q.push(topic.len() as u8);
            q.extend_from_slice(topic);
            q.extend_from_slice(data);
            assert_eq!(
                decode_record(&with_payload(&q), 1).unwrap_err(),
                RecordError::Malformed(why)
            );
        }
        let mut q = p.clone();
        q.extend_from_slice(&[0, 9, b't']);
        assert_eq!(
            decode_record(&with_payload(&q), 1).unwrap_err(),
            RecordError::Malformed("topic longer than the record")
        );
        let mut huge = Vec::new();
        huge.extend_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(decode_record(&huge, 1).unwrap_err(), RecordError::BadLength);
    }

    proptest! {
        /// What is encoded is scanned back, whole, in order.
        #[test]
        fn a_segment_scans_back_to_what_was_encoded(
            first in 1u64..1_000_000,
            records in proptest::collection::vec(owned(), 0..20),
        ) {
            let (bytes, _) = segment("e1", first, &records);
            let (got, cut, valid) = scan_all(&bytes);
            prop_assert!(same(&got, &records));
            prop_assert_eq!(cut, None);
            prop_assert_eq!(valid, bytes.len());
        }

        /// A segment cut anywhere after its header keeps exactly the
        /// records wholly before the cut, and reports the rest.
        #[test]
        fn any_truncation_keeps_every_whole_record_before_it(
            records in proptest::collection::vec(owned(), 1..12),
            at in any::<proptest::sample::Index>(),
        ) {
            let (bytes, ends) = segment("e1", 1, &records);
            let at = ends[0] + at.index(bytes.len() - ends[0]);
            let whole = ends.iter().filter(|&&e| e <= at).count() - 1;
            let (got, cut, valid) = scan_all(&bytes[..at]);
            prop_assert!(same(&got, &records[..whole]));
            prop_assert_eq!(valid, ends[whole]);
            if at == ends[whole] {
                prop_assert_eq!(cut, None);
            } else {
                let cut = cut.expect("a torn record is reported");
                prop_assert_eq!(cut.offset, ends[whole]);
                prop_assert_eq!(cut.bytes, at - ends[whole]);
            }
        }

        /// Any byte flipped in the records is detected: the scan keeps
        /// exactly the records before the damaged one and cuts from it on.
        #[test]
        fn any_flipped_byte_is_detected_and_what_precedes_it_is_kept(
            records in proptest::collection::vec(owned(), 1..12),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut bytes, ends) = segment("e1", 1, &records);
            let at = ends[0] + at.index(bytes.len() - ends[0]);
            bytes[at] ^= flip;
            let damaged = ends.iter().filter(|&&e| e <= at).count() - 1;
            let (got, cut, valid) = scan_all(&bytes);
            prop_assert!(same(&got, &records[..damaged]));
            prop_assert_eq!(valid, ends[damaged]);
            let cut = cut.expect("damage is reported");
            prop_assert_eq!(cut.offset, ends[damaged]);
            prop_assert_eq!(cut.bytes, bytes.len() - ends[damaged]);
        }

        /// A damaged header is refused, never read as records.
        #[test]
        fn any_flipped_header_byte_is_detected(
            at in 0usize..(8 + 1 + 2 + 8 + 4),
            flip in 1u8..=255,
        ) {
            let (mut bytes, _) = segment("e1", 1, &[]);
            bytes[at] ^= flip;
            prop_assert!(scan(&bytes).is_err());
        }
    }
}
