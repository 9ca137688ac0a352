//! A WebSocket subscriber: the client's opening handshake (RFC 6455 §4.1),
//! then [`crate::wire::websocket::Protocol`] in the [`Role::Client`] role for
//! the frames — masked on the way out (§5.3), checked on the way in (§5.1).
//! Pings are answered (§5.5.2); the run ends with the closing handshake
//! (§7.1.2: the client sends its close, the server answers and closes TCP).
//!
//! Browsers do not reconnect a WebSocket: the page's code must. This client
//! does what that code should, one second after a socket ends it asks again
//! with `since=<last id>` so nothing is lost in between.
//!
//! With [`WsClient::offer_deflate`] (the "WebSocket + deflate" column) the
//! handshake offers permessage-deflate as browsers do (`permessage-deflate;
//! client_max_window_bits`, RFC 7692 §7.1); when the server agrees, every
//! compressed message (RSV1) is inflated by the [`Protocol`] before it is
//! decoded, so its delivery is checked like any other. The client never
//! compresses what it sends (it sends only control frames).
//!
//! Left out: other extensions and subprotocols (none is offered), `wss://`.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::{Base, Command, Delivery, Endpoint};
use crate::lab::http::{Decoded, ResponseReader};
use crate::lab::updates::{decode_ws_text, Update};
use crate::timers::Instant;
use crate::wire::websocket::deflate::{self, Agreed, EXTENSION_NAME, MAX_WINDOW_BITS};
use crate::wire::websocket::{accept_key, CloseCode, Event, Protocol, Role};

/// Wait before reconnecting a socket the server ended.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How long the closing handshake may take before the client drops TCP.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A WebSocket subscriber.
#[derive(Debug)]
pub struct WsClient {
    endpoint: Endpoint,
    max_message: usize,
    /// Feeds the handshake keys and the masking keys.
    seed: u64,
    key: String,
    reader: ResponseReader,
    /// After the `101`: the frame machine.
    protocol: Option<Protocol>,
    /// The id of the last message, for `since=` on a reconnection.
    last_id: Option<String>,
    ready: bool,
    /// Offer permessage-deflate in the handshake.
    deflate: bool,
    pub(crate) base: Base,
}

/// The offer, as Chromium and Firefox send it.
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// What the server's `Sec-WebSocket-Extensions` says: `Ok(None)` when it
/// agreed to nothing, `Ok(Some(takeover))` when it agreed to
/// permessage-deflate (`takeover`: the server may refer to earlier messages,
/// so the inflater keeps its window), `Err` for a response the client must
/// fail (RFC 6455 §9.1: an extension it did not offer; RFC 7692 §7.1: a
/// second permessage-deflate or an unknown parameter).
pub fn agreed_deflate(value: Option<&[u8]>, offered: bool) -> Result<Option<bool>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let mut agreed = None;
    for element in deflate::split_elements(value) {
        let text = String::from_utf8_lossy(element);
        let mut params = text.split(';').map(str::trim);
        let name = params.next().unwrap_or_default();
        if !offered || !name.eq_ignore_ascii_case(EXTENSION_NAME) || agreed.is_some() {
            return Err(format!(
                "the server answered an extension not offered: {text}"
            ));
        }
        let mut takeover = true;
        for p in params {
            let key = p.split('=').next().unwrap_or_default().trim();
            match key.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => takeover = false,
                "client_no_context_takeover"
                | "server_max_window_bits"
                | "client_max_window_bits" => {}
                _ => return Err(format!("unknown permessage-deflate parameter: {p}")),
            }
        }
        agreed = Some(takeover);
    }
    Ok(agreed)
}

