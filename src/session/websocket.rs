//! WebSockets on a session (stub: being written).

use std::rc::Rc;

use super::routing::Route;
use super::{Ctx, Session};
use crate::hub::Message;
use crate::stats::Transport;
use crate::timers::Instant;
use crate::wire::http1::RequestHead;
use crate::wire::query::Query;

/// A WebSocket connection after the handshake.
pub struct WsConn {}

impl WsConn {
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }
}

impl Session {
    pub(super) fn start_websocket(
        &mut self,
        route: Route,
        head: &RequestHead,
        query: &Query,
        ctx: &mut Ctx,
    ) {
        let _ = (route, query);
        self.count_request(Transport::Ws, ctx);
        self.respond_error(501, "WebSockets are not built yet", !head.keep_alive, ctx);
    }
    pub(super) fn ws_input(&mut self, data: &[u8], ctx: &mut Ctx) {
        let _ = (data, ctx);
    }
    pub(super) fn ws_message(&mut self, msg: &Rc<Message>, ctx: &mut Ctx) {
        let _ = (msg, ctx);
    }
    pub(super) fn ws_timeout(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
    pub(super) fn ws_shutdown(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
    pub(super) fn ws_close(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
}
