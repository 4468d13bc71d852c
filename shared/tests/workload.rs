//! The workload: determinism, the presets' shapes, and a pinned checksum.

use std::time::Duration;

use restaurant::{
    NOMINAL_UNIT, Order, Preset, RING_UP, Step, Workload, kernel,
};

#[test]
fn a_fixed_workload_keeps_its_checksum() {
    // Pinned: if this changes, generation, the kernel or the digest rule
    // changed (it last did when orders began to travel as lines), and every
    // figure in the book with it. Update it only on purpose.
    let workload = Workload::generate(Preset::LunchRush, 64, 7);
    assert_eq!(
        workload.expected_checksum().to_string(),
        "0x0355c86c7f9a8e3c"
    );
}

#[test]
fn generation_is_deterministic() {
    for preset in Preset::ALL {
        let a = Workload::generate(preset, 300, 5);
        let b = Workload::generate(preset, 300, 5);
        assert_eq!(a.expected_checksum(), b.expected_checksum());
        for (x, y) in a.orders().iter().zip(b.orders()) {
            assert_eq!(x.id(), y.id());
            assert_eq!(x.arrival(), y.arrival());
            assert_eq!(x.dish(), y.dish());
            assert_eq!(x.steps(), y.steps());
        }
    }
}

#[test]
fn seeds_and_presets_give_different_workloads() {
    let a = Workload::generate(Preset::LunchRush, 100, 1);
    let b = Workload::generate(Preset::LunchRush, 100, 2);
    let c = Workload::generate(Preset::BigOrder, 100, 1);
    assert_ne!(a.expected_checksum(), b.expected_checksum());
    assert_ne!(a.last_arrival(), b.last_arrival());
    assert_ne!(a.expected_checksum(), c.expected_checksum());
}

#[test]
fn ids_count_up_and_arrivals_never_go_back() {
    for preset in Preset::ALL {
        let w = Workload::generate(preset, 500, 3);
        for (i, pair) in w.orders().windows(2).enumerate() {
            assert_eq!(pair[0].id(), i as u64);
            assert!(pair[0].arrival() <= pair[1].arrival(), "{preset}");
        }
    }
}

#[test]
fn time_scale_divides_waiting_and_keeps_the_checksum() {
    let plain = Workload::generate(Preset::Takeout, 200, 9);
    let fast = Workload::generate_scaled(Preset::Takeout, 200, 9, 10.0);
    assert_eq!(plain.expected_checksum(), fast.expected_checksum());
    assert_eq!(plain.total_work(), fast.total_work());
    let ratio =
        plain.total_simmer().as_secs_f64() / fast.total_simmer().as_secs_f64();
    // Durations are whole nanoseconds, so the ratios are close, not exact.
    assert!((ratio - 10.0).abs() < 1e-3, "simmer ratio {ratio}");
    let ratio =
        plain.last_arrival().as_secs_f64() / fast.last_arrival().as_secs_f64();
    assert!((ratio - 10.0).abs() < 1e-3, "arrival ratio {ratio}");
}

#[test]
fn every_dish_has_a_chop() {
    for preset in Preset::ALL {
        let w = Workload::generate(preset, 1000, 1);
        for order in w.orders() {
            assert!(
                order.steps().iter().any(|s| matches!(s, Step::Chop(_))),
                "{} has no chop",
                order.dish()
            );
        }
    }
}

fn chop_units(order: &restaurant::Order) -> u64 {
    order
        .steps()
        .iter()
        .map(|s| match s {
            Step::Chop(w) => u64::from(w.units()),
            Step::Simmer(_) => 0,
        })
        .sum()
}

#[test]
fn banquet_guests_all_arrive_at_once_and_chop_hard() {
    let w = Workload::generate(Preset::Banquet, 400, 1);
    assert!(w.orders().iter().all(|o| o.arrival() == Duration::ZERO));
    let work = Duration::from_micros(w.total_work());
    assert!(work > w.total_simmer() * 2, "banquet is mostly chopping");
}

#[test]
fn takeout_is_a_burst_of_simmering() {
    let w = Workload::generate(Preset::Takeout, 5000, 1);
    // About half a second: 100 µs apart on average, as fast as the
    // customers can pace connections on two cores.
    let last = w.last_arrival();
    assert!(last > Duration::from_millis(400), "{last:?}");
    assert!(last < Duration::from_millis(600), "{last:?}");
    let work = Duration::from_micros(w.total_work());
    assert!(w.total_simmer() > work * 100, "takeout is waiting");
}

