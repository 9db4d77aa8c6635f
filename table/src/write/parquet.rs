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
use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::Encoding;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{KeyValue, ParquetMetaData, RowGroupMetaData};
use parquet::file::page_index::offset_index::OffsetIndexMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};

use crate::bloom::{
    BLOOM_FILTER_KEY, BLOOM_FILTER_TYPE_KEY, BloomFilter, MAX_RECORD_KEY, MIN_RECORD_KEY,
    java_order,
};
use crate::error::{Error, Result};
use crate::schema::{self, FILE_NAME, RECORD_KEY};

/// Writes one base file.
pub struct BaseFileWriter {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// The row group being encoded: a writer per leaf column, and its rows so far.
    open: Option<(Vec<ArrowColumnWriter>, usize)>,
    max_group_rows: usize,
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
        let props = schema::parquet_properties(&schema, &[]);
        // Parquet's default (1Mi rows); no byte bound is set.
        let max_group_rows = props.max_row_group_row_count().unwrap_or(1 << 20).max(1);
        let (file, factory) = open(&schema, props).map_err(|e| Error::parquet(path, e))?;
        Ok(BaseFileWriter {
            file,
            factory,
            schema,
            open: None,
            max_group_rows,
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

    /// Encodes columns as the stored file `stored`, which this one replaces, ended up: a column
    /// written there without its dictionary (given up when the dictionary page filled, or never
    /// used) is written plain here too. The rewrite holds mostly the same rows, so a dictionary
    /// would fill up again, and the Parquet writer only gives it up after hashing every value up
    /// to that point: for random doubles that was a tenth of a copy-on-write merge, and the file
    /// came out larger than plain. Must come before anything is written.
    pub fn encoded_like(mut self, stored: &ParquetMetaData) -> Result<Self> {
        let plain = plain_columns(stored);
        if !plain.is_empty() {
            let props = schema::parquet_properties(&self.schema, &plain);
            (self.file, self.factory) =
                open(&self.schema, props).map_err(|e| Error::parquet(&self.path, e))?;
        }
        Ok(self)
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
            self.note_keys(keys, known);
        }
        self.rows += batch.num_rows();
        self.encode(batch)
            .map_err(|e| Error::parquet(&self.path, e))
    }

    /// Takes record keys into the footer's filter and key range.
    fn note_keys(&mut self, keys: &ArrayRef, known: bool) {
        match &mut self.keys {
            Keys::Collected(all) => all.push(keys.clone()),
            Keys::Extended(_) if known => {}
            Keys::Extended(filter) => filter.add_all(keys.as_string::<i32>().iter().flatten()),
        }
        for key in keys.as_string::<i32>().iter().flatten() {
            self.note_range(key, key);
        }
    }

    /// Widens the key range to hold `min` and `max` (in Java's order, as Hudi writes them and
    /// readers compare them).
    fn note_range(&mut self, min: &str, max: &str) {
        if self
            .min_key
            .as_deref()
            .is_none_or(|m| java_order(min, m).is_lt())
        {
            self.min_key = Some(min.to_string());
        }
        if self
            .max_key
            .as_deref()
            .is_none_or(|m| java_order(max, m).is_gt())
        {
            self.max_key = Some(max.to_string());
        }
    }

    /// Encodes a batch into the open row group, closing it whenever it is full.
    fn encode(&mut self, batch: &RecordBatch) -> parquet::errors::Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let (writers, rows) = match &mut self.open {
                Some(open) => open,
                None => {
                    let index = self.file.flushed_row_groups().len();
                    let writers = self.factory.create_column_writers(index)?;
                    self.open.insert((writers, 0))
                }
            };
            let take = (self.max_group_rows - *rows).min(batch.num_rows() - offset);
            let slice = batch.slice(offset, take);
            let mut leaves = writers.iter_mut();
            for (field, column) in self.schema.fields().iter().zip(slice.columns()) {
                for leaf in compute_leaves(field, column)? {
                    let writer = leaves
                        .next()
                        .ok_or_else(|| general_err("more leaf columns than writers"))?;
                    writer.write(&leaf)?;
                }
            }
            *rows += take;
            offset += take;
            if *rows >= self.max_group_rows {
                self.close_row_group()?;
            }
        }
        Ok(())
    }

    /// Appends the open row group to the file, if it has rows.
    fn close_row_group(&mut self) -> parquet::errors::Result<()> {
        let Some((writers, rows)) = self.open.take() else {
            return Ok(());
        };
        if rows == 0 {
            return Ok(());
        }
        let mut group = self.file.next_row_group()?;
        for writer in writers {
            writer.close()?.append_to_row_group(&mut group)?;
        }
        group.close()?;
        Ok(())
    }

    /// Whether row groups of a stored file with this Parquet schema can be copied as they are.
    pub fn can_copy(&self, stored: &SchemaDescriptor) -> bool {
        self.file.schema_descr() == stored
    }

    /// Copies row group `group` of the stored file `bytes` (of a schema [`can_copy`] accepts)
    /// without decoding it: its column chunks' bytes as they are, but `_hoodie_file_name`, which
    /// names this file. `keys` are its record keys, which the filter this writer is
    /// [`extending`] must hold already.
    ///
    /// [`can_copy`]: BaseFileWriter::can_copy
    /// [`extending`]: BaseFileWriter::extending
    /// `offsets` is its offset index (page locations, one per column chunk), which Parquet
    /// writes for every column chunk or none.
    pub fn copy_row_group(
        &mut self,
        bytes: &Bytes,
        group: &RowGroupMetaData,
        offsets: &[OffsetIndexMetaData],
        keys: &ArrayRef,
    ) -> Result<()> {
        self.note_keys(keys, true);
        self.rows += group.num_rows() as usize;
        self.copy(bytes, group, offsets)
            .map_err(|e| Error::parquet(&self.path, e))
    }

    /// Copies a row group as [`BaseFileWriter::copy_row_group`] does, without its record keys:
    /// the filter this writer is [`extending`] holds them, and `range` (the stored file's key
    /// range, from its footer) covers them.
    ///
    /// [`extending`]: BaseFileWriter::extending
    pub fn copy_row_group_unread(
        &mut self,
        bytes: &Bytes,
        group: &RowGroupMetaData,
        offsets: &[OffsetIndexMetaData],
        range: (&str, &str),
    ) -> Result<()> {
        if !matches!(self.keys, Keys::Extended(_)) {
            return Err(Error::Task(
                "a row group copied without its keys needs the stored file's filter".to_string(),
            ));
        }
        self.note_range(range.0, range.1);
        self.rows += group.num_rows() as usize;
        self.copy(bytes, group, offsets)
            .map_err(|e| Error::parquet(&self.path, e))
    }

    fn copy(
        &mut self,
        bytes: &Bytes,
        group: &RowGroupMetaData,
        offsets: &[OffsetIndexMetaData],
    ) -> parquet::errors::Result<()> {
        if offsets.len() != group.columns().len() {
            return Err(general_err("an offset index per column chunk is needed"));
        }
        self.close_row_group()?;
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        let index = self.file.flushed_row_groups().len();
        let mut writers = self.factory.create_column_writers(index)?;
        let mut target = self.file.next_row_group()?;
        for (leaf, chunk) in group.columns().iter().enumerate() {
            if chunk.column_path().string() == FILE_NAME {
                let names: ArrayRef =
                    Arc::new(StringArray::from(vec![self.file_name.as_str(); rows]));
                let field = self.schema.field_with_name(FILE_NAME)?;
                let writer = &mut writers[leaf];
                for column in compute_leaves(field, &names)? {
                    writer.write(&column)?;
                }
                let writer = std::mem::replace(
                    writer,
                    self.factory.create_column_writers(index)?.swap_remove(leaf),
                );
                writer.close()?.append_to_row_group(&mut target)?;
            } else {
                let close = ColumnCloseResult {
                    bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or(0),
                    rows_written: rows as u64,
                    metadata: chunk.clone(),
                    bloom_filter: None,
                    column_index: None,
                    offset_index: Some(offsets[leaf].clone()),
                };
                target.append_column(bytes, close)?;
            }
        }
        target.close()?;
        Ok(())
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
                bloom.add_all(
                    all.iter()
                        .flat_map(|k| k.as_string::<i32>().iter().flatten()),
                );
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
            self.file.append_key_value_metadata(kv);
        }
        let bytes = self
            .close_row_group()
            .and_then(|()| self.file.into_inner())
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

