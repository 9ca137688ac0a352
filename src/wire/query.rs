//! Query strings (`application/x-www-form-urlencoded`, WHATWG URL §5.1) and
//! the parameters pushlab reads from them: topics, cursors and timeouts.
//!
//! Every parameter error names the parameter, so the `400` body says which
//! one was wrong.

use std::borrow::Cow;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::config::{parse_duration, MAX_TOPICS_PER_SUBSCRIBER};
use crate::ids::{is_valid_topic, Cursor};

/// A bad query parameter → `400` with this text as the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError(pub String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamError {}

/// Decoded `name=value` pairs of a query string, in order. Names and values
/// with nothing to decode borrow from the request (no allocation each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

fn decode(s: &str) -> Result<Cow<'_, str>, ParamError> {
    // Most values (topics, ids, timeouts) have nothing to decode.
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(s));
    }
    let plus: Cow<str> = if s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    percent_decode_str(&plus)
        .decode_utf8()
        .map(|d| Cow::Owned(d.into_owned()))
        .map_err(|_| ParamError(format!("query parameter `{s}` is not UTF-8 once decoded")))
}

impl<'a> Query<'a> {
    /// Splits and percent-decodes `q` (the part after `?`).
    pub fn parse(q: &'a str) -> Result<Query<'a>, ParamError> {
        let mut pairs = Vec::new();
        for part in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Query { pairs })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &**v)
    }

    /// The topics of `topic=a,b,c` (also `topic=a&topic=b`): at least one, at
    /// most [`MAX_TOPICS_PER_SUBSCRIBER`], each valid, duplicates removed.
    pub fn topics(&self) -> Result<Vec<Rc<str>>, ParamError> {
        let mut topics: Vec<Rc<str>> = Vec::new();
        for (_, value) in self.pairs.iter().filter(|(k, _)| k == "topic") {
            for name in value.split(',') {
                if !is_valid_topic(name) {
                    return Err(ParamError(format!(
                        "topic `{name}` must be 1-128 bytes of A-Z a-z 0-9 . _ ~ -"
                    )));
                }
                if !topics.iter().any(|t| &**t == name) {
                    topics.push(Rc::from(name));
                }
            }
        }
        if topics.is_empty() {
            return Err(ParamError("missing `topic` parameter".into()));
        }
        if topics.len() > MAX_TOPICS_PER_SUBSCRIBER {
            return Err(ParamError(format!(
                "at most {MAX_TOPICS_PER_SUBSCRIBER} topics per subscriber"
            )));
        }
        Ok(topics)
    }

    /// The single topic a publish names.
    pub fn single_topic(&self) -> Result<Rc<str>, ParamError> {
        let topics = self.topics()?;
        match topics.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(ParamError("publish takes exactly one topic".into())),
        }
    }

    /// The cursor from `name` (`since`, `last_event_id`); absent means
    /// [`Cursor::Now`].
    pub fn cursor(&self, name: &str) -> Result<Option<Cursor>, ParamError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => Cursor::parse(v).map(Some).ok_or_else(|| {
                ParamError(format!(
                    "`{name}` must be 0 or a message id like E-42, not `{v}`"
                ))
            }),
        }
    }

    /// `timeout=S` for long polls: seconds (or a duration like `500ms`),
    /// defaulting to `default` and at most `max`.
    pub fn timeout(&self, default: Duration, max: Duration) -> Result<Duration, ParamError> {
        match self.get("timeout") {
            None => Ok(default.min(max)),
            Some(v) => {
                let d = parse_duration(v).map_err(|_| {
                    ParamError(format!(
                        "`timeout` must be seconds like 30 or 500ms, not `{v}`"
                    ))
                })?;
                Ok(d.min(max))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_percent_and_plus_decoded() {
        let q = Query::parse("topic=a%2Cb&x=1+2&flag&=v").unwrap();
        assert_eq!(q.get("topic"), Some("a,b"));
        assert_eq!(q.get("x"), Some("1 2"));
        assert_eq!(q.get("flag"), Some(""));
        assert!(Query::parse("a=%FF").is_err());
    }

    #[test]
    fn topics_accept_commas_and_repeats_and_refuse_bad_names() {
        let q = Query::parse("topic=a,b&topic=c,a").unwrap();
        let topics = q.topics().unwrap();
        let t: Vec<&str> = topics.iter().map(|t| &**t).collect();
        assert_eq!(t, ["a", "b", "c"]);
        assert!(Query::parse("").unwrap().topics().is_err());
        assert!(Query::parse("topic=a,,b").unwrap().topics().is_err());
        assert!(Query::parse("topic=a%20b").unwrap().topics().is_err());
        let many = (0..33)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(Query::parse(&format!("topic={many}"))
            .unwrap()
            .topics()
            .is_err());
    }

    #[test]
    fn cursor_and_timeout_errors_name_the_parameter() {
        let q = Query::parse("since=abc&timeout=soon").unwrap();
        assert!(q.cursor("since").unwrap_err().0.contains("`since`"));
        let max = Duration::from_secs(120);
        assert!(q
            .timeout(Duration::from_secs(30), max)
            .unwrap_err()
            .0
            .contains("`timeout`"));
        let q = Query::parse("timeout=500").unwrap();
        assert_eq!(q.timeout(Duration::from_secs(30), max), Ok(max));
        let q = Query::parse("timeout=2").unwrap();
        assert_eq!(
            q.timeout(Duration::from_secs(30), max),
            Ok(Duration::from_secs(2))
        );
    }
}
