//! A scripted stand-in for Redis in unit tests: it decodes the commands a
//! [`Pipeline`](super::pipeline::Pipeline) writes and answers them as Redis
//! would, running the scripts' contracts (module `script`) in Rust. It
//! checks the shape of every command (argument counts and positions), not
//! the Lua itself; the Lua runs against a real `redis-server` in
//! `.ci/scripts/redis.sh` (docs/scaling.md).
//!
//! Several client connections, as Redis serves them: each has its own
//! decoder and login, and a connection blocked in `XREAD BLOCK` runs none
//! of its later commands until an append to the stream (from any
//! connection) or the block's time ([`FakeRedis::set_now`]) answers it.
//! [`FakeRedis::connect`] and [`FakeRedis::handle_bytes`] speak on
//! connection 0.

use std::collections::{HashMap, HashSet, VecDeque};

use sha1::{Digest, Sha1};

use super::script::{LogKeys, APPEND_SCRIPT, APPEND_SCRIPT_SHA1, EPOCH_SCRIPT};
use crate::time::Instant;
use crate::wire::resp::{encode_reply, Decoded, Decoder, Reply};

/// One message in the fake stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub topic: Vec<u8>,
    pub data: Vec<u8>,
    pub origin: Vec<u8>,
    pub kind: Vec<u8>,
}

/// An `XREAD BLOCK` waiting for entries.
#[derive(Debug)]
struct Blocked {
    after: u64,
    count: usize,
    until: Instant,
}

/// One client connection.
#[derive(Debug, Default)]
struct Client {
    decoder: Decoder,
    authed: bool,
    /// Commands decoded, not yet run (behind a blocked `XREAD`).
    queue: VecDeque<Vec<Vec<u8>>>,
    blocked: Option<Blocked>,
    /// Replies not yet taken.
    out: Vec<u8>,
}

#[derive(Debug)]
pub struct FakeRedis {
    keys: LogKeys,
    clients: HashMap<usize, Client>,
    /// SHAs in the script cache.
    pub scripts: HashSet<String>,
    pub password: Option<Vec<u8>>,
    pub db: u64,
    pub epoch: Option<String>,
    pub seq: u64,
    pub stream: VecDeque<Entry>,
    /// An appended message with this data fails its `XADD`.
    pub refuse_data: Option<Vec<u8>>,
    /// Every command run, in order (names upper-cased).
    pub received: Vec<Vec<Vec<u8>>>,
    now: Instant,
}

pub fn sha1_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn bulk(bytes: &[u8]) -> Reply {
    Reply::Bulk(bytes.to_vec())
}

impl FakeRedis {
    pub fn new(keys: LogKeys) -> FakeRedis {
        FakeRedis {
            keys,
            clients: HashMap::new(),
            scripts: HashSet::new(),
            password: None,
            db: 0,
            epoch: None,
            seq: 0,
            stream: VecDeque::new(),
            refuse_data: None,
            received: Vec::new(),
            now: Instant::ZERO,
        }
    }

    /// Redis restarted with nothing persisted: no data, no scripts, no
    /// connections.
    pub fn restart_empty(&mut self) {
        *self = FakeRedis {
            password: self.password.take(),
            now: self.now,
            ..FakeRedis::new(self.keys.clone())
        };
    }

    /// `FLUSHALL`: the data goes, connections and scripts stay.
    pub fn flush_all(&mut self) {
        self.epoch = None;
        self.seq = 0;
        self.stream.clear();
    }

    /// A new client connection 0 (commands decoded from scratch, logged out).
    pub fn connect(&mut self) {
        self.connect_on(0);
    }

    /// A new client connection `id`, replacing any with that id.
    pub fn connect_on(&mut self, id: usize) {
        self.clients.insert(id, Client::default());
    }

    /// Connection `id` is gone (a blocked read with it).
    pub fn disconnect(&mut self, id: usize) {
        self.clients.remove(&id);
    }

    /// Whether connection `id` is open.
    pub fn is_connected(&self, id: usize) -> bool {
        self.clients.contains_key(&id)
    }

