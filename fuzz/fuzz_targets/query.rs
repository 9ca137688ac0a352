//! Query strings and the parameters read from them: `Query::parse`,
//! `topics`, `cursor` (`Cursor::parse`), `timeout`.
//!
//! Oracle: accepted, or a `ParamError` naming the parameter; valid topics
//! only, at most 32, no duplicates; a timeout never over the maximum; a
//! cursor formatted as `E-N` (or `0`) parses back to itself.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pushlab::config::MAX_TOPICS_PER_SUBSCRIBER;
use pushlab::hub::{is_valid_topic, Cursor};
use pushlab::wire::query::Query;

fn format(c: &Cursor) -> Option<String> {
    match c {
        Cursor::Now => None,
        Cursor::All => Some("0".into()),
        Cursor::After { epoch, seq } => Some(format!("{epoch}-{seq}")),
    }
}

fn round_trip(c: &Cursor) {
    if let Some(s) = format(c) {
        assert_eq!(
            Cursor::parse(&s).as_ref(),
            Some(c),
            "{s} does not parse back"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data);
    if let Some(c) = Cursor::parse(&q) {
        round_trip(&c);
    }
    let query = match Query::parse(&q) {
        Ok(query) => query,
        Err(e) => {
            assert!(e.0.contains("query parameter"), "{e}");
            return;
        }
    };
    match query.topics() {
        Ok(topics) => {
            assert!(!topics.is_empty() && topics.len() <= MAX_TOPICS_PER_SUBSCRIBER);
            for (i, t) in topics.iter().enumerate() {
                assert!(is_valid_topic(t), "{t:?}");
                assert!(!topics[..i].contains(t), "duplicate {t:?}");
            }
            if let Ok(one) = query.single_topic() {
                assert_eq!(topics.len(), 1);
                assert_eq!(one, topics[0]);
            }
        }
        Err(e) => assert!(e.0.contains("topic"), "{e}"),
    }
    for name in ["since", "last_event_id"] {
        match query.cursor(name) {
            Ok(Some(c)) => round_trip(&c),
            Ok(None) => assert!(query.get(name).is_none_or(str::is_empty)),
            Err(e) => assert!(e.0.contains(name), "{e}"),
        }
    }
    let max = Duration::from_secs(120);
    match query.timeout(Duration::from_secs(30), max) {
        Ok(d) => assert!(d <= max),
        Err(e) => assert!(e.0.contains("timeout"), "{e}"),
    }
});
