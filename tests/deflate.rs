//! permessage-deflate (RFC 7692) over real loopback sockets: the handshake's
//! answer, compressed fan-out shared by every subscriber, compressed echoes,
//! the inflated-size limit and the `/stats` counters. The client is written
//! here from the RFCs: raw frames, and `flate2`'s raw DEFLATE used directly
//! (not pushlab's codec) to compress and inflate.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::{read_head, wait_until, TestServer};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use pushlab::config::Config;

const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A frame as the client reads it.
#[derive(Debug)]
struct Frame {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

struct Client {
    reader: BufReader<TcpStream>,
    /// The 101's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
}

impl Client {
    fn open(server: &TestServer, path: &str, offer: Option<&str>) -> Client {
        let mut s = server.connect();
        let offer = offer.map_or(String::new(), |o| {
            format!("Sec-WebSocket-Extensions: {o}\r\n")
        });
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
            server.addr
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let (status, headers) = read_head(&mut reader);
        assert_eq!(status, 101);
        let extensions = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, v)| v.clone());
        Client { reader, extensions }
    }

    /// Sends one masked frame, RSV1 as given.
    fn send(&mut self, opcode: u8, rsv1: bool, payload: &[u8]) {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut out = vec![0x80 | (u8::from(rsv1) << 6) | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.reader.get_mut().write_all(&out).unwrap();
    }

    /// The next data or close frame (pings skipped).
    fn next(&mut self) -> Frame {
        loop {
            let mut head = [0u8; 2];
            self.reader.read_exact(&mut head).expect("frame header");
            assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.reader.read_exact(&mut b).unwrap();
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.reader.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.reader.read_exact(&mut payload).unwrap();
            let frame = Frame {
                rsv1: head[0] & 0x40 != 0,
                opcode: head[0] & 0x0f,
                payload,
            };
            if frame.opcode != 0x9 {
                assert_ne!(head[0] & 0x80, 0, "unfragmented");
                return frame;
            }
        }
    }

    fn is_at_eof(&mut self) -> bool {
        matches!(self.reader.fill_buf(), Ok(b) if b.is_empty())
    }
}

/// RFC 7692 §7.2.1 with flate2 directly: raw DEFLATE, sync flush, tail off.
fn compress(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// RFC 7692 §7.2.2 with flate2 directly: tail on, raw inflate.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

fn ws_stats(server: &TestServer) -> serde_json::Value {
    server.stats()["transports"]["ws"].clone()
}

/// A realistic feed message: repetitive JSON, which compresses well.
fn feed_message() -> String {
    let rows: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"symbol":"SYM{i}","price":{}.25,"change":-0.5}}"#,
                100 + i
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

#[test]
fn the_handshake_answers_the_browser_offer_with_no_context_takeover() {
    let server = TestServer::default();
    let client = Client::open(&server, "/echo", Some(BROWSER_OFFER));
    assert_eq!(
        client.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    // Declined offers: no extension in the answer, the handshake goes on.
    let client = Client::open(
        &server,
        "/echo",
        Some("permessage-deflate; server_max_window_bits=8"),
    );
    assert_eq!(client.extensions, None);
    let client = Client::open(&server, "/echo", None);
    assert_eq!(client.extensions, None);
}

#[test]
fn ws_deflate_off_declines_every_offer() {
    let server = TestServer::start(Config {
        ws_deflate: false,
        ..Config::default()
    });
    let mut client = Client::open(&server, "/echo", Some(BROWSER_OFFER));
    assert_eq!(client.extensions, None);
    // And RSV1 is then a protocol error, as without any extension.
    client.send(0x1, true, &compress(b"hello"));
    let close = client.next();
    assert_eq!(
        (close.opcode, &close.payload[..2]),
        (0x8, &1002u16.to_be_bytes()[..])
    );
}

#[test]
fn a_message_is_compressed_once_and_the_same_frame_goes_to_every_compressing_subscriber() {
    let server = TestServer::default();
    let mut a = Client::open(&server, "/ws?topic=feed", Some(BROWSER_OFFER));
    let mut b = Client::open(&server, "/ws?topic=feed", Some("permessage-deflate"));
    let mut plain = Client::open(&server, "/ws?topic=feed", None);
    let data = feed_message();
    server.publish("feed", &data);

    let fa = a.next();
    let fb = b.next();
    assert!(fa.rsv1 && fb.rsv1, "compressed frames have RSV1");
    assert_eq!(fa.payload, fb.payload, "one compressed payload for both");
    let json: serde_json::Value = serde_json::from_slice(&inflate(&fa.payload)).unwrap();
    assert_eq!(json["data"], data.as_str());
    assert_eq!(json["topic"], "feed");
    let fp = plain.next();
    assert!(!fp.rsv1);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&fp.payload).unwrap(),
        json
    );
    assert!(
        fa.payload.len() * 3 < fp.payload.len(),
        "{} vs {}",
        fa.payload.len(),
        fp.payload.len()
    );

    let ws = ws_stats(&server);
    assert_eq!(ws["deflate_frames_out"], 2);
    assert_eq!(ws["deflate_bytes_before"], 2 * fp.payload.len() as u64);
    assert_eq!(ws["deflate_bytes_after"], 2 * fa.payload.len() as u64);
}

