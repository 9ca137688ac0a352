//! Connections per client address (`--max-connections-per-ip`), and the
//! address of a client behind a trusted proxy (`--trust-proxy`).
//!
//! Pure data: addresses come in as text (`192.0.2.7`, `2001:db8::1`), the
//! shell writing the peer address of each accepted socket, a session the
//! address a trusted proxy forwarded (RFC 7239 `Forwarded: for=`, or the de
//! facto `X-Forwarded-For`).
//!
//! A connection from an address that already holds the limit is refused with
//! `503` at accept. A trusted proxy's own address is not counted (it carries
//! many clients); its connection is counted under the client address of its
//! first request instead, and refused with `503` past the limit.
//! Simplification: a proxy that reuses one upstream connection for several
//! clients has it counted under the first.

use std::collections::HashMap;

/// Open connections per client address.
#[derive(Debug, Default)]
pub struct Clients {
    counts: HashMap<Box<str>, u32>,
    max: usize,
}

impl Clients {
    /// At most `max` connections per address.
    pub fn new(max: usize) -> Clients {
        Clients {
            counts: HashMap::new(),
            max,
        }
    }

    /// Counts one more connection from `addr`; false, counting nothing, when
    /// `addr` already holds the limit.
    pub fn admit(&mut self, addr: &str) -> bool {
        match self.counts.get_mut(addr) {
            Some(n) if *n as usize >= self.max => false,
            Some(n) => {
                *n += 1;
                true
            }
            None if self.max == 0 => false,
            None => {
                self.counts.insert(addr.into(), 1);
                true
            }
        }
    }

    /// One connection from `addr` is gone.
    pub fn release(&mut self, addr: &str) {
        if let Some(n) = self.counts.get_mut(addr) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(addr);
            }
        }
    }

    /// Connections counted for `addr`.
    pub fn count(&self, addr: &str) -> usize {
        self.counts.get(addr).map_or(0, |&n| n as usize)
    }
}

/// The client address a trusted proxy forwarded: the last `for=` of the
/// `Forwarded` field (RFC 7239 §5.2), else the last entry of
/// `X-Forwarded-For`. The last one is the one the proxy added; those before
/// it came from the client and prove nothing. `None` when neither names an
/// IP address (`for=unknown`, an obfuscated `_name`, garbage).
pub fn forwarded_client(forwarded: Option<&[u8]>, xff: Option<&[u8]>) -> Option<Box<str>> {
    if let Some(f) = forwarded {
        let last = f.rsplit(|&b| b == b',').next()?;
        for pair in last.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.len() > 4 && pair[..4].eq_ignore_ascii_case(b"for=") {
                return address(&pair[4..]);
            }
        }
        return None;
    }
    let last = xff?.rsplit(|&b| b == b',').next()?;
    address(last)
}

/// `192.0.2.7`, `"192.0.2.7:4711"`, `"[2001:db8::1]:4711"` → the address.
fn address(v: &[u8]) -> Option<Box<str>> {
    let v = v.trim_ascii();
    let v = v
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v);
    let ip = if let Some(rest) = v.strip_prefix(b"[") {
        // RFC 7239 §6: an IPv6 address is bracketed, a port may follow.
        &rest[..rest.iter().position(|&b| b == b']')?]
    } else if v.iter().filter(|&&b| b == b':').count() == 1 {
        // IPv4 with a port.
        &v[..v.iter().position(|&b| b == b':')?]
    } else {
        v
    };
    let valid = !ip.is_empty()
        && ip.len() <= 45
        && ip
            .iter()
            .all(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
        && ip.iter().any(|b| *b == b'.' || *b == b':');
    // ASCII checked above.
    valid.then(|| {
        std::str::from_utf8(ip)
            .unwrap_or_default()
            .to_ascii_lowercase()
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(f: &str) -> Option<Box<str>> {
        forwarded_client(Some(f.as_bytes()), None)
    }

    #[test]
    fn each_address_gets_its_limit() {
        let mut c = Clients::new(2);
        assert!(c.admit("192.0.2.1") && c.admit("192.0.2.1"));
        assert!(!c.admit("192.0.2.1"), "the third is refused");
        assert!(c.admit("192.0.2.2"), "another address is not");
        c.release("192.0.2.1");
        assert!(c.admit("192.0.2.1"));
        assert_eq!(c.count("192.0.2.1"), 2);
        c.release("192.0.2.1");
        c.release("192.0.2.1");
        assert_eq!(c.count("192.0.2.1"), 0);
        assert!(!Clients::new(0).admit("192.0.2.1"));
    }

    #[test]
    fn the_forwarded_client_is_the_last_one_the_proxy_added() {
        // RFC 7239 §7.1 and §4 examples.
        assert_eq!(fwd("for=192.0.2.43").as_deref(), Some("192.0.2.43"));
        assert_eq!(
            fwd("for=192.0.2.43, for=198.51.100.17").as_deref(),
            Some("198.51.100.17")
        );
        assert_eq!(
            fwd("For=\"[2001:db8:cafe::17]:4711\"").as_deref(),
            Some("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd("for=192.0.2.60;proto=http;by=203.0.113.43").as_deref(),
            Some("192.0.2.60")
        );
        assert_eq!(
            fwd("for=\"192.0.2.60:8080\"").as_deref(),
            Some("192.0.2.60")
        );
        for hidden in ["for=unknown", "for=_hidden", "proto=https", "for="] {
            assert_eq!(fwd(hidden), None, "{hidden}");
        }
        let xff = |v: &str| forwarded_client(None, Some(v.as_bytes()));
        assert_eq!(xff("203.0.113.9, 10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(xff(" 2001:DB8::1 ").as_deref(), Some("2001:db8::1"));
        assert_eq!(xff("not an address"), None);
        assert_eq!(forwarded_client(None, None), None);
    }
}
