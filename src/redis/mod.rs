//! The pieces of the Redis log that need no socket: where Redis is
//! ([`url`]), the script that appends to the shared log ([`script`]), and
//! one connection's commands and replies matched in order ([`pipeline`]).
//! The bytes themselves are [`crate::wire::resp`].
//!
//! Several nodes share one ordered log in Redis: a hash holds the log's
//! epoch and the last sequence number `N`, a stream holds the messages with
//! the ids `N-0`, and one Lua script appends atomically. Each node pipelines
//! its commands on a connection driven by its own event loop.
//!
//! Not here yet: the log itself (appending through [`pipeline`], tailing the
//! stream with `XREAD BLOCK`, reconnecting with backoff) and the `--redis`
//! flag, which plug into the engine's log seam once it exists.

#[cfg(test)]
mod fake;
pub mod pipeline;
pub mod script;
pub mod url;
