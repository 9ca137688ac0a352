//! RFC 6455 connection machine (`Protocol`, server role, with or without
//! permessage-deflate) fed arbitrary bytes in arbitrary chunks.
//!
//! Oracle: events until `NeedData` or an error; the same events and the
//! same error however the bytes are split; after an error, the same error
//! on every call; every event, sent again by a client-role machine, is
//! received as the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::wire::websocket::deflate::{negotiate, DeflatePolicy};
use pushlab::wire::websocket::{Event, Protocol, ProtocolError, Role};
use pushlab_fuzz::{control, split};

/// Feeds `pieces`, draining events after each; returns events and error.
fn run(max: usize, deflate: bool, pieces: &[&[u8]]) -> (Vec<Event>, Option<ProtocolError>) {
    let mut p = Protocol::new(Role::Server, max);
    if deflate {
        // permessage-deflate as browsers negotiate it: RSV1 messages are
        // inflated, the limit applies to the inflated size.
        let agreed = negotiate([&b"permessage-deflate"[..]], &DeflatePolicy::default());
        p.enable_deflate(&agreed.expect("the bare offer is accepted"));
    }
    let mut events = Vec::new();
    for piece in pieces {
        p.receive_data(piece);
        loop {
            match p.next_event() {
                Ok(Event::NeedData) => break,
                Ok(ev) => events.push(ev),
                Err(e) => {
                    // Failed for good: the same error again, and no events.
                    assert_eq!(p.next_event(), Err(e));
                    p.receive_data(b"\x81\x80\0\0\0\0");
                    assert_eq!(p.next_event(), Err(e));
                    return (events, Some(e));
                }
            }
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let (seed, input) = control(data);
    // A small limit so 1009 is reachable; the seed picks it.
    let max = 1usize << (seed % 16);
    let deflate = seed & 0x10 != 0;
    let whole = run(max, deflate, &[input]);
    let parts = run(max, deflate, &split(seed, input));
    assert_eq!(whole, parts, "events depend on how the bytes arrived");

    for ev in &whole.0 {
        if let Event::Text(t) = ev {
            assert!(t.len() <= max);
        }
        if let Event::Binary(b) = ev {
            assert!(b.len() <= max);
        }
    }

    // Round trip: a client sends the same events; the server receives them.
    let mut client = Protocol::new(Role::Client, max);
    client.set_mask_seed(u64::from(seed));
    let mut wire = Vec::new();
    for ev in &whole.0 {
        match ev {
            Event::Text(t) => client.send_text(t, &mut wire),
            Event::Binary(b) => client.send_binary(b, &mut wire),
            Event::Ping(p) => client.send_ping(p, &mut wire),
            Event::Pong(p) => client.send_pong(p, &mut wire),
            Event::Close { code, reason } => client.send_close(*code, reason, &mut wire),
            Event::NeedData => unreachable!(),
        }
    }
    let again = run(max, deflate, &split(seed.rotate_left(3), &wire));
    assert_eq!(again, (whole.0.clone(), None), "re-sent events differ");

    // The server's answers are frames a client accepts.
    let mut server = Protocol::new(Role::Server, max);
    let mut out = Vec::new();
    for ev in &whole.0 {
        match ev {
            Event::Text(t) => server.send_text(t, &mut out),
            Event::Binary(b) => server.send_binary(b, &mut out),
            Event::Ping(p) => server.send_pong(p, &mut out),
            Event::Close { code, .. } => server.send_close(*code, "", &mut out),
            _ => {}
        }
    }
    if let Some(e) = whole.1 {
        server.send_close(Some(e.close_code()), "", &mut out);
    }
    let mut reader = Protocol::new(Role::Client, usize::MAX);
    reader.receive_data(&out);
    loop {
        match reader.next_event() {
            Ok(Event::NeedData) => break,
            Ok(_) => {}
            Err(e) => panic!("the server's own frames fail a client: {e}"),
        }
    }
});
