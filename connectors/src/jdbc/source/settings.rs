//! The JDBC source's keys, with Confluent's names and defaults, read once into typed settings that the
//! connector and its tasks share.

use std::time::Duration;

use regex::Regex;
use sluice_core::config::{ConfigDef, ConfigError, ConfigIssue, ConfigMap, ConfigType};

use super::reader::Mode;
use super::schema::NumericMapping;
use crate::jdbc::database::{ConnectionSettings, Password};
use crate::jdbc::timestamp::TimeZone;

pub const CONNECTION_URL: &str = "connection.url";
pub const CONNECTION_USER: &str = "connection.user";
pub const CONNECTION_PASSWORD: &str = "connection.password";
pub const CONNECTION_ATTEMPTS: &str = "connection.attempts";
pub const CONNECTION_BACKOFF_MS: &str = "connection.backoff.ms";
pub const MODE: &str = "mode";
pub const INCREMENTING_COLUMN: &str = "incrementing.column.name";
pub const TIMESTAMP_COLUMNS: &str = "timestamp.column.name";
pub const TIMESTAMP_DELAY_MS: &str = "timestamp.delay.interval.ms";
pub const TIMESTAMP_INITIAL: &str = "timestamp.initial";
pub const DB_TIMEZONE: &str = "db.timezone";
pub const VALIDATE_NON_NULL: &str = "validate.non.null";
pub const POLL_INTERVAL_MS: &str = "poll.interval.ms";
pub const BATCH_MAX_ROWS: &str = "batch.max.rows";
pub const TABLE_POLL_INTERVAL_MS: &str = "table.poll.interval.ms";
pub const TABLE_WHITELIST: &str = "table.whitelist";
pub const TABLE_BLACKLIST: &str = "table.blacklist";
pub const TABLE_INCLUDE_LIST: &str = "table.include.list";
pub const TABLE_EXCLUDE_LIST: &str = "table.exclude.list";
pub const TOPIC_PREFIX: &str = "topic.prefix";
pub const QUERY: &str = "query";
pub const QUERY_SUFFIX: &str = "query.suffix";
pub const NUMERIC_MAPPING: &str = "numeric.mapping";
/// The task config key naming the tables a task reads (as Confluent's tasks get them).
pub const TABLES: &str = "tables";

fn non_negative(v: &str) -> Result<(), String> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(()),
        _ => Err("must be a non-negative integer".into()),
    }
}

fn positive(v: &str) -> Result<(), String> {
    match v.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err("must be a positive integer".into()),
    }
}

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required(CONNECTION_URL, ConfigType::String, "The database: jdbc:sqlite:PATH, jdbc:postgresql://HOST:PORT/DB, sqlite:PATH or postgres://HOST:PORT/DB.")
        .optional(CONNECTION_USER, ConfigType::String, "", "The database user.")
        .optional(CONNECTION_PASSWORD, ConfigType::Password, "", "The database user's password; never logged.")
        .optional(CONNECTION_ATTEMPTS, ConfigType::Int, "3", "Attempts to connect before the connector or task fails.")
        .check(positive)
        .optional(CONNECTION_BACKOFF_MS, ConfigType::Long, "10000", "Wait between two connection attempts.")
        .check(non_negative)
        .required(MODE, ConfigType::String, "How tables are read: bulk, incrementing, timestamp or timestamp+incrementing.")
        .check(|v| match v.trim() {
            "bulk" | "incrementing" | "timestamp" | "timestamp+incrementing" => Ok(()),
            _ => Err("must be one of bulk, incrementing, timestamp, timestamp+incrementing".into()),
        })
        .optional(INCREMENTING_COLUMN, ConfigType::String, "", "The strictly increasing column of incrementing modes; empty: the table's single integer primary key.")
        .optional(TIMESTAMP_COLUMNS, ConfigType::List, "", "The timestamp columns of timestamp modes; several: the first non-null (COALESCE).")
        .optional(TIMESTAMP_DELAY_MS, ConfigType::Long, "0", "Rows are read only once their timestamp is this much older than the database's time, so that transactions that commit late are not skipped. Make it longer than the longest transaction that writes the tables.")
        .check(non_negative)
        .optional(TIMESTAMP_INITIAL, ConfigType::String, "", "Where timestamp modes start without an offset, in ms since the epoch; -1: the database's time now; empty: every row.")
        .optional(DB_TIMEZONE, ConfigType::String, "UTC", "The zone of timestamp columns without one: UTC, a fixed offset (+02:00) or a zone name (Europe/Paris).")
        .check(|v| TimeZone::parse(v).map(drop))
        .optional(VALIDATE_NON_NULL, ConfigType::Boolean, "true", "Refuse to start when a mode's column is nullable.")
        .optional(POLL_INTERVAL_MS, ConfigType::Int, "5000", "How often a table that was read to its end is read again.")
        .check(positive)
        .optional(BATCH_MAX_ROWS, ConfigType::Int, "1000", "The most rows one poll returns.")
        .check(positive)
        .optional(TABLE_POLL_INTERVAL_MS, ConfigType::Long, "60000", "How often the connector looks for tables that appeared or disappeared.")
        .check(positive)
        .optional(TABLE_WHITELIST, ConfigType::List, "", "Tables to read, by name; empty: every table.")
        .optional(TABLE_BLACKLIST, ConfigType::List, "", "Tables not to read, by name.")
        .optional(TABLE_INCLUDE_LIST, ConfigType::List, "", "Tables to read, by regular expression (whole name).")
        .optional(TABLE_EXCLUDE_LIST, ConfigType::List, "", "Tables not to read, by regular expression (whole name).")
        .required(TOPIC_PREFIX, ConfigType::String, "Prefix of each table's topic; with query, the topic itself.")
        .optional(QUERY, ConfigType::String, "", "Read the rows of this query instead of tables; the mode's criteria apply to its rows.")
        .optional(QUERY_SUFFIX, ConfigType::String, "", "Appended to every select.")
        .optional(NUMERIC_MAPPING, ConfigType::String, "none", "How NUMERIC columns map: none, precision_only, best_fit, best_fit_eager_double.")
        .check(|v| NumericMapping::parse(v).map(drop))
}

