//! The verification key and its algorithm (RFC 7518 §3: HS256, RS256,
//! ES256), fixed by configuration.
//!
//! A [`Key`] is built from bytes the caller read (`--jwt-secret-file`,
//! `--jwt-public-key-file`); this module reads no file. The algorithm is a
//! property of the key, never of the token: a token is checked against the
//! one algorithm its server was configured with, which is what refuses
//! `alg: none` and algorithm confusion (see [`super::verifier`]).
//!
//! Left out: HS384/HS512, RS384/RS512, PS256, ES384, EdDSA; keys from JWK
//! sets or URLs (`jku`, `x5u`, `jwk` and `kid` headers are ignored — the key
//! comes from the operator only); several keys at once (rotation).

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use p256::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use sha2::Sha256;

/// RFC 7518 §3.2: "A key of the same size as the hash output (for instance,
/// 256 bits for "HS256") or larger MUST be used with this algorithm."
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these
/// algorithms."
pub const MIN_RSA_BITS: usize = 2048;

/// A JWS algorithm this server can be configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC with SHA-256 (a shared secret).
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (an RSA public key).
    Rs256,
    /// ECDSA on P-256 with SHA-256 (an EC public key).
    Es256,
}

impl Algorithm {
    /// The `alg` header value (RFC 7518 §3.1), case-sensitive.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    /// `HS256`, `RS256` or `ES256`, spelled as RFC 7518 spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Algorithm::Hs256, Algorithm::Rs256, Algorithm::Es256]
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown JWT algorithm `{s}` (use HS256, RS256 or ES256)"))
    }
}

/// A key that is not usable, found when the server starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The HS256 secret is shorter than [`MIN_HS256_SECRET_BYTES`].
    SecretTooShort { len: usize },
    /// The HS256 secret is a PEM document: a public key used as an HMAC
    /// secret is exactly what algorithm confusion exploits.
    SecretIsPem,
    /// `--jwt-algorithm HS256` with a public key file, or the reverse.
    WrongKind(Algorithm),
    /// A private key where the public key belongs.
    PrivateKey,
    /// Not a PEM public key of the configured algorithm.
    NotPublicKey(Algorithm),
    /// An RSA modulus shorter than [`MIN_RSA_BITS`].
    RsaTooSmall { bits: usize },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::SecretTooShort { len } => write!(
                f,
                "the HS256 secret is {len} bytes; RFC 7518 requires at least \
                 {MIN_HS256_SECRET_BYTES} (e.g. `head -c 32 /dev/urandom | base64`)"
            ),
            KeyError::SecretIsPem => f.write_str(
                "the HS256 secret is a PEM key; give a public key with \
                 --jwt-public-key-file and --jwt-algorithm RS256 or ES256 instead",
            ),
            KeyError::WrongKind(Algorithm::Hs256) => {
                f.write_str("HS256 takes a shared secret (--jwt-secret-file), not a public key")
            }
            KeyError::WrongKind(alg) => write!(
                f,
                "{} takes a public key (--jwt-public-key-file), not a secret",
                alg.name()
            ),
            KeyError::PrivateKey => f.write_str(
                "this is a private key; give the public key only (openssl pkey -pubout)",
            ),
            KeyError::NotPublicKey(Algorithm::Es256) => {
                f.write_str("not a PEM public key on the P-256 curve (-----BEGIN PUBLIC KEY-----)")
            }
            KeyError::NotPublicKey(_) => f.write_str(
                "not a PEM RSA public key (-----BEGIN PUBLIC KEY----- or \
                 -----BEGIN RSA PUBLIC KEY-----)",
            ),
            KeyError::RsaTooSmall { bits } => write!(
                f,
                "the RSA key has {bits} bits; RFC 7518 requires at least {MIN_RSA_BITS}"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// The key tokens are verified with; its variant is the one accepted `alg`.
#[derive(Clone)]
pub enum Key {
    Hs256(Box<[u8]>),
    Rs256(rsa::pkcs1v15::VerifyingKey<Sha256>),
    Es256(p256::ecdsa::VerifyingKey),
}

/// Never prints the secret (a `Config` is printed in debug output).
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Hs256(secret) => write!(f, "Key::Hs256(<{} secret bytes>)", secret.len()),
            Key::Rs256(_) => f.write_str("Key::Rs256(<public key>)"),
            Key::Es256(_) => f.write_str("Key::Es256(<public key>)"),
        }
    }
}

