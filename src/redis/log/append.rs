//! The append half of the Redis log: sending appends, reading the
//! script's replies, reloading the script after `NOSCRIPT` in order.

use std::time::Duration;

use super::{Cmd, Phase, RedisLog, Sent, APPEND_LINK, MAX_NOSCRIPT, TAIL_LINK};
use crate::log::{LogOutput, Ticket};
use crate::redis::script::{
    append_evalsha_command, decode_append_reply, script_load_command, Append, AppendError, Origin,
};
use crate::time::Instant;
use crate::wire::resp::Reply;

impl RedisLog {
    /// Sends the append `ticket` on the append link.
    pub(super) fn send_append(&mut self, ticket: Ticket, now: Instant) {
        let deadline = now + self.timeout();
        let Some(p) = self.appends.get_mut(&ticket) else {
            return;
        };
        let origin = Origin::encode(&self.node, ticket);
        let append = Append {
            keys: &self.keys,
            proposed_epoch: &self.proposal,
            max_len: self.settings.stream_len,
            topic: p.topic.as_bytes(),
            data: p.data.as_bytes(),
            origin: &origin,
            kind: p.kind,
        };
        let command = append_evalsha_command(&append);
        let sent = self.links[usize::from(APPEND_LINK)].send(
            Cmd::Append(ticket, self.script_gen),
            &command,
            deadline,
        );
        if sent {
            p.state = Sent::InFlight;
            self.appends_in_flight += 1;
        } else {
            let why = "too many commands wait for Redis".to_string();
            self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
        }
    }

    /// Sends the appends that waited, in order.
    pub(super) fn send_held(&mut self, now: Instant) {
        while self.reload_draining == 0 {
            let Some(ticket) = self.held.pop_front() else {
                return;
            };
            self.send_append(ticket, now);
        }
    }

    pub(super) fn handle_append_reply(
        &mut self,
        ticket: Ticket,
        gen: u64,
        reply: Reply,
        now: Instant,
    ) {
        self.appends_in_flight = self.appends_in_flight.saturating_sub(1);
        let draining = gen < self.script_gen && self.reload_draining > 0;
        let result = decode_append_reply(reply);
        match result {
            Ok(appended) => {
                self.learn_epoch(&appended.epoch);
                if appended.epoch == self.epoch {
                    self.known_seq = self.known_seq.max(appended.seq);
                } else if self.synced && self.links[usize::from(TAIL_LINK)].phase == Phase::Ready {
                    // A new epoch the tail has not seen: read it now rather
                    // than after its blocked read.
                    self.actions.push_back(LogOutput::Close { link: TAIL_LINK });
                    self.round_meta = None;
                    self.connect(TAIL_LINK, now);
                }
                if let Some(p) = self.appends.get_mut(&ticket) {
                    if matches!(p.state, Sent::InFlight) {
                        p.state = Sent::Acked {
                            epoch: appended.epoch.into(),
                            seq: appended.seq,
                        };
                    }
                }
            }
            Err(AppendError::NoScript) => self.handle_noscript(ticket, gen, now),
            Err(AppendError::Refused(message)) => {
                let why = format!(
                    "Redis refused the message: {}",
                    String::from_utf8_lossy(&message)
                );
                self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
            }
            Err(AppendError::Unexpected(reply)) => {
                let mut why = format!("Redis answered the append with {reply:?}");
                why.truncate(200);
                self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
            }
        }
        if draining {
            self.reload_draining -= 1;
            if self.reload_draining == 0 {
                self.send_held(now);
            }
        }
    }

    /// Redis lost the script: load it again and send again, in order, the
    /// appends that got `NOSCRIPT` (each one that was sent before the
    /// load gets it), new appends waiting until those are answered.
    pub(super) fn handle_noscript(&mut self, ticket: Ticket, gen: u64, now: Instant) {
        let Some(p) = self.appends.get_mut(&ticket) else {
            return;
        };
        p.noscripts += 1;
        if p.noscripts > MAX_NOSCRIPT {
            let why = "Redis keeps losing the append script (NOSCRIPT)".to_string();
            return self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
        }
        if gen == self.script_gen {
            // The first of this loss: every append still in flight was
            // sent before the load and is answered before what follows.
            self.script_gen += 1;
            self.reload_draining = self.appends_in_flight;
            let deadline = now + self.timeout();
            self.links[usize::from(APPEND_LINK)].send(Cmd::Load, &script_load_command(), deadline);
        }
        self.send_append(ticket, now);
    }
}
