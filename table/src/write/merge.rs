//! Merging incoming changes into one file group (copy-on-write), streaming: the stored base file
//! is decoded a batch at a time; the rows of a batch that no change supersedes are copied with
//! their `_hoodie_commit_time`/`_hoodie_commit_seqno` (in runs, by a filter), followed by the
//! changes that replace the others (deleted rows are dropped), and new keys are appended. Memory is
//! bounded by the batch size plus the incoming changes. No I/O.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::sync::Arc;

use std::fmt::Write as _;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch, StringArray,
    StringBuilder, UInt32Array, new_null_array,
};
use arrow::buffer::{BooleanBuffer, Buffer, OffsetBuffer};
use arrow::compute::{FilterBuilder, take};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

use super::parquet::BaseFileWriter;
use super::plan::Plan;
use super::plan::incoming_ordering;
use crate::bloom::{BloomFilter, MAX_RECORD_KEY, MIN_RECORD_KEY};
use crate::cdc;
use crate::error::{Error, Result};
use crate::merge::{OrderingValues, Version, wins};
use crate::schema::{self, FILE_NAME, PARTITION_PATH, RECORD_KEY};
use crate::timeline::InstantTime;

/// Rows decoded or written per batch.
const BATCH_SIZE: usize = 8192;

/// Stored row groups of at least this many rows that no change touches are copied into the new
/// file as they are (their bytes, not decoded and encoded again); smaller ones are merged into
/// the row group being written, so that many small commits do not leave many small row groups.
const MIN_COPIED_ROWS: i64 = 16 * 1024;

/// Inputs that stay the same for every file group of a commit.
#[derive(Debug)]
pub struct MergeContext {
    pub instant: InstantTime,
    /// Incoming rows, aligned to `data_schema`.
    pub incoming: RecordBatch,
    pub plan: Plan,
    pub data_schema: SchemaRef,
    /// The event-time ordering column, if any.
    pub ordering_field: Option<String>,
    /// Merge-on-read: the Avro schema (with meta fields) for log block headers. Changes to an
    /// existing slice are then appended as log files instead of merged.
    pub log_schema: Option<String>,
    /// Merge-on-read: Avro data blocks instead of Parquet data blocks.
    pub avro_data_blocks: bool,
    /// Copy-on-write tables with change data capture: the CDC record schema (Avro JSON) of the
    /// `.cdc` file each merge writes.
    pub cdc_schema: Option<String>,
}

/// One file group to merge.
#[derive(Debug)]
pub struct MergeTask<'a> {
    /// The stored base file (Parquet bytes), `None` for a new file group.
    pub stored: Option<(Bytes, String)>,
    /// Incoming rows for this file group (indices into `MergeContext::incoming`).
    pub rows: &'a [usize],
    pub partition: &'a str,
    /// Name and table-relative path of the new base file.
    pub file_name: &'a str,
    pub path: &'a str,
    /// Task number: part of each new record's `_hoodie_commit_seqno`.
    pub task: usize,
}

/// The new base file of a file group and what changed.
#[derive(Debug)]
pub struct Merged {
    pub bytes: Bytes,
    /// The least and greatest record key of the file (`None`: it holds no record).
    pub key_range: Option<(String, String)>,
    pub rows: usize,
    pub inserts: usize,
    pub updates: usize,
    pub deletes: usize,
    /// The `.cdc` log file of the merge's changes (change data capture tables).
    pub cdc: Option<Bytes>,
}

