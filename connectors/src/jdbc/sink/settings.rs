//! The JDBC sink's keys, with Confluent's names and defaults, plus Sluice's exactly-once option (the
//! Kafka offsets kept in a table, written in the same transaction as the rows) and its lineage columns.

use std::time::Duration;

use sluice_core::config::{ConfigDef, ConfigError, ConfigIssue, ConfigMap, ConfigType};

use crate::jdbc::database::{ConnectionSettings, Password, WriteKind};
use crate::jdbc::source::settings::{
    CONNECTION_ATTEMPTS, CONNECTION_BACKOFF_MS, CONNECTION_PASSWORD, CONNECTION_URL,
    CONNECTION_USER, DB_TIMEZONE,
};
use crate::jdbc::timestamp::TimeZone;

pub const INSERT_MODE: &str = "insert.mode";
pub const PK_MODE: &str = "pk.mode";
pub const PK_FIELDS: &str = "pk.fields";
pub const AUTO_CREATE: &str = "auto.create";
pub const AUTO_EVOLVE: &str = "auto.evolve";
pub const DELETE_ENABLED: &str = "delete.enabled";
pub const BATCH_SIZE: &str = "batch.size";
pub const MAX_RETRIES: &str = "max.retries";
pub const RETRY_BACKOFF_MS: &str = "retry.backoff.ms";
pub const TABLE_NAME_FORMAT: &str = "table.name.format";
pub const FIELDS_WHITELIST: &str = "fields.whitelist";
pub const EXACTLY_ONCE: &str = "exactly.once.enabled";
pub const OFFSETS_TABLE: &str = "exactly.once.offsets.table";
pub const COORDINATE_COLUMNS: &str = "kafka.coordinates.columns";

fn non_negative(v: &str) -> Result<(), String> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(()),
        _ => Err("must be a non-negative integer".into()),
    }
}

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required(CONNECTION_URL, ConfigType::String, "The database: jdbc:sqlite:PATH (created if missing), jdbc:postgresql://HOST:PORT/DB, sqlite:PATH or postgres://HOST:PORT/DB.")
        .optional(CONNECTION_USER, ConfigType::String, "", "The database user.")
        .optional(CONNECTION_PASSWORD, ConfigType::Password, "", "The database user's password; never logged.")
        .optional(CONNECTION_ATTEMPTS, ConfigType::Int, "3", "Attempts to connect before the task fails.")
        .optional(CONNECTION_BACKOFF_MS, ConfigType::Long, "10000", "Wait between two connection attempts.")
        .check(non_negative)
        .optional(DB_TIMEZONE, ConfigType::String, "UTC", "The zone timestamps are written in to columns without one: UTC, a fixed offset (+02:00) or a zone name (Europe/Paris).")
        .check(|v| TimeZone::parse(v).map(drop))
        .optional(INSERT_MODE, ConfigType::String, "insert", "insert, upsert (insert or replace by key) or update (by key).")
        .check(|v| match v.trim() {
            "insert" | "upsert" | "update" => Ok(()),
            _ => Err("must be one of insert, upsert, update".into()),
        })
        .optional(PK_MODE, ConfigType::String, "none", "Where the key comes from: none, kafka (topic, partition, offset), record_key, record_value.")
        .check(|v| match v.trim() {
            "none" | "kafka" | "record_key" | "record_value" => Ok(()),
            _ => Err("must be one of none, kafka, record_key, record_value".into()),
        })
        .optional(PK_FIELDS, ConfigType::List, "", "The key's columns: for record_key and record_value, the fields (default: all of them; a primitive key is one column, __connect_key by default); for kafka, three names.")
        .optional(AUTO_CREATE, ConfigType::Boolean, "false", "Create a missing table from the record's schema.")
        .optional(AUTO_EVOLVE, ConfigType::Boolean, "false", "Add columns the table lacks for a record's fields.")
        .optional(DELETE_ENABLED, ConfigType::Boolean, "false", "A tombstone (null value) deletes the row of its key; needs pk.mode=record_key.")
        .optional(BATCH_SIZE, ConfigType::Int, "3000", "The most rows written in one transaction.")
        .check(|v| match v.trim().parse::<i32>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err("must be a positive integer".into()),
        })
        .optional(MAX_RETRIES, ConfigType::Int, "10", "Times a write that failed for a passing reason is tried again before the task fails.")
        .check(non_negative)
        .optional(RETRY_BACKOFF_MS, ConfigType::Int, "3000", "Wait before a failed write is tried again.")
        .check(non_negative)
        .optional(TABLE_NAME_FORMAT, ConfigType::String, "${topic}", "The table of a record: ${topic} stands for its topic.")
        .optional(FIELDS_WHITELIST, ConfigType::List, "", "The value's fields written; empty: all of them.")
        .optional(EXACTLY_ONCE, ConfigType::Boolean, "false", "Sluice's own: keep the Kafka offsets in a table, written in the same transaction as the rows, and resume from them, so that no row is written twice even with insert.mode=insert.")
        .optional(OFFSETS_TABLE, ConfigType::String, "__sluice_sink_offsets", "The table of exactly.once.enabled's offsets (created if missing).")
        .optional(COORDINATE_COLUMNS, ConfigType::Boolean, "false", "Sluice's own: also write each record's topic, partition and offset into __connect_topic, __connect_partition and __connect_offset, whatever pk.mode is.")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub connection: ConnectionSettings,
    pub attempts: u32,
    pub backoff: Duration,
    pub insert_mode: WriteKind,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub delete_enabled: bool,
    pub batch_size: usize,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    pub table_name_format: String,
    pub fields_whitelist: Vec<String>,
    pub offsets_table: Option<String>,
    pub coordinate_columns: bool,
}

