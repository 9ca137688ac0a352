//! The verifier as a whole: RFC 7515's own example, the RS256 / ES256
//! fixtures (tests/fixtures/jwt/, made by generate.py there), a table of
//! hostile tokens with the outcome each gets, and properties.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use proptest::prelude::*;

use super::jwt::decode_base64url;
use super::*;
use crate::config::MAX_TOKEN_BYTES;

const SECRET: &[u8] = b"pushlab-test-secret-0123456789abcdef";
const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// The `now` of every row: 2027-01-15.
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;

const RS256_PEM: &[u8] = include_bytes!("../../tests/fixtures/jwt/rs256_public.pem");
const ES256_PEM: &[u8] = include_bytes!("../../tests/fixtures/jwt/es256_public.pem");
const RS256_VALID: &str = include_str!("../../tests/fixtures/jwt/rs256_valid.jwt");
const RS256_OTHER_KEY: &str = include_str!("../../tests/fixtures/jwt/rs256_other_key.jwt");
const RS256_CONFUSION: &str = include_str!("../../tests/fixtures/jwt/rs256_confusion_hs256.jwt");
const ES256_VALID: &str = include_str!("../../tests/fixtures/jwt/es256_valid.jwt");
const ES256_OTHER_KEY: &str = include_str!("../../tests/fixtures/jwt/es256_other_key.jwt");

fn b64(s: &str) -> String {
    BASE64URL.encode(s)
}

/// An HS256 token over these exact claims, signed with [`SECRET`].
fn hs(claims: &str) -> String {
    sign_hs256(SECRET, HS256.as_bytes(), claims.as_bytes())
}

/// An HS256 token with this header, signed with [`SECRET`].
fn hs_header(header: &str, claims: &str) -> String {
    sign_hs256(SECRET, header.as_bytes(), claims.as_bytes())
}

/// Claims granting `user.42.*` and `news` to read, `user.42.inbox` to write.
fn claims(extra: &str) -> String {
    format!(
        r#"{{"exp":{exp},{extra}"pushlab":{{"subscribe":["user.42.*","news"],"publish":["user.42.inbox"]}}}}"#,
        exp = NOW + 3600
    )
}

fn policy(key: Key, audience: Option<&str>) -> Policy {
    Policy {
        verifier: Some(Verifier::new(key, audience.map(str::to_owned), LEEWAY)),
        public_topics: vec![TopicPattern::parse("public.*").unwrap()],
    }
}

fn hs_policy() -> Policy {
    policy(Key::hs256(SECRET).unwrap(), None)
}

fn rs_policy() -> Policy {
    policy(Key::public_pem(Algorithm::Rs256, RS256_PEM).unwrap(), None)
}

fn es_policy() -> Policy {
    policy(Key::public_pem(Algorithm::Es256, ES256_PEM).unwrap(), None)
}

/// `signing_input "." BASE64URL(HMAC)`: a valid signature over any bytes.
fn sign_raw(signing_input: &str) -> String {
    let mac = super::key::hmac_sha256(SECRET, signing_input.as_bytes());
    format!("{signing_input}.{}", BASE64URL.encode(mac))
}

/// The first `n` bytes of `s`.
fn cut(s: &str, n: usize) -> String {
    s[..n].to_owned()
}

