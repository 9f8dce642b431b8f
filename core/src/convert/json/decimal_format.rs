//! How the converter writes decimals (`decimal.format`); the payload and schema code both follow it.

/// How decimals are written; both forms are read whatever the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecimalFormat {
    /// A base64 string of the unscaled value's big-endian two's-complement bytes.
    Base64,
    /// A JSON number, as `BigDecimal.toString` writes it.
    Numeric,
}
