//! `DropHeaders`: removes every header whose key is in `headers`.

use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};

struct DropHeaders {
    headers: Vec<String>,
}

pub fn make(config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required("headers", ConfigType::List, "Header keys to remove.")
        .check(|v| match v.split(',').any(|h| !h.trim().is_empty()) {
            true => Ok(()),
            false => Err("must name at least one header".into()),
        })
        .parse(config)?;
    Ok(Box::new(DropHeaders {
        headers: parsed.list("headers"),
    }))
}

impl Transformation for DropHeaders {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        record
            .headers_mut()
            .retain(|h| !self.headers.contains(&h.key));
        Ok(Outcome::Keep)
    }
}