/// Merges, returning `None` when nothing in the file group changes (stale or no-op changes).
pub fn merge(ctx: &MergeContext, task: &MergeTask<'_>) -> Result<Option<Merged>> {
    let plan = &ctx.plan;
    let full_schema = schema::with_meta_columns(&ctx.data_schema);
    // The incoming rows by key, to find the stored rows they change (a new file group has none).
    let mut incoming: HashMap<&str, usize, RandomState> = match task.stored {
        Some(_) => task.rows.iter().map(|&r| (plan.keys.value(r), r)).collect(),
        None => HashMap::default(),
    };
    let mut out = Output {
        ctx,
        task,
        writer: BaseFileWriter::new(full_schema.clone(), task.path)?,
        schema: full_schema.clone(),
        new_records: 0,
    };
    let (mut updates, mut deletes) = (0, 0);
    // Change records (change data capture): each a batch of (op, before, after).
    let mut changes: Vec<RecordBatch> = Vec::new();
    let data = ctx.data_schema.as_ref();
    let incoming_data: Vec<ArrayRef> = match ctx.cdc_schema {
        Some(_) => data
            .fields()
            .iter()
            .map(|f| column(&ctx.incoming, f.name()).cloned())
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };

    if let Some((bytes, stored_path)) = &task.stored {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let stored = ArrowReaderMetadata::load(bytes, options)
            .map_err(|e| Error::parquet(stored_path, e))?;
        let metadata = stored.metadata().clone();
        out.writer = out.writer.encoded_like(&metadata)?;
        // When the stored file's filter says that it holds none of the incoming keys (inserts,
        // as a copy or a stream of new rows brings), no row group is touched: they are copied
        // without decoding their keys, the filter extended and the key range widened by the
        // footer's. A key it might hold stops the check at once.
        let mut unread = None;
        if let Some(filter) = extendable_filter(&metadata, plan, task.rows) {
            let footer = metadata.file_metadata().key_value_metadata();
            let get = |key: &str| {
                footer?
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| kv.value.clone())
            };
            if let (Some(min), Some(max)) = (get(MIN_RECORD_KEY), get(MAX_RECORD_KEY))
                && !incoming.keys().any(|k| filter.might_contain(k))
            {
                unread = Some((min, max));
            }
            out.writer = out.writer.extending(filter);
        }
        let offsets = metadata.offset_index();
        // The stored file name and partition path are not read: every row gets the new file's
        // (one partition per file group), and decoding them cost as much as a data column.
        let descr = metadata.file_metadata().schema_descr();
        let read = ProjectionMask::roots(
            descr,
            (0..descr.root_schema().get_fields().len()).filter(|&i| {
                !matches!(
                    descr.root_schema().get_fields()[i].name(),
                    FILE_NAME | PARTITION_PATH
                )
            }),
        );
        let copyable =
            offsets.is_some() && out.writer.can_copy(metadata.file_metadata().schema_descr());
        let mut batches = Vec::new();
        for (group, group_meta) in metadata.row_groups().iter().enumerate() {
            let builder = || {
                ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), stored.clone())
                    .with_row_groups(vec![group])
            };
            if let (true, Some(offsets)) = (
                copyable && group_meta.num_rows() >= MIN_COPIED_ROWS,
                offsets.and_then(|o| o.get(group)),
            ) {
                if let Some((min, max)) = &unread {
                    out.writer
                        .copy_row_group_unread(bytes, group_meta, offsets, (min, max))?;
                    continue;
                }
                let keys = group_keys(builder(), stored_path)?;
                let strings = keys.as_string::<i32>();
                let untouched = (0..strings.len())
                    .all(|i| strings.is_null(i) || !incoming.contains_key(strings.value(i)));
                if untouched {
                    out.writer
                        .copy_row_group(bytes, group_meta, offsets, &keys)?;
                    continue;
                }
            }
            let reader = builder()
                .with_projection(read.clone())
                .with_batch_size(BATCH_SIZE)
                .build()
                .map_err(|e| Error::parquet(stored_path, e))?;
            batches.push(reader);
        }
        // The row groups to merge, after the copied ones (the order of rows in a file means
        // nothing: readers and the key index go by key).
        for batch in batches.into_iter().flatten() {
            let batch = batch.map_err(|e| Error::parquet(stored_path, e.into()))?;
            let batch = schema::align(&batch, &full_schema)?;
            let keys = column(&batch, RECORD_KEY)?.as_string::<i32>();
            let ordering = match (&plan.ordering_converter, ctx.ordering_field.as_deref()) {
                (Some(converter), Some(field)) => {
                    Some(OrderingValues::new(converter, column(&batch, field)?)?)
                }
                _ => None,
            };
            // The stored rows kept as they are, and the incoming rows that replace others: those
            // are written after the kept ones, which are copied in runs rather than row by row.
            let mut kept = BooleanBufferBuilder::new(batch.num_rows());
            let mut replacing = Vec::new();
            // Changed stored rows: (op, stored row, incoming row of an update).
            let mut changed: Vec<(&str, u32, Option<u32>)> = Vec::new();
            for i in 0..batch.num_rows() {
                let change = keys
                    .is_valid(i)
                    .then(|| keys.value(i))
                    .and_then(|k| incoming.get(k).copied());
                let Some(row) = change else {
                    kept.append(true);
                    continue;
                };
                incoming.remove(keys.value(i));
                let newer = Version {
                    delete: plan.deletes.value(row),
                    ordering: incoming_ordering(plan.ordering.as_ref(), &plan.deletes, row),
                };
                let stored = Version {
                    delete: false,
                    ordering: ordering.as_ref().and_then(|o| o.get(i)),
                };
                let replaced = wins(newer, stored);
                kept.append(!replaced);
                match (replaced, plan.deletes.value(row)) {
                    (false, _) => {}
                    (true, true) => {
                        deletes += 1;
                        changed.push(("d", i as u32, None));
                    }
                    (true, false) => {
                        updates += 1;
                        replacing.push(row);
                        changed.push(("u", i as u32, Some(row as u32)));
                    }
                }
            }
            out.write_kept(&batch, kept.finish())?;
            out.write_incoming(&replacing, true)?;
            if ctx.cdc_schema.is_some() && !changed.is_empty() {
                let stored_data: Vec<ArrayRef> = data
                    .fields()
                    .iter()
                    .map(|f| column(&batch, f.name()).cloned())
                    .collect::<Result<_>>()?;
                let before: UInt32Array = changed.iter().map(|c| Some(c.1)).collect();
                let after: UInt32Array = changed.iter().map(|c| c.2).collect();
                let ops: Vec<&str> = changed.iter().map(|c| c.0).collect();
                changes.push(cdc::records(
                    data,
                    cdc::TS_MS,
                    ctx.instant.as_str(),
                    &ops,
                    cdc::image(data, &stored_data, &before)?,
                    cdc::image(data, &incoming_data, &after)?,
                )?);
            }
        }
    }
    // Keys not found in the file group are inserts (or deletes of nothing), in input order.
    let inserts: Vec<usize> = match task.stored {
        Some(_) => {
            let mut inserts: Vec<usize> = incoming
                .into_values()
                .filter(|&r| !plan.deletes.value(r))
                .collect();
            inserts.sort_unstable();
            inserts
        }
        None => task
            .rows
            .iter()
            .copied()
            .filter(|&r| !plan.deletes.value(r))
            .collect(),
    };
    if updates == 0 && deletes == 0 && inserts.is_empty() {
        return Ok(None);
    }
    for chunk in inserts.chunks(BATCH_SIZE) {
        out.write_incoming(chunk, false)?;
        if ctx.cdc_schema.is_some() {
            let after: UInt32Array = chunk.iter().map(|&r| Some(r as u32)).collect();
            changes.push(cdc::records(
                data,
                cdc::TS_MS,
                ctx.instant.as_str(),
                &vec!["i"; chunk.len()],
                cdc::no_image(data, chunk.len()),
                cdc::image(data, &incoming_data, &after)?,
            )?);
        }
    }
    let rows = out.writer.rows();
    let key_range = out.writer.key_range();
    let bytes = out.writer.finish()?;
    let cdc = match &ctx.cdc_schema {
        Some(schema) => Some(cdc::encode_file(&ctx.instant, schema, data, &changes)?),
        None => None,
    };
    Ok(Some(Merged {
        bytes,
        key_range,
        rows,
        inserts: inserts.len(),
        updates,
        deletes,
        cdc,
    }))
}

