//! The append half of the Redis log: sending the turn's appends as
//! batches, reading the script's replies, reloading the script after
//! `NOSCRIPT` in order.

use std::rc::Rc;
use std::time::Duration;

use super::{Cmd, Phase, RedisLog, Sent, APPEND_LINK, MAX_NOSCRIPT, TAIL_LINK};
use crate::log::{LogOutput, Ticket};
use crate::redis::script::{
    append_evalsha_command, decode_append_reply, script_load_command, Append, AppendError,
    Appended, Message, Origin, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES,
};
use crate::time::Instant;
use crate::wire::resp::Reply;

impl RedisLog {
    /// Sends the appends that wait, in order, in batches: everything
    /// published since the last call goes in as few script calls as the
    /// batch bounds allow. Nothing is sent while the link is not ready or
    /// batches sent before a script reload are still unanswered.
    pub(super) fn send_held(&mut self, now: Instant) {
        while self.reload_draining == 0
            && self.links[usize::from(APPEND_LINK)].phase == Phase::Ready
            && !self.held.is_empty()
        {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(&ticket) = self.held.front() {
                let Some(p) = self.appends.get(&ticket) else {
                    self.held.pop_front();
                    continue;
                };
                let size = p.topic.len() + p.data.len();
                if !batch.is_empty()
                    && (batch.len() == MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES)
                {
                    break;
                }
                bytes += size;
                batch.push(ticket);
                self.held.pop_front();
            }
            if !batch.is_empty() {
                self.send_batch(batch.into_boxed_slice(), now);
            }
        }
    }

    /// Sends one script call appending `tickets` (all still pending), in
    /// that order.
    fn send_batch(&mut self, tickets: Box<[Ticket]>, now: Instant) {
        let deadline = now + self.timeout();
        // Every origin in one buffer: `spans` says where each one is.
        let mut origins = Vec::with_capacity(tickets.len() * (self.node.len() + 8));
        let spans: Vec<std::ops::Range<usize>> = tickets
            .iter()
            .map(|&ticket| {
                let start = origins.len();
                Origin::encode_into(&mut origins, &self.node, ticket);
                start..origins.len()
            })
            .collect();
        let messages: Vec<Message<'_>> = tickets
            .iter()
            .zip(spans)
            .map(|(ticket, span)| {
                let p = &self.appends[ticket];
                Message {
                    topic: p.topic.as_bytes(),
                    data: p.data.as_bytes(),
                    origin: &origins[span],
                    kind: p.kind,
                }
            })
            .collect();
        let command = append_evalsha_command(&Append {
            keys: &self.keys,
            proposed_epoch: &self.proposal,
            max_len: self.settings.stream_len,
            messages: &messages,
        });
        let sent = self.links[usize::from(APPEND_LINK)].send(
            Cmd::Append(tickets.clone(), self.script_gen),
            &command,
            deadline,
        );
        if sent {
            self.appends_in_flight += 1;
            for ticket in tickets.iter() {
                if let Some(p) = self.appends.get_mut(ticket) {
                    p.state = Sent::InFlight;
                }
            }
        } else {
            for &ticket in tickets.iter() {
                let why = "too many commands wait for Redis".to_string();
                self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
            }
        }
    }

    pub(super) fn handle_append_reply(
        &mut self,
        tickets: Box<[Ticket]>,
        gen: u64,
        reply: Reply,
        now: Instant,
    ) {
        self.appends_in_flight = self.appends_in_flight.saturating_sub(1);
        let draining = gen < self.script_gen && self.reload_draining > 0;
        match decode_append_reply(reply) {
            Ok(appended) if appended.count as usize > tickets.len() => {
                let why = format!(
                    "Redis answered a batch of {} messages with {} appended",
                    tickets.len(),
                    appended.count
                );
                self.fail_all(&tickets, why);
            }
            Ok(appended) => self.handle_appended(&tickets, appended, now),
            Err(AppendError::NoScript) => self.handle_noscript(&tickets, gen, now),
            Err(AppendError::Refused(message)) => {
                let why = format!(
                    "Redis refused the message: {}",
                    String::from_utf8_lossy(&message)
                );
                self.fail_all(&tickets, why);
            }
            Err(AppendError::Unexpected(reply)) => {
                let mut why = format!("Redis answered the append with {reply:?}");
                why.truncate(200);
                self.fail_all(&tickets, why);
            }
        }
        if draining {
            self.reload_draining -= 1;
            if self.reload_draining == 0 {
                self.send_held(now);
            }
        }
    }

    /// Redis took the batch's first `appended.count` messages (all of
    /// them, unless it refused one): they wait for the tail to read them
    /// back; the rest fail with Redis's reason.
    fn handle_appended(&mut self, tickets: &[Ticket], appended: Appended, now: Instant) {
        self.learn_epoch(&appended.epoch);
        if appended.epoch == self.epoch {
            self.known_seq = self.known_seq.max(appended.seq);
        } else if self.synced && self.links[usize::from(TAIL_LINK)].phase == Phase::Ready {
            // A new epoch the tail has not seen: read it now rather than
            // after its blocked read.
            self.actions.push_back(LogOutput::Close { link: TAIL_LINK });
            self.round_meta = None;
            self.connect(TAIL_LINK, now);
        }
        let count = appended.count as usize;
        let first = appended.seq + 1 - appended.count;
        let epoch: Rc<str> = appended.epoch.into();
        for (seq, ticket) in (first..).zip(&tickets[..count]) {
            if let Some(p) = self.appends.get_mut(ticket) {
                if matches!(p.state, Sent::InFlight) {
                    p.state = Sent::Acked {
                        epoch: epoch.clone(),
                        seq,
                    };
                }
            }
        }
        if count < tickets.len() {
            let reason = match &appended.rest_refused {
                Some(error) => String::from_utf8_lossy(error).into_owned(),
                None => "no reason given".to_string(),
            };
            let why = format!("Redis refused the message: {reason}");
            self.fail_all(&tickets[count..], why);
        }
    }

    /// Tells the publishers of `tickets` that their messages were not
    /// appended, and why.
    fn fail_all(&mut self, tickets: &[Ticket], why: String) {
        for &ticket in tickets {
            self.fail_append(ticket, Self::unavailable(Duration::ZERO, why.clone()));
        }
    }

    /// Redis lost the script: load it again and send again, in order, the
    /// batches that got `NOSCRIPT` (each one that was sent before the load
    /// gets it), new appends waiting until those are answered.
    pub(super) fn handle_noscript(&mut self, tickets: &[Ticket], gen: u64, now: Instant) {
        let mut again = Vec::with_capacity(tickets.len());
        for &ticket in tickets.iter() {
            let Some(p) = self.appends.get_mut(&ticket) else {
                continue;
            };
            p.noscripts += 1;
            if p.noscripts > MAX_NOSCRIPT {
                let why = "Redis keeps losing the append script (NOSCRIPT)".to_string();
                self.fail_append(ticket, Self::unavailable(Duration::ZERO, why));
            } else {
                again.push(ticket);
            }
        }
        if again.is_empty() {
            return;
        }
        if gen == self.script_gen {
            // The first of this loss: every batch still in flight was sent
            // before the load and is answered before what follows.
            self.script_gen += 1;
            self.reload_draining = self.appends_in_flight;
            let deadline = now + self.timeout();
            self.links[usize::from(APPEND_LINK)].send(Cmd::Load, &script_load_command(), deadline);
        }
        self.send_batch(again.into_boxed_slice(), now);
    }
}
