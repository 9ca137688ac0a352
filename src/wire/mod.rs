//! Pure codecs: bytes in → values out, values in → bytes out. Nothing here
//! touches a socket or a clock, so each codec can be unit-tested,
//! property-tested and fuzzed on its own.

pub mod envelope;
pub mod http1;
pub mod json;
pub mod query;
pub mod resp;
pub mod sse;
pub mod websocket;
