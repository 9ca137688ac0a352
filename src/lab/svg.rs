//! The chart of a run (`pushlab compare --svg FILE`): publish→deliver
//! latency and bytes on the wire per update, by transport. Hand-written SVG
//! 1.1, no script, no external font, so it renders the same on GitHub and in
//! a browser.
//!
//! Left panel: latency p50 as a bar and p99 as a whisker, on a log scale
//! (short polling sits orders of magnitude above the others). Right panel:
//! bytes per update, server→client and client→server stacked, on a linear
//! scale.

use std::fmt::Write as _;

use super::report::{num, Report};

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 360.0;
const PANEL: f64 = WIDTH / 2.0;
/// Plot area inside a panel: left, top, right and bottom margins.
const LEFT: f64 = 62.0;
const TOP: f64 = 48.0;
const RIGHT: f64 = 18.0;
const BOTTOM: f64 = 56.0;

const DOWN: &str = "#3b6ea5";
const UP: &str = "#e0a030";
const P99: &str = "#202020";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders `report` as an SVG document.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<title>{}</title>
"##,
        esc(&report.title())
    );
    latency_panel(&mut out, report, 0.0);
    bytes_panel(&mut out, report, PANEL);
    out.push_str("</svg>\n");
    out
}

/// Where the bars of `n` transports go in a panel starting at `x0`.
fn slots(n: usize, x0: f64) -> impl Iterator<Item = (f64, f64)> {
    let plot = PANEL - LEFT - RIGHT;
    let step = plot / n.max(1) as f64;
    let bar = (step * 0.55).min(60.0);
    (0..n).map(move |i| (x0 + LEFT + step * (i as f64 + 0.5) - bar / 2.0, bar))
}

fn frame(out: &mut String, x0: f64, title: &str, names: &[&str]) {
    let _ = writeln!(
        out,
        r##"<text x="{}" y="24" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"##,
        x0 + PANEL / 2.0,
        esc(title)
    );
    let bottom = HEIGHT - BOTTOM;
    let _ = writeln!(
        out,
        r##"<line x1="{0}" y1="{TOP}" x2="{0}" y2="{bottom}" stroke="#000"/><line x1="{0}" y1="{bottom}" x2="{1}" y2="{bottom}" stroke="#000"/>"##,
        x0 + LEFT,
        x0 + PANEL - RIGHT
    );
    for ((x, bar), name) in slots(names.len(), x0).zip(names) {
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle">{}</text>"##,
            x + bar / 2.0,
            bottom + 18.0,
            esc(name)
        );
    }
}

fn gridline(out: &mut String, x0: f64, y: f64, label: &str) {
    let _ = writeln!(
        out,
        r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
        x0 + LEFT,
        x0 + PANEL - RIGHT,
        x0 + LEFT - 6.0,
        y + 4.0,
        esc(label)
    );
}

fn latency_panel(out: &mut String, report: &Report, x0: f64) {
    let names: Vec<&str> = report.rows.iter().map(|r| r.name()).collect();
    frame(out, x0, "publish → deliver latency (ms, log)", &names);
    let lat: Vec<Option<(f64, f64)>> = report
        .rows
        .iter()
        .map(|r| {
            r.latency
                .map(|l| (l.p50.as_secs_f64() * 1e3, l.p99.as_secs_f64() * 1e3))
        })
        .collect();
    let values: Vec<f64> = lat.iter().flatten().flat_map(|&(a, b)| [a, b]).collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(0.01);
    let hi = values.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (lo_exp, hi_exp) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let bottom = HEIGHT - BOTTOM;
    let y_of = |v: f64| {
        let f = (v.max(10f64.powi(lo_exp)).log10() - lo_exp as f64) / (hi_exp - lo_exp) as f64;
        bottom - f * (bottom - TOP)
    };
    for e in lo_exp..=hi_exp {
        let v = 10f64.powi(e);
        gridline(out, x0, y_of(v), &num(v));
    }
    for ((x, bar), l) in slots(report.rows.len(), x0).zip(&lat) {
        let Some((p50, p99)) = *l else {
            continue;
        };
        let y = y_of(p50);
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{:.1}" fill="{DOWN}"><title>p50 {} ms</title></rect>"##,
            bottom - y,
            num(p50)
        );
        let (cx, y99) = (x + bar / 2.0, y_of(p99));
        let _ = writeln!(
            out,
            r##"<line x1="{cx:.1}" y1="{y:.1}" x2="{cx:.1}" y2="{y99:.1}" stroke="{P99}"/><line x1="{:.1}" y1="{y99:.1}" x2="{:.1}" y2="{y99:.1}" stroke="{P99}"><title>p99 {} ms</title></line>"##,
            cx - bar / 4.0,
            cx + bar / 4.0,
            num(p99)
        );
        let _ = writeln!(
            out,
            r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
            y99 - 5.0,
            num(p50)
        );
    }
    legend(out, x0, &[(DOWN, "p50"), (P99, "p99 (whisker)")]);
}

fn bytes_panel(out: &mut String, report: &Report, x0: f64) {
    let names: Vec<&str> = report.rows.iter().map(|r| r.name()).collect();
    frame(out, x0, "bytes on the wire per update", &names);
    let per: Vec<(f64, f64)> = report
        .rows
        .iter()
        .map(|r| {
            let d = r.delivered.max(1) as f64;
            (r.bytes_down as f64 / d, r.bytes_up as f64 / d)
        })
        .collect();
    let max = per.iter().map(|(d, u)| d + u).fold(1.0, f64::max);
    let step = nice_step(max / 5.0);
    let top_value = (max / step).ceil() * step;
    let bottom = HEIGHT - BOTTOM;
    let y_of = |v: f64| bottom - v / top_value * (bottom - TOP);
    let mut v = 0.0;
    while v <= top_value + step / 2.0 {
        gridline(out, x0, y_of(v), &num(v));
        v += step;
    }
    for ((x, bar), &(down, up)) in slots(report.rows.len(), x0).zip(&per) {
        let (yd, yu) = (y_of(down), y_of(down + up));
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{yd:.1}" width="{bar:.1}" height="{:.1}" fill="{DOWN}"><title>server→client {} B</title></rect>"##,
            bottom - yd,
            num(down)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{yu:.1}" width="{bar:.1}" height="{:.1}" fill="{UP}"><title>client→server {} B</title></rect>"##,
            yd - yu,
            num(up)
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
            x + bar / 2.0,
            yu - 5.0,
            num(down + up)
        );
    }
    legend(out, x0, &[(DOWN, "server→client"), (UP, "client→server")]);
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

fn legend(out: &mut String, x0: f64, items: &[(&str, &str)]) {
    let y = HEIGHT - 16.0;
    let mut x = x0 + LEFT;
    for (color, label) in items {
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{y:.1}">{}</text>"##,
            y - 9.0,
            x + 14.0,
            esc(label)
        );
        x += 24.0 + 7.0 * label.chars().count() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(13.0), 20.0);
        assert_eq!(nice_step(41.0), 50.0);
        assert_eq!(nice_step(60.0), 100.0);
    }
}
