//! Timestamps as the JDBC connectors keep them: instants with nanoseconds, read from and written to
//! columns without a zone in `db.timezone`, and stored in source offsets as Confluent's JDBC source does
//! (`timestamp` in milliseconds, `timestamp_nanos` the nanoseconds within the second), so that offsets
//! written by either read the same and no precision is lost between two polls.

use std::fmt;

use chrono::offset::LocalResult;
use chrono::{
    DateTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone as _, Timelike,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;

/// An instant: nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i128);

impl Timestamp {
    pub fn from_millis(millis: i64) -> Timestamp {
        Timestamp(i128::from(millis) * NANOS_PER_MILLI)
    }

    /// Milliseconds since the epoch, rounded down (Java's `Timestamp.getTime()`).
    pub fn millis(self) -> i64 {
        self.0.div_euclid(NANOS_PER_MILLI) as i64
    }

    /// The nanoseconds within the second (Java's `Timestamp.getNanos()`).
    pub fn nanos_of_second(self) -> i64 {
        self.0.rem_euclid(NANOS_PER_SECOND) as i64
    }

    /// The instant a Confluent offset's `timestamp` and `timestamp_nanos` name; without `nanos`, the
    /// milliseconds alone.
    pub fn from_offset(millis: i64, nanos: Option<i64>) -> Timestamp {
        match nanos {
            Some(nanos) => {
                let seconds = i128::from(millis).div_euclid(1_000);
                Timestamp(seconds * NANOS_PER_SECOND + i128::from(nanos))
            }
            None => Timestamp::from_millis(millis),
        }
    }

    /// This instant minus `millis` milliseconds.
    pub fn minus_millis(self, millis: u64) -> Timestamp {
        Timestamp(self.0 - i128::from(millis) * NANOS_PER_MILLI)
    }

    /// The wall-clock time of this instant in `zone`.
    pub fn to_naive(self, zone: TimeZone) -> Option<NaiveDateTime> {
        let seconds = i64::try_from(self.0.div_euclid(NANOS_PER_SECOND)).ok()?;
        let nanos = self.0.rem_euclid(NANOS_PER_SECOND) as u32;
        let utc = DateTime::from_timestamp(seconds, nanos)?.naive_utc();
        utc.checked_add_signed(TimeDelta::seconds(i64::from(zone.offset_at_instant(utc))))
    }

    /// The instant a wall-clock time in `zone` stands for.
    pub fn from_naive(time: NaiveDateTime, zone: TimeZone) -> Timestamp {
        let utc = time.and_utc();
        let nanos = i128::from(utc.timestamp()) * NANOS_PER_SECOND
            + i128::from(utc.timestamp_subsec_nanos());
        Timestamp(nanos - i128::from(zone.offset_at_wall_clock(time)) * NANOS_PER_SECOND)
    }

    /// Reads ISO-8601 text (`2024-05-01 12:00:00.123456`, `T` or a space, up to nine fraction digits,
    /// an optional `Z` or `+02:00`), as SQLite keeps timestamps; text without a zone is in `zone`.
    pub fn parse(text: &str, zone: TimeZone) -> Option<Timestamp> {
        let text = text.trim();
        if let Some(naive) = parse_plain(text) {
            return Some(Timestamp::from_naive(naive, zone));
        }
        if let Ok(with_zone) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
            let utc = with_zone.to_utc();
            return Some(Timestamp(
                i128::from(utc.timestamp()) * NANOS_PER_SECOND
                    + i128::from(utc.timestamp_subsec_nanos()),
            ));
        }
        for format in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                return Some(Timestamp::from_naive(naive, zone));
            }
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(Timestamp::from_naive(date.and_time(NaiveTime::MIN), zone))
    }

    /// The text SQLite compares a timestamp column with: `YYYY-MM-DD HH:MM:SS` and `digits` fraction
    /// digits (as many as needed for this instant when `digits` is None), in `zone`.
    pub fn format(self, zone: TimeZone, digits: Option<usize>) -> String {
        let Some(naive) = self.to_naive(zone) else {
            return String::new();
        };
        let mut text = naive.format("%Y-%m-%d %H:%M:%S").to_string();
        let nanos = format!("{:09}", naive.nanosecond());
        let digits = digits.unwrap_or_else(|| nanos.trim_end_matches('0').len());
        if digits > 0 {
            text.push('.');
            text.push_str(&nanos[..digits.min(9)]);
        }
        text
    }
}

