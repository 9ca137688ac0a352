//! `redis://` URLs: which Redis the log connects to, and how it logs in.
//!
//! ```text
//! redis://[[username]:password@]host[:port][/db]
//! ```
//!
//! The form of the IANA `redis` URI scheme (RFC 3986 syntax), as `redis-cli
//! -u` and the common client libraries read it:
//!
//! - `host`: a name, an IPv4 address, or an IPv6 address in brackets
//!   (`redis://[::1]:6379`).
//! - `port`: 1–65535, [`DEFAULT_PORT`] when absent.
//! - `db`: the logical database to `SELECT`, 0 when absent (`/` alone is 0).
//! - `:password@`: `AUTH password`, the one password of Redis before 6 (or
//!   its `default` user). `username:password@`: `AUTH username password`,
//!   an ACL user (Redis 6 and later). Both are percent-decoded: write
//!   `%40` for `@`, `%3A` for `:`, `%2F` for `/`, `%25` for `%`.
//!
//! Refused, each with an error that names the problem
//! ([`RedisUrlError`]): any other scheme (`rediss://`: TLS is not supported;
//! `unix://`: nor are Unix sockets), a user name without a password, an
//! empty or malformed host, a port or database that is not a number in
//! range, a query (`?…`) or fragment (`#…`), a bad `%` escape.
//!
//! The password never appears in `Display` or `Debug`, so the URL can be
//! logged and shown on `/healthz` as it is.

use std::fmt;
use std::net::Ipv6Addr;

use crate::wire::resp::Arg;

/// Redis's port when the URL names none.
pub const DEFAULT_PORT: u16 = 6379;

/// Where Redis is and how to log in: a parsed `redis://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address; an IPv6 address without its brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The logical database (`SELECT db`); 0 is Redis's default.
    pub db: u32,
    /// The ACL user, percent-decoded (`AUTH username password`).
    pub username: Option<Vec<u8>>,
    /// The password, percent-decoded (`AUTH password`).
    pub password: Option<Vec<u8>>,
}

/// Why a `--redis` URL was refused. The message names the problem and never
/// repeats the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisUrlError {
    /// No `scheme://` at the start.
    MissingScheme,
    /// A scheme other than `redis` (the scheme, lowercased).
    UnsupportedScheme(String),
    /// `user@host`: a user name needs a password.
    UserWithoutPassword,
    /// `:@host`: the password is empty.
    EmptyPassword,
    /// A `%` not followed by two hex digits in the user name or password.
    BadPercentEncoding,
    /// Nothing between `//` (or `@`) and the port or path.
    MissingHost,
    /// A host that is neither a name, an IPv4 address nor a bracketed IPv6
    /// address.
    BadHost(String),
    /// A port that is not a number from 1 to 65535.
    BadPort(String),
    /// A path that is not `/` followed by a database number.
    BadDb(String),
    /// A `?query` or `#fragment`, which no option is read from.
    QueryOrFragment,
}

impl fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisUrlError::MissingScheme => {
                f.write_str("Redis URL must start with redis:// (redis://host:port)")
            }
            RedisUrlError::UnsupportedScheme(s) if s == "rediss" => {
                f.write_str("rediss:// (Redis over TLS) is not supported: use redis://")
            }
            RedisUrlError::UnsupportedScheme(s) => {
                write!(f, "{s}:// is not supported: use redis://host:port")
            }
            RedisUrlError::UserWithoutPassword => f.write_str(
                "Redis URL names a user but no password: write redis://user:password@host \
                 or redis://:password@host",
            ),
            RedisUrlError::EmptyPassword => f.write_str("Redis URL has an empty password"),
            RedisUrlError::BadPercentEncoding => {
                f.write_str("Redis URL user or password has a % not followed by two hex digits")
            }
            RedisUrlError::MissingHost => f.write_str("Redis URL has no host"),
            RedisUrlError::BadHost(h) => write!(
                f,
                "Redis URL host {h:?} is not a host name, an IPv4 address or a bracketed \
                 IPv6 address"
            ),
            RedisUrlError::BadPort(p) => {
                write!(f, "Redis URL port {p:?} is not a number from 1 to 65535")
            }
            RedisUrlError::BadDb(d) => write!(
                f,
                "Redis URL path {d:?} is not a database number (redis://host:port/0)"
            ),
            RedisUrlError::QueryOrFragment => {
                f.write_str("Redis URL may not have a ?query or #fragment")
            }
        }
    }
}

impl std::error::Error for RedisUrlError {}

impl std::str::FromStr for RedisUrl {
    type Err = RedisUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RedisUrl::parse(s)
    }
}

