//! Short polling: `GET /poll?topic=T&since=…` answers at once with whatever
//! is newer than the cursor — possibly nothing. The classic "are we there
//! yet?" technique: every update costs at least one request, and every
//! request that finds nothing is an empty response.
//!
//! The poll body is also what long polling answers with, so the writer lives
//! here; the message JSON comes from [`super::encoded`].

use std::rc::Rc;

use super::encoded;
use super::http::ReqInfo;
use super::{Ctx, Session};
use crate::hub::{Batch, Cursor};
use crate::stats::Transport;
use crate::wire::json;
use crate::wire::query::Query;

impl Session {
    /// `GET /poll`.
    pub(super) fn answer_poll(&mut self, req: ReqInfo, query: &Query, ctx: &mut Ctx) {
        self.count_request(Transport::Poll, ctx);
        let (topics, cursor) = match query.topics().and_then(|t| Ok((t, query.cursor("since")?))) {
            Ok(v) => v,
            Err(e) => return self.refuse(e.into(), !req.keep_alive, ctx),
        };
        let batch = ctx
            .hub
            .read(&topics, &cursor.unwrap_or(Cursor::Now), ctx.now);
        self.answer_poll_body(req, &batch, Transport::Poll, ctx);
    }

    /// Answers `200` with the poll body of `batch` (head + shared message
    /// JSON) and moves on to the next request. The trace counts the
    /// messages, for the demo page's "same socket reused" share of updates.
    pub(super) fn answer_poll_body(
        &mut self,
        req: ReqInfo,
        batch: &Batch,
        t: Transport,
        ctx: &mut Ctx,
    ) {
        let close = json::poll_close(ctx.hub.epoch(), batch.next_seq, batch.missed, batch.reset);
        // Made once here (a form made after the fan-out is not kept, so
        // asking twice would encode twice); empty polls allocate nothing.
        let items: Vec<Rc<[u8]>> = batch
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i == 0 {
                    encoded::json(m)
                } else {
                    encoded::json_list_item(m)
                }
            })
            .collect();
        let len =
            json::POLL_OPEN.len() + close.len() + items.iter().map(|b| b.len()).sum::<usize>();
        self.respond_head(
            req,
            200,
            "application/json",
            &[("Cache-Control", "no-store")],
            len,
        );
        if !req.head_only {
            self.out.push_slice(json::POLL_OPEN);
            for item in &items {
                self.out.push_shared(item);
            }
            self.out.push_owned(close);
        }
        let c = ctx.stats.of(t);
        c.messages_delivered += batch.messages.len() as u64;
        if batch.messages.is_empty() {
            c.empty_responses += 1;
        }
        if batch.missed > 0 {
            c.gaps_reported += 1;
        }
        if batch.reset {
            c.resets_reported += 1;
        }
        let (id, tr, queued, n) = (
            self.serial,
            self.transport,
            self.out.len(),
            batch.messages.len(),
        );
        ctx.trace(id, tr, "response", queued, || format!("200 messages={n}"));
        self.next_request(req.keep_alive, ctx);
    }
}
