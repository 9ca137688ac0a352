//! The append commands byte for byte, the script's SHA, its replies, and
//! the append protocol against the scripted fake.

use super::*;
use crate::redis::fake::{sha1_hex, FakeRedis};
use crate::wire::resp::encode_command;

fn keys() -> LogKeys {
    LogKeys::new("{pl}:")
}

fn append<'a>(keys: &'a LogKeys, epoch: &'a str, topic: &'a str, data: &'a str) -> Append<'a> {
    Append {
        keys,
        proposed_epoch: epoch,
        max_len: 3,
        topic: topic.as_bytes(),
        data: data.as_bytes(),
        origin: b"n9:17",
        kind: Kind::Text,
    }
}

fn wire(args: &[Arg<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_command(&mut out, args);
    out
}

#[test]
fn the_sha_named_in_the_code_is_the_sha_of_the_script() {
    assert_eq!(sha1_hex(APPEND_SCRIPT), APPEND_SCRIPT_SHA1);
}

#[test]
fn an_origin_names_the_node_and_the_ticket() {
    assert_eq!(Origin::encode("k3v9", 42), b"k3v9:42");
    assert_eq!(
        Origin::parse(b"k3v9:42"),
        Some(Origin {
            node: b"k3v9",
            ticket: 42
        })
    );
    for odd in [
        &b""[..],
        b"k3v9",
        b"k3v9:",
        b"k3v9:4x",
        b"k3v9:123456789012345678901",
    ] {
        assert_eq!(Origin::parse(odd), None, "{odd:?}");
    }
}

#[test]
fn the_epoch_script_installs_the_proposal_only_when_redis_has_none() {
    let k = keys();
    let mut redis = FakeRedis::new(k.clone());
    let read = |r| decode_epoch_reply(r).map(|a| (a.epoch, a.seq));
    let first = call(&mut redis, &epoch_eval_command(&k, "aaa"));
    assert_eq!(read(first), Ok(("aaa".into(), 0)));
    call(
        &mut redis,
        &append_eval_command(&append(&k, "bbb", "t", "1")),
    );
    let second = call(&mut redis, &epoch_eval_command(&k, "bbb"));
    assert_eq!(read(second), Ok(("aaa".into(), 1)));
    let bytes = wire(&epoch_eval_command(&k, "aaa"));
    let head = format!("*6\r\n$4\r\nEVAL\r\n${}\r\n", EPOCH_SCRIPT.len());
    assert!(bytes.starts_with(head.as_bytes()));
    assert!(bytes.ends_with(b"$1\r\n2\r\n$9\r\n{pl}:meta\r\n$8\r\n{pl}:log\r\n$3\r\naaa\r\n"));
}

#[test]
fn keys_share_the_prefix() {
    let k = LogKeys::new("{pushlab}:");
    assert_eq!(k.meta(), b"{pushlab}:meta");
    assert_eq!(k.stream(), b"{pushlab}:log");
}

#[test]
fn evalsha_names_two_keys_then_epoch_max_len_topic_data_origin_and_kind() {
    let k = keys();
    let bytes = wire(&append_evalsha_command(&append(&k, "e1", "news", "hi")));
    let expected = [
        "*11\r\n",
        "$7\r\nEVALSHA\r\n",
        "$40\r\n86b8cac2fbaf86c7058f4d8342ed6e47382e8fca\r\n",
        "$1\r\n2\r\n",
        "$9\r\n{pl}:meta\r\n",
        "$8\r\n{pl}:log\r\n",
        "$2\r\ne1\r\n",
        "$1\r\n3\r\n",
        "$4\r\nnews\r\n",
        "$2\r\nhi\r\n",
        "$5\r\nn9:17\r\n",
        "$1\r\nt\r\n",
    ]
    .concat();
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
}

#[test]
fn eval_carries_the_script_and_the_same_arguments() {
    let k = keys();
    let a = append(&k, "e1", "news", "hi");
    let eval = append_eval_command(&a);
    let evalsha = append_evalsha_command(&a);
    assert_eq!(eval[0], Arg::from("EVAL"));
    assert_eq!(eval[1], Arg::from(APPEND_SCRIPT));
    assert_eq!(eval[2..], evalsha[2..]);
    assert_eq!(
        wire(&script_load_command()),
        [
            format!(
                "*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n${}\r\n",
                APPEND_SCRIPT.len()
            )
            .as_bytes(),
            APPEND_SCRIPT.as_bytes(),
            b"\r\n",
        ]
        .concat()
    );
}

#[test]
fn max_len_zero_is_sent_as_one() {
    let k = keys();
    let a = Append {
        max_len: 0,
        ..append(&k, "e1", "t", "d")
    };
    assert_eq!(append_evalsha_command(&a)[6], Arg::Uint(1));
}

#[test]
fn the_scripts_reply_gives_the_id_or_says_why_not() {
    let ok = Reply::Array(vec![Reply::Bulk(b"k3v9".to_vec()), Reply::Integer(42)]);
    assert_eq!(
        decode_append_reply(ok),
        Ok(Appended {
            epoch: "k3v9".into(),
            seq: 42
        })
    );
    let noscript = Reply::Error(b"NOSCRIPT No matching script. Please use EVAL.".to_vec());
    assert_eq!(decode_append_reply(noscript), Err(AppendError::NoScript));
    let oom = b"OOM command not allowed when used memory > 'maxmemory'.".to_vec();
    assert_eq!(
        decode_append_reply(Reply::Error(oom.clone())),
        Err(AppendError::Refused(oom))
    );
    for odd in [
        Reply::Simple(b"OK".to_vec()),
        Reply::Array(vec![Reply::Bulk(b"k3v9".to_vec())]),
        Reply::Array(vec![Reply::Bulk(b"k3-v9".to_vec()), Reply::Integer(1)]),
        Reply::Array(vec![Reply::Bulk(Vec::new()), Reply::Integer(1)]),
        Reply::Array(vec![Reply::Bulk(b"k3v9".to_vec()), Reply::Integer(0)]),
        Reply::Array(vec![Reply::Integer(1), Reply::Bulk(b"k3v9".to_vec())]),
    ] {
        assert_eq!(
            decode_append_reply(odd.clone()),
            Err(AppendError::Unexpected(odd))
        );
    }
}

#[test]
fn script_load_is_confirmed_by_the_sha() {
    assert!(is_script_loaded(&Reply::Bulk(
        APPEND_SCRIPT_SHA1.as_bytes().to_vec()
    )));
    assert!(!is_script_loaded(&Reply::Bulk(b"0000".to_vec())));
    assert!(!is_script_loaded(&Reply::Error(b"ERR".to_vec())));
}

/// Sends one command to the fake and decodes its one reply.
fn call(fake: &mut FakeRedis, args: &[Arg<'_>]) -> Reply {
    let mut decoder = crate::wire::resp::Decoder::new();
    decoder.feed(&fake.handle_bytes(&wire(args)));
    match decoder.next_reply() {
        Ok(crate::wire::resp::Decoded::Reply(r)) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_first_node_installs_its_epoch_and_later_nodes_adopt_it() {
    let k = keys();
    let mut redis = FakeRedis::new(k.clone());
    call(&mut redis, &script_load_command());
    let first = call(
        &mut redis,
        &append_evalsha_command(&append(&k, "aaa", "t", "1")),
    );
    let second = call(
        &mut redis,
        &append_evalsha_command(&append(&k, "bbb", "t", "2")),
    );
    let id = |r| decode_append_reply(r).map(|a| format!("{}-{}", a.epoch, a.seq));
    assert_eq!(id(first), Ok("aaa-1".into()));
    assert_eq!(id(second), Ok("aaa-2".into()));
    // Redis restarted empty: scripts and log are gone; NOSCRIPT, then EVAL
    // runs the same append, and the proposing node's epoch starts a new log.
    redis.restart_empty();
    let lost = call(
        &mut redis,
        &append_evalsha_command(&append(&k, "bbb", "t", "3")),
    );
    assert_eq!(decode_append_reply(lost), Err(AppendError::NoScript));
    let again = call(
        &mut redis,
        &append_eval_command(&append(&k, "bbb", "t", "3")),
    );
    assert_eq!(id(again), Ok("bbb-1".into()));
    // EVAL cached the script: EVALSHA works again.
    let next = call(
        &mut redis,
        &append_evalsha_command(&append(&k, "aaa", "t", "4")),
    );
    assert_eq!(id(next), Ok("bbb-2".into()));
}

#[test]
fn the_stream_keeps_max_len_entries_with_consecutive_ids() {
    let k = keys();
    let mut redis = FakeRedis::new(k.clone());
    for i in 0..5 {
        let data = i.to_string();
        call(
            &mut redis,
            &append_eval_command(&append(&k, "e", "t", &data)),
        );
    }
    let kept: Vec<u64> = redis.stream.iter().map(|e| e.seq).collect();
    assert_eq!(kept, vec![3, 4, 5]);
    assert_eq!(redis.stream[0].data, b"2");
}
