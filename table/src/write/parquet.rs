//! Base-file writer, the one way a base file is encoded (writes and compaction): Parquet with the
//! meta columns first, `_hoodie_file_name` naming the file itself, and in the footer Hudi's bloom
//! filter over record keys and the min/max record key (what Java writers with a bloom index look
//! records up by). Batches are encoded as they come, so a file group is never held whole in
//! memory.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;

use crate::bloom::{
    BLOOM_FILTER_KEY, BLOOM_FILTER_TYPE_KEY, BloomFilter, MAX_RECORD_KEY, MIN_RECORD_KEY,
    java_order,
};
use crate::error::{Error, Result};
use crate::schema::{self, FILE_NAME, RECORD_KEY};

/// Writes one base file.
#[derive(Debug)]
pub struct BaseFileWriter {
    writer: ArrowWriter<Vec<u8>>,
    /// The record keys written, for the bloom filter, which is sized by their number at the end.
    keys: Vec<ArrayRef>,
    min_key: Option<String>,
    max_key: Option<String>,
    rows: usize,
    path: String,
    file_name: String,
}

impl BaseFileWriter {
    /// A writer for `schema` (meta columns then data columns); `path` names the file in errors.
    pub fn new(schema: SchemaRef, path: &str) -> Result<Self> {
        let props = schema::parquet_properties(&schema);
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))
            .map_err(|e| Error::parquet(path, e))?;
        Ok(BaseFileWriter {
            writer,
            keys: Vec::new(),
            min_key: None,
            max_key: None,
            rows: 0,
            path: path.to_string(),
            file_name: path.rsplit('/').next().unwrap_or(path).to_string(),
        })
    }

    /// Writes a batch (meta and data columns); rows read from other files (compaction) get this
    /// file's name in `_hoodie_file_name`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let stamped = self.stamped(batch)?;
        let batch = stamped.as_ref().unwrap_or(batch);
        if let Some(keys) = batch.column_by_name(RECORD_KEY) {
            self.keys.push(keys.clone());
            for key in keys.as_string::<i32>().iter().flatten() {
                // In Java's order, as Hudi writes them and readers compare them.
                if self
                    .min_key
                    .as_deref()
                    .is_none_or(|m| java_order(key, m).is_lt())
                {
                    self.min_key = Some(key.to_string());
                }
                if self
                    .max_key
                    .as_deref()
                    .is_none_or(|m| java_order(key, m).is_gt())
                {
                    self.max_key = Some(key.to_string());
                }
            }
        }
        self.rows += batch.num_rows();
        self.writer
            .write(batch)
            .map_err(|e| Error::parquet(&self.path, e))
    }

    /// The batch with `_hoodie_file_name` set to this file's name, when some row names another.
    fn stamped(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let Ok(index) = batch.schema().index_of(FILE_NAME) else {
            return Ok(None);
        };
        let names = batch.column(index).as_string::<i32>();
        if names.null_count() == 0 && names.iter().all(|n| n == Some(self.file_name.as_str())) {
            return Ok(None);
        }
        let mut columns = batch.columns().to_vec();
        columns[index] = Arc::new(StringArray::from(vec![
            self.file_name.as_str();
            batch.num_rows()
        ])) as ArrayRef;
        RecordBatch::try_new(batch.schema(), columns)
            .map(Some)
            .map_err(|e| Error::parquet(&self.path, e.into()))
    }

    /// The least and greatest record key written so far (Java's order), `None` before any.
    pub fn key_range(&self) -> Option<(String, String)> {
        Some((self.min_key.clone()?, self.max_key.clone()?))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Finishes the file: footer metadata, then the bytes.
    pub fn finish(mut self) -> Result<Bytes> {
        let count = self.keys.iter().map(|k| k.len() - k.null_count()).sum();
        let mut bloom = BloomFilter::for_keys(count);
        for keys in &self.keys {
            for key in keys.as_string::<i32>().iter().flatten() {
                bloom.add(key);
            }
        }
        let mut metadata = vec![
            KeyValue::new(BLOOM_FILTER_KEY.to_string(), bloom.to_footer_string()),
            KeyValue::new(
                BLOOM_FILTER_TYPE_KEY.to_string(),
                bloom.kind().type_code().to_string(),
            ),
        ];
        if let (Some(min), Some(max)) = (self.min_key.take(), self.max_key.take()) {
            metadata.push(KeyValue::new(MIN_RECORD_KEY.to_string(), min));
            metadata.push(KeyValue::new(MAX_RECORD_KEY.to_string(), max));
        }
        for kv in metadata {
            self.writer.append_key_value_metadata(kv);
        }
        let bytes = self
            .writer
            .into_inner()
            .map_err(|e| Error::parquet(&self.path, e))?;
        Ok(Bytes::from(bytes))
    }
}
