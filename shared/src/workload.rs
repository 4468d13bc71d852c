//! The workload: presets, the menu, orders and their steps.
//!
//! Generation is deterministic from `(preset, orders, seed)`: the same three
//! give the same orders, the same dishes and the same arrival times on every
//! machine. Work is counted in kernel units, never in measured time, so every
//! model computes the same digests everywhere.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kernel;
use crate::recipe::{Step, Work};
use crate::wire;

/// The most orders a workload may have. Enough for every experiment in the
/// book, small enough that the orders and plates fit easily in memory.
pub const MAX_ORDERS: usize = 1_000_000;

/// The named workloads of the book.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Steady Poisson arrivals of mixed dishes (default).
    LunchRush,
    /// Thousands of orders in a half-second burst, mostly simmering:
    /// concurrency.
    Takeout,
    /// Hundreds of orders at once, mostly chopping (4 ms of chops and a
    /// 1–2 ms simmer per dish): parallelism.
    Banquet,
    /// A light lunch rush plus a few 100–200 ms chops: blocking.
    BigOrder,
    /// Customers who take 10–50 ms to say their order: a cashier who
    /// listens to one at a time falls behind; waiters, or a loop that
    /// listens to all at once, keep up.
    SlowTalkers,
}

impl Preset {
    /// Every preset, in the order the book presents them.
    pub const ALL: [Preset; 5] = [
        Preset::LunchRush,
        Preset::Takeout,
        Preset::Banquet,
        Preset::BigOrder,
        Preset::SlowTalkers,
    ];

    /// The preset's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Preset::LunchRush => "lunch-rush",
            Preset::Takeout => "takeout",
            Preset::Banquet => "banquet",
            Preset::BigOrder => "big-order",
            Preset::SlowTalkers => "slow-talkers",
        }
    }

    /// The default number of orders: sized so that the best model finishes
    /// in about a second on two cores.
    pub fn default_orders(self) -> usize {
        match self {
            Preset::LunchRush => 500,
            Preset::Takeout => 5000,
            Preset::Banquet => 400,
            Preset::BigOrder => 500,
            Preset::SlowTalkers => 150,
        }
    }
}

