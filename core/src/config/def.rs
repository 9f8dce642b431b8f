//! `ConfigDef`: the keys a connector or worker accepts, their types and defaults, and validation that
//! names every key that is wrong.

use std::collections::BTreeMap;
use std::fmt;

use super::ConfigMap;

/// The type of a config value, as `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    String,
    Int,
    Long,
    Double,
    Boolean,
    /// Comma-separated list.
    List,
    /// A class name (a plugin alias or Java class name).
    Class,
    Password,
}

impl fmt::Display for ConfigType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        };
        f.write_str(name)
    }
}

/// An extra check on a value: `Err` explains what is wrong.
pub type ValueCheck = fn(&str) -> Result<(), String>;

/// One declared key.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    pub name: &'static str,
    pub kind: ConfigType,
    /// `None` makes the key required.
    pub default: Option<&'static str>,
    pub doc: &'static str,
    /// Extra check on the value once it has the right type: `Err` explains what is wrong.
    pub check: Option<ValueCheck>,
}

/// What is wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A configuration that failed validation, with one issue per bad key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    pub fn single(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            issues: vec![ConfigIssue {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for issue in &self.issues {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// The declared keys of a connector, task or worker.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Declares a key with a default.
    pub fn optional(
        mut self,
        name: &'static str,
        kind: ConfigType,
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        self.keys.push(ConfigKey {
            name,
            kind,
            default: Some(default),
            doc,
            check: None,
        });
        self
    }

    /// Declares a key that must be set.
    pub fn required(mut self, name: &'static str, kind: ConfigType, doc: &'static str) -> Self {
        self.keys.push(ConfigKey {
            name,
            kind,
            default: None,
            doc,
            check: None,
        });
        self
    }

    /// Adds a check to the key declared last.
    pub fn check(mut self, check: ValueCheck) -> Self {
        if let Some(key) = self.keys.last_mut() {
            key.check = Some(check);
        }
        self
    }

    /// Adds every key of another definition.
    pub fn merge(mut self, other: &ConfigDef) -> Self {
        self.keys.extend(other.keys.iter().cloned());
        self
    }

    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// The keys of `props` this definition does not declare and no prefix of `prefixes` covers (keys
    /// for a client, a converter, a transform), each with the declared key it most likely misspells.
    /// Kafka warns of these as "supplied but isn't a known config"; a misspelled key is otherwise
    /// silently replaced by its default.
    pub fn unknown_keys(&self, props: &ConfigMap, prefixes: &[&str]) -> Vec<UnknownKey> {
        props
            .keys()
            .filter(|key| self.keys.iter().all(|k| k.name != key.as_str()))
            .filter(|key| !prefixes.iter().any(|prefix| key.starts_with(prefix)))
            .map(|key| UnknownKey {
                key: key.clone(),
                suggestion: self.closest(key),
            })
            .collect()
    }

    /// The declared key closest to `key`, if close enough to be a typo of it.
    fn closest(&self, key: &str) -> Option<&'static str> {
        self.keys
            .iter()
            .map(|k| (edit_distance(key, k.name), k.name))
            .filter(|(distance, name)| *distance <= 2 || *distance * 5 <= name.len())
            .min()
            .map(|(_, name)| name)
    }

    /// Checks every declared key of `props` and returns them with defaults filled in.
    /// Keys that are not declared are kept as they are (they may be meant for a converter or a client).
    pub fn parse(&self, props: &ConfigMap) -> Result<ParsedConfig, ConfigError> {
        let mut issues = Vec::new();
        let mut values = props.clone();
        for key in &self.keys {
            let raw = match props.get(key.name) {
                Some(v) => v.trim().to_owned(),
                None => match key.default {
                    Some(d) => d.to_owned(),
                    None => {
                        issues.push(ConfigIssue {
                            key: key.name.to_owned(),
                            message: format!("missing required configuration (type {})", key.kind),
                        });
                        continue;
                    }
                },
            };
            if let Err(message) = check_type(key.kind, &raw).and_then(|_| match key.check {
                Some(check) => check(&raw),
                None => Ok(()),
            }) {
                issues.push(ConfigIssue {
                    key: key.name.to_owned(),
                    message: format!("invalid value {raw:?}: {message}"),
                });
                continue;
            }
            values.insert(key.name.to_owned(), raw);
        }
        if issues.is_empty() {
            Ok(ParsedConfig { values })
        } else {
            Err(ConfigError { issues })
        }
    }
}

