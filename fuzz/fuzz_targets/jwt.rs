//! Token verification: `auth::Verifier::verify` (compact serialization,
//! base64url, strict JSON, claims, grants) with an HS256 key.
//!
//! Input: `r` + token bytes (verified as they are), or `s` + header JSON +
//! NUL + claims JSON (signed with the target's key first, so the fuzzer
//! reaches the claims past the signature check).
//!
//! Oracle: never a panic; a refusal is a 401 whose description is RFC 6750
//! `error_description` text; an accepted raw token is exactly the one the
//! key would have made from its decoded parts (one spelling per token); an
//! accepted signed token had `alg: HS256`; grants are valid until after
//! `now`, and every granted pattern prints back to itself.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use pushlab::auth::{sign_hs256, Key, TopicPattern, Verifier};

const SECRET: &[u8] = b"pushlab-fuzz-secret-0123456789abcdef";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let verifier = Verifier::new(Key::hs256(SECRET).unwrap(), None, 30);
    let (token, signed_header) = match mode {
        b's' => {
            let nul = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (header, claims) = (&rest[..nul], rest.get(nul + 1..).unwrap_or(&[]));
            (sign_hs256(SECRET, header, claims).into_bytes(), Some(header))
        }
        _ => (rest.to_vec(), None),
    };
    match verifier.verify(&token, NOW) {
        Err(e) => {
            assert_eq!(e.status(), 401, "{e:?}");
            let d = e.description();
            assert!(
                d.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "{d:?}"
            );
        }
        Ok(grants) => {
            assert!(grants.valid_until > NOW);
            for p in grants.subscribe.iter().chain(&grants.publish) {
                assert_eq!(TopicPattern::parse(&p.to_string()).as_ref(), Ok(p));
            }
            match signed_header {
                Some(header) => {
                    let header: serde_json::Value = serde_json::from_slice(header).unwrap();
                    assert_eq!(header["alg"], "HS256");
                }
                None => {
                    let text = std::str::from_utf8(&token).unwrap();
                    let mut parts = text.split('.');
                    let header = BASE64URL.decode(parts.next().unwrap()).unwrap();
                    let claims = BASE64URL.decode(parts.next().unwrap()).unwrap();
                    assert_eq!(sign_hs256(SECRET, &header, &claims), text);
                }
            }
        }
    }
});
