//! Base-file writer, the one way a base file is encoded (writes and compaction): Parquet with the
//! meta columns first, `_hoodie_file_name` naming the file itself, and in the footer Hudi's bloom
//! filter over record keys and the min/max record key (what Java writers with a bloom index look
//! records up by). Batches are encoded as they come, so a file group is never held whole in
//! memory. A rewrite may keep the stored file's filter and add only its new keys (see
//! [`BaseFileWriter::extending`]): hashing every key ~30 times was an eighth of a rewrite.

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
    keys: Keys,
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
            keys: Keys::Collected(Vec::new()),
            min_key: None,
            max_key: None,
            rows: 0,
            path: path.to_string(),
            file_name: path.rsplit('/').next().unwrap_or(path).to_string(),
        })
    }

    /// The file's bloom filter will be `filter`, a stored file's, with the keys of batches given
    /// to [`BaseFileWriter::write`] added: every key of a batch given to
    /// [`BaseFileWriter::write_known`] must be in `filter` already.
    pub fn extending(mut self, filter: BloomFilter) -> Self {
        self.keys = Keys::Extended(filter);
        self
    }

    /// Writes a batch (meta and data columns); rows read from other files (compaction) get this
    /// file's name in `_hoodie_file_name`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.write_batch(batch, false)
    }

    /// Writes a batch whose record keys the filter this writer is [`extending`] holds already
    /// (rows of the stored file, or changes of them); like [`BaseFileWriter::write`] otherwise.
    ///
    /// [`extending`]: BaseFileWriter::extending
    pub fn write_known(&mut self, batch: &RecordBatch) -> Result<()> {
        self.write_batch(batch, true)
    }

    fn write_batch(&mut self, batch: &RecordBatch, known: bool) -> Result<()> {
        let stamped = self.stamped(batch)?;
        let batch = stamped.as_ref().unwrap_or(batch);
        if let Some(keys) = batch.column_by_name(RECORD_KEY) {
            match &mut self.keys {
                Keys::Collected(all) => all.push(keys.clone()),
                Keys::Extended(_) if known => {}
                Keys::Extended(filter) => {
                    keys.as_string::<i32>()
                        .iter()
                        .flatten()
                        .for_each(|k| filter.add(k));
                }
            }
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
        let bloom = match std::mem::replace(&mut self.keys, Keys::Collected(Vec::new())) {
            Keys::Extended(filter) => filter,
            Keys::Collected(all) => {
                let count = all.iter().map(|k| k.len() - k.null_count()).sum();
                let mut bloom = BloomFilter::for_keys(count);
                for keys in &all {
                    keys.as_string::<i32>()
                        .iter()
                        .flatten()
                        .for_each(|k| bloom.add(k));
                }
                bloom
            }
        };
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

/// The record keys of the footer's bloom filter.
#[derive(Debug)]
enum Keys {
    /// Every key written, for a filter sized by their number at the end.
    Collected(Vec<ArrayRef>),
    /// A stored file's filter, holding the keys copied from it, with the new keys added.
    Extended(BloomFilter),
}
