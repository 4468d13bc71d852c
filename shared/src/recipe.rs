//! The vocabulary of a recipe: chops and simmers. A leaf: the workload,
//! the wire and the timeline all speak it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much CPU work a chop is, in kernel units (one unit ≈ 1 µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work(pub u32);

impl Work {
    /// The number of kernel units.
    pub fn units(self) -> u32 {
        self.0
    }
}

/// One step of a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// CPU work: the cook's thread is busy for the whole step.
    Chop(Work),
    /// A wait (the oven, the fryer, a database): the cook needs no CPU.
    Simmer(Duration),
}