    /// Takes bytes connection 0 wrote; returns the bytes Redis answers.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        if !self.clients.contains_key(&0) {
            self.connect_on(0);
        }
        self.handle_bytes_on(0, bytes)
    }

    /// Takes bytes connection `id` wrote; returns what Redis answers now
    /// (a blocked read answers later: [`FakeRedis::take_output`]).
    pub fn handle_bytes_on(&mut self, id: usize, bytes: &[u8]) -> Vec<u8> {
        let client = self.clients.get_mut(&id).expect("connected");
        client.decoder.feed(bytes);
        while let Decoded::Reply(command) = client.decoder.next_reply().expect("client sent RESP") {
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
            client.queue.push_back(args);
        }
        self.run(id);
        self.take_output(id)
    }

    /// Replies connection `id` has not taken yet.
    pub fn take_output(&mut self, id: usize) -> Vec<u8> {
        self.clients
            .get_mut(&id)
            .map(|c| std::mem::take(&mut c.out))
            .unwrap_or_default()
    }

    /// The time: blocked reads whose time has come answer the null array.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
        let ids: Vec<usize> = self.clients.keys().copied().collect();
        for id in ids {
            let client = self.clients.get_mut(&id).expect("listed");
            if client.blocked.as_ref().is_some_and(|b| now >= b.until) {
                client.blocked = None;
                encode_reply(&mut client.out, &Reply::NullArray);
                self.run(id);
            }
        }
    }

    /// Runs connection `id`'s queued commands until it blocks.
    fn run(&mut self, id: usize) {
        loop {
            let Some(client) = self.clients.get_mut(&id) else {
                return;
            };
            if client.blocked.is_some() {
                return;
            }
            let Some(args) = client.queue.pop_front() else {
                return;
            };
            let reply = self.execute(id, &args);
            self.received.push(args);
            if let Some(reply) = reply {
                let client = self.clients.get_mut(&id).expect("running");
                encode_reply(&mut client.out, &reply);
            }
        }
    }

    /// Answers every blocked read that the stream now satisfies.
    fn wake_readers(&mut self) {
        let ids: Vec<usize> = self.clients.keys().copied().collect();
        for id in ids {
            let Some(blocked) = &self.clients[&id].blocked else {
                continue;
            };
            let (after, count) = (blocked.after, blocked.count);
            if let Some(reply) = self.read_after(after, count) {
                let client = self.clients.get_mut(&id).expect("listed");
                client.blocked = None;
                encode_reply(&mut client.out, &reply);
                self.run(id);
            }
        }
    }

    /// The command's reply, or `None` when it blocks.
    fn execute(&mut self, id: usize, args: &[Vec<u8>]) -> Option<Reply> {
        let error = |text: &str| Some(Reply::Error(text.as_bytes().to_vec()));
        let name = args[0].to_ascii_uppercase();
        let authed = self.clients[&id].authed;
        if self.password.is_some() && !authed && name != b"AUTH" {
            return error("NOAUTH Authentication required.");
        }
        match (name.as_slice(), args.len()) {
            (b"AUTH", 2 | 3) => {
                if Some(args.last().unwrap()) == self.password.as_ref() {
                    self.clients.get_mut(&id).expect("running").authed = true;
                    Some(Reply::Simple(b"OK".to_vec()))
                } else {
                    error("WRONGPASS invalid username-password pair or user is disabled.")
                }
            }
            (b"SELECT", 2) => {
                self.db = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
                Some(Reply::Simple(b"OK".to_vec()))
            }
            (b"PING", 1) => Some(Reply::Simple(b"PONG".to_vec())),
            (b"ECHO", 2) => Some(Reply::Bulk(args[1].clone())),
            (b"SCRIPT", 3) if args[1].eq_ignore_ascii_case(b"LOAD") => {
                let sha = sha1_hex(std::str::from_utf8(&args[2]).unwrap());
                self.scripts.insert(sha.clone());
                Some(Reply::Bulk(sha.into_bytes()))
            }
            (b"EVALSHA", _) => {
                let sha = String::from_utf8(args[1].clone()).unwrap();
                if !self.scripts.contains(&sha) {
                    return error("NOSCRIPT No matching script. Please use EVAL.");
                }
                assert_eq!(sha, APPEND_SCRIPT_SHA1, "only the append script is known");
                Some(self.append(&args[2..]))
            }
            (b"EVAL", _) => {
                let script = std::str::from_utf8(&args[1]).unwrap();
                self.scripts.insert(sha1_hex(script));
                if script == EPOCH_SCRIPT {
                    return Some(self.ensure_epoch(&args[2..]));
                }
                assert_eq!(script, APPEND_SCRIPT, "only the log's scripts are known");
                Some(self.append(&args[2..]))
            }
            (b"HMGET", 4) => {
                assert_eq!(args[1], self.keys.meta());
                assert_eq!((&args[2][..], &args[3][..]), (&b"epoch"[..], &b"seq"[..]));
                Some(match &self.epoch {
                    None => Reply::Array(vec![Reply::NullBulk, Reply::NullBulk]),
                    Some(e) => Reply::Array(vec![
                        bulk(e.as_bytes()),
                        bulk(self.seq.to_string().as_bytes()),
                    ]),
                })
            }
            (b"XREAD", 8) => {
                let number = |b: &[u8]| -> u64 { std::str::from_utf8(b).unwrap().parse().unwrap() };
                assert_eq!(args[1].to_ascii_uppercase(), b"COUNT");
                assert_eq!(args[3].to_ascii_uppercase(), b"BLOCK");
                assert_eq!(args[5].to_ascii_uppercase(), b"STREAMS");
                assert_eq!(args[6], self.keys.stream());
                let count = number(&args[2]) as usize;
                let block_ms = number(&args[4]);
                let last = std::str::from_utf8(&args[7]).unwrap();
                let (n, zero) = last.split_once('-').expect("an N-0 id");
                assert_eq!(zero, "0");
                let after = n.parse().unwrap();
                if let Some(reply) = self.read_after(after, count) {
                    return Some(reply);
                }
                let until = self.now + std::time::Duration::from_millis(block_ms);
                let client = self.clients.get_mut(&id).expect("running");
                client.blocked = Some(Blocked {
                    after,
                    count,
                    until,
                });
                None
            }
            _ => error("ERR unknown command"),
        }
    }

    /// `XREAD`'s answer for the entries after `after`, or `None` if there
    /// are none.
    fn read_after(&self, after: u64, count: usize) -> Option<Reply> {
        let entries: Vec<Reply> = self
            .stream
            .iter()
            .filter(|e| e.seq > after)
            .take(count.max(1))
            .map(|e| {
                Reply::Array(vec![
                    bulk(format!("{}-0", e.seq).as_bytes()),
                    Reply::Array(vec![
                        bulk(b"t"),
                        bulk(&e.topic),
                        bulk(b"d"),
                        bulk(&e.data),
                        bulk(b"o"),
                        bulk(&e.origin),
                        bulk(b"k"),
                        bulk(&e.kind),
                    ]),
                ])
            })
            .collect();
        if entries.is_empty() {
            return None;
        }
        Some(Reply::Array(vec![Reply::Array(vec![
            bulk(self.keys.stream()),
            Reply::Array(entries),
        ])]))
    }

    /// The epoch script's contract: `2 meta stream proposed_epoch`.
    fn ensure_epoch(&mut self, args: &[Vec<u8>]) -> Reply {
        assert_eq!(args.len(), 4, "numkeys, 2 keys, 1 argument");
        assert_eq!(args[0], b"2");
        assert_eq!(args[1], self.keys.meta());
        assert_eq!(args[2], self.keys.stream());
        if self.epoch.is_none() {
            self.epoch = Some(String::from_utf8(args[3].clone()).unwrap());
            self.seq = 0;
            self.stream.clear();
        }
        Reply::Array(vec![
            bulk(self.epoch.as_deref().unwrap_or_default().as_bytes()),
            Reply::Integer(self.seq as i64),
        ])
    }

    /// The append script's contract: `2 meta stream epoch max_len`, then
    /// `topic data origin kind` per message, at least one. A message whose
    /// data is [`FakeRedis::refuse_data`] fails its `XADD` (as memory
    /// refused would), ending the batch there.
    fn append(&mut self, args: &[Vec<u8>]) -> Reply {
        assert!(
            args.len() >= 9 && (args.len() - 5) % 4 == 0,
            "numkeys, 2 keys, epoch, max_len, then 4 per message"
        );
        assert_eq!(args[0], b"2");
        assert_eq!(args[1], self.keys.meta());
        assert_eq!(args[2], self.keys.stream());
        let max_len: usize = std::str::from_utf8(&args[4]).unwrap().parse().unwrap();
        assert!(max_len >= 1);
        let epoch = match &self.epoch {
            Some(epoch) => epoch.clone(),
            None => {
                self.stream.clear();
                String::from_utf8(args[3].clone()).unwrap()
            }
        };
        let mut seq = if self.epoch.is_some() { self.seq } else { 0 };
        let mut refused = None;
        for m in args[5..].chunks(4) {
            assert!(m[3] == b"t" || m[3] == b"b", "kind t or b");
            if self.refuse_data.as_deref() == Some(&m[1][..]) {
                refused = Some(b"OOM command not allowed (fake)".to_vec());
                break;
            }
            seq += 1;
            self.stream.push_back(Entry {
                seq,
                topic: m[0].clone(),
                data: m[1].clone(),
                origin: m[2].clone(),
                kind: m[3].clone(),
            });
        }
        let count = seq - if self.epoch.is_some() { self.seq } else { 0 };
        if count == 0 {
            return Reply::Error(refused.expect("a message or more"));
        }
        self.epoch = Some(epoch.clone());
        self.seq = seq;
        while self.stream.len() > max_len {
            self.stream.pop_front();
        }
        self.wake_readers();
        let mut reply = vec![
            bulk(epoch.as_bytes()),
            Reply::Integer(seq as i64),
            Reply::Integer(count as i64),
        ];
        reply.extend(refused.map(Reply::Bulk));
        Reply::Array(reply)
    }
}
