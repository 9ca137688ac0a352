//! The Redis log (`--redis`, docs/scaling.md): several nodes share one
//! ordered log in Redis. A hash holds the log's epoch and the last
//! sequence number `N`, a stream holds the messages with the ids `N-0`, and
//! one Lua script appends atomically.
//!
//! Everything here is sans-I/O, like the sessions: where Redis is
//! ([`url`]), the scripts and their commands ([`script`]), reading the
//! stream back ([`stream`]), one connection's commands and replies matched
//! in order ([`pipeline`]), when to reconnect ([`backoff`]), and the log
//! itself behind the engine's seam ([`log::RedisLog`]). The bytes are
//! [`crate::wire::resp`]; the sockets are `server/redis.rs`'s.

pub mod backoff;
#[cfg(test)]
mod fake;
pub mod log;
#[cfg(test)]
mod log_tests;
pub mod pipeline;
pub mod script;
pub mod stream;
pub mod url;
