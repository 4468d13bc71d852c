//! Verification: every order served exactly once, with the right digest.

use std::error::Error;
use std::fmt;

use crate::plate::Plate;
use crate::workload::{self, Checksum, Workload};

/// What a failed verification found. Each list holds order ids, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyError {
    /// Orders of the workload with no plate.
    pub lost: Vec<u64>,
    /// Orders served more than once.
    pub duplicated: Vec<u64>,
    /// Plates whose digest is not the order's expected digest.
    pub wrong_digest: Vec<u64>,
    /// Plates for orders that are not in the workload.
    pub unknown: Vec<u64>,
    /// Plates that never went through the till ([`crate::Order::ring_up`]).
    pub not_rung_up: Vec<u64>,
    /// Plates that were never finished with [`Plate::serve`].
    pub not_served: Vec<u64>,
    /// Plates whose times run backwards: accepted before the customer
    /// arrived, started before accepted, or served before started.
    pub out_of_time: Vec<u64>,
}

impl VerifyError {
    fn is_empty(&self) -> bool {
        self.kinds().all(|(_, ids)| ids.is_empty())
    }

    fn kinds(&self) -> impl Iterator<Item = (&'static str, &Vec<u64>)> {
        [
            ("lost", &self.lost),
            ("served more than once", &self.duplicated),
            ("with a wrong digest", &self.wrong_digest),
            ("not in the workload", &self.unknown),
            ("never rung up by the cashier", &self.not_rung_up),
            ("never served", &self.not_served),
            ("with times out of order", &self.out_of_time),
        ]
        .into_iter()
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Ids listed per kind before the list is cut short.
        const SHOWN: usize = 10;
        f.write_str("verification failed:")?;
        let mut first = true;
        for (what, ids) in self.kinds().filter(|(_, ids)| !ids.is_empty()) {
            let noun = if ids.len() == 1 { "order" } else { "orders" };
            let sep = if first { " " } else { "; " };
            first = false;
            write!(f, "{sep}{} {noun} {what} (", ids.len())?;
            for (i, id) in ids.iter().take(SHOWN).enumerate() {
                let comma = if i == 0 { "" } else { ", " };
                write!(f, "{comma}{id}")?;
            }
            if ids.len() > SHOWN {
                write!(f, ", …")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Error for VerifyError {}

/// Checks `plates` against `workload`: every order served exactly once, with
/// its expected digest, through the till, with times that run forward.
/// Returns the checksum of the plates.
///
/// The expected digests are computed without chopping
/// ([`workload::expected_digest`]), so verifying costs little even for a
/// million orders.
#[allow(
    clippy::result_large_err,
    reason = "called once per run, after the run: its size costs nothing"
)]
pub fn verify(
    workload: &Workload,
    plates: &[Plate],
) -> Result<Checksum, VerifyError> {
    let orders = workload.orders();
    let mut seen = vec![0u32; orders.len()];
    let mut err = VerifyError::default();
    let mut checksum = Checksum::default();
    for plate in plates {
        let id = plate.id();
        // Ids are 0..n in arrival order, so the id is the index.
        let Some(order) = usize::try_from(id).ok().and_then(|i| orders.get(i))
        else {
            err.unknown.push(id);
            continue;
        };
        seen[id as usize] += 1;
        if seen[id as usize] == 2 {
            err.duplicated.push(id);
        }
        if seen[id as usize] > 1 {
            continue;
        }
        checksum.add(id, plate.digest());
        let Some(accepted) = plate.accepted() else {
            err.not_rung_up.push(id);
            continue;
        };
        if plate.digest() != workload::expected_digest(order) {
            err.wrong_digest.push(id);
        }
        let Some(served) = plate.served() else {
            err.not_served.push(id);
            continue;
        };
        if accepted < order.arrival()
            || plate.started() < accepted
            || served < plate.started()
        {
            err.out_of_time.push(id);
        }
    }
    err.lost = (0u64..)
        .zip(&seen)
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| id)
        .collect();
    for list in [
        &mut err.duplicated,
        &mut err.wrong_digest,
        &mut err.unknown,
        &mut err.not_rung_up,
        &mut err.not_served,
        &mut err.out_of_time,
    ] {
        list.sort_unstable();
        list.dedup();
    }
    if err.is_empty() {
        Ok(checksum)
    } else {
        Err(err)
    }
}