impl RedisUrl {
    /// Parses `redis://[[username]:password@]host[:port][/db]`.
    pub fn parse(url: &str) -> Result<RedisUrl, RedisUrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(RedisUrlError::MissingScheme)?;
        // RFC 3986 §3.1: "schemes are case-insensitive".
        if !scheme.eq_ignore_ascii_case("redis") {
            return Err(RedisUrlError::UnsupportedScheme(
                scheme.to_ascii_lowercase(),
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(RedisUrlError::QueryOrFragment);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        // The last `@`: an unescaped `@` in a password still parses.
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = info
                    .split_once(':')
                    .ok_or(RedisUrlError::UserWithoutPassword)?;
                if password.is_empty() {
                    return Err(RedisUrlError::EmptyPassword);
                }
                let user = (!user.is_empty())
                    .then(|| percent_decode(user))
                    .transpose()?;
                (user, Some(percent_decode(password)?))
            }
        };
        let (host, port) = split_host_port(host_port)?;
        let db = match path {
            "" | "/" => 0,
            _ => {
                let digits = &path[1..];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(RedisUrlError::BadDb(path.to_string()));
                }
                digits
                    .parse()
                    .map_err(|_| RedisUrlError::BadDb(path.to_string()))?
            }
        };
        Ok(RedisUrl {
            host,
            port,
            db,
            username,
            password,
        })
    }

    /// The login command, `AUTH [username] password`, when the URL has a
    /// password. Sent first on every connection.
    pub fn auth_command(&self) -> Option<Vec<Arg<'_>>> {
        let password = self.password.as_deref()?;
        let mut args = vec![Arg::from("AUTH")];
        args.extend(self.username.as_deref().map(Arg::Bytes));
        args.push(Arg::Bytes(password));
        Some(args)
    }

    /// `SELECT db`, when the URL names a database other than 0.
    pub fn select_command(&self) -> Option<[Arg<'static>; 2]> {
        (self.db != 0).then(|| [Arg::from("SELECT"), Arg::Uint(u64::from(self.db))])
    }

    /// `host:port` for resolving and connecting, with brackets around an
    /// IPv6 address (`[::1]:6379`), as `ToSocketAddrs` reads it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host[:port]`, checking both.
