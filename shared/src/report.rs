//! The report of a run: a short text for people, one JSON line for tools.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::customers::{Night, Stamps};
use crate::workload::{Checksum, Preset, Workload};

/// The version of the JSON report's layout.
///
/// 3: `lower_bound_s` is from the scheduled arrivals; the bound from the
/// moments customers really walked in is `bound_as_kept_s`; new
/// `kitchen_time` and `stamps`; memory is `peak_pss_bytes` for every
/// model.
pub const SCHEMA_VERSION: u32 = 3;

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

/// What a run cost the server, measured around the model's `serve`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// CPU time of the server (its worker processes included), measuring
    /// left out.
    pub cpu: Option<Duration>,
    /// Peak memory of the server: the largest summed proportional set
    /// size (PSS) of its tree of processes, sampled; a process alone is a
    /// tree of one.
    pub peak_pss_bytes: Option<u64>,
    /// Most threads alive at once in the server, measuring left out.
    pub peak_threads: Option<u64>,
}

/// One run, as `--json` prints it.
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
    /// The cooks the model ran with (0 when the customers did not know).
    pub cooks: u64,
    /// The waiters it ran with, for a model that has several; absent for
    /// a model with one cashier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiters: Option<u64>,
    /// The divisor the customers applied to arrivals and simmers.
    pub time_scale: f64,
    /// Plates served with the right digest.
    pub served: u64,
    /// `0x%016x`, the same for every correct model on the same workload.
    pub checksum: String,
    /// Opening to the last plate, in seconds.
    pub makespan_s: f64,
    /// The physical limit for this workload, in seconds: no model can
    /// finish sooner with every customer arriving on schedule
    /// (`Workload::lower_bound`), at the unit of chopping the customers
    /// timed after the night; `null` when not measured. Efficiency = this
    /// ÷ makespan. (`compare --json` puts its stage's bound here, from
    /// one unit timed once for every run of the stage.)
    #[serde(default)]
    pub lower_bound_s: Option<f64>,
    /// The same bound with every order arriving when its customer really
    /// walked in: the schedule as the customers kept it. A customer who
    /// walked in late moves it later, so it is never a divisor: it shows
    /// how much of the makespan the customers' own lateness explains.
    #[serde(default)]
    pub bound_as_kept_s: Option<f64>,
    /// CPU time of the server, in seconds; `null` where unknown.
    pub cpu_s: Option<f64>,
    /// `NEXT` received − walked in: how long customers stood at the door
    /// before anyone attended.
    pub counter_wait: Option<Percentiles>,
    /// `PLATE` received − walked in.
    pub order_latency: Option<Percentiles>,
    /// `PLATE` received − order line sent: the kitchen's time, which the
    /// customer's own talking cannot inflate.
    #[serde(default)]
    pub kitchen_time: Option<Percentiles>,
    /// Connected − walked in.
    pub connect_wait: Option<Percentiles>,
    /// Walked in − scheduled arrival: the customers' own lateness.
    pub arrival_lag: Option<Percentiles>,
    /// Where the moments `NEXT` and `PLATE` arrived came from: `kernel`
    /// (receive stamps) or `read` (when the customers read them).
    #[serde(default = "read_stamps")]
    pub stamps: Stamps,
    /// The customers' own CPU time, in seconds.
    pub customers_cpu_s: Option<f64>,
    /// The most connections the customers kept open at once.
    pub connection_cap: u64,
    /// Customers who waited for a free connection before walking in: when
    /// not zero, the schedule was not kept and the arrival lag says by
    /// how much.
    pub held_at_cap: u64,
    /// Peak memory of the server in bytes: the largest summed PSS of its
    /// tree of processes (itself, and its workers or broker) seen by a
    /// sampler, so that pages they share are counted once and a process
    /// alone is measured the same way. (Before schema 3, a process alone
    /// reported its peak RSS under the name `peak_rss_bytes`.)
    #[serde(alias = "peak_pss_bytes")]
    pub peak_pss_bytes: Option<u64>,
    /// Most threads alive at once in the server (sampled).
    pub peak_threads: Option<u64>,
    /// Whether the run was interrupted (Ctrl-C, SIGTERM) before every
    /// customer came in.
    pub interrupted: bool,
    /// The machine.
    pub host: Host,
}

/// Reports from before schema 3 took every moment when it was read.
fn read_stamps() -> Stamps {
    Stamps::Read
}

impl Report {
    /// The report of a night: the customers' timings and the server's
    /// cost. `checksum` is what verification computed.
    pub fn new(
        model: &str,
        workload: &Workload,
        cooks: usize,
        night: &Night,
        checksum: Checksum,
        cost: Cost,
    ) -> Report {
        let orders = workload.orders();
        let visits = &night.visits;
        let between =
            |from: fn(&crate::customers::Visit) -> Option<Duration>,
             to: fn(&crate::customers::Visit) -> Option<Duration>| {
                Percentiles::of(
                    visits
                        .iter()
                        .filter_map(|v| Some(to(v)?.saturating_sub(from(v)?)))
                        .collect(),
                )
            };
        let lags = orders
            .iter()
            .zip(visits)
            .filter_map(|(o, v)| Some(v.walked_in?.saturating_sub(o.arrival())))
            .collect();
        let served = visits
            .iter()
            .filter(|v| v.digest.is_some() && v.trouble.is_none())
            .count();
        let makespan = visits
            .iter()
            .filter_map(|v| v.plated)
            .max()
            .unwrap_or_default();
        Report {
            schema_version: SCHEMA_VERSION,
            model: model.to_owned(),
            preset: workload.preset(),
            seed: workload.seed(),
            orders: orders.len() as u64,
            cooks: cooks as u64,
            waiters: None,
            time_scale: workload.time_scale(),
            served: served as u64,
            checksum: checksum.to_string(),
            makespan_s: makespan.as_secs_f64(),
            lower_bound_s: None,
            bound_as_kept_s: None,
            cpu_s: cost.cpu.map(|d| d.as_secs_f64()),
            counter_wait: between(|v| v.walked_in, |v| v.greeted),
            order_latency: between(|v| v.walked_in, |v| v.plated),
            kitchen_time: between(|v| v.ordered, |v| v.plated),
            connect_wait: between(|v| v.walked_in, |v| v.connected),
            arrival_lag: Percentiles::of(lags),
            stamps: night.stamps,
            customers_cpu_s: night.cpu.map(|d| d.as_secs_f64()),
            connection_cap: night.cap as u64,
            held_at_cap: night.held_at_cap,
            peak_pss_bytes: cost.peak_pss_bytes,
            peak_threads: cost.peak_threads,
            interrupted: night.interrupted,
            host: Host::this(),
        }
    }

