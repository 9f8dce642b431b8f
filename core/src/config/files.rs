//! Reading configuration files: `.properties` text parsed exactly as `java.util.Properties.load` does, and
//! connector files that are either properties or JSON in the REST API's `{"name": ..., "config": {...}}` shape.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ConfigMap;

/// Why a configuration file could not be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: malformed \\uxxxx escape: {reason}", path.display())]
    MalformedEscape {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    InvalidJson {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {reason}", path.display())]
    JsonShape { path: PathBuf, reason: String },
    #[error(
        "{}: config key {key:?} has {kind} value; expected a string, number or boolean",
        path.display()
    )]
    NonScalarValue {
        path: PathBuf,
        key: String,
        kind: &'static str,
    },
    #[error(
        "{}: connector name {top:?} does not match config.name {config:?}",
        path.display()
    )]
    NameMismatch {
        path: PathBuf,
        top: String,
        config: String,
    },
}

/// Parses `.properties` text with the rules of `java.util.Properties.load`; `origin` only names the text in
/// errors. The last of duplicate keys wins.
pub fn parse_properties(text: &str, origin: &Path) -> Result<ConfigMap, ConfigFileError> {
    let mut map = ConfigMap::new();
    for line in logical_lines(text) {
        let (key, value) = split_key_value(&line.chars);
        let key = unescape(key, 0).map_err(|e| escape_error(e, &line, origin))?;
        let value = unescape(value, line.chars.len() - value.len())
            .map_err(|e| escape_error(e, &line, origin))?;
        map.insert(key, value);
    }
    Ok(map)
}

/// Reads and parses a `.properties` file. The file is read as UTF-8 when it is valid UTF-8 and as ISO-8859-1
/// (what Java's `Properties.load(InputStream)` assumes) otherwise; a leading byte-order mark is ignored.
pub fn load_properties_file(path: &Path) -> Result<ConfigMap, ConfigFileError> {
    let text = read_text(path)?;
    parse_properties(&text, path)
}

/// Reads a connector config file as `connect-standalone` does. A `.json` file, or one whose content starts
/// with `{`, must hold `{"name": ..., "config": {...}}` or a flat object of config keys; scalar values become
/// strings and the top-level `name` is added to the config unless the config has the same `name` already.
/// Anything else is parsed as properties. Whether `name` is present at all is left to the caller.
pub fn load_connector_file(path: &Path) -> Result<ConfigMap, ConfigFileError> {
    let text = read_text(path)?;
    let is_json_name = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json_name || text.trim_start().starts_with('{') {
        parse_connector_json(&text, path)
    } else {
        parse_properties(&text, path)
    }
}

fn read_text(path: &Path) -> Result<String, ConfigFileError> {
    let bytes = fs::read(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => err.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

fn parse_connector_json(text: &str, path: &Path) -> Result<ConfigMap, ConfigFileError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ConfigFileError::InvalidJson {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let shape = |reason: &str| ConfigFileError::JsonShape {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let Value::Object(root) = root else {
        return Err(shape("expected a JSON object"));
    };
    let Some(config) = root.get("config") else {
        return scalar_map(&root, path);
    };
    let Value::Object(config) = config else {
        return Err(shape("\"config\" must be an object of config keys"));
    };
    let mut map = scalar_map(config, path)?;
    match root.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => match map.get("name") {
            None => {
                map.insert("name".to_owned(), name.clone());
            }
            Some(inner) if inner == name => {}
            Some(inner) => {
                return Err(ConfigFileError::NameMismatch {
                    path: path.to_owned(),
                    top: name.clone(),
                    config: inner.clone(),
                })
            }
        },
        Some(_) => return Err(shape("\"name\" must be a string")),
    }
    Ok(map)
}

fn scalar_map(
    object: &serde_json::Map<String, Value>,
    path: &Path,
) -> Result<ConfigMap, ConfigFileError> {
    let mut map = ConfigMap::new();
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null | Value::Array(_) | Value::Object(_) => {
                let kind = match value {
                    Value::Null => "a null",
                    Value::Array(_) => "an array",
                    _ => "an object",
                };
                return Err(ConfigFileError::NonScalarValue {
                    path: path.to_owned(),
                    key: key.clone(),
                    kind,
                });
            }
        };
        map.insert(key.clone(), text);
    }
    Ok(map)
}

