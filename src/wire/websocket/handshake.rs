//! The server's side of the opening handshake, RFC 6455 §4.2.
//!
//! [`validate_request`] checks a parsed request head against §4.2.1
//! ("Reading the Client's Opening Handshake"), [`encode_response`] writes the
//! `101` of §4.2.2, and [`origin_allowed`] is the server's origin policy
//! (§10.2). The HTTP layer tokenises the head; this file only reads header
//! values.
//!
//! Not here: `Sec-WebSocket-Protocol` (the server never selects a
//! subprotocol, so the header is ignored). `Sec-WebSocket-Extensions` is
//! read by `deflate.rs` (permessage-deflate, the only extension); its answer
//! goes in the `101` through [`encode_response_with_extensions`]. `Host` is
//! HTTP/1.1's own rule (RFC 9112 §3.2) and is left to the HTTP layer; its
//! value is returned for the origin policy.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: the GUID the server appends to the client's key.
pub const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// RFC 6455 §4.1: "The value of this header field MUST be 13."
pub const SUPPORTED_VERSION: &str = "13";

/// What a valid request gives the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The `Sec-WebSocket-Accept` value for the response.
    pub accept: String,
    /// The `Origin` header, if any (several are joined with ", ").
    pub origin: Option<Vec<u8>>,
    /// The `Host` header, if any (several are joined with ", ").
    pub host: Option<Vec<u8>>,
}

/// Why a request is not a WebSocket opening handshake; one variant per rule
/// of RFC 6455 §4.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// "An HTTP/1.1 or higher GET request": the method is not GET.
    MethodNotGet,
    /// "An HTTP/1.1 or higher GET request": the version is older.
    NotHttp11,
    /// "An |Upgrade| header field containing the value "websocket"".
    UpgradeNotWebSocket,
    /// "A |Connection| header field that includes the token "Upgrade"".
    ConnectionNotUpgrade,
    /// "A |Sec-WebSocket-Version| header field, with a value of 13": absent.
    VersionMissing,
    /// The version is not 13 (or appears more than once).
    VersionUnsupported,
    /// "A |Sec-WebSocket-Key| header field": absent.
    KeyMissing,
    /// The key is not "a base64-encoded value that, when decoded, is 16
    /// bytes in length" (or appears more than once).
    KeyInvalid,
}

