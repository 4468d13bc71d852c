//! Verification: every order served exactly once, with the right digest.
//!
//! The customers verify: each holds one connection, so a plate can reach
//! only the customer who ordered it, and a second plate on the same
//! connection, a plate for another order or an `ERROR` is that customer's
//! trouble, quoted.

use std::error::Error;
use std::fmt;

use crate::customers::Night;
use crate::workload::{self, Checksum, Workload};

/// What a failed verification found. Each list holds order ids, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyError {
    /// Customers who left without their plate, with what went wrong for
    /// the first few of them.
    pub troubled: Vec<u64>,
    /// What went wrong, for the first troubled customers.
    pub troubles: Vec<(u64, String)>,
    /// Plates whose digest is not the order's expected digest.
    pub wrong_digest: Vec<u64>,
    /// Customers who never walked in, though nobody stopped them.
    pub never_came: Vec<u64>,
}

/// How many troubles are quoted.
const QUOTED: usize = 3;

/// Ids listed per kind before the list is cut short.
const SHOWN: usize = 10;

impl VerifyError {
    fn is_empty(&self) -> bool {
        self.troubled.is_empty()
            && self.wrong_digest.is_empty()
            && self.never_came.is_empty()
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("verification failed:")?;
        let mut sep = " ";
        for (what, ids) in [
            ("left without a plate", &self.troubled),
            ("with a wrong digest", &self.wrong_digest),
            ("never walked in", &self.never_came),
        ] {
            if ids.is_empty() {
                continue;
            }
            let noun = if ids.len() == 1 { "order" } else { "orders" };
            write!(f, "{sep}{} {noun} {what} (", ids.len())?;
            sep = "; ";
            for (i, id) in ids.iter().take(SHOWN).enumerate() {
                let comma = if i == 0 { "" } else { ", " };
                write!(f, "{comma}{id}")?;
            }
            if ids.len() > SHOWN {
                f.write_str(", …")?;
            }
            f.write_str(")")?;
        }
        for (id, why) in &self.troubles {
            write!(f, "\n  order {id}: {why}")?;
        }
        Ok(())
    }
}

impl Error for VerifyError {}

/// Checks the customers' night against `workload`: every order that walked
/// in was served exactly once with its expected digest (and, unless the
/// night was interrupted, every order walked in). Returns the checksum of
/// the plates.
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
    night: &Night,
) -> Result<Checksum, VerifyError> {
    let mut err = VerifyError::default();
    let mut checksum = Checksum::default();
    for (order, visit) in workload.orders().iter().zip(&night.visits) {
        let id = order.id();
        if visit.walked_in.is_none() {
            if !night.interrupted {
                err.never_came.push(id);
            }
            continue;
        }
        if let Some(why) = &visit.trouble {
            // Closing early turns away whoever was not yet in.
            if night.interrupted && visit.rung.is_none() {
                continue;
            }
            err.troubled.push(id);
            if err.troubles.len() < QUOTED {
                err.troubles.push((id, why.clone()));
            }
            continue;
        }
        match visit.digest {
            Some(digest) if digest == workload::expected_digest(order) => {
                checksum.add(id, digest);
            }
            _ => err.wrong_digest.push(id),
        }
    }
    if err.is_empty() {
        Ok(checksum)
    } else {
        Err(err)
    }
}
