//! Where a request carries its token: the `Authorization: Bearer` header
//! (RFC 6750 §2.1), the `pushlab_token` cookie (RFC 6265 §5.4), or — only
//! when the operator allows it — the `access_token` query parameter
//! (RFC 6750 §2.3, which warns that URLs end up in logs and `Referer`).
//!
//! Pure lookups over header values the caller found; which carriers a
//! request may use is the caller's policy.

/// The cookie that carries a token for `EventSource` and browser
/// `WebSocket`s, which cannot set an `Authorization` header.
pub const COOKIE_NAME: &str = "pushlab_token";

/// The query parameter that carries a token with `--allow-query-token`.
pub const QUERY_PARAM: &str = "access_token";

/// The token of an `Authorization: Bearer <token>` value, or `None` for
/// another scheme. RFC 9110 §11.1: the scheme is case-insensitive; RFC 6750
/// §2.1: `"Bearer" 1*SP b64token` (tabs and surrounding spaces are
/// tolerated, as most servers do; an empty token is `Some(b"")`, which the
/// verifier refuses as malformed).
pub fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let value = authorization.trim_ascii();
    let split = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(split);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// The value of cookie `name` in a `Cookie` header value (`a=1; b=2`), the
/// first one if it repeats (RFC 6265 §5.4: the browser sends the most
/// specific cookie first).
pub fn cookie<'a>(cookie_header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    cookie_header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (n, v) = (&pair[..eq], &pair[eq + 1..]);
        if n.trim_ascii() != name.as_bytes() {
            return None;
        }
        // RFC 6265 §4.1.1: a cookie-value may be wrapped in double quotes.
        let v = v.trim_ascii();
        Some(
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "  Bearer   abc  ",
            "Bearer\tabc",
        ] {
            assert_eq!(bearer_token(v.as_bytes()), Some(&b"abc"[..]), "{v:?}");
        }
        assert_eq!(bearer_token(b"Bearer"), Some(&b""[..]));
        assert_eq!(bearer_token(b"Basic YWxhZGRpbjpvcGVuc2VzYW1l"), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b""), None);
    }

    #[test]
    fn the_token_cookie_is_found_among_others() {
        let h = b"theme=dark; pushlab_token=a.b.c; other=1";
        assert_eq!(cookie(h, COOKIE_NAME), Some(&b"a.b.c"[..]));
        assert_eq!(
            cookie(b"pushlab_token=\"a.b.c\"", COOKIE_NAME),
            Some(&b"a.b.c"[..])
        );
        assert_eq!(
            cookie(b"pushlab_token=x;pushlab_token=y", COOKIE_NAME),
            Some(&b"x"[..])
        );
        assert_eq!(
            cookie(b"xpushlab_token=a; pushlab_tokenx=b", COOKIE_NAME),
            None
        );
        assert_eq!(cookie(b"pushlab_token", COOKIE_NAME), None);
        assert_eq!(cookie(b"", COOKIE_NAME), None);
    }
}