impl HandshakeError {
    /// The HTTP status of the error response.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotGet => 405,
            // RFC 6455 §4.2.2: "If this version does not match a version
            // understood by the server, the server MUST abort the WebSocket
            // handshake ... and instead send an appropriate HTTP error code
            // (such as 426 Upgrade Required)".
            HandshakeError::VersionMissing | HandshakeError::VersionUnsupported => 426,
            HandshakeError::NotHttp11
            | HandshakeError::UpgradeNotWebSocket
            | HandshakeError::ConnectionNotUpgrade
            | HandshakeError::KeyMissing
            | HandshakeError::KeyInvalid => 400,
        }
    }

    /// A header the error response must carry, if any.
    ///
    /// RFC 6455 §4.4: a server that does not understand the client's version
    /// "MUST respond with ... a |Sec-WebSocket-Version| header field
    /// indicating the version(s) the server is capable of understanding";
    /// RFC 9110 §15.5.6: a `405` "MUST generate an Allow header field".
    pub fn response_header(&self) -> Option<(&'static str, &'static str)> {
        match self {
            HandshakeError::MethodNotGet => Some(("Allow", "GET")),
            HandshakeError::VersionMissing | HandshakeError::VersionUnsupported => {
                Some(("Sec-WebSocket-Version", SUPPORTED_VERSION))
            }
            _ => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::MethodNotGet => "a WebSocket handshake must be a GET request",
            HandshakeError::NotHttp11 => "a WebSocket handshake needs HTTP/1.1",
            HandshakeError::UpgradeNotWebSocket => "missing header Upgrade: websocket",
            HandshakeError::ConnectionNotUpgrade => "missing header Connection: Upgrade",
            HandshakeError::VersionMissing => "missing header Sec-WebSocket-Version: 13",
            HandshakeError::VersionUnsupported => "only Sec-WebSocket-Version 13 is supported",
            HandshakeError::KeyMissing => "missing header Sec-WebSocket-Key",
            HandshakeError::KeyInvalid => {
                "Sec-WebSocket-Key must be the base64 encoding of 16 bytes"
            }
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Checks a request head against RFC 6455 §4.2.1.
///
/// `headers` are `(name, value)` pairs as they came; names compare
/// case-insensitively and a header may appear several times. `Upgrade` and
/// `Connection` are comma-separated token lists compared case-insensitively
/// (`Connection: keep-alive, Upgrade` is what Firefox sends). The rules are
/// checked in the order of [`HandshakeError`]'s variants and the first broken
/// one is returned.
pub fn validate_request<'a, I>(
    method: &str,
    is_http11: bool,
    headers: I,
) -> Result<Handshake, HandshakeError>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
{
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if !is_http11 {
        return Err(HandshakeError::NotHttp11);
    }
    let mut upgrade_websocket = false;
    let mut connection_upgrade = false;
    let mut versions: Vec<&[u8]> = Vec::new();
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut origin: Option<Vec<u8>> = None;
    let mut host: Option<Vec<u8>> = None;
    for (name, value) in headers {
        let value = trim_ows(value);
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            versions.push(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            keys.push(value);
        } else if name.eq_ignore_ascii_case("origin") {
            append_field(&mut origin, value);
        } else if name.eq_ignore_ascii_case("host") {
            append_field(&mut host, value);
        }
    }
    if !upgrade_websocket {
        return Err(HandshakeError::UpgradeNotWebSocket);
    }
    if !connection_upgrade {
        return Err(HandshakeError::ConnectionNotUpgrade);
    }
    match versions.as_slice() {
        [] => return Err(HandshakeError::VersionMissing),
        [version] if *version == SUPPORTED_VERSION.as_bytes() => {}
        _ => return Err(HandshakeError::VersionUnsupported),
    }
    let key = match keys.as_slice() {
        [] => return Err(HandshakeError::KeyMissing),
        [key] => *key,
        _ => return Err(HandshakeError::KeyInvalid),
    };
    // RFC 6455 §4.2.1: "when decoded, is 16 bytes in length". Base64 of 16
    // bytes is 24 characters, so a longer value is refused before decoding.
    let is_valid_key = key.len() == 24 && BASE64.decode(key).is_ok_and(|raw| raw.len() == 16);
    if !is_valid_key {
        return Err(HandshakeError::KeyInvalid);
    }
    Ok(Handshake {
        accept: accept_key(key),
        origin,
        host,
    })
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
///
/// RFC 6455 §4.2.2: the base64 encoding of the SHA-1 of the key (as sent,
/// not decoded) concatenated with [`ACCEPT_GUID`].
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    BASE64.encode(sha1.finalize())
}

/// Appends the whole `101 Switching Protocols` head (RFC 6455 §4.2.2,
/// ending with the blank line) to `out`. No subprotocol, no extension.
pub fn encode_response(accept: &str, out: &mut Vec<u8>) {
    encode_response_with_extensions(accept, None, out);
}

/// The `101` of [`encode_response`] with a `Sec-WebSocket-Extensions`
/// header carrying `extensions` (RFC 6455 §4.2.2 item 5.6: the extensions
/// the server accepted), when there is one.
pub fn encode_response_with_extensions(accept: &str, extensions: Option<&[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    if let Some(value) = extensions {
        out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// The origin policy (RFC 6455 §10.2, RFC 6454): may a handshake with this
/// `Origin` and `Host` go on?
///
/// - No `Origin` header: allowed. Browsers always send `Origin` on a
///   WebSocket handshake; a client without one is not a browser, and could
///   send any `Origin` it liked, so the check would protect nothing.
/// - `allow` empty (the default): same origin only. The `Origin` must be
///   `http://` or `https://` followed by exactly the `Host` header's
///   `host[:port]`, compared case-insensitively; a default port (80 for
///   http, 443 for https) written on one side and not the other still
///   matches. `Origin: null` and any other scheme are refused.
/// - `allow` not empty: the `Origin` must equal one of the entries
///   (case-insensitively, e.g. `https://example.com:8443`), or an entry is
///   `*`, which allows every origin.
pub fn origin_allowed(origin: Option<&[u8]>, host: Option<&[u8]>, allow: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if !allow.is_empty() {
        return origin_listed(origin, allow);
    }
    let Some(host) = host else {
        return false;
    };
    let (authority, default_port) = if let Some(rest) = strip_prefix_ignore_case(origin, b"http://")
    {
        (rest, &b":80"[..])
    } else if let Some(rest) = strip_prefix_ignore_case(origin, b"https://") {
        (rest, &b":443"[..])
    } else {
        return false;
    };
    !authority.is_empty()
        && strip_suffix(authority, default_port)
            .eq_ignore_ascii_case(strip_suffix(trim_ows(host), default_port))
}

/// Whether `origin` is on the `--allow-origin` list: an entry `*`, or one
/// equal to it ASCII case-insensitively. The same list governs WebSocket
/// handshakes (above) and CORS on the HTTP endpoints (`session/cors.rs`).
pub fn origin_listed(origin: &[u8], allow: &[String]) -> bool {
    allow
        .iter()
        .any(|entry| entry == "*" || entry.as_bytes().eq_ignore_ascii_case(origin))
}

fn strip_suffix<'a>(bytes: &'a [u8], suffix: &[u8]) -> &'a [u8] {
    bytes.strip_suffix(suffix).unwrap_or(bytes)
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&bytes[prefix.len()..])
    } else {
        None
    }
}

