//! The workers' simulated disks, for a connector under test that keeps files: it takes the
//! [`FileSystem`] seam (production hands it `LocalFs`), and the test's plugin factory hands it
//! [`worker_disk`], the disk of the worker the connector is made on. A crash of the worker loses what was
//! not synced; the disk starts empty (only its root directory exists); the disk faults (`fail-sync`,
//! `fail-write`, `short-write`, ...) strike it as they strike Sluice's FileStream connectors; and the
//! lines each sync of an appended file makes durable are told to the sink model's
//! [`ExternalSink::synced`](super::ExternalSink::synced), which maps them back to records. The disks are
//! the workers' of a [`SimTest`](super::SimTest) run; the task harnesses have none yet.

use std::cell::RefCell;
use std::sync::Arc;

use sluice_core::api::ConnectorPlugin;
use sluice_core::fs::FileSystem;

thread_local! {
    /// The disk of the worker whose connector is being made, while it is made.
    static MAKING_ON: RefCell<Option<Arc<dyn FileSystem>>> = const { RefCell::new(None) };
}

/// The simulated disk of the worker the connector under test is being made on. Call it in the plugin's
/// factory (`ConnectorPlugin::sink(|| ...)`), and give the connector what it returns; None anywhere else.
pub fn worker_disk() -> Option<Arc<dyn FileSystem>> {
    MAKING_ON.with(|disk| disk.borrow().clone())
}

/// `plugin`, its factory run with `disk` as the [`worker_disk`].
pub(crate) fn on_disk(plugin: ConnectorPlugin, disk: Arc<dyn FileSystem>) -> ConnectorPlugin {
    match plugin {
        ConnectorPlugin::Sink(make) => ConnectorPlugin::sink(move || making_on(&disk, || make())),
        ConnectorPlugin::Source(make) => {
            ConnectorPlugin::source(move || making_on(&disk, || make()))
        }
    }
}

/// Runs `make` with `disk` as the [`worker_disk`].
fn making_on<T>(disk: &Arc<dyn FileSystem>, make: impl FnOnce() -> T) -> T {
    /// Clears the disk when the connector is made, or its factory panicked.
    struct Made;
    impl Drop for Made {
        fn drop(&mut self) {
            MAKING_ON.with(|current| current.borrow_mut().take());
        }
    }
    MAKING_ON.with(|current| *current.borrow_mut() = Some(disk.clone()));
    let _made = Made;
    make()
}