/// The columns with data pages in a plain (not dictionary) encoding in some row group of a stored
/// file, by the footer's page encoding statistics (files without them name none).
fn plain_columns(stored: &ParquetMetaData) -> Vec<ColumnPath> {
    let mut plain: Vec<ColumnPath> = Vec::new();
    for chunk in stored.row_groups().iter().flat_map(|g| g.columns()) {
        let Some(data_pages) = chunk.page_encoding_stats_mask() else {
            continue;
        };
        if data_pages.is_set(Encoding::PLAIN) && !plain.contains(chunk.column_path()) {
            plain.push(chunk.column_path().clone());
        }
    }
    plain
}

/// The Arrow writer sets up the Parquet schema and the `ARROW:schema` footer entry; its parts
/// then let row groups be encoded here or copied from a stored file as they are.
fn open(
    schema: &SchemaRef,
    props: WriterProperties,
) -> parquet::errors::Result<(SerializedFileWriter<Vec<u8>>, ArrowRowGroupWriterFactory)> {
    ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?.into_serialized_writer()
}

fn general_err(message: &str) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::General(message.to_string())
}

// Hand-written: the Parquet writer's parts print nothing useful.
impl std::fmt::Debug for BaseFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseFileWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use arrow::array::{Decimal128Array, Float64Array};
    use arrow::datatypes::{DataType, Field, Float64Type, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    /// A rewrite encodes plain the columns its stored file holds without a dictionary (one that
    /// overflowed, one that never had one) and keeps the others' dictionaries; every value reads
    /// back bit for bit: floats from the whole bit space (NaN payloads, both zeros, subnormals),
    /// non-ASCII strings, decimals.
    #[test]
    fn a_rewrite_keeps_the_stored_files_plain_columns_plain() -> Result<(), Box<dyn Error>> {
        let mut rng = StdRng::seed_from_u64(13);
        let rows = 5_000;
        let specials = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001),
            f64::from_bits(0xfff8_dead_beef_0001),
            f64::INFINITY,
            f64::MIN_POSITIVE / 2.0,
        ];
        let amount: Float64Array = specials
            .iter()
            .copied()
            .chain((specials.len()..rows).map(|_| f64::from_bits(rng.random())))
            .enumerate()
            .map(|(i, v)| (i % 97 != 50).then_some(v))
            .collect();
        let ids: StringArray = (0..rows)
            .map(|i| Some(format!("Köln-{i:x}-\u{1F600}")))
            .collect();
        let price: Float64Array = (0..rows).map(|i| Some((i % 300) as f64 / 4.0)).collect();
        let city: StringArray = (0..rows)
            .map(|i| Some(["Köln", "", "Zürich"][i % 3]))
            .collect();
        let total = Decimal128Array::from_iter_values((0..rows).map(|i| i as i128 * 7 - 3))
            .with_precision_and_scale(18, 4)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("amount", DataType::Float64, true),
            Field::new("id", DataType::Utf8, true),
            Field::new("price", DataType::Float64, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("total", DataType::Decimal128(18, 4), true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(amount),
            Arc::new(ids),
            Arc::new(price),
            Arc::new(city),
            Arc::new(total),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;

        // The stored file: dictionary pages of 4 KiB, which the unique amounts and totals
        // overflow; the ids without a dictionary.
        let props = WriterProperties::builder()
            .set_dictionary_page_size_limit(4096)
            .set_column_dictionary_enabled(ColumnPath::from("id"), false)
            .build();
        let mut stored = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?;
        stored.write(&batch)?;
        let stored = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(stored.into_inner()?))?;

        let dictionaries = |bytes: Bytes| -> Result<Vec<bool>, Box<dyn Error>> {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
            let pages = reader.metadata().row_groups()[0]
                .columns()
                .iter()
                .map(|c| {
                    let mask = c.page_encoding_stats_mask();
                    c.dictionary_page_offset().is_some()
                        && mask.is_some_and(|m| !m.is_set(Encoding::PLAIN))
                })
                .collect();
            let read = reader
                .build()?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let read = arrow::compute::concat_batches(&schema, &read)?;
            for (column, (got, want)) in read.columns().iter().zip(batch.columns()).enumerate() {
                assert_eq!(got.to_data(), want.to_data(), "column {column}");
            }
            let bits = |b: &RecordBatch| -> Vec<Option<u64>> {
                let a = b.column(0).as_primitive::<Float64Type>();
                a.iter().map(|v| v.map(f64::to_bits)).collect()
            };
            assert_eq!(bits(&read), bits(&batch));
            Ok(pages)
        };

        let mut fresh = BaseFileWriter::new(schema.clone(), "t/a.parquet")?;
        fresh.write(&batch)?;
        assert_eq!(
            dictionaries(fresh.finish()?)?,
            [true, true, true, true, false],
            "a new file tries a dictionary everywhere but on 18-digit decimals (delta-packed)"
        );
        let mut rewrite =
            BaseFileWriter::new(schema.clone(), "t/b.parquet")?.encoded_like(stored.metadata())?;
        rewrite.write(&batch.slice(0, 1_000))?;
        rewrite.write(&batch.slice(1_000, rows - 1_000))?;
        assert_eq!(
            dictionaries(rewrite.finish()?)?,
            [false, false, true, true, false]
        );
        Ok(())
    }

    /// Decimals of up to 18 digits (stored as INT32 or INT64) are delta-packed like integers,
    /// wider ones (fixed-length bytes) dictionary-encoded; every value reads back, the largest
    /// and smallest of each precision, zero and nulls among them.
    #[test]
    fn decimals_of_up_to_18_digits_are_delta_packed() -> Result<(), Box<dyn Error>> {
        let mut rng = StdRng::seed_from_u64(5);
        let rows = 3_000;
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (precision, scale) in [(1, 0), (9, 2), (10, 0), (18, 4), (19, 0), (38, 10)] {
            let max = 10i128.pow(u32::from(precision)) - 1;
            let values: Decimal128Array = [Some(max), Some(-max), Some(0), None]
                .into_iter()
                .chain((4..rows).map(|_| Some(rng.random_range(-max..=max))))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(precision, scale)?;
            fields.push(Field::new(
                format!("d{precision}"),
                DataType::Decimal128(precision, scale),
                true,
            ));
            columns.push(Arc::new(values));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let mut writer = BaseFileWriter::new(schema.clone(), "t/d.parquet")?;
        writer.write(&batch)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(writer.finish()?)?;
        let packed: Vec<bool> = reader.metadata().row_groups()[0]
            .columns()
            .iter()
            .map(|c| c.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED))
            .collect();
        assert_eq!(packed, [true, true, true, true, false, false]);
        let read = reader
            .build()?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let read = arrow::compute::concat_batches(&schema, &read)?;
        for (column, (got, want)) in read.columns().iter().zip(batch.columns()).enumerate() {
            assert_eq!(got.to_data(), want.to_data(), "column {column}");
        }
        Ok(())
    }
}