/// Which tables the connector reads.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl TableFilter {
    pub fn accepts(&self, table: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(table)))
            && !self.exclude.iter().any(|r| r.is_match(table))
    }
}

/// The source's settings, checked as a whole.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub connection: ConnectionSettings,
    pub attempts: u32,
    pub backoff: Duration,
    pub mode: Mode,
    /// `incrementing.column.name` was left empty: each table's integer primary key.
    pub detect_incrementing: bool,
    pub delay_ms: u64,
    /// None: every row; Some(-1): the database's time at the first read; Some(ms).
    pub timestamp_initial: Option<i64>,
    pub validate_non_null: bool,
    pub poll_interval: Duration,
    pub batch_max_rows: u64,
    pub table_poll_interval: Duration,
    pub tables: TableFilter,
    pub topic_prefix: String,
    pub query: Option<String>,
    pub query_suffix: String,
    pub numeric_mapping: NumericMapping,
}

impl SourceSettings {
    pub fn parse(config: &ConfigMap) -> Result<SourceSettings, ConfigError> {
        let parsed = config_def().parse(config)?;
        let mut issues = Vec::new();
        let mut issue = |key: &str, message: String| {
            issues.push(ConfigIssue {
                key: key.to_owned(),
                message,
            })
        };
        let incrementing = parsed.string(INCREMENTING_COLUMN).trim().to_owned();
        let timestamps = parsed.list(TIMESTAMP_COLUMNS);
        let mode = match parsed.string(MODE).trim() {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing {
                column: incrementing.clone(),
            },
            "timestamp" => Mode::Timestamp {
                columns: timestamps.clone(),
            },
            _ => Mode::TimestampIncrementing {
                columns: timestamps.clone(),
                incrementing: incrementing.clone(),
            },
        };
        if matches!(
            mode,
            Mode::Timestamp { .. } | Mode::TimestampIncrementing { .. }
        ) && timestamps.is_empty()
        {
            issue(
                TIMESTAMP_COLUMNS,
                format!(
                    "mode {} needs the timestamp column(s) to read by",
                    parsed.string(MODE).trim()
                ),
            );
        }
        let regexes = |key: &str, issue: &mut dyn FnMut(&str, String)| -> Vec<Regex> {
            parsed
                .list(key)
                .iter()
                .filter_map(|pattern| match Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        issue(key, format!("{pattern:?} is not a regular expression: {e}"));
                        None
                    }
                })
                .collect()
        };
        let exact = |key: &str| -> Vec<Regex> {
            parsed
                .list(key)
                .iter()
                .filter_map(|name| Regex::new(&format!("^{}$", regex::escape(name))).ok())
                .collect()
        };
        let mut include = exact(TABLE_WHITELIST);
        include.extend(regexes(TABLE_INCLUDE_LIST, &mut issue));
        let mut exclude = exact(TABLE_BLACKLIST);
        exclude.extend(regexes(TABLE_EXCLUDE_LIST, &mut issue));
        let listed = |key: &str| !parsed.list(key).is_empty();
        if (listed(TABLE_WHITELIST) || listed(TABLE_INCLUDE_LIST))
            && (listed(TABLE_BLACKLIST) || listed(TABLE_EXCLUDE_LIST))
        {
            issue(
                TABLE_BLACKLIST,
                "tables to read and tables not to read cannot both be given".into(),
            );
        }
        let query = Some(parsed.string(QUERY).trim().to_owned()).filter(|q| !q.is_empty());
        if query.is_some() && (!include.is_empty() || !exclude.is_empty()) {
            issue(
                QUERY,
                "a query reads no tables: leave the table lists out".into(),
            );
        }
        let timestamp_initial = match parsed.string(TIMESTAMP_INITIAL).trim() {
            "" => None,
            text => match text.parse::<i64>() {
                Ok(n) if n >= -1 => Some(n),
                _ => {
                    issue(
                        TIMESTAMP_INITIAL,
                        format!("{text:?} is not -1 or milliseconds since the epoch"),
                    );
                    None
                }
            },
        };
        if !issues.is_empty() {
            return Err(ConfigError { issues });
        }
        let password = parsed.string(CONNECTION_PASSWORD);
        let user = parsed.string(CONNECTION_USER).trim();
        Ok(SourceSettings {
            connection: ConnectionSettings {
                url: parsed.string(CONNECTION_URL).trim().to_owned(),
                user: Some(user.to_owned()).filter(|u| !u.is_empty()),
                password: Some(Password::new(password)).filter(|_| !password.is_empty()),
                timezone: TimeZone::parse(parsed.string(DB_TIMEZONE)).unwrap_or_default(),
                create: false,
            },
            attempts: parsed.int(CONNECTION_ATTEMPTS).max(1) as u32,
            backoff: Duration::from_millis(parsed.long(CONNECTION_BACKOFF_MS).max(0) as u64),
            detect_incrementing: incrementing.is_empty(),
            mode,
            delay_ms: parsed.long(TIMESTAMP_DELAY_MS).max(0) as u64,
            timestamp_initial,
            validate_non_null: parsed.boolean(VALIDATE_NON_NULL),
            poll_interval: Duration::from_millis(parsed.int(POLL_INTERVAL_MS).max(1) as u64),
            batch_max_rows: parsed.int(BATCH_MAX_ROWS).max(1) as u64,
            table_poll_interval: Duration::from_millis(
                parsed.long(TABLE_POLL_INTERVAL_MS).max(1) as u64
            ),
            tables: TableFilter { include, exclude },
            topic_prefix: parsed.string(TOPIC_PREFIX).to_owned(),
            query,
            query_suffix: parsed.string(QUERY_SUFFIX).trim().to_owned(),
            numeric_mapping: NumericMapping::parse(parsed.string(NUMERIC_MAPPING))
                .unwrap_or(NumericMapping::None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: [(&str, &str); 2] = [
        (CONNECTION_URL, "jdbc:sqlite:shop.db"),
        (TOPIC_PREFIX, "shop-"),
    ];

    #[test]
    fn a_mode_without_its_column_is_named() {
        let mut pairs = BASE.to_vec();
        pairs.push((MODE, "timestamp+incrementing"));
        let e = SourceSettings::parse(&config(&pairs)).unwrap_err();
        assert!(e.to_string().contains(TIMESTAMP_COLUMNS), "{e}");
        pairs.push((MODE, "sometimes"));
        let e = SourceSettings::parse(&config(&pairs)).unwrap_err();
        assert!(e.to_string().contains("mode"), "{e}");
    }

    #[test]
    fn table_lists_filter_by_name_and_by_pattern() {
        let mut pairs = BASE.to_vec();
        pairs.extend([(MODE, "bulk"), (TABLE_INCLUDE_LIST, "order.*,customers")]);
        let settings = SourceSettings::parse(&config(&pairs)).unwrap();
        assert!(settings.tables.accepts("orders"));
        assert!(settings.tables.accepts("customers"));
        assert!(!settings.tables.accepts("customers_archive"));
        pairs.push((TABLE_BLACKLIST, "orders"));
        let e = SourceSettings::parse(&config(&pairs)).unwrap_err();
        assert!(e.to_string().contains("cannot both be given"), "{e}");
    }

    #[test]
    fn the_password_is_kept_hidden() {
        let mut pairs = BASE.to_vec();
        pairs.extend([(MODE, "bulk"), (CONNECTION_PASSWORD, "hunter2")]);
        let settings = SourceSettings::parse(&config(&pairs)).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert_eq!(
            settings.connection.password.as_ref().map(Password::expose),
            Some("hunter2")
        );
    }
}
