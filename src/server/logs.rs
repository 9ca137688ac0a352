//! The shell's side of the logs that need I/O: `--data-dir`'s writer
//! thread (`disk.rs`) and `--redis`'s two sockets (`redis.rs`). Each turn
//! the loop hands their reports to the engine as `Input::Log` (recorded
//! like any other input) and, after its writes, what the log asks for back
//! to them.

use mio::Token;

use super::{redis, Server};
use crate::engine::Input;
use crate::hub::LogEvent;
use crate::timers::Instant;

impl Server {
    /// `--data-dir`: the writer's reports to the engine (durable messages
    /// are answered and fanned out), and the log's new records to the
    /// writer.
    pub(super) fn drive_disk(&mut self, now: Instant) {
        let Some(disk) = &self.disk else {
            return;
        };
        for completion in disk.completions() {
            let input = Input::Log(LogEvent::Disk(completion));
            if let Some(r) = &mut self.net.recorder {
                r.input(now, &input);
            }
            self.engine.handle(now, input, &mut self.net);
        }
    }

    /// Hands what the log asks for to its driver (after the turn's writes).
    pub(super) fn flush_log(&mut self, now: Instant) {
        if let Some(disk) = &self.disk {
            while let Some(output) = self.engine.poll_log_output() {
                disk.perform(output);
            }
        }
        if self.redis.is_some() {
            self.feed_redis(Vec::new(), now);
        }
    }

    /// `--redis`: a readiness event on one of the log's sockets.
    pub(super) fn drive_redis(&mut self, token: Token, event: &mio::event::Event, now: Instant) {
        let (Some(link), Some(r)) = (redis::link_of(token), &mut self.redis) else {
            return;
        };
        let mut events = Vec::new();
        r.handle_ready(
            self.poll.registry(),
            link,
            event,
            &mut self.read_buf,
            &mut events,
        );
        self.feed_redis(events, now);
    }

    /// Feeds the Redis sockets' events to the engine and performs what the
    /// log asks then, until neither has more (a connect refused at once is
    /// an event that asks for nothing until its retry).
    fn feed_redis(&mut self, mut events: Vec<LogEvent>, now: Instant) {
        loop {
            for event in events.drain(..) {
                let input = Input::Log(event);
                if let Some(r) = &mut self.net.recorder {
                    r.input(now, &input);
                }
                self.engine.handle(now, input, &mut self.net);
            }
            let Some(r) = &mut self.redis else {
                return;
            };
            while let Some(output) = self.engine.poll_log_output() {
                r.perform(self.poll.registry(), output, &mut events);
            }
            if events.is_empty() {
                return;
            }
        }
    }
}
