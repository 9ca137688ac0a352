//! A scripted stand-in for Redis in unit tests: it decodes the commands a
//! [`Pipeline`](super::pipeline::Pipeline) writes and answers them as Redis
//! would, running the append script's contract (module `script`) in Rust.
//! It checks the shape of every command (argument counts and positions),
//! not the Lua itself; the Lua is checked against a real `redis-server` by
//! hand (docs/scaling.md).

use std::collections::{HashSet, VecDeque};

use sha1::{Digest, Sha1};

use super::script::{LogKeys, APPEND_SCRIPT, APPEND_SCRIPT_SHA1};
use crate::wire::resp::{encode_reply, Decoded, Decoder, Reply};

/// One message in the fake stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub topic: Vec<u8>,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub struct FakeRedis {
    commands: Decoder,
    keys: LogKeys,
    /// SHAs in the script cache.
    pub scripts: HashSet<String>,
    pub password: Option<Vec<u8>>,
    pub db: u64,
    authed: bool,
    pub epoch: Option<String>,
    pub seq: u64,
    pub stream: VecDeque<Entry>,
    /// Every command received, in order (names upper-cased).
    pub received: Vec<Vec<Vec<u8>>>,
}

pub fn sha1_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl FakeRedis {
    pub fn new(keys: LogKeys) -> FakeRedis {
        FakeRedis {
            commands: Decoder::new(),
            keys,
            scripts: HashSet::new(),
            password: None,
            db: 0,
            authed: false,
            epoch: None,
            seq: 0,
            stream: VecDeque::new(),
            received: Vec::new(),
        }
    }

    /// Redis restarted with nothing persisted: no data, no scripts.
    pub fn restart_empty(&mut self) {
        *self = FakeRedis {
            password: self.password.take(),
            ..FakeRedis::new(self.keys.clone())
        };
    }

    /// A new client connection (commands decoded from scratch, logged out).
    pub fn connect(&mut self) {
        self.commands = Decoder::new();
        self.authed = false;
    }

    /// Takes bytes a client wrote; returns the bytes Redis answers.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.commands.feed(bytes);
        let mut out = Vec::new();
        while let Decoded::Reply(command) = self.commands.next_reply().expect("client sent RESP") {
            let Reply::Array(items) = command else {
                panic!("a command is an array: {command:?}")
            };
            let args: Vec<Vec<u8>> = items
                .into_iter()
                .map(|item| match item {
                    Reply::Bulk(b) => b,
                    other => panic!("arguments are bulk strings: {other:?}"),
                })
                .collect();
            let reply = self.execute(&args);
            self.received.push(args);
            encode_reply(&mut out, &reply);
        }
        out
    }

    fn execute(&mut self, args: &[Vec<u8>]) -> Reply {
        let error = |text: &str| Reply::Error(text.as_bytes().to_vec());
        let name = args[0].to_ascii_uppercase();
        if self.password.is_some() && !self.authed && name != b"AUTH" {
            return error("NOAUTH Authentication required.");
        }
        match (name.as_slice(), args.len()) {
            (b"AUTH", 2 | 3) => {
                if Some(args.last().unwrap()) == self.password.as_ref() {
                    self.authed = true;
                    Reply::Simple(b"OK".to_vec())
                } else {
                    error("WRONGPASS invalid username-password pair or user is disabled.")
                }
            }
            (b"SELECT", 2) => {
                self.db = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
                Reply::Simple(b"OK".to_vec())
            }
            (b"PING", 1) => Reply::Simple(b"PONG".to_vec()),
            (b"ECHO", 2) => Reply::Bulk(args[1].clone()),
            (b"SCRIPT", 3) if args[1].eq_ignore_ascii_case(b"LOAD") => {
                let sha = sha1_hex(std::str::from_utf8(&args[2]).unwrap());
                self.scripts.insert(sha.clone());
                Reply::Bulk(sha.into_bytes())
            }
            (b"EVALSHA", _) => {
                let sha = String::from_utf8(args[1].clone()).unwrap();
                if !self.scripts.contains(&sha) {
                    return error("NOSCRIPT No matching script. Please use EVAL.");
                }
                assert_eq!(sha, APPEND_SCRIPT_SHA1, "only the append script is known");
                self.append(&args[2..])
            }
            (b"EVAL", _) => {
                let script = std::str::from_utf8(&args[1]).unwrap();
                assert_eq!(script, APPEND_SCRIPT, "only the append script is known");
                self.scripts.insert(sha1_hex(script));
                self.append(&args[2..])
            }
            _ => error("ERR unknown command"),
        }
    }

    /// The script's contract: `2 meta stream epoch max_len topic data`.
    fn append(&mut self, args: &[Vec<u8>]) -> Reply {
        assert_eq!(args.len(), 7, "numkeys, 2 keys, 4 arguments");
        assert_eq!(args[0], b"2");
        assert_eq!(args[1], self.keys.meta());
        assert_eq!(args[2], self.keys.stream());
        let max_len: usize = std::str::from_utf8(&args[4]).unwrap().parse().unwrap();
        assert!(max_len >= 1);
        if self.epoch.is_none() {
            self.epoch = Some(String::from_utf8(args[3].clone()).unwrap());
            self.seq = 0;
            self.stream.clear();
        }
        self.seq += 1;
        self.stream.push_back(Entry {
            seq: self.seq,
            topic: args[5].clone(),
            data: args[6].clone(),
        });
        while self.stream.len() > max_len {
            self.stream.pop_front();
        }
        Reply::Array(vec![
            Reply::Bulk(self.epoch.clone().unwrap().into_bytes()),
            Reply::Integer(self.seq as i64),
        ])
    }
}
