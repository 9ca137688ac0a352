//! `GET /trace`: the server's socket events as a Server-Sent Events stream,
//! for the demo page's timeline.
//!
//! Each event (accept, request, hold, response, frame, heartbeat, timeout,
//! close) is encoded once by the loop as `data: {json}` and shared by every
//! watcher. The stream never traces itself (the tracer skips watchers'
//! connections), is cut like any slow subscriber when its queue passes
//! `--max-queued-bytes`, and costs nothing when nobody watches: events are
//! only built while a watcher or `--trace` is on.

use std::rc::Rc;

use super::{Ctx, Lifecycle, Session, State};
use crate::stats::Transport;
use crate::timers::Instant;
use crate::wire::http1::ResponseHead;
use crate::wire::sse;

/// A `/trace` stream.
#[derive(Debug)]
pub struct Watch {
    /// When the next `: ping` comment is due.
    pub heartbeat_at: Instant,
}

impl Session {
    /// `GET /trace`: answers with an event-stream head and joins the watchers.
    pub(super) fn start_trace(&mut self, ctx: &mut Ctx) {
        self.count_request(Transport::Http, ctx);
        let mut head = Vec::with_capacity(200);
        ResponseHead::new(&mut head, 200)
            .header("Content-Type", "text/event-stream")
            .header("X-Accel-Buffering", "no")
            .header("Connection", "close")
            .finish_streaming();
        sse::encode_retry(&mut head, ctx.config.sse_retry.as_millis() as u64);
        self.out.push_owned(head);
        self.input = Vec::new();
        ctx.tracer.watchers.push((self.id, self.serial));
        self.state = State::Trace(Watch {
            heartbeat_at: ctx.now + ctx.config.heartbeat,
        });
    }

    /// Queues trace events (`(serial, encoded)`), skipping this connection's own.
    pub fn handle_trace(&mut self, events: &[(u64, Rc<[u8]>)], ctx: &mut Ctx) {
        if self.lifecycle != Lifecycle::Open || !matches!(self.state, State::Trace(_)) {
            return;
        }
        for (conn, bytes) in events {
            if *conn != self.serial {
                self.out.push_shared(bytes);
            }
        }
        if self.out.len() > ctx.config.max_queued_bytes {
            self.handle_overflow(ctx);
        }
    }

    pub(super) fn trace_heartbeat(&mut self, ctx: &mut Ctx) {
        if let State::Trace(watch) = &mut self.state {
            watch.heartbeat_at = ctx.now + ctx.config.heartbeat;
            let mut ping = Vec::new();
            sse::encode_comment(&mut ping, "ping");
            self.out.push_owned(ping);
        }
    }

    pub(super) fn trace_close(&mut self, ctx: &mut Ctx) {
        let id = self.id;
        ctx.tracer.watchers.retain(|&(w, _)| w != id);
    }
}
