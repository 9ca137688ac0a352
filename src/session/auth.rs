//! Bearer tokens on requests: `Authorization: Bearer <token>`
//! ([RFC 6750 §2.1](https://www.rfc-editor.org/rfc/rfc6750#section-2.1))
//! checked against `--publish-token`.
//!
//! - The scheme is case-insensitive (RFC 9110 §11.1: "It uses a
//!   case-insensitive token to identify the authentication scheme"), so
//!   `bearer`, `Bearer` and `BEARER` all work; one or more spaces separate it
//!   from the token (RFC 9110 §11.4, `credentials = auth-scheme [ 1*SP …]`).
//! - The token is compared by SHA-256 digest, in constant time over the 32
//!   digest bytes: the time taken depends on neither where the first
//!   difference is nor the secret's length (hashing the secret costs the
//!   same on every request; hashing the guess depends on the guess only).
//!
//! Which token guards what: publishing needs `--publish-token`;
//! the operator endpoints (`/trace`) need [`admin_token`], which is the
//! publish token until the server has a credential of its own for them.
//!
//! Left out: token68 syntax checks (a token with spaces inside simply does
//! not match), other schemes, `Authorization` in the query string.

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::wire::http1::RequestHead;

/// The token that guards the operator endpoints (`GET /trace`), if any.
/// The one place to change when they get a credential of their own
/// (an `--admin-token-file`); until then, whoever may publish may watch.
pub fn admin_token(config: &Config) -> Option<&str> {
    config.publish_token.as_deref()
}

/// The token of a `Bearer` `Authorization` header, whatever the case of
/// the scheme; `None` without one.
pub fn bearer_token(head: &RequestHead) -> Option<&[u8]> {
    let value = head.header("authorization")?.trim_ascii();
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// Whether `head` carries `Authorization: Bearer <token>`.
pub fn bearer_matches(head: &RequestHead, token: &str) -> bool {
    bearer_token(head).is_some_and(|given| secrets_equal(given, token.as_bytes()))
}

/// Compares secrets without an early exit and without a loop bounded by
/// either length: both are hashed, and the 32-byte digests are compared
/// byte by byte to the end.
pub fn secrets_equal(given: &[u8], secret: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(secret);
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http1::parse_head;

    fn with_auth(value: &str) -> RequestHead {
        let raw = format!("POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: {value}\r\n\r\n");
        parse_head(raw.as_bytes()).unwrap()
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "bEaReR   s3cret",
        ] {
            assert!(bearer_matches(&with_auth(value), "s3cret"), "{value}");
        }
    }

    #[test]
    fn other_schemes_and_wrong_tokens_do_not_match() {
        for value in [
            "Basic s3cret",
            "Bearers3cret",
            "Bearer",
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "s3cret",
        ] {
            assert!(!bearer_matches(&with_auth(value), "s3cret"), "{value}");
        }
        let none = parse_head(b"POST /publish HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert!(!bearer_matches(&none, "s3cret"));
    }

    #[test]
    fn secrets_compare_by_content_only() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"", b"abc"));
        assert!(!secrets_equal(b"abc", b"abcabc"));
        assert!(secrets_equal(b"", b""));
    }
}
