//! Helpers shared by pushlab's fuzz targets (`fuzz_targets/*.rs`).
//!
//! - [`split`]: cut an input into the pieces a socket might deliver, chosen by
//!   one fuzzer-controlled byte, so every target that promises *chunking
//!   invariance* can compare "fed at once" with "fed in pieces".
//! - [`harness`]: a whole [`pushlab::session::Session`] driven as the event
//!   loop drives it, with a virtual clock, a memory hub (`Hub::memory`) and an independent
//!   checker of what the server writes. The same file is compiled into the
//!   property tests (`tests/session_props.rs`), so the fuzzer and proptest
//!   share one model of "correct".

#[path = "harness.rs"]
pub mod harness;

/// Splits `data` into consecutive non-empty pieces chosen by `seed`.
///
/// `seed == 0` gives the whole input as one piece; otherwise the low three
/// bits choose the largest piece (1, 2, 4, … 128 bytes) and the rest seed a
/// xorshift generator for the sizes. Every byte is in exactly one piece.
pub fn split(seed: u8, data: &[u8]) -> Vec<&[u8]> {
    if seed == 0 || data.is_empty() {
        return vec![data];
    }
    let max = 1usize << (seed & 7);
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// The first byte as a control byte and the rest as protocol input. Seeds in
/// `corpus/` start with a `0` byte (feed at once) followed by the raw bytes.
pub fn control(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&c, rest)) => (c, rest),
        None => (0, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_in_exactly_one_piece() {
        let data: Vec<u8> = (0..=255).collect();
        for seed in 0..=255u8 {
            let pieces = split(seed, &data);
            assert!(pieces.iter().all(|p| !p.is_empty()));
            assert_eq!(pieces.concat(), data);
        }
    }
}