/// One logical line: its characters with continuations joined, and where each natural line's part begins.
struct LogicalLine {
    chars: Vec<char>,
    /// `(index into chars, 1-based natural line number)`, in order.
    parts: Vec<(usize, usize)>,
}

impl LogicalLine {
    fn line_of(&self, index: usize) -> usize {
        self.parts
            .iter()
            .take_while(|(start, _)| *start <= index)
            .last()
            .map_or(1, |(_, line)| *line)
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Natural lines, split at `\r\n`, `\r` or `\n`, numbered from 1.
fn natural_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = Some(text);
    let mut number = 0;
    std::iter::from_fn(move || {
        let current = rest?;
        number += 1;
        match current.find(['\r', '\n']) {
            Some(end) => {
                let after = if current[end..].starts_with("\r\n") {
                    end + 2
                } else {
                    end + 1
                };
                rest = Some(&current[after..]);
                Some((number, &current[..end]))
            }
            None => {
                rest = None;
                Some((number, current))
            }
        }
    })
}

/// The logical lines of a properties text, as `Properties.LineReader` produces them: blank and comment lines
/// skipped, leading whitespace dropped, and a line ending in an odd number of backslashes joined with the next.
fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let mut lines = Vec::new();
    let mut current: Option<LogicalLine> = None;
    for (number, natural) in natural_lines(text) {
        let content = natural.trim_start_matches(is_space);
        let mut line = match current.take() {
            Some(line) => line,
            None => {
                if content.is_empty() || content.starts_with(['#', '!']) {
                    continue;
                }
                LogicalLine {
                    chars: Vec::new(),
                    parts: Vec::new(),
                }
            }
        };
        line.parts.push((line.chars.len(), number));
        line.chars.extend(content.chars());
        let trailing_backslashes = content.chars().rev().take_while(|&c| c == '\\').count();
        if trailing_backslashes % 2 == 1 {
            line.chars.pop();
            current = Some(line);
        } else {
            lines.push(line);
        }
    }
    if let Some(line) = current {
        lines.push(line);
    }
    lines
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace, skipping whitespace around it.
fn split_key_value(chars: &[char]) -> (&[char], &[char]) {
    let mut key_end = chars.len();
    let mut value_start = chars.len();
    let mut has_separator = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if !escaped && (c == '=' || c == ':') {
            key_end = i;
            value_start = i + 1;
            has_separator = true;
            break;
        }
        if !escaped && is_space(c) {
            key_end = i;
            value_start = i + 1;
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    while let Some(&c) = chars.get(value_start) {
        if is_space(c) {
            value_start += 1;
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            value_start += 1;
        } else {
            break;
        }
    }
    (&chars[..key_end], &chars[value_start..])
}

/// A malformed `\u` escape at `index` of the logical line.
struct EscapeError {
    index: usize,
    reason: &'static str,
}

fn escape_error(err: EscapeError, line: &LogicalLine, origin: &Path) -> ConfigFileError {
    ConfigFileError::MalformedEscape {
        path: origin.to_owned(),
        line: line.line_of(err.index),
        reason: err.reason,
    }
}

/// Reads the four hex digits of a `\u` escape that starts at `at`.
fn hex4(chars: &[char], at: usize) -> Option<u32> {
    let digits = chars.get(at + 2..at + 6)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &c| c.to_digit(16).map(|d| acc << 4 | d))
}

/// Resolves `\t \n \r \f \uXXXX` and `\X` = `X`. `offset` is where `chars` begins in its logical line.
/// A `\u` pair of UTF-16 surrogates makes one character; a lone surrogate is malformed.
fn unescape(chars: &[char], offset: usize) -> Result<String, EscapeError> {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let error = |at: usize, reason| EscapeError {
            index: offset + at,
            reason,
        };
        match chars.get(i + 1) {
            None => i += 1,
            Some('u') => {
                let unit = hex4(chars, i).ok_or(error(i, BAD_HEX))?;
                let (code, len) = if (0xD800..0xDC00).contains(&unit) {
                    let low = match (chars.get(i + 6), chars.get(i + 7)) {
                        (Some('\\'), Some('u')) => {
                            hex4(chars, i + 6).ok_or(error(i + 6, BAD_HEX))?
                        }
                        _ => return Err(error(i, LONE_SURROGATE)),
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(error(i, LONE_SURROGATE));
                    }
                    (0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), 12)
                } else {
                    (unit, 6)
                };
                out.push(char::from_u32(code).ok_or(error(i, LONE_SURROGATE))?);
                i += len;
            }
            Some(&escaped) => {
                out.push(match escaped {
                    't' => '\t',
                    'n' => '\n',
                    'r' => '\r',
                    'f' => '\u{c}',
                    other => other,
                });
                i += 2;
            }
        }
    }
    Ok(out)
}

