//! librdkafka's handles of the topics a producer writes to, each made once, and records produced
//! by handle.
//!
//! rdkafka's `BaseProducer::send` names a record's topic by string, which costs every record a C
//! string (allocated and freed) and a search of the client's topics under the client's lock: about
//! 470 of the 7,330 instructions a FileStreamSource worker spent per record (callgrind). A handle is
//! made once per topic and found by name in a map of the producer's own. Records with headers still go through rdkafka's `send` (it alone may hand
//! librdkafka a headers list), and so does a topic librdkafka will not make a handle for, so that its
//! error is rdkafka's.

use std::collections::BTreeMap;
use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};
use std::sync::Mutex;

use rdkafka::bindings as rd;
use rdkafka::error::RDKafkaErrorCode;

/// librdkafka's `RD_KAFKA_PARTITION_UA`: the partitioner picks the record's partition.
const UNASSIGNED: i32 = -1;

/// The handles of one producer's topics.
#[derive(Default)]
pub(super) struct TopicHandles {
    handles: Mutex<BTreeMap<Box<str>, TopicHandle>>,
}

/// A handle on one topic, destroyed when dropped.
struct TopicHandle {
    native: NonNull<rd::rd_kafka_topic_t>,
}

// SAFETY: librdkafka's topic handles may be used and destroyed from any thread.
unsafe impl Send for TopicHandle {}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_topic_new` and is destroyed once; its client is
        // still alive (see `TopicHandles::produce`).
        unsafe { rd::rd_kafka_topic_destroy(self.native.as_ptr()) }
    }
}

/// The parts of a record produced by handle.
pub(super) struct HandleRecord<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: Option<i64>,
    /// Comes back with the record's delivery report.
    pub opaque: usize,
}

impl TopicHandles {
    /// Produces `record` (its key and value copied) on `client`; `None` if librdkafka makes no handle
    /// for its topic, and the record was not produced.
    ///
    /// # Safety
    ///
    /// `client` is a live producer, and outlives these handles: the owner drops them before its last
    /// reference to the client.
    pub(super) unsafe fn produce(
        &self,
        client: *mut rd::rd_kafka_t,
        record: &HandleRecord<'_>,
    ) -> Option<Result<(), RDKafkaErrorCode>> {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        let topic = match handles.get(record.topic) {
            Some(handle) => handle.native,
            None => {
                let name = CString::new(record.topic).ok()?;
                // SAFETY: the client is live; a null configuration takes the producer's defaults.
                let native = NonNull::new(unsafe {
                    rd::rd_kafka_topic_new(client, name.as_ptr(), ptr::null_mut())
                })?;
                handles.insert(record.topic.into(), TopicHandle { native });
                native
            }
        };
        let bytes = |part: Option<&[u8]>| {
            part.map_or((ptr::null_mut(), 0), |b| {
                (b.as_ptr() as *mut c_void, b.len())
            })
        };
        let (value, value_len) = bytes(record.value);
        let (key, key_len) = bytes(record.key);
        use rd::rd_kafka_vtype_t::*;
        // SAFETY: the client and the topic handle are live; librdkafka copies the key and value
        // (`RD_KAFKA_MSG_F_COPY`) before returning, and keeps the opaque as a plain number.
        let error = unsafe {
            rd::rd_kafka_producev(
                client,
                RD_KAFKA_VTYPE_RKT,
                topic.as_ptr(),
                RD_KAFKA_VTYPE_PARTITION,
                record.partition.unwrap_or(UNASSIGNED),
                RD_KAFKA_VTYPE_MSGFLAGS,
                rd::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                value,
                value_len,
                RD_KAFKA_VTYPE_KEY,
                key,
                key_len,
                RD_KAFKA_VTYPE_OPAQUE,
                record.opaque as *mut c_void,
                RD_KAFKA_VTYPE_TIMESTAMP,
                record.timestamp.unwrap_or(0),
                RD_KAFKA_VTYPE_END,
            )
        };
        Some(match error {
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(()),
            error => Err(error.into()),
        })
    }
}
