//! Long polling (RFC 6202 §2): `GET /long-poll?topic=T&since=…&timeout=S`
//! answers at once when something is newer than the cursor; otherwise the
//! request is *parked*: the session subscribes to its topics, arms a
//! deadline, and the socket sits in the event loop costing no thread and no
//! CPU until a publish or the deadline releases it.
//!
//! The cursor is what makes long polling lossless (RFC 6202 §2.2, "message
//! ordering"): a message published while the client is between two
//! requests is still in the history, and the next request's `since` finds it.
//!
//! A hold that needed a token ends no later than the token: at `exp` plus
//! `--jwt-leeway` it is answered as on its timeout, and the next poll needs
//! a fresh token (session/auth.rs).

use super::http::ReqInfo;
use super::subscription::Subscription;
use super::{Ctx, Session, State};
use crate::hub::Cursor;
use crate::stats::Transport;
use crate::timers::Instant;
use crate::wire::query::Query;

/// A parked long poll.
#[derive(Debug)]
pub struct Hold {
    /// The topics whose next message releases the hold.
    pub sub: Subscription,
    /// Deliver messages with a sequence number after this, of this epoch
    /// (a shared log may start a new one while the poll is held: the
    /// answer then says `reset`).
    pub after: u64,
    pub epoch: Box<str>,
    pub started: Instant,
    pub deadline: Instant,
    pub req: ReqInfo,
}

/// Why a hold ends with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    Message,
    Timeout,
    Shutdown,
}

impl Session {
    /// Whether a long poll is parked here, waiting for a message.
    pub fn is_parked(&self) -> bool {
        matches!(self.state, State::LongPoll(_))
    }

    /// `GET /long-poll`.
    pub(super) fn start_long_poll(&mut self, req: ReqInfo, query: &Query, ctx: &mut Ctx) {
        self.count_request(Transport::LongPoll, ctx);
        let parsed = query.topics().and_then(|topics| {
            let cursor = query.cursor("since")?;
            let timeout = query.timeout(ctx.config.long_poll_default, ctx.config.long_poll_max)?;
            Ok((topics, cursor, timeout))
        });
        let (topics, cursor, timeout) = match parsed {
            Ok(v) => v,
            Err(e) => return self.refuse(e.into(), !req.keep_alive, ctx),
        };
        if cursor.is_some() {
            ctx.stats.of(Transport::LongPoll).resumes += 1;
        }
        let batch = ctx
            .hub
            .read(&topics, cursor.as_ref().unwrap_or(&Cursor::Now), ctx.now);
        if !batch.messages.is_empty() || batch.missed > 0 || batch.reset || timeout.is_zero() {
            return self.answer_poll_body(req, &batch, Transport::LongPoll, ctx);
        }
        let sub = match Subscription::join(ctx.hub, self.id, topics) {
            Ok(sub) => sub,
            Err(e) => return self.refuse(e.into(), !req.keep_alive, ctx),
        };
        let c = ctx.stats.of(Transport::LongPoll);
        c.holds_started += 1;
        c.holds_active += 1;
        let (id, t) = (self.serial, self.transport);
        ctx.trace(id, t, "hold", 0, || {
            format!("timeout_ms={}", timeout.as_millis())
        });
        self.state = State::LongPoll(Hold {
            sub,
            after: batch.next_seq,
            epoch: ctx.hub.epoch().into(),
            started: ctx.now,
            // A hold opened with a token ends with it, like a stream
            // (session/auth.rs): answered empty, the next poll needs a
            // fresh token and resumes from the same cursor.
            deadline: self
                .token_expiry(ctx)
                .map_or(ctx.now + timeout, |at| at.min(ctx.now + timeout)),
            req,
        });
    }

    /// Ends the hold with a response: the messages after its own cursor
    /// (none on timeout, unless one arrived in the same instant).
    pub(super) fn release_hold(&mut self, why: Release, ctx: &mut Ctx) {
        let Some(hold) = self.take_hold(ctx) else {
            return;
        };
        let cursor = Cursor::After {
            epoch: hold.epoch.to_string(),
            seq: hold.after,
        };
        let batch = ctx.hub.read(hold.sub.topics(), &cursor, ctx.now);
        let c = ctx.stats.of(Transport::LongPoll);
        c.hold_micros += (ctx.now - hold.started).as_micros() as u64;
        match why {
            Release::Message => c.holds_released_by_message += 1,
            Release::Timeout | Release::Shutdown => c.holds_released_by_timeout += 1,
        }
        if why == Release::Timeout {
            let (id, t) = (self.serial, self.transport);
            ctx.trace(id, t, "timeout", 0, || "long-poll hold".into());
        }
        let req = if why == Release::Shutdown {
            ReqInfo {
                keep_alive: false,
                ..hold.req
            }
        } else {
            hold.req
        };
        self.answer_poll_body(req, &batch, Transport::LongPoll, ctx);
    }

    /// The parked client went away: drop the hold, answer nothing.
    pub(super) fn end_hold_dropped(&mut self, ctx: &mut Ctx) {
        if let Some(hold) = self.take_hold(ctx) {
            let c = ctx.stats.of(Transport::LongPoll);
            c.holds_dropped_by_client += 1;
            c.hold_micros += (ctx.now - hold.started).as_micros() as u64;
        }
    }

    fn take_hold(&mut self, ctx: &mut Ctx) -> Option<Hold> {
        if !matches!(self.state, State::LongPoll(_)) {
            return None;
        }
        let placeholder = State::Head {
            scanned: 0,
            deadline: None,
        };
        let State::LongPoll(hold) = std::mem::replace(&mut self.state, placeholder) else {
            return None;
        };
        hold.sub.leave(ctx.hub, self.id);
        let c = ctx.stats.of(Transport::LongPoll);
        c.holds_active = c.holds_active.saturating_sub(1);
        Some(hold)
    }
}
