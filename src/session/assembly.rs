//! The server-wide budget for messages being assembled: publish bodies
//! being read and WebSocket messages being reassembled from frames
//! (`--assembly-memory`).
//!
//! One [`Assembly`] is owned by the event loop and lent to every session
//! through its [`super::Ctx`]. Each session holds a *charge*: the bytes its
//! partial message holds beyond [`ASSEMBLY_ALLOWANCE`], set after every
//! input ([`Assembly::charge`]) and returned when the message completes or
//! the connection closes, however it closes ([`Assembly::release`]). A charge
//! that would pass the budget is refused, and the session refuses the message
//! with its wire consequence: `503` for a publish body, close `1013` for a
//! WebSocket message. Without it, 24 `/echo` peers each leaving a
//! 16 MiB message unfinished held 382 MiB.

use crate::config::ASSEMBLY_ALLOWANCE;

/// Bytes held by partial messages over all connections, against a limit.
#[derive(Debug, Default)]
pub struct Assembly {
    used: usize,
    limit: usize,
    /// Messages refused because the budget was spent.
    refusals: u64,
}

impl Assembly {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> Assembly {
        Assembly {
            used: 0,
            limit,
            refusals: 0,
        }
    }

    /// Bytes charged now, over all connections.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The budget (`--assembly-memory`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Messages refused so far.
    pub fn refusals(&self) -> u64 {
        self.refusals
    }

    /// A connection whose charge is `*charge` now holds `held` bytes of a
    /// partial message: moves its charge to what it holds beyond the
    /// allowance. Growing past the budget is refused (`false`, the charge
    /// unchanged, a refusal counted); shrinking always succeeds.
    pub fn charge(&mut self, charge: &mut usize, held: usize) -> bool {
        let want = held.saturating_sub(ASSEMBLY_ALLOWANCE);
        if want > *charge && self.used - *charge + want > self.limit {
            self.refusals += 1;
            return false;
        }
        self.used = self.used - *charge + want;
        *charge = want;
        true
    }

