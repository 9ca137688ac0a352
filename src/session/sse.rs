//! Server-Sent Events on a session (stub: being written).

use std::rc::Rc;

use super::http::ReqInfo;
use super::{Ctx, Session};
use crate::hub::Message;
use crate::stats::Transport;
use crate::timers::Instant;
use crate::wire::http1::RequestHead;
use crate::wire::query::Query;

/// A live SSE stream.
pub struct Stream {}

impl Stream {
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }
}

impl Session {
    pub(super) fn start_sse(&mut self, req: ReqInfo, head: &RequestHead, query: &Query, ctx: &mut Ctx) {
        let _ = (head, query);
        self.count_request(Transport::Sse, ctx);
        self.respond_error(501, "SSE is not built yet", !req.keep_alive, ctx);
    }
    pub(super) fn sse_message(&mut self, msg: &Rc<Message>, ctx: &mut Ctx) {
        let _ = (msg, ctx);
    }
    pub(super) fn sse_timeout(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
    pub(super) fn sse_close(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
}
