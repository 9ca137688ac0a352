//! RESP2 replies → `resp::Decoder`, with fuzzed limits.
//!
//! Oracle: the same replies and the same error however the bytes are split
//! (at once, in fuzzed pieces, byte by byte) and whether they are built or
//! taken raw (`next_raw`, read back with a `Reader`); after an error the
//! decoder answers that error for good; between feeds it holds no more than
//! one reply's limit; and every reply it returns, encoded again, decodes to
//! itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::wire::resp::{
    encode_reply, Decoded, Decoder, Limits, Reader, Reply, RespError,
};
use pushlab_fuzz::{control, split};

fn run(limits: Limits, pieces: &[&[u8]]) -> (Vec<Reply>, Option<RespError>) {
    let mut decoder = Decoder::with_limits(limits);
    let mut replies = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        loop {
            match decoder.next_reply() {
                Ok(Decoded::Reply(reply)) => replies.push(reply),
                Ok(Decoded::Incomplete) => break,
                Err(e) => {
                    assert_eq!(decoder.next_reply(), Err(e), "failed for good");
                    return (replies, Some(e));
                }
            }
        }
        assert!(decoder.buffered() <= limits.max_reply_len);
    }
    (replies, None)
}

/// Like `run`, every reply taken raw and read back.
fn run_raw(limits: Limits, pieces: &[&[u8]]) -> (Vec<Reply>, Option<RespError>) {
    let mut decoder = Decoder::with_limits(limits);
    let mut replies = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        loop {
            match decoder.next_raw() {
                Ok(Some(bytes)) => {
                    let mut reader = Reader::new(bytes);
                    replies.push(reader.reply().expect("checked bytes read back"));
                    assert_eq!(reader.remaining(), 0, "one reply, all its bytes");
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(decoder.next_raw(), Err(e), "failed for good");
                    return (replies, Some(e));
                }
            }
        }
        assert!(decoder.buffered() <= limits.max_reply_len);
    }
    (replies, None)
}

fuzz_target!(|data: &[u8]| {
    let (seed, input) = control(data);
    let limits = if seed & 0x80 != 0 {
        Limits {
            max_bulk_len: usize::from(seed & 0x0f),
            max_array_len: usize::from(seed & 0x07),
            max_depth: usize::from((seed >> 4) & 0x03),
            max_reply_len: usize::from(seed) / 2,
        }
    } else {
        Limits::default()
    };
    let whole = run(limits, &[input]);
    assert_eq!(run(limits, &split(seed, input)), whole, "depends on the split");
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(limits, &bytewise), whole, "depends on the split");
    assert_eq!(run_raw(limits, &split(seed, input)), whole, "raw differs");
    // Any bytes: a reader never panics.
    let mut reader = Reader::new(input);
    while reader.next_token().is_some() {}

    let mut again = Vec::new();
    for reply in &whole.0 {
        encode_reply(&mut again, reply);
    }
    assert_eq!(run(Limits::default(), &[&again]), (whole.0, None));
});
