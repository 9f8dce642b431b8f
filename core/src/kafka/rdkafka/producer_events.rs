//! The producer's event queue, served without rdkafka's poll: delivery reports are read straight
//! from librdkafka's events into the forwarder's batch, and the other events a producer gets (logs,
//! global errors, statistics) go to the client's context as rdkafka's poll would send them.
//!
//! rdkafka's poll builds, for every report event, a vector of the event's messages and, for every
//! message, a borrowed message holding a shared reference to the event; the forwarder then took its
//! lock once per message. Here an event's reports are read in place and gathered under one lock:
//! about 110 instructions a record fewer for a FileStreamSource worker (README, Benchmark).

use std::ffi::CStr;

use rdkafka::bindings as rd;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{BaseProducer, Producer as _};
use rdkafka::ClientContext;

use super::producer::DeliveryForwarder;
use super::{message_timestamp, rd_error};
use crate::api::RecordMetadata;
use crate::kafka::Delivery;

/// Serves one waiting event of `queue`, the main queue of `producer`'s client; false if none was
/// waiting.
///
/// # Safety
/// `queue` must be a live reference to the main queue of `producer`'s client.
pub(super) unsafe fn serve_one(
    producer: &BaseProducer<DeliveryForwarder>,
    queue: *mut rd::rd_kafka_queue_t,
) -> bool {
    // SAFETY: the queue is alive per the caller; a zero timeout does not block.
    let Some(taken) = Event::new(unsafe { rd::rd_kafka_queue_poll(queue, 0) }) else {
        return false;
    };
    let event = taken.0;
    let context = producer.context();
    // SAFETY: `event` is live until `taken` destroys it when this function returns; what its
    // accessors return lives as long as it does.
    unsafe {
        match rd::rd_kafka_event_type(event) {
            rd::RD_KAFKA_EVENT_DR => context.gather(|gathered| loop {
                let message = rd::rd_kafka_event_message_next(event);
                if message.is_null() {
                    break;
                }
                gathered.push(delivery_of(message));
            }),
            rd::RD_KAFKA_EVENT_LOG => {
                let (mut facility, mut text, mut level) = (std::ptr::null(), std::ptr::null(), 0);
                if rd::rd_kafka_event_log(event, &mut facility, &mut text, &mut level) == 0 {
                    context.log(
                        log_level(level),
                        CStr::from_ptr(facility).to_string_lossy().trim(),
                        CStr::from_ptr(text).to_string_lossy().trim(),
                    );
                }
            }
            rd::RD_KAFKA_EVENT_ERROR => {
                let code = rd::rd_kafka_event_error(event);
                let reason = CStr::from_ptr(rd::rd_kafka_event_error_string(event));
                context.error(
                    RdError::Global(code.into()),
                    reason.to_string_lossy().trim(),
                );
            }
            rd::RD_KAFKA_EVENT_STATS => {
                context.stats_raw(CStr::from_ptr(rd::rd_kafka_event_stats(event)).to_bytes());
            }
            // The producer's context asks for no OAuth token refresh; rdkafka's poll ignores the
            // rest as well.
            other => tracing::debug!(event = other, "ignored a producer event"),
        }
    }
    true
}

/// An event taken off a queue, destroyed when dropped, also if serving it panics: librdkafka frees a
/// delivery report's messages, and counts them out of flight, only when their event is destroyed.
struct Event(*mut rd::rd_kafka_event_t);

impl Event {
    /// `None` for the null a poll returns when no event waits.
    fn new(event: *mut rd::rd_kafka_event_t) -> Option<Event> {
        (!event.is_null()).then_some(Event(event))
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: the event came from a poll and is destroyed only here, once.
        unsafe { rd::rd_kafka_event_destroy(self.0) }
    }
}

/// What Kafka said of one produced record, tagged with the token it was sent with.
///
/// # Safety
/// `message` must be a live message of a delivery report.
pub(super) unsafe fn delivery_of(message: *const rd::rd_kafka_message_t) -> Delivery {
    // SAFETY: the message is alive per the caller.
    unsafe {
        let m = &*message;
        let result = if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(RecordMetadata {
                partition: m.partition,
                offset: m.offset,
                timestamp: message_timestamp(message),
            })
        } else {
            Err(rd_error(&RdError::MessageProduction(m.err.into())))
        };
        Delivery {
            // The token travelled as the message's opaque pointer.
            token: m._private as usize as u64,
            result,
        }
    }
}

/// librdkafka's syslog level as rdkafka names it.
fn log_level(level: i32) -> RDKafkaLogLevel {
    match level {
        0 => RDKafkaLogLevel::Emerg,
        1 => RDKafkaLogLevel::Alert,
        2 => RDKafkaLogLevel::Critical,
        3 => RDKafkaLogLevel::Error,
        4 => RDKafkaLogLevel::Warning,
        5 => RDKafkaLogLevel::Notice,
        6 => RDKafkaLogLevel::Info,
        _ => RDKafkaLogLevel::Debug,
    }
}
