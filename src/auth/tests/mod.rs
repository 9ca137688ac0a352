//! The verifier as a whole: RFC 7515's own example, the RS256 / ES256
//! fixtures (tests/fixtures/jwt/, made by generate.py there), properties,
//! and (in [`hostile`]) a table of hostile tokens with the outcome each gets.

mod hostile;

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

const RS256_PEM: &[u8] = include_bytes!("../../../tests/fixtures/jwt/rs256_public.pem");
const ES256_PEM: &[u8] = include_bytes!("../../../tests/fixtures/jwt/es256_public.pem");
const RS256_VALID: &str = include_str!("../../../tests/fixtures/jwt/rs256_valid.jwt");
const RS256_OTHER_KEY: &str = include_str!("../../../tests/fixtures/jwt/rs256_other_key.jwt");
const RS256_CONFUSION: &str = include_str!("../../../tests/fixtures/jwt/rs256_confusion_hs256.jwt");
const ES256_VALID: &str = include_str!("../../../tests/fixtures/jwt/es256_valid.jwt");
const ES256_OTHER_KEY: &str = include_str!("../../../tests/fixtures/jwt/es256_other_key.jwt");

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