impl Preset {
    /// The `--quick` size of the preset: `(orders, time scale)`, small and
    /// fast but of the same character. Arrivals stay at least 100 µs apart
    /// on average (as at full size; `banquet`'s all arrive at once), so
    /// the customers can keep the schedule; `big-order` keeps a cake;
    /// `takeout`, whose simmers are the point, keeps them whole.
    pub fn quick(self) -> (usize, f64) {
        match self {
            Preset::LunchRush => (50, 20.0),
            Preset::Takeout => (500, 1.0),
            Preset::Banquet => (40, 20.0),
            // Order 50 is the night's first cake.
            Preset::BigOrder => (100, 20.0),
            Preset::SlowTalkers => (15, 20.0),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dish on the menu: a fixed recipe.
#[derive(Debug)]
struct Dish {
    name: &'static str,
    steps: &'static [Step],
}

const fn chop(units: u32) -> Step {
    Step::Chop(Work(units))
}

const fn simmer(ms: u64) -> Step {
    Step::Simmer(Duration::from_millis(ms))
}

// ANCHOR: menu
// The menu. Chops are in units (≈ µs), simmers in milliseconds. Every dish
// has at least one chop, so the injected fault always has a chop to fail in.
const SALAD: Dish = Dish {
    name: "salad",
    steps: &[chop(150)],
};
const SOUP: Dish = Dish {
    name: "soup",
    steps: &[chop(100), simmer(10), chop(50)],
};
const STIR_FRY: Dish = Dish {
    name: "stir-fry",
    steps: &[chop(300), simmer(3), chop(200)],
};
const STEW: Dish = Dish {
    name: "stew",
    steps: &[chop(250), simmer(20)],
};
const NOODLES: Dish = Dish {
    name: "noodles",
    steps: &[chop(20), simmer(400), chop(10)],
};
const DUMPLINGS: Dish = Dish {
    name: "dumplings",
    steps: &[chop(30), simmer(600)],
};
const CURRY: Dish = Dish {
    name: "curry",
    steps: &[simmer(500), chop(20)],
};
const ROAST: Dish = Dish {
    name: "roast",
    steps: &[chop(2000), simmer(1), chop(2000)],
};
const PIE: Dish = Dish {
    name: "pie",
    steps: &[chop(3000), simmer(1), chop(1000)],
};
const SOUFFLE: Dish = Dish {
    name: "souffle",
    steps: &[chop(1500), simmer(2), chop(2500)],
};
const WEDDING_CAKE: Dish = Dish {
    name: "wedding-cake",
    steps: &[chop(200_000)],
};
const CROQUEMBOUCHE: Dish = Dish {
    name: "croquembouche",
    steps: &[chop(150_000)],
};
const ROAST_HOG: Dish = Dish {
    name: "roast-hog",
    steps: &[chop(100_000)],
};
// ANCHOR_END: menu

/// The time of one unit of work, nominally: what sizing a kitchen for its
/// peak assumes ([`Workload::peak_orders_in_kitchen`]), so that the number of
/// cooks depends on the workload only, not on how fast this machine is
/// today. `kernel::measure_unit` gives the real one (about 1 µs here).
pub const NOMINAL_UNIT: Duration = Duration::from_micros(1);

/// The cashier's own chop for ringing up one order.
pub const RING_UP: Work = Work(kernel::RING_UP_UNITS);

/// One customer's order, as the customers hold it before saying it
/// ([`Order::line`]).
///
/// Cloning is cheap: the steps are shared with every other order of the
/// same dish.
#[derive(Clone, Debug)]
pub struct Order {
    id: u64,
    arrival: Duration,
    talk: Duration,
    dish: &'static str,
    start: u64,
    steps: Arc<[Step]>,
}

impl Order {
    /// The order's number, unique in its workload (0, 1, 2, …).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// When the customer walks in, as an offset from opening.
    pub fn arrival(&self) -> Duration {
        self.arrival
    }

    /// How long the customer takes to say the order once greeted (zero
    /// but on `slow-talkers`): the customers wait this long after `NEXT`
    /// before they send the line.
    pub fn talk(&self) -> Duration {
        self.talk
    }

    /// The dish's name on the menu.
    pub fn dish(&self) -> &'static str {
        self.dish
    }

    /// The state the digest starts from, unique to this order of this
    /// workload.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The recipe, to be run in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The line the customer says at the till.
    pub fn line(&self) -> String {
        wire::order_line(self.id, self.dish, self.start, &self.steps)
    }

    /// The chop work of this order, ring-up included, in units.
    pub fn work(&self) -> u64 {
        let chops: u64 = self
            .steps
            .iter()
            .map(|step| match step {
                Step::Chop(work) => u64::from(work.units()),
                Step::Simmer(_) => 0,
            })
            .sum();
        chops + u64::from(RING_UP.units())
    }

    /// The sum of this order's simmers.
    pub fn simmer(&self) -> Duration {
        self.steps
            .iter()
            .map(|step| match step {
                Step::Chop(_) => Duration::ZERO,
                Step::Simmer(d) => *d,
            })
            .sum()
    }
}

/// The digest a correctly cooked order ends with, computed without chopping
/// (the rule is in [`crate::kernel`]'s documentation).
pub fn expected_digest(order: &Order) -> u64 {
    digest_without_chopping(order.start, &order.steps)
}

/// The digest of a ring-up from `start` followed by the chops of `steps`,
/// computed by jumping the kernel's generator instead of running it.
pub(crate) fn digest_without_chopping(start: u64, steps: &[Step]) -> u64 {
    let mut digest = kernel::mix(kernel::jump(start, RING_UP.units()));
    for step in steps {
        if let Step::Chop(work) = step {
            digest = kernel::mix(kernel::jump(digest, work.units()));
        }
    }
    digest
}

/// An order-independent combination of plate digests: the same set of
/// `(id, digest)` pairs gives the same checksum in any order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum(u64);

impl Checksum {
    /// Adds one plate to the checksum.
    pub fn add(&mut self, id: u64, digest: u64) {
        self.0 = self.0.wrapping_add(kernel::mix(id ^ kernel::mix(digest)));
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

/// A deterministic stream of pseudo-random numbers (SplitMix64): small,
/// fast and, unlike a library generator, fixed forever, so a workload never
/// changes under a dependency upgrade.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        kernel::mix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// An exponential gap with the given mean: Poisson arrivals.
    fn exponential(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(-(1.0 - self.unit()).ln())
    }

    fn pick<'a>(&mut self, weighted: &[(&'a Dish, u64)]) -> &'a Dish {
        let total = weighted.iter().map(|(_, w)| w).sum();
        let mut ticket = self.below(total);
        for (dish, weight) in weighted {
            if ticket < *weight {
                return dish;
            }
            ticket -= weight;
        }
        unreachable!("the ticket is below the total weight")
    }
}

