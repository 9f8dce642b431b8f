//! `InsertHeader`: adds a header `header` whose value is `value.literal`, typed as Kafka's
//! `Values.parseString` types it (a boolean, the narrowest integer, a float, or the string).

use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::api::Header;
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{parse_string, Data};

struct InsertHeader {
    header: String,
    value: Data,
}

pub fn make(config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required("header", ConfigType::String, "The header's key.")
        .check(|v| match v.trim().is_empty() {
            true => Err("must not be empty".into()),
            false => Ok(()),
        })
        .required("value.literal", ConfigType::String, "The header's value.")
        .parse(config)?;
    Ok(Box::new(InsertHeader {
        header: parsed.string("header").to_owned(),
        value: parse_string(config.get("value.literal").map_or("", String::as_str)),
    }))
}

impl Transformation for InsertHeader {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        record.headers_mut().push(Header {
            key: self.header.clone(),
            value: self.value.clone(),
        });
        Ok(Outcome::Keep)
    }
}