/// splitmix64: a cheap, well-mixed sequence for keys (not secrets here).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl WsClient {
    pub fn new(endpoint: Endpoint, max_message: usize, seed: u64) -> WsClient {
        WsClient {
            endpoint,
            max_message,
            seed,
            key: String::new(),
            reader: ResponseReader::new(),
            protocol: None,
            last_id: None,
            ready: false,
            deflate: false,
            base: Base::default(),
        }
    }

    /// Offer permessage-deflate on every (re)connection.
    pub fn offer_deflate(&mut self, on: bool) {
        self.deflate = on;
    }

    pub fn offers_deflate(&self) -> bool {
        self.deflate
    }

    fn connect(&mut self) {
        self.base.connect();
        self.reader = ResponseReader::new();
        self.protocol = None;
        // RFC 6455 §4.1: "a randomly selected 16-byte value that has been
        // base64-encoded".
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&splitmix(&mut self.seed).to_le_bytes());
        raw[8..].copy_from_slice(&splitmix(&mut self.seed).to_le_bytes());
        self.key = BASE64.encode(raw);
        let Endpoint {
            host,
            prefix,
            topic,
        } = &self.endpoint;
        let since = self.last_id.as_deref().unwrap_or("0");
        let target = format!("{prefix}/ws?topic={topic}&since={since}");
        let mut headers = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key.as_str()),
            ("Sec-WebSocket-Version", "13"),
        ];
        if self.deflate {
            headers.push(("Sec-WebSocket-Extensions", DEFLATE_OFFER));
        }
        self.base.send_get(&target, host, &headers, true);
    }

    pub fn handle_start(&mut self, _now: Instant) {
        self.connect();
    }

    pub fn handle_input(&mut self, data: &[u8], _now: Instant, out: &mut Vec<Delivery>) {
        if !self.base.open || self.base.failed {
            return;
        }
        match &mut self.protocol {
            Some(p) => p.receive_data(data),
            None => {
                self.reader.feed(data);
                let head = match self.reader.next_response() {
                    Ok(Decoded::Incomplete) => return,
                    Ok(Decoded::Stream(head)) => head,
                    Ok(Decoded::Response(r)) => {
                        let body = String::from_utf8_lossy(&r.body).into_owned();
                        let why = format!("/ws → {} {}", r.head.status, body.trim());
                        return self.base.fail(why);
                    }
                    Err(e) => return self.base.fail(e.to_string()),
                };
                // RFC 6455 §4.1: the client MUST fail the connection unless
                // the status is 101 and the accept value is the expected one.
                let expected = accept_key(self.key.as_bytes());
                if head.status != 101
                    || head.header("sec-websocket-accept") != Some(expected.as_bytes())
                {
                    return self
                        .base
                        .fail(format!("/ws → {} without a valid upgrade", head.status));
                }
                let agreed =
                    match agreed_deflate(head.header("sec-websocket-extensions"), self.deflate) {
                        Ok(a) => a,
                        Err(e) => return self.base.fail(e),
                    };
                self.base.counters.responses += 1;
                self.base.exchanges += 1;
                self.ready = true;
                let mut p = Protocol::new(Role::Client, self.max_message);
                p.set_mask_seed(splitmix(&mut self.seed));
                match agreed {
                    Some(takeover) => p.enable_deflate(&Agreed {
                        // The inflater follows the *peer's* context rule:
                        // for this client, the server's (§7.1.1.1).
                        client_no_context_takeover: !takeover,
                        server_max_window_bits: MAX_WINDOW_BITS,
                        server_window_in_response: false,
                        client_max_window_bits: MAX_WINDOW_BITS,
                        client_window_in_response: false,
                    }),
                    None if self.deflate => self.base.counters.deflate_declined += 1,
                    None => {}
                }
                p.receive_data(&self.reader.take_rest());
                self.protocol = Some(p);
            }
        }
        self.drain_events(out);
    }

    fn drain_events(&mut self, out: &mut Vec<Delivery>) {
        loop {
            let Some(p) = &mut self.protocol else {
                return;
            };
            let mut reply = Vec::new();
            let event = p.next_event();
            self.base.counters.compressed += p.take_compressed_count();
            match event {
                Ok(Event::NeedData) => return,
                Ok(Event::Text(text)) => match decode_ws_text(&text) {
                    Ok(update) => {
                        if let Update::Message { id, .. } = &update {
                            self.last_id = Some(id.clone());
                        }
                        self.base.deliver(update, out);
                    }
                    Err(e) => return self.fail_protocol(e.to_string(), CloseCode::UNSUPPORTED),
                },
                Ok(Event::Binary(_)) | Ok(Event::Pong(_)) => {}
                Ok(Event::Ping(payload)) => p.send_pong(&payload, &mut reply),
                Ok(Event::Close { code, .. }) => {
                    // §5.5.1: echo the code; the server then closes TCP.
                    if !p.is_close_sent() {
                        p.send_close(code, "", &mut reply);
                    }
                }
                Err(e) => return self.fail_protocol(e.to_string(), e.close_code()),
            }
            if !reply.is_empty() {
                self.base.push(Command::Send(reply));
            }
        }
    }

    /// Fail the connection (§7.1.7): a close frame with `code`, then TCP.
    fn fail_protocol(&mut self, why: String, code: CloseCode) {
        if let Some(p) = &mut self.protocol {
            let mut frame = Vec::new();
            p.send_close(Some(code), "", &mut frame);
            if !frame.is_empty() {
                self.base.push(Command::Send(frame));
            }
        }
        self.base.fail(why);
    }

    pub fn handle_eof(&mut self, now: Instant) {
        if !self.base.close() {
            return;
        }
        self.protocol = None;
        if self.base.stopping || self.base.failed {
            self.base.push(Command::CancelWake);
            return;
        }
        self.base.counters.reconnects += 1;
        self.base.push(Command::WakeAt(now + RECONNECT_AFTER));
    }

    pub fn handle_timer(&mut self, _now: Instant) {
        if self.base.stopping {
            // The closing handshake took too long.
            self.base.close();
        } else if !self.base.open && !self.base.failed {
            self.connect();
        }
    }

    /// Start the closing handshake (§7.1.2); [`CLOSE_TIMEOUT`] bounds it.
    pub fn handle_stop(&mut self, now: Instant) {
        self.base.stopping = true;
        self.base.push(Command::CancelWake);
        match &mut self.protocol {
            Some(p) if self.base.open && !p.is_close_sent() => {
                let mut frame = Vec::new();
                p.send_close(Some(CloseCode::NORMAL), "", &mut frame);
                self.base.push(Command::Send(frame));
                self.base.push(Command::WakeAt(now + CLOSE_TIMEOUT));
            }
            _ => {
                self.base.close();
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::websocket::{decode_header, encode_frame, ControlOpcode, Opcode};

    fn commands(c: &mut WsClient) -> Vec<Command> {
        std::iter::from_fn(|| c.base.commands.pop_front()).collect()
    }

    fn client() -> WsClient {
        WsClient::new(
            Endpoint {
                host: "h".into(),
                prefix: String::new(),
                topic: "t".into(),
            },
            1 << 20,
            7,
        )
    }

    fn accept_for(c: &WsClient) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(c.key.as_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn the_handshake_is_checked_then_frames_deliver_and_pings_get_pongs() {
        let mut c = client();
        c.handle_start(Instant::ZERO);
        let cmds = commands(&mut c);
        let Command::Send(req) = &cmds[1] else {
            panic!()
        };
        let req = String::from_utf8_lossy(req);
        assert!(req.starts_with("GET /ws?topic=t&since=0 HTTP/1.1\r\n"));
        assert!(req.contains("Sec-WebSocket-Version: 13\r\n"));
        let mut bytes = accept_for(&c);
        let text = Opcode::Data(crate::wire::websocket::DataOpcode::Text);
        encode_frame(
            text,
            true,
            br#"{"topic":"t","id":"E-7","data":"x"}"#,
            &mut bytes,
        );
        encode_frame(Opcode::Control(ControlOpcode::Ping), true, b"p", &mut bytes);
        let mut out = Vec::new();
        c.handle_input(&bytes, Instant::ZERO, &mut out);
        assert!(c.is_ready());
        assert_eq!(out.len(), 1);
        assert!(out[0].reused);
        let cmds = commands(&mut c);
        let [Command::Send(pong)] = &cmds[..] else {
            panic!("{cmds:?}")
        };
        let crate::wire::websocket::Decoded::Complete { value, .. } = decode_header(pong).unwrap()
        else {
            panic!()
        };
        assert_eq!(value.opcode, Opcode::Control(ControlOpcode::Pong));
        assert!(
            value.mask.is_some(),
            "RFC 6455 §5.3: client frames are masked"
        );
        // A reconnection resumes after the last id.
        c.handle_eof(Instant::ZERO);
        c.handle_timer(Instant::from_millis(1000));
        let cmds = commands(&mut c);
        let again = cmds
            .iter()
            .find_map(|c| match c {
                Command::Send(r) => Some(String::from_utf8_lossy(r).into_owned()),
                _ => None,
            })
            .unwrap();
        assert!(again.starts_with("GET /ws?topic=t&since=E-7 "));
    }

    /// The `101` for `c`, agreeing to `extensions` when given.
    fn accept_with(c: &WsClient, extensions: Option<&str>) -> Vec<u8> {
        let mut head = accept_for(c);
        if let Some(e) = extensions {
            head.truncate(head.len() - 2);
            head.extend_from_slice(format!("Sec-WebSocket-Extensions: {e}\r\n\r\n").as_bytes());
        }
        head
    }

    #[test]
    fn with_deflate_the_offer_is_made_and_compressed_messages_are_inflated() {
        use crate::wire::websocket::deflate::Compressor;
        use crate::wire::websocket::{encode_compressed_frame, DataOpcode};
        let mut c = client();
        c.offer_deflate(true);
        c.handle_start(Instant::ZERO);
        let cmds = commands(&mut c);
        let Command::Send(req) = &cmds[1] else {
            panic!()
        };
        assert!(String::from_utf8_lossy(req)
            .contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"));
        let mut bytes = accept_with(&c, Some("permessage-deflate; server_no_context_takeover"));
        let json = br#"{"topic":"t","id":"E-9","data":"hello hello hello hello"}"#;
        let mut z = Compressor::new(15);
        for _ in 0..2 {
            let mut payload = Vec::new();
            z.compress(json, &mut payload);
            encode_compressed_frame(DataOpcode::Text, &payload, &mut bytes);
        }
        let mut out = Vec::new();
        c.handle_input(&bytes, Instant::ZERO, &mut out);
        assert_eq!(out.len(), 2, "{:?}", c.base.counters);
        assert!(matches!(&out[1].update, Update::Message { id, .. } if id == "E-9"));
        assert_eq!(c.base.counters.compressed, 2);
        assert_eq!(c.base.counters.errors, 0);
    }

    #[test]
    fn a_declined_offer_is_counted_and_an_unoffered_extension_fails() {
        let mut c = client();
        c.offer_deflate(true);
        c.handle_start(Instant::ZERO);
        let bytes = accept_with(&c, None);
        c.handle_input(&bytes, Instant::ZERO, &mut Vec::new());
        assert!(c.is_ready() && !c.base.failed);
        assert_eq!(c.base.counters.deflate_declined, 1);

        // RFC 6455 §9.1: an extension the client did not offer.
        let mut c = client();
        c.handle_start(Instant::ZERO);
        let bytes = accept_with(&c, Some("permessage-deflate"));
        c.handle_input(&bytes, Instant::ZERO, &mut Vec::new());
        assert!(c.base.failed);

        assert_eq!(
            agreed_deflate(Some(b"permessage-deflate; client_max_window_bits=10"), true),
            Ok(Some(true))
        );
        assert!(agreed_deflate(Some(b"permessage-deflate; x=1"), true).is_err());
        assert!(agreed_deflate(Some(b"permessage-deflate, permessage-deflate"), true).is_err());
    }

    #[test]
    fn a_wrong_accept_key_fails_the_connection() {
        let mut c = client();
        c.handle_start(Instant::ZERO);
        c.handle_input(
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n",
            Instant::ZERO,
            &mut Vec::new(),
        );
        assert!(c.base.failed);
    }

    #[test]
    fn stopping_sends_a_close_and_waits_for_the_server_to_end_tcp() {
        let mut c = client();
        c.handle_start(Instant::ZERO);
        let bytes = accept_for(&c);
        c.handle_input(&bytes, Instant::ZERO, &mut Vec::new());
        commands(&mut c);
        c.handle_stop(Instant::ZERO);
        let cmds = commands(&mut c);
        assert!(matches!(&cmds[1], Command::Send(f) if f[0] == 0x88));
        assert_eq!(cmds[2], Command::WakeAt(Instant::ZERO + CLOSE_TIMEOUT));
        assert!(!c.base.is_done());
        c.handle_eof(Instant::ZERO);
        assert!(c.base.is_done());
    }
}