    /// The connection's message completed or the connection closed.
    pub fn release(&mut self, charge: &mut usize) {
        self.used -= *charge;
        *charge = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::session::{Lifecycle, Session};
    use crate::testkit::{split_head, Rig};
    use crate::wire::websocket::{encode_masked_frame, DataOpcode, Opcode};

    const KIB: usize = 1024;
    const TEXT: Opcode = Opcode::Data(DataOpcode::Text);
    const CONTINUATION: Opcode = Opcode::Data(DataOpcode::Continue);

    fn rig(assembly_memory: usize) -> Rig {
        Rig::new(Config {
            assembly_memory,
            max_message: 4 * KIB * KIB,
            ..Config::default()
        })
    }

    /// An `/echo` WebSocket, its `101` taken out.
    fn echo(rig: &mut Rig, id: usize) -> Session {
        let mut s = Session::new(id, rig.now, &rig.config);
        let head = "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                    Sec-WebSocket-Version: 13\r\n\r\n";
        s.handle_input(head.as_bytes(), &mut rig.ctx());
        let (status, _) = split_head(&s.output().take_all());
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        s
    }

    fn frame(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_masked_frame(opcode, fin, [1, 2, 3, 4], payload, &mut out);
        out
    }

    /// The close code of `out`, when it is one close frame (unmasked, with
    /// a reason of at most 125 bytes).
    fn close_code(out: &[u8]) -> Option<u16> {
        let ok = out.len() >= 4 && out[0] == 0x88 && usize::from(out[1]) == out.len() - 2;
        ok.then(|| u16::from_be_bytes([out[2], out[3]]))
    }

    #[test]
    fn charges_past_the_allowance_count_until_released() {
        let mut a = Assembly::new(100_000);
        let (mut x, mut y) = (0, 0);
        assert!(a.charge(&mut x, ASSEMBLY_ALLOWANCE));
        assert_eq!(a.used(), 0, "within the allowance");
        assert!(a.charge(&mut x, ASSEMBLY_ALLOWANCE + 60_000));
        assert!(
            !a.charge(&mut y, ASSEMBLY_ALLOWANCE + 50_000),
            "over the budget"
        );
        assert_eq!((a.used(), y, a.refusals()), (60_000, 0, 1));
        assert!(a.charge(&mut y, ASSEMBLY_ALLOWANCE + 40_000));
        assert!(a.charge(&mut x, 10), "shrinking always passes");
        a.release(&mut y);
        assert_eq!((a.used(), x, y), (0, 0, 0));
    }

    #[test]
    fn a_websocket_message_past_the_budget_closes_with_1013_and_frees_it() {
        let mut rig = rig(100 * KIB);
        let (mut a, mut b) = (echo(&mut rig, 1), echo(&mut rig, 2));
        let part = vec![b'x'; 70 * KIB];
        a.handle_input(&frame(TEXT, false, &part), &mut rig.ctx());
        let held = rig.assembly.used();
        assert!(held >= 50 * KIB, "{held}");
        // A second large message does not fit beside the first.
        b.handle_input(&frame(TEXT, false, &part), &mut rig.ctx());
        assert_eq!(b.lifecycle(), Lifecycle::Closing);
        let out = b.output().take_all();
        assert_eq!(close_code(&out), Some(1013), "{out:?}");
        assert_eq!(rig.assembly.used(), held, "the refused one holds nothing");
        assert_eq!(rig.assembly.refusals(), 1);
        // The first completes: echoed, and its bytes are returned.
        a.handle_input(&frame(CONTINUATION, true, b"!"), &mut rig.ctx());
        assert_eq!(a.output().len(), 10 + 70 * KIB + 1, "header and payload");
        assert_eq!(rig.assembly.used(), 0);
        // Small messages split across reads pass within the allowance.
        let small = frame(TEXT, true, &[b'y'; 1000]);
        a.handle_input(&small[..500], &mut rig.ctx());
        a.handle_input(&small[500..], &mut rig.ctx());
        assert_eq!(a.lifecycle(), Lifecycle::Open);
        b.handle_close(&mut rig.ctx());
        a.handle_close(&mut rig.ctx());
        assert_eq!(rig.assembly.used(), 0);
    }

    #[test]
    fn an_unfinished_message_is_freed_when_the_peer_vanishes() {
        let mut rig = rig(64 * KIB * KIB);
        let mut a = echo(&mut rig, 1);
        // A 1 MiB frame of which 200 KiB arrive, then the connection drops.
        let whole = frame(TEXT, true, &vec![b'x'; KIB * KIB]);
        a.handle_input(&whole[..200 * KIB], &mut rig.ctx());
        assert!(rig.assembly.used() > 100 * KIB);
        a.handle_close(&mut rig.ctx());
        assert_eq!(rig.assembly.used(), 0);
    }

    fn publish_head(len: usize) -> String {
        format!("POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
    }

    #[test]
    fn a_publish_body_past_the_budget_is_refused_with_503_and_frees_it() {
        let mut rig = rig(64 * KIB);
        let mut s = Session::new(1, rig.now, &rig.config);
        let mut req = publish_head(500 * KIB).into_bytes();
        req.extend_from_slice(&vec![b'x'; 100 * KIB]);
        s.handle_input(&req, &mut rig.ctx());
        let (head, body) = split_head(&s.output().take_all());
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(head.contains("Retry-After: 1\r\n"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("try again later"));
        assert_eq!(s.lifecycle(), Lifecycle::Closing);
        assert_eq!(rig.assembly.used(), 0);
        assert!(rig.published.is_empty());
    }

    #[test]
    fn a_publish_body_is_charged_while_it_arrives_and_freed_when_complete() {
        let mut rig = rig(1024 * KIB);
        let mut s = Session::new(1, rig.now, &rig.config);
        let mut req = publish_head(300 * KIB).into_bytes();
        req.extend_from_slice(&vec![b'x'; 300 * KIB]);
        s.handle_input(&req[..200 * KIB], &mut rig.ctx());
        assert!(rig.assembly.used() > 100 * KIB);
        s.handle_input(&req[200 * KIB..], &mut rig.ctx());
        rig.commit_to(&mut s);
        let (head, _) = split_head(&s.output().take_all());
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(rig.assembly.used(), 0);
        assert_eq!(rig.published.len(), 1);
    }
}
