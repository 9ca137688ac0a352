//! permessage-deflate (RFC 7692) on the subscriber side of the fan-out
//! (`loadgen fanout --deflate 1`), and the realistic JSON message
//! (`--body json`) that compression is measured with.
//!
//! The load generator offers `permessage-deflate; client_max_window_bits`,
//! as browsers do. Every server here answers `server_no_context_takeover`
//! (pushlab always; the Node server is configured so, `bench/node/fanout.js`),
//! so each compressed message inflates on its own: one inflater serves every
//! connection, reset before each message. Every delivery's payload is
//! compared with the message that was published, so a frame that inflates to
//! the wrong bytes is counted as corrupt, not as delivered.

use flate2::{Decompress, FlushDecompress, Status};

/// The `Sec-WebSocket-Extensions` request header of the offer.
pub const OFFER: &[u8] =
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// RFC 7692 §7.2.2: the receiver appends these four octets before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Adds the offer to a WebSocket opening handshake.
pub fn offer(request: &mut Vec<u8>) {
    assert!(request.ends_with(b"\r\n\r\n"));
    request.truncate(request.len() - 2);
    request.extend_from_slice(OFFER);
    request.extend_from_slice(b"\r\n");
}

/// Whether a `Sec-WebSocket-Extensions` response value agreed to
/// permessage-deflate without context takeover on the server's side (what
/// this inflater needs).
pub fn agreed(extensions: Option<&str>) -> Result<bool, String> {
    let Some(v) = extensions else {
        return Ok(false);
    };
    if !v.contains("permessage-deflate") {
        return Ok(false);
    }
    if !v.contains("server_no_context_takeover") {
        return Err(format!(
            "the server kept its compression context ({v}): messages cannot be inflated alone"
        ));
    }
    Ok(true)
}

/// One raw-DEFLATE inflater, reset for every message.
pub struct Inflate {
    z: Decompress,
    pub out: Vec<u8>,
}

impl Default for Inflate {
    fn default() -> Self {
        Inflate {
            z: Decompress::new_with_window_bits(false, 15),
            out: Vec::with_capacity(64 * 1024),
        }
    }
}

impl Inflate {
    /// Inflates one whole compressed message's payload into `self.out`
    /// (RFC 7692 §7.2.2: the payload, then `00 00 ff ff`); false when it is
    /// not valid DEFLATE data or inflates past `max` bytes.
    pub fn message(&mut self, payload: &[u8], max: usize) -> bool {
        self.z.reset(false);
        self.out.clear();
        for input in [payload, &TAIL[..]] {
            let mut input = input;
            loop {
                if self.out.len() >= max {
                    return false;
                }
                self.out.reserve(16 * 1024);
                let before = self.z.total_in();
                let status =
                    match self
                        .z
                        .decompress_vec(input, &mut self.out, FlushDecompress::Sync)
                    {
                        Ok(s) => s,
                        Err(_) => return false,
                    };
                input = &input[(self.z.total_in() - before) as usize..];
                if status == Status::StreamEnd {
                    return true;
                }
                if input.is_empty() && self.out.len() < self.out.capacity() {
                    break;
                }
            }
        }
        true
    }
}

/// A dashboard update, as a monitoring page would receive it every few
/// seconds for each service it shows: about 380 bytes of JSON, with the
/// `@seq@micros@` marker as its `stamp` and figures that change with `seq`.
pub fn json_body(seq: u64, at_us: u64) -> Vec<u8> {
    let r = seq.wrapping_mul(2_654_435_761) % 10_000;
    format!(
        concat!(
            r#"{{"type":"service.metrics","stamp":"@{seq}@{at}@","service":"checkout-api","#,
            r#""region":"eu-west-1","host":"web-{host:02}.eu-west-1.internal","window_s":10,"#,
            r#""requests":{req},"errors":{err},"status":"{status}","#,
            r#""latency_ms":{{"p50":{p50}.{d1},"p95":{p95}.{d2},"p99":{p99}.{d3}}},"#,
            r#""cpu":0.{cpu:02},"memory_mb":{mem},"#,
            r#""instances":{{"healthy":{healthy},"draining":{draining},"unhealthy":0}},"#,
            r#""deploy":{{"version":"2026.12.06-3","canary":false}},"alerts":[]}}"#
        ),
        seq = seq,
        at = at_us,
        host = r % 16,
        req = 15_000 + r,
        err = r % 37,
        status = if r % 37 > 30 { "degraded" } else { "ok" },
        p50 = 18 + r % 9,
        d1 = r % 10,
        p95 = 70 + r % 31,
        d2 = (r / 10) % 10,
        p99 = 120 + r % 47,
        d3 = (r / 100) % 10,
        cpu = 40 + r % 55,
        mem = 1_700 + r % 300,
        healthy = 10 + r % 4,
        draining = r % 2,
    )
    .into_bytes()
}

/// The message published as `seq` at `at_us`: the JSON update or the
/// padded marker.
pub fn body(json: bool, seq: u64, at_us: u64, size: usize) -> Vec<u8> {
    if json {
        json_body(seq, at_us)
    } else {
        crate::net::message_body(seq, at_us, size)
    }
}

/// Whether `payload` (one WebSocket message) carries exactly `body`: as it
/// is (a server that sends the published bytes) or as the `data` string of
/// pushlab's JSON object (quotes and backslashes escaped).
pub fn carries(payload: &[u8], body: &[u8]) -> bool {
    if payload == body {
        return true;
    }
    let mut escaped = Vec::with_capacity(body.len() + 64);
    for &b in body {
        if b == b'"' || b == b'\\' {
            escaped.push(b'\\');
        }
        escaped.push(b);
    }
    let needle = [b"\"data\":\"".as_slice(), &escaped, b"\"}"].concat();
    payload.ends_with(&needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushlab::wire::websocket::deflate::Compressor;

    #[test]
    fn a_compressed_message_inflates_alone_and_is_checked() {
        let body = json_body(42, 1_234_567);
        assert!((300..450).contains(&body.len()), "{}", body.len());
        let mut z = Compressor::new(15);
        let mut inflate = Inflate::default();
        for _ in 0..2 {
            let mut payload = Vec::new();
            z.compress(&body, &mut payload);
            assert!(payload.len() < body.len() * 3 / 4, "{}", payload.len());
            assert!(inflate.message(&payload, 1 << 20));
            assert_eq!(inflate.out, body);
        }
        assert!(!inflate.message(b"\xff\xff\xff", 1 << 20));
        let mut wrapped = br#"{"topic":"t","id":"e-1","data":""#.to_vec();
        wrapped.extend(
            body.iter()
                .flat_map(|&b| if b == b'"' { vec![b'\\', b] } else { vec![b] }),
        );
        wrapped.extend_from_slice(b"\"}");
        assert!(carries(&wrapped, &body));
        assert!(carries(&body, &body));
        assert!(!carries(&body[1..], &body));
    }

    #[test]
    fn the_offer_goes_before_the_blank_line() {
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
        offer(&mut req);
        assert!(req.ends_with(b"client_max_window_bits\r\n\r\n"));
        assert_eq!(
            agreed(Some("permessage-deflate; server_no_context_takeover")),
            Ok(true)
        );
        assert_eq!(agreed(None), Ok(false));
        assert!(agreed(Some("permessage-deflate")).is_err());
    }
}
