//! The append commands byte for byte, the script's SHA, its replies, and
//! the append protocol against the scripted fake.

use super::*;
use crate::redis::fake::{sha1_hex, FakeRedis};
use crate::wire::resp::encode_command;

fn keys() -> LogKeys {
    LogKeys::new("{pl}:")
}

/// One text message from node `n9`, ticket 17.
fn one<'a>(topic: &'a str, data: &'a str) -> [Message<'a>; 1] {
    [Message {
        topic: topic.as_bytes(),
        data: data.as_bytes(),
        origin: b"n9:17",
        kind: Kind::Text,
    }]
}

fn batch<'a>(keys: &'a LogKeys, epoch: &'a str, messages: &'a [Message<'a>]) -> Append<'a> {
    Append {
        keys,
        proposed_epoch: epoch,
        max_len: 3,
        messages,
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
    let mut encoded = b"before ".to_vec();
    Origin::encode_into(&mut encoded, "k3v9", 42);
    assert_eq!(encoded, b"before k3v9:42");
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
        &append_eval_command(&batch(&k, "bbb", &one("t", "1"))),
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
fn evalsha_names_two_keys_then_epoch_max_len_and_each_messages_topic_data_origin_and_kind() {
    let k = keys();
    let messages = [
        one("news", "hi")[0],
        Message {
            topic: b"img",
            data: b"AAE=",
            origin: b"n9:18",
            kind: Kind::Binary,
        },
    ];
    let bytes = wire(&append_evalsha_command(&batch(&k, "e1", &messages)));
    let expected = [
        "*15\r\n",
        "$7\r\nEVALSHA\r\n",
        &format!("$40\r\n{APPEND_SCRIPT_SHA1}\r\n"),
        "$1\r\n2\r\n",
        "$9\r\n{pl}:meta\r\n",
        "$8\r\n{pl}:log\r\n",
        "$2\r\ne1\r\n",
        "$1\r\n3\r\n",
        "$4\r\nnews\r\n",
        "$2\r\nhi\r\n",
        "$5\r\nn9:17\r\n",
        "$1\r\nt\r\n",
        "$3\r\nimg\r\n",
        "$4\r\nAAE=\r\n",
        "$5\r\nn9:18\r\n",
        "$1\r\nb\r\n",
    ]
    .concat();
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
}

#[test]
fn eval_carries_the_script_and_the_same_arguments() {
    let k = keys();
    let messages = one("news", "hi");
    let a = batch(&k, "e1", &messages);
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
    let messages = one("t", "d");
    let a = Append {
        max_len: 0,
        ..batch(&k, "e1", &messages)
    };
    assert_eq!(append_evalsha_command(&a)[6], Arg::Uint(1));
}

#[test]
fn the_scripts_reply_gives_the_ids_or_says_why_not() {
    let reply = |items: Vec<Reply>| Reply::Array(items);
    let epoch = || Reply::Bulk(b"k3v9".to_vec());
    assert_eq!(
        decode_append_reply(reply(vec![epoch(), Reply::Integer(42), Reply::Integer(3)])),
        Ok(Appended {
            epoch: "k3v9".into(),
            seq: 42,
            count: 3,
            rest_refused: None,
        })
    );
    // Two appended, the third refused: the reply says which and why.
    let oom = b"OOM command not allowed when used memory > 'maxmemory'.".to_vec();
    assert_eq!(
        decode_append_reply(reply(vec![
            epoch(),
            Reply::Integer(9),
            Reply::Integer(2),
            Reply::Bulk(oom.clone()),
        ])),
        Ok(Appended {
            epoch: "k3v9".into(),
            seq: 9,
            count: 2,
            rest_refused: Some(oom.clone()),
        })
    );
    let noscript = Reply::Error(b"NOSCRIPT No matching script. Please use EVAL.".to_vec());
    assert_eq!(decode_append_reply(noscript), Err(AppendError::NoScript));
    assert_eq!(
        decode_append_reply(Reply::Error(oom.clone())),
        Err(AppendError::Refused(oom))
    );
    for odd in [
        Reply::Simple(b"OK".to_vec()),
        reply(vec![epoch()]),
        reply(vec![epoch(), Reply::Integer(1)]),
        reply(vec![
            Reply::Bulk(b"k3-v9".to_vec()),
            Reply::Integer(1),
            Reply::Integer(1),
        ]),
        reply(vec![
            Reply::Bulk(Vec::new()),
            Reply::Integer(1),
            Reply::Integer(1),
        ]),
        reply(vec![epoch(), Reply::Integer(0), Reply::Integer(1)]),
        reply(vec![epoch(), Reply::Integer(5), Reply::Integer(0)]),
        reply(vec![epoch(), Reply::Integer(2), Reply::Integer(3)]),
        reply(vec![Reply::Integer(1), epoch(), Reply::Integer(1)]),
        reply(vec![
            epoch(),
            Reply::Integer(2),
            Reply::Integer(1),
            Reply::Integer(7),
        ]),
    ] {
        assert_eq!(
            decode_append_reply(odd.clone()),
            Err(AppendError::Unexpected(odd))
        );
    }
}

#[test]
fn a_batch_gets_consecutive_ids_in_order_and_a_refusal_keeps_what_came_before() {
    let k = keys();
    let mut redis = FakeRedis::new(k.clone());
    let messages = [one("t", "1")[0], one("t", "2")[0], one("u", "3")[0]];
    let all = call(
        &mut redis,
        &append_eval_command(&Append {
            max_len: 10,
            ..batch(&k, "aaa", &messages)
        }),
    );
    let appended = decode_append_reply(all).unwrap();
    assert_eq!((appended.seq, appended.count), (3, 3));
    let kept: Vec<(u64, &[u8])> = redis.stream.iter().map(|e| (e.seq, &e.data[..])).collect();
    assert_eq!(kept, [(1, &b"1"[..]), (2, b"2"), (3, b"3")]);
    // The second message of the next batch is refused: the first stays,
    // the rest are not appended, and N is not used up.
    redis.refuse_data = Some(b"5".to_vec());
    let messages = [one("t", "4")[0], one("t", "5")[0], one("t", "6")[0]];
    let partial = call(
        &mut redis,
        &append_eval_command(&Append {
            max_len: 10,
            ..batch(&k, "aaa", &messages)
        }),
    );
    let appended = decode_append_reply(partial).unwrap();
    assert_eq!((appended.seq, appended.count), (4, 1));
    assert!(appended.rest_refused.unwrap().starts_with(b"OOM"));
    // Refused at the first message: an error, nothing changed.
    let messages = one("t", "5");
    let refused = call(
        &mut redis,
        &append_eval_command(&batch(&k, "aaa", &messages)),
    );
    assert!(matches!(
        decode_append_reply(refused),
        Err(AppendError::Refused(_))
    ));
    assert_eq!(redis.seq, 4);
    redis.refuse_data = None;
    let next = call(
        &mut redis,
        &append_eval_command(&batch(&k, "aaa", &messages)),
    );
    assert_eq!(decode_append_reply(next).unwrap().seq, 5);
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
        &append_evalsha_command(&batch(&k, "aaa", &one("t", "1"))),
    );
    let second = call(
        &mut redis,
        &append_evalsha_command(&batch(&k, "bbb", &one("t", "2"))),
    );
    let id = |r| decode_append_reply(r).map(|a| format!("{}-{}", a.epoch, a.seq));
    assert_eq!(id(first), Ok("aaa-1".into()));
    assert_eq!(id(second), Ok("aaa-2".into()));
    // Redis restarted empty: scripts and log are gone; NOSCRIPT, then EVAL
    // runs the same append, and the proposing node's epoch starts a new log.
    redis.restart_empty();
    let lost = call(
        &mut redis,
        &append_evalsha_command(&batch(&k, "bbb", &one("t", "3"))),
    );
    assert_eq!(decode_append_reply(lost), Err(AppendError::NoScript));
    let again = call(
        &mut redis,
        &append_eval_command(&batch(&k, "bbb", &one("t", "3"))),
    );
    assert_eq!(id(again), Ok("bbb-1".into()));
    // EVAL cached the script: EVALSHA works again.
    let next = call(
        &mut redis,
        &append_evalsha_command(&batch(&k, "aaa", &one("t", "4"))),
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
            &append_eval_command(&batch(&k, "e", &one("t", &data))),
        );
    }
    let kept: Vec<u64> = redis.stream.iter().map(|e| e.seq).collect();
    assert_eq!(kept, vec![3, 4, 5]);
    assert_eq!(redis.stream[0].data, b"2");
}