/// The record keys of the one row group `builder` reads.
fn group_keys(builder: ParquetRecordBatchReaderBuilder<Bytes>, path: &str) -> Result<ArrayRef> {
    let schema = builder.parquet_schema();
    let leaf = schema
        .columns()
        .iter()
        .position(|c| c.path().string() == RECORD_KEY)
        .ok_or_else(|| Error::Schema {
            column: RECORD_KEY.to_string(),
            reason: "missing from a stored base file".to_string(),
        })?;
    let mask = ProjectionMask::leaves(schema, [leaf]);
    let batches = builder
        .with_projection(mask)
        .with_batch_size(usize::MAX >> 1)
        .build()
        .map_err(|e| Error::parquet(path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::parquet(path, e.into()))?;
    let columns: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
    match columns.as_slice() {
        [one] => Ok(one.slice(0, one.len())),
        _ => Ok(arrow::compute::concat(&columns)?),
    }
}

/// The stored file's bloom filter, when the new file may keep it and add only its new keys: one
/// of Hudi's dynamic filters that (by its count) holds every stored key, is sized as a new file's
/// filter would be, and is not burdened beyond a quarter of the rows by the keys it keeps for
/// rows deleted since (a bloom filter cannot drop a key: they only make false positives). New
/// keys are no burden: a file group that grows by inserts (a snapshot's commits) keeps
/// extending its filter, rather than hashing every key again at each commit. Any other filter,
/// or one that does not parse, is built anew from every key.
fn extendable_filter(
    metadata: &ParquetMetaData,
    plan: &Plan,
    rows: &[usize],
) -> Option<BloomFilter> {
    let footer = metadata.file_metadata();
    let kv = footer.key_value_metadata()?;
    let get = |key: &str| {
        kv.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_deref())
    };
    let filter = BloomFilter::from_footer(get).ok()??;
    let stored = usize::try_from(footer.num_rows()).ok()?;
    let deletes = rows.iter().filter(|&&r| plan.deletes.value(r)).count();
    let (fewest, most) = (
        stored.saturating_sub(deletes),
        stored + rows.len() - deletes,
    );
    // Keys of rows deleted before, and at most `deletes` more.
    let stale = filter.added()?.checked_sub(stored)? + deletes;
    (filter.sized_for(fewest) && filter.sized_for(most) && stale <= fewest / 4).then_some(filter)
}