impl Key {
    /// An HS256 key from the bytes of a secret file. One final line ending
    /// (`\n` or `\r\n`, as `echo` and editors leave) is not part of the
    /// secret; every other byte is.
    pub fn hs256(file: &[u8]) -> Result<Key, KeyError> {
        let secret = file
            .strip_suffix(b"\r\n")
            .or_else(|| file.strip_suffix(b"\n"))
            .unwrap_or(file);
        if secret.trim_ascii_start().starts_with(b"-----BEGIN") {
            return Err(KeyError::SecretIsPem);
        }
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(KeyError::SecretTooShort { len: secret.len() });
        }
        Ok(Key::Hs256(secret.into()))
    }

    /// An RS256 or ES256 key from a PEM public key: SubjectPublicKeyInfo
    /// (`BEGIN PUBLIC KEY`, what `openssl pkey -pubout` writes) or, for RSA,
    /// PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    pub fn public_pem(alg: Algorithm, pem: &[u8]) -> Result<Key, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| KeyError::NotPublicKey(alg))?;
        if text.contains("PRIVATE KEY-----") {
            return Err(KeyError::PrivateKey);
        }
        match alg {
            Algorithm::Hs256 => Err(KeyError::WrongKind(alg)),
            Algorithm::Rs256 => {
                let key = rsa::RsaPublicKey::from_public_key_pem(text)
                    .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text))
                    .map_err(|_| KeyError::NotPublicKey(alg))?;
                let bits = key.n().bits();
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::RsaTooSmall { bits });
                }
                Ok(Key::Rs256(rsa::pkcs1v15::VerifyingKey::new(key)))
            }
            Algorithm::Es256 => p256::ecdsa::VerifyingKey::from_public_key_pem(text)
                .map(Key::Es256)
                .map_err(|_| KeyError::NotPublicKey(alg)),
        }
    }

    /// The one algorithm tokens must name.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Key::Hs256(_) => Algorithm::Hs256,
            Key::Rs256(_) => Algorithm::Rs256,
            Key::Es256(_) => Algorithm::Es256,
        }
    }

    /// Whether `signature` is this key's signature of `signing_input`
    /// (RFC 7515 §5.2 step 8). The HMAC comparison is constant-time
    /// (`Mac::verify_slice`); the public-key checks involve no secret.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match self {
            Key::Hs256(secret) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                    return false;
                };
                mac.update(signing_input);
                mac.verify_slice(signature).is_ok()
            }
            Key::Rs256(key) => {
                // RFC 8017 §8.2.2 step 1: the signature is exactly as long as
                // the modulus.
                if signature.len() != key.as_ref().size() {
                    return false;
                }
                rsa::pkcs1v15::Signature::try_from(signature)
                    .is_ok_and(|sig| key.verify(signing_input, &sig).is_ok())
            }
            Key::Es256(key) => {
                // RFC 7518 §3.4: R and S as two 32-byte big-endian integers,
                // concatenated (not DER).
                if signature.len() != 64 {
                    return false;
                }
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(signing_input, &sig).is_ok())
            }
        }
    }
}

