//! JWS compact serialization (RFC 7515 §7.1), strictly: the three parts, the
//! base64url they are written in, and the JSON objects two of them hold.
//!
//! `BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)`, with
//! RFC 7515 §2's base64url: the URL-safe alphabet, no `=` padding, no
//! whitespace, no line breaks; the unused low bits of the last character
//! must be zero, so every byte string has exactly one spelling. The header
//! and the claims are JSON objects whose member names are unique at every
//! depth (RFC 7515 §4 lets a parser either reject duplicates or keep the
//! last one; rejecting leaves no room for two readers to disagree).
//!
//! This module only splits and decodes; [`super::verifier`] decides what
//! the parts mean. Left out: the JWS JSON serialization, JWE (five parts),
//! unencoded payloads (RFC 7797, which needs `crit`, refused).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::AuthError;
use crate::config::MAX_TOKEN_BYTES;

/// A token split into its parts, nothing checked but the syntax of the
/// header and signature parts.
#[derive(Debug)]
pub struct Compact<'a> {
    /// The decoded JOSE header.
    pub header: Map<String, Value>,
    /// `BASE64URL(header) "." BASE64URL(payload)`: what the signature signs.
    pub signing_input: &'a [u8],
    /// The payload part, still base64url: decoded only once the signature
    /// holds, so unauthenticated claims are never parsed.
    pub payload: &'a [u8],
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Splits `token` into its three parts and decodes the header and the
/// signature (RFC 7515 §5.2 steps 1–4 and 7).
pub fn decode_compact(token: &[u8]) -> Result<Compact<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong);
    }
    let mut parts = token.split(|&b| b == b'.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::NotCompact);
    };
    let header = decode_object(header)?;
    let signature = decode_base64url(signature)?;
    Ok(Compact {
        header,
        signing_input: &token[..header_len(token) + 1 + payload.len()],
        payload,
        signature,
    })
}

fn header_len(token: &[u8]) -> usize {
    token.iter().position(|&b| b == b'.').unwrap_or(token.len())
}

/// Decodes one unpadded, canonical base64url part.
pub fn decode_base64url(part: &[u8]) -> Result<Vec<u8>, AuthError> {
    BASE64URL.decode(part).map_err(|_| AuthError::BadBase64)
}

/// Decodes a base64url part holding a JSON object with unique member names.
pub fn decode_object(part: &[u8]) -> Result<Map<String, Value>, AuthError> {
    let json = decode_base64url(part)?;
    match serde_json::from_slice::<Strict>(&json) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        _ => Err(AuthError::BadJson),
    }
}

/// `BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(HMAC-SHA-256)`:
/// an HS256 token over exactly these JSON bytes (RFC 7515 §5.1). For tests,
/// the fuzz targets and tools that mint tokens for a server; the server
/// itself only verifies.
pub fn sign_hs256(secret: &[u8], header_json: &[u8], claims_json: &[u8]) -> String {
    let mut token = BASE64URL.encode(header_json);
    token.push('.');
    token.push_str(&BASE64URL.encode(claims_json));
    let mac = super::key::hmac_sha256(secret, token.as_bytes());
    token.push('.');
    token.push_str(&BASE64URL.encode(mac));
    token
}

/// A JSON value whose objects, at any depth, never repeat a member name.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value without repeated member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            // RFC 7515 §4 / RFC 7519 §4: member names MUST be unique.
            if members.contains_key(&name) {
                return Err(de::Error::custom("repeated member name"));
            }
            let Strict(v) = map.next_value()?;
            members.insert(name, v);
        }
        Ok(Strict(Value::Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        BASE64URL.encode(s)
    }

    #[test]
    fn rfc_7515_a1_splits_into_its_parts() {
        // RFC 7515 Appendix A.1: the header holds a CRLF, which the signing
        // input keeps as the base64url of the exact bytes.
        let token = concat!(
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
            ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
            ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        let c = decode_compact(token.as_bytes()).unwrap();
        assert_eq!(c.header["alg"], "HS256");
        assert_eq!(c.header["typ"], "JWT");
        assert_eq!(
            c.signing_input,
            token.rsplit_once('.').unwrap().0.as_bytes()
        );
        assert_eq!(c.signature.len(), 32);
        let claims = decode_object(c.payload).unwrap();
        assert_eq!(claims["exp"], 1300819380);
        assert_eq!(claims["http://example.com/is_root"], true);
    }

    #[test]
    fn exactly_three_parts() {
        let h = b64(r#"{"alg":"HS256"}"#);
        for bad in [
            String::new(),
            h.clone(),
            format!("{h}.e30"),
            format!("{h}.e30.AA.AA"),
            format!("{h}.e30.AA.AA.AA"),
        ] {
            assert_eq!(
                decode_compact(bad.as_bytes()).unwrap_err(),
                AuthError::NotCompact,
                "{bad}"
            );
        }
        assert!(decode_compact(format!("{h}.e30.").as_bytes()).is_ok());
    }

    #[test]
    fn base64url_is_strict() {
        // Padding, the standard alphabet, whitespace, a non-canonical last
        // character (`AB` has low bits set that `AA` does not).
        for bad in ["AA==", "+/", "A A", "AB", "A", "AA\n"] {
            assert_eq!(
                decode_base64url(bad.as_bytes()).unwrap_err(),
                AuthError::BadBase64,
                "{bad:?}"
            );
        }
        assert_eq!(decode_base64url(b"-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64url(b"").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn headers_and_claims_must_be_json_objects_without_repeated_names() {
        for bad in [
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"{"a":[{"x":1,"x":1}]}"#,
            r#"["alg","HS256"]"#,
            r#""HS256""#,
            "null",
            r#"{"alg":"HS256"} trailing"#,
            r#"{"alg":"HS256",}"#,
            "{'alg':'HS256'}",
            "",
        ] {
            assert_eq!(
                decode_object(b64(bad).as_bytes()).unwrap_err(),
                AuthError::BadJson,
                "{bad}"
            );
        }
        assert_eq!(
            decode_object(&BASE64URL.encode(b"{\"a\":\"\xff\"}").into_bytes()).unwrap_err(),
            AuthError::BadJson
        );
        let nested = decode_object(b64(r#"{"a":{"b":[1,2.5,null,true,"x"]},"c":-1}"#).as_bytes());
        assert_eq!(nested.unwrap()["a"]["b"][1], 2.5);
    }

    #[test]
    fn the_size_limit_comes_before_any_decoding() {
        let huge = "A".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            decode_compact(huge.as_bytes()).unwrap_err(),
            AuthError::TooLong
        );
    }

    #[test]
    fn sign_hs256_reproduces_rfc_7515_a1() {
        let key = decode_base64url(
            b"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        )
        .unwrap();
        let token = sign_hs256(
            &key,
            b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}",
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}",
        );
        assert!(
            token.ends_with(".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "{token}"
        );
    }
}
