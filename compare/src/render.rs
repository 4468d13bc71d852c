//! The comparison as tables: comfy-table for the terminal, markdown for the
//! book, a legend and a verdict. Every table comes from the same columns.

use std::fmt::Write;
use std::time::Duration;

use comfy_table::{
    CellAlignment, ColumnConstraint, ContentArrangement, LineStyle, Table,
    TableStyle, Width,
};
use restaurant::Report;
use restaurant::report::{Percentiles, mebibytes, seconds};

use crate::measure::{Range, Row};
use crate::run::Outcome;

/// One preset's workload, as run.
#[derive(Clone, Debug)]
pub struct Stage {
    pub preset: restaurant::Preset,
    pub orders: usize,
    pub seed: u64,
    pub time_scale: f64,
    pub cores: usize,
    /// With every customer walking in on time; each night's report carries
    /// its own, from when they really did.
    pub lower_bound: Duration,
    pub expected: String,
}

impl Stage {
    /// The line above a preset's table.
    pub fn headline(&self) -> String {
        let mut line = format!(
            "{}: {} orders, seed {}, {} cores, lower bound {}",
            self.preset,
            self.orders,
            self.seed,
            self.cores,
            seconds(self.lower_bound.as_secs_f64())
        );
        if self.time_scale != 1.0 {
            let _ = write!(line, ", time ÷{}", self.time_scale);
        }
        line
    }
}

/// The model's name without its group (`thread-pool` for
/// `parallelism-thread-pool`): the terminal table's first column, where
/// width is short. Names stay unique without their group.
pub fn short_name(model: &str) -> &str {
    ["concurrency-", "parallelism-", "blocking-"]
        .iter()
        .find_map(|group| model.strip_prefix(group))
        .unwrap_or(model)
}

/// The name a table shows: marked `†` when its runtime is discontinued.
fn name(row: &Row, short: bool) -> String {
    let name = if short {
        short_name(&row.model)
    } else {
        &row.model
    };
    let waiters = waiters_of(row).map_or(String::new(), |w| format!(" ×{w}"));
    let mark = if row.note.is_some() { " †" } else { "" };
    format!("{name}{waiters}{mark}")
}

/// The waiters a row ran with, for a model that has several.
fn waiters_of(row: &Row) -> Option<u64> {
    match &row.outcome {
        Outcome::Ok(r) => r.waiters,
        _ => arg_of(row, "--waiters"),
    }
}

/// The number after `flag` in the row's arguments.
fn arg_of(row: &Row, flag: &str) -> Option<u64> {
    let at = row.args.iter().position(|a| a == flag)?;
    row.args.get(at + 1)?.parse().ok()
}

type Cell = fn(&Row, &Report, f64) -> String;

/// One column: its title, whether only `--wide` shows it, and its cell
/// for a verified row (given the row's efficiency).
struct Column {
    title: &'static str,
    wide_only: bool,
    cell: Cell,
}

fn na() -> String {
    "n/a".to_owned()
}

/// A figure of a set of percentiles, in seconds' best unit, or n/a.
pub fn pct(p: Option<Percentiles>, f: fn(Percentiles) -> f64) -> String {
    p.map_or_else(na, |p| seconds(f(p)))
}

/// An efficiency as a whole percentage, or n/a.
pub fn percent(e: Option<f64>) -> String {
    e.map_or_else(na, |e| format!("{:.0}%", 100.0 * e))
}

/// Seconds in their best unit, or n/a.
pub fn secs(s: Option<f64>) -> String {
    s.map_or_else(na, seconds)
}

fn range(r: Option<Range>) -> String {
    r.map_or_else(String::new, |Range(lo, hi)| {
        format!("{}–{}", seconds(lo), seconds(hi))
    })
}

