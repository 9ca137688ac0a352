//! Hostile tokens, one row each, with the outcome (and so the status) each
//! gets through [`Policy`]: the table docs/security.md summarises.

use super::*;

struct Row {
    name: &'static str,
    policy: Policy,
    token: Option<String>,
    action: Action,
    topic: &'static str,
    now: u64,
    expect: Result<(), AuthError>,
}

fn row(name: &'static str, token: String, expect: Result<(), AuthError>) -> Row {
    Row {
        name,
        policy: hs_policy(),
        token: Some(token),
        action: Action::Subscribe,
        topic: "user.42.inbox",
        now: NOW,
        expect,
    }
}

fn hostile_tokens() -> Vec<Row> {
    use AuthError::*;
    let valid = hs(&claims(""));
    let (signing_input, sig) = valid.rsplit_once('.').unwrap();
    let mut flipped = sig.to_owned().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{signing_input}.{}", String::from_utf8(flipped).unwrap());
    let parts: Vec<&str> = valid.split('.').collect();
    let padding = "x".repeat(MAX_TOKEN_BYTES);
    let aud = |a: &str| hs(&claims(&format!(r#""aud":{a},"#)));
    let with_audience = |mut r: Row| {
        r.policy = policy(Key::hs256(SECRET).unwrap(), Some("pushlab-test"));
        r
    };
    let with = |mut r: Row, p: Policy| {
        r.policy = p;
        r
    };
    let act = |mut r: Row, action: Action, topic: &'static str| {
        r.action = action;
        r.topic = topic;
        r
    };
    vec![
        row("valid HS256", valid.clone(), Ok(())),
        row(
            "alg none, no signature",
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), parts[1]),
            Err(Unsigned),
        ),
        row(
            "alg NoNe, HMAC signature",
            hs_header(r#"{"alg":"NoNe"}"#, &claims("")),
            Err(Unsigned),
        ),
        row(
            "alg HS512",
            hs_header(r#"{"alg":"HS512"}"#, &claims("")),
            Err(WrongAlgorithm),
        ),
        row(
            "alg hs256 (case)",
            hs_header(r#"{"alg":"hs256"}"#, &claims("")),
            Err(WrongAlgorithm),
        ),
        row(
            "no alg",
            hs_header(r#"{"typ":"JWT"}"#, &claims("")),
            Err(BadHeader("the header has no alg string")),
        ),
        row(
            "alg not a string",
            hs_header(r#"{"alg":["HS256"]}"#, &claims("")),
            Err(BadHeader("the header has no alg string")),
        ),
        row(
            "crit header",
            hs_header(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &claims("")),
            Err(BadHeader("the header has crit extensions")),
        ),
        with(
            row(
                "algorithm confusion: HS256 keyed with the RS256 public key",
                RS256_CONFUSION.into(),
                Err(WrongAlgorithm),
            ),
            rs_policy(),
        ),
        with(
            row(
                "RS256 token, ES256 server",
                RS256_VALID.into(),
                Err(WrongAlgorithm),
            ),
            es_policy(),
        ),
        with(
            row(
                "ES256 token, RS256 server",
                ES256_VALID.into(),
                Err(WrongAlgorithm),
            ),
            rs_policy(),
        ),
        with(
            row(
                "HS256 token, RS256 server",
                valid.clone(),
                Err(WrongAlgorithm),
            ),
            rs_policy(),
        ),
        with(
            row(
                "RS256 signed by another key",
                RS256_OTHER_KEY.into(),
                Err(BadSignature),
            ),
            rs_policy(),
        ),
        with(
            row(
                "ES256 signed by another key",
                ES256_OTHER_KEY.into(),
                Err(BadSignature),
            ),
            es_policy(),
        ),
        with(
            row(
                "RS256 signature cut short",
                cut(RS256_VALID, RS256_VALID.len() - 2),
                Err(BadSignature),
            ),
            rs_policy(),
        ),
        with(
            row(
                "ES256 signature of DER length",
                format!(
                    "{}.{}",
                    ES256_VALID.rsplit_once('.').unwrap().0,
                    b64(&"x".repeat(70))
                ),
                Err(BadSignature),
            ),
            es_policy(),
        ),
        row(
            "one signature character changed",
            flipped,
            Err(BadSignature),
        ),
        row(
            "signed with another secret",
            sign_hs256(
                b"another-secret-0123456789abcdef!",
                HS256.as_bytes(),
                claims("").as_bytes(),
            ),
            Err(BadSignature),
        ),
        row(
            "empty signature",
            format!("{signing_input}."),
            Err(BadSignature),
        ),
        row(
            "signature of another payload",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&claims(r#""admin":true,"#)),
                parts[2]
            ),
            Err(BadSignature),
        ),
        row(
            "expired",
            hs(&format!(r#"{{"exp":{}}}"#, NOW - LEEWAY - 1)),
            Err(Expired),
        ),
        row(
            "expired, at the leeway's end",
            hs(&format!(r#"{{"exp":{}}}"#, NOW - LEEWAY)),
            Err(Expired),
        ),
        act(
            row(
                "expired a moment ago, within leeway",
                hs(&claims("").replace(&(NOW + 3600).to_string(), &(NOW - LEEWAY + 1).to_string())),
                Ok(()),
            ),
            Action::Subscribe,
            "news",
        ),
        row(
            "not yet valid",
            hs(&claims(&format!(r#""nbf":{},"#, NOW + LEEWAY + 1))),
            Err(NotYetValid),
        ),
        row(
            "nbf within leeway",
            hs(&claims(&format!(r#""nbf":{},"#, NOW + LEEWAY))),
            Ok(()),
        ),
        row(
            "issued in the future",
            hs(&claims(&format!(r#""iat":{},"#, NOW + 3600))),
            Err(IssuedInFuture),
        ),
        row(
            "no exp",
            hs(r#"{"pushlab":{"subscribe":["*"]}}"#),
            Err(MissingExpiry),
        ),
        row(
            "exp a string",
            hs(&format!(r#"{{"exp":"{}"}}"#, NOW + 60)),
            Err(BadClaim("the exp claim is not an integer date")),
        ),
        row(
            "exp a fraction",
            hs(&format!(r#"{{"exp":{}.5}}"#, NOW + 60)),
            Err(BadClaim("the exp claim is not an integer date")),
        ),
        row(
            "exp negative",
            hs(r#"{"exp":-1}"#),
            Err(BadClaim("the exp claim is not an integer date")),
        ),
        row(
            "nbf null",
            hs(&claims(r#""nbf":null,"#)),
            Err(BadClaim("the nbf claim is not an integer date")),
        ),
        row(
            "truncated in the payload",
            cut(&valid, parts[0].len() + 10),
            Err(NotCompact),
        ),
        row(
            "truncated before the signature",
            cut(&valid, signing_input.len()),
            Err(NotCompact),
        ),
        row(
            "truncated signature",
            cut(&valid, valid.len() - 3),
            Err(BadSignature),
        ),
        row(
            "oversized",
            hs(&claims(&format!(r#""pad":"{padding}","#))),
            Err(TooLong),
        ),
        row(
            "five parts (JWE)",
            format!("{valid}.AA.AA"),
            Err(NotCompact),
        ),
        row("empty", String::new(), Err(NotCompact)),
        row(
            "garbage base64 header",
            format!("!!!.{}.{}", parts[1], parts[2]),
            Err(BadBase64),
        ),
        row(
            "padded base64",
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            Err(BadBase64),
        ),
        row(
            "standard-alphabet signature",
            format!(
                "{signing_input}.{}",
                parts[2].replace('-', "+").replace('_', "/") + "+/"
            ),
            Err(BadBase64),
        ),
        row(
            "space inside",
            format!("{} .{}.{}", parts[0], parts[1], parts[2]),
            Err(BadBase64),
        ),
        row(
            "garbage base64 payload, validly signed",
            sign_raw(&format!("{}.%%%", parts[0])),
            Err(BadBase64),
        ),
        row(
            "header repeats alg",
            hs_header(r#"{"alg":"HS256","alg":"none"}"#, &claims("")),
            Err(BadJson),
        ),
        row(
            "header not JSON",
            format!("{}.{}.{}", b64("alg=HS256"), parts[1], parts[2]),
            Err(BadJson),
        ),
        row(
            "header an array",
            format!("{}.{}.{}", b64(r#"["HS256"]"#), parts[1], parts[2]),
            Err(BadJson),
        ),
        row(
            "claims repeat exp",
            hs(&format!(r#"{{"exp":{},"exp":{}}}"#, NOW + 60, NOW + 60)),
            Err(BadJson),
        ),
        row(
            "claims repeat a nested name",
            hs(&format!(
                r#"{{"exp":{},"pushlab":{{"subscribe":["a"],"subscribe":["*"]}}}}"#,
                NOW + 60
            )),
            Err(BadJson),
        ),
        row("claims not an object", hs("[1,2,3]"), Err(BadJson)),
        row(
            "claims with trailing data",
            hs(&format!("{} x", claims(""))),
            Err(BadJson),
        ),
        row(
            "claims not UTF-8",
            sign_hs256(SECRET, HS256.as_bytes(), b"{\"exp\":1,\"x\":\"\xff\"}"),
            Err(BadJson),
        ),
        row(
            "pushlab claim not an object",
            hs(&format!(r#"{{"exp":{},"pushlab":["*"]}}"#, NOW + 60)),
            Err(BadClaim("the pushlab claim is not an object")),
        ),
        row(
            "a pattern with * inside",
            hs(&format!(
                r#"{{"exp":{},"pushlab":{{"subscribe":["user.*.inbox"]}}}}"#,
                NOW + 60
            )),
            Err(BadClaim(
                "pushlab.subscribe and pushlab.publish must be lists of topics or prefix* patterns",
            )),
        ),
        row(
            "a pattern that is a number",
            hs(&format!(
                r#"{{"exp":{},"pushlab":{{"publish":[42]}}}}"#,
                NOW + 60
            )),
            Err(BadClaim(
                "pushlab.subscribe and pushlab.publish must be lists of topics or prefix* patterns",
            )),
        ),
        with_audience(row("right audience", aud(r#""pushlab-test""#), Ok(()))),
        with_audience(row(
            "right audience among others",
            aud(r#"["other","pushlab-test"]"#),
            Ok(()),
        )),
        with_audience(row("wrong audience", aud(r#""other""#), Err(WrongAudience))),
        with_audience(row(
            "wrong audiences",
            aud(r#"["a","b"]"#),
            Err(WrongAudience),
        )),
        with_audience(row(
            "no audience, one required",
            hs(&claims("")),
            Err(WrongAudience),
        )),
        with_audience(row(
            "audience a number",
            aud("7"),
            Err(BadClaim("the aud claim is not a string or strings")),
        )),
        row(
            "an audience, none configured",
            aud(r#""pushlab-test""#),
            Err(UnexpectedAudience),
        ),
        act(
            row(
                "a topic outside the claim",
                valid.clone(),
                Err(NotGranted(Action::Subscribe)),
            ),
            Action::Subscribe,
            "user.43.inbox",
        ),
        act(
            row(
                "publishing where only subscribing is granted",
                valid.clone(),
                Err(NotGranted(Action::Publish)),
            ),
            Action::Publish,
            "news",
        ),
        act(
            row("publishing where granted", valid.clone(), Ok(())),
            Action::Publish,
            "user.42.inbox",
        ),
        act(
            row(
                "no pushlab claim: nothing granted",
                hs(&format!(r#"{{"exp":{}}}"#, NOW + 60)),
                Err(NotGranted(Action::Subscribe)),
            ),
            Action::Subscribe,
            "news",
        ),
        Row {
            token: None,
            ..row("no token, private topic", String::new(), Err(Missing))
        },
        Row {
            token: None,
            ..act(
                row("no token, public topic", String::new(), Ok(())),
                Action::Subscribe,
                "public.lobby",
            )
        },
        act(
            row("an expired token, public topic", hs(r#"{"exp":1}"#), Ok(())),
            Action::Subscribe,
            "public.lobby",
        ),
        Row {
            token: None,
            ..act(
                row(
                    "no token, publishing to a public topic",
                    String::new(),
                    Err(Missing),
                ),
                Action::Publish,
                "public.lobby",
            )
        },
    ]
}

fn outcome(r: &Row) -> Result<(), AuthError> {
    let token = r.token.as_deref().map(str::as_bytes);
    match r.action {
        Action::Subscribe => r.policy.authorize_subscribe(token, &[r.topic], r.now),
        Action::Publish => r.policy.authorize_publish(token, r.topic, r.now),
    }
    .map(|_| ())
}

#[test]
fn hostile_tokens_get_the_documented_outcome() {
    let mut failures = Vec::new();
    for r in hostile_tokens() {
        let got = outcome(&r);
        if got != r.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                r.name, r.expect, got
            ));
        }
        if let Err(e) = got {
            assert_eq!(
                e.status(),
                if matches!(e, AuthError::NotGranted(_)) {
                    403
                } else {
                    401
                }
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RFC 6750 §3: `error_description` is `%x20-21 / %x23-5B / %x5D-7E`.
fn is_description_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[test]
fn challenges_follow_rfc_6750_and_leak_nothing() {
    let valid = hs(&claims(""));
    let signature = valid.rsplit_once('.').unwrap().1;
    let secret = std::str::from_utf8(SECRET).unwrap();
    for r in hostile_tokens() {
        let Err(e) = outcome(&r) else { continue };
        let challenge = e.www_authenticate();
        assert!(is_description_safe(e.description()), "{}: {e:?}", r.name);
        assert!(
            challenge.starts_with("Bearer realm=\"pushlab\""),
            "{challenge}"
        );
        for secretish in [secret, signature, "BEGIN", "MII"] {
            assert!(!challenge.contains(secretish), "{}: {challenge}", r.name);
        }
        if let Some(token) = &r.token {
            assert!(
                token.len() < 8 || !challenge.contains(token.as_str()),
                "{}",
                r.name
            );
        }
    }
    assert_eq!(
        AuthError::Missing.www_authenticate(),
        "Bearer realm=\"pushlab\""
    );
    assert_eq!(
        AuthError::Expired.www_authenticate(),
        "Bearer realm=\"pushlab\", error=\"invalid_token\", error_description=\"the token has expired\""
    );
    assert_eq!(
        AuthError::NotGranted(Action::Publish).error_code(),
        Some("insufficient_scope")
    );
}