#[test]
fn big_order_is_light_with_a_few_long_chops() {
    let w = Workload::generate(Preset::BigOrder, 500, 1);
    let (big, ordinary): (Vec<_>, Vec<_>) =
        w.orders().iter().partition(|o| chop_units(o) >= 100_000);
    assert!((3..=10).contains(&big.len()), "{} big orders", big.len());
    assert!(big.iter().all(|o| chop_units(o) <= 200_000));
    // The ordinary chops use at most half a core on average (units are
    // about a microsecond each), so the rush alone never fills the kitchen.
    let ordinary_work: u64 = ordinary.iter().map(|o| chop_units(o)).sum();
    let cores_used =
        ordinary_work as f64 * 1e-6 / w.last_arrival().as_secs_f64();
    assert!(
        cores_used <= 0.5,
        "ordinary chops use {cores_used:.2} cores"
    );
}

#[test]
fn presets_have_their_documented_sizes() {
    let sizes: Vec<_> =
        Preset::ALL.iter().map(|p| p.default_orders()).collect();
    assert_eq!(sizes, [500, 5000, 400, 500, 150]);
}

#[test]
fn expected_digests_match_real_chopping() {
    // The kit and `compare` rely on computing digests without chopping;
    // check that shortcut against the real kernel on a few orders.
    let w = Workload::generate(Preset::LunchRush, 5, 4);
    for order in w.orders() {
        let mut ticket = restaurant::wire::parse_order(&order.line()).unwrap();
        ticket.ring_up();
        let mut plate = restaurant::Plate::start(&ticket);
        for step in ticket.steps() {
            if let Step::Chop(work) = *step {
                plate.chop(work);
            }
        }
        assert_eq!(plate.digest(), restaurant::expected_digest(order));
    }
    // And the kernel's own shortcut, on a longer run.
    assert_eq!(kernel::work(3, 2000), kernel::jump(3, 2000));
}

#[test]
fn the_lower_bound_is_the_larger_of_cores_and_the_cashier() {
    let unit = Duration::from_micros(1);
    // Banquet: everyone at once, heavy chopping: the cores are the limit,
    // and halving the cores doubles it.
    let w = Workload::generate(Preset::Banquet, 400, 1);
    let (one, two) = (w.lower_bound(unit, 1), w.lower_bound(unit, 2));
    assert_eq!(one, Duration::from_micros(w.total_work()));
    assert_eq!(two, one / 2);
    // Takeout: the last arrival plus its simmer dominates; cores hardly
    // matter.
    let w = Workload::generate(Preset::Takeout, 5000, 1);
    let bound = w.lower_bound(unit, 64);
    assert!(bound >= w.last_arrival());
    assert!(bound > Duration::from_millis(400));
    assert_eq!(bound, w.lower_bound(unit, 128));
    // No orders, nothing to wait for.
    let w = Workload::generate(Preset::LunchRush, 0, 1);
    assert_eq!(w.lower_bound(unit, 2), Duration::ZERO);
}

#[test]
fn the_lower_bound_counts_only_work_that_has_arrived() {
    let unit = Duration::from_micros(1);
    // Lunch rush on many cores: the bound is set by when orders arrive,
    // so it is past the last arrival, and far above the work ÷ cores the
    // old bound used.
    let w = Workload::generate(Preset::LunchRush, 500, 1);
    let bound = w.lower_bound(unit, 2);
    assert!(bound > w.last_arrival());
    assert!(bound > unit * (w.total_work() / 2) as u32);
    // Arrivals that come later by d move the bound by exactly d.
    let late = Duration::from_millis(30);
    let shifted = w.lower_bound_at(|o| o.arrival() + late, unit, 2);
    assert_eq!(shifted, bound + late);
    // A single late customer can only raise it.
    let one_late = w.lower_bound_at(
        |o| o.arrival() + if o.id() == 0 { late } else { Duration::ZERO },
        unit,
        2,
    );
    assert!(one_late >= bound);
}

#[test]
fn slow_talkers_take_ten_to_fifty_milliseconds_and_others_none() {
    let w = Workload::generate(Preset::SlowTalkers, 150, 1);
    for order in w.orders() {
        let talk = order.talk();
        assert!(
            (Duration::from_millis(10)..Duration::from_millis(50))
                .contains(&talk),
            "order {} talks for {talk:?}",
            order.id()
        );
    }
    // The time scale divides talking too.
    let fast = Workload::generate_scaled(Preset::SlowTalkers, 150, 1, 10.0);
    assert_eq!(fast.orders()[3].talk(), w.orders()[3].talk() / 10);
    // Talk is part of each order's own chain in the lower bound.
    let unit = Duration::from_micros(1);
    let first = &w.orders()[0];
    assert!(w.lower_bound(unit, 64) >= first.arrival() + first.talk());
    for preset in [Preset::LunchRush, Preset::Takeout, Preset::BigOrder] {
        let w = Workload::generate(preset, 50, 1);
        assert!(w.orders().iter().all(|o| o.talk().is_zero()), "{preset}");
    }
}

