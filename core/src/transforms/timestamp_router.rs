//! `TimestampRouter`: renames the topic by `topic.format` (default `${topic}-${timestamp}`), with the
//! record's timestamp written in `timestamp.format` (a `SimpleDateFormat` pattern, default `yyyyMMdd`),
//! in UTC. A record without a timestamp is an error.

use super::date_format::DateFormat;
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};

struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

pub fn make(config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .optional(
            "topic.format",
            ConfigType::String,
            "${topic}-${timestamp}",
            "The new topic: ${topic} and ${timestamp} stand for the topic and the formatted timestamp.",
        )
        .optional(
            "timestamp.format",
            ConfigType::String,
            "yyyyMMdd",
            "A SimpleDateFormat pattern for ${timestamp}.",
        )
        .parse(config)?;
    let timestamp_format = DateFormat::new(parsed.string("timestamp.format"))
        .map_err(|e| ConfigError::single("timestamp.format", e))?;
    Ok(Box::new(TimestampRouter {
        topic_format: parsed.string("topic.format").to_owned(),
        timestamp_format,
    }))
}

impl Transformation for TimestampRouter {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let Some(timestamp) = record.timestamp() else {
            return Err(TransformError::Data(format!(
                "timestamp missing on a record of topic {:?}",
                record.topic()
            )));
        };
        let topic = self
            .topic_format
            .replace("${topic}", record.topic())
            .replace("${timestamp}", &self.timestamp_format.format(timestamp));
        record.set_topic(topic.into());
        Ok(Outcome::Keep)
    }
}