/// A supplied key that nothing declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub key: String,
    /// The declared key it most likely misspells.
    pub suggestion: Option<&'static str>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the configuration {:?} was supplied but isn't a known config",
            self.key
        )?;
        match self.suggestion {
            Some(suggestion) => write!(f, " (did you mean {suggestion:?}?)"),
            None => Ok(()),
        }
    }
}

/// Levenshtein distance: single-character insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn check_type(kind: ConfigType, raw: &str) -> Result<(), String> {
    match kind {
        ConfigType::Int => raw
            .parse::<i32>()
            .map(drop)
            .map_err(|_| "expected a 32-bit integer".to_owned()),
        ConfigType::Long => raw
            .parse::<i64>()
            .map(drop)
            .map_err(|_| "expected a 64-bit integer".to_owned()),
        ConfigType::Double => raw
            .parse::<f64>()
            .map(drop)
            .map_err(|_| "expected a number".to_owned()),
        ConfigType::Boolean => parse_bool(raw)
            .map(drop)
            .ok_or_else(|| "expected true or false".to_owned()),
        ConfigType::String | ConfigType::List | ConfigType::Class | ConfigType::Password => Ok(()),
    }
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A validated configuration: typed getters never fail for keys its `ConfigDef` declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedConfig {
    values: BTreeMap<String, String>,
}

impl ParsedConfig {
    pub fn string(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or("")
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn int(&self, key: &str) -> i32 {
        self.string(key).parse().unwrap_or_default()
    }

    pub fn long(&self, key: &str) -> i64 {
        self.string(key).parse().unwrap_or_default()
    }

    pub fn boolean(&self, key: &str) -> bool {
        parse_bool(self.string(key)).unwrap_or_default()
    }

    /// A comma-separated list, trimmed, without empty items.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.string(key)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn map(&self) -> &ConfigMap {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .required("topic", ConfigType::String, "the topic")
            .optional("batch.size", ConfigType::Int, "2000", "lines per poll")
            .check(|v| {
                if v.parse::<i32>().unwrap_or(0) > 0 {
                    Ok(())
                } else {
                    Err("must be positive".into())
                }
            })
    }

    #[test]
    fn unknown_keys_name_the_key_they_misspell() {
        let props: ConfigMap = [
            ("topic", "t"),
            ("batch.sise", "10"),
            ("producer.linger.ms", "5"),
            ("colour", "blue"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let unknown = def().unknown_keys(&props, &["producer."]);
        assert_eq!(
            unknown,
            vec![
                UnknownKey {
                    key: "batch.sise".into(),
                    suggestion: Some("batch.size"),
                },
                UnknownKey {
                    key: "colour".into(),
                    suggestion: None,
                },
            ]
        );
        assert_eq!(
            unknown[0].to_string(),
            "the configuration \"batch.sise\" was supplied but isn't a known config (did you mean \"batch.size\"?)"
        );
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("bootstrap.server", "bootstrap.servers"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn fills_defaults_and_keeps_undeclared_keys() {
        let props = ConfigMap::from([("topic".into(), "t".into()), ("other".into(), "x".into())]);
        let parsed = def().parse(&props).unwrap();
        assert_eq!(parsed.int("batch.size"), 2000);
        assert_eq!(parsed.string("other"), "x");
    }

    #[test]
    fn names_every_bad_key() {
        let props = ConfigMap::from([("batch.size".into(), "many".into())]);
        let err = def().parse(&props).unwrap_err();
        let keys: Vec<_> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["topic", "batch.size"]);
        assert!(
            err.to_string().contains("expected a 32-bit integer"),
            "{err}"
        );
        let props = ConfigMap::from([
            ("topic".into(), "t".into()),
            ("batch.size".into(), "-1".into()),
        ]);
        assert!(def()
            .parse(&props)
            .unwrap_err()
            .to_string()
            .contains("must be positive"));
    }
}
