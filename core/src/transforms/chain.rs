//! A connector's chain of transforms, read from Kafka Connect's keys: `transforms=a,b` names them in
//! order, `transforms.a.type` is a transform class, `transforms.a.predicate=p` applies it only to
//! records `p` matches (or, with `transforms.a.negate=true`, does not match), and `predicates=p` with
//! `predicates.p.type` declares the predicates. Every other `transforms.a.*` / `predicates.p.*` key is
//! the transform's or predicate's own.

use std::sync::Arc;

use super::{ConnectRecord, Outcome, Predicate, TransformError, Transformation};
use crate::api::PluginRegistry;
use crate::config::{ConfigError, ConfigIssue, ConfigMap};

pub const TRANSFORMS: &str = "transforms";
pub const PREDICATES: &str = "predicates";
/// The class of a transform or predicate: `transforms.NAME.type`, `predicates.NAME.type`.
pub const TYPE: &str = "type";
pub const PREDICATE: &str = "predicate";
pub const NEGATE: &str = "negate";

/// A transform of a chain, under its alias.
struct Step {
    alias: String,
    class: String,
    transform: Box<dyn Transformation>,
    /// The predicate that must hold (or, negated, must not) for the transform to apply.
    condition: Option<(Arc<dyn Predicate>, bool)>,
}

/// The transforms of a connector, in order.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

/// A transform of the chain failed on a record.
#[derive(Debug, thiserror::Error)]
#[error("transform {alias} ({class}) failed: {source}")]
pub struct TransformFailed {
    pub alias: String,
    pub class: String,
    pub source: TransformError,
}

impl TransformFailed {
    /// Whether trying again may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self.source, TransformError::Retriable(_))
    }
}

impl TransformChain {
    /// Reads the chain from a connector's config; every wrong key is named.
    pub fn from_config(
        props: &ConfigMap,
        plugins: &PluginRegistry,
    ) -> Result<TransformChain, ConfigError> {
        let mut issues = Vec::new();
        let predicates = declared_predicates(props, plugins, &mut issues);
        let mut steps = Vec::new();
        let mut seen = Vec::new();
        for alias in aliases(props, TRANSFORMS) {
            if seen.contains(&alias) {
                issues.push(issue(
                    TRANSFORMS,
                    format!("transform {alias:?} is listed twice"),
                ));
                continue;
            }
            seen.push(alias.clone());
            let prefix = format!("{TRANSFORMS}.{alias}.");
            let type_key = format!("{prefix}{TYPE}");
            let Some(class) = props.get(&type_key).map(|c| c.trim().to_owned()) else {
                issues.push(issue(
                    &type_key,
                    "missing required configuration: the transform's class".into(),
                ));
                continue;
            };
            let Some(factory) = plugins.transform(&class) else {
                issues.push(issue(
                    &type_key,
                    format!(
                        "unknown transform class {class:?}; known: {}",
                        short_names(plugins.transform_classes())
                    ),
                ));
                continue;
            };
            let condition = match props.get(&format!("{prefix}{PREDICATE}")).map(|p| p.trim()) {
                None | Some("") => None,
                Some(name) => match predicates.iter().find(|(alias, _)| alias == name) {
                    Some((_, predicate)) => {
                        let negate_key = format!("{prefix}{NEGATE}");
                        let negate = match props.get(&negate_key).map(|n| n.trim()) {
                            None => false,
                            Some(n) if n.eq_ignore_ascii_case("true") => true,
                            Some(n) if n.eq_ignore_ascii_case("false") => false,
                            Some(n) => {
                                issues.push(issue(
                                    &negate_key,
                                    format!("invalid value {n:?}: must be true or false"),
                                ));
                                false
                            }
                        };
                        Some((predicate.clone(), negate))
                    }
                    None => {
                        issues.push(issue(
                            &format!("{prefix}{PREDICATE}"),
                            format!("predicate {name:?} is not declared in {PREDICATES}"),
                        ));
                        None
                    }
                },
            };
            match factory(&own_keys(props, &prefix, &[TYPE, PREDICATE, NEGATE])) {
                Ok(transform) => steps.push(Step {
                    alias,
                    class,
                    transform,
                    condition,
                }),
                Err(e) => issues.extend(prefixed(e, &prefix)),
            }
        }
        if issues.is_empty() {
            Ok(TransformChain { steps })
        } else {
            Err(ConfigError { issues })
        }
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the record through every transform whose condition holds, until one drops it.
    pub fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformFailed> {
        for step in &self.steps {
            if let Some((predicate, negate)) = &step.condition {
                if predicate.test(record) == *negate {
                    continue;
                }
            }
            match step.transform.apply(record) {
                Ok(Outcome::Keep) => {}
                Ok(Outcome::Drop) => return Ok(Outcome::Drop),
                Err(source) => {
                    return Err(TransformFailed {
                        alias: step.alias.clone(),
                        class: step.class.clone(),
                        source,
                    })
                }
            }
        }
        Ok(Outcome::Keep)
    }
}

/// The predicates `predicates=` declares, built from their keys.
fn declared_predicates(
    props: &ConfigMap,
    plugins: &PluginRegistry,
    issues: &mut Vec<ConfigIssue>,
) -> Vec<(String, Arc<dyn Predicate>)> {
    let mut built: Vec<(String, Arc<dyn Predicate>)> = Vec::new();
    for alias in aliases(props, PREDICATES) {
        if built.iter().any(|(a, _)| *a == alias) {
            issues.push(issue(
                PREDICATES,
                format!("predicate {alias:?} is listed twice"),
            ));
            continue;
        }
        let prefix = format!("{PREDICATES}.{alias}.");
        let type_key = format!("{prefix}{TYPE}");
        let Some(class) = props.get(&type_key).map(|c| c.trim()) else {
            issues.push(issue(
                &type_key,
                "missing required configuration: the predicate's class".into(),
            ));
            continue;
        };
        let Some(factory) = plugins.predicate(class) else {
            issues.push(issue(
                &type_key,
                format!(
                    "unknown predicate class {class:?}; known: {}",
                    short_names(plugins.predicate_classes())
                ),
            ));
            continue;
        };
        match factory(&own_keys(props, &prefix, &[TYPE])) {
            Ok(predicate) => built.push((alias, Arc::from(predicate))),
            Err(e) => issues.extend(prefixed(e, &prefix)),
        }
    }
    built
}

/// The aliases a list key names, trimmed, without empty items.
fn aliases(props: &ConfigMap, key: &str) -> Vec<String> {
    props
        .get(key)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The keys under `prefix`, without it, but for the chain's own.
fn own_keys(props: &ConfigMap, prefix: &str, chain_keys: &[&str]) -> ConfigMap {
    props
        .range(prefix.to_owned()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(key, value)| (key[prefix.len()..].to_owned(), value.clone()))
        .filter(|(key, _)| !chain_keys.contains(&key.as_str()))
        .collect()
}

/// A transform's or predicate's issues under their full keys.
fn prefixed(error: ConfigError, prefix: &str) -> Vec<ConfigIssue> {
    error
        .issues
        .into_iter()
        .map(|i| ConfigIssue {
            key: format!("{prefix}{}", i.key),
            message: i.message,
        })
        .collect()
}

fn issue(key: &str, message: String) -> ConfigIssue {
    ConfigIssue {
        key: key.to_owned(),
        message,
    }
}

/// Class names without their package, for error messages.
fn short_names(classes: &[String]) -> String {
    classes
        .iter()
        .map(|c| c.rsplit('.').next().unwrap_or(c))
        .collect::<Vec<_>>()
        .join(", ")
}
