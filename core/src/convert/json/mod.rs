//! JsonConverter: Connect data as JSON, in Kafka's `{"schema": ..., "payload": ...}` envelope or bare,
//! read and written with serde_json, whose `arbitrary_precision` feature keeps numbers exact.

mod converter;
mod decimal_format;
mod payload;

pub(crate) use payload::unscaled_at_scale;
mod schema;
#[cfg(test)]
mod tests;

pub use converter::JsonConverter;
