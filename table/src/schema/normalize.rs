//! Incoming Arrow types are mapped to the ones Hudi readers (Spark, hudi-rs) read back: unsigned
//! integers to the next wider signed type (u64 to decimal(20,0)), timestamps to microseconds,
//! large and view variants to plain ones. Every column becomes nullable, as in Hudi's Avro schemas.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema, TimeUnit};

use crate::error::{Error, Result};

/// The type a column of `data_type` is stored as, or why it cannot be stored.
fn storage_type(data_type: &DataType) -> Result<DataType, String> {
    use DataType::*;
    Ok(match data_type {
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Utf8 | Binary | Date32 => {
            data_type.clone()
        }
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        // No signed 64-bit type holds every u64; decimal(20,0) does, and Spark reads it.
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) => Decimal128(*p, *s),
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Date64 => Date32,
        Timestamp(_, tz) => Timestamp(TimeUnit::Microsecond, tz.as_ref().map(|_| "UTC".into())),
        // Spark has no TIME type: times of day are stored as microseconds since midnight.
        Time32(_) | Time64(_) => Int64,
        Dictionary(_, value) => storage_type(value)?,
        Null => Utf8,
        List(item)
        | LargeList(item)
        | ListView(item)
        | LargeListView(item)
        | FixedSizeList(item, _) => List(Arc::new(storage_field(item)?)),
        Struct(fields) => Struct(
            fields
                .iter()
                .map(|f| storage_field(f))
                .collect::<Result<Fields, String>>()?,
        ),
        Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err("malformed map type".to_string());
            };
            if kv.len() != 2 || !matches!(kv[0].data_type(), Utf8 | LargeUtf8 | Utf8View) {
                return Err("map keys must be strings (Avro maps have string keys)".to_string());
            }
            let key = Field::new(kv[0].name(), Utf8, false);
            let value = storage_field(&kv[1])?;
            let entries = Field::new(
                entries.name(),
                Struct(Fields::from(vec![key, value])),
                false,
            );
            Map(Arc::new(entries), *sorted)
        }
        other => return Err(format!("type {other} is not supported")),
    })
}

fn storage_field(field: &Field) -> Result<Field, String> {
    Ok(Field::new(
        field.name(),
        storage_type(field.data_type())?,
        true,
    ))
}

/// Casts a batch to storage types (see the module doc). Fails, naming the column, on a type that
/// cannot be stored or a value that would change (nanoseconds that are not whole microseconds).
pub fn normalize(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = storage_field(field).map_err(|reason| Error::Schema {
            column: field.name().clone(),
            reason,
        })?;
        columns.push(cast_column(field.name(), column, target.data_type())?);
        fields.push(target);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn cast_column(name: &str, column: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if column.data_type() == target {
        return Ok(column.clone());
    }
    let fail = |reason: String| Error::Schema {
        column: name.to_string(),
        reason,
    };
    let column = match column.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let nanos = cast_with_options(column, &DataType::Int64, &CastOptions::default())?;
            if let Some(row) = nanos
                .as_primitive::<Int64Type>()
                .iter()
                .position(|v| v.is_some_and(|n| n % 1000 != 0))
            {
                return Err(fail(format!(
                    "nanosecond timestamp at row {row} has no exact microsecond value"
                )));
            }
            column.clone()
        }
        // Times become microseconds since midnight.
        DataType::Time32(_) | DataType::Time64(_) => cast_with_options(
            column,
            &DataType::Time64(TimeUnit::Microsecond),
            &CastOptions::default(),
        )?,
        _ => column.clone(),
    };
    let safe = CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = cast_with_options(&column, target, &safe).map_err(|e| fail(e.to_string()))?;
    if cast.null_count() != column.null_count() {
        return Err(fail(format!("values do not fit {target}")));
    }
    Ok(cast)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, TimestampNanosecondArray, UInt64Array};
    use arrow::datatypes::Decimal128Type;

    #[test]
    fn maps_unsigned_and_time_types_to_readable_ones() -> Result<()> {
        let schema = Schema::new(vec![
            Field::new("u", DataType::UInt64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
                true,
            ),
            Field::new("i", DataType::Int32, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt64Array::from(vec![u64::MAX, 7])),
                Arc::new(
                    TimestampNanosecondArray::from(vec![Some(1_000), None]).with_timezone("+02:00"),
                ),
                Arc::new(Int32Array::from(vec![1, 2])),
            ],
        )?;
        let out = normalize(&batch)?;
        assert_eq!(
            out.schema().field(0).data_type(),
            &DataType::Decimal128(20, 0)
        );
        assert_eq!(
            out.column(0).as_primitive::<Decimal128Type>().value(0),
            u64::MAX as i128
        );
        assert_eq!(
            out.schema().field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(out.schema().fields().iter().all(|f| f.is_nullable()));

        let inexact = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            )])),
            vec![Arc::new(TimestampNanosecondArray::from(vec![1_001]))],
        )?;
        let err = normalize(&inexact).expect_err("inexact nanoseconds are refused");
        assert!(err.to_string().contains("\"ts\""), "{err}");
        Ok(())
    }
}
