//! `RegexRouter`: when the whole topic matches `regex`, renames it to `replacement`, where `$1` (or
//! `${name}`) stands for a group, as in Java's `Matcher.replaceFirst`.

use regex::Regex;

use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};

struct RegexRouter {
    regex: Regex,
    /// The replacement in the regex crate's syntax.
    replacement: String,
}

pub fn make(config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required(
            "regex",
            ConfigType::String,
            "A regular expression the whole topic must match.",
        )
        .required(
            "replacement",
            ConfigType::String,
            "The new topic; $1 stands for a group.",
        )
        .parse(config)?;
    let regex = Regex::new(&format!("^(?:{})$", parsed.string("regex")))
        .map_err(|e| ConfigError::single("regex", format!("not a regular expression: {e}")))?;
    let replacement = java_replacement(config.get("replacement").map_or("", String::as_str))
        .map_err(|e| ConfigError::single("replacement", e))?;
    Ok(Box::new(RegexRouter { regex, replacement }))
}

/// A Java replacement string (`$1`, `${name}`, `\$` for a dollar) in the regex crate's syntax.
fn java_replacement(java: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => return Err("ends with a lone backslash".into()),
            },
            '$' => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    out.push_str(&format!("${{{name}}}"));
                }
                Some(d) if d.is_ascii_digit() => {
                    let mut group = String::new();
                    while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                        group.push(*d);
                        chars.next();
                    }
                    out.push_str(&format!("${{{group}}}"));
                }
                _ => {
                    return Err(
                        "a $ must name a group ($1, ${name}); write \\$ for a dollar".into(),
                    )
                }
            },
            other => out.push(other),
        }
    }
    Ok(out)
}

impl Transformation for RegexRouter {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        if let Some(captures) = self.regex.captures(record.topic()) {
            let mut topic = String::new();
            captures.expand(&self.replacement, &mut topic);
            record.set_topic(topic.into());
        }
        Ok(Outcome::Keep)
    }
}
