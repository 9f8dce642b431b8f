//! The shutdown signal shared by a worker and its tasks: one trigger, many listeners.

use tokio::sync::watch;

/// Fires the shutdown signal for every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn new() -> ShutdownTrigger {
        ShutdownTrigger(watch::channel(false).0)
    }

    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    /// A new listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        ShutdownTrigger::new()
    }
}

/// Listens for the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Completes once shutdown was signalled (or the trigger is gone). Cancel-safe.
    pub async fn recv(&mut self) {
        // An error means the trigger was dropped, which also means: stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }
}