const COLUMNS: &[Column] = &[
    Column {
        title: "makespan",
        wide_only: false,
        cell: |_, r, _| seconds(r.makespan_s),
    },
    Column {
        title: "±",
        wide_only: false,
        cell: |row, r, _| match row.spread {
            Some(s) if row.repeats > 1 => {
                format!(
                    "±{:.0}%",
                    100.0 * s.makespan_s.relative_to(r.makespan_s)
                )
            }
            _ => String::new(),
        },
    },
    Column {
        title: "makespan min–max",
        wide_only: true,
        cell: |row, _, _| range(row.spread.map(|s| s.makespan_s)),
    },
    Column {
        title: "eff.",
        wide_only: false,
        cell: |_, _, e| {
            if e.is_nan() {
                na()
            } else {
                format!("{:.0}%", 100.0 * e)
            }
        },
    },
    Column {
        title: "wait p50",
        wide_only: true,
        cell: |_, r, _| pct(r.counter_wait, |p| p.p50),
    },
    Column {
        title: "wait p99",
        wide_only: false,
        cell: |_, r, _| pct(r.counter_wait, |p| p.p99),
    },
    Column {
        title: "wait p99 min–max",
        wide_only: true,
        cell: |row, _, _| range(row.spread.and_then(|s| s.counter_wait_p99)),
    },
    Column {
        title: "wait max",
        wide_only: true,
        cell: |_, r, _| pct(r.counter_wait, |p| p.max),
    },
    Column {
        title: "latency p50",
        wide_only: true,
        cell: |_, r, _| pct(r.order_latency, |p| p.p50),
    },
    Column {
        title: "latency p99",
        wide_only: false,
        cell: |_, r, _| pct(r.order_latency, |p| p.p99),
    },
    Column {
        title: "arrival lag p99",
        wide_only: true,
        cell: |_, r, _| pct(r.arrival_lag, |p| p.p99),
    },
    Column {
        title: "threads",
        wide_only: false,
        cell: |_, r, _| r.peak_threads.map_or_else(na, |n| n.to_string()),
    },
    Column {
        title: "MiB",
        wide_only: false,
        cell: |_, r, _| {
            r.peak_rss_bytes.map_or_else(na, |b| {
                format!("{:.1}", b as f64 / (1024.0 * 1024.0))
            })
        },
    },
    Column {
        title: "CPU",
        wide_only: false,
        cell: |_, r, _| r.cpu_s.map_or_else(na, seconds),
    },
    Column {
        title: "CPU min–max",
        wide_only: true,
        cell: |row, _, _| range(row.spread.and_then(|s| s.cpu_s)),
    },
    Column {
        title: "customers' CPU",
        wide_only: true,
        cell: |_, r, _| r.customers_cpu_s.map_or_else(na, seconds),
    },
];

fn columns(wide: bool) -> impl Iterator<Item = &'static Column> {
    COLUMNS.iter().filter(move |c| wide || !c.wide_only)
}

/// The cooks a row ran with: from its report, or as asked.
fn cooks_cell(row: &Row) -> String {
    row.cooks()
        .or_else(|| arg_of(row, "--cooks"))
        .map_or_else(String::new, |n| n.to_string())
}

/// The cells of one row, as text.
fn cells(stage: &Stage, row: &Row, limit: Duration, wide: bool) -> Vec<String> {
    let mut cells = vec![name(row, !wide), cooks_cell(row)];
    let count = columns(wide).count();
    let ended = |text: String| {
        let mut rest = vec![text];
        rest.extend(std::iter::repeat_n(String::new(), count - 1));
        rest
    };
    cells.extend(match &row.outcome {
        Outcome::Ok(report) => {
            let efficiency = row.efficiency(stage).unwrap_or(f64::NAN);
            columns(wide)
                .map(|c| (c.cell)(row, report, efficiency))
                .collect()
        }
        Outcome::Dnf => ended(format!("DNF {:.0} s", limit.as_secs_f64())),
        Outcome::Failed(_) => ended("FAILED".to_owned()),
        Outcome::Skipped(_) => ended("skipped".to_owned()),
    });
    cells
}

fn header(wide: bool) -> Vec<&'static str> {
    let mut header = vec!["model", "cooks"];
    header.extend(columns(wide).map(|c| c.title));
    header
}