#[test]
fn rfc_7515_a1_verifies_before_its_expiry_only() {
    let token = concat!(
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
    let key = decode_base64url(
        b"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    )
    .unwrap();
    let v = Verifier::new(Key::hs256(&key).unwrap(), None, 0);
    let grants = v.verify(token.as_bytes(), 1_300_819_379).unwrap();
    assert_eq!(grants.valid_until, 1_300_819_380);
    assert!(grants.subscribe.is_empty() && grants.publish.is_empty());
    assert_eq!(
        v.verify(token.as_bytes(), 1_300_819_380),
        Err(AuthError::Expired)
    );
    let other = Verifier::new(Key::hs256(&[7; 64]).unwrap(), None, 0);
    assert_eq!(
        other.verify(token.as_bytes(), 0),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn rs256_and_es256_fixtures_carry_their_grants() {
    for (policy, token) in [(rs_policy(), RS256_VALID), (es_policy(), ES256_VALID)] {
        let v = policy.verifier.as_ref().unwrap();
        let grants = v.verify(token.as_bytes(), NOW).unwrap();
        assert_eq!(grants.valid_until, 2_000_000_000 + LEEWAY);
        assert!(grants.may_subscribe("user.42.inbox") && grants.may_subscribe("news"));
        assert!(grants.may_publish("user.42.inbox") && !grants.may_publish("news"));
    }
}

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

#[test]
fn several_topics_need_every_private_one_granted() {
    let p = hs_policy();
    let t = hs(&claims(""));
    let t = Some(t.as_bytes());
    assert!(p
        .authorize_subscribe(t, &["news", "user.42.a", "public.x"], NOW)
        .is_ok());
    assert_eq!(
        p.authorize_subscribe(t, &["news", "secret"], NOW),
        Err(AuthError::NotGranted(Action::Subscribe))
    );
    assert_eq!(
        p.authorize_subscribe(None, &["public.a", "public.b"], NOW),
        Ok(None)
    );
    assert_eq!(
        p.authorize_subscribe(None, &["public.a", "news"], NOW),
        Err(AuthError::Missing)
    );
}

#[test]
fn without_a_key_everything_stays_open() {
    let p = Policy::default();
    assert!(!p.is_enabled());
    assert_eq!(p.authorize_subscribe(None, &["anything"], NOW), Ok(None));
    assert_eq!(
        p.authorize_publish(Some(b"garbage"), "anything", NOW),
        Ok(None)
    );
}

#[test]
fn admin_secrets_compare_whole_and_never_print() {
    let s = Secret::from_file_bytes(b"s3cret-admin\n").unwrap();
    assert!(s.matches(b"s3cret-admin"));
    assert!(!s.matches(b"s3cret-admiN"));
    assert!(!s.matches(b"s3cret-admin\n"));
    assert!(!s.matches(b""));
    assert!(Secret::from_file_bytes(b"\n").is_none());
    assert!(!format!("{s:?}").contains("s3cret"));
}

fn valid_hs_token() -> String {
    hs(&claims(r#""sub":"user-42","iat":1700000000,"#))
}

proptest! {
    #[test]
    fn any_single_byte_change_to_a_valid_hs256_token_is_refused(
        index in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let token = valid_hs_token().into_bytes();
        let i = index.index(token.len());
        prop_assume!(token[i] != byte);
        let mut changed = token.clone();
        changed[i] = byte;
        let v = hs_policy().verifier.unwrap();
        prop_assert!(v.verify(&token, NOW).is_ok());
        let got = v.verify(&changed, NOW);
        prop_assert!(got.is_err(), "byte {} set to {:#x}: {:?}", i, byte, got);
        prop_assert_eq!(got.unwrap_err().status(), 401);
    }

    #[test]
    fn any_truncation_or_extension_is_refused(n in 0usize..400, tail in "[A-Za-z0-9_.-]{1,8}") {
        let token = valid_hs_token();
        let v = hs_policy().verifier.unwrap();
        let n = n % token.len();
        prop_assert!(v.verify(&token.as_bytes()[..n], NOW).is_err());
        let longer = format!("{token}{tail}");
        prop_assert!(v.verify(longer.as_bytes(), NOW).is_err());
    }

    #[test]
    fn any_single_byte_change_to_rs256_and_es256_tokens_is_refused(
        index in any::<prop::sample::Index>(), byte in any::<u8>(), es in any::<bool>()
    ) {
        let (policy, token) = if es { (es_policy(), ES256_VALID) } else { (rs_policy(), RS256_VALID) };
        let i = index.index(token.len());
        prop_assume!(token.as_bytes()[i] != byte);
        let mut changed = token.as_bytes().to_vec();
        changed[i] = byte;
        prop_assert!(policy.verifier.unwrap().verify(&changed, NOW).is_err());
    }

    #[test]
    fn a_token_is_accepted_exactly_until_exp_plus_leeway(
        exp in 0u64..4_000_000_000, now in 0u64..4_000_000_000, leeway in 0u64..300
    ) {
        let v = Verifier::new(Key::hs256(SECRET).unwrap(), None, leeway);
        let got = v.verify(hs(&format!(r#"{{"exp":{exp}}}"#)).as_bytes(), now);
        if now < exp + leeway {
            prop_assert_eq!(got.map(|g| g.valid_until), Ok(exp + leeway));
        } else {
            prop_assert_eq!(got, Err(AuthError::Expired));
        }
    }

    #[test]
    fn granted_patterns_come_back_as_signed(
        subscribe in prop::collection::vec("[a-z0-9.]{1,12}\\*?", 0..6),
        publish in prop::collection::vec("[a-z0-9.]{1,12}\\*?", 0..6),
    ) {
        let json = serde_json::json!({
            "exp": NOW + 60,
            "pushlab": {"subscribe": subscribe, "publish": publish},
        });
        let grants = hs_policy().verifier.unwrap().verify(hs(&json.to_string()).as_bytes(), NOW).unwrap();
        let shown: Vec<String> = grants.subscribe.iter().map(ToString::to_string).collect();
        prop_assert_eq!(shown, subscribe.clone());
        let shown: Vec<String> = grants.publish.iter().map(ToString::to_string).collect();
        prop_assert_eq!(shown, publish);
        for s in &subscribe {
            let topic = s.trim_end_matches('*');
            let longer = format!("{topic}x");
            prop_assert!(grants.may_subscribe(&longer) || !s.ends_with('*'));
            prop_assert!(grants.may_subscribe(topic) || s.ends_with('*'));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_always_get_401(token in prop::collection::vec(any::<u8>(), 0..300)) {
        let got = hs_policy().verifier.unwrap().verify(&token, NOW);
        prop_assert_eq!(got.map(|_| ()).unwrap_err().status(), 401);
    }
}
