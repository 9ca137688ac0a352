//! Topic patterns: what a token's `pushlab.subscribe` / `pushlab.publish`
//! entries and `--public-topic` name.
//!
//! A pattern is either an exact topic name (`news`) or a prefix ending in
//! `*` (`user.42.*`), which matches every topic that starts with the prefix.
//! The prefix is plain bytes, not segments: `user.4*` matches `user.42` and
//! `user.4x` alike, so end a prefix with a separator (`.`) to keep it to one
//! segment. `*` alone matches every topic. `*` anywhere but at the end is
//! refused, and so is anything outside the topic alphabet
//! `[A-Za-z0-9._~-]` — the same rule topics follow, so a pattern can never
//! name something a topic cannot be.

use std::fmt;
use std::str::FromStr;

use crate::config::MAX_TOPIC_LEN;
use crate::hub::is_valid_topic;

/// An exact topic or a prefix pattern (`user.42.*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicPattern {
    /// Matches this topic only.
    Exact(Box<str>),
    /// Matches every topic starting with this prefix (written `prefix*`);
    /// the empty prefix (`*`) matches every topic.
    Prefix(Box<str>),
}

/// A string that is neither a topic name nor a prefix pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError;

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a topic pattern: expected a topic name (1-{MAX_TOPIC_LEN} bytes of \
             [A-Za-z0-9._~-]) or a prefix of one followed by a final `*`"
        )
    }
}

impl std::error::Error for PatternError {}

impl TopicPattern {
    /// Reads `news` or `user.42.*`.
    pub fn parse(s: &str) -> Result<TopicPattern, PatternError> {
        match s.strip_suffix('*') {
            // A prefix shorter than the longest topic: a pattern that could
            // match nothing is a mistake worth refusing.
            Some(prefix)
                if prefix.is_empty()
                    || (prefix.len() < MAX_TOPIC_LEN && is_valid_topic(prefix)) =>
            {
                Ok(TopicPattern::Prefix(prefix.into()))
            }
            Some(_) => Err(PatternError),
            None if is_valid_topic(s) => Ok(TopicPattern::Exact(s.into())),
            None => Err(PatternError),
        }
    }

    /// Whether `topic` is one this pattern names.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::Exact(name) => **name == *topic,
            TopicPattern::Prefix(prefix) => topic.starts_with(&**prefix),
        }
    }
}

impl FromStr for TopicPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicPattern::parse(s)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicPattern::Exact(name) => f.write_str(name),
            TopicPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// Whether any of `patterns` matches `topic`.
pub fn any_matches(patterns: &[TopicPattern], topic: &str) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> TopicPattern {
        TopicPattern::parse(s).unwrap()
    }

    #[test]
    fn exact_names_match_only_themselves() {
        assert!(p("news").matches("news"));
        assert!(!p("news").matches("news2"));
        assert!(!p("news").matches("new"));
    }

    #[test]
    fn prefixes_match_by_bytes_not_segments() {
        let user = p("user.42.*");
        assert!(user.matches("user.42.inbox"));
        assert!(user.matches("user.42."));
        assert!(!user.matches("user.42"));
        assert!(!user.matches("user.420"));
        assert!(p("user.4*").matches("user.420"));
        assert!(p("*").matches("anything"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "a*b",
            "**",
            "*a",
            "user/1",
            "a b",
            "caf\u{e9}",
            &"x".repeat(129),
            &format!("{}*", "x".repeat(128)),
        ] {
            assert_eq!(TopicPattern::parse(bad), Err(PatternError), "{bad:?}");
        }
        assert!(TopicPattern::parse(&"x".repeat(128)).is_ok());
        assert!(TopicPattern::parse(&format!("{}*", "x".repeat(127))).is_ok());
    }

    fn topic() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~-]{1,40}"
    }

    proptest! {
        #[test]
        fn every_topic_is_an_exact_pattern_of_itself(t in topic()) {
            let pat = p(&t);
            prop_assert!(pat.matches(&t));
            prop_assert_eq!(pat.to_string(), t);
        }

        #[test]
        fn a_prefix_matches_exactly_the_topics_that_start_with_it(
            prefix in "[A-Za-z0-9._~-]{0,20}", t in topic()
        ) {
            let pat = p(&format!("{prefix}*"));
            prop_assert_eq!(pat.matches(&t), t.starts_with(&prefix));
            let extended = format!("{prefix}{t}");
            prop_assert!(pat.matches(&extended));
        }

        #[test]
        fn an_exact_pattern_matches_no_other_topic(a in topic(), b in topic()) {
            prop_assert_eq!(p(&a).matches(&b), a == b);
        }

        #[test]
        fn display_round_trips(s in "[A-Za-z0-9._~*-]{0,30}") {
            if let Ok(pat) = TopicPattern::parse(&s) {
                prop_assert_eq!(pat.to_string(), s.clone());
                prop_assert_eq!(TopicPattern::parse(&pat.to_string()), Ok(pat));
            }
        }
    }
}
