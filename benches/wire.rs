//! Micro-benchmarks of the pure codecs (docs/performance.md, "criterion").
//!
//! `cargo bench --bench wire` — request-head parse, WebSocket frame-header
//! decode, unmasking 64 KiB next to a plain copy of the same bytes, the
//! whole receive path of a WebSocket message (`Protocol::receive_data` to
//! its event) at 16 B, 1 KiB and 64 KiB, the SSE encoder, and one `XREAD`
//! reply of 200 log entries read as the Redis log's tail reads it: built
//! into a `Reply` tree, or taken raw and walked in place.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pushlab::redis::stream::decode_read_reply;
use pushlab::wire::http1::{find_head_end, parse_head, HeadEnd};
use pushlab::wire::resp::{encode_reply, Decoded, Decoder, Reply};
use pushlab::wire::sse::encode_event;
use pushlab::wire::websocket::{
    apply_mask, decode_header, encode_masked_frame, Event, Opcode, Protocol, Role,
};

/// What a browser's `fetch('/poll?…')` sends, give or take.
const BROWSER_HEAD: &[u8] = b"GET /poll?topic=bench&since=lx2k9a-41 HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: http://127.0.0.1:8080/\r\n\
Connection: keep-alive\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-origin\r\n\r\n";

/// What `wrk` sends.
const WRK_HEAD: &[u8] = b"GET /poll?topic=bench HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

fn head_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("http1_head");
    for (name, head) in [("wrk", WRK_HEAD), ("browser", BROWSER_HEAD)] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_with_input(BenchmarkId::new("find_end+parse", name), head, |b, head| {
            b.iter(|| {
                let HeadEnd::Complete(len) = find_head_end(black_box(head), 0) else {
                    unreachable!()
                };
                black_box(parse_head(&head[..len]).unwrap())
            })
        });
    }
    g.finish();
}

fn frame_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_decode_header");
    for size in [16usize, 1024, 65536] {
        let mut frame = Vec::new();
        encode_masked_frame(
            Opcode::from_bits(0x1),
            true,
            [1, 2, 3, 4],
            &vec![b'x'; size],
            &mut frame,
        );
        g.bench_with_input(BenchmarkId::from_parameter(size), &frame, |b, frame| {
            b.iter(|| black_box(decode_header(black_box(frame)).unwrap()))
        });
    }
    g.finish();
}

fn unmask(c: &mut Criterion) {
    const N: usize = 64 * 1024;
    let src: Vec<u8> = (0..N).map(|i| i as u8).collect();
    let mut dst = vec![0u8; N];
    let mut g = c.benchmark_group("unmask_64KiB");
    g.throughput(Throughput::Bytes(N as u64));
    // The baseline: the same bytes, copied and not transformed.
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    // In place, as the server does it (bytes already in its buffer).
    g.bench_function("apply_mask_in_place", |b| {
        b.iter(|| {
            apply_mask(black_box(&mut dst), [0x37, 0xfa, 0x21, 0x3d], 0);
        })
    });
    // Copy then unmask: what a copy out of the read buffer costs with it.
    g.bench_function("copy+apply_mask", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            apply_mask(&mut dst, [0x37, 0xfa, 0x21, 0x3d], 1);
            black_box(&mut dst);
        })
    });
    g.finish();
}

/// One masked message in, its event out, as the `/echo` path does it: the
/// frame arrives in reads of at most 64 KiB (the server's read chunk).
fn ws_receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_receive");
    for (kind, opcode) in [("text", 0x1), ("binary", 0x2)] {
        for size in [16usize, 1024, 65536] {
            let mut frame = Vec::new();
            let payload = vec![b'a'; size];
            encode_masked_frame(
                Opcode::from_bits(opcode),
                true,
                [0x37, 0xfa, 0x21, 0x3d],
                &payload,
                &mut frame,
            );
            let mut protocol = Protocol::new(Role::Server, 16 << 20);
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(kind, size), &frame, |b, frame| {
                b.iter(|| {
                    for read in frame.chunks(64 * 1024) {
                        protocol.receive_data(black_box(read));
                    }
                    let event = protocol.next_event().unwrap();
                    debug_assert!(matches!(event, Event::Text(_) | Event::Binary(_)));
                    black_box(event)
                })
            });
        }
    }
    g.finish();
}

fn sse_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse_encode_event");
    let one_line = "x".repeat(100);
    let json = r#"{"topic":"bench","id":"lx2k9a-41","data":"hello"}"#.to_string();
    let multi = "line one\nline two\r\nline three\rline four\n".repeat(16);
    let big = "y".repeat(64 * 1024);
    for (name, data) in [
        ("100B", &one_line),
        ("json", &json),
        ("64lines", &multi),
        ("64KiB", &big),
    ] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let mut out = Vec::with_capacity(data.len() * 2);
        g.bench_with_input(BenchmarkId::from_parameter(name), data, |b, data| {
            b.iter(|| {
                out.clear();
                encode_event(&mut out, Some("lx2k9a-41"), None, black_box(data));
                black_box(&out);
            })
        });
    }
    g.finish();
}

/// An `XREAD` reply of `n` entries as the append script writes them:
/// 64-byte data, an origin, text.
fn xread_reply(n: u64) -> Vec<u8> {
    let bulk = |b: &[u8]| Reply::Bulk(b.to_vec());
    let entries = (1..=n)
        .map(|seq| {
            Reply::Array(vec![
                bulk(format!("{seq}-0").as_bytes()),
                Reply::Array(vec![
                    bulk(b"t"),
                    bulk(b"bench"),
                    bulk(b"d"),
                    bulk(&[b'x'; 64]),
                    bulk(b"o"),
                    bulk(format!("k3v9x2:{seq}").as_bytes()),
                    bulk(b"k"),
                    bulk(b"t"),
                ]),
            ])
        })
        .collect();
    let reply = Reply::Array(vec![Reply::Array(vec![
        bulk(b"pushlab:log"),
        Reply::Array(entries),
    ])]);
    let mut out = Vec::new();
    encode_reply(&mut out, &reply);
    out
}

fn resp_xread(c: &mut Criterion) {
    let wire = xread_reply(200);
    let mut g = c.benchmark_group("resp_xread_200");
    g.throughput(Throughput::Elements(200));
    g.bench_function("built", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            d.feed(black_box(&wire));
            let Ok(Decoded::Reply(reply)) = d.next_reply() else {
                panic!("one reply")
            };
            black_box(reply)
        })
    });
    g.bench_function("raw+entries", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            d.feed(black_box(&wire));
            let raw = d.next_raw().unwrap().unwrap();
            let entries = decode_read_reply(raw).unwrap();
            assert_eq!(entries.len(), 200);
            black_box(entries.last().map(|e| e.seq))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    resp_xread,
    head_parse,
    frame_decode,
    unmask,
    ws_receive,
    sse_encode
);
criterion_main!(benches);