/// The form SQLite's own functions write, `YYYY-MM-DD HH:MM:SS` with `T` or a space and up to nine
/// fraction digits, read without chrono's format parser: a source reads one per row.
fn parse_plain(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes.len() == 20 || bytes.len() > 29 {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| bytes[i] != c) || !matches!(bytes[10], b' ' | b'T') {
        return None;
    }
    let nanos = match bytes.get(19) {
        None => 0,
        Some(b'.') => number(20..bytes.len())? * 10u32.pow(29 - bytes.len() as u32),
        Some(_) => return None,
    };
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let time =
        NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(date.and_time(time))
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_naive(TimeZone::Utc) {
            Some(naive) => write!(f, "{}Z", naive.format("%Y-%m-%dT%H:%M:%S%.f")),
            None => write!(f, "{}ns", self.0),
        }
    }
}

/// `db.timezone`: the zone of timestamp columns that have none: UTC, a fixed offset, or a zone of the
/// IANA time zone database (`Europe/Paris`), whose offset follows its daylight saving time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeZone {
    #[default]
    Utc,
    /// Seconds east of UTC.
    Fixed(i32),
    Named(Tz),
}

impl TimeZone {
    /// `UTC`, `GMT`, `Z`, an offset (`+02:00`, `-0530`, `UTC+2`, `GMT-03:00`), or a zone name as Java
    /// knows it (`America/New_York`; the database is built into Sluice, not read from the machine).
    pub fn parse(text: &str) -> Result<TimeZone, String> {
        let text = text.trim();
        if ["UTC", "GMT", "Z", "Etc/UTC", "Etc/GMT"].contains(&text) {
            return Ok(TimeZone::Utc);
        }
        let offset = text
            .strip_prefix("UTC")
            .or_else(|| text.strip_prefix("GMT"))
            .unwrap_or(text);
        let (sign, rest) = match offset.as_bytes().first() {
            Some(b'+') => (1, &offset[1..]),
            Some(b'-') => (-1, &offset[1..]),
            _ => {
                return text.parse::<Tz>().map(TimeZone::Named).map_err(|_| {
                    format!("{text:?} is not a zone Sluice knows: give UTC, a fixed offset such as +02:00, or a zone of the IANA database such as Europe/Paris")
                })
            }
        };
        let (hours, minutes) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "0"),
        };
        match (hours.parse::<i32>(), minutes.parse::<i32>()) {
            (Ok(h), Ok(m)) if h <= 18 && m < 60 => {
                let seconds = sign * (h * 3_600 + m * 60);
                Ok(if seconds == 0 {
                    TimeZone::Utc
                } else {
                    TimeZone::Fixed(seconds)
                })
            }
            _ => Err(format!("{text:?} is not a valid offset from UTC")),
        }
    }

    /// Seconds east of UTC at the instant `utc`.
    fn offset_at_instant(self, utc: NaiveDateTime) -> i32 {
        match self {
            TimeZone::Utc => 0,
            TimeZone::Fixed(seconds) => seconds,
            TimeZone::Named(zone) => zone.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
        }
    }

    /// Seconds east of UTC of the wall-clock time `local`, as Java's `LocalDateTime.atZone` (and so
    /// Confluent's connector) resolves it: in an hour that repeats when the clocks go back, the earlier
    /// offset; in an hour skipped when they go forward, the offset before the change, which moves the
    /// time forward by the gap.
    fn offset_at_wall_clock(self, local: NaiveDateTime) -> i32 {
        let TimeZone::Named(zone) = self else {
            return self.offset_at_instant(local);
        };
        match zone.offset_from_local_datetime(&local) {
            LocalResult::Single(offset) | LocalResult::Ambiguous(offset, _) => {
                offset.fix().local_minus_utc()
            }
            // Offsets change at most a few times a year: half a day earlier is before the gap.
            LocalResult::None => self.offset_at_instant(local - TimeDelta::hours(12)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_keep_nanoseconds_as_confluents_do() {
        let t = Timestamp::parse("2024-05-01 12:00:00.123456789", TimeZone::Utc).unwrap();
        assert_eq!(t.millis(), 1_714_564_800_123);
        assert_eq!(t.nanos_of_second(), 123_456_789);
        assert_eq!(
            Timestamp::from_offset(t.millis(), Some(t.nanos_of_second())),
            t
        );
        assert_eq!(
            Timestamp::from_offset(t.millis(), None),
            Timestamp::from_millis(1_714_564_800_123)
        );
        let before_epoch = Timestamp(-1);
        assert_eq!(before_epoch.millis(), -1);
        assert_eq!(before_epoch.nanos_of_second(), 999_999_999);
        assert_eq!(
            Timestamp::from_offset(before_epoch.millis(), Some(before_epoch.nanos_of_second())),
            before_epoch
        );
    }

    #[test]
    fn named_zones_follow_daylight_saving_time_as_java_resolves_it() {
        let paris = TimeZone::parse("Europe/Paris").unwrap();
        let at = |text: &str| Timestamp::parse(text, TimeZone::Utc).unwrap();
        // Winter (+01:00) and summer (+02:00).
        assert_eq!(
            Timestamp::parse("2024-01-15 12:00:00", paris),
            Some(at("2024-01-15 11:00:00"))
        );
        assert_eq!(
            Timestamp::parse("2024-07-15 12:00:00", paris),
            Some(at("2024-07-15 10:00:00"))
        );
        assert_eq!(
            at("2024-07-15 10:00:00").format(paris, None),
            "2024-07-15 12:00:00"
        );
        // 2024-10-27 02:30 happens twice in Paris: the earlier (summer, +02:00) is meant.
        assert_eq!(
            Timestamp::parse("2024-10-27 02:30:00", paris),
            Some(at("2024-10-27 00:30:00"))
        );
        // 2024-03-31 02:30 never happens in Paris: it is read as 03:30 summer time.
        assert_eq!(
            Timestamp::parse("2024-03-31 02:30:00", paris),
            Some(at("2024-03-31 01:30:00"))
        );
        assert_eq!(
            at("2024-03-31 01:30:00").format(paris, None),
            "2024-03-31 03:30:00"
        );
    }

    #[test]
    fn text_is_read_in_the_database_zone_unless_it_names_its_own() {
        let paris_summer = TimeZone::parse("+02:00").unwrap();
        let local = Timestamp::parse("2024-05-01T14:00:00", paris_summer).unwrap();
        let utc = Timestamp::parse("2024-05-01 12:00:00Z", paris_summer).unwrap();
        assert_eq!(local, utc);
        assert_eq!(local.format(paris_summer, None), "2024-05-01 14:00:00");
        assert_eq!(
            local.format(TimeZone::Utc, Some(3)),
            "2024-05-01 12:00:00.000"
        );
        assert_eq!(
            Timestamp::parse("2024-05-01", TimeZone::Utc)
                .unwrap()
                .format(TimeZone::Utc, None),
            "2024-05-01 00:00:00"
        );
        assert_eq!(Timestamp::parse("yesterday", TimeZone::Utc), None);
    }

    #[test]
    fn sqlite_text_reads_as_chrono_reads_it() {
        for text in [
            "2024-05-01 12:00:00",
            "2024-05-01T12:00:00",
            "2024-05-01 12:00:00.1",
            "2024-05-01 12:00:00.123",
            "2024-05-01 12:00:00.123456",
            "2024-05-01T23:59:59.999999999",
            "1969-12-31 23:59:59.5",
        ] {
            let chrono =
                NaiveDateTime::parse_from_str(&text.replacen('T', " ", 1), "%Y-%m-%d %H:%M:%S%.f")
                    .unwrap();
            assert_eq!(parse_plain(text), Some(chrono), "{text}");
        }
        for text in [
            "2024-05-01 12:00:00.",
            "2024-05-01 12:00:00Z",
            "2024-05-01 12:00:00.1234567890",
            "2024-02-30 12:00:00",
            "2024-05-01 24:00:00",
            "2024-05-01_12:00:00",
            "2024-05-01 12:00:0x",
        ] {
            assert_eq!(parse_plain(text), None, "{text}");
        }
        assert_eq!(
            Timestamp::parse("2024-05-01 12:00:00Z", TimeZone::Fixed(3_600)),
            Timestamp::parse("2024-05-01 12:00:00", TimeZone::Utc),
            "text naming its zone takes the slower path"
        );
    }

    #[test]
    fn zones_are_utc_fixed_offsets_or_named() {
        assert_eq!(TimeZone::parse("UTC"), Ok(TimeZone::Utc));
        assert_eq!(TimeZone::parse("+00:00"), Ok(TimeZone::Utc));
        assert_eq!(TimeZone::parse("-0530"), Ok(TimeZone::Fixed(-19_800)));
        assert_eq!(TimeZone::parse("UTC+2"), Ok(TimeZone::Fixed(7_200)));
        assert_eq!(
            TimeZone::parse("Europe/Paris"),
            Ok(TimeZone::Named(Tz::Europe__Paris))
        );
        let unknown = TimeZone::parse("Mars/Olympus_Mons").unwrap_err();
        assert!(unknown.contains("Mars/Olympus_Mons"), "{unknown}");
    }
}