impl SinkSettings {
    pub fn parse(config: &ConfigMap) -> Result<SinkSettings, ConfigError> {
        let parsed = config_def().parse(config)?;
        let mut issues = Vec::new();
        let insert_mode = match parsed.string(INSERT_MODE).trim() {
            "upsert" => WriteKind::Upsert,
            "update" => WriteKind::Update,
            _ => WriteKind::Insert,
        };
        let pk_mode = match parsed.string(PK_MODE).trim() {
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            _ => PkMode::None,
        };
        let pk_fields = parsed.list(PK_FIELDS);
        if insert_mode != WriteKind::Insert && pk_mode == PkMode::None {
            issues.push(ConfigIssue {
                key: PK_MODE.into(),
                message: format!(
                    "insert.mode={} finds rows by key: set pk.mode to kafka, record_key or record_value",
                    parsed.string(INSERT_MODE).trim()
                ),
            });
        }
        if parsed.boolean(DELETE_ENABLED) && pk_mode != PkMode::RecordKey {
            issues.push(ConfigIssue {
                key: DELETE_ENABLED.into(),
                message: "deletes find rows by the record's key: it needs pk.mode=record_key"
                    .into(),
            });
        }
        if pk_mode == PkMode::Kafka && !(pk_fields.is_empty() || pk_fields.len() == 3) {
            issues.push(ConfigIssue {
                key: PK_FIELDS.into(),
                message: "pk.mode=kafka names three columns (topic, partition, offset), or none for the defaults".into(),
            });
        }
        if parsed.string(TABLE_NAME_FORMAT).trim().is_empty() {
            issues.push(ConfigIssue {
                key: TABLE_NAME_FORMAT.into(),
                message: "must name a table".into(),
            });
        }
        if !issues.is_empty() {
            return Err(ConfigError { issues });
        }
        let password = parsed.string(CONNECTION_PASSWORD);
        let user = parsed.string(CONNECTION_USER).trim();
        Ok(SinkSettings {
            connection: ConnectionSettings {
                url: parsed.string(CONNECTION_URL).trim().to_owned(),
                user: Some(user.to_owned()).filter(|u| !u.is_empty()),
                password: Some(Password::new(password)).filter(|_| !password.is_empty()),
                timezone: TimeZone::parse(parsed.string(DB_TIMEZONE)).unwrap_or_default(),
                create: true,
            },
            attempts: parsed.int(CONNECTION_ATTEMPTS).max(1) as u32,
            backoff: Duration::from_millis(parsed.long(CONNECTION_BACKOFF_MS).max(0) as u64),
            insert_mode,
            pk_mode,
            pk_fields,
            auto_create: parsed.boolean(AUTO_CREATE),
            auto_evolve: parsed.boolean(AUTO_EVOLVE),
            delete_enabled: parsed.boolean(DELETE_ENABLED),
            batch_size: parsed.int(BATCH_SIZE).max(1) as usize,
            max_retries: parsed.int(MAX_RETRIES).max(0) as u32,
            retry_backoff: Duration::from_millis(parsed.int(RETRY_BACKOFF_MS).max(0) as u64),
            table_name_format: parsed.string(TABLE_NAME_FORMAT).trim().to_owned(),
            fields_whitelist: parsed.list(FIELDS_WHITELIST),
            offsets_table: parsed
                .boolean(EXACTLY_ONCE)
                .then(|| parsed.string(OFFSETS_TABLE).trim().to_owned()),
            coordinate_columns: parsed.boolean(COORDINATE_COLUMNS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        [("connection.url", "jdbc:sqlite:out.db")]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn modes_that_need_a_key_say_so() {
        let e = SinkSettings::parse(&config(&[("insert.mode", "upsert")])).unwrap_err();
        assert!(e.to_string().contains("pk.mode"), "{e}");
        let e = SinkSettings::parse(&config(&[("delete.enabled", "true"), ("pk.mode", "kafka")]))
            .unwrap_err();
        assert!(e.to_string().contains("pk.mode=record_key"), "{e}");
        let settings = SinkSettings::parse(&config(&[("exactly.once.enabled", "true")])).unwrap();
        assert_eq!(
            settings.offsets_table.as_deref(),
            Some("__sluice_sink_offsets")
        );
        assert_eq!(settings.batch_size, 3000);
    }
}