/// HMAC-SHA-256 of `data` (for [`super::sign_hs256`]).
pub(crate) fn hmac_sha256(secret: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS256_PEM: &[u8] = include_bytes!("../../tests/fixtures/jwt/rs256_public.pem");
    const RS256_PKCS1_PEM: &[u8] =
        include_bytes!("../../tests/fixtures/jwt/rs256_public_pkcs1.pem");
    const RS1024_PEM: &[u8] = include_bytes!("../../tests/fixtures/jwt/rs1024_public.pem");
    const ES256_PEM: &[u8] = include_bytes!("../../tests/fixtures/jwt/es256_public.pem");
    const ES384_PEM: &[u8] = include_bytes!("../../tests/fixtures/jwt/es384_public.pem");

    #[test]
    fn algorithms_are_read_as_rfc_7518_spells_them() {
        assert_eq!("RS256".parse(), Ok(Algorithm::Rs256));
        assert_eq!("ES256".parse(), Ok(Algorithm::Es256));
        assert_eq!("HS256".parse(), Ok(Algorithm::Hs256));
        assert!("rs256".parse::<Algorithm>().is_err());
        assert!("none".parse::<Algorithm>().is_err());
    }

    #[test]
    fn a_secret_file_loses_one_final_line_ending_only() {
        let secret = [b'k'; 32];
        let Ok(Key::Hs256(k)) = Key::hs256(&[&secret[..], b"\n"].concat()) else {
            panic!()
        };
        assert_eq!(&*k, &secret);
        let Ok(Key::Hs256(k)) = Key::hs256(&[&secret[..], b"\r\n"].concat()) else {
            panic!()
        };
        assert_eq!(&*k, &secret);
        let Ok(Key::Hs256(k)) = Key::hs256(&[&secret[..], b"\n\n"].concat()) else {
            panic!()
        };
        assert_eq!(k.len(), 33);
    }

    #[test]
    fn short_secrets_and_pem_files_are_refused_as_hs256_secrets() {
        assert_eq!(
            Key::hs256(&[b'k'; 31]).unwrap_err(),
            KeyError::SecretTooShort { len: 31 }
        );
        assert_eq!(
            Key::hs256(b"\n").unwrap_err(),
            KeyError::SecretTooShort { len: 0 }
        );
        assert_eq!(Key::hs256(RS256_PEM).unwrap_err(), KeyError::SecretIsPem);
    }

    #[test]
    fn public_keys_load_in_both_rsa_encodings_and_on_p256() {
        assert!(matches!(
            Key::public_pem(Algorithm::Rs256, RS256_PEM),
            Ok(Key::Rs256(_))
        ));
        assert!(matches!(
            Key::public_pem(Algorithm::Rs256, RS256_PKCS1_PEM),
            Ok(Key::Rs256(_))
        ));
        assert!(matches!(
            Key::public_pem(Algorithm::Es256, ES256_PEM),
            Ok(Key::Es256(_))
        ));
    }

    #[test]
    fn unusable_public_keys_are_refused_with_the_reason() {
        let rs = Algorithm::Rs256;
        let es = Algorithm::Es256;
        assert_eq!(
            Key::public_pem(rs, RS1024_PEM).unwrap_err(),
            KeyError::RsaTooSmall { bits: 1024 }
        );
        assert_eq!(
            Key::public_pem(es, ES384_PEM).unwrap_err(),
            KeyError::NotPublicKey(es)
        );
        assert_eq!(
            Key::public_pem(es, RS256_PEM).unwrap_err(),
            KeyError::NotPublicKey(es)
        );
        assert_eq!(
            Key::public_pem(rs, ES256_PEM).unwrap_err(),
            KeyError::NotPublicKey(rs)
        );
        assert_eq!(
            Key::public_pem(rs, b"\xff\xfe").unwrap_err(),
            KeyError::NotPublicKey(rs)
        );
        let private =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            Key::public_pem(es, private).unwrap_err(),
            KeyError::PrivateKey
        );
        assert_eq!(
            Key::public_pem(Algorithm::Hs256, RS256_PEM).unwrap_err(),
            KeyError::WrongKind(Algorithm::Hs256)
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = Key::hs256(b"correct-horse-battery-staple-0123456789").unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("horse"), "{shown}");
        assert!(shown.contains("39 secret bytes"), "{shown}");
    }
}