#[test]
fn a_binary_message_is_one_compressed_binary_frame_holding_its_envelope() {
    let server = TestServer::default();
    let mut a = Client::open(&server, "/ws?topic=bin", Some(BROWSER_OFFER));
    let mut plain = Client::open(&server, "/ws?topic=bin", None);
    // Compressible bytes that are not UTF-8.
    let data: Vec<u8> = feed_message().bytes().map(|b| b | 0x80).collect();
    let id = server.publish_binary("bin", &data);

    let fa = a.next();
    assert!(fa.rsv1 && fa.opcode == 0x2, "a compressed binary frame");
    let fp = plain.next();
    assert!(!fp.rsv1 && fp.opcode == 0x2, "a plain binary frame");
    let payload = inflate(&fa.payload);
    assert_eq!(payload, fp.payload, "the same envelope, compressed");
    let n = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
    let header: serde_json::Value = serde_json::from_slice(&payload[2..2 + n]).unwrap();
    assert_eq!(header, serde_json::json!({"topic": "bin", "id": id}));
    assert_eq!(&payload[2 + n..], &data[..]);
    assert!(fa.payload.len() * 3 < fp.payload.len());
    let ws = ws_stats(&server);
    assert_eq!(ws["deflate_frames_out"], 1);
    assert_eq!(ws["deflate_bytes_before"], fp.payload.len() as u64);

    // A compressed binary frame from the client publishes its inflated bytes.
    a.send(0x2, true, &compress(&[0xff, 0x00, 0xff]));
    let fb = a.next();
    let payload = inflate_or_plain(&fb);
    assert_eq!(&payload[payload.len() - 3..], &[0xff, 0x00, 0xff]);
}

/// A frame's payload, inflated when it was compressed.
fn inflate_or_plain(frame: &Frame) -> Vec<u8> {
    if frame.rsv1 {
        inflate(&frame.payload)
    } else {
        frame.payload.clone()
    }
}

#[test]
fn messages_under_the_threshold_go_uncompressed() {
    let server = TestServer::start(Config {
        ws_deflate_threshold: 4096,
        ..Config::default()
    });
    let mut client = Client::open(&server, "/ws?topic=t", Some(BROWSER_OFFER));
    server.publish("t", &feed_message());
    let frame = client.next();
    assert!(!frame.rsv1);
    assert_eq!(ws_stats(&server)["deflate_frames_out"], 0);
}

#[test]
fn a_compressed_message_is_echoed_compressed_and_published_inflated() {
    let server = TestServer::default();
    let mut echo = Client::open(&server, "/echo", Some(BROWSER_OFFER));
    let data = feed_message();
    echo.send(0x1, true, &compress(data.as_bytes()));
    let frame = echo.next();
    assert!(frame.rsv1 && frame.opcode == 0x1);
    assert_eq!(inflate(&frame.payload), data.as_bytes());
    // A compressed binary message comes back binary.
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
    echo.send(0x2, true, &compress(&bytes));
    let frame = echo.next();
    assert!(frame.rsv1 && frame.opcode == 0x2);
    assert_eq!(inflate(&frame.payload), bytes);

    // Every echo goes back compressed, even a tiny one.
    echo.send(0x1, false, b"hi");
    let frame = echo.next();
    assert!(frame.rsv1);
    assert_eq!(inflate(&frame.payload), b"hi");

    // On /ws a compressed text message is published inflated.
    let mut publisher = Client::open(&server, "/ws?topic=p", Some(BROWSER_OFFER));
    publisher.send(0x1, true, &compress(b"hello from a compressing client"));
    wait_until("the message is published", || {
        server.request("GET", "/poll?topic=p&since=0", b"").json()["messages"][0]["data"]
            == "hello from a compressing client"
    });
    assert_eq!(ws_stats(&server)["deflate_messages_in"], 3);
}

#[test]
fn a_compression_bomb_closes_with_1009() {
    let server = TestServer::start(Config {
        ws_max_message: 64 * 1024,
        ..Config::default()
    });
    let mut echo = Client::open(&server, "/echo", Some(BROWSER_OFFER));
    let bomb = compress(&vec![b'a'; 16 << 20]);
    assert!(bomb.len() < 64 * 1024);
    echo.send(0x1, true, &bomb);
    let close = echo.next();
    assert_eq!(close.opcode, 0x8);
    assert_eq!(close.payload[..2], 1009u16.to_be_bytes());
    // The server is fine: another connection works.
    let mut other = Client::open(&server, "/echo", None);
    other.send(0x1, false, b"still here");
    assert_eq!(other.next().payload, b"still here");
    let _ = echo.is_at_eof();
}

#[test]
fn rsv1_on_a_continuation_closes_with_1002() {
    let server = TestServer::default();
    let mut echo = Client::open(&server, "/echo", Some(BROWSER_OFFER));
    let payload = compress(b"Hello");
    // First fragment (FIN clear, RSV1 set), then a continuation with RSV1.
    let key = [0u8; 4];
    let mut out = vec![0x41, 0x80 | 3];
    out.extend_from_slice(&key);
    out.extend_from_slice(&payload[..3]);
    out.extend_from_slice(&[0xc0, 0x80 | (payload.len() - 3) as u8]);
    out.extend_from_slice(&key);
    out.extend_from_slice(&payload[3..]);
    echo.reader.get_mut().write_all(&out).unwrap();
    let close = echo.next();
    assert_eq!(
        (close.opcode, &close.payload[..2]),
        (0x8, &1002u16.to_be_bytes()[..])
    );
}