/// `value` `n` times, built by doubling copies rather than one copy per row.
fn repeated(value: &str, n: usize) -> StringArray {
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(value.len(), n));
    StringArray::new(offsets, Buffer::from_vec(value.as_bytes().repeat(n)), None)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| Error::Schema {
        column: name.to_string(),
        reason: "missing from a stored base file".to_string(),
    })
}

/// Builds output batches from picks of stored and incoming rows and writes them.
struct Output<'a> {
    ctx: &'a MergeContext,
    task: &'a MergeTask<'a>,
    writer: BaseFileWriter,
    schema: SchemaRef,
    new_records: usize,
}

impl Output<'_> {
    /// Writes the `kept` rows of a stored batch (aligned to the file's schema), their meta
    /// columns as they were but the file name and partition path, which are this file's.
    fn write_kept(&mut self, stored: &RecordBatch, kept: BooleanBuffer) -> Result<()> {
        let rows = kept.count_set_bits();
        if rows == 0 {
            return Ok(());
        }
        let filter = (rows < stored.num_rows()).then(|| {
            FilterBuilder::new(&BooleanArray::new(kept, None))
                .optimize()
                .build()
        });
        let columns = self
            .schema
            .fields()
            .iter()
            .zip(stored.columns())
            .map(|(field, column)| match field.name().as_str() {
                PARTITION_PATH => Ok(Arc::new(repeated(self.task.partition, rows)) as ArrayRef),
                FILE_NAME => Ok(Arc::new(repeated(self.task.file_name, rows)) as ArrayRef),
                _ => match &filter {
                    Some(filter) => filter.filter(column),
                    None => Ok(column.clone()),
                },
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        // Rows of the stored file: their keys are in its filter.
        self.writer.write_known(&batch)
    }

    /// Writes incoming `rows` as new records of this commit; `replacing`: they replace stored
    /// rows, so their keys are in the stored file's filter already.
    fn write_incoming(&mut self, rows: &[usize], replacing: bool) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (ctx, task) = (self.ctx, self.task);
        let instant = ctx.instant.as_str();
        // `{instant}_{task}_{n}`, appended straight into the column buffers: no string per row,
        // and no `core::fmt` (which was a tenth of writing a new row).
        let prefix = format!("{instant}_{}_", task.task);
        let mut seqnos = StringBuilder::with_capacity(rows.len(), rows.len() * (prefix.len() + 7));
        let mut number = itoa::Buffer::new();
        for _ in rows {
            seqnos
                .write_str(&prefix)
                .map_err(|e| Error::Task(e.to_string()))?;
            seqnos
                .write_str(number.format(self.new_records))
                .map_err(|e| Error::Task(e.to_string()))?;
            seqnos.append_value("");
            self.new_records += 1;
        }
        let indices = UInt32Array::from_iter_values(rows.iter().map(|&r| r as u32));
        let keys: &dyn Array = &ctx.plan.keys;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(repeated(instant, rows.len())),
            Arc::new(seqnos.finish()),
            take(keys, &indices, None)?,
            Arc::new(repeated(task.partition, rows.len())),
            Arc::new(repeated(task.file_name, rows.len())),
        ];
        for field in ctx.data_schema.fields() {
            columns.push(match ctx.incoming.column_by_name(field.name()) {
                Some(column) => take(column, &indices, None)?,
                None => new_null_array(field.data_type(), rows.len()),
            });
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        match replacing {
            true => self.writer.write_known(&batch),
            false => self.writer.write(&batch),
        }
    }
}