    /// Sets the workload's lower bound (arrivals as scheduled) and the
    /// bound as the schedule was kept (each order's arrival the moment its
    /// customer walked in; the scheduled one for a customer who never
    /// did), one unit of work taking `unit`, on this machine's cores.
    pub fn with_lower_bound(
        mut self,
        workload: &Workload,
        night: &Night,
        unit: Duration,
    ) -> Report {
        let walked: Vec<Option<Duration>> =
            night.visits.iter().map(|v| v.walked_in).collect();
        let bound = workload.lower_bound_at(
            |order| {
                walked
                    .get(order.id() as usize)
                    .copied()
                    .flatten()
                    .unwrap_or(order.arrival())
            },
            unit,
            self.host.cores,
        );
        self.bound_as_kept_s = Some(bound.as_secs_f64());
        let scheduled = workload.lower_bound(unit, self.host.cores);
        self.lower_bound_s = Some(scheduled.as_secs_f64());
        self
    }

    /// Lower bound ÷ makespan: how close the run came to the physical
    /// limit; `None` when either is unknown or zero.
    pub fn efficiency(&self) -> Option<f64> {
        let bound = self.lower_bound_s?;
        (self.makespan_s > 0.0).then(|| bound / self.makespan_s)
    }

    /// The compact one-line JSON form.
    pub fn to_json(&self) -> String {
        // A Report is plain data (strings, numbers, options): serialising
        // it cannot fail.
        serde_json::to_string(self).expect("a report always serialises")
    }
}

/// The arrival lag's 99th percentile beyond which the text report says
/// the customers did not keep their schedule: a millisecond, well above
/// what the pacer misses by on an idle machine.
const SCHEDULE_SLACK: f64 = 1e-3;

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

/// `n` and `noun`, plural but for one: "1 order", "5,000 orders" (no
/// separators: "5000 orders").
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
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
            "{}: {} of {}, seed {}, {}",
            self.model,
            count(self.orders, "order"),
            self.preset,
            self.seed,
            count(self.cooks, "cook"),
        )?;
        if let Some(waiters) = self.waiters {
            write!(
                f,
                ", {waiters} waiter{}",
                if waiters == 1 { "" } else { "s" }
            )?;
        }
        if self.time_scale != 1.0 {
            write!(f, ", time ÷{}", self.time_scale)?;
        }
        writeln!(f)?;
        if self.interrupted {
            writeln!(
                f,
                "  interrupted    served {} of {}, right digests",
                self.served, self.orders
            )?;
        } else {
            writeln!(
                f,
                "  verified       {} served once each, right digests, \
                 checksum {}",
                self.served, self.checksum
            )?;
        }
        writeln!(
            f,
            "  makespan       {}   server CPU {}   customers' CPU {}",
            seconds(self.makespan_s),
            self.cpu_s.map_or_else(na, seconds),
            self.customers_cpu_s.map_or_else(na, seconds)
        )?;
        if let (Some(bound), Some(efficiency)) =
            (self.lower_bound_s, self.efficiency())
        {
            writeln!(
                f,
                "  lower bound    {}   efficiency {:.0}% (no model can \
                 finish sooner on {} cores)",
                seconds(bound),
                efficiency * 100.0,
                self.host.cores
            )?;
        }
        for (name, p) in [
            ("counter wait ", self.counter_wait),
            ("kitchen time ", self.kitchen_time),
            ("order latency", self.order_latency),
            ("connect wait ", self.connect_wait),
            ("arrival lag  ", self.arrival_lag),
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
        if self.stamps == Stamps::Read {
            writeln!(
                f,
                "  stamps         read times: this OS gave no receive \
                 stamps, so the customers' own delays are in the waits"
            )?;
        }
        let late = self.arrival_lag.map_or(0.0, |p| p.p99);
        if self.held_at_cap > 0 {
            writeln!(
                f,
                "  schedule       not kept: {} waited for one of {}",
                count(self.held_at_cap, "customer"),
                count(self.connection_cap, "connection")
            )?;
        } else if late > SCHEDULE_SLACK {
            writeln!(
                f,
                "  schedule       not kept: the customers could not walk in \
                 as fast as it asked (arrival lag above)"
            )?;
        }
        let threads = match self.peak_threads {
            Some(1) => "1 thread".to_owned(),
            Some(n) => format!("{n} threads"),
            None => "n/a threads".to_owned(),
        };
        write!(
            f,
            "  server cost    {threads} alive at peak (sampled), {} peak PSS",
            self.peak_pss_bytes.map_or_else(na, mebibytes)
        )
    }
}
