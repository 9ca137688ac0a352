//! Breaks in a shared log's continuity ([`Notice`]) reach every
//! connection in order with the commits: a stream is told `reset` and then
//! gets the new epoch's messages from 1 on (its memory of the last id
//! given would otherwise skip them), or told how many it `missed`; a held
//! long poll is answered from its own cursor.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use super::memory_tests::{open, upgrade, Sink, T0};
use super::Engine;
use crate::config::Config;
use crate::hub::{
    Commit, History, Hub, HubError, Kind, Log, Notice, Ticket, DEFAULT_HISTORY_MEMORY,
    DEFAULT_MAX_TOPICS,
};
use crate::time::Instant;

enum Item {
    Commit(Commit),
    Notice(Notice),
}

/// What the test tells the log to hand out, and the epoch and head it
/// reports.
struct Script {
    items: VecDeque<Item>,
    epoch: String,
    head: u64,
}

/// A log whose commits and notices the test scripts (messages committed
/// elsewhere, as on a shared log).
struct ScriptedLog {
    /// A copy of `script.epoch` (the trait lends a `&str`).
    epoch: String,
    history: History,
    script: Rc<RefCell<Script>>,
}

impl ScriptedLog {
    fn front_is_notice(&self) -> Option<bool> {
        match self.script.borrow().items.front()? {
            Item::Notice(_) => Some(true),
            Item::Commit(_) => Some(false),
        }
    }
}

impl Log for ScriptedLog {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn head(&self) -> u64 {
        self.script.borrow().head
    }

    fn append(&mut self, _: Ticket, _: &str, _: Kind, _: &str, _: Instant) -> Result<(), HubError> {
        Err(HubError::StorageFull)
    }

    fn poll_commit(&mut self) -> Option<Commit> {
        if self.front_is_notice()? {
            return None;
        }
        match self.script.borrow_mut().items.pop_front()? {
            Item::Commit(c) => Some(c),
            Item::Notice(_) => None,
        }
    }

    fn poll_notice(&mut self) -> Option<Notice> {
        self.epoch = self.script.borrow().epoch.clone();
        if !self.front_is_notice()? {
            return None;
        }
        match self.script.borrow_mut().items.pop_front()? {
            Item::Notice(n) => Some(n),
            Item::Commit(_) => None,
        }
    }

    fn history(&self) -> &History {
        &self.history
    }

    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    fn pending(&self) -> usize {
        0
    }
}

struct Rig {
    engine: Engine,
    io: Sink,
    script: Rc<RefCell<Script>>,
}

impl Rig {
    fn new() -> Rig {
        let script = Rc::new(RefCell::new(Script {
            items: VecDeque::new(),
            epoch: "e1".into(),
            head: 0,
        }));
        let log = ScriptedLog {
            epoch: "e1".into(),
            history: History::new(
                16,
                Duration::from_secs(60),
                DEFAULT_HISTORY_MEMORY,
                DEFAULT_MAX_TOPICS,
            ),
            script: script.clone(),
        };
        let hub = Hub::new(Box::new(log), DEFAULT_MAX_TOPICS);
        Rig {
            engine: Engine::with_hub(Config::default(), hub, T0),
            io: Sink::default(),
            script,
        }
    }

    /// Commits a message of another node: `seq` in the current epoch.
    fn foreign(&mut self, seq: u64, topic: &str, data: &str) {
        let epoch = self.script.borrow().epoch.clone();
        let id = crate::ids::format_id(&epoch, seq).into_boxed_str();
        let log = self.engine.hub_mut().log_mut();
        let outcome = log
            .history_mut()
            .append(topic, seq, id, Kind::Text, data, T0);
        let mut script = self.script.borrow_mut();
        script.head = seq;
        script.items.push_back(Item::Commit(Commit {
            ticket: None,
            outcome,
        }));
    }

    /// The log starts epoch `epoch`, empty, and says so.
    fn reset_to(&mut self, epoch: &str) {
        let log = self.engine.hub_mut().log_mut();
        let emptied = log.history().emptied();
        *log.history_mut() = emptied;
        let mut script = self.script.borrow_mut();
        script.epoch = epoch.into();
        script.head = 0;
        script.items.push_back(Item::Notice(Notice::Reset {
            epoch: epoch.into(),
        }));
    }

    fn notice(&mut self, notice: Notice) {
        self.script
            .borrow_mut()
            .items
            .push_back(Item::Notice(notice));
    }

    /// The log has things to hand out: the engine takes them and writes.
    fn deliver(&mut self) {
        self.engine.handle_log(T0, &mut self.io);
        self.engine.end_turn(T0, &mut self.io);
    }

