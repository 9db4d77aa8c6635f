//! The Avro form of a table schema, as Spark's Hudi writer records it in commit metadata
//! (`extraMetadata.schema`) and `hoodie.table.create.schema`: a record `<table>_record` in
//! namespace `hoodie.<table>`, every field a `["null", T]` union defaulting to null.
//!
//! Timestamps without a time zone are `timestamp-micros` here although their Parquet columns are
//! `TIMESTAMP(MICROS, isAdjustedToUTC=false)`: hudi-rs 0.5.0 panics on `local-timestamp-micros`.
//! Nested records are named after their column, so no named type is ever defined twice.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The Avro schema JSON of the data columns of `schema` (normalised types, no meta columns).
pub fn avro_schema_json(table_name: &str, schema: &Schema) -> Result<String> {
    let name = format!("{}_record", sanitize(table_name));
    let namespace = format!("hoodie.{}", sanitize(table_name));
    let record = record(
        &name,
        &namespace,
        schema.fields().iter().map(|f| f.as_ref()),
    )?;
    Ok(record.to_string())
}

fn record<'a>(
    name: &str,
    namespace: &str,
    fields: impl Iterator<Item = &'a Field>,
) -> Result<Value> {
    let child_namespace = format!("{namespace}.{name}");
    let fields = fields
        .map(|f| {
            let t = avro_type(f.name(), f.data_type(), &child_namespace)?;
            Ok(json!({"name": f.name(), "type": ["null", t], "default": null}))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({"type": "record", "name": name, "namespace": namespace, "fields": fields}))
}

/// The Avro type of a column `name` (list items and map values are named after their column).
fn avro_type(name: &str, data_type: &DataType, namespace: &str) -> Result<Value> {
    let unsupported = || Error::Schema {
        column: name.to_string(),
        reason: format!("type {data_type} has no Avro form"),
    };
    Ok(match data_type {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => json!("int"),
        DataType::Int64 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 => json!("string"),
        DataType::Binary => json!("bytes"),
        DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            json!({"type": "long", "logicalType": "timestamp-micros"})
        }
        DataType::Decimal128(precision, scale) => json!({
            "type": "fixed",
            "name": "fixed",
            "namespace": format!("{namespace}.{name}"),
            "size": decimal_size(*precision),
            "logicalType": "decimal",
            "precision": precision,
            "scale": scale,
        }),
        DataType::List(item) => {
            json!({"type": "array", "items": ["null", avro_type(name, item.data_type(), namespace)?]})
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                json!({"type": "map", "values": ["null", avro_type(name, kv[1].data_type(), namespace)?]})
            }
            _ => return Err(unsupported()),
        },
        DataType::Struct(fields) => record(name, namespace, fields.iter().map(|f| f.as_ref()))?,
        _ => return Err(unsupported()),
    })
}

/// The Arrow type Hudi readers derive from the Avro form of `data_type`: Avro has no 8- or 16-bit
/// integers and (for hudi-rs) no zone-less timestamps. Log blocks are written in these types,
/// because hudi-rs reads their columns only in exactly the types of the Avro schema.
pub fn avro_reader_type(data_type: &DataType) -> DataType {
    let field = |f: &Field| Field::new(f.name(), avro_reader_type(f.data_type()), f.is_nullable());
    match data_type {
        DataType::Int8 | DataType::Int16 => DataType::Int32,
        DataType::Timestamp(unit, None) => DataType::Timestamp(*unit, Some("UTC".into())),
        DataType::List(item) => DataType::List(std::sync::Arc::new(field(item))),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(|f| field(f)).collect()),
        DataType::Map(entries, sorted) => {
            DataType::Map(std::sync::Arc::new(field(entries)), *sorted)
        }
        other => other.clone(),
    }
}

/// Bytes of the smallest two's-complement integer that holds every unscaled value of the given
/// precision (Spark's `minBytesForPrecision`).
fn decimal_size(precision: u8) -> usize {
    (1..=16)
        .find(|bytes| 2f64.powi(8 * *bytes as i32 - 1) >= 10f64.powi(precision as i32))
        .unwrap_or(16)
}

/// Avro names allow `[A-Za-z0-9_]` only.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn matches_the_form_spark_writes() -> Result<()> {
        let struct_type = DataType::Struct(vec![Field::new("a", DataType::Utf8, true)].into());
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("decimalField", DataType::Decimal128(10, 5), true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "structField",
                DataType::Struct(vec![Field::new("field1", DataType::Utf8, true)].into()),
                true,
            ),
            Field::new(
                "arr",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            ),
            Field::new(
                "naive",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new(
                "structs",
                DataType::List(Arc::new(Field::new("item", struct_type.clone(), true))),
                true,
            ),
            Field::new(
                "more_structs",
                DataType::List(Arc::new(Field::new("item", struct_type, true))),
                true,
            ),
        ]);
        let json: Value = serde_json::from_str(&avro_schema_json("v6_nonpartitioned", &schema)?)
            .map_err(|e| Error::Avro(e.to_string()))?;
        assert_eq!(json["name"], "v6_nonpartitioned_record");
        assert_eq!(json["namespace"], "hoodie.v6_nonpartitioned");
        // The exact decimal form of the Spark-written fixture table.
        assert_eq!(
            json["fields"][1]["type"][1],
            json!({"type":"fixed","name":"fixed","namespace":"hoodie.v6_nonpartitioned.v6_nonpartitioned_record.decimalField","size":5,"logicalType":"decimal","precision":10,"scale":5})
        );
        assert_eq!(
            json["fields"][2]["type"][1]["logicalType"],
            "timestamp-micros"
        );
        assert_eq!(
            json["fields"][3]["type"][1]["namespace"],
            "hoodie.v6_nonpartitioned.v6_nonpartitioned_record"
        );
        assert_eq!(json["fields"][4]["type"][1]["items"][1], "long");
        assert_eq!(
            json["fields"][5]["type"][1]["logicalType"],
            "timestamp-micros"
        );
        // Records inside lists take the list column's name: no name is defined twice.
        assert_eq!(json["fields"][6]["type"][1]["items"][1]["name"], "structs");
        assert_eq!(
            json["fields"][7]["type"][1]["items"][1]["name"],
            "more_structs"
        );
        apache_avro::Schema::parse_str(&json.to_string())
            .map_err(|e| Error::Avro(e.to_string()))?;
        assert_eq!(decimal_size(20), 9);
        assert_eq!(decimal_size(38), 16);
        Ok(())
    }
}
