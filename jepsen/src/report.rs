//! Run reports: `results.json` (machine-readable), `summary.txt` (for humans and CI logs) and
//! `index.html` (a self-contained page: verdicts first, then latency and throughput plots with
//! the nemesis intervals shaded the way Jepsen shades them).
//!
//! The page uses inline SVG only — no scripts, no external resources — so it can be archived
//! with the run and opened anywhere. Colours follow Jepsen: ok `#81BFFC`, info `#FFA400`,
//! fail `#FF1E90`; fault bands partition `#E9DCA0`, kill `#E9A4A0`, pause `#A0B1E9`, clock
//! `#A0E9E3`, packet `#D1E8A0`, corruption `#99F2E2`, membership `#E9A0E6`/`#ACA0E9`.
//! Failing windows reported by checkers are outlined in red on both plots.

use crate::checker::{overall, CheckResult, OpCounts, Validity};
use crate::history::{History, NemesisEvent, Op, OpType};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// Latency points beyond this many are thinned (every `fail`/`info` point is kept; `ok` points
/// are sampled evenly), so the page stays small for long runs.
const MAX_POINTS: usize = 20_000;

const OK_COLOUR: &str = "#81BFFC";
const INFO_COLOUR: &str = "#FFA400";
const FAIL_COLOUR: &str = "#FF1E90";

/// Write `results.json`, `summary.txt` and `index.html` into `dir` (created if missing).
///
/// `ops` is the raw history (it is paired here for latencies), `nemesis` the fault intervals,
/// `results` every checker's result, `meta` free-form run metadata (test name, seed, git
/// revision, options) that is copied into `results.json` and shown on the page.
pub fn write_report(
    dir: impl AsRef<Path>,
    ops: &[Op],
    nemesis: &[NemesisEvent],
    results: &[CheckResult],
    meta: Value,
) -> io::Result<()> {
    let dir = dir.as_ref();
    fs::create_dir_all(dir)?;
    let history = History::from_ops(ops);
    let verdict = overall(results);
    let stats = Stats::new(&history);

    let windows: Vec<Value> = results
        .iter()
        .filter_map(|r| {
            r.failing_window
                .map(|(a, b)| json!({"checker": r.name, "start": a, "end": b}))
        })
        .collect();
    let results_json = json!({
        "valid": verdict,
        "meta": meta,
        "ops": {
            "total": stats.total.total(),
            "ok": stats.total.ok,
            "fail": stats.total.fail,
            "info": stats.total.info,
            "pending": stats.pending,
            "by_f": stats.by_f,
        },
        "nemesis": nemesis,
        "failing_windows": windows,
        "history_problems": history.problems,
        "history_warnings": history.warnings,
        "checkers": results,
    });
    fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results_json)?,
    )?;
    fs::write(
        dir.join("summary.txt"),
        summary_text(verdict, &stats, nemesis, results, &meta),
    )?;
    fs::write(
        dir.join("index.html"),
        html_page(verdict, &history, &stats, nemesis, results, &meta),
    )?;
    Ok(())
}

struct Stats {
    total: OpCounts,
    pending: u64,
    by_f: BTreeMap<String, OpCounts>,
}

impl Stats {
    fn new(history: &History) -> Stats {
        let mut s = Stats {
            total: OpCounts::default(),
            pending: 0,
            by_f: BTreeMap::new(),
        };
        for op in &history.ops {
            s.total.add(op.kind);
            s.by_f.entry(op.f.clone()).or_default().add(op.kind);
            if op.complete_time.is_none() {
                s.pending += 1;
            }
        }
        s
    }
}

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * part as f64 / total as f64
    }
}

