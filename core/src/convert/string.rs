//! StringConverter: values written as their string form in UTF-8 and read back as optional strings, as
//! `org.apache.kafka.connect.storage.StringConverter`. Also owns Java's `toString` forms of values,
//! which JsonConverter reuses for numbers since Jackson writes them the same way.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use super::{ConvertError, Converter};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{Data, Decimal, Schema, SchemaType, Struct, Value};

const CONVERTER: &str = "StringConverter";

/// Keys naming the character set; Kafka's `converter.encoding` and the serializer and deserializer keys.
const ENCODING_KEYS: [&str; 3] = [
    "converter.encoding",
    "serializer.encoding",
    "deserializer.encoding",
];

/// Writes a value's string form and reads bytes as a string; only UTF-8 is supported.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringConverter;

impl StringConverter {
    /// Checks the encoding keys: each may be absent or name UTF-8 (case-insensitive, `UTF8` too).
    pub fn configure(props: &ConfigMap) -> Result<StringConverter, ConfigError> {
        ENCODING_KEYS
            .iter()
            .fold(ConfigDef::new(), |def, key| {
                def.optional(
                    key,
                    ConfigType::String,
                    "UTF-8",
                    "The name of the character set to encode and decode strings with.",
                )
                .check(utf8_only)
            })
            .parse(props)?;
        Ok(StringConverter)
    }
}

fn utf8_only(encoding: &str) -> Result<(), String> {
    if encoding.eq_ignore_ascii_case("UTF-8") || encoding.eq_ignore_ascii_case("UTF8") {
        Ok(())
    } else {
        Err("unsupported encoding: Sluice's StringConverter supports only UTF-8".to_owned())
    }
}

impl Converter for StringConverter {
    fn from_connect<'a>(
        &self,
        _topic: &str,
        data: &'a Data,
    ) -> Result<Option<Cow<'a, [u8]>>, ConvertError> {
        Ok(match &data.value {
            Value::Null => None,
            Value::String(s) => Some(Cow::Borrowed(s.as_bytes())),
            other => Some(Cow::Owned(java_string(other).into_bytes())),
        })
    }

    fn to_connect_owned(&self, topic: &str, bytes: Option<Vec<u8>>) -> Result<Data, ConvertError> {
        let value =
            match bytes {
                None => Value::Null,
                Some(bytes) => Value::String(String::from_utf8(bytes).map_err(|e| {
                    ConvertError::Deserialize {
                        converter: CONVERTER,
                        topic: topic.to_owned(),
                        reason: format!("invalid UTF-8: {}", e.utf8_error()),
                    }
                })?),
            };
        Ok(Data::new(Some(optional_string_schema()), value))
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Data, ConvertError> {
        let value = match bytes {
            None => Value::Null,
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => Value::String(s.to_owned()),
                Err(e) => {
                    return Err(ConvertError::Deserialize {
                        converter: CONVERTER,
                        topic: topic.to_owned(),
                        reason: format!("invalid UTF-8: {e}"),
                    })
                }
            },
        };
        Ok(Data::new(Some(optional_string_schema()), value))
    }
}

/// Connect's `Schema.OPTIONAL_STRING_SCHEMA`, shared by every record read.
fn optional_string_schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| Arc::new(Schema::optional(SchemaType::String)))
        .clone()
}

/// A value as Java's `toString` writes the object Connect holds for it.
///
/// Two forms differ from Java's, which are not reproducible: bytes are written as `Arrays.toString`
/// (Java's `byte[]` prints an identity hash), and dates and times as `java.util.Date` in UTC on the
/// proleptic Gregorian calendar (Java uses the JVM's time zone).
fn java_string(value: &Value) -> String {
    let mut out = String::new();
    write_java(value, &mut out);
    out
}

