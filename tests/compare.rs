//! `pushlab compare` against real servers: every client kind receives every
//! message exactly once, the lab's counts are the server's `/stats` for the
//! same run, and the outputs (JSON, SVG, the CLI) are complete.
//!
//! Runs are short (about a second of publishing, fast polls) and wait on
//! events, not on fixed sleeps: the lab itself drains until every
//! subscriber is up to date.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestServer;
use pushlab::config::Config;
use pushlab::lab::payload::Kind;
use pushlab::lab::{self, Column, Options, Report, TRANSPORTS};
use pushlab::stats::Transport;

fn quick() -> Options {
    Options {
        subscribers: 3,
        rate: 20.0,
        size: 64,
        duration: Duration::from_secs(1),
        poll_interval: Duration::from_millis(100),
        ..Options::default()
    }
}

fn run(opts: Options) -> Report {
    lab::run(&opts).unwrap_or_else(|e| panic!("lab run failed: {e}"))
}

fn assert_exactly_once(report: &Report) {
    for row in &report.rows {
        let name = row.transport.name();
        assert_eq!(row.errors, 0, "{name}: {:?}", row.first_error);
        assert_eq!(row.lost, 0, "{name} lost messages");
        assert_eq!(row.duplicates, 0, "{name} got duplicates");
        assert_eq!(row.out_of_order, 0, "{name} got messages out of order");
        assert_eq!(row.delivered, row.expected, "{name}");
        assert_eq!(row.received, row.expected, "{name}");
        assert_eq!(row.missed_messages, 0, "{name}");
    }
}

fn assert_agrees_with_stats(report: &Report) {
    for row in &report.rows {
        let check = row.check.as_ref().expect("a /stats check");
        assert!(
            check.mismatches.is_empty(),
            "{}: {:?}",
            row.transport.name(),
            check.mismatches
        );
    }
}

#[test]
fn every_client_kind_receives_every_message_exactly_once() {
    let report = run(quick());
    assert_eq!(report.published, 20);
    let kinds: Vec<Column> = report.rows.iter().map(|r| r.column()).collect();
    assert_eq!(kinds, Column::of_run(&TRANSPORTS, true));
    assert_eq!(kinds.last(), Some(&Column::WS_DEFLATE));
    assert_exactly_once(&report);
    for row in &report.rows {
        let lat = row.latency.expect("latencies");
        assert!(lat.p50 <= lat.p99 && lat.p99 <= lat.max);
    }
}

#[test]
fn the_lab_counts_are_the_servers_stats_for_the_same_run() {
    let report = run(quick());
    assert_agrees_with_stats(&report);
    for row in &report.rows {
        assert!(row.server_cpu.is_some(), "embedded servers report CPU time");
        assert!(row.bytes_up > 0 && row.bytes_down > 0);
    }
    let by = |t: Transport| report.rows.iter().find(|r| r.transport == t).unwrap();
    // The streams use one request and one socket per subscriber for the run.
    for row in report
        .rows
        .iter()
        .filter(|r| matches!(r.transport, Transport::Sse | Transport::Ws))
    {
        assert_eq!(row.requests, 3, "{}", row.name());
        assert_eq!(row.sockets_opened, 3, "{}", row.name());
    }
    // A long poll is answered once per message at this rate, plus the one
    // still parked at the end.
    assert!(by(Transport::LongPoll).requests >= 20 * 3);
}

#[test]
fn without_keep_alive_every_poll_opens_a_socket_and_the_counts_still_agree() {
    let report = run(Options {
        keep_alive: false,
        transports: vec![Transport::Poll, Transport::LongPoll],
        ..quick()
    });
    assert_exactly_once(&report);
    assert_agrees_with_stats(&report);
    for row in &report.rows {
        assert_eq!(row.sockets_opened, row.requests, "{}", row.transport.name());
        assert_eq!(row.reused, 0, "no update arrives on a used socket");
    }
}

#[test]
fn sse_streams_cut_by_the_server_resume_with_last_event_id_and_lose_nothing() {
    let report = run(Options {
        transports: vec![Transport::Sse, Transport::Ws],
        duration: Duration::from_millis(1500),
        sse_max_lifetime: Some(Duration::from_millis(400)),
        sse_retry: Some(Duration::from_millis(50)),
        ..quick()
    });
    assert_exactly_once(&report);
    assert_agrees_with_stats(&report);
    assert_eq!(report.rows.len(), 3, "SSE, WebSocket, WebSocket + deflate");
    let sse = &report.rows[0];
    assert!(sse.reconnects >= 3, "reconnections: {}", sse.reconnects);
    assert_eq!(sse.sockets_opened, sse.requests);
    assert_eq!(report.rows[1].reconnects, 0);
}

