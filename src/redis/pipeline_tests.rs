//! Matching replies to commands in order, bounds, partial writes, the end
//! of a connection, and whole conversations with the scripted fake.

use super::*;
use crate::redis::fake::FakeRedis;
use crate::redis::script::{
    append_eval_command, append_evalsha_command, decode_append_reply, is_script_loaded,
    script_load_command, Append, AppendError, LogKeys, Message,
};
use crate::redis::url::RedisUrl;
use proptest::prelude::*;

fn pipeline<K>() -> Pipeline<K> {
    Pipeline::new(Limits::default(), DEFAULT_MAX_PENDING)
}

/// Writes everything queued to the fake and feeds back its answer in
/// pieces of `piece` bytes, collecting every match.
fn round_trip<K>(p: &mut Pipeline<K>, redis: &mut FakeRedis, piece: usize) -> Vec<(K, Reply)> {
    let bytes = p.output().to_vec();
    p.handle_written(bytes.len());
    let answer = redis.handle_bytes(&bytes);
    let mut matched = Vec::new();
    for chunk in answer.chunks(piece.max(1)) {
        p.handle_read(chunk);
        while let Matched::Reply(kind, reply) = p.next_reply().expect("in step") {
            matched.push((kind, reply));
        }
    }
    matched
}

#[test]
fn replies_are_matched_to_commands_in_the_order_sent() {
    let mut redis = FakeRedis::new(LogKeys::new("p:"));
    for piece in [1, 2, 3, 7, 1000] {
        let mut p = pipeline();
        p.send("ping", &[Arg::from("PING")]).unwrap();
        p.send("bad", &[Arg::from("NOPE")]).unwrap();
        p.send("echo", &[Arg::from("ECHO"), Arg::from("x\r\ny")])
            .unwrap();
        p.send("load", &script_load_command()).unwrap();
        assert_eq!(p.pending(), 4);
        let matched = round_trip(&mut p, &mut redis, piece);
        let kinds: Vec<&str> = matched.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["ping", "bad", "echo", "load"]);
        assert_eq!(matched[0].1, Reply::Simple(b"PONG".to_vec()));
        assert!(matched[1].1.is_error());
        assert_eq!(matched[2].1, Reply::Bulk(b"x\r\ny".to_vec()));
        assert!(is_script_loaded(&matched[3].1));
        assert!(p.is_idle());
    }
}

