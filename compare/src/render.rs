//! The comparison as tables: comfy-table for the terminal, markdown for the
//! book. Both come from the same cells.

use std::fmt::Write;
use std::time::Duration;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use restaurant::report::{mebibytes, seconds};

use crate::run::Outcome;

/// One preset's workload, as run.
#[derive(Clone, Debug)]
pub struct Stage {
    pub preset: restaurant::Preset,
    pub orders: usize,
    pub seed: u64,
    pub time_scale: f64,
    pub cores: usize,
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

/// One model's result on one preset.
#[derive(Clone, Debug)]
pub struct Row {
    pub model: String,
    pub outcome: Outcome,
}

/// Column titles.
pub const HEADER: [&str; 10] = [
    "model",
    "makespan",
    "efficiency",
    "counter wait p50",
    "p99",
    "max",
    "latency p99",
    "threads",
    "peak RSS",
    "CPU",
];

/// The cells of one row, as text.
pub fn cells(stage: &Stage, row: &Row, limit: Duration) -> Vec<String> {
    let mut cells = vec![row.model.clone()];
    match &row.outcome {
        Outcome::Ok(r) => {
            let na = || "n/a".to_owned();
            let pct = |p: Option<restaurant::report::Percentiles>,
                       f: fn(_) -> f64| {
                p.map_or_else(na, |p| seconds(f(p)))
            };
            let efficiency = if r.makespan_s > 0.0 {
                format!(
                    "{:.0}%",
                    100.0 * stage.lower_bound.as_secs_f64() / r.makespan_s
                )
            } else {
                na()
            };
            cells.extend([
                seconds(r.makespan_s),
                efficiency,
                pct(r.counter_wait, |p| p.p50),
                pct(r.counter_wait, |p| p.p99),
                pct(r.counter_wait, |p| p.max),
                pct(r.order_latency, |p| p.p99),
                r.peak_threads.map_or_else(na, |n| n.to_string()),
                r.peak_rss_bytes.map_or_else(na, mebibytes),
                r.cpu_s.map_or_else(na, seconds),
            ]);
        }
        Outcome::Dnf => {
            cells.push(format!("DNF (> {})", seconds(limit.as_secs_f64())));
            cells.extend(std::iter::repeat_n(String::new(), HEADER.len() - 2));
        }
        Outcome::Failed(_) => {
            cells.push("FAILED".to_owned());
            cells.extend(std::iter::repeat_n(String::new(), HEADER.len() - 2));
        }
    }
    cells
}

/// A terminal table.
pub fn table(stage: &Stage, rows: &[Row], limit: Duration) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(HEADER);
    for row in rows {
        table.add_row(cells(stage, row, limit));
    }
    for column in table.column_iter_mut().skip(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table
}

/// A markdown table.
pub fn markdown(stage: &Stage, rows: &[Row], limit: Duration) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "| {} |", HEADER.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(HEADER.len() - 1));
    for row in rows {
        let _ = writeln!(md, "| {} |", cells(stage, row, limit).join(" | "));
    }
    md
}

/// The failures under a table, one line each.
pub fn failures(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|row| match &row.outcome {
            Outcome::Failed(why) => Some(format!("{}: {why}", row.model)),
            _ => None,
        })
        .collect()
}
