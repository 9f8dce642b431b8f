//! A librdkafka queue that wakes a task when something arrives on it: how the consumer's message queue
//! and the producer's event queue are served from the async runtime without a thread polling them.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Arc;

use rdkafka::bindings as rd;
use tokio::sync::Notify;

use crate::kafka::KafkaError;

/// A queue reference of our own, with librdkafka's event callback signalling `ready`.
pub(super) struct SignalledQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Signalled by librdkafka when something arrives; the queue holds a pointer to it.
    ready: Arc<Notify>,
}

// SAFETY: librdkafka queues may be used from any thread; the pointer is only passed to librdkafka.
unsafe impl Send for SignalledQueue {}
// SAFETY: as above; every call through the pointer is thread-safe in librdkafka.
unsafe impl Sync for SignalledQueue {}

impl SignalledQueue {
    /// Takes over a queue reference (released when dropped) and signals `ready` on each arrival.
    ///
    /// # Safety
    /// `queue` must be null or a queue reference of a client that outlives the returned value.
    pub(super) unsafe fn new(
        queue: *mut rd::rd_kafka_queue_t,
        ready: Arc<Notify>,
    ) -> Result<SignalledQueue, KafkaError> {
        let queue = NonNull::new(queue)
            .ok_or_else(|| KafkaError::Backend("librdkafka gave no queue".into()))?;
        // SAFETY: the queue is alive per the caller; `ready` stays alive until `drop` has disabled
        // the callback.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(wake),
                Arc::as_ptr(&ready).cast_mut().cast(),
            );
        }
        Ok(SignalledQueue { queue, ready })
    }

    pub(super) fn as_ptr(&self) -> *mut rd::rd_kafka_queue_t {
        self.queue.as_ptr()
    }

    /// Resolves once something arrived since the last call.
    pub(super) async fn arrived(&self) {
        self.ready.notified().await;
    }
}

impl Drop for SignalledQueue {
    fn drop(&mut self) {
        // SAFETY: once the callback is disabled (under the queue's lock) librdkafka no longer touches
        // `ready`.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rd::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

/// librdkafka's signal that something arrived on a [`SignalledQueue`].
unsafe extern "C" fn wake(_: *mut rd::rd_kafka_t, ready: *mut c_void) {
    // SAFETY: `ready` is the queue's Notify, alive while the callback is enabled.
    unsafe { &*ready.cast::<Notify>() }.notify_one();
}
