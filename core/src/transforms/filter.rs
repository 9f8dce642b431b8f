//! `Filter`: drops every record it applies to; with a predicate, the records the predicate matches.

use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigError, ConfigMap};

struct Filter;

pub fn make(_config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    Ok(Box::new(Filter))
}

impl Transformation for Filter {
    fn apply(&self, _record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        Ok(Outcome::Drop)
    }
}