/// RFC 9110 §5.6.3: OWS is spaces and horizontal tabs.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// RFC 9110 §5.6.1: `#token`, a comma-separated list with optional spaces.
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|item| trim_ows(item).eq_ignore_ascii_case(token))
}

/// RFC 9110 §5.3: a field sent several times means its values joined by ", ".
fn append_field(field: &mut Option<Vec<u8>>, value: &[u8]) {
    match field {
        None => *field = Some(value.to_vec()),
        Some(joined) => {
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("Host", b"server.example.com"),
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Key", KEY.as_bytes()),
            ("Sec-WebSocket-Version", b"13"),
        ];
        for (name, value) in extra {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if !value.is_empty() {
                headers.push((name, value.as_bytes()));
            }
        }
        headers
    }

    fn validate(extra: &[(&str, &str)]) -> Result<Handshake, HandshakeError> {
        validate_request("GET", true, request(extra))
    }

    #[test]
    fn rfc_example_key_gives_rfc_accept() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn rfc_example_request_is_accepted() {
        let handshake = validate(&[("Origin", "http://example.com")]).unwrap();
        assert_eq!(handshake.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            handshake.origin.as_deref(),
            Some(&b"http://example.com"[..])
        );
        assert_eq!(handshake.host.as_deref(), Some(&b"server.example.com"[..]));
    }

    #[test]
    fn firefox_connection_list_and_odd_case_are_accepted() {
        let handshake = validate(&[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "WebSocket"),
        ]);
        assert!(handshake.is_ok());
        let lowercase_names: Vec<(&str, &[u8])> = request(&[])
            .into_iter()
            .map(|(name, value)| match name {
                "Connection" => ("connection", &b"UPGRADE"[..]),
                "Sec-WebSocket-Key" => ("sec-websocket-key", value),
                other => (other, value),
            })
            .collect();
        assert!(validate_request("GET", true, lowercase_names).is_ok());
    }

    #[test]
    fn connection_token_may_come_in_a_second_header() {
        let mut headers = request(&[("Connection", "keep-alive")]);
        headers.push(("Connection", b"Upgrade"));
        assert!(validate_request("GET", true, headers).is_ok());
    }

    #[test]
    fn post_is_refused_with_405_and_allow() {
        let err = validate_request("POST", true, request(&[])).unwrap_err();
        assert_eq!(err, HandshakeError::MethodNotGet);
        assert_eq!(err.status(), 405);
        assert_eq!(err.response_header(), Some(("Allow", "GET")));
    }

    #[test]
    fn http10_is_refused() {
        let err = validate_request("GET", false, request(&[])).unwrap_err();
        assert_eq!((err, err.status()), (HandshakeError::NotHttp11, 400));
    }

    #[test]
    fn missing_or_wrong_upgrade_is_400() {
        for value in ["", "h2c", "websocketx"] {
            let err = validate(&[("Upgrade", value)]).unwrap_err();
            assert_eq!(
                (err, err.status()),
                (HandshakeError::UpgradeNotWebSocket, 400)
            );
        }
    }

    #[test]
    fn missing_or_wrong_connection_is_400() {
        for value in ["", "keep-alive", "upgrade-insecure"] {
            let err = validate(&[("Connection", value)]).unwrap_err();
            assert_eq!(
                (err, err.status()),
                (HandshakeError::ConnectionNotUpgrade, 400)
            );
        }
    }

    #[test]
    fn missing_version_is_426_naming_version_13() {
        let err = validate(&[("Sec-WebSocket-Version", "")]).unwrap_err();
        assert_eq!((err, err.status()), (HandshakeError::VersionMissing, 426));
        assert_eq!(err.response_header(), Some(("Sec-WebSocket-Version", "13")));
    }

    #[test]
    fn other_version_is_426_naming_version_13() {
        for value in ["8", "14", "13, 8"] {
            let err = validate(&[("Sec-WebSocket-Version", value)]).unwrap_err();
            assert_eq!(
                (err, err.status()),
                (HandshakeError::VersionUnsupported, 426)
            );
            assert_eq!(err.response_header(), Some(("Sec-WebSocket-Version", "13")));
        }
    }

    #[test]
    fn missing_key_is_400() {
        let err = validate(&[("Sec-WebSocket-Key", "")]).unwrap_err();
        assert_eq!((err, err.status()), (HandshakeError::KeyMissing, 400));
    }

    #[test]
    fn key_not_base64_of_16_bytes_is_400() {
        for value in [
            "not base64 at all!!!!!!=",
            "dGhlIHNhbXBsZSBub25jZQ",       // no padding
            "dGhlIHNhbXBsZSBub25jZXg=",     // 17 bytes
            "dGhlIHNhbXBsZSBub25j",         // 15 bytes
            "dGhlIHNhbXBsZSBub25jZQ==AAAA", // trailing data
        ] {
            let err = validate(&[("Sec-WebSocket-Key", value)]).unwrap_err();
            assert_eq!(
                (err, err.status()),
                (HandshakeError::KeyInvalid, 400),
                "{value}"
            );
        }
    }

    #[test]
    fn key_sent_twice_is_400() {
        let mut headers = request(&[]);
        headers.push(("Sec-WebSocket-Key", KEY.as_bytes()));
        let err = validate_request("GET", true, headers).unwrap_err();
        assert_eq!(err, HandshakeError::KeyInvalid);
    }

    #[test]
    fn errors_read_as_response_bodies() {
        assert_eq!(
            HandshakeError::ConnectionNotUpgrade.to_string(),
            "missing header Connection: Upgrade"
        );
    }

    #[test]
    fn response_head_is_the_rfc_101() {
        let mut out = Vec::new();
        encode_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        assert!(response.parse(&out).unwrap().is_complete());
        assert_eq!(response.code, Some(101));
    }

    fn allowed(origin: Option<&str>, host: Option<&str>, allow: &[&str]) -> bool {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        origin_allowed(origin.map(str::as_bytes), host.map(str::as_bytes), &allow)
    }

    #[test]
    fn request_without_origin_is_allowed() {
        assert!(allowed(None, Some("localhost:8080"), &[]));
        assert!(allowed(None, None, &["https://example.com"]));
    }

    #[test]
    fn same_origin_is_allowed_by_default() {
        assert!(allowed(
            Some("http://localhost:8080"),
            Some("localhost:8080"),
            &[]
        ));
        assert!(allowed(
            Some("https://Example.COM"),
            Some("example.com"),
            &[]
        ));
        assert!(allowed(
            Some("http://example.com"),
            Some("example.com:80"),
            &[]
        ));
        assert!(allowed(
            Some("https://example.com:443"),
            Some("example.com"),
            &[]
        ));
    }

    #[test]
    fn cross_origin_is_refused_by_default() {
        assert!(!allowed(
            Some("http://evil.example"),
            Some("localhost:8080"),
            &[]
        ));
        assert!(!allowed(
            Some("http://localhost:9999"),
            Some("localhost:8080"),
            &[]
        ));
        assert!(!allowed(
            Some("http://localhost"),
            Some("localhost:8080"),
            &[]
        ));
        assert!(!allowed(Some("null"), Some("localhost:8080"), &[]));
        assert!(!allowed(
            Some("file://localhost:8080"),
            Some("localhost:8080"),
            &[]
        ));
        assert!(!allowed(Some("http://localhost:8080"), None, &[]));
        assert!(!allowed(Some("http://"), Some(""), &[]));
    }

    #[test]
    fn allow_list_matches_whole_origins_case_insensitively() {
        let list = ["https://app.example.com", "http://localhost:3000"];
        assert!(allowed(
            Some("https://APP.example.com"),
            Some("api.example.com"),
            &list
        ));
        assert!(allowed(
            Some("http://localhost:3000"),
            Some("localhost:8080"),
            &list
        ));
        assert!(!allowed(
            Some("https://app.example.com:444"),
            Some("x"),
            &list
        ));
        // An allow list replaces the same-origin rule.
        assert!(!allowed(
            Some("http://localhost:8080"),
            Some("localhost:8080"),
            &list
        ));
    }

    #[test]
    fn star_allows_every_origin() {
        assert!(allowed(
            Some("http://evil.example"),
            Some("localhost"),
            &["*"]
        ));
        assert!(allowed(Some("null"), None, &["https://a.example", "*"]));
    }
}
