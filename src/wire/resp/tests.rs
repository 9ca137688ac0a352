//! The examples of the RESP specification, each limit and error, and
//! property tests: encode → decode round trips, the same replies and error
//! however the bytes are split, and a reading of the spec as a whole-input
//! recursive parser to compare with.

use super::*;
use proptest::prelude::*;

/// Every reply in `bytes` fed at once, and the error that ended them.
fn decode_all(bytes: &[u8]) -> (Vec<Reply>, Option<RespError>) {
    decode_chunks(Limits::default(), &[bytes])
}

fn decode_chunks(limits: Limits, chunks: &[&[u8]]) -> (Vec<Reply>, Option<RespError>) {
    let mut decoder = Decoder::with_limits(limits);
    let mut replies = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        loop {
            match decoder.next_reply() {
                Ok(Decoded::Reply(r)) => replies.push(r),
                Ok(Decoded::Incomplete) => break,
                Err(e) => {
                    assert_eq!(decoder.next_reply(), Err(e), "an error is for good");
                    return (replies, Some(e));
                }
            }
        }
        // Between feeds at most the unfinished part of one reply is kept.
        assert!(decoder.buffered() <= limits.max_reply_len);
    }
    (replies, None)
}

/// How [`decode_modes`] takes replies.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Tree,
    Raw,
    /// Raw and built, by turns (a reply keeps the mode it began in).
    Alternating,
}

/// Like [`decode_chunks`], taking raw replies as `mode` says: each raw
/// reply is read back with a [`Reader`], which must take all its bytes
/// (and skip it whole as well).
fn decode_modes(limits: Limits, chunks: &[&[u8]], mode: Mode) -> (Vec<Reply>, Option<RespError>) {
    let mut decoder = Decoder::with_limits(limits);
    let mut replies = Vec::new();
    let mut turn = 0;
    for chunk in chunks {
        decoder.feed(chunk);
        loop {
            turn += 1;
            let raw = match mode {
                Mode::Tree => false,
                Mode::Raw => true,
                Mode::Alternating => turn % 2 == 0,
            };
            match decoder.next(raw) {
                Ok(Next::Reply(r)) => replies.push(r),
                Ok(Next::Raw(bytes)) => {
                    let mut reader = Reader::new(bytes);
                    replies.push(reader.reply().expect("checked bytes read back"));
                    assert_eq!(reader.remaining(), 0, "one reply, all of its bytes");
                    let mut skipper = Reader::new(bytes);
                    assert_eq!(skipper.skip_value(), Some(()));
                    assert_eq!(skipper.remaining(), 0);
                }
                Ok(Next::Incomplete) => break,
                Err(e) => {
                    assert_eq!(decoder.next(raw), Err(e), "an error is for good");
                    return (replies, Some(e));
                }
            }
        }
        assert!(decoder.buffered() <= limits.max_reply_len);
    }
    (replies, None)
}

fn one(bytes: &[u8]) -> Reply {
    let (mut replies, error) = decode_all(bytes);
    assert_eq!(error, None, "{:?}", String::from_utf8_lossy(bytes));
    assert_eq!(replies.len(), 1, "{:?}", String::from_utf8_lossy(bytes));
    replies.remove(0)
}

