//! Merge-on-read appends: the changes to an existing file slice go into a new log file version —
//! a Parquet (or, as a table option, Avro) data block for upserts, delete blocks for deletes — and are merged with the slice
//! when read (or compacted). Nothing stored is read or rewritten. No I/O here.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use bytes::Bytes;

use super::merge::MergeContext;
use crate::bloom::java_order;
use crate::error::Result;
use crate::file_group::log_file::DECIMAL_SCALE;
use crate::file_group::{DeleteRecord, LogBlock, OrderingValue, encode_log_block};
use crate::schema;

/// The bytes of the new log file and what it holds.
#[derive(Debug)]
pub struct Appended {
    pub bytes: Bytes,
    /// The least and greatest key of its data blocks (`None`: deletes only, it holds no key).
    pub key_range: Option<(String, String)>,
    pub upserts: usize,
    pub deletes: usize,
    pub blocks: usize,
}

/// Encodes the log file holding `rows` of the commit for one file group (`file_id`), with the
/// Avro schema (meta fields included) in every block header.
pub fn encode_log_append(
    ctx: &MergeContext,
    rows: &[usize],
    partition: &str,
    file_id: &str,
    task: usize,
    avro_schema: &str,
) -> Result<Option<Appended>> {
    let plan = &ctx.plan;
    let (deletes, upserts): (Vec<usize>, Vec<usize>) =
        rows.iter().partition(|&&r| plan.deletes.value(r));
    let instant = &ctx.instant;
    let mut blocks = Vec::new();
    if !upserts.is_empty() {
        let indices = UInt32Array::from(upserts.iter().map(|&r| r as u32).collect::<Vec<_>>());
        let n = upserts.len();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![instant.as_str(); n])),
            Arc::new(StringArray::from(
                (0..n)
                    .map(|i| format!("{instant}_{task}_{i}"))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                upserts
                    .iter()
                    .map(|&r| plan.keys.value(r))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec![partition; n])),
            // Log records carry the file id, not a file name.
            Arc::new(StringArray::from(vec![file_id; n])),
        ];
        let mut fields: Vec<Field> = schema::META_COLUMNS
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, true))
            .collect();
        for (field, column) in ctx.data_schema.fields().iter().zip(ctx.incoming.columns()) {
            let column = take(column, &indices, None)?;
            // hudi-rs reads log blocks only in the exact types of the Avro schema.
            let target = schema::avro_reader_type(column.data_type());
            let column = if &target == column.data_type() {
                column
            } else {
                cast(&column, &target)?
            };
            fields.push(Field::new(field.name(), column.data_type().clone(), true));
            columns.push(column);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        blocks.push(if ctx.avro_data_blocks {
            LogBlock::avro_data(instant, avro_schema, batch)
        } else {
            LogBlock::parquet_data(instant, avro_schema, batch)
        });
    }
    if !deletes.is_empty() {
        let ordering = ctx
            .ordering_field
            .as_deref()
            .and_then(|f| ctx.incoming.column_by_name(f));
        // hudi-rs refuses delete blocks that mix ordering-value kinds: deletes in natural order
        // (no ordering value) go in a block of their own.
        let (mut typed, mut natural) = (Vec::new(), Vec::new());
        for &row in &deletes {
            let value = ordering.and_then(|c| ordering_value(c, row));
            let record = |ordering_value| DeleteRecord {
                record_key: Some(plan.keys.value(row).to_string()),
                partition_path: Some(partition.to_string()),
                ordering_value,
            };
            match value {
                Some(v) => typed.push(record(v)),
                None => natural.push(record(OrderingValue::NATURAL)),
            }
        }
        for records in [typed, natural].into_iter().filter(|r| !r.is_empty()) {
            blocks.push(LogBlock::delete(instant, avro_schema, records));
        }
    }
    if blocks.is_empty() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    for block in &blocks {
        bytes.extend(encode_log_block(block)?);
    }
    let keys = upserts.iter().map(|&r| plan.keys.value(r));
    let key_range = keys
        .clone()
        .min_by(|a, b| java_order(a, b))
        .zip(keys.max_by(|a, b| java_order(a, b)))
        .map(|(min, max)| (min.to_string(), max.to_string()));
    Ok(Some(Appended {
        bytes: Bytes::from(bytes),
        key_range,
        upserts: upserts.len(),
        deletes: deletes.len(),
        blocks: blocks.len(),
    }))
}

/// The ordering value of a row in Hudi's wrapper for the column's type; `None` for a null (or a
/// type Hudi has no wrapper for), which makes the delete apply in natural order.
fn ordering_value(column: &ArrayRef, row: usize) -> Option<OrderingValue> {
    if column.is_null(row) {
        return None;
    }
    Some(match column.data_type() {
        DataType::Boolean => OrderingValue::Boolean(column.as_boolean().value(row)),
        DataType::Int8 => OrderingValue::Int(column.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => OrderingValue::Int(column.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => OrderingValue::Int(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => OrderingValue::Long(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => OrderingValue::Float(column.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => OrderingValue::Double(column.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => OrderingValue::String(column.as_string::<i32>().value(row).to_string()),
        DataType::Binary => OrderingValue::Bytes(column.as_binary::<i32>().value(row).to_vec()),
        DataType::Date32 => OrderingValue::Date(column.as_primitive::<Date32Type>().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => OrderingValue::TimestampMicros(
            column.as_primitive::<TimestampMicrosecondType>().value(row),
        ),
        DataType::Decimal128(_, scale) => {
            let value = column.as_primitive::<Decimal128Type>().value(row);
            let shift = DECIMAL_SCALE as i32 - *scale as i32;
            let rescaled = if shift >= 0 {
                value.checked_mul(10i128.checked_pow(shift as u32)?)?
            } else {
                value / 10i128.pow((-shift) as u32)
            };
            OrderingValue::Decimal(rescaled)
        }
        _ => return None,
    })
}
