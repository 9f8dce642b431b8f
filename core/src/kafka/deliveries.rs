//! The channel that carries a producer's acknowledgements to the loop that sent the records.
//!
//! A client learns of its records' fates a batch at a time (a produce response acknowledges every
//! record of a partition's batch; librdkafka hands its reports over as an event per batch), so the
//! channel moves whole batches: one hand-over, and at most one wake-up of the loop, per batch rather
//! than per record. The loop still takes the acknowledgements one at a time, in the order sent.

use tokio::sync::mpsc;

use super::Delivery;

/// A channel of acknowledgements: the client keeps the sender, the runtime the receiver.
pub fn delivery_channel() -> (DeliverySender, DeliveryReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        DeliverySender(tx),
        DeliveryReceiver {
            batches: rx,
            ready: Vec::new().into_iter(),
        },
    )
}

/// The client's end: hands over the acknowledgements it has, in the order they should be read.
pub struct DeliverySender(mpsc::UnboundedSender<Vec<Delivery>>);

impl DeliverySender {
    pub fn send(&self, batch: Vec<Delivery>) {
        if batch.is_empty() {
            return;
        }
        // The receiver is gone only when the runtime stopped listening; nothing is left to tell.
        let _ = self.0.send(batch);
    }
}

/// The runtime's end: every record handed to the producer yields exactly one acknowledgement here.
pub struct DeliveryReceiver {
    batches: mpsc::UnboundedReceiver<Vec<Delivery>>,
    /// The rest of the batch being read.
    ready: std::vec::IntoIter<Delivery>,
}

impl DeliveryReceiver {
    /// The next acknowledgement, once there is one; `None` when the client is gone and every
    /// acknowledgement was read. Cancel-safe: nothing is lost if the wait is dropped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.ready.next() {
                return Some(delivery);
            }
            self.ready = self.batches.recv().await?.into_iter();
        }
    }

    /// The next acknowledgement if one has arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.ready.next() {
                return Some(delivery);
            }
            self.ready = self.batches.try_recv().ok()?.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RecordMetadata;

    fn acknowledged(token: u64) -> Delivery {
        Delivery {
            token,
            result: Ok(RecordMetadata {
                partition: 0,
                offset: token as i64,
                timestamp: None,
            }),
        }
    }

    #[tokio::test]
    async fn reads_batches_one_acknowledgement_at_a_time_in_order() {
        let (tx, mut rx) = delivery_channel();
        tx.send(vec![acknowledged(1), acknowledged(2)]);
        tx.send(vec![acknowledged(3)]);
        assert_eq!(rx.recv().await.map(|d| d.token), Some(1));
        assert_eq!(rx.try_recv().map(|d| d.token), Some(2));
        assert_eq!(rx.try_recv().map(|d| d.token), Some(3));
        assert!(rx.try_recv().is_none(), "nothing more has arrived");
        tx.send(vec![acknowledged(4)]);
        drop(tx);
        assert_eq!(rx.recv().await.map(|d| d.token), Some(4));
        assert!(rx.recv().await.is_none(), "the client is gone");
    }
}