fn error_of(limits: Limits, bytes: &[u8]) -> RespError {
    decode_chunks(limits, &[bytes])
        .1
        .unwrap_or_else(|| panic!("no error for {:?}", String::from_utf8_lossy(bytes)))
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn encoded(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    encode_reply(&mut out, reply);
    out
}

// ------------------------------------------------ the specification's examples

#[test]
fn simple_strings_are_the_bytes_between_plus_and_crlf() {
    // Spec, "Simple strings": "+OK\r\n".
    assert_eq!(one(b"+OK\r\n"), Reply::Simple(b"OK".to_vec()));
    assert_eq!(one(b"+\r\n"), Reply::Simple(Vec::new()));
}

#[test]
fn errors_carry_their_message_and_its_first_word_is_the_code() {
    // Spec, "Simple errors".
    let r = one(b"-Error message\r\n");
    assert_eq!(r, Reply::Error(b"Error message".to_vec()));
    let r = one(b"-ERR unknown command 'asdf'\r\n");
    assert_eq!(r.error_code(), Some(&b"ERR"[..]));
    let r = one(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert!(r.is_error());
    assert_eq!(r.error_code(), Some(&b"WRONGTYPE"[..]));
    let r = one(b"-NOSCRIPT No matching script. Please use EVAL.\r\n");
    assert_eq!(r.error_code(), Some(&b"NOSCRIPT"[..]));
    assert_eq!(one(b"+OK\r\n").error_code(), None);
}

#[test]
fn integers_are_signed_64_bit_with_an_optional_sign() {
    // Spec, "Integers": ":0\r\n", ":1000\r\n", ":[<+|->]<value>\r\n".
    assert_eq!(one(b":0\r\n"), Reply::Integer(0));
    assert_eq!(one(b":1000\r\n"), Reply::Integer(1000));
    assert_eq!(one(b":-1000\r\n"), Reply::Integer(-1000));
    assert_eq!(one(b":+1000\r\n"), Reply::Integer(1000));
    assert_eq!(one(b":9223372036854775807\r\n"), Reply::Integer(i64::MAX));
    assert_eq!(one(b":-9223372036854775808\r\n"), Reply::Integer(i64::MIN));
}

#[test]
fn bulk_strings_are_length_prefixed_and_binary_safe() {
    // Spec, "Bulk strings": "$5\r\nhello\r\n", the empty string, the null.
    assert_eq!(one(b"$5\r\nhello\r\n"), bulk("hello"));
    assert_eq!(one(b"$0\r\n\r\n"), bulk(""));
    assert_eq!(one(b"$-1\r\n"), Reply::NullBulk);
    assert_eq!(one(b"$4\r\n\r\n\r\n\r\n"), bulk("\r\n\r\n"));
    assert_eq!(one(b"$2\r\n\0\xff\r\n"), Reply::Bulk(vec![0, 0xff]));
}

#[test]
fn arrays_hold_any_values_nested_and_null() {
    // Spec, "Arrays" and "Null arrays", each example in turn.
    assert_eq!(one(b"*0\r\n"), Reply::Array(vec![]));
    assert_eq!(
        one(b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n"),
        Reply::Array(vec![bulk("hello"), bulk("world")])
    );
    assert_eq!(
        one(b"*3\r\n:1\r\n:2\r\n:3\r\n"),
        Reply::Array(vec![
            Reply::Integer(1),
            Reply::Integer(2),
            Reply::Integer(3)
        ])
    );
    assert_eq!(
        one(b"*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n$5\r\nhello\r\n"),
        Reply::Array(vec![
            Reply::Integer(1),
            Reply::Integer(2),
            Reply::Integer(3),
            Reply::Integer(4),
            bulk("hello"),
        ])
    );
    assert_eq!(
        one(b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-World\r\n"),
        Reply::Array(vec![
            Reply::Array(vec![
                Reply::Integer(1),
                Reply::Integer(2),
                Reply::Integer(3)
            ]),
            Reply::Array(vec![
                Reply::Simple(b"Hello".to_vec()),
                Reply::Error(b"World".to_vec())
            ]),
        ])
    );
    assert_eq!(one(b"*-1\r\n"), Reply::NullArray);
    assert_eq!(
        one(b"*3\r\n$5\r\nhello\r\n$-1\r\n$5\r\nworld\r\n"),
        Reply::Array(vec![bulk("hello"), Reply::NullBulk, bulk("world")])
    );
}

#[test]
fn a_command_is_an_array_of_bulk_strings() {
    // Spec, "Sending commands to a Redis server": LLEN mylist.
    let mut out = Vec::new();
    encode_command(&mut out, &[Arg::from("LLEN"), Arg::from("mylist")]);
    assert_eq!(out, b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n");
    // ... and the server's answer, ":48293\r\n".
    assert_eq!(one(b":48293\r\n"), Reply::Integer(48293));
}

#[test]
fn numbers_in_commands_are_written_in_decimal_without_allocating_per_argument() {
    let mut out = Vec::new();
    encode_command(
        &mut out,
        &[
            Arg::from("XADD"),
            Arg::Uint(0),
            Arg::Uint(u64::MAX),
            Arg::Int(-1),
            Arg::Int(i64::MIN),
            Arg::Bytes(b""),
        ],
    );
    assert_eq!(
        out,
        b"*6\r\n$4\r\nXADD\r\n$1\r\n0\r\n$20\r\n18446744073709551615\r\n\
          $2\r\n-1\r\n$20\r\n-9223372036854775808\r\n$0\r\n\r\n"
    );
    // Appends: several commands pipelined in one buffer.
    let before = out.len();
    encode_command(&mut out, &[Arg::from("PING")]);
    assert_eq!(&out[before..], b"*1\r\n$4\r\nPING\r\n");
}

#[test]
fn pipelined_replies_come_out_in_order() {
    let (replies, error) = decode_all(b"+OK\r\n:1\r\n$-1\r\n*1\r\n$1\r\nx\r\n-ERR no\r\n");
    assert_eq!(error, None);
    assert_eq!(
        replies,
        vec![
            Reply::Simple(b"OK".to_vec()),
            Reply::Integer(1),
            Reply::NullBulk,
            Reply::Array(vec![bulk("x")]),
            Reply::Error(b"ERR no".to_vec()),
        ]
    );
}

#[test]
fn an_xread_reply_decodes_five_arrays_deep() {
    // XREAD BLOCK 0 STREAMS log 41-0 → one stream, one entry, two fields.
    let wire = b"*1\r\n*2\r\n$3\r\nlog\r\n*1\r\n*2\r\n$4\r\n42-0\r\n*4\r\n\
                 $1\r\nt\r\n$4\r\nnews\r\n$1\r\nd\r\n$2\r\nhi\r\n";
    let expected = Reply::Array(vec![Reply::Array(vec![
        bulk("log"),
        Reply::Array(vec![Reply::Array(vec![
            bulk("42-0"),
            Reply::Array(vec![bulk("t"), bulk("news"), bulk("d"), bulk("hi")]),
        ])]),
    ])]);
    assert_eq!(one(wire), expected);
    assert_eq!(encoded(&expected), wire);
}

// ------------------------------------------------------------ errors and limits

#[test]
fn each_malformed_input_gets_its_own_error() {
    let limits = Limits::default();
    assert_eq!(error_of(limits, b"?x\r\n"), RespError::UnknownType(b'?'));
    assert_eq!(
        error_of(limits, b"+OK\r\n\r\n"),
        RespError::UnknownType(b'\r')
    );
    assert_eq!(error_of(limits, b"+OK\rX"), RespError::BadLineEnding);
    assert_eq!(error_of(limits, b"+OK\n"), RespError::BadLineEnding);
    assert_eq!(error_of(limits, b":\r\n"), RespError::BadInteger);
    assert_eq!(error_of(limits, b":-\r\n"), RespError::BadInteger);
    assert_eq!(error_of(limits, b":1x\r\n"), RespError::BadInteger);
    assert_eq!(error_of(limits, b": 1\r\n"), RespError::BadInteger);
    assert_eq!(
        error_of(limits, b":9223372036854775808\r\n"),
        RespError::BadInteger
    );
    assert_eq!(
        error_of(limits, b":123456789012345678901"),
        RespError::BadInteger
    );
    assert_eq!(error_of(limits, b"$\r\n"), RespError::BadLength);
    assert_eq!(error_of(limits, b"$-2\r\n"), RespError::BadLength);
    assert_eq!(error_of(limits, b"$+5\r\n"), RespError::BadLength);
    assert_eq!(error_of(limits, b"*1.5\r\n"), RespError::BadLength);
    assert_eq!(
        error_of(limits, b"*99999999999999999999\r\n"),
        RespError::BadLength
    );
    assert_eq!(
        error_of(limits, b"$3\r\nabcd\r\n"),
        RespError::MissingBulkTerminator
    );
    assert_eq!(
        error_of(limits, b"$3\r\nabc\rx"),
        RespError::MissingBulkTerminator
    );
}

#[test]
fn an_unterminated_number_is_refused_after_twenty_characters() {
    // Memory stays bounded even before the line ends.
    let mut decoder = Decoder::new();
    decoder.feed(b"$00000000000000000000");
    assert_eq!(decoder.next_reply(), Ok(Decoded::Incomplete));
    decoder.feed(b"0");
    assert_eq!(decoder.next_reply(), Err(RespError::BadLength));
}

#[test]
fn a_bulk_string_longer_than_the_limit_is_refused_at_its_header() {
    let limits = Limits {
        max_bulk_len: 4,
        ..Limits::default()
    };
    assert_eq!(one(b"$4\r\nabcd\r\n"), bulk("abcd"));
    assert_eq!(
        decode_chunks(limits, &[b"$4\r\nabcd\r\n"]).0,
        vec![bulk("abcd")]
    );
    // Refused before any of the data arrives.
    assert_eq!(
        error_of(limits, b"$5\r\n"),
        RespError::BulkTooLong { len: 5, limit: 4 }
    );
    assert_eq!(
        error_of(limits, b"$18446744073709551615\r\n"),
        RespError::BulkTooLong {
            len: u64::MAX,
            limit: 4
        }
    );
}

#[test]
fn an_array_longer_than_the_limit_is_refused_at_its_header() {
    let limits = Limits {
        max_array_len: 2,
        ..Limits::default()
    };
    assert_eq!(
        decode_chunks(limits, &[b"*2\r\n:1\r\n:2\r\n"]).0,
        vec![Reply::Array(vec![Reply::Integer(1), Reply::Integer(2)])]
    );
    assert_eq!(
        error_of(limits, b"*3\r\n"),
        RespError::ArrayTooLong { len: 3, limit: 2 }
    );
    assert_eq!(
        error_of(limits, b"*1\r\n*3\r\n"),
        RespError::ArrayTooLong { len: 3, limit: 2 }
    );
}

#[test]
fn arrays_nested_deeper_than_the_limit_are_refused() {
    let limits = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    assert_eq!(
        decode_chunks(limits, &[b"*1\r\n*1\r\n:1\r\n"]).0,
        vec![Reply::Array(vec![Reply::Array(vec![Reply::Integer(1)])])]
    );
    // Empty and null arrays count as a level too.
    for deep in [
        &b"*1\r\n*1\r\n*0\r\n"[..],
        b"*1\r\n*1\r\n*-1\r\n",
        b"*1\r\n*1\r\n*1\r\n",
    ] {
        assert_eq!(error_of(limits, deep), RespError::TooDeep { limit: 2 });
    }
    let flat = Limits {
        max_depth: 0,
        ..Limits::default()
    };
    assert_eq!(decode_chunks(flat, &[b":1\r\n"]).0, vec![Reply::Integer(1)]);
    assert_eq!(error_of(flat, b"*0\r\n"), RespError::TooDeep { limit: 0 });
}

#[test]
fn a_reply_longer_than_the_limit_is_refused_however_it_is_built() {
    let limits = Limits {
        max_reply_len: 11,
        ..Limits::default()
    };
    // Exactly 11 bytes pass, and the count starts again at each reply.
    let (replies, error) = decode_chunks(limits, &[b"$5\r\nhello\r\n$5\r\nworld\r\n+12345678\r\n"]);
    assert_eq!(error, None);
    assert_eq!(replies.len(), 3);
    let too_long = RespError::ReplyTooLong { limit: 11 };
    // A long simple string, before its end arrives.
    assert_eq!(error_of(limits, b"+123456789ab"), too_long);
    // A bulk string whose header announces too much.
    assert_eq!(error_of(limits, b"$6\r\n"), too_long);
    // Many small values in one array.
    assert_eq!(error_of(limits, b"*9\r\n:1\r\n:2\r\n"), too_long);
    // The 12th byte is the LF of the line: refused at the LF.
    assert_eq!(error_of(limits, b"+123456789\r\n"), too_long);
}

#[test]
fn after_an_error_the_decoder_takes_nothing_more() {
    let mut decoder = Decoder::new();
    decoder.feed(b":1\r\n!");
    assert_eq!(decoder.next_reply(), Ok(Decoded::Reply(Reply::Integer(1))));
    assert_eq!(decoder.next_reply(), Err(RespError::UnknownType(b'!')));
    decoder.feed(b"+OK\r\n");
    assert_eq!(decoder.next_reply(), Err(RespError::UnknownType(b'!')));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn the_decoder_knows_when_it_is_mid_reply() {
    let mut decoder = Decoder::new();
    assert!(!decoder.is_mid_reply());
    decoder.feed(b"*2\r\n:1\r\n");
    assert_eq!(decoder.next_reply(), Ok(Decoded::Incomplete));
    // Nothing buffered, but an array is half full.
    assert_eq!(decoder.buffered(), 0);
    assert!(decoder.is_mid_reply());
    decoder.feed(b"$3\r\nab");
    assert_eq!(decoder.next_reply(), Ok(Decoded::Incomplete));
    assert!(decoder.is_mid_reply());
    decoder.feed(b"c\r\n");
    assert!(matches!(decoder.next_reply(), Ok(Decoded::Reply(_))));
    assert!(!decoder.is_mid_reply());
}

#[test]
fn a_large_bulk_string_fed_in_pieces_is_not_rescanned() {
    // 1 MiB in 1-byte-to-4-KiB pieces: the data is copied once, never
    // searched for CRLF (it may contain any byte).
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let wire = encoded(&Reply::Bulk(data.clone()));
    let mut decoder = Decoder::new();
    let mut got = None;
    for chunk in wire.chunks(4096) {
        decoder.feed(chunk);
        if let Ok(Decoded::Reply(r)) = decoder.next_reply() {
            got = Some(r);
        }
        assert!(decoder.buffered() <= 2);
    }
    assert_eq!(got, Some(Reply::Bulk(data)));
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        RespError::BulkTooLong { len: 9, limit: 4 }.to_string(),
        "RESP bulk string of 9 bytes is longer than the limit of 4"
    );
    assert_eq!(
        RespError::UnknownType(b'!').to_string(),
        "RESP value starts with unknown type byte 0x21"
    );
}

// ------------------------------------------------------------ a second reading

/// The spec read literally over the whole input: recursive, not resumable,
/// default limits. Returns the replies and whether bytes that cannot start
/// a valid reply follow them.
fn reference_decode(mut input: &[u8]) -> (Vec<Reply>, bool) {
    fn line(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let end = input.windows(2).position(|w| w == b"\r\n")?;
        Some((&input[..end], &input[end + 2..]))
    }
    /// `Some(Ok)`: a value; `Some(Err(()))`: not RESP; `None`: incomplete.
    fn value(input: &[u8], depth: usize) -> Option<Result<(Reply, &[u8]), ()>> {
        let (&kind, rest) = input.split_first()?;
        if !b"+-:$*".contains(&kind) {
            return Some(Err(()));
        }
        let text_ok = |t: &[u8]| !t.contains(&b'\r') && !t.contains(&b'\n');
        // A lone CR or LF in a line is an error even before the line ends.
        // Numbers have at most 20 characters (`i64::MIN`), ended or not.
        let is_number = matches!(kind, b':' | b'$' | b'*');
        let line_so_far = line(rest).map_or(rest, |(text, _)| text);
        if is_number && text_ok(line_so_far) && line_so_far.len() > 20 {
            return Some(Err(()));
        }
        let (text, rest) = match line(rest) {
            Some((text, rest)) if text_ok(text) => (text, rest),
            Some(_) => return Some(Err(())),
            None if !text_ok(rest.strip_suffix(b"\r").unwrap_or(rest)) => return Some(Err(())),
            None => return None,
        };
        let as_str = std::str::from_utf8(text).ok();
        let length = || -> Result<Option<usize>, ()> {
            match as_str {
                Some("-1") => Ok(None),
                Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    s.parse().map(Some).map_err(|_| ())
                }
                _ => Err(()),
            }
        };
        Some(Ok(match kind {
            b'+' => (Reply::Simple(text.to_vec()), rest),
            b'-' => (Reply::Error(text.to_vec()), rest),
            b':' => match as_str.and_then(|s| s.parse().ok()) {
                Some(n) => (Reply::Integer(n), rest),
                None => return Some(Err(())),
            },
            b'$' => match length() {
                Err(()) => return Some(Err(())),
                Ok(None) => (Reply::NullBulk, rest),
                Ok(Some(len)) => {
                    if rest.len() < len + 2 {
                        let tail = &rest[len.min(rest.len())..];
                        if !b"\r\n".starts_with(tail) {
                            return Some(Err(()));
                        }
                        return None;
                    }
                    if &rest[len..len + 2] != b"\r\n" {
                        return Some(Err(()));
                    }
                    (Reply::Bulk(rest[..len].to_vec()), &rest[len + 2..])
                }
            },
            b'*' => {
                if depth >= DEFAULT_MAX_DEPTH {
                    return Some(Err(()));
                }
                match length() {
                    Err(()) => return Some(Err(())),
                    Ok(None) => (Reply::NullArray, rest),
                    Ok(Some(count)) => {
                        let mut items = Vec::new();
                        let mut rest = rest;
                        for _ in 0..count {
                            match value(rest, depth + 1)? {
                                Ok((item, after)) => {
                                    items.push(item);
                                    rest = after;
                                }
                                Err(()) => return Some(Err(())),
                            }
                        }
                        (Reply::Array(items), rest)
                    }
                }
            }
            _ => unreachable!("checked above"),
        }))
    }
    let mut replies = Vec::new();
    loop {
        match value(input, 0) {
            Some(Ok((reply, rest))) => {
                replies.push(reply);
                input = rest;
            }
            Some(Err(())) => return (replies, true),
            None => return (replies, false),
        }
    }
}

// ---------------------------------------------------------------- properties

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let line = prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..12,
    );
    let leaf = prop_oneof![
        line.clone().prop_map(Reply::Simple),
        line.prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Reply::Bulk),
        Just(Reply::NullBulk),
        Just(Reply::NullArray),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Reply::Array)
    })
}

