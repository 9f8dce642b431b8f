//! Errors of the external system, as data: during an
//! [`ErrorsExternal`](crate::faults::Fault::ErrorsExternal) fault, [`answering_errors`] is true, and the
//! author's model answers requests with the system's own error (`ERR busy`, HTTP 503, a deadlock
//! error...), as the real system does when it is overloaded. The model decides what an error looks like;
//! the seed decides when.

use std::cell::Cell;

use crate::coverage::{self, Event};

thread_local! {
    /// The simulation runs on the test's thread: its hosts, the model among them, see this.
    static ANSWER_ERRORS: Cell<bool> = const { Cell::new(false) };
}

/// Whether the system must answer the request at hand with an error now. Call it in the model, inside
/// the simulation, for each request it could refuse; a `true` counts as
/// [`Event::ExternalErrorAnswered`].
pub fn answering_errors() -> bool {
    let answering = ANSWER_ERRORS.with(Cell::get);
    if answering {
        coverage::reached(Event::ExternalErrorAnswered);
    }
    answering
}

/// Starts or ends an errors fault (the harness, as the fault strikes and heals, and at each run's start).
pub(crate) fn answer_with_errors(on: bool) {
    ANSWER_ERRORS.with(|answering| answering.set(on));
}
