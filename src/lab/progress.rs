//! The progress line `pushlab compare` prints on stderr while it runs.

use std::io::Write as _;
use std::time::Duration;

use super::driver::Driver;
use crate::timers::Instant;

/// Progress on stderr: a line rewritten in place on a terminal, a line
/// per phase otherwise.
pub struct Progress {
    pub on: bool,
    /// stderr is a terminal: rewrite one line in place.
    pub live: bool,
    pub last: Option<Instant>,
    /// Between the first publish and the end of the drain.
    pub ticking: bool,
}

impl Progress {
    pub fn phase(&mut self, what: &str) {
        if !self.on {
            return;
        }
        if self.live {
            eprint!("\r\x1b[2K{what}");
        } else {
            eprintln!("{what}");
        }
    }

    pub fn tick(&mut self, d: &Driver, t0: Instant, total: u64) {
        if !self.on || !self.live || !self.ticking {
            return;
        }
        let now = d.now();
        if self
            .last
            .is_some_and(|l| now.saturating_since(l) < Duration::from_millis(250))
        {
            return;
        }
        self.last = Some(now);
        let mut line = format!(
            "{:5.1} s  published {}/{}  up to date:",
            now.saturating_since(t0).as_secs_f64(),
            d.sent,
            total
        );
        for t in super::Column::of_run(&super::TRANSPORTS, true) {
            let (done, all) = d.complete_count(t);
            if all > 0 {
                line.push_str(&format!("  {} {done}/{all}", t.display_name()));
            }
        }
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
    }

    pub fn end(&mut self) {
        if self.on && self.live {
            eprintln!();
        }
    }
}
