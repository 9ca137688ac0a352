//! Setting the server up: the listening socket, the poll and its waker,
//! the clock's origin, and the log — in memory, read back from
//! `--data-dir`, or on `--redis` — behind the engine. Nothing runs yet.

use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mio::{Interest, Poll, Waker};

use super::{disk, net, redis, Net, Server, LISTENER, WAKER};
use crate::config::{Config, READ_CHUNK};
use crate::engine::Engine;
use crate::hub::Hub;
use crate::timers::Instant;

/// A new hub epoch: the start time in milliseconds, base 36.
fn new_epoch() -> String {
    crate::hub::base36(unix_ms().max(1))
}

/// The OS wall clock in Unix milliseconds (0 before 1970).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Server {
    /// Binds the listening socket and prepares the loop (nothing runs yet).
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = net::listen(config.addr, config.reuse_port)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let net = Net::new(poll.registry().try_clone()?);
        let mut epoch = new_epoch();
        // The clock's origin is the start, or one --history-ttl before it
        // with --data-dir (read-back messages keep their age). Token times
        // are Unix times: the wall clock at the origin, read once (the
        // loop's time is monotonic from there).
        let clock_offset = disk::clock_offset(&config);
        let wall_origin = unix_ms().saturating_sub(clock_offset.as_millis() as u64);
        let start = Instant::ZERO + clock_offset;
        // The key of the hub's keyed hashes: random, as `RandomState`'s.
        let hash_key = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            local_addr,
        );
        let redis = config.redis.as_ref().map(redis::Redis::new).transpose()?;
        let (engine, disk) = if config.data_dir.is_some() {
            let opened = disk::Disk::open(&config, wall_origin, &epoch, hash_key, waker.clone())?;
            eprintln!(
                "pushlab: read back {} messages from {}",
                opened.records,
                config
                    .data_dir
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            );
            epoch = opened.epoch;
            let hub = Hub::new(Box::new(opened.log), config.max_topics);
            (Engine::with_hub(config, hub, start), Some(opened.disk))
        } else {
            (Engine::new_keyed(config, &epoch, hash_key, start), None)
        };
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals: None,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            engine: engine.with_wall_origin(wall_origin),
            net,
            clock: std::time::Instant::now(),
            read_buf: vec![0; READ_CHUNK],
            accept_paused_until: None,
            epoch,
            hash_key,
            wall_origin,
            clock_offset,
            disk,
            redis,
        })
    }
}
