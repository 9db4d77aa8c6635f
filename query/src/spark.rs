//! Spark's JSON form of a schema: the `schemaString` of Delta's metadata and the
//! `spark.sql.sources.schema.*` parameters of a table in a Hive or Glue catalog.

use arrow::datatypes::{DataType, TimeUnit};
use serde_json::{Value, json};

/// A nullable field `name` of type `data_type` (see [`spark_type`]).
pub(crate) fn spark_field(
    name: &str,
    data_type: &DataType,
    zone_less: &str,
) -> Result<Value, DataType> {
    Ok(json!({
        "name": name,
        "type": spark_type(data_type, zone_less)?,
        "nullable": true,
        "metadata": {},
    }))
}

/// The Spark type of an Arrow type; `zone_less` names zone-less timestamps (`timestamp_ntz` for
/// Delta; Hudi's catalog sync says `timestamp`). `Err` is the (innermost) type Spark has no form
/// for.
pub(crate) fn spark_type(data_type: &DataType, zone_less: &str) -> Result<Value, DataType> {
    Ok(match data_type {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 => json!("byte"),
        DataType::Int16 => json!("short"),
        DataType::Int32 => json!("integer"),
        DataType::Int64 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 | DataType::LargeUtf8 => json!("string"),
        DataType::Binary | DataType::LargeBinary => json!("binary"),
        DataType::Date32 => json!("date"),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => json!("timestamp"),
        DataType::Timestamp(TimeUnit::Microsecond, None) => json!(zone_less),
        DataType::Decimal128(p, s) if *p <= 38 && *s >= 0 => json!(format!("decimal({p},{s})")),
        DataType::List(item) => json!({
            "type": "array",
            "elementType": spark_type(item.data_type(), zone_less)?,
            "containsNull": true,
        }),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => json!({
                "type": "map",
                "keyType": spark_type(kv[0].data_type(), zone_less)?,
                "valueType": spark_type(kv[1].data_type(), zone_less)?,
                "valueContainsNull": true,
            }),
            other => return Err(other.clone()),
        },
        DataType::Struct(fields) => json!({
            "type": "struct",
            "fields": fields
                .iter()
                .map(|f| spark_field(f.name(), f.data_type(), zone_less))
                .collect::<Result<Vec<_>, _>>()?,
        }),
        other => return Err(other.clone()),
    })
}
