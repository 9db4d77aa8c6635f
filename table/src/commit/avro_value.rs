//! Building and reading the Avro records of timeline instants (plans and metadata of rollback,
//! compaction, clean and archival), which Hudi stores as Avro container files. Records are built
//! as `apache_avro` values in schema field order; nullable fields are unions with `null` first
//! unless the schema says otherwise, so the branch index is explicit at each use.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::{Reader, Schema, Writer};
use bytes::Bytes;

use crate::error::{Error, Result};

pub fn avro_error(e: impl std::fmt::Display) -> Error {
    Error::Avro(e.to_string())
}

/// A record from `(field, value)` pairs in schema order.
pub fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
    )
}

pub fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

pub fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

pub fn map(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Map(entries.into_iter().collect::<HashMap<_, _>>())
}

/// A `["null", T]` union holding a value.
pub fn some(value: Value) -> Value {
    Value::Union(1, Box::new(value))
}

/// A `["null", T]` union holding null.
pub fn null() -> Value {
    Value::Union(0, Box::new(Value::Null))
}

/// A `[T, "null"]` union holding a value (Hudi's `version` fields).
pub fn first(value: Value) -> Value {
    Value::Union(0, Box::new(value))
}

/// An Avro container file holding one record.
pub fn container(schema: &str, record: Value) -> Result<Bytes> {
    let schema = Schema::parse_str(schema).map_err(avro_error)?;
    let mut writer = Writer::new(&schema, Vec::new());
    writer.append(record).map_err(avro_error)?;
    Ok(Bytes::from(writer.into_inner().map_err(avro_error)?))
}

/// The single record of an Avro container file, resolved against `schema` (the reader's schema:
/// fields Hudi added later get their defaults).
pub fn read_container(bytes: &[u8], schema: &str) -> Result<Value> {
    let schema = Schema::parse_str(schema).map_err(avro_error)?;
    let mut reader = Reader::with_schema(&schema, bytes).map_err(avro_error)?;
    match reader.next() {
        Some(value) => value.map_err(avro_error),
        None => Err(Error::Avro("an empty Avro container file".to_string())),
    }
}

/// Unwraps unions.
pub fn plain(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => plain(inner),
        other => other,
    }
}

/// A record's field (unions unwrapped); `None` when missing or null.
pub fn field<'a>(record: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Record(fields) = plain(record) else {
        return None;
    };
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| plain(v))
        .filter(|v| !matches!(v, Value::Null))
}

pub fn field_str<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    match field(record, name)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

pub fn field_strings(record: &Value, name: &str) -> Vec<String> {
    match field(record, name) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match plain(v) {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