fn summary_text(
    verdict: Validity,
    stats: &Stats,
    nemesis: &[NemesisEvent],
    results: &[CheckResult],
    meta: &Value,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "verdict: {}", verdict.as_str().to_uppercase());
    match meta {
        Value::Object(m) => {
            for (k, v) in m {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                let _ = writeln!(s, "{k}: {v}");
            }
        }
        Value::Null => {}
        other => {
            let _ = writeln!(s, "meta: {other}");
        }
    }
    let t = &stats.total;
    let _ = writeln!(
        s,
        "operations: {} (ok {} = {:.1}%, fail {}, info {}; never completed {})",
        t.total(),
        t.ok,
        pct(t.ok, t.total()),
        t.fail,
        t.info,
        stats.pending
    );
    for (f, c) in &stats.by_f {
        let _ = writeln!(
            s,
            "  {f:<8} ok {:>7}  fail {:>7}  info {:>7}",
            c.ok, c.fail, c.info
        );
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for ev in nemesis {
        *kinds.entry(ev.kind.as_str()).or_default() += 1;
    }
    let _ = writeln!(
        s,
        "faults: {} interval(s){}",
        nemesis.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                kinds
                    .iter()
                    .map(|(k, n)| format!("{k} x{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let _ = writeln!(s, "checkers:");
    for r in results {
        let _ = writeln!(s, "  {:<14} {:<8} {}", r.name, r.valid.as_str(), r.summary);
        if let Some((a, b)) = r.failing_window {
            let _ = writeln!(s, "  {:<14} failing window {} .. {}", "", secs(a), secs(b));
        }
    }
    s
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Jepsen's band colour for a fault class.
fn nemesis_colour(kind: &str) -> &'static str {
    let k = kind.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| k.contains(w));
    if has(&["partition", "isolate", "grudge"]) {
        "#E9DCA0"
    } else if has(&["kill", "crash", "restart", "bounce"]) {
        "#E9A4A0"
    } else if has(&["pause", "stop"]) {
        "#A0B1E9"
    } else if has(&["clock", "skew", "strobe", "bump"]) {
        "#A0E9E3"
    } else if has(&["packet", "netem", "delay", "loss"]) {
        "#D1E8A0"
    } else if has(&["corrupt", "bitflip", "truncate", "lose"]) {
        "#99F2E2"
    } else if has(&["shrink", "leave", "remove"]) {
        "#ACA0E9"
    } else if has(&["member", "grow", "join", "add"]) {
        "#E9A0E6"
    } else {
        "#DDDDDD"
    }
}

fn type_colour(kind: OpType) -> &'static str {
    match kind {
        OpType::Ok => OK_COLOUR,
        OpType::Fail => FAIL_COLOUR,
        OpType::Info | OpType::Invoke => INFO_COLOUR,
    }
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `target` ticks over `range`.
fn nice_step(range: f64, target: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

const W: f64 = 960.0;
const H: f64 = 320.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 45.0;

/// Shared frame of both plots: time axis, nemesis bands and failing-window outlines.
struct Frame {
    t_max: f64,
}

impl Frame {
    fn x(&self, ns: u64) -> f64 {
        LEFT + (ns as f64 / 1e9) / self.t_max * (W - LEFT - RIGHT)
    }

    fn open(&self, svg: &mut String, title: &str, y_label: &str) {
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
             viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\
             <title>{}</title><rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" \
             fill=\"#fff\" stroke=\"#999\"/>",
            esc(title),
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let _ = write!(
            svg,
            "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (s)</text>",
            TOP + (H - TOP - BOTTOM) / 2.0,
            TOP + (H - TOP - BOTTOM) / 2.0,
            esc(y_label),
            LEFT + (W - LEFT - RIGHT) / 2.0,
            H - 8.0
        );
    }

    fn bands(&self, svg: &mut String, nemesis: &[NemesisEvent], results: &[CheckResult]) {
        for ev in nemesis {
            let (x0, x1) = (self.x(ev.start), self.x(ev.end.max(ev.start)));
            let _ = write!(
                svg,
                "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\" \
                 fill-opacity=\"0.6\"><title>{} {}..{}: {}</title></rect>\
                 <line x1=\"{x0:.1}\" x2=\"{x0:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"{}\"/>",
                (x1 - x0).max(1.0),
                H - TOP - BOTTOM,
                nemesis_colour(&ev.kind),
                esc(&ev.kind),
                secs(ev.start),
                secs(ev.end),
                esc(&ev.detail),
                H - BOTTOM,
                nemesis_colour(&ev.kind),
            );
        }
        for r in results {
            if let Some((a, b)) = r.failing_window {
                let (x0, x1) = (self.x(a), self.x(b.max(a)));
                let _ = write!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"none\" \
                     stroke=\"#d00000\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\">\
                     <title>{} failing window {}..{}</title></rect>",
                    x0 - 1.0,
                    TOP + 1.0,
                    (x1 - x0).max(0.0) + 2.0,
                    H - TOP - BOTTOM - 2.0,
                    esc(&r.name),
                    secs(a),
                    secs(b)
                );
            }
        }
    }

    fn time_axis(&self, svg: &mut String) {
        let step = nice_step(self.t_max, 10.0);
        let mut t = 0.0;
        while t <= self.t_max + 1e-9 {
            let x = LEFT + t / self.t_max * (W - LEFT - RIGHT);
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#666\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                H - BOTTOM,
                H - BOTTOM + 4.0,
                H - BOTTOM + 16.0,
                trim_float(t)
            );
            t += step;
        }
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn latency_plot(
    history: &History,
    frame: &Frame,
    nemesis: &[NemesisEvent],
    results: &[CheckResult],
) -> String {
    // (completion ns, latency ms, type)
    let mut points: Vec<(u64, f64, OpType)> = history
        .ops
        .iter()
        .filter_map(|o| {
            let c = o.complete_time?;
            Some((c, (o.latency()? as f64 / 1e6).max(1e-3), o.kind))
        })
        .collect();
    let total = points.len();
    let ok_count = points.iter().filter(|p| p.2 == OpType::Ok).count();
    let others = total - ok_count;
    if total > MAX_POINTS {
        let keep_ok = MAX_POINTS.saturating_sub(others).max(1);
        let stride = ok_count.div_ceil(keep_ok).max(1);
        let mut i = 0usize;
        points.retain(|p| {
            if p.2 != OpType::Ok {
                return true;
            }
            i += 1;
            (i - 1).is_multiple_of(stride)
        });
    }
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let (lo_exp, hi_exp) = if points.is_empty() {
        (-1, 3)
    } else {
        let a = lo.log10().floor() as i32;
        let b = (hi.log10().ceil() as i32).max(a + 1);
        (a, b)
    };
    let y = |ms: f64| {
        let f = (ms.log10() - lo_exp as f64) / (hi_exp - lo_exp) as f64;
        H - BOTTOM - f * (H - TOP - BOTTOM)
    };
    let mut svg = String::new();
    let title = if points.len() < total {
        format!(
            "Latency: {} of {} completed ops shown (ok thinned evenly; every fail/info shown)",
            points.len(),
            total
        )
    } else {
        format!("Latency: {total} completed ops")
    };
    frame.open(&mut svg, &title, "latency (ms, log)");
    frame.bands(&mut svg, nemesis, results);
    for e in lo_exp..=hi_exp {
        let yy = y(10f64.powi(e));
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            yy + 4.0,
            trim_float(10f64.powi(e))
        );
    }
    frame.time_axis(&mut svg);
    // ok first, so the rarer fail/info points are drawn on top.
    for pass in [OpType::Ok, OpType::Fail, OpType::Info] {
        let r = if pass == OpType::Ok { 1.5 } else { 2.2 };
        let _ = write!(svg, "<g fill=\"{}\">", type_colour(pass));
        for p in points.iter().filter(|p| p.2 == pass) {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\"/>",
                frame.x(p.0),
                y(p.1)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

fn throughput_plot(
    history: &History,
    frame: &Frame,
    nemesis: &[NemesisEvent],
    results: &[CheckResult],
) -> String {
    let buckets = frame.t_max.ceil().max(1.0) as usize;
    let mut counts = vec![[0u64; 3]; buckets];
    for o in &history.ops {
        let Some(c) = o.complete_time else { continue };
        let b = ((c / 1_000_000_000) as usize).min(buckets - 1);
        let slot = match o.kind {
            OpType::Ok => 0,
            OpType::Fail => 1,
            OpType::Info | OpType::Invoke => 2,
        };
        counts[b][slot] += 1;
    }
    let max = counts
        .iter()
        .flat_map(|c| c.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = nice_step(max, 5.0);
    let y_max = (max / step).ceil() * step;
    let y = |v: f64| H - BOTTOM - v / y_max * (H - TOP - BOTTOM);
    let mut svg = String::new();
    frame.open(
        &mut svg,
        "Throughput: completions per second by type",
        "ops/s (1 s buckets)",
    );
    frame.bands(&mut svg, nemesis, results);
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let yy = y(v);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            yy + 4.0,
            trim_float(v)
        );
        v += step;
    }
    frame.time_axis(&mut svg);
    for (slot, kind) in [(0, OpType::Ok), (1, OpType::Fail), (2, OpType::Info)] {
        if counts.iter().all(|c| c[slot] == 0) {
            continue;
        }
        let pts: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mid = (i as u64) * 1_000_000_000 + 500_000_000;
                format!("{:.1},{:.1}", frame.x(mid), y(c[slot] as f64))
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\">\
             <title>{}</title></polyline>",
            type_colour(kind),
            pts.join(" "),
            kind.as_str()
        );
    }
    svg.push_str("</svg>");
    svg
}

fn verdict_colour(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "#2e7d32",
        Validity::Invalid => "#c62828",
        Validity::Unknown => "#ef6c00",
    }
}

fn html_page(
    verdict: Validity,
    history: &History,
    stats: &Stats,
    nemesis: &[NemesisEvent],
    results: &[CheckResult],
    meta: &Value,
) -> String {
    let end = nemesis
        .iter()
        .map(|e| e.end)
        .chain(std::iter::once(history.end_time()))
        .max()
        .unwrap_or(0);
    // Whole seconds, so every 1 s throughput bucket lies inside the frame.
    let frame = Frame {
        t_max: (end as f64 / 1e9).ceil().max(1.0),
    };
    let title = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("Jepsen run");
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — {}</title>\
         <style>body{{font-family:sans-serif;margin:24px;color:#222}}\
         table{{border-collapse:collapse;margin:8px 0 20px}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}\
         th{{background:#f4f4f4}}.v{{color:#fff;font-weight:bold;padding:2px 8px;border-radius:3px}}\
         .sw{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}}\
         pre{{background:#f8f8f8;padding:8px;overflow:auto}}</style></head><body>",
        esc(title),
        verdict.as_str()
    );
    let _ = write!(
        h,
        "<h1>{} <span class=\"v\" style=\"background:{}\">{}</span></h1>",
        esc(title),
        verdict_colour(verdict),
        verdict.as_str().to_uppercase()
    );

    h.push_str("<h2>Verdicts</h2><table><tr><th>checker</th><th>verdict</th><th>summary</th><th>failing window</th></tr>");
    for r in results {
        let window = r.failing_window.map_or(String::new(), |(a, b)| {
            format!("{} .. {}", secs(a), secs(b))
        });
        let _ = write!(
            h,
            "<tr><td>{}</td><td><span class=\"v\" style=\"background:{}\">{}</span></td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            verdict_colour(r.valid),
            r.valid.as_str(),
            esc(&r.summary),
            window
        );
    }
    h.push_str("</table>");
    if !history.problems.is_empty() {
        let _ = write!(
            h,
            "<p><b>Malformed history:</b></p><pre>{}</pre>",
            esc(&history.problems.join("\n"))
        );
    }

    let t = &stats.total;
    let _ = write!(
        h,
        "<h2>Operations</h2><p>{} operations: {} ok ({:.1}%), {} fail, {} info ({} never completed).</p>\
         <table><tr><th>f</th><th>ok</th><th>fail</th><th>info</th></tr>",
        t.total(),
        t.ok,
        pct(t.ok, t.total()),
        t.fail,
        t.info,
        stats.pending
    );
    for (f, c) in &stats.by_f {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(f),
            c.ok,
            c.fail,
            c.info
        );
    }
    h.push_str("</table>");

    // Legend: op types, then the fault classes present.
    h.push_str("<p>");
    for kind in [OpType::Ok, OpType::Info, OpType::Fail] {
        let _ = write!(
            h,
            "<span class=\"sw\" style=\"background:{}\"></span>{}",
            type_colour(kind),
            kind.as_str()
        );
    }
    let mut kinds: Vec<&str> = nemesis.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for k in kinds {
        let _ = write!(
            h,
            "<span class=\"sw\" style=\"background:{};opacity:.6\"></span>{}",
            nemesis_colour(k),
            esc(k)
        );
    }
    if results.iter().any(|r| r.failing_window.is_some()) {
        h.push_str(
            "<span class=\"sw\" style=\"border:1.5px dashed #d00000\"></span>failing window",
        );
    }
    h.push_str("</p>");
    h.push_str("<h2>Latency</h2>");
    h.push_str(&latency_plot(history, &frame, nemesis, results));
    h.push_str("<h2>Throughput</h2>");
    h.push_str(&throughput_plot(history, &frame, nemesis, results));

    if !nemesis.is_empty() {
        h.push_str(
            "<h2>Faults</h2><table><tr><th>kind</th><th>start</th><th>end</th><th>detail</th></tr>",
        );
        for ev in nemesis {
            let _ = write!(
                h,
                "<tr><td><span class=\"sw\" style=\"background:{};margin-left:0\"></span>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                nemesis_colour(&ev.kind),
                esc(&ev.kind),
                secs(ev.start),
                secs(ev.end),
                esc(&ev.detail)
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Run metadata</h2><pre>{}</pre>",
        esc(&serde_json::to_string_pretty(meta).unwrap_or_default())
    );
    h.push_str("<p>Details of every checker are in <code>results.json</code>.</p></body></html>\n");
    h
}
