//! Repeated events of one cause (a record after record the converter refuses, a delivery after delivery
//! failing while Kafka is away) are logged once, then summarised with a count at most once a minute, so
//! that a log of thousands of identical lines does not bury the one that says what is wrong.

use std::time::Duration;

use tokio::time::Instant;

/// How often a run of repeated events is summarised.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Counts one kind of repeated event and says when to log it.
#[derive(Debug, Default)]
pub struct Repeated {
    /// When the last line about this event was logged.
    logged: Option<Instant>,
    /// Events since then that were not logged.
    unlogged: u64,
}

impl Repeated {
    /// An event happened: `Some(n)` when it is to be logged now, `n` being how many happened since the
    /// last line without one; `None` while it is only counted.
    pub fn happened(&mut self) -> Option<u64> {
        match self.logged {
            Some(at) if at.elapsed() < SUMMARY_INTERVAL => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.logged = Some(Instant::now());
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }

    /// Events counted and not logged yet, which a final summary should report; counting starts over.
    pub fn take_unlogged(&mut self) -> u64 {
        std::mem::take(&mut self.unlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_first_is_logged_then_a_count_once_a_minute() {
        let mut repeated = Repeated::default();
        assert_eq!(repeated.happened(), Some(0));
        for _ in 0..1000 {
            assert_eq!(repeated.happened(), None);
        }
        tokio::time::sleep(SUMMARY_INTERVAL).await;
        assert_eq!(repeated.happened(), Some(1000));
        assert_eq!(repeated.happened(), None);
        assert_eq!(repeated.take_unlogged(), 1);
        assert_eq!(repeated.take_unlogged(), 0);
    }
}
