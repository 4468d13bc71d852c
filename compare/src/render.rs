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

use crate::measure::{Figures, Floor, Range, Row};
use crate::run::Outcome;

/// One preset's workload, as run.
#[derive(Clone, Debug)]
pub struct Stage {
    pub preset: restaurant::Preset,
    pub orders: usize,
    pub seed: u64,
    pub time_scale: f64,
    pub cores: usize,
    /// The physical limit, from the scheduled arrivals and one unit of
    /// chopping timed once: every row divides by it.
    pub lower_bound: Duration,
    pub expected: String,
    /// The null restaurant's figures on this stage, once measured.
    pub floor: Option<Floor>,
}

impl Stage {
    /// The line above a preset's table.
    pub fn headline(&self) -> String {
        let mut line = format!(
            "{}: {}, seed {}, {}, lower bound {}",
            self.preset,
            restaurant::report::count(self.orders as u64, "order"),
            self.seed,
            restaurant::report::count(self.cores as u64, "core"),
            seconds(self.lower_bound.as_secs_f64())
        );
        if self.time_scale != 1.0 {
            let _ = write!(line, ", time ÷{}", self.time_scale);
        }
        line
    }

    /// The line under the headline: the floor, what the customers measure
    /// against a restaurant that cooks nothing; `None` when unmeasured.
    pub fn floor_line(&self) -> Option<String> {
        let floor = self.floor?;
        Some(format!(
            "floor (the null restaurant): wait p99 {}, lag p99 {}; \
             customers late ‡ past a lag p99 of {}",
            seconds(floor.counter_wait_p99_s),
            seconds(floor.arrival_lag_p99_s),
            seconds(floor.late_above()),
        ))
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
        title: "kitchen p99",
        wide_only: true,
        cell: |_, r, _| pct(r.kitchen_time, |p| p.p99),
    },
    Column {
        title: "lag p99",
        wide_only: false,
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
            r.peak_pss_bytes.map_or_else(na, |b| {
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
    let late = if row.late(stage) { " ‡" } else { "" };
    let mut cells =
        vec![format!("{}{late}", name(row, !wide)), cooks_cell(row)];
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
        Outcome::Dnf => ended(format!("DNF {}", seconds(limit.as_secs_f64()))),
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
        .map(|row| {
            name(row, !wide).chars().count() + 2 * usize::from(row.late(stage))
        })
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
        "eff. = the stage's lower bound ÷ makespan · wait: counter wait, \
         walking in → NEXT (the greeting)"
            .to_owned(),
        "latency: walking in → PLATE (the order served) · kitchen: ORDER \
         sent → PLATE"
            .to_owned(),
        "lag: customers' arrival lag · ‡ customers late: left out of \
         verdicts · threads: alive, sampled"
            .to_owned(),
    ];
    let mut notes = "MiB: peak PSS of the server's process tree · CPU: the \
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

/// How far behind the leader a model may be and still be tied with it:
/// 5% of the leader's figure, or the floor where that is larger (no
/// harness can tell apart two counter waits closer than its own).
const TIE: f64 = 0.05;

/// How many of the models tied for a lead a verdict names.
const NAMED: usize = 4;

/// The verdict under a table: who leads on makespan, on counter wait and
/// on CPU, among the runs whose customers kept their schedule.
///
/// Every model within max(5%, the floor) of the leader is named as tied
/// with it: none of them is "the fastest". A single leader's lead is
/// *beyond noise* only when it held in every interleaved round, against
/// every other model in that same round; with one round it cannot be
/// told from noise, and the verdict says so.
pub fn verdict(stage: &Stage, rows: &[Row]) -> Vec<String> {
    let ok: Vec<(&Row, &Report)> = rows
        .iter()
        .filter(|row| !row.late(stage))
        .filter_map(|row| match &row.outcome {
            Outcome::Ok(report) => Some((row, report.as_ref())),
            _ => None,
        })
        .collect();
    let late: Vec<&Row> = rows.iter().filter(|row| row.late(stage)).collect();
    if ok.is_empty() {
        return vec![
            "verdict: no run was verified with its customers on \
                     time"
                .to_owned(),
        ];
    }
    let rounds = ok.iter().map(|(row, _)| row.repeats).min().unwrap_or(1);
    let floor = stage.floor;
    let mut lines = Vec::new();
    let mut lead = |what: &str,
                    value: &dyn Fn(&Report) -> Option<f64>,
                    per_round: &dyn Fn(&Figures) -> Option<f64>,
                    noise: f64| {
        let mut ranked: Vec<(&Row, f64)> = ok
            .iter()
            .filter_map(|(row, report)| Some((*row, value(report)?)))
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
        let Some(&(first, best)) = ranked.first() else {
            return;
        };
        let within = (best * TIE).max(noise);
        let tied: Vec<String> = ranked
            .iter()
            .take_while(|(_, v)| *v - best <= within)
            .map(|(row, v)| format!("{} ({})", name(row, true), seconds(*v)))
            .collect();
        let line = if tied.len() > 1 {
            // The closest few by name, so that the line stays readable;
            // `--json` has every figure.
            let more = tied.len().saturating_sub(NAMED);
            let mut names = tied[..tied.len().min(NAMED)].join(", ");
            if more > 0 {
                let _ = write!(names, " and {more} more");
            }
            format!(
                "  {what}: {} tied within {}: {names}",
                tied.len(),
                seconds(within)
            )
        } else {
            let head =
                format!("  {what}: {} ({})", name(first, true), seconds(best));
            let others = &ranked[1..];
            match others.first() {
                None => head,
                Some(&(second, next)) if rounds <= 1 => format!(
                    "{head}, then {} ({}); one round cannot tell it from \
                     noise",
                    name(second, true),
                    seconds(next)
                ),
                Some(&(second, next)) => {
                    let held = others.iter().all(|(other, _)| {
                        won_every_round(first, other, per_round)
                    });
                    let how = if held {
                        format!(
                            "beyond noise: ahead in each of {rounds} rounds"
                        )
                    } else {
                        "within noise: not ahead in every round".to_owned()
                    };
                    format!(
                        "{head}, then {} ({}); {how}",
                        name(second, true),
                        seconds(next)
                    )
                }
            }
        };
        lines.push(line);
    };
    let floor_wait = floor.map_or(0.0, |f| f.counter_wait_p99_s);
    let floor_lag = floor.map_or(0.0, |f| f.arrival_lag_p99_s);
    lead(
        "fastest",
        &|r| Some(r.makespan_s),
        &|f| Some(f.makespan_s),
        floor_lag,
    );
    lead(
        "shortest wait p99",
        &|r| r.counter_wait.map(|p| p.p99),
        &|f| f.counter_wait_p99,
        floor_wait,
    );
    lead("least CPU", &|r| r.cpu_s, &|f| f.cpu_s, 0.0);
    let mut head = "verdict".to_owned();
    if rounds <= 1 {
        head.push_str(" (one round: --repeats 5 tells a lead from noise)");
    }
    lines.insert(0, format!("{head}:"));
    if !late.is_empty() {
        let names: Vec<&str> =
            late.iter().map(|row| short_name(&row.model)).collect();
        lines.push(format!(
            "  left out, customers late ‡: {}",
            names.join(", ")
        ));
    }
    lines
}

/// Whether `a` was ahead of `b` (lower) in every round both ran, paired
/// by round: interleaved rounds share the machine's state of the moment.
fn won_every_round(
    a: &Row,
    b: &Row,
    figure: &dyn Fn(&Figures) -> Option<f64>,
) -> bool {
    let pairs: Vec<(f64, f64)> = a
        .rounds
        .iter()
        .zip(&b.rounds)
        .filter_map(|(x, y)| Some((figure(x)?, figure(y)?)))
        .collect();
    !pairs.is_empty() && pairs.iter().all(|(x, y)| x < y)
}

/// The book's two tables for a stage: time (what customers saw) and
/// cost (what it took), split so that each fits the book's column. Names
/// are short (the full one in a tooltip), figures never break inside, and
/// a spread says its unit once (`crate::book` has the forms).
pub fn markdown(stage: &Stage, rows: &[Row], limit: Duration) -> String {
    use crate::book::{figure, maybe, model_label, span, unbroken};
    let mut md = String::new();
    let model = |row: &Row| {
        let mut label = model_label(&row.model);
        if let Some(w) = waiters_of(row) {
            let _ = write!(label, " ×{w}");
        }
        if row.note.is_some() {
            label.push_str(" †");
        }
        if row.late(stage) {
            label.push_str(" ‡");
        }
        label
    };
    // The min–max columns only where some row has rounds to spread.
    let spread =
        |row: &Row, of: fn(&crate::measure::Spread) -> Option<Range>| match row
            .spread
            .as_ref()
            .and_then(of)
        {
            Some(Range(lo, hi)) if row.repeats > 1 => span(lo, hi),
            _ => String::new(),
        };
    let ranges = rows.iter().any(|r| r.repeats > 1 && r.spread.is_some());
    let (head, rule) = if ranges {
        (" makespan | min–max |", "---:|---:|")
    } else {
        (" makespan |", "---:|")
    };
    let _ = write!(
        md,
        "| model | cooks |{head} efficiency | counter wait p50 | p99 | \
         latency p99 | arrival lag p99 |\n|---|---:|{rule}---:|---:|---:|\
         ---:|---:|\n",
    );
    let blanks = if ranges { 6 } else { 5 };
    for row in rows {
        let cells = match &row.outcome {
            Outcome::Ok(r) => {
                let mut cells = figure(r.makespan_s);
                if ranges {
                    let _ = write!(
                        cells,
                        " | {}",
                        spread(row, |s| Some(s.makespan_s))
                    );
                }
                let _ = write!(
                    cells,
                    " | {} | {} | {} | {} | {}",
                    percent(row.efficiency(stage)),
                    maybe(r.counter_wait.map(|p| p.p50)),
                    maybe(r.counter_wait.map(|p| p.p99)),
                    maybe(r.order_latency.map(|p| p.p99)),
                    maybe(r.arrival_lag.map(|p| p.p99)),
                );
                cells
            }
            // What a run with no figures came to, the reason (a failure's
            // or a skip's) listed under the table, where it has room.
            other => {
                let what = match other {
                    Outcome::Dnf => format!(
                        "DNF {}",
                        unbroken(&format!(
                            "(> {})",
                            seconds(limit.as_secs_f64())
                        ))
                    ),
                    Outcome::Failed(_) => "FAILED".to_owned(),
                    _ => "skipped".to_owned(),
                };
                format!("{what}{}", " |".repeat(blanks))
            }
        };
        let _ =
            writeln!(md, "| {} | {} | {cells} |", model(row), cooks_cell(row));
    }
    let (head, rule) = if ranges {
        (" CPU | min–max |", "---:|---:|")
    } else {
        (" CPU |", "---:|")
    };
    let _ = write!(
        md,
        "\n| model | cooks | threads (sampled) | peak PSS |{head}\n\
         |---|---:|---:|---:|{rule}\n",
    );
    for row in rows {
        let Outcome::Ok(r) = &row.outcome else {
            continue;
        };
        let mut cpu = maybe(r.cpu_s);
        if ranges {
            let _ = write!(cpu, " | {}", spread(row, |s| s.cpu_s));
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {cpu} |",
            model(row),
            cooks_cell(row),
            r.peak_threads.map_or_else(na, |n| n.to_string()),
            r.peak_pss_bytes
                .map_or_else(na, |b| unbroken(&mebibytes(b))),
        );
    }
    if rows.iter().any(|row| row.late(stage)) {
        md.push_str(
            "\n‡ customers late: their arrival lag p99 passed twice the \
             floor's plus 1 ms, so the row measures the customers too and is \
             left out of the verdict.\n",
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
            rounds: Vec::new(),
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
            floor: None,
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

    /// A verified row with one figure per round: makespans in seconds,
    /// counter waits and CPU alike, arrival lag p99 `lag`.
    fn measured(model: &str, makespans: &[f64], lag: f64) -> Row {
        let mut sorted = makespans.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[(sorted.len() - 1) / 2];
        let json = format!(
            r#"{{"schema_version":3,"model":"m","preset":"lunch-rush",
            "seed":1,"orders":1,"cooks":2,"time_scale":1.0,"served":1,
            "checksum":"0x0","makespan_s":{median},"cpu_s":{median},
            "counter_wait":{{"p50":0.1,"p99":{median},"max":1.0}},
            "order_latency":null,"connect_wait":null,
            "arrival_lag":{{"p50":0.0,"p99":{lag},"max":{lag}}},
            "customers_cpu_s":null,"connection_cap":1,"held_at_cap":0,
            "peak_rss_bytes":10,"peak_threads":3,"interrupted":false,
            "host":{{"cores":2,"os":"linux","arch":"x86_64"}}}}"#
        );
        let report: Report = serde_json::from_str(&json).unwrap();
        Row {
            model: model.to_owned(),
            args: Vec::new(),
            note: None,
            outcome: Outcome::Ok(Box::new(report)),
            repeats: makespans.len() as u32,
            spread: None,
            cooks_given: None,
            rounds: makespans
                .iter()
                .map(|&m| Figures {
                    makespan_s: m,
                    counter_wait_p99: Some(m),
                    cpu_s: Some(m),
                })
                .collect(),
        }
    }

    fn stage_with_floor(lag: f64) -> Stage {
        Stage {
            preset: restaurant::Preset::LunchRush,
            orders: 500,
            seed: 1,
            time_scale: 1.0,
            cores: 2,
            lower_bound: Duration::from_secs(1),
            expected: "0x0".to_owned(),
            floor: Some(Floor {
                counter_wait_p99_s: 0.0005,
                arrival_lag_p99_s: lag,
            }),
        }
    }

    #[test]
    fn one_round_names_no_single_winner_among_ties() {
        let stage = stage_with_floor(0.0001);
        // 1.000 and 1.002 s are within 5%: tied, and both named.
        let rows = [
            measured("concurrency-tokio", &[1.002], 0.0),
            measured("concurrency-smol", &[1.000], 0.0),
            measured("sequential", &[4.0], 0.0),
        ];
        let lines = verdict(&stage, &rows);
        let fastest = lines.iter().find(|l| l.contains("fastest")).unwrap();
        assert!(fastest.contains("tied"), "{fastest}");
        assert!(fastest.contains("smol") && fastest.contains("tokio"));
        assert!(!fastest.contains("sequential"), "{fastest}");
        assert!(lines[0].contains("one round"), "{lines:?}");
    }

    #[test]
    fn a_long_tie_names_the_closest_and_counts_the_rest() {
        let stage = stage_with_floor(0.0001);
        let rows: Vec<Row> = (0..7)
            .map(|i| measured(&format!("m{i}"), &[1.0 + i as f64 * 1e-3], 0.0))
            .collect();
        let lines = verdict(&stage, &rows);
        let fastest = lines.iter().find(|l| l.contains("fastest")).unwrap();
        assert!(fastest.contains("7 tied"), "{fastest}");
        assert!(fastest.contains("m0") && fastest.contains("m3"));
        assert!(!fastest.contains("m4"), "{fastest}");
        assert!(fastest.ends_with("and 3 more"), "{fastest}");
    }

    #[test]
    fn a_lead_is_beyond_noise_only_when_it_holds_in_every_round() {
        let stage = stage_with_floor(0.0001);
        // Ahead on the median by far more than 5%, but behind in round 2.
        let rows = [
            measured("concurrency-tokio", &[1.0, 3.0, 1.0], 0.0),
            measured("concurrency-smol", &[2.0, 2.0, 2.0], 0.0),
        ];
        let lines = verdict(&stage, &rows);
        let fastest = lines.iter().find(|l| l.contains("fastest")).unwrap();
        assert!(fastest.contains("within noise"), "{fastest}");
        // Ahead in every round: beyond noise.
        let rows = [
            measured("concurrency-tokio", &[1.0, 1.5, 1.0], 0.0),
            measured("concurrency-smol", &[2.0, 2.0, 2.0], 0.0),
        ];
        let lines = verdict(&stage, &rows);
        let fastest = lines.iter().find(|l| l.contains("fastest")).unwrap();
        assert!(fastest.contains("beyond noise"), "{fastest}");
        assert!(fastest.starts_with("  fastest: tokio"), "{fastest}");
    }

    #[test]
    fn a_row_whose_customers_were_late_is_marked_and_left_out() {
        // The floor's lag is 1 ms: late past 2 × 1 + 1 = 3 ms.
        let stage = stage_with_floor(0.001);
        let rows = [
            measured("concurrency-tokio", &[0.5], 0.004),
            measured("concurrency-smol", &[1.0], 0.002),
        ];
        assert!(rows[0].late(&stage) && !rows[1].late(&stage));
        let lines = verdict(&stage, &rows);
        let fastest = lines.iter().find(|l| l.contains("fastest")).unwrap();
        assert!(fastest.contains("smol") && !fastest.contains("tokio"));
        assert!(lines.last().unwrap().contains("late ‡: tokio"), "{lines:?}");
        let text = table(&stage, &rows, Duration::from_secs(10), false, 100)
            .to_string();
        assert!(text.contains("tokio ‡"), "{text}");
        let md = markdown(&stage, &rows, Duration::from_secs(10));
        assert!(md.contains("`tokio`</abbr> ‡"), "{md}");
        assert!(md.contains("‡ customers late"), "{md}");
    }

    #[test]
    fn every_row_divides_by_the_stage_bound() {
        let stage = stage_with_floor(0.0001);
        let row = measured("concurrency-tokio", &[1.25], 0.0);
        assert_eq!(row.efficiency(&stage), Some(0.8));
    }
}
