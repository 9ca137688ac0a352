//! # pushlab
//!
//! Short polling, long polling, Server-Sent Events and WebSockets served from
//! one hand-written `mio` event loop, with no async runtime. Every protocol
//! byte is produced and parsed by this crate's own code (HTTP heads are
//! tokenised by `httparse`), so a reader can step from `accept()` to the byte
//! that reaches the browser.
//!
//! ## The map
//!
//! The folder tree is the architecture: a sans-I/O core and a thin I/O shell.
//!
//! | module | what it is | touches I/O? |
//! | --- | --- | --- |
//! | [`auth`] | JWT verification, topic grants, 401/403 | no |
//! | [`config`] | every limit and timeout, with defaults | no |
//! | [`clients`] | connections per client address, forwarded addresses | no |
//! | [`wire`] | pure codecs: HTTP/1.1, query strings, JSON, SSE, WebSocket, RESP2 (Redis) | no |
//! | [`time`] | [`time::Instant`]: time as an argument (a leaf: imports nothing) | no |
//! | [`ids`] | message ids, cursors, topic names (a leaf: imports only `config`) | no |
//! | [`log`] | the message log behind a seam: append now, commit later; messages, kept history, `missed` | no |
//! | [`hub`] | subscribers per topic beside the log | no |
//! | [`timers`] | deadlines, with time passed in | no |
//! | [`redis`] | `--redis`: `redis://` URLs, the scripts, pipelined replies matched in order, the shared log `RedisLog` behind the seam | no |
//! | [`session`] | one connection's state machine per transport | no |
//! | [`engine`] | every session, timer and subscriber: the server without I/O | no |
//! | [`file_log`] | `--data-dir`: segment format, journal, `FileLog` behind the seam (pure); writer thread (I/O) | its driver only |
//! | [`stats`] | socket counters per transport, trace events | no |
//! | [`record`] | the `--record` file format: encoder and decoder | no |
//! | [`replay`] | `pushlab replay`: a fresh engine fed a recording | no (the caller reads the file) |
//! | [`server`] | the `mio` loop: sockets, clock, signals, `--record` | **yes — the only one** |
//! | [`lab`] | `pushlab compare`: clients of all four transports, measured | yes (client side) |
//!
//! ## Start reading here
//!
//! 1. [`session::short_poll`] and its tests — the simplest transport: a
//!    request in, a poll body out, no socket in sight. Then
//!    [`session::long_poll`], [`session::sse`] with [`wire::sse`], and
//!    [`session::websocket`] with the WebSocket codec.
//! 2. [`session`] — the state machine that owns every transition of one
//!    connection, and the call protocol its owner follows.
//! 3. [`hub`] — how one cursor serves any set of topics without losing a
//!    message silently.
//! 4. [`engine`] — all connections together: fan-out, timers, lifecycle,
//!    and the moment each write is made; `tests/session_props.rs` drives it
//!    with a model kernel.
//! 5. [`server`] — last: the `mio` shell that performs the engine's
//!    syscalls, top to bottom like mio's `tcp_server` example.
//!
//! To watch all of it run on a real browser session, record one
//! (`pushlab serve --record FILE`) and step through [`replay`] in a
//! debugger: docs/replay.md.

pub mod auth;
pub mod clients;
pub mod config;
pub mod engine;
pub mod file_log;
pub mod hub;
pub mod ids;
pub mod lab;
pub mod log;
pub mod record;
pub mod redis;
pub mod replay;
pub mod server;
pub mod session;
pub mod stats;
#[doc(hidden)]
pub mod testkit;
pub mod time;
pub mod timers;
pub mod wire;
