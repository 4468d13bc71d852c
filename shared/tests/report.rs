//! The report: exact percentiles and its pinned JSON layout.

use std::time::Duration;

use restaurant::report::{Cost, Percentiles, Report};
use restaurant::{Preset, Workload, verify};

#[test]
fn percentiles_are_exact_nearest_rank() {
    let values = (1..=100).rev().map(Duration::from_secs).collect();
    let p = Percentiles::of(values).unwrap();
    assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));

    let p = Percentiles::of(vec![Duration::from_secs(7)]).unwrap();
    assert_eq!((p.p50, p.p99, p.max), (7.0, 7.0, 7.0));

    // With 10 values, p99 is the largest: nearest rank ⌈0.99·10⌉ = 10.
    let values = (1..=10).map(Duration::from_secs).collect();
    let p = Percentiles::of(values).unwrap();
    assert_eq!((p.p50, p.p99, p.max), (5.0, 10.0, 10.0));

    assert_eq!(Percentiles::of(Vec::new()), None);
}

/// A night of `workload` with every plate right, its times made up.
fn night(workload: &Workload) -> restaurant::customers::Night {
    let ms = |n: u64| Some(Duration::from_millis(n));
    restaurant::customers::Night {
        visits: workload
            .orders()
            .iter()
            .map(|o| restaurant::customers::Visit {
                walked_in: Some(o.arrival() + Duration::from_micros(50)),
                connected: ms(1),
                greeted: ms(2),
                ordered: ms(2),
                rung: ms(3),
                plated: ms(9),
                digest: Some(restaurant::expected_digest(o)),
                trouble: None,
            })
            .collect(),
        interrupted: false,
        cap: 1000,
        held_at_cap: 0,
        cpu: Some(Duration::from_millis(3)),
        stamps: restaurant::customers::Stamps::Kernel,
        opened_at: std::time::SystemTime::now(),
    }
}

#[test]
fn the_json_report_has_the_pinned_fields() {
    let w = Workload::generate_scaled(Preset::BigOrder, 7, 2, 50.0);
    let night = night(&w);
    let checksum = verify(&w, &night).unwrap();
    let cost = Cost {
        cpu: Some(Duration::from_millis(5)),
        peak_pss_bytes: None,
        peak_threads: Some(1),
    };
    let report = Report::new("sequential", &w, 1, &night, checksum, cost);
    let json = report.to_json();
    assert!(!json.contains('\n'), "one line");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 3);
    assert_eq!(v["model"], "sequential");
    assert_eq!(v["preset"], "big-order");
    assert_eq!(v["seed"], 2);
    assert_eq!(v["orders"], 7);
    assert_eq!(v["cooks"], 1);
    assert_eq!(v["time_scale"], 50.0);
    assert_eq!(v["served"], 7);
    assert_eq!(v["checksum"], w.expected_checksum().to_string());
    assert!(v["checksum"].as_str().unwrap().len() == 18);
    assert_eq!(v["makespan_s"], 0.009);
    assert_eq!(v["cpu_s"], 0.005);
    assert_eq!(v["customers_cpu_s"], 0.003);
    for key in [
        "counter_wait",
        "kitchen_time",
        "order_latency",
        "connect_wait",
        "arrival_lag",
    ] {
        for p in ["p50", "p99", "max"] {
            assert!(v[key][p].is_f64(), "{key}.{p}");
        }
        assert!(v[key]["p50"].as_f64() <= v[key]["max"].as_f64());
    }
    assert_eq!(v["arrival_lag"]["max"], 50e-6);
    // Order sent at 2 ms, plate at 9 ms.
    assert_eq!(v["kitchen_time"]["max"], 0.007);
    assert_eq!(v["stamps"], "kernel");
    assert!(v["peak_pss_bytes"].is_null());
    assert_eq!(v["peak_threads"], 1);
    assert_eq!(v["interrupted"], false);
    assert!(v["host"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(v["host"]["os"], std::env::consts::OS);
    // And it reads back.
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn no_orders_gives_null_percentiles() {
    let w = Workload::generate(Preset::Takeout, 0, 1);
    let night = night(&w);
    let checksum = verify(&w, &night).unwrap();
    let report = Report::new("x", &w, 1, &night, checksum, Cost::default());
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(v["counter_wait"].is_null());
    assert!(v["order_latency"].is_null());
    assert_eq!(v["makespan_s"], 0.0);
}