fn split_host_port(s: &str) -> Result<(String, u16), RedisUrlError> {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| RedisUrlError::BadHost(s.to_string()))?;
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(RedisUrlError::BadHost(s.to_string()));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| RedisUrlError::BadHost(s.to_string()))?,
            ),
        };
        (addr, port)
    } else if s.matches(':').count() > 1 {
        // An IPv6 address without its brackets.
        return Err(RedisUrlError::BadHost(s.to_string()));
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(RedisUrlError::MissingHost);
    }
    // Host names: letters, digits, `-` and `.` (RFC 1123), and `_`, which
    // container and service names use. Also covers IPv4 addresses.
    let is_name = |h: &str| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !s.starts_with('[') && !is_name(host) {
        return Err(RedisUrlError::BadHost(host.to_string()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(RedisUrlError::BadPort(p.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

/// RFC 3986 §2.1 percent-decoding, refusing a `%` without two hex digits.
fn percent_decode(s: &str) -> Result<Vec<u8>, RedisUrlError> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(RedisUrlError::BadPercentEncoding)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(RedisUrlError::BadPercentEncoding);
            }
        }
    }
    Ok(percent_encoding::percent_decode(bytes).collect())
}

/// `redis://user:***@host:port/db`: the password is never shown.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        if self.password.is_some() {
            if let Some(user) = &self.username {
                // Shown as decoded text; only the password is secret.
                f.write_str(&String::from_utf8_lossy(user))?;
            }
            f.write_str(":***@")?;
        }
        write!(f, "{}/{}", self.authority(), self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RedisUrl {
        RedisUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refused(s: &str) -> RedisUrlError {
        RedisUrl::parse(s).expect_err(s)
    }

    #[test]
    fn host_alone_takes_the_default_port_and_database() {
        let u = url("redis://localhost");
        assert_eq!(
            (u.host.as_str(), u.port, u.db, u.username, u.password),
            ("localhost", 6379, 0, None, None)
        );
        assert_eq!(url("redis://127.0.0.1:6380").port, 6380);
        assert_eq!(url("redis://127.0.0.1:6380/").db, 0);
        assert_eq!(url("redis://127.0.0.1:6380/3").db, 3);
        assert_eq!(
            url("REDIS://redis-1.internal_net").host,
            "redis-1.internal_net"
        );
    }

    #[test]
    fn a_password_alone_or_a_user_and_password_log_in() {
        let u = url("redis://:s3cret@10.0.0.5:6379/2");
        assert_eq!(u.username, None);
        assert_eq!(u.password.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!((u.host.as_str(), u.port, u.db), ("10.0.0.5", 6379, 2));
        let u = url("redis://pushlab:pa55@cache:7000");
        assert_eq!(u.username.as_deref(), Some(&b"pushlab"[..]));
        assert_eq!(u.password.as_deref(), Some(&b"pa55"[..]));
    }

    #[test]
    fn user_and_password_are_percent_decoded() {
        let u = url("redis://us%65r:p%40ss%3Aw%2Fo%25rd@h");
        assert_eq!(u.username.as_deref(), Some(&b"user"[..]));
        assert_eq!(u.password.as_deref(), Some(&b"p@ss:w/o%rd"[..]));
        // An unescaped `@` in the password still parses (the last `@` ends it).
        assert_eq!(url("redis://:a@b@h").password.as_deref(), Some(&b"a@b"[..]));
        assert_eq!(refused("redis://:p%4@h"), RedisUrlError::BadPercentEncoding);
        assert_eq!(
            refused("redis://:p%zz@h"),
            RedisUrlError::BadPercentEncoding
        );
    }

    #[test]
    fn ipv6_addresses_go_in_brackets() {
        let u = url("redis://[::1]:6390/1");
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 6390, 1));
        assert_eq!(u.authority(), "[::1]:6390");
        assert_eq!(url("redis://[fe80::2]").port, 6379);
        assert_eq!(refused("redis://::1"), RedisUrlError::BadHost("::1".into()));
        assert_eq!(
            refused("redis://[::1"),
            RedisUrlError::BadHost("[::1".into())
        );
        assert_eq!(
            refused("redis://[nothost]:1"),
            RedisUrlError::BadHost("[nothost]:1".into())
        );
        assert_eq!(
            refused("redis://[::1]x"),
            RedisUrlError::BadHost("[::1]x".into())
        );
    }

    #[test]
    fn each_bad_part_is_named() {
        assert_eq!(refused("localhost:6379"), RedisUrlError::MissingScheme);
        assert_eq!(
            refused("rediss://h:6379"),
            RedisUrlError::UnsupportedScheme("rediss".into())
        );
        assert_eq!(
            refused("unix:///tmp/redis.sock"),
            RedisUrlError::UnsupportedScheme("unix".into())
        );
        assert_eq!(refused("redis://"), RedisUrlError::MissingHost);
        assert_eq!(refused("redis://:6379"), RedisUrlError::MissingHost);
        assert_eq!(refused("redis://:pw@/0"), RedisUrlError::MissingHost);
        assert_eq!(
            refused("redis://user@h"),
            RedisUrlError::UserWithoutPassword
        );
        assert_eq!(refused("redis://user:@h"), RedisUrlError::EmptyPassword);
        assert_eq!(refused("redis://h:0"), RedisUrlError::BadPort("0".into()));
        assert_eq!(
            refused("redis://h:65536"),
            RedisUrlError::BadPort("65536".into())
        );
        assert_eq!(
            refused("redis://h:+80"),
            RedisUrlError::BadPort("+80".into())
        );
        assert_eq!(refused("redis://h:"), RedisUrlError::BadPort("".into()));
        assert_eq!(refused("redis://h/x"), RedisUrlError::BadDb("/x".into()));
        assert_eq!(
            refused("redis://h/1/2"),
            RedisUrlError::BadDb("/1/2".into())
        );
        assert_eq!(refused("redis://h/-1"), RedisUrlError::BadDb("/-1".into()));
        assert_eq!(
            refused("redis://h/99999999999"),
            RedisUrlError::BadDb("/99999999999".into())
        );
        assert_eq!(refused("redis://h?db=1"), RedisUrlError::QueryOrFragment);
        assert_eq!(refused("redis://h#x"), RedisUrlError::QueryOrFragment);
        assert_eq!(
            refused("redis://h st"),
            RedisUrlError::BadHost("h st".into())
        );
    }

    #[test]
    fn errors_say_what_is_wrong_and_how_to_write_it() {
        assert_eq!(
            refused("rediss://h").to_string(),
            "rediss:// (Redis over TLS) is not supported: use redis://"
        );
        assert_eq!(
            refused("redis://h:99999").to_string(),
            "Redis URL port \"99999\" is not a number from 1 to 65535"
        );
        assert!(refused("redis://bob@h")
            .to_string()
            .contains("redis://:password@host"));
    }

    #[test]
    fn the_login_and_database_become_auth_and_select() {
        let encode = |args: &[Arg<'_>]| {
            let mut out = Vec::new();
            crate::wire::resp::encode_command(&mut out, args);
            String::from_utf8(out).unwrap()
        };
        let u = url("redis://bob:pw@h/3");
        assert_eq!(
            encode(&u.auth_command().unwrap()),
            "*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$2\r\npw\r\n"
        );
        assert_eq!(
            encode(&u.select_command().unwrap()),
            "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
        );
        let u = url("redis://:pw@h");
        assert_eq!(
            encode(&u.auth_command().unwrap()),
            "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
        );
        assert!(u.select_command().is_none());
        assert!(url("redis://h/0").auth_command().is_none());
    }

    #[test]
    fn the_password_is_never_shown() {
        let u = url("redis://bob:hunter2@h:1/4");
        assert_eq!(u.to_string(), "redis://bob:***@h:1/4");
        assert_eq!(format!("{u:?}"), "RedisUrl(redis://bob:***@h:1/4)");
        assert_eq!(
            url("redis://:hunter2@[::1]").to_string(),
            "redis://:***@[::1]:6379/0"
        );
        assert_eq!(url("redis://h").to_string(), "redis://h:6379/0");
        // What is shown parses back to the same place.
        let shown = url("redis://h:7/2").to_string();
        assert_eq!(url(&shown), url("redis://h:7/2"));
        assert!(!refused("redis://:hunter2@h:x")
            .to_string()
            .contains("hunter2"));
    }
}