/// The key every random choice of a workload starts from.
fn key_of(preset: Preset, seed: u64) -> u64 {
    kernel::mix(seed ^ ((preset as u64) << 56))
}

/// The start value of order `id` in the workload of `key`.
fn start_of(key: u64, id: u64) -> u64 {
    kernel::mix(key ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A whole day's orders, in arrival order.
#[derive(Clone, Debug)]
pub struct Workload {
    preset: Preset,
    seed: u64,
    time_scale: f64,
    orders: Vec<Order>,
}

impl Workload {
    /// Generates the workload `(preset, orders, seed)`.
    ///
    /// # Panics
    ///
    /// If `orders` exceeds [`MAX_ORDERS`].
    pub fn generate(preset: Preset, orders: usize, seed: u64) -> Workload {
        Workload::generate_scaled(preset, orders, seed, 1.0)
    }

    /// Generates the workload with every arrival time and every simmer
    /// divided by `time_scale`. Chops are untouched, so the digests and the
    /// checksum are those of the unscaled workload.
    ///
    /// # Panics
    ///
    /// If `orders` exceeds [`MAX_ORDERS`] or `time_scale` is not a positive
    /// finite number.
    pub fn generate_scaled(
        preset: Preset,
        orders: usize,
        seed: u64,
        time_scale: f64,
    ) -> Workload {
        assert!(orders <= MAX_ORDERS, "at most {MAX_ORDERS} orders");
        assert!(
            time_scale.is_finite() && time_scale > 0.0,
            "the time scale must be a positive number"
        );
        let scale = |d: Duration| d.div_f64(time_scale);
        // Each dish's steps are scaled once and shared by all its orders.
        let mut recipes: Vec<(&'static str, Arc<[Step]>)> = Vec::new();
        let mut recipe = |dish: &Dish| -> Arc<[Step]> {
            if let Some((_, steps)) =
                recipes.iter().find(|(name, _)| *name == dish.name)
            {
                return Arc::clone(steps);
            }
            let steps: Arc<[Step]> = dish
                .steps
                .iter()
                .map(|step| match *step {
                    Step::Chop(work) => Step::Chop(work),
                    Step::Simmer(d) => Step::Simmer(scale(d)),
                })
                .collect();
            recipes.push((dish.name, Arc::clone(&steps)));
            steps
        };

        // ANCHOR: presets
        let lunch = [(&SALAD, 30), (&SOUP, 25), (&STIR_FRY, 25), (&STEW, 20)];
        let takeout = [(&NOODLES, 40), (&DUMPLINGS, 30), (&CURRY, 30)];
        let banquet = [(&ROAST, 40), (&PIE, 30), (&SOUFFLE, 30)];
        let big = [(&WEDDING_CAKE, 1), (&CROQUEMBOUCHE, 1), (&ROAST_HOG, 1)];

        // The preset and the seed both choose the stream, and every
        // order's start value.
        let key = key_of(preset, seed);
        let mut rng = SplitMix(key);
        let mut time = Duration::ZERO;
        let mut list = Vec::with_capacity(orders);
        for id in 0..orders as u64 {
            let mut talk = Duration::ZERO;
            let dish = match preset {
                Preset::LunchRush => {
                    time += rng.exponential(Duration::from_millis(2));
                    rng.pick(&lunch)
                }
                Preset::Takeout => {
                    // A burst: 5,000 orders in about half a second, 10,000
                    // a second: as fast as one pacing thread can open
                    // connections on two cores and keep its schedule.
                    time += rng.exponential(Duration::from_micros(100));
                    rng.pick(&takeout)
                }
                // Everyone sits down at once.
                Preset::Banquet => rng.pick(&banquet),
                Preset::BigOrder => {
                    time += rng.exponential(Duration::from_millis(2));
                    // One order in a hundred is a celebration cake.
                    if id % 100 == 50 {
                        rng.pick(&big)
                    } else {
                        rng.pick(&lunch)
                    }
                }
                Preset::SlowTalkers => {
                    // 100 customers a second, each taking 10–50 ms to say
                    // the order: one listener keeps up with 33 a second.
                    time += rng.exponential(Duration::from_millis(10));
                    talk = Duration::from_micros(10_000 + rng.below(40_000));
                    rng.pick(&lunch)
                }
            };
            // ANCHOR_END: presets
            list.push(Order {
                id,
                arrival: scale(time),
                talk: scale(talk),
                dish: dish.name,
                start: start_of(key, id),
                steps: recipe(dish),
            });
        }
        Workload {
            preset,
            seed,
            time_scale,
            orders: list,
        }
    }

    /// The start value of order `id` of the workload `(preset, _, seed)`,
    /// whatever its size, computed without generating it: to inject a
    /// fault into that order ([`crate::fault::inject`]).
    pub fn start_for(preset: Preset, seed: u64, id: u64) -> u64 {
        start_of(key_of(preset, seed), id)
    }

    /// The preset it was generated from.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The seed it was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The divisor applied to arrivals and simmers.
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// The orders, in arrival order.
    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// The checksum every correct model prints for this workload, computed
    /// in milliseconds without chopping or waiting.
    pub fn expected_checksum(&self) -> Checksum {
        let mut sum = Checksum::default();
        for order in &self.orders {
            sum.add(order.id, expected_digest(order));
        }
        sum
    }

    /// The total chop work of the kitchen, ring-ups included.
    pub fn total_work(&self) -> u64 {
        self.orders.iter().map(Order::work).sum()
    }

    /// The sum of every simmer of every order.
    pub fn total_simmer(&self) -> Duration {
        self.orders.iter().map(Order::simmer).sum()
    }

    /// The physical limit: no model can finish this workload sooner, on
    /// `cores` cores where one unit of work takes `unit`, with every
    /// customer walking in when scheduled. See [`Workload::lower_bound_at`].
    pub fn lower_bound(&self, unit: Duration, cores: usize) -> Duration {
        self.lower_bound_at(|order| order.arrival, unit, cores)
    }

    /// The physical limit with each order arriving at `arrival(order)`
    /// (the customers pass the moment each one really walked in, so their
    /// own lateness is not counted against the model). It is the larger of
    ///
    /// - for every order k, in order of arrival: k's arrival plus all the
    ///   work (ring-ups and chops) that arrives at or after it, spread
    ///   perfectly over every core: that work cannot start sooner; and
    /// - for every order: its arrival, its talk, its ring-up and its own
    ///   steps one after another: that order cannot be served sooner.
    ///
    /// `efficiency = lower bound ÷ makespan` says how close a model came.
    pub fn lower_bound_at(
        &self,
        arrival: impl Fn(&Order) -> Duration,
        unit: Duration,
        cores: usize,
    ) -> Duration {
        // ANCHOR: lower_bound
        let mut arrived: Vec<(Duration, &Order)> =
            self.orders.iter().map(|o| (arrival(o), o)).collect();
        arrived.sort_by_key(|(at, _)| *at);
        let cores = cores.max(1) as f64;
        let ring_up = unit * RING_UP.units();
        let mut bound = Duration::ZERO;
        // Walk from the last arrival back, adding up the work still to come.
        let mut later_work = 0u64;
        for (at, order) in arrived.iter().rev() {
            later_work += order.work();
            let spread = unit.mul_f64(later_work as f64 / cores);
            let own: Duration = order
                .steps
                .iter()
                .map(|step| match *step {
                    Step::Chop(work) => unit * work.units(),
                    Step::Simmer(d) => d,
                })
                .sum();
            let chain = *at + order.talk + ring_up + own;
            bound = bound.max(*at + spread).max(chain);
        }
        bound
        // ANCHOR_END: lower_bound
    }

    /// The most orders that hold a cook at any one moment of the night,
    /// if every order were started the moment it arrived: an order holds a
    /// cook for its chops (at [`NOMINAL_UNIT`] a unit; the ring-up is the
    /// cashier's) and its simmers (a cook that blocks while it simmers is
    /// held), so it occupies [arrival, arrival + hold), and this is the
    /// largest number of those intervals that overlap (a sweep over their
    /// starts and ends). It is at most the orders, and zero for none.
    ///
    /// It is computed from the whole night before it happens: an oracle,
    /// which a real service does not have (see [`Workload::cooks_for_peak`]).
    pub fn peak_orders_in_kitchen(&self) -> usize {
        // ANCHOR: peak_in_kitchen
        // Each order's start (+1) and end (-1) in time; at the same moment
        // ends come first, since an order's interval excludes its end.
        let mut events: Vec<(Duration, i8)> = self
            .orders
            .iter()
            .flat_map(|o| {
                let chops = o.work() - u64::from(RING_UP.units());
                let hold = NOMINAL_UNIT * chops as u32 + o.simmer();
                [(o.arrival, 1), (o.arrival + hold, -1)]
            })
            .collect();
        events.sort_unstable();
        let (mut inside, mut peak) = (0i64, 0i64);
        for (_, step) in events {
            inside += i64::from(step);
            peak = peak.max(inside);
        }
        peak as usize
        // ANCHOR_END: peak_in_kitchen
    }

    /// How many cooks a pool whose cooks block needs so that no order ever
    /// waits for a cook, if every order started at its arrival: the most
    /// orders in the kitchen at once
    /// ([`Workload::peak_orders_in_kitchen`]), never fewer than `cores`,
    /// never more than the orders (and `cores` for no orders). A model
    /// caps it at what the OS can bear.
    ///
    /// This sizes with knowledge of the whole night: an oracle a real
    /// service does not have. Little's law, L = λW, gives the average
    /// number of orders in the kitchen in a steady state (the arrival rate
    /// times the time each holds a cook); the peak bounds that average
    /// from above, and is what a burst such as `takeout` needs. A real
    /// service measures λ and W as it runs and sizes by them with room for
    /// its bursts, or lets its pool grow and shrink with the demand.
    pub fn cooks_for_peak(&self, cores: usize) -> usize {
        let cores = cores.max(1);
        self.peak_orders_in_kitchen()
            .min(self.orders.len())
            .max(cores)
    }

    /// When the last customer arrives.
    pub fn last_arrival(&self) -> Duration {
        self.orders.last().map_or(Duration::ZERO, Order::arrival)
    }
}
