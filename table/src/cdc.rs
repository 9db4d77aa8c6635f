//! Change data capture, Hudi's way (`hoodie.table.cdc.enabled=true`, supplemental logging mode
//! `DATA_BEFORE_AFTER`): each copy-on-write file group a commit rewrites gets a `.cdc` log file
//! next to its new base file, `.<fileId>_<instant>.log.1_<token>.cdc`, holding one CDC data block
//! (block type 6, encoded like an Avro data block) of the records the commit changed in it —
//! `op` (`i`, `u`, `d`), `ts_ms` (the commit's instant, as Hudi writes it), `before` and `after`
//! (the stored and the new record, data columns only) — and the write stat names it in
//! `cdcStats`. Snapshot, incremental and compaction readers skip `.cdc` files.
//!
//! Merge-on-read writes no `.cdc` files (as Hudi's Spark writer): a delta commit's changes are
//! found by comparing each file slice it wrote as of the commit with the slice as of the commit
//! before, which the write stats' `baseFile` and `logFiles` let Spark do too (see
//! [`crate::read::read_changes`]).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray, StructArray, UInt32Array,
    new_null_array,
};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::file_group::{LogBlock, encode_log_block};
use crate::timeline::InstantTime;

pub const OP: &str = "op";
/// Hudi's name for the column holding the commit's instant (not milliseconds).
pub const TS_MS: &str = "ts_ms";
pub const BEFORE: &str = "before";
pub const AFTER: &str = "after";
/// The column of a change query's result holding the commit's instant.
pub const INSTANT: &str = "instant";

/// Records per CDC data block.
const BLOCK_RECORDS: usize = 65_536;

/// The CDC record schema (Avro JSON) for a table whose record schema (data columns, no meta
/// fields) is `table_schema`: record `CDC` in the table's namespace with nullable `op`, `ts_ms`,
/// `before` and `after`, as Hudi's `HoodieCDCUtils` builds it.
pub fn avro_schema(table_schema: &str) -> Result<String> {
    let record: Value = serde_json::from_str(table_schema).map_err(|e| Error::Schema {
        column: String::new(),
        reason: format!("table Avro schema: {e}"),
    })?;
    let namespace = record.get("namespace").cloned().unwrap_or(Value::Null);
    let full_name = match (record.get("namespace"), record.get("name")) {
        (Some(Value::String(ns)), Some(Value::String(name))) => format!("{ns}.{name}"),
        (_, Some(Value::String(name))) => name.clone(),
        _ => {
            return Err(Error::Schema {
                column: String::new(),
                reason: "table Avro schema has no record name".to_string(),
            });
        }
    };
    let string = json!(["null", "string"]);
    Ok(json!({
        "type": "record",
        "name": "CDC",
        "namespace": namespace,
        "fields": [
            {"name": OP, "type": string, "default": null},
            {"name": TS_MS, "type": string, "default": null},
            {"name": BEFORE, "type": ["null", record], "default": null},
            // A named type is defined once; later uses name it.
            {"name": AFTER, "type": ["null", full_name], "default": null},
        ],
    })
    .to_string())
}

/// The Arrow schema of change records whose images have the columns of `data`: `op`, then
/// `instant_column`, `before`, `after`.
pub fn record_schema(data: &Schema, instant_column: &str) -> SchemaRef {
    let image = DataType::Struct(image_fields(data));
    Arc::new(Schema::new(vec![
        Field::new(OP, DataType::Utf8, true),
        Field::new(instant_column, DataType::Utf8, true),
        Field::new(BEFORE, image.clone(), true),
        Field::new(AFTER, image, true),
    ]))
}

fn image_fields(data: &Schema) -> Fields {
    data.fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect()
}

/// An image column: rows `rows` of `columns` (the data columns of `data`, in order), null where
/// `rows` is null.
pub fn image(data: &Schema, columns: &[ArrayRef], rows: &UInt32Array) -> Result<ArrayRef> {
    let fields = image_fields(data);
    let children = columns
        .iter()
        .map(|c| Ok(take(c.as_ref(), rows, None)?))
        .collect::<Result<Vec<_>>>()?;
    let nulls = rows.nulls().cloned();
    Ok(Arc::new(StructArray::try_new(fields, children, nulls)?))
}

/// An image column of `len` nulls.
pub fn no_image(data: &Schema, len: usize) -> ArrayRef {
    new_null_array(&DataType::Struct(image_fields(data)), len)
}

/// One batch of change records: `ops[i]` with `before[i]` and `after[i]`, at `instant`.
pub fn records(
    data: &Schema,
    instant_column: &str,
    instant: &str,
    ops: &[&str],
    before: ArrayRef,
    after: ArrayRef,
) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        record_schema(data, instant_column),
        vec![
            Arc::new(StringArray::from(ops.to_vec())),
            Arc::new(StringArray::from(vec![instant; ops.len()])),
            before,
            after,
        ],
    )?)
}

/// The bytes of a `.cdc` log file holding `records` (one or more CDC data blocks).
pub fn encode_file(
    instant: &InstantTime,
    schema: &str,
    data: &Schema,
    parts: &[RecordBatch],
) -> Result<Bytes> {
    let all = concat_batches(&record_schema(data, TS_MS), parts)?;
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < all.num_rows() || offset == 0 {
        let len = BLOCK_RECORDS.min(all.num_rows() - offset);
        let block = LogBlock::cdc_data(instant, schema, all.slice(offset, len));
        out.extend(encode_log_block(&block)?);
        offset += len.max(1);
    }
    Ok(Bytes::from(out))
}

/// An image column read back (from a `.cdc` file) in the columns of `physical` (the data columns
/// as files name them; added columns null, widened types), named as in `logical`, nulls kept.
pub fn conform_image(
    column: &ArrayRef,
    physical: &SchemaRef,
    logical: &Schema,
) -> Result<ArrayRef> {
    let len = column.len();
    let Some(image) = column.as_any().downcast_ref::<StructArray>() else {
        return Ok(no_image(logical, len));
    };
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(image.fields().clone())),
        image.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(len)),
    )?;
    let aligned = crate::schema::align(&batch, physical)?;
    Ok(Arc::new(StructArray::try_new(
        image_fields(logical),
        aligned.columns().to_vec(),
        image.nulls().cloned(),
    )?))
}
