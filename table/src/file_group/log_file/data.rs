//! Data block content: records as Avro datums (block-content version 3: record count, then each
//! datum with its length) or as a complete Parquet file. Both decode into one Arrow batch.
//!
//! Avro goes through `arrow-avro`, which decodes only framed messages: each raw datum is given a
//! Confluent-style prefix naming the one schema registered, the block's `SCHEMA` header.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{Schema, SchemaRef};
use arrow_avro::codec::Tz;
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{
    AvroSchema, CONFLUENT_MAGIC, Fingerprint, FingerprintAlgorithm, SCHEMA_METADATA_KEY,
    SchemaStore,
};
use arrow_avro::writer::WriterBuilder;
use arrow_avro::writer::format::AvroBinaryFormat;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::reader::Cursor;

/// Block-content version of Avro data and delete blocks since Hudi 0.5 (record count and
/// per-record lengths); hudi-rs reads no other.
pub(super) const CONTENT_VERSION: i32 = 3;

/// The id the block's schema is registered under for the decoder's framing.
const SCHEMA_ID: u32 = 0;

/// Decodes the content of an Avro data block written with `schema` (the `SCHEMA` header).
pub(super) fn decode_avro_records(content: &[u8], schema: &str) -> Result<RecordBatch, String> {
    let mut cursor = Cursor::new(content);
    let version = cursor.i32()?;
    if version != CONTENT_VERSION {
        return Err(format!("unsupported Avro block content version {version}"));
    }
    let count = usize::try_from(cursor.i32()?).map_err(|_| "negative record count")?;
    let mut decoder = avro_decoder(schema, count.max(1))?;
    let mut framed = Vec::new();
    for i in 0..count {
        let datum = cursor.sized()?;
        framed.clear();
        framed.extend_from_slice(&CONFLUENT_MAGIC);
        framed.extend_from_slice(&SCHEMA_ID.to_be_bytes());
        framed.extend_from_slice(datum);
        let consumed = decoder
            .decode(&framed)
            .map_err(|e| format!("record {i}: {e}"))?;
        // With the batch size set to the record count, a datum longer or shorter than its
        // length field says leaves bytes unconsumed here.
        if consumed != framed.len() {
            return Err(format!(
                "record {i}: its {} bytes do not hold one datum of the schema",
                datum.len()
            ));
        }
    }
    if !cursor.is_empty() {
        return Err(format!(
            "{} bytes after the last record",
            cursor.remaining()
        ));
    }
    let batch = match decoder.flush().map_err(|e| e.to_string())? {
        Some(batch) => batch,
        None => RecordBatch::new_empty(decoder.schema()),
    };
    if batch.num_rows() != count {
        return Err(format!("{} records decoded of {count}", batch.num_rows()));
    }
    Ok(batch)
}

/// Encodes `batch` as the content of an Avro data block with `schema`. Columns are matched to
/// the schema's fields by name and cast to the Arrow type the schema decodes to; a nullable field
/// without a column is written as null.
pub(super) fn encode_avro_records(batch: &RecordBatch, schema: &str) -> Result<Vec<u8>, String> {
    let target = avro_decoder(schema, 1)?.schema();
    let batch = conform(batch, &target)?;
    let metadata = HashMap::from([(SCHEMA_METADATA_KEY.to_string(), schema.to_string())]);
    let arrow_schema = Schema::new_with_metadata(target.fields().clone(), metadata);
    let mut encoder = WriterBuilder::new(arrow_schema)
        .build_encoder::<AvroBinaryFormat>()
        .map_err(|e| e.to_string())?;
    encoder.encode(&batch).map_err(|e| e.to_string())?;
    let rows = encoder.flush();
    let count = i32::try_from(rows.len()).map_err(|_| "more than 2^31 records")?;
    let mut out = Vec::with_capacity(8 + rows.bytes().len() + 4 * rows.len());
    out.extend_from_slice(&CONTENT_VERSION.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for row in rows.iter() {
        let len = i32::try_from(row.len()).map_err(|_| "a record of 2 GiB or more")?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&row);
    }
    Ok(out)
}

fn avro_decoder(schema: &str, batch_size: usize) -> Result<Decoder, String> {
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    store
        .set(
            Fingerprint::Id(SCHEMA_ID),
            AvroSchema::new(schema.to_string()),
        )
        .map_err(|e| e.to_string())?;
    ReaderBuilder::new()
        .with_batch_size(batch_size)
        // Timestamps as `Timestamp(_, "UTC")`, the spelling of the table's own Arrow schema.
        .with_tz(Tz::Utc)
        .with_writer_schema_store(store)
        .with_active_fingerprint(Fingerprint::Id(SCHEMA_ID))
        .build_decoder()
        .map_err(|e| format!("Avro schema of the block: {e}"))
}

/// `batch` with the columns of `target`, in its order and types.
fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, String> {
    let columns = target
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef, String> {
            match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
                Some(column) => cast(column, field.data_type())
                    .map_err(|e| format!("column {:?}: {e}", field.name())),
                None if field.is_nullable() => {
                    Ok(new_null_array(field.data_type(), batch.num_rows()))
                }
                None => Err(format!("no column for required field {:?}", field.name())),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = Arc::new(Schema::new(target.fields().clone()));
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

/// Decodes the content of a Parquet data block (a whole Parquet file) into one batch.
pub(super) fn decode_parquet_records(content: &[u8]) -> Result<RecordBatch, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(content))
        .map_err(|e| e.to_string())?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    concat_batches(&schema, &batches).map_err(|e| e.to_string())
}

/// Encodes `batch` as the content of a Parquet data block, Snappy-compressed.
pub(super) fn encode_parquet_records(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let props = crate::schema::parquet_properties(&batch.schema(), &[]);
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(props))
        .map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(buffer)
}
