//! The authorization flags as the binary reads them: key and token files
//! are read at start and every unusable one is refused with the flag, the
//! path and the reason, exit status 2, before anything listens.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A file in a fresh temporary directory holding `bytes`.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pushlab-auth-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `pushlab` with `args`; every case here exits before listening.
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap()
}

fn refused(args: &[&str], expect: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} started listening");
    assert!(
        stderr.contains(expect),
        "{args:?}: expected {expect:?} in {stderr}"
    );
}

#[test]
fn unusable_key_files_are_refused_with_flag_path_and_reason() {
    let short = temp_file("short", b"too-short\n");
    let short = short.to_str().unwrap();
    refused(
        &["--jwt-secret-file", "/nonexistent/secret"],
        "--jwt-secret-file /nonexistent/secret: No such file",
    );
    refused(&["--jwt-secret-file", short], "the HS256 secret is 9 bytes");
    refused(
        &["--jwt-secret-file", &fixture("rs256_public.pem")],
        "the HS256 secret is a PEM key",
    );
    let rs1024 = fixture("rs1024_public.pem");
    refused(
        &["--jwt-public-key-file", &rs1024, "--jwt-algorithm", "RS256"],
        "the RSA key has 1024 bits",
    );
    let es256 = fixture("es256_public.pem");
    refused(
        &["--jwt-public-key-file", &es256, "--jwt-algorithm", "RS256"],
        "not a PEM RSA public key",
    );
    refused(
        &["--jwt-public-key-file", &es256, "--jwt-algorithm", "HS256"],
        "HS256 takes a shared secret",
    );
    let empty = temp_file("empty", b"\n");
    refused(
        &["--admin-token-file", empty.to_str().unwrap()],
        "the file is empty",
    );
}

#[test]
fn inconsistent_flags_are_refused() {
    let es256 = fixture("es256_public.pem");
    refused(&["--jwt-public-key-file", &es256], "--jwt-algorithm");
    refused(&["--jwt-algorithm", "ES256"], "--jwt-public-key-file");
    refused(&["--jwt-algorithm", "none"], "unknown JWT algorithm `none`");
    let secret = temp_file("secret", &[b'k'; 32]);
    let secret = secret.to_str().unwrap();
    refused(
        &[
            "--jwt-secret-file",
            secret,
            "--jwt-public-key-file",
            &es256,
            "--jwt-algorithm",
            "ES256",
        ],
        "cannot be used with",
    );
    refused(
        &["--public-topic", "a*b", "--jwt-secret-file", secret],
        "not a topic pattern",
    );
    for flag in [
        &["--public-topic", "news"][..],
        &["--jwt-audience", "x"],
        &["--allow-query-token"],
    ] {
        refused(flag, "needs a key");
    }
}

/// Starts `pushlab` with `args`, waits for its listening line, stops it.
fn starts(args: &[&str]) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        line.starts_with("pushlab listening on"),
        "{args:?}: {line:?}"
    );
}

#[test]
fn valid_keys_are_read_and_the_server_starts() {
    let secret = temp_file("secret-ok", &[b'k'; 40]);
    let admin = temp_file("admin", b"admin-token\n");
    let es256 = fixture("es256_public.pem");
    let rs256 = fixture("rs256_public_pkcs1.pem");
    for args in [
        &[
            "--jwt-secret-file",
            secret.to_str().unwrap(),
            "--public-topic",
            "public.*",
            "--jwt-audience",
            "a",
        ][..],
        &[
            "--jwt-public-key-file",
            &es256,
            "--jwt-algorithm",
            "ES256",
            "--allow-query-token",
        ],
        &[
            "--jwt-public-key-file",
            &rs256,
            "--jwt-algorithm",
            "RS256",
            "--jwt-leeway",
            "5s",
        ],
        &["--admin-token-file", admin.to_str().unwrap()],
    ] {
        starts(args);
    }
}