#[test]
fn a_running_server_can_be_measured_by_url() {
    let srv = TestServer::start(Config::default());
    let report = run(Options {
        url: Some(format!("http://{}/", srv.addr)),
        ..quick()
    });
    assert_exactly_once(&report);
    assert_agrees_with_stats(&report);
    assert!(report.rows.iter().all(|r| r.server_cpu.is_none()));
    assert!(report.to_table().contains("n/a"));
    // Both WebSocket columns are this one server's `ws`: compared summed.
    // (64-byte messages are below the server's compression threshold.)
    let ws: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.transport == Transport::Ws)
        .collect();
    assert_eq!(ws.len(), 2);
    assert!(ws[1].deflate && ws[1].deflate_declined == 0);
    assert!(
        report.to_table().contains("--payload json"),
        "the padding flatters compression"
    );
}

/// A realistic JSON message (a dashboard update, `--payload json`) over
/// WebSocket with and without permessage-deflate: every message arrives
/// once, the compressed column's messages really came compressed and were
/// inflated, and it costs fewer bytes on the wire per update.
#[test]
fn compressed_websocket_carries_a_json_update_in_fewer_bytes_and_loses_nothing() {
    let report = run(Options {
        transports: vec![Transport::Ws],
        payload: Kind::Json,
        size: 400,
        ..quick()
    });
    assert_exactly_once(&report);
    assert_agrees_with_stats(&report);
    let [plain, deflate] = &report.rows[..] else {
        panic!("two rows: {:?}", report.rows.len())
    };
    assert!(!plain.deflate && deflate.deflate);
    assert_eq!(plain.compressed, 0);
    assert_eq!(
        deflate.compressed, deflate.received,
        "every message compressed"
    );
    assert_eq!(deflate.deflate_declined, 0);
    let per = |r: &pushlab::lab::report::Row| r.bytes_down as f64 / r.delivered as f64;
    assert!(
        per(deflate) < per(plain) * 0.85,
        "compressed {} B vs plain {} B per update",
        per(deflate),
        per(plain)
    );
    let v = report.to_json();
    assert_eq!(v["settings"]["payload"], "json");
    assert_eq!(v["transports"]["ws_deflate"]["name"], "WebSocket + deflate");
    assert_eq!(v["transports"]["ws_deflate"]["lost"], 0);
    assert!(report.to_table().contains("WebSocket + deflate"));
    assert!(!report.to_table().contains("--payload json"));
    let svg = lab::svg::render(&report);
    assert!(svg.contains("WebSocket + deflate"));
}

#[test]
fn a_server_that_declines_compression_leaves_the_column_uncompressed_and_says_so() {
    let srv = TestServer::start(Config {
        ws_deflate: false,
        ..Config::default()
    });
    let report = run(Options {
        url: Some(format!("http://{}/", srv.addr)),
        transports: vec![Transport::Ws],
        ..quick()
    });
    assert_exactly_once(&report);
    let deflate = &report.rows[1];
    assert_eq!((deflate.compressed, deflate.deflate_declined), (0, 3));
    assert!(report.to_table().contains("declined permessage-deflate"));
}

#[test]
fn the_json_output_parses_and_has_every_row() {
    let report = run(Options {
        subscribers: 2,
        ..quick()
    });
    let text = report.to_json().to_string();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["published"], 20);
    for c in Column::of_run(&TRANSPORTS, true) {
        let row = &v["transports"][c.key()];
        for key in [
            "latency_ms",
            "requests_per_update",
            "empty_responses_per_update",
            "sockets_per_update",
            "mean_socket_lifetime_s",
            "reused_fraction",
            "bytes_per_update",
            "server_cpu_us_per_update",
            "lost",
            "duplicates",
            "direction",
            "reconnects",
            "stats_check",
        ] {
            assert!(!row[key].is_null(), "{}: no {key} in {row}", c.key());
        }
        assert_eq!(row["lost"], 0);
        assert_eq!(row["stats_check"]["agrees"], true, "{row}");
    }
    let md = report.to_markdown();
    assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 15);
    let svg = lab::svg::render(&report);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn the_cli_prints_json_and_writes_the_chart() {
    let dir = std::env::temp_dir().join(format!("pushlab-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("chart.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args([
            "compare",
            "--quiet",
            "--format",
            "json",
            "--subscribers",
            "2",
            "--rate",
            "10",
            "--duration",
            "500ms",
            "--poll-interval",
            "100ms",
            "--keep-alive",
            "off",
            "--transports",
            "poll,ws",
            "--svg",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["settings"]["keep_alive"], false);
    let names: Vec<&String> = v["transports"].as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 3, "poll, ws and ws_deflate: {names:?}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("</svg>"));
    let _ = std::fs::remove_dir_all(&dir);

    let bad = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["compare", "--transports", "pigeon"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pigeon"));
}
