//! Timelines: the night drawn as one lane per thread that did work.
//!
//! Ring-ups and chops are bars on the lane of the thread that ran them.
//! Simmers are drawn as pale bands on the lane of the thread whose cook
//! started them: in a threaded model nothing else happens inside the band
//! (the thread sat blocked, waiting), while in an async model other cooks'
//! chops appear inside it (the thread was free and did other work).

use std::fmt::Write;
use std::time::Duration;

use crate::recipe::Step;
use crate::trace::{Lane, Trace};

/// The kinds of bar on a timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bar {
    RingUp,
    Chop,
    Simmer,
}

// Colours: the cashier, chopping, and simmering.
const RING_UP: &str = "#c0392b";
const CHOP: &str = "#2c6fbb";
const SIMMER: &str = "#f0b35e";

/// Draws `traces` as an SVG timeline titled `title`: one lane per thread
/// that did work, the cashier's first, then in order of first work; a time
/// axis in milliseconds; a legend.
pub fn svg(title: &str, traces: &[Trace]) -> String {
    // Every span, by lane, and the simmers attributed to lanes.
    let mut lanes: Vec<(Lane, Duration)> = Vec::new();
    let mut bars: Vec<(Lane, Duration, Duration, Bar)> = Vec::new();
    let mut note = |lane: &Lane, start: Duration| match lanes
        .iter_mut()
        .find(|(l, _)| l == lane)
    {
        Some((_, first)) => *first = (*first).min(start),
        None => lanes.push((lane.clone(), start)),
    };
    let mut cashier: Option<Lane> = None;
    let mut end = Duration::ZERO;
    for trace in traces {
        let served = trace.served;
        end = end.max(served);
        if let Some(span) = &trace.ring_up {
            note(&span.lane, span.start);
            cashier.get_or_insert_with(|| span.lane.clone());
            bars.push((span.lane.clone(), span.start, span.end, Bar::RingUp));
        }
        for span in trace.chops.iter().flatten() {
            note(&span.lane, span.start);
            bars.push((span.lane.clone(), span.start, span.end, Bar::Chop));
        }
        // Walk the recipe: a simmer runs from where the cook was to the
        // next chop (or to serving), on the lane the cook was on.
        let mut at = (trace.started_on.clone(), trace.started);
        let mut chops = trace.chops.iter();
        let mut simmering = None;
        for step in &trace.steps {
            match step {
                Step::Simmer(_) => simmering = simmering.or(Some(at.clone())),
                Step::Chop(_) => {
                    let Some(slices) = chops.next() else { break };
                    let (Some(first), Some(last)) =
                        (slices.first(), slices.last())
                    else {
                        break;
                    };
                    if let Some((Some(lane), from)) = simmering.take() {
                        bars.push((lane, from, first.start, Bar::Simmer));
                    }
                    at = (Some(last.lane.clone()), last.end);
                }
            }
        }
        if let Some((Some(lane), from)) = simmering {
            bars.push((lane, from, served, Bar::Simmer));
        }
    }
    lanes.sort_by_key(|(lane, first)| (Some(lane) != cashier.as_ref(), *first));

    // Layout.
    let (left, right, top) = (190.0, 20.0, 64.0);
    let width = 900.0;
    let plot = width - left - right;
    let n = lanes.len().max(1) as f64;
    let lane_h = (540.0 / n).clamp(2.0, 18.0);
    let gap = if lane_h >= 8.0 { 4.0 } else { 0.0 };
    let height = top + n * (lane_h + gap) + 48.0;
    let span_s = end.as_secs_f64().max(1e-6);
    let x = |t: Duration| left + plot * t.as_secs_f64() / span_s;
    let row =
        |lane: &Lane| lanes.iter().position(|(l, _)| l == lane).unwrap_or(0);
    let y = |i: usize| top + i as f64 * (lane_h + gap);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" viewBox="0 0 {width} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="10" y="20" font-size="15">{}</text>"#,
        escape(title)
    );
    // Legend.
    let mut lx = 10.0;
    for (colour, text) in [
        (RING_UP, "ring-up (the cashier)"),
        (CHOP, "chop (CPU work)"),
        (
            SIMMER,
            "simmer: the cook waits; bars inside it mean its thread did other work",
        ),
    ] {
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="32" width="12" height="12" fill="{colour}"/><text x="{}" y="42">{}</text>"#,
            lx + 16.0,
            escape(text)
        );
        lx += 24.0 + 6.5 * text.len() as f64;
    }
    // Lanes and their labels.
    let pid = std::process::id();
    for (i, (lane, _)) in lanes.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<rect class="lane" x="{left}" y="{:.1}" width="{plot}" height="{lane_h:.1}" fill="#f4f4f4"/>"##,
            y(i)
        );
        if lane_h >= 8.0 {
            let who = if lane.pid == pid {
                format!("{} #{}", lane.name, lane.thread)
            } else {
                format!("process {}: {}", lane.pid, lane.name)
            };
            let cashier = if Some(lane) == cashier.as_ref() {
                " (cashier)"
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}{cashier}</text>"#,
                left - 6.0,
                y(i) + lane_h * 0.75,
                escape(&who)
            );
        }
    }
    if lane_h < 8.0 {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{} threads</text>"#,
            left - 6.0,
            top + 12.0,
            lanes.len()
        );
    }
    // Simmers first, so the work drawn over them shows.
    bars.sort_by_key(|(_, _, _, bar)| *bar != Bar::Simmer);
    for (lane, start, stop, bar) in &bars {
        let (x0, x1) = (x(*start), x(*stop));
        let (class, colour, opacity) = match bar {
            Bar::RingUp => ("ring-up", RING_UP, 1.0),
            Bar::Chop => ("chop", CHOP, 1.0),
            Bar::Simmer => ("simmer", SIMMER, 0.45),
        };
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x0:.2}" y="{:.1}" width="{:.2}" height="{lane_h:.1}" fill="{colour}" fill-opacity="{opacity}"/>"#,
            y(row(lane)),
            (x1 - x0).max(0.5)
        );
    }
    // The time axis, in milliseconds.
    let axis_y = top + n * (lane_h + gap) + 6.0;
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
        left + plot
    );
    let ms = span_s * 1e3;
    let step = nice_step(ms / 8.0);
    let mut t = 0.0;
    while t <= ms + 1e-9 {
        let tx = left + plot * t / ms;
        let _ = write!(
            svg,
            r#"<line x1="{tx:.1}" y1="{axis_y}" x2="{tx:.1}" y2="{}" stroke="black"/><text x="{tx:.1}" y="{}" text-anchor="middle">{}</text>"#,
            axis_y + 5.0,
            axis_y + 18.0,
            trim(t)
        );
        t += step;
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">time since opening (ms)</text></svg>"#,
        left + plot / 2.0,
        axis_y + 36.0
    );
    svg.push('\n');
    svg
}

/// A step of 1, 2 or 5 × 10ⁿ, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-9);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
