//! Java's `SimpleDateFormat` patterns (`yyyyMMdd`, `yyyy-MM-dd'T'HH:mm:ss.SSSZ`), as the
//! `TimestampRouter` and `TimestampConverter` keys write them, translated to chrono's format items.
//! Times are in UTC, as Kafka's transforms set them.

use chrono::format::{parse, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

/// `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`: how Kafka writes a timestamp as a string.
pub const ISO_TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%S.%3fZ";
/// `yyyy-MM-dd`.
pub const ISO_DATE: &str = "%Y-%m-%d";
/// `HH:mm:ss.SSS'Z'`.
pub const ISO_TIME: &str = "%H:%M:%S.%3fZ";

/// A `SimpleDateFormat` pattern, ready to format and parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    strftime: String,
}

impl DateFormat {
    /// Translates a pattern; an error names the letter chrono cannot stand for.
    pub fn new(pattern: &str) -> Result<DateFormat, String> {
        let mut out = String::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // A quoted literal; '' is a quote.
                if chars.get(i + 1) == Some(&'\'') {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                let mut j = i + 1;
                while j < chars.len() {
                    if chars[j] == '\'' {
                        if chars.get(j + 1) == Some(&'\'') {
                            out.push('\'');
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    push_literal(&mut out, chars[j]);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(format!("unterminated quote in pattern {pattern:?}"));
                }
                i = j + 1;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                push_literal(&mut out, c);
                i += 1;
                continue;
            }
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            let item = match (c, n) {
                ('y', 2) => "%y",
                ('y', _) => "%Y",
                ('M', 1) => "%-m",
                ('M', 2) => "%m",
                ('M', 3) => "%b",
                ('M', _) => "%B",
                ('d', 1) => "%-d",
                ('d', _) => "%d",
                ('H', 1) => "%-H",
                ('H', _) => "%H",
                ('h', 1) => "%-I",
                ('h', _) => "%I",
                ('m', 1) => "%-M",
                ('m', _) => "%M",
                ('s', 1) => "%-S",
                ('s', _) => "%S",
                ('S', 6) => "%6f",
                ('S', 9) => "%9f",
                ('S', _) => "%3f",
                ('a', _) => "%p",
                ('E', 1..=3) => "%a",
                ('E', _) => "%A",
                ('D', _) => "%j",
                ('u', _) => "%u",
                ('z', _) => "%Z",
                ('Z', _) => "%z",
                ('X', 3) => "%:z",
                ('X', _) => "%z",
                _ => {
                    return Err(format!(
                        "pattern letter {c:?} of {pattern:?} is not supported (supported: y M d H h m s S a E D u z Z X)"
                    ))
                }
            };
            out.push_str(item);
            i += n;
        }
        Ok(DateFormat { strftime: out })
    }

    /// Milliseconds since the epoch, written in UTC.
    pub fn format(&self, millis: i64) -> String {
        format_millis(millis, &self.strftime)
    }

    /// Reads a text written in this pattern (in UTC unless it carries an offset) as milliseconds since
    /// the epoch; a pattern without a date reads as a time of 1970-01-01.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        let mut parsed = Parsed::new();
        parse(&mut parsed, text, StrftimeItems::new(&self.strftime))
            .map_err(|e| format!("{text:?} does not match the pattern: {e}"))?;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let date = parsed.to_naive_date().unwrap_or(epoch);
        let time = parsed.to_naive_time().unwrap_or(NaiveTime::MIN);
        let offset_ms = parsed
            .to_fixed_offset()
            .map(|o| i64::from(o.local_minus_utc()) * 1000)
            .unwrap_or(0);
        Ok(NaiveDateTime::new(date, time).and_utc().timestamp_millis() - offset_ms)
    }
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// Milliseconds since the epoch in a chrono format, in UTC.
pub fn format_millis(millis: i64, strftime: &str) -> String {
    match DateTime::from_timestamp_millis(millis) {
        Some(time) => time.format(strftime).to_string(),
        None => millis.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_format_as_simple_date_format_does() {
        // 2023-11-14T22:13:20.123Z
        let millis = 1_700_000_000_123;
        let cases = [
            ("yyyyMMdd", "20231114"),
            ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "2023-11-14T22:13:20.123Z"),
            ("yy/M/d h:mm a", "23/11/14 10:13 PM"),
            ("'it''s' HH 'o''clock' 100%", "it's 22 o'clock 100%"),
            ("EEE, d MMM yyyy", "Tue, 14 Nov 2023"),
        ];
        for (pattern, expected) in cases {
            let format = DateFormat::new(pattern).unwrap();
            assert_eq!(format.format(millis), expected, "{pattern}");
        }
    }

    #[test]
    fn formatted_text_parses_back() {
        let format = DateFormat::new("yyyy-MM-dd HH:mm:ss.SSS").unwrap();
        assert_eq!(
            format.parse("2023-11-14 22:13:20.123"),
            Ok(1_700_000_000_123)
        );
        let date = DateFormat::new("yyyy-MM-dd").unwrap();
        assert_eq!(date.parse("2023-11-14"), Ok(1_699_920_000_000));
        let zoned = DateFormat::new("yyyy-MM-dd HH:mm:ssXXX").unwrap();
        assert_eq!(
            zoned.parse("2023-11-14 23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        assert!(date.parse("14/11/2023").is_err());
    }

    #[test]
    fn unsupported_letters_and_open_quotes_are_named() {
        assert!(DateFormat::new("yyyy-ww").unwrap_err().contains("'w'"));
        assert!(DateFormat::new("yyyy 'at")
            .unwrap_err()
            .contains("unterminated"));
    }
}
