//! Payload masking, RFC 6455 §5.3.
//!
//! "Octet i of the transformed data ("transformed-octet-i") is the XOR of
//! octet i of the original data ("original-octet-i") with octet at index
//! i modulo 4 of the masking key ("masking-key-octet-j")."
//!
//! The same XOR masks and unmasks. [`apply_mask`] works a machine word at a
//! time and can be called chunk by chunk as a payload arrives: `offset` says
//! how many payload bytes came before `buf`, so the key stays in phase.
//! [`extend_masked`] does the same while copying bytes out of a read buffer,
//! so a received payload is read once and written once.

/// XORs `buf` with the masking `key`, in place.
///
/// `offset` is the number of payload bytes of the same frame that were
/// (un)masked before `buf`; only `offset % 4` matters. Calling this on the
/// consecutive chunks of a payload, each with its own offset, gives the same
/// bytes as one call on the whole payload.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that key[0] applies to buf[0].
    let phase = offset % 4;
    let key = [
        key[phase],
        key[(phase + 1) % 4],
        key[(phase + 2) % 4],
        key[(phase + 3) % 4],
    ];
    // Eight bytes at a time. `from_ne_bytes` / `to_ne_bytes` copy through a
    // register, so the slice needs no alignment; each 8-byte chunk starts at
    // a multiple of 4 from buf[0], so the same repeated key fits every chunk.
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(bytes) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The tail (fewer than 8 bytes) starts at a multiple of 8, so in phase.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// Bytes per step of [`extend_masked`]: a multiple of 4, so every block
/// starts in phase with the key, and small enough for a block to stay in
/// registers (the compiler turns the inner loop into vector instructions).
const BLOCK: usize = 32;

/// Appends `src` XORed with the masking `key` to `out`, in one pass, and
/// says whether every appended byte is ASCII (below 0x80).
///
/// `offset` is as for [`apply_mask`]. The ASCII answer comes from the same
/// pass: a text payload that is all ASCII is valid UTF-8 without another
/// look at its bytes (the common case for JSON and chat).
pub fn extend_masked(out: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) -> bool {
    let mut pattern = [0u8; BLOCK];
    for (i, byte) in pattern.iter_mut().enumerate() {
        *byte = key[(offset + i) % 4];
    }
    out.reserve(src.len());
    // Each lane ORs together the bytes it produced; a high bit in any lane
    // means a byte of 0x80 or more.
    let mut seen = [0u8; BLOCK];
    let mut blocks = src.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut masked = [0u8; BLOCK];
        for i in 0..BLOCK {
            masked[i] = block[i] ^ pattern[i];
            seen[i] |= masked[i];
        }
        out.extend_from_slice(&masked);
    }
    // The tail (fewer than BLOCK bytes) starts at a multiple of BLOCK, so
    // in phase.
    let tail = blocks.remainder();
    let mut masked = [0u8; BLOCK];
    for (i, byte) in tail.iter().enumerate() {
        masked[i] = byte ^ pattern[i];
        seen[i] |= masked[i];
    }
    out.extend_from_slice(&masked[..tail.len()]);
    seen.iter().fold(0, |acc, byte| acc | byte) < 0x80
}

/// The RFC's byte-at-a-time definition, kept as the reference that
/// [`apply_mask`] is tested against.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example_masked_hello_unmasks_to_hello() {
        // RFC 6455 §5.7: "A single-frame masked text message".
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, key, 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn masking_in_chunks_equals_masking_at_once() {
        let key = [1, 2, 3, 4];
        let original: Vec<u8> = (0..=255).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        let mut chunked = original.clone();
        let (a, rest) = chunked.split_at_mut(3);
        let (b, c) = rest.split_at_mut(17);
        apply_mask(a, key, 0);
        apply_mask(b, key, 3);
        apply_mask(c, key, 20);
        assert_eq!(whole, chunked);
    }

    #[test]
    fn extend_masked_appends_the_rfc_example_unmasked_and_sees_ascii() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = b"say ".to_vec();
        assert!(extend_masked(
            &mut out,
            &[0x7f, 0x9f, 0x4d, 0x51, 0x58],
            key,
            0
        ));
        assert_eq!(out, b"say Hello");
    }

    #[test]
    fn extend_masked_sees_a_high_byte_in_a_block_and_in_the_tail() {
        let zero = [0; 4];
        for at in [0, 5, 31, 32, 40, 63, 64, 70] {
            let mut src = vec![b'a'; 71];
            src[at] = 0x80;
            let mut out = Vec::new();
            assert!(!extend_masked(&mut out, &src, zero, 0), "0x80 at {at}");
            assert_eq!(out, src);
        }
        let mut out = Vec::new();
        assert!(extend_masked(&mut out, &[0x7f; 71], zero, 0));
        assert!(extend_masked(&mut out, &[], zero, 3));
        assert_eq!(out.len(), 71);
    }

    #[test]
    fn empty_buffer_is_left_alone() {
        let mut empty: [u8; 0] = [];
        apply_mask(&mut empty, [9, 9, 9, 9], 7);
    }

    proptest! {
        #[test]
        fn masking_twice_is_identity(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let mut buf = data.clone();
            apply_mask(&mut buf, key, offset);
            apply_mask(&mut buf, key, offset);
            prop_assert_eq!(buf, data);
        }

        #[test]
        fn word_at_a_time_equals_bytewise_for_every_offset_and_length(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            offset in 0usize..64,
            start in 0usize..8,
        ) {
            // `start` slices into the vector so the buffer is unaligned too.
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask(&mut fast[start..], key, offset);
            apply_mask_bytewise(&mut slow[start..], key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn extend_masked_equals_copy_then_bytewise_mask(
            prefix in proptest::collection::vec(any::<u8>(), 0..8),
            data in proptest::collection::vec(prop_oneof![0u8..0x80, any::<u8>()], 0..300),
            key in any::<[u8; 4]>(),
            offset in 0usize..64,
        ) {
            let mut fused = prefix.clone();
            let is_ascii = extend_masked(&mut fused, &data, key, offset);
            let mut slow = data.clone();
            apply_mask_bytewise(&mut slow, key, offset);
            prop_assert_eq!(is_ascii, slow.is_ascii());
            prop_assert_eq!(&fused[..prefix.len()], &prefix[..]);
            prop_assert_eq!(&fused[prefix.len()..], &slow[..]);
        }
    }
}
