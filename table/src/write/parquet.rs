//! Encoding base files: Parquet with the meta columns first and, in the footer, Hudi's bloom
//! filter over record keys and the min/max record key (what Java writers with a bloom index look
//! records up by).

use arrow::array::{AsArray, RecordBatch};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::bloom::{
    BLOOM_FILTER_KEY, BLOOM_FILTER_TYPE_KEY, BloomFilter, MAX_RECORD_KEY, MIN_RECORD_KEY,
};
use crate::error::{Error, Result};
use crate::schema::RECORD_KEY;

/// Encodes a base file. `batch` holds the meta columns then the data columns.
pub fn encode_base_file(batch: &RecordBatch, path: &str) -> Result<Bytes> {
    let mut bloom = BloomFilter::hudi_default();
    let (mut min, mut max): (Option<&str>, Option<&str>) = (None, None);
    if let Some(keys) = batch.column_by_name(RECORD_KEY) {
        for key in keys.as_string::<i32>().iter().flatten() {
            bloom.add(key);
            min = Some(min.map_or(key, |m| m.min(key)));
            max = Some(max.map_or(key, |m| m.max(key)));
        }
    }
    let mut metadata = vec![
        KeyValue::new(BLOOM_FILTER_KEY.to_string(), bloom.to_footer_string()),
        KeyValue::new(
            BLOOM_FILTER_TYPE_KEY.to_string(),
            bloom.kind().type_code().to_string(),
        ),
    ];
    if let (Some(min), Some(max)) = (min, max) {
        metadata.push(KeyValue::new(MIN_RECORD_KEY.to_string(), min.to_string()));
        metadata.push(KeyValue::new(MAX_RECORD_KEY.to_string(), max.to_string()));
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut buffer = Vec::with_capacity(batch.get_array_memory_size() / 2);
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(props))
        .map_err(|e| Error::parquet(path, e))?;
    writer.write(batch).map_err(|e| Error::parquet(path, e))?;
    writer.close().map_err(|e| Error::parquet(path, e))?;
    Ok(Bytes::from(buffer))
}