fn write_java(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(v) => out.push_str(&v.to_string()),
        Value::Int8(v) => out.push_str(&v.to_string()),
        Value::Int16(v) => out.push_str(&v.to_string()),
        Value::Int32(v) => out.push_str(&v.to_string()),
        Value::Int64(v) => out.push_str(&v.to_string()),
        Value::Float32(v) => out.push_str(&java_float(*v)),
        Value::Float64(v) => out.push_str(&java_double(*v)),
        Value::String(s) => out.push_str(s),
        Value::Bytes(bytes) => write_list(bytes.iter(), '[', ']', out, |b, out| {
            out.push_str(&(*b as i8).to_string())
        }),
        Value::Array(items) => write_list(items.iter(), '[', ']', out, write_java),
        Value::Map(entries) => write_list(entries.iter(), '{', '}', out, |(k, v), out| {
            write_java(k, out);
            out.push('=');
            write_java(v, out);
        }),
        Value::Struct(s) => write_struct(s, out),
        Value::Decimal(d) => out.push_str(&java_decimal(d)),
        Value::Date(days) => out.push_str(&java_date(i64::from(*days) * MILLIS_PER_DAY)),
        Value::Time(millis) => out.push_str(&java_date(i64::from(*millis))),
        Value::Timestamp(millis) => out.push_str(&java_date(*millis)),
    }
}

/// Java's `AbstractCollection.toString` / `AbstractMap.toString`: items separated by `", "`.
fn write_list<T>(
    items: impl Iterator<Item = T>,
    open: char,
    close: char,
    out: &mut String,
    mut write_item: impl FnMut(T, &mut String),
) {
    out.push(open);
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_item(item, out);
    }
    out.push(close);
}

/// Connect's `Struct.toString`: `Struct{name=value,...}`, leaving out null fields.
fn write_struct(s: &Struct, out: &mut String) {
    out.push_str("Struct{");
    let set = s
        .schema()
        .fields
        .iter()
        .zip(s.values())
        .filter(|(_, value)| !value.is_null());
    for (i, (field, value)) in set.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&field.name);
        out.push('=');
        write_java(value, out);
    }
    out.push('}');
}

/// Java's `Double.toString`: the shortest digits that read back as `v`, in plain notation for
/// magnitudes in [10^-3, 10^7) and as `d.dddE±n` otherwise, always with a fractional digit.
fn java_double(v: f64) -> String {
    if v.is_finite() {
        java_layout(&format!("{v:e}"))
    } else {
        java_non_finite(v.is_nan(), v < 0.0)
    }
}

/// Java's `Float.toString`, as [`java_double`] with the shortest digits for an `f32`.
fn java_float(v: f32) -> String {
    if v.is_finite() {
        java_layout(&format!("{v:e}"))
    } else {
        java_non_finite(v.is_nan(), v < 0.0)
    }
}

fn java_non_finite(nan: bool, negative: bool) -> String {
    match (nan, negative) {
        (true, _) => "NaN",
        (false, true) => "-Infinity",
        (false, false) => "Infinity",
    }
    .to_owned()
}

/// Lays out Rust's shortest `{:e}` form (`-1.25e-7`) as Java does.
fn java_layout(lower_exp: &str) -> String {
    let (sign, unsigned) = match lower_exp.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", lower_exp),
    };
    let Some((mantissa, exponent)) = unsigned.split_once('e') else {
        return lower_exp.to_owned();
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return lower_exp.to_owned();
    };
    let digits = mantissa.replace('.', "");
    if (-3..7).contains(&exponent) {
        let (int, frac) = if exponent >= 0 {
            let int_len = exponent as usize + 1;
            if digits.len() <= int_len {
                (format!("{digits:0<int_len$}"), "0".to_owned())
            } else {
                let (int, frac) = digits.split_at(int_len);
                (int.to_owned(), frac.to_owned())
            }
        } else {
            let zeros = "0".repeat((-exponent - 1) as usize);
            ("0".to_owned(), format!("{zeros}{digits}"))
        };
        format!("{sign}{int}.{frac}")
    } else {
        let (first, rest) = digits.split_at(digits.len().min(1));
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exponent}")
    }
}