/// `bytes` cut at the given points (taken modulo its length).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks
}

/// Byte streams made of the pieces that matter to the decoder: type bytes,
/// lengths right and wrong, CR and LF alone, data.
fn token_stream() -> impl Strategy<Value = Vec<u8>> {
    let tokens: Vec<&[u8]> = vec![
        b"+",
        b"-",
        b":",
        b"$",
        b"*",
        b"\r\n",
        b"\r",
        b"\n",
        b"-1",
        b"0",
        b"1",
        b"2",
        b"3",
        b"5",
        b"99",
        b"x",
        b"OK",
        b" ",
        b"+OK\r\n",
        b"$3\r\nabc\r\n",
        b"*2\r\n",
        b":-7\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"\0",
    ];
    prop::collection::vec(prop::sample::select(tokens), 0..40).prop_map(|t| t.concat())
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (0usize..8, 0usize..5, 0usize..4, 0usize..40).prop_map(|(bulk, array, depth, reply)| Limits {
        max_bulk_len: bulk,
        max_array_len: array,
        max_depth: depth,
        max_reply_len: reply,
    })
}

proptest! {
    #[test]
    fn encoded_replies_decode_to_themselves_however_split(
        replies in prop::collection::vec(reply_strategy(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for r in &replies {
            encode_reply(&mut wire, r);
        }
        prop_assert_eq!(decode_chunks(Limits::default(), &split(&wire, &cuts)), (replies, None));
    }

    #[test]
    fn raw_replies_are_the_encoded_bytes_and_read_back_to_the_same_values(
        replies in prop::collection::vec(reply_strategy(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        let mut each = Vec::new();
        for r in &replies {
            encode_reply(&mut wire, r);
            each.push(encoded(r));
        }
        let chunks = split(&wire, &cuts);
        for mode in [Mode::Raw, Mode::Alternating] {
            prop_assert_eq!(
                decode_modes(Limits::default(), &chunks, mode),
                (replies.clone(), None)
            );
        }
        // The bytes themselves, reply by reply.
        let mut decoder = Decoder::new();
        let mut raw = Vec::new();
        for chunk in &chunks {
            decoder.feed(chunk);
            while let Some(bytes) = decoder.next_raw().unwrap() {
                raw.push(bytes.to_vec());
            }
        }
        prop_assert_eq!(raw, each);
    }

    #[test]
    fn raw_and_built_replies_agree_on_values_and_errors_however_split(
        stream in prop_oneof![token_stream(), prop::collection::vec(any::<u8>(), 0..200)],
        limits in prop_oneof![Just(Limits::default()), small_limits()],
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = decode_modes(limits, &[&stream], Mode::Tree);
        prop_assert_eq!(&decode_chunks(limits, &[&stream]), &whole);
        let chunks = split(&stream, &cuts);
        prop_assert_eq!(&decode_modes(limits, &chunks, Mode::Raw), &whole);
        prop_assert_eq!(&decode_modes(limits, &chunks, Mode::Alternating), &whole);
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(&decode_modes(limits, &bytewise, Mode::Raw), &whole);
    }

    #[test]
    fn a_reader_never_panics_on_any_bytes(
        bytes in prop_oneof![
            token_stream(),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
    ) {
        let mut reader = Reader::new(&bytes);
        while reader.next_token().is_some() {}
        let mut skipper = Reader::new(&bytes);
        while skipper.skip_value().is_some() && skipper.remaining() > 0 {}
    }

    #[test]
    fn encoded_commands_decode_as_arrays_of_bulk_strings(
        args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..8),
        numbers in prop::collection::vec(any::<u64>(), 0..3),
    ) {
        let mut list: Vec<Arg<'_>> = args.iter().map(|a| Arg::Bytes(a)).collect();
        list.extend(numbers.iter().map(|&n| Arg::Uint(n)));
        let mut wire = Vec::new();
        encode_command(&mut wire, &list);
        let mut expected: Vec<Reply> = args.iter().cloned().map(Reply::Bulk).collect();
        expected.extend(numbers.iter().map(|n| bulk(&n.to_string())));
        prop_assert_eq!(decode_all(&wire), (vec![Reply::Array(expected)], None));
    }

    #[test]
    fn integers_round_trip(n in any::<i64>()) {
        let wire = encoded(&Reply::Integer(n));
        let expected = format!(":{n}\r\n");
        prop_assert_eq!(&wire, expected.as_bytes());
        prop_assert_eq!(one(&wire), Reply::Integer(n));
    }

    #[test]
    fn any_split_gives_the_same_replies_and_error(
        stream in token_stream(),
        limits in prop_oneof![Just(Limits::default()), small_limits()],
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = decode_chunks(limits, &[&stream]);
        prop_assert_eq!(decode_chunks(limits, &split(&stream, &cuts)), whole.clone());
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(decode_chunks(limits, &bytewise), whole);
    }

    #[test]
    fn the_decoder_agrees_with_a_literal_reading_of_the_spec(stream in token_stream()) {
        let (replies, error) = decode_all(&stream);
        let (expected, bad) = reference_decode(&stream);
        prop_assert_eq!(replies, expected);
        prop_assert_eq!(error.is_some(), bad, "error {:?}", error);
    }

    #[test]
    fn garbage_never_panics_and_is_split_invariant(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        limits in prop_oneof![Just(Limits::default()), small_limits()],
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = decode_chunks(limits, &[&bytes]);
        prop_assert_eq!(decode_chunks(limits, &split(&bytes, &cuts)), whole);
    }
}

#[test]
fn an_xread_reply_is_walked_raw_without_building_it() {
    let wire = b"*1\r\n*2\r\n$5\r\np:log\r\n*2\r\n\
                 *2\r\n$3\r\n7-0\r\n*4\r\n$1\r\nt\r\n$4\r\nnews\r\n$1\r\nd\r\n$2\r\nhi\r\n\
                 *2\r\n$3\r\n8-0\r\n*2\r\n$1\r\nt\r\n$1\r\nx\r\n+OK\r\n";
    let mut decoder = Decoder::new();
    // Fed in two pieces: the reply's start stays until it is whole.
    decoder.feed(&wire[..40]);
    assert_eq!(decoder.next_raw(), Ok(None));
    decoder.feed(&wire[40..]);
    let raw = decoder.next_raw().unwrap().unwrap().to_vec();
    assert_eq!(raw, &wire[..wire.len() - 5]);
    let mut r = Reader::new(&raw);
    assert_eq!(r.array(), Some(1));
    assert_eq!(r.array(), Some(2));
    assert_eq!(r.bulk(), Some(&b"p:log"[..]));
    assert_eq!(r.array(), Some(2));
    assert_eq!(r.array(), Some(2));
    assert_eq!(r.bulk(), Some(&b"7-0"[..]));
    assert_eq!(r.array(), Some(4));
    assert_eq!(r.bulk(), Some(&b"t"[..]));
    assert_eq!(r.bulk(), Some(&b"news"[..]));
    assert_eq!(r.skip_value(), Some(()));
    assert_eq!(r.bulk(), Some(&b"hi"[..]));
    assert_eq!(r.skip_value(), Some(()), "the second entry, whole");
    assert_eq!((r.remaining(), r.next_token()), (0, None));
    // The next reply is built or raw, as asked.
    assert_eq!(decoder.next_raw(), Ok(Some(&b"+OK\r\n"[..])));
    assert_eq!(decoder.next_raw(), Ok(None));
}

#[test]
fn a_reader_stops_at_bytes_that_are_not_resp() {
    for odd in [
        &b"\r\n"[..],
        b"\r\n+OK\r\n",
        b"+",
        b"+OK\r",
        b"+OK\rx",
        b"$3\r\nab",
        b"$3\r\nabcd\r\n",
        b"$99999999999999999999999\r\n",
        b":x\r\n",
        b"*-2\r\n",
        b"?\r\n",
    ] {
        let mut r = Reader::new(odd);
        assert_eq!(r.next_token(), None, "{:?}", String::from_utf8_lossy(odd));
    }
    let mut r = Reader::new(b"*3\r\n:1\r\n");
    assert_eq!(r.skip_value(), None, "an array cut short");
}

#[test]
fn a_reply_begun_raw_and_finished_by_next_reply_comes_built() {
    let reply = Reply::Array(vec![bulk("a"), Reply::Integer(7), Reply::NullBulk]);
    let wire = encoded(&reply);
    let mut decoder = Decoder::new();
    decoder.feed(&wire[..5]);
    assert_eq!(decoder.next_raw(), Ok(None));
    decoder.feed(&wire[5..]);
    assert_eq!(decoder.next_reply(), Ok(Decoded::Reply(reply.clone())));
    // And the other way round: begun built, finished raw, the same bytes.
    decoder.feed(&wire[..5]);
    assert_eq!(decoder.next_reply(), Ok(Decoded::Incomplete));
    decoder.feed(&wire[5..]);
    assert_eq!(decoder.next_raw(), Ok(Some(&wire[..])));
}