/// A terminal table `width` columns wide at most: the essential columns,
/// or every one with `wide`.
pub fn table(
    stage: &Stage,
    rows: &[Row],
    limit: Duration,
    wide: bool,
    width: u16,
) -> Table {
    // A line under the header and none between rows: two characters
    // between columns, so that the essential ones fit 100 columns.
    const STYLE: TableStyle = TableStyle::new()
        .header_separator(LineStyle::none().fill('─').junction('─'));
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(header(wide));
    for row in rows {
        table.add_row(cells(stage, row, limit, wide));
    }
    // Numbers to the right with one space before them; the names never
    // wrap (a narrow terminal wraps the figures' headers instead).
    let longest = rows
        .iter()
        .map(|row| name(row, !wide).chars().count())
        .max()
        .unwrap_or(5) as u16;
    for (i, column) in table.column_iter_mut().enumerate() {
        if i == 0 {
            column.set_padding((0, 1)).set_constraint(
                ColumnConstraint::LowerBoundary(Width::Fixed(longest + 1)),
            );
        } else {
            column
                .set_padding((1, 0))
                .set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The legend under the tables: a line on what the columns mean, a line
/// of notes, and how the figures were taken; none wider than 100.
pub fn legend(wide: bool, repeats: u32) -> Vec<String> {
    let mut lines = vec![
        "eff. = lower bound ÷ makespan · wait: door → NEXT · latency: door \
         → PLATE · threads alive (sampled)"
            .to_owned(),
    ];
    let mut notes = "MiB: peak RSS (a process tree: summed PSS) · CPU: the \
                     server's · † discontinued"
        .to_owned();
    if !wide {
        notes.push_str(" · --wide: more");
    }
    lines.push(notes);
    lines.push(if repeats > 1 {
        format!(
            "medians of {repeats} interleaved rounds · ± = half the \
             makespan's min–max range"
        )
    } else {
        "one round each: --repeats 5 gives medians and their spread".to_owned()
    });
    lines
}

/// The verdict under a table: who leads on makespan, on counter wait and
/// on CPU, and whether the lead is within noise.
pub fn verdict(rows: &[Row]) -> Vec<String> {
    let ok: Vec<(&Row, &Report)> = rows
        .iter()
        .filter_map(|row| match &row.outcome {
            Outcome::Ok(report) => Some((row, report.as_ref())),
            _ => None,
        })
        .collect();
    if ok.is_empty() {
        return vec!["verdict: no run was verified".to_owned()];
    }
    let one_round = ok.iter().all(|(row, _)| row.repeats <= 1);
    let mut lines = Vec::new();
    let mut lead = |what: &str,
                    value: &dyn Fn(&Report) -> Option<f64>,
                    spread: &dyn Fn(&Row) -> Option<Range>| {
        let mut ranked: Vec<(&Row, f64)> = ok
            .iter()
            .filter_map(|(row, report)| Some((*row, value(report)?)))
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
        let Some(&(first, best)) = ranked.first() else {
            return;
        };
        let mut line =
            format!("  {what}: {} ({})", name(first, true), seconds(best));
        if let Some(&(second, next)) = ranked.get(1) {
            let tied = match (spread(first), spread(second)) {
                (Some(a), Some(b)) if !one_round => Some(a.overlaps(b)),
                _ => None,
            };
            let _ = match tied {
                Some(true) => write!(
                    line,
                    ", within noise of {} ({})",
                    name(second, true),
                    seconds(next)
                ),
                Some(false) => write!(
                    line,
                    ", ahead of {} ({}) beyond the spread",
                    name(second, true),
                    seconds(next)
                ),
                None => write!(
                    line,
                    ", then {} ({})",
                    name(second, true),
                    seconds(next)
                ),
            };
        }
        lines.push(line);
    };
    lead("fastest", &|r| Some(r.makespan_s), &|row| {
        row.spread.map(|s| s.makespan_s)
    });
    lead(
        "shortest counter wait p99",
        &|r| r.counter_wait.map(|p| p.p99),
        &|row| row.spread.and_then(|s| s.counter_wait_p99),
    );
    lead("least CPU", &|r| r.cpu_s, &|row| {
        row.spread.and_then(|s| s.cpu_s)
    });
    let mut head = "verdict".to_owned();
    if one_round {
        head.push_str(
            " (one round, so no spread: --repeats 5 tells a lead from noise)",
        );
    }
    lines.insert(0, format!("{head}:"));
    lines
}

/// The book's two tables for a stage: time (what customers saw) and
/// cost (what it took), split so that each fits the page.
pub fn markdown(stage: &Stage, rows: &[Row], limit: Duration) -> String {
    let mut md = String::new();
    let dnf = format!("DNF (> {})", seconds(limit.as_secs_f64()));
    let ended = |row: &Row| match &row.outcome {
        Outcome::Ok(_) => None,
        Outcome::Dnf => Some(dnf.clone()),
        Outcome::Failed(_) => Some("FAILED".to_owned()),
        Outcome::Skipped(why) => Some(format!("skipped: {why}")),
    };
    let model = |row: &Row| {
        let mark = if row.note.is_some() { " †" } else { "" };
        let waiters = waiters_of(row)
            .map_or(String::new(), |w| format!(" ({w} waiters)"));
        format!("`{}`{waiters}{mark}", row.model)
    };
    md.push_str(
        "| model | cooks | makespan (min–max) | efficiency | counter wait \
         p50 | p99 | latency p99 |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let cells = match (&row.outcome, ended(row)) {
            (Outcome::Ok(r), _) => {
                let spread = match row.spread {
                    Some(s) if row.repeats > 1 => format!(
                        " ({}–{})",
                        seconds(s.makespan_s.0),
                        seconds(s.makespan_s.1)
                    ),
                    _ => String::new(),
                };
                format!(
                    "{}{spread} | {} | {} | {} | {}",
                    seconds(r.makespan_s),
                    percent(row.efficiency(stage)),
                    pct(r.counter_wait, |p| p.p50),
                    pct(r.counter_wait, |p| p.p99),
                    pct(r.order_latency, |p| p.p99),
                )
            }
            (_, Some(text)) => format!("{text} | | | |"),
            (_, None) => unreachable!("a row that is not Ok has ended"),
        };
        let _ =
            writeln!(md, "| {} | {} | {cells} |", model(row), cooks_cell(row));
    }
    md.push_str(
        "\n| model | cooks | threads alive (sampled) | memory | CPU \
         (min–max) |\n|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let Outcome::Ok(r) = &row.outcome else {
            continue;
        };
        let cpu = r.cpu_s.map_or_else(na, seconds);
        let spread = match row.spread.and_then(|s| s.cpu_s) {
            Some(Range(lo, hi)) if row.repeats > 1 => {
                format!(" ({}–{})", seconds(lo), seconds(hi))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {cpu}{spread} |",
            model(row),
            cooks_cell(row),
            r.peak_threads.map_or_else(na, |n| n.to_string()),
            r.peak_rss_bytes.map_or_else(na, mebibytes),
        );
    }
    md
}

/// The failures and skips under a table, one line each.
pub fn failures(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|row| match &row.outcome {
            Outcome::Failed(why) => {
                Some(format!("FAILED {}: {why}", row.model))
            }
            Outcome::Skipped(why) => {
                Some(format!("skipped {}: {why}", row.model))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_only_the_group() {
        assert_eq!(short_name("parallelism-thread-pool"), "thread-pool");
        assert_eq!(short_name("concurrency-tokio"), "tokio");
        assert_eq!(short_name("sequential"), "sequential");
    }

    fn row(model: &str, outcome: Outcome) -> Row {
        Row {
            model: model.to_owned(),
            args: vec!["--cooks".to_owned(), "10000".to_owned()],
            note: Some("discontinued".to_owned()),
            outcome,
            repeats: 5,
            spread: None,
            cooks_given: None,
        }
    }

    #[test]
    fn the_narrow_table_fits_a_hundred_columns_at_its_widest() {
        // The longest name, the widest figures, a DNF and a failure.
        let json = r#"{"schema_version":2,"model":"m","preset":"takeout",
            "seed":1,"orders":1,"cooks":10000,"time_scale":1.0,"served":1,
            "checksum":"0x0","makespan_s":9.99,"cpu_s":123.45,
            "counter_wait":{"p50":0.1234,"p99":0.1234,"max":9.9},
            "order_latency":{"p50":0.1234,"p99":0.1234,"max":9.9},
            "connect_wait":null,"arrival_lag":null,"customers_cpu_s":null,
            "connection_cap":1,"held_at_cap":0,"peak_rss_bytes":99999999999,
            "peak_threads":10003,"interrupted":false,
            "host":{"cores":2,"os":"linux","arch":"x86_64"}}"#;
        let report: Report = serde_json::from_str(json).unwrap();
        let spread = crate::measure::Spread {
            makespan_s: Range(0.001, 9.99),
            counter_wait_p99: None,
            cpu_s: None,
        };
        let mut widest = row(
            "concurrency-tokio-current-thread",
            Outcome::Ok(Box::new(report)),
        );
        widest.spread = Some(spread);
        let rows = [
            widest,
            row("parallelism-thread-per-order", Outcome::Dnf),
            row("blocking-dedicated-thread", Outcome::Failed("x".into())),
        ];
        let stage = Stage {
            preset: restaurant::Preset::Takeout,
            orders: 1_000_000,
            seed: 1,
            time_scale: 1.0,
            cores: 2,
            lower_bound: Duration::from_secs(1),
            expected: "0x0".to_owned(),
        };
        let text = table(&stage, &rows, Duration::from_secs(10), false, 100)
            .to_string();
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{}: {line}", line.len());
        }
        // Every name is whole, on one line.
        assert!(text.contains("tokio-current-thread †"), "{text}");
    }

    #[test]
    fn the_legend_fits_a_hundred_columns() {
        for wide in [false, true] {
            for line in legend(wide, 5) {
                assert!(line.chars().count() <= 100, "{line}");
            }
        }
    }
}