/// How long `order` holds a cook of a pool whose cooks block: its chops
/// at the nominal unit (the ring-up is the cashier's) and its simmers.
fn hold(order: &Order) -> Duration {
    let chops = order.work() - u64::from(RING_UP.units());
    NOMINAL_UNIT * u32::try_from(chops).unwrap() + order.simmer()
}

/// The most orders in the kitchen at once, counted the slow way: the
/// overlap is largest at some order's arrival, so count, at each arrival,
/// the orders whose [arrival, arrival + hold) holds it.
fn brute_force_peak(w: &Workload) -> usize {
    let orders = w.orders();
    orders
        .iter()
        .map(|at| {
            orders
                .iter()
                .filter(|o| {
                    o.arrival() <= at.arrival()
                        && at.arrival() < o.arrival() + hold(o)
                })
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn auto_sizes_blocking_pools_for_the_peak_in_the_kitchen() {
    let cores = 2;
    // A night of N orders all arriving at once (a banquet): all N are in
    // the kitchen together, so N cooks, but never fewer than the cores.
    for n in [1, 2, 3, 40, 400] {
        let w = Workload::generate(Preset::Banquet, n, 1);
        assert!(w.orders().iter().all(|o| o.arrival().is_zero()));
        assert_eq!(w.peak_orders_in_kitchen(), n);
        assert_eq!(w.cooks_for_peak(cores), n.max(cores), "{n} at once");
    }
    // Orders that never overlap: one at a time, so the cores.
    let apart = (1..1000)
        .map(|seed| Workload::generate(Preset::SlowTalkers, 4, seed))
        .find(|w| {
            w.orders()
                .windows(2)
                .all(|p| p[0].arrival() + hold(&p[0]) <= p[1].arrival())
        })
        .expect("some seed spaces 4 slow talkers apart");
    assert_eq!(apart.peak_orders_in_kitchen(), 1);
    assert_eq!(apart.cooks_for_peak(cores), cores);
    assert_eq!(apart.cooks_for_peak(8), 8);
    // No orders: the cores.
    let empty = Workload::generate(Preset::LunchRush, 0, 1);
    assert_eq!(empty.peak_orders_in_kitchen(), 0);
    assert_eq!(empty.cooks_for_peak(8), 8);
    // Takeout: the burst arrives in about 100 ms and simmers for about
    // half a second, so nearly every order is in at once; never more than
    // the orders (the old 100 ms rule said about 30,600).
    let takeout = Workload::generate(Preset::Takeout, 5000, 1);
    let peak = takeout.cooks_for_peak(cores);
    assert!(peak <= 5000, "takeout: {peak}");
    assert!(peak > 4000, "takeout: {peak}");
    // The sweep agrees with counting the slow way, on every preset.
    for preset in Preset::ALL {
        for seed in 1..4 {
            let w = Workload::generate(preset, 300, seed);
            let brute = brute_force_peak(&w);
            assert_eq!(w.peak_orders_in_kitchen(), brute, "{preset} {seed}");
            assert_eq!(w.cooks_for_peak(cores), brute.max(cores));
        }
    }
    // And on a time-scaled night, whose chops are not scaled.
    let scaled = Workload::generate_scaled(Preset::BigOrder, 300, 1, 1000.0);
    assert_eq!(scaled.peak_orders_in_kitchen(), brute_force_peak(&scaled));
}

#[test]
fn a_unit_is_measured_in_a_plausible_range() {
    // Wide on purpose: the machine is shared and the build may be slow.
    let unit = kernel::measure_unit();
    assert!(unit > Duration::from_nanos(10), "{unit:?}");
    assert!(unit < Duration::from_micros(100), "{unit:?}");
}

#[test]
fn every_quick_size_keeps_its_presets_character() {
    for preset in Preset::ALL {
        let (orders, scale) = preset.quick();
        let w = Workload::generate_scaled(preset, orders, 1, scale);
        // Arrivals the customers can pace: 100 µs apart on average at
        // least, or all at once for the banquet.
        if preset == Preset::Banquet {
            assert_eq!(w.last_arrival(), Duration::ZERO);
        } else {
            let gap = w.last_arrival() / (orders as u32 - 1);
            assert!(gap >= Duration::from_micros(95), "{preset}: {gap:?}");
        }
    }
    // big-order keeps a cake; takeout keeps its long simmers.
    let (orders, scale) = Preset::BigOrder.quick();
    let w = Workload::generate_scaled(Preset::BigOrder, orders, 1, scale);
    assert!(w.orders().iter().any(|o| chop_units(o) >= 100_000));
    let (orders, scale) = Preset::Takeout.quick();
    let w = Workload::generate_scaled(Preset::Takeout, orders, 1, scale);
    assert!(
        w.orders()
            .iter()
            .all(|o| o.simmer() >= Duration::from_millis(400))
    );
}
