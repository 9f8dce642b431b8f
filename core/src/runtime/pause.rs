//! An operator's pause of a connector (PAUSED, Kafka Connect's `PUT /connectors/{name}/pause`): its
//! tasks keep running and their resources (a sink's place in its group, a source's producer), but take
//! no new data: a source task is not polled, a sink task's partitions are paused. Offsets of what was
//! already sent or delivered are committed as usual.

use tokio::sync::watch;

/// Pauses and resumes every task made with its [`PauseSignal`]s.
#[derive(Debug)]
pub struct PauseSwitch(watch::Sender<bool>);

impl PauseSwitch {
    pub fn new(paused: bool) -> PauseSwitch {
        PauseSwitch(watch::channel(paused).0)
    }

    pub fn set(&self, paused: bool) {
        self.0
            .send_if_modified(|now| std::mem::replace(now, paused) != paused);
    }

    pub fn signal(&self) -> PauseSignal {
        PauseSignal(self.0.subscribe())
    }
}

/// What a task loop reads of its connector's pause.
#[derive(Debug, Clone)]
pub struct PauseSignal(watch::Receiver<bool>);

impl PauseSignal {
    /// A signal nothing pauses: for tasks run outside a worker that can pause them.
    pub fn never() -> PauseSignal {
        PauseSignal(watch::channel(false).1)
    }

    pub fn is_paused(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when the connector is paused or resumed; never once nothing can change it. Cancel-safe.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_follows_its_switch_and_wakes_on_each_change() {
        let switch = PauseSwitch::new(false);
        let mut signal = switch.signal();
        assert!(!signal.is_paused());
        switch.set(true);
        tokio::time::timeout(std::time::Duration::from_secs(5), signal.changed())
            .await
            .expect("woken by the pause");
        assert!(signal.is_paused());
        switch.set(true);
        let unchanged =
            tokio::time::timeout(std::time::Duration::from_millis(50), signal.changed()).await;
        assert!(unchanged.is_err(), "setting the same state wakes nobody");
        drop(switch);
        let gone =
            tokio::time::timeout(std::time::Duration::from_millis(50), signal.changed()).await;
        assert!(gone.is_err(), "a signal without its switch never wakes");
        assert!(PauseSignal::never().is_paused().eq(&false));
    }
}