/// Java's `BigDecimal.toString`: plain when the scale is positive and the number not too small,
/// otherwise scientific with the adjusted exponent (`1.23E+5`, `1E-10`).
pub(crate) fn java_decimal(d: &Decimal) -> String {
    let coeff = d.unscaled.unsigned_abs().to_string();
    let sign = if d.unscaled < 0 { "-" } else { "" };
    let scale = i64::from(d.scale);
    if scale == 0 {
        return format!("{sign}{coeff}");
    }
    let len = coeff.len() as i64;
    let adjusted = len - 1 - scale;
    if scale > 0 && adjusted >= -6 {
        if len > scale {
            let (int, frac) = coeff.split_at((len - scale) as usize);
            format!("{sign}{int}.{frac}")
        } else {
            let zeros = "0".repeat((scale - len) as usize);
            format!("{sign}0.{zeros}{coeff}")
        }
    } else {
        let (first, rest) = coeff.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exp_sign = if adjusted > 0 { "+" } else { "" };
        format!("{sign}{first}{point}{rest}E{exp_sign}{adjusted}")
    }
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// `java.util.Date.toString` in UTC: `Thu Jan 01 00:00:00 UTC 1970`.
fn java_date(millis: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = millis.div_euclid(MILLIS_PER_DAY);
    let seconds = millis.rem_euclid(MILLIS_PER_DAY) / 1000;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    let month = MONTHS[(month - 1) as usize];
    format!(
        "{weekday} {month} {day:02} {:02}:{:02}:{:02} UTC {year}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Year, month (1-12) and day (1-31) of a day count from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::data::SchemaBuilder;

    fn props(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn written(value: Value) -> String {
        let data = Data::schemaless(value);
        let bytes = StringConverter.from_connect("t", &data).unwrap().unwrap();
        String::from_utf8(bytes.into_owned()).unwrap()
    }

    #[test]
    fn writes_strings_as_utf8_and_null_as_kafka_null() {
        let data = Data::string("héllo");
        let bytes = StringConverter.from_connect("t", &data).unwrap();
        assert_eq!(bytes.as_deref(), Some("héllo".as_bytes()));
        assert_eq!(
            StringConverter.from_connect("t", &Data::NULL).unwrap(),
            None
        );
    }

    #[test]
    fn reads_optional_strings() {
        let read = StringConverter.to_connect("t", Some(b"hello")).unwrap();
        assert_eq!(
            read.schema.as_deref(),
            Some(&Schema::optional(SchemaType::String))
        );
        assert_eq!(read.value, Value::from("hello"));
        let null = StringConverter.to_connect("t", None).unwrap();
        assert_eq!(
            null.schema.as_deref(),
            Some(&Schema::optional(SchemaType::String))
        );
        assert_eq!(null.value, Value::Null);
    }

    #[test]
    fn invalid_utf8_is_a_deserialize_error() {
        let err = StringConverter
            .to_connect("t", Some(&[b'a', 0xff]))
            .unwrap_err();
        assert!(matches!(err, ConvertError::Deserialize { .. }));
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");
    }

    #[test]
    fn accepts_only_utf8() {
        assert!(StringConverter::configure(&props(&[])).is_ok());
        assert!(StringConverter::configure(&props(&[("converter.encoding", " utf8 ")])).is_ok());
        for key in ENCODING_KEYS {
            let err = StringConverter::configure(&props(&[(key, "UTF-16")])).unwrap_err();
            assert_eq!(err.issues.len(), 1);
            assert_eq!(err.issues[0].key, key);
            assert!(err.to_string().contains("UTF-16"), "{err}");
        }
    }

    #[test]
    fn writes_other_values_as_java_to_string() {
        assert_eq!(written(Value::Boolean(true)), "true");
        assert_eq!(written(Value::Int8(-8)), "-8");
        assert_eq!(written(Value::Int64(i64::MIN)), "-9223372036854775808");
        assert_eq!(written(Value::Float64(1.0)), "1.0");
        assert_eq!(written(Value::Float32(0.1)), "0.1");
        assert_eq!(written(Value::Float64(f64::NAN)), "NaN");
        assert_eq!(written(Value::Bytes(vec![1, 0xff])), "[1, -1]");
        assert_eq!(
            written(Value::Array(vec![Value::Int32(1), Value::Null, "a".into()])),
            "[1, null, a]"
        );
        assert_eq!(
            written(Value::Map(vec![
                ("a".into(), Value::Int32(1)),
                ("b".into(), Value::Null)
            ])),
            "{a=1, b=null}"
        );
        assert_eq!(
            written(Value::Decimal(Decimal {
                unscaled: -12345,
                scale: 2
            })),
            "-123.45"
        );
        assert_eq!(written(Value::Timestamp(0)), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(written(Value::Date(19_000)), "Sat Jan 08 00:00:00 UTC 2022");
        assert_eq!(
            written(Value::Time(45_296_789)),
            "Thu Jan 01 12:34:56 UTC 1970"
        );
        assert_eq!(
            written(Value::Timestamp(-1)),
            "Wed Dec 31 23:59:59 UTC 1969"
        );
    }

    #[test]
    fn writes_structs_as_connect_does() {
        let schema = Arc::new(
            SchemaBuilder::struct_()
                .field("a", Schema::primitive(SchemaType::Int32))
                .field("b", Schema::optional(SchemaType::String))
                .field("c", Schema::optional(SchemaType::String))
                .build(),
        );
        let mut s = Struct::new(schema);
        s.put("a", Value::Int32(1));
        s.put("c", "x".into());
        assert_eq!(written(Value::Struct(s)), "Struct{a=1,c=x}");
    }

    #[test]
    fn lays_out_doubles_as_java() {
        let cases: [(f64, &str); 13] = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (12.34, "12.34"),
            (1_234_567.0, "1234567.0"),
            (1e7, "1.0E7"),
            (1.25e-7, "1.25E-7"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (-123_456_789.0, "-1.23456789E8"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (v, text) in cases {
            assert_eq!(java_double(v), text, "{v:e}");
        }
        assert_eq!(java_float(1e10), "1.0E10");
        assert_eq!(java_float(3.4028235e38), "3.4028235E38");
        assert_eq!(java_float(f32::INFINITY), "Infinity");
    }

    #[test]
    fn lays_out_decimals_as_java_big_decimal() {
        let cases: [(i128, i32, &str); 9] = [
            (156, 2, "1.56"),
            (0, 2, "0.00"),
            (5, 3, "0.005"),
            (-5, 0, "-5"),
            (1, 10, "1E-10"),
            (123, -2, "1.23E+4"),
            (1, -3, "1E+3"),
            (12, 7, "0.0000012"),
            (1, 7, "1E-7"),
        ];
        for (unscaled, scale, text) in cases {
            assert_eq!(java_decimal(&Decimal { unscaled, scale }), text);
        }
    }

    #[test]
    fn computes_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    proptest! {
        #[test]
        fn round_trips_any_string(s in any::<String>()) {
            let data = Data::new(Some(optional_string_schema()), Value::String(s));
            let bytes = StringConverter.from_connect("t", &data).unwrap();
            prop_assert_eq!(StringConverter.to_connect("t", bytes.as_deref()).unwrap(), data);
        }

        #[test]
        fn java_doubles_read_back_exactly(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let text = java_double(v);
            prop_assert_eq!(text.parse::<f64>().unwrap().to_bits(), v.to_bits());
            prop_assert!(text.contains('.'));
        }

        #[test]
        fn java_floats_read_back_exactly(v in any::<f32>().prop_filter("finite", |v| v.is_finite())) {
            prop_assert_eq!(java_float(v).parse::<f32>().unwrap().to_bits(), v.to_bits());
        }
    }
}