const BAD_HEX: &str = "expected four hex digits";
const LONE_SURROGATE: &str = "unpaired UTF-16 surrogate";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfigMap {
        match parse_properties(text, Path::new("test.properties")) {
            Ok(map) => map,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn pairs(map: &ConfigMap) -> Vec<(&str, &str)> {
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn separators_and_surrounding_whitespace() {
        let map = parse("a=1\nb : 2\nc 3\nd\t=\t4\ne   5  \nf\u{c}6\ng= =7\nh = : 8\n");
        assert_eq!(
            pairs(&map),
            vec![
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5  "),
                ("f", "6"),
                ("g", "=7"),
                ("h", ": 8"),
            ]
        );
    }

    #[test]
    fn key_without_value_and_empty_value() {
        let map = parse("lonely\nempty=\nspaced =   \n");
        assert_eq!(
            pairs(&map),
            vec![("empty", ""), ("lonely", ""), ("spaced", "")]
        );
    }

    #[test]
    fn comments_blank_lines_and_leading_whitespace() {
        let map = parse("# c1\n! c2\n\n   \t\n   #indented comment\n   key = v # not a comment\n");
        assert_eq!(pairs(&map), vec![("key", "v # not a comment")]);
    }

    #[test]
    fn comment_ending_in_backslash_does_not_continue() {
        let map = parse("# comment \\\nkey=v\n");
        assert_eq!(pairs(&map), vec![("key", "v")]);
    }

    #[test]
    fn line_continuation() {
        let map = parse("key = one, \\\n      two, \\\n\t three\nnext=x\n");
        assert_eq!(pairs(&map), vec![("key", "one, two, three"), ("next", "x")]);
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let map = parse("a=x\\\\\nb=y\\\\\\\nz\n");
        assert_eq!(pairs(&map), vec![("a", "x\\"), ("b", "y\\z")]);
    }

    #[test]
    fn continuation_line_starting_with_hash_is_content() {
        let map = parse("a=1\\\n  #2\n");
        assert_eq!(pairs(&map), vec![("a", "1#2")]);
    }

    #[test]
    fn blank_continuation_line_ends_the_value() {
        let map = parse("a=1\\\n   \nb=2\n");
        assert_eq!(pairs(&map), vec![("a", "1"), ("b", "2")]);
    }

    #[test]
    fn backslash_at_end_of_file_is_dropped() {
        assert_eq!(pairs(&parse("a=1\\")), vec![("a", "1")]);
        assert_eq!(pairs(&parse("a=1\\\n")), vec![("a", "1")]);
    }

    #[test]
    fn line_endings_cr_lf_and_crlf() {
        let map = parse("a=1\r\nb=2\rc=3\nd=4\\\r\n  5\\\r 6");
        assert_eq!(
            pairs(&map),
            vec![("a", "1"), ("b", "2"), ("c", "3"), ("d", "456")]
        );
    }

    #[test]
    fn escapes() {
        let map = parse(
            "tab=a\\tb\nnl=a\\nb\ncr=a\\rb\nff=a\\fb\nbs=a\\\\b\nother=\\a\\b\\q\\\"\nuni=\\u00e9\\u20AC\n",
        );
        assert_eq!(map["tab"], "a\tb");
        assert_eq!(map["nl"], "a\nb");
        assert_eq!(map["cr"], "a\rb");
        assert_eq!(map["ff"], "a\u{c}b");
        assert_eq!(map["bs"], "a\\b");
        assert_eq!(map["other"], "abq\"");
        assert_eq!(map["uni"], "é€");
    }

    #[test]
    fn escaped_separators_stay_in_the_key() {
        let map = parse("a\\=b\\:c\\ d = v=w:x\n\\#not\\!comment=1\n");
        assert_eq!(
            pairs(&map),
            vec![("#not!comment", "1"), ("a=b:c d", "v=w:x")]
        );
    }

    #[test]
    fn escaped_backslash_before_separator() {
        let map = parse("a\\\\=b\n");
        assert_eq!(pairs(&map), vec![("a\\", "b")]);
    }

    #[test]
    fn surrogate_pair_makes_one_character() {
        let map = parse("smile=\\uD83D\\uDE00\n");
        assert_eq!(map["smile"], "😀");
    }

    #[test]
    fn utf8_text_is_kept() {
        let map = parse("naïve=日本\n");
        assert_eq!(pairs(&map), vec![("naïve", "日本")]);
    }

    #[test]
    fn last_duplicate_wins() {
        let map = parse("k=1\nk=2\nother=x\nk=3\n");
        assert_eq!(pairs(&map), vec![("k", "3"), ("other", "x")]);
    }

    fn malformed(text: &str) -> (usize, &'static str, String) {
        match parse_properties(text, Path::new("/etc/sluice/w.properties")) {
            Err(ConfigFileError::MalformedEscape { path, line, reason }) => {
                let message = ConfigFileError::MalformedEscape { path, line, reason }.to_string();
                (line, reason, message)
            }
            other => panic!("expected a malformed escape error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_unicode_escape_names_file_and_line() {
        let (line, _, message) = malformed("a=1\n\n# c\n\nb=x\\u12G4\n");
        assert_eq!(line, 5);
        assert!(
            message.starts_with("/etc/sluice/w.properties:5: malformed"),
            "{message}"
        );
    }

    #[test]
    fn short_unicode_escape_is_malformed() {
        assert_eq!(malformed("a=\\u12").0, 1);
        assert_eq!(malformed("a=b\nkey\\u=1").0, 2);
    }

    #[test]
    fn malformed_escape_in_continuation_reports_its_own_line() {
        let (line, _, _) = malformed("a=one\\\n  two\\\n  \\uZZZZ\n");
        assert_eq!(line, 3);
    }

    #[test]
    fn lone_surrogates_are_malformed() {
        assert_eq!(malformed("a=\\uD83D").1, "unpaired UTF-16 surrogate");
        assert_eq!(malformed("a=\\uD83Dx").1, "unpaired UTF-16 surrogate");
        assert_eq!(malformed("a=\\uDE00").1, "unpaired UTF-16 surrogate");
        assert_eq!(malformed("a=\\uD83D\\u0041").1, "unpaired UTF-16 surrogate");
    }

    fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        if let Err(e) = fs::write(&path, content) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }

    fn tempdir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temp dir: {e}"),
        }
    }

    #[test]
    fn properties_file_is_loaded() {
        let dir = tempdir();
        let path = write(
            &dir,
            "w.properties",
            b"\xef\xbb\xbfbootstrap.servers=localhost:9092\n",
        );
        let map = load_properties_file(&path).map_err(|e| e.to_string());
        assert_eq!(
            map.as_ref().map(pairs),
            Ok(vec![("bootstrap.servers", "localhost:9092")])
        );
    }

    #[test]
    fn non_utf8_file_is_read_as_latin1() {
        let dir = tempdir();
        let path = write(&dir, "w.properties", b"k=caf\xe9\n");
        let map = load_properties_file(&path).map_err(|e| e.to_string());
        assert_eq!(map.as_ref().map(pairs), Ok(vec![("k", "café")]));
    }

    #[test]
    fn unreadable_file_names_path() {
        let dir = tempdir();
        let path = dir.path().join("missing.properties");
        let err = load_properties_file(&path).err();
        match &err {
            Some(ConfigFileError::Read { path: p, source }) => {
                assert_eq!(p, &path);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            load_connector_file(&path).is_err_and(|e| matches!(e, ConfigFileError::Read { .. }))
        );
    }

    fn connector(name: &str, content: &str) -> Result<ConfigMap, ConfigFileError> {
        let dir = tempdir();
        let path = write(&dir, name, content.as_bytes());
        load_connector_file(&path)
    }

    fn connector_ok(name: &str, content: &str) -> ConfigMap {
        match connector(name, content) {
            Ok(map) => map,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn connector_properties_file() {
        let map = connector_ok(
            "c.properties",
            "name=local-file-source\nconnector.class=FileStreamSource\ntasks.max=1\n",
        );
        assert_eq!(
            pairs(&map),
            vec![
                ("connector.class", "FileStreamSource"),
                ("name", "local-file-source"),
                ("tasks.max", "1"),
            ]
        );
    }

    #[test]
    fn connector_json_rest_shape() {
        let map = connector_ok(
            "c.json",
            r#"{"name": "src", "config": {"connector.class": "FileStreamSource", "tasks.max": 2,
                "enabled": true, "ratio": 0.5, "topic": "t"}}"#,
        );
        assert_eq!(
            pairs(&map),
            vec![
                ("connector.class", "FileStreamSource"),
                ("enabled", "true"),
                ("name", "src"),
                ("ratio", "0.5"),
                ("tasks.max", "2"),
                ("topic", "t"),
            ]
        );
    }

    #[test]
    fn connector_json_detected_by_content() {
        let map = connector_ok(
            "c.conf",
            "  \n{\"name\": \"x\", \"config\": {\"a\": \"b\"}}",
        );
        assert_eq!(pairs(&map), vec![("a", "b"), ("name", "x")]);
    }

    #[test]
    fn connector_json_flat_object() {
        let map = connector_ok("c.json", r#"{"name": "x", "tasks.max": 1}"#);
        assert_eq!(pairs(&map), vec![("name", "x"), ("tasks.max", "1")]);
    }

    #[test]
    fn connector_json_config_name_must_match() {
        let map = connector_ok("c.json", r#"{"name": "x", "config": {"name": "x"}}"#);
        assert_eq!(pairs(&map), vec![("name", "x")]);
        let map = connector_ok("c.json", r#"{"config": {"name": "only-inner"}}"#);
        assert_eq!(pairs(&map), vec![("name", "only-inner")]);
        match connector("c.json", r#"{"name": "x", "config": {"name": "y"}}"#) {
            Err(ConfigFileError::NameMismatch { top, config, .. }) => {
                assert_eq!((top.as_str(), config.as_str()), ("x", "y"));
            }
            other => panic!("expected a name mismatch, got {other:?}"),
        }
    }

    #[test]
    fn connector_json_nested_value_names_key() {
        for (content, key, kind) in [
            (
                r#"{"name": "x", "config": {"a": "1", "bad": {"k": 1}}}"#,
                "bad",
                "an object",
            ),
            (
                r#"{"name": "x", "config": {"list": [1, 2]}}"#,
                "list",
                "an array",
            ),
            (r#"{"name": "x", "config": {"n": null}}"#, "n", "a null"),
            (r#"{"name": "x", "other": [1]}"#, "other", "an array"),
        ] {
            match connector("c.json", content) {
                Err(e) => {
                    let message = e.to_string();
                    assert!(message.contains("c.json"), "{message}");
                    match e {
                        ConfigFileError::NonScalarValue {
                            key: k, kind: t, ..
                        } => {
                            assert_eq!((k.as_str(), t), (key, kind));
                        }
                        other => panic!("expected a non-scalar error for {content}, got {other:?}"),
                    }
                }
                Ok(map) => panic!("expected a non-scalar error for {content}, got {map:?}"),
            }
        }
    }

    #[test]
    fn connector_json_wrong_shape() {
        for content in [
            "[1, 2]",
            "\"text\"",
            r#"{"name": "x", "config": "a=b"}"#,
            r#"{"name": 7, "config": {}}"#,
        ] {
            match connector("c.json", content) {
                Err(e @ ConfigFileError::JsonShape { .. }) => {
                    assert!(e.to_string().contains("c.json"), "{e}");
                }
                other => panic!("expected a shape error for {content}, got {other:?}"),
            }
        }
    }

    #[test]
    fn connector_json_invalid_names_line_and_column() {
        match connector(
            "c.json",
            "{\n  \"name\": \"x\",\n  \"config\": {\"a\": }\n}",
        ) {
            Err(ConfigFileError::InvalidJson {
                path,
                line,
                column,
                message,
            }) => {
                let message = ConfigFileError::InvalidJson {
                    path: path.clone(),
                    line,
                    column,
                    message,
                }
                .to_string();
                assert_eq!(line, 3);
                assert_eq!(column, 19);
                assert!(path.ends_with("c.json"));
                assert!(
                    message.contains(&format!("{}:3:19", path.display())),
                    "{message}"
                );
            }
            other => panic!("expected invalid JSON, got {other:?}"),
        }
    }
}
