//! Connect's data model: values with an optional schema, as keys and values of records.
//!
//! It mirrors `org.apache.kafka.connect.data`: primitive types, bytes, strings, arrays, maps, structs,
//! optional schemas and the logical types Decimal, Date, Time and Timestamp.

mod parse;
mod schema;
mod value;

pub use parse::parse_string;
pub use schema::{logical, Field, Schema, SchemaBuilder, SchemaType};
pub use value::{Data, Decimal, Struct, Value};
