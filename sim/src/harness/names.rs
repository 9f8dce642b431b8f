//! The simulated hosts' names, which the trace, the timeline and the models see.

/// The name of worker `index`'s host.
pub(super) fn worker_name(index: usize) -> String {
    format!("worker-{index}")
}

/// The name of broker `id`'s host.
pub(super) fn broker_name(id: usize) -> String {
    format!("broker-{id}")
}
