//! Faults as they struck: the harness arms a store or disk fault, and whichever task meets it first
//! suffers it. The oracle needs to know which worker it struck and when, to tell a redelivery that a fault
//! explains from one that nothing does.

use std::sync::Mutex;
use std::time::Duration;

/// A fault that struck a worker's task over a span of simulated time (a single instant for a failed
/// flush or sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strike {
    pub worker: usize,
    pub from: Duration,
    pub to: Duration,
}

/// Every fault that struck, in the order they did.
#[derive(Debug, Default)]
pub struct Strikes(Mutex<Vec<Strike>>);

impl Strikes {
    pub fn record(&self, worker: usize, from: Duration, to: Duration) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Strike { worker, from, to });
    }

    pub fn all(&self) -> Vec<Strike> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
