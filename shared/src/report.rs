//! The report of a run: a short text for people, one JSON line for tools.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plate::Plate;
use crate::workload::{Checksum, Preset, Workload};

/// The version of the JSON report's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Exact nearest-rank percentiles of a set of durations, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest value.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `values`; `None` when there are none.
    pub fn of(mut values: Vec<Duration>) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        // Nearest rank: the smallest value with at least q of the values at
        // or below it.
        let rank = |q: f64| {
            let n = values.len();
            let r = (q * n as f64).ceil() as usize;
            values[r.clamp(1, n) - 1].as_secs_f64()
        };
        Some(Percentiles {
            p50: rank(0.50),
            p99: rank(0.99),
            max: rank(1.0),
        })
    }
}

/// Facts about the machine a run came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Logical cores available to the process.
    pub cores: usize,
    /// `linux`, `macos`, `windows`, …
    pub os: String,
    /// `x86_64`, `aarch64`, …
    pub arch: String,
}

impl Host {
    /// This machine.
    pub fn this() -> Host {
        Host {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
        }
    }
}

/// What a run cost, measured around the model's `serve`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// CPU time of the service (its children included), measuring left out.
    pub cpu: Option<Duration>,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
    /// Most threads alive at once, measuring left out.
    pub peak_threads: Option<u64>,
}

/// One run, as `--json` prints it (DESIGN.md, "Report").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The package name, such as `concurrency-tokio`, or `sequential`.
    pub model: String,
    /// The workload preset.
    pub preset: Preset,
    /// The workload seed.
    pub seed: u64,
    /// Orders in the workload.
    pub orders: u64,
    /// The `--cooks` the model ran with.
    pub cooks: u64,
    /// The divisor applied to arrivals and simmers.
    pub time_scale: f64,
    /// Plates served (equal to `orders` in a verified run).
    pub served: u64,
    /// `0x%016x`, the same for every correct model on the same workload.
    pub checksum: String,
    /// Opening to the last plate, in seconds.
    pub makespan_s: f64,
    /// CPU time of the service, in seconds; `null` where the OS gives none.
    pub cpu_s: Option<f64>,
    /// Accepted − arrival: how long customers stood at the till.
    pub counter_wait: Option<Percentiles>,
    /// Served − arrival.
    pub order_latency: Option<Percentiles>,
    /// Peak resident memory in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Most threads alive at once in the service.
    pub peak_threads: Option<u64>,
    /// The machine.
    pub host: Host,
}

impl Report {
    /// The report of a verified run.
    pub fn new(
        model: &str,
        workload: &Workload,
        cooks: usize,
        plates: &[Plate],
        checksum: Checksum,
        cost: Cost,
    ) -> Report {
        let waits = plates
            .iter()
            .filter_map(|p| Some(p.accepted()?.saturating_sub(p.arrival())))
            .collect();
        let latencies = plates
            .iter()
            .filter_map(|p| Some(p.served()?.saturating_sub(p.arrival())))
            .collect();
        let makespan = plates
            .iter()
            .filter_map(Plate::served)
            .max()
            .unwrap_or_default();
        Report {
            schema_version: SCHEMA_VERSION,
            model: model.to_owned(),
            preset: workload.preset(),
            seed: workload.seed(),
            orders: workload.orders().len() as u64,
            cooks: cooks as u64,
            time_scale: workload.time_scale(),
            served: plates.len() as u64,
            checksum: checksum.to_string(),
            makespan_s: makespan.as_secs_f64(),
            cpu_s: cost.cpu.map(|d| d.as_secs_f64()),
            counter_wait: Percentiles::of(waits),
            order_latency: Percentiles::of(latencies),
            peak_rss_bytes: cost.peak_rss_bytes,
            peak_threads: cost.peak_threads,
            host: Host::this(),
        }
    }

    /// The compact one-line JSON form.
    pub fn to_json(&self) -> String {
        // A Report is plain data (strings, numbers, options): serialising
        // it cannot fail.
        serde_json::to_string(self).expect("a report always serialises")
    }
}

/// Seconds, written in the unit that reads best.
pub fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// Bytes, in MiB.
pub fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let na = || "n/a".to_owned();
        write!(
            f,
            "{}: {} orders of {}, seed {}, {} cook{}",
            self.model,
            self.orders,
            self.preset,
            self.seed,
            self.cooks,
            if self.cooks == 1 { "" } else { "s" },
        )?;
        if self.time_scale != 1.0 {
            write!(f, ", time ÷{}", self.time_scale)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  verified       {} served once each, right digests, checksum {}",
            self.served, self.checksum
        )?;
        writeln!(
            f,
            "  makespan       {}   CPU {}",
            seconds(self.makespan_s),
            self.cpu_s.map_or_else(na, seconds)
        )?;
        for (name, p) in [
            ("counter wait ", self.counter_wait),
            ("order latency", self.order_latency),
        ] {
            match p {
                Some(p) => writeln!(
                    f,
                    "  {name}  p50 {}   p99 {}   max {}",
                    seconds(p.p50),
                    seconds(p.p99),
                    seconds(p.max)
                )?,
                None => writeln!(f, "  {name}  n/a (no orders)")?,
            }
        }
        let threads = match self.peak_threads {
            Some(1) => "1 thread".to_owned(),
            Some(n) => format!("{n} threads"),
            None => "n/a threads".to_owned(),
        };
        write!(
            f,
            "  cost           {threads} at peak, {} peak RSS",
            self.peak_rss_bytes.map_or_else(na, mebibytes)
        )
    }
}