    fn open(&mut self, request: &str) -> usize {
        open(&mut self.engine, &mut self.io, request)
    }

    fn text(&self, conn: usize) -> String {
        let bytes = self.io.written.get(&conn).map_or(&[][..], |v| v);
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[test]
fn an_sse_stream_is_told_reset_then_gets_the_new_epochs_messages_from_one() {
    let mut rig = Rig::new();
    let sse = rig.open("GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n");
    rig.foreign(1, "a", "old-1");
    rig.foreign(2, "a", "old-2");
    rig.deliver();
    // The log's store lost everything: epoch e2 starts from 1 again.
    rig.reset_to("e2");
    rig.deliver();
    rig.foreign(1, "a", "new-1");
    rig.deliver();
    let out = rig.text(sse);
    let reset = out
        .find("event: reset\nid: e2-0\ndata: true\n\n")
        .unwrap_or_else(|| panic!("reset told, its id the new epoch's start: {out:?}"));
    let new = out.find("id: e2-1\ndata: new-1\n").expect("not skipped");
    assert!(
        out.find("data: old-2").unwrap() < reset && reset < new,
        "{out}"
    );
    assert_eq!(
        rig.engine
            .stats()
            .get(crate::stats::Transport::Sse)
            .resets_reported,
        1
    );
}

#[test]
fn a_websocket_is_told_reset_then_gets_the_new_epochs_messages() {
    let mut rig = Rig::new();
    let ws = rig.open(&upgrade("/ws?topic=a"));
    rig.foreign(1, "a", "old-1");
    rig.foreign(2, "a", "old-2");
    rig.reset_to("e2");
    rig.deliver();
    rig.foreign(1, "a", "new-1");
    rig.deliver();
    let out = rig.text(ws);
    let reset = out.find("{\"reset\":true}").expect("reset frame");
    let new = out
        .find("\"id\":\"e2-1\"")
        .expect("the new epoch's first message");
    assert!(
        out.find("\"id\":\"e1-2\"").unwrap() < reset && reset < new,
        "{out}"
    );
}

#[test]
fn every_stream_is_told_what_it_missed_whatever_its_topic() {
    let mut rig = Rig::new();
    let a = rig.open("GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n");
    let b = rig.open("GET /events?topic=b HTTP/1.1\r\nHost: t\r\n\r\n");
    let ws = rig.open(&upgrade("/ws?topic=b"));
    rig.foreign(1, "a", "one");
    // 2..=6 were trimmed before this node read them.
    rig.notice(Notice::Missed {
        epoch: "e1".into(),
        count: 5,
        upto: 6,
    });
    rig.foreign(7, "a", "seven");
    rig.deliver();
    let out = rig.text(a);
    let missed = out
        .find("event: missed\nid: e1-6\ndata: 5\n\n")
        .expect("told");
    assert!(out.find("one").unwrap() < missed && missed < out.find("seven").unwrap());
    assert!(rig.text(b).contains("event: missed\nid: e1-6\ndata: 5\n"));
    assert!(rig.text(ws).contains("{\"missed\":5}"));
}

#[test]
fn a_held_long_poll_is_answered_reset_when_the_epoch_changes() {
    let mut rig = Rig::new();
    rig.foreign(1, "a", "old-1");
    rig.deliver();
    let poll = rig.open("GET /long-poll?topic=a&since=e1-1&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(rig.text(poll), "", "held");
    // The new epoch has already passed the held cursor's number when the
    // engine hears of it: the hold's own epoch tells them apart.
    rig.reset_to("e2");
    rig.foreign(1, "a", "new-1");
    rig.foreign(2, "a", "new-2");
    rig.deliver();
    let out = rig.text(poll);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"reset\":true"), "{out}");
    assert!(out.contains("\"id\":\"e2-1\""), "{out}");
    assert!(out.contains("\"next\":\"e2-2\""), "{out}");
}

#[test]
fn a_held_long_poll_is_answered_with_the_gap_it_missed() {
    let mut rig = Rig::new();
    rig.foreign(1, "a", "old-1");
    rig.deliver();
    let poll = rig.open("GET /long-poll?topic=a&since=e1-1&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n");
    rig.engine
        .hub_mut()
        .log_mut()
        .history_mut()
        .record_gap(2, 4);
    rig.notice(Notice::Missed {
        epoch: "e1".into(),
        count: 3,
        upto: 4,
    });
    rig.deliver();
    let out = rig.text(poll);
    assert!(out.contains("\"missed\":3"), "{out}");
}