#[test]
fn a_connection_logs_in_selects_loads_and_appends_in_one_pipeline() {
    let keys = LogKeys::new("p:");
    let mut redis = FakeRedis::new(keys.clone());
    redis.password = Some(b"pw".to_vec());
    redis.connect();
    let url = RedisUrl::parse("redis://:pw@h/2").unwrap();
    let mut p = pipeline();
    p.send("auth", &url.auth_command().unwrap()).unwrap();
    p.send("select", &url.select_command().unwrap()).unwrap();
    p.send("load", &script_load_command()).unwrap();
    for data in ["a", "b"] {
        let messages = [Message {
            topic: b"news",
            data: data.as_bytes(),
            origin: b"n1:1",
            kind: crate::log::Kind::Text,
        }];
        let append = Append {
            keys: &keys,
            proposed_epoch: "e7",
            max_len: 10,
            messages: &messages,
        };
        p.send("append", &append_evalsha_command(&append)).unwrap();
    }
    let matched = round_trip(&mut p, &mut redis, 5);
    assert_eq!(matched.len(), 5);
    assert_eq!(matched[0].1, Reply::Simple(b"OK".to_vec()));
    assert_eq!(redis.db, 2);
    let ids: Vec<u64> = matched[3..]
        .iter()
        .map(|(_, r)| decode_append_reply(r.clone()).unwrap().seq)
        .collect();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn appends_that_got_noscript_are_resent_in_order_and_keep_their_order() {
    let keys = LogKeys::new("p:");
    let mut redis = FakeRedis::new(keys.clone());
    let mut p = pipeline();
    let messages = ["m1", "m2", "m3"];
    let send = |p: &mut Pipeline<&'static str>, data: &'static str, sha: bool| {
        let messages = [Message {
            topic: b"t",
            data: data.as_bytes(),
            origin: b"n1:1",
            kind: crate::log::Kind::Text,
        }];
        let append = Append {
            keys: &keys,
            proposed_epoch: "e7",
            max_len: 10,
            messages: &messages,
        };
        let args = if sha {
            append_evalsha_command(&append)
        } else {
            append_eval_command(&append)
        };
        p.send(data, &args).unwrap();
    };
    // The script cache is empty: every pipelined EVALSHA fails, unrun.
    for m in messages {
        send(&mut p, m, true);
    }
    let failed: Vec<&str> = round_trip(&mut p, &mut redis, 4)
        .into_iter()
        .map(|(m, reply)| {
            assert_eq!(decode_append_reply(reply), Err(AppendError::NoScript));
            m
        })
        .collect();
    assert!(redis.stream.is_empty());
    // Reload once, resend in the order they failed, then the new one.
    p.send("reload", &script_load_command()).unwrap();
    for m in failed.iter().chain(&["m4"]) {
        send(&mut p, m, true);
    }
    let matched = round_trip(&mut p, &mut redis, 3);
    assert!(is_script_loaded(&matched[0].1));
    let order: Vec<(&str, u64)> = matched[1..]
        .iter()
        .map(|(m, r)| (*m, decode_append_reply(r.clone()).unwrap().seq))
        .collect();
    assert_eq!(order, [("m1", 1), ("m2", 2), ("m3", 3), ("m4", 4)]);
    // EVAL works as the fallback too.
    send(&mut p, "m5", false);
    let matched = round_trip(&mut p, &mut redis, 2);
    assert_eq!(decode_append_reply(matched[0].1.clone()).unwrap().seq, 5);
}

#[test]
fn sending_is_refused_past_max_pending_until_a_reply_frees_a_place() {
    let mut redis = FakeRedis::new(LogKeys::new("p:"));
    let mut p = Pipeline::new(Limits::default(), 2);
    p.send(1, &[Arg::from("PING")]).unwrap();
    p.send(2, &[Arg::from("PING")]).unwrap();
    assert_eq!(
        p.send(3, &[Arg::from("PING")]),
        Err(PipelineFull { limit: 2 })
    );
    let output_len = p.output().len();
    assert_eq!(
        output_len,
        2 * b"*1\r\n$4\r\nPING\r\n".len(),
        "nothing queued for 3"
    );
    assert_eq!(round_trip(&mut p, &mut redis, 100).len(), 2);
    p.send(3, &[Arg::from("PING")]).unwrap();
    assert_eq!(p.pending(), 1);
}

#[test]
fn partial_writes_send_every_byte_once_in_order() {
    let mut p = pipeline();
    p.send('a', &[Arg::from("PING")]).unwrap();
    p.send('b', &[Arg::from("ECHO"), Arg::from("hello")])
        .unwrap();
    let all = p.output().to_vec();
    let mut sent = Vec::new();
    while !p.output().is_empty() {
        let n = p.output().len().min(3);
        sent.extend_from_slice(&p.output()[..n]);
        p.handle_written(n);
        if sent.len() == 6 {
            // More commands can be queued mid-write.
            p.send('c', &[Arg::from("PING")]).unwrap();
        }
    }
    let mut expected = all;
    expected.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(sent, expected);
    p.handle_written(10);
    assert!(p.output().is_empty());
}

#[test]
fn a_reply_nobody_asked_for_ends_the_stream() {
    let mut p: Pipeline<()> = pipeline();
    p.handle_read(b"+OK\r\n");
    assert_eq!(p.next_reply(), Err(PipelineError::Unsolicited));
    assert_eq!(p.next_reply(), Err(PipelineError::Unsolicited));
    // A reply to a command not yet written whole is one too.
    let mut p = pipeline();
    p.send((), &[Arg::from("PING")]).unwrap();
    p.handle_written(3);
    p.handle_read(b"+PONG\r\n");
    assert_eq!(p.next_reply(), Err(PipelineError::Unsolicited));
}

#[test]
fn bytes_that_are_not_resp_end_the_stream_with_the_decoders_error() {
    let mut p = pipeline();
    p.send((), &[Arg::from("PING")]).unwrap();
    p.handle_written(p.output().len());
    p.handle_read(b"HTTP/1.1 400 Bad Request\r\n");
    let err = Err(PipelineError::Decode(RespError::UnknownType(b'H')));
    assert_eq!(p.next_reply(), err);
    assert_eq!(p.next_reply(), err);
}

#[test]
fn on_close_commands_written_whole_may_have_run_and_the_rest_did_not() {
    let mut p = pipeline();
    for kind in ["answered", "sent", "half", "queued"] {
        p.send(kind, &[Arg::from("PING")]).unwrap();
    }
    let one = b"*1\r\n$4\r\nPING\r\n".len();
    p.handle_written(2 * one + 5);
    p.handle_read(b"+PONG\r\n+PO");
    assert_eq!(
        p.next_reply(),
        Ok(Matched::Reply("answered", Reply::Simple(b"PONG".to_vec())))
    );
    assert_eq!(p.next_reply(), Ok(Matched::Incomplete));
    let unanswered = p.handle_closed();
    assert_eq!(unanswered.maybe_run, ["sent"]);
    assert_eq!(unanswered.not_run, ["half", "queued"]);
    assert_eq!(p.pending(), 0);
    assert!(p.output().is_empty());
    assert_eq!(p.next_reply(), Err(PipelineError::Closed));
}

proptest! {
    /// Any interleaving of sends, partial writes and replies split anywhere
    /// matches every command exactly once, in order, with its own reply.
    #[test]
    fn every_command_gets_its_own_reply_in_order(
        ops in prop::collection::vec((0u8..4, 1usize..40), 1..60),
    ) {
        let mut redis = FakeRedis::new(LogKeys::new("p:"));
        let mut p = pipeline();
        let mut sent = 0u32;
        let mut inbox: Vec<u8> = Vec::new();
        let mut matched = Vec::new();
        let mut step = |p: &mut Pipeline<u32>, op: u8, n: usize, inbox: &mut Vec<u8>| match op {
            0 => {
                // ECHO n: the reply says which command it answers.
                let text = sent.to_string();
                p.send(sent, &[Arg::from("ECHO"), Arg::from(text.as_str())]).unwrap();
                sent += 1;
            }
            1 => {
                let n = n.min(p.output().len());
                let bytes = p.output()[..n].to_vec();
                p.handle_written(n);
                inbox.extend(redis.handle_bytes(&bytes));
            }
            _ => {
                let n = n.min(inbox.len());
                p.handle_read(&inbox[..n]);
                inbox.drain(..n);
                while let Matched::Reply(kind, reply) = p.next_reply().unwrap() {
                    matched.push((kind, reply));
                }
            }
        };
        for (op, n) in ops {
            step(&mut p, op, n, &mut inbox);
        }
        // Drain: write everything, read everything.
        step(&mut p, 1, usize::MAX, &mut inbox);
        step(&mut p, 2, usize::MAX, &mut inbox);
        prop_assert!(p.is_idle());
        prop_assert_eq!(matched.len() as u32, sent);
        for (i, (kind, reply)) in matched.into_iter().enumerate() {
            prop_assert_eq!(kind, i as u32);
            prop_assert_eq!(reply, Reply::Bulk(i.to_string().into_bytes()));
        }
    }
}
