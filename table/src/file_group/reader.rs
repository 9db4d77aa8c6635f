//! Reading one file slice: its base file, and for merge-on-read its log blocks merged on top.
//! A log block counts only if the write that appended it completed (at or before the query's
//! instant); a rollback command block cancels the earlier blocks of the write it names.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt};

use super::{BlockContent, FileSlice, LogBlock, file_path, log_file::read_log_blocks};
use crate::error::{Error, Result};
use crate::merge::{Ordering, RecordMerger};
use crate::read::{read_base_file, read_base_file_columns};
use crate::schema;
use crate::schema::{COMMIT_SEQNO, COMMIT_TIME, RECORD_KEY};
use crate::storage::Storage;
use crate::timeline::{InstantTime, Timeline};

/// What a slice read sees and how it merges.
#[derive(Debug, Clone)]
pub struct SliceRead<'a> {
    pub storage: &'a Storage,
    pub timeline: &'a Timeline,
    pub ordering: &'a Ordering,
    /// Log blocks of writes after this instant are left out (time travel).
    pub as_of: Option<&'a InstantTime>,
    /// Incremental reads `(from, to]`: only what was written in the window — the base file if
    /// its instant is in it, log blocks whose instants are — is merged (as hudi-rs does).
    pub window: Option<(&'a InstantTime, &'a InstantTime)>,
    /// Base files only, log files ignored (read-optimized queries).
    pub read_optimized: bool,
    /// The columns to decode from base files (names in files; all when `None`). The merge
    /// needs the record key, commit time and ordering columns: they are always read.
    pub columns: Option<std::sync::Arc<[String]>>,
    /// Only the records of these keys (`_hoodie_record_key` values; all when `None`): base rows
    /// and log records of other keys are dropped before merging.
    pub keys: Option<std::sync::Arc<std::collections::HashSet<String>>>,
}

impl<'a> SliceRead<'a> {
    /// A read of a slice's latest state: every completed log block merged, no window.
    pub fn latest(storage: &'a Storage, timeline: &'a Timeline, ordering: &'a Ordering) -> Self {
        SliceRead {
            storage,
            timeline,
            ordering,
            as_of: None,
            window: None,
            read_optimized: false,
            columns: None,
            keys: None,
        }
    }

    /// The records of a slice: meta columns then data columns.
    pub async fn read(&self, slice: &FileSlice<'_>) -> Result<Vec<RecordBatch>> {
        let in_window = |t: &InstantTime| self.window.is_none_or(|(from, to)| t > from && t <= to);
        let base = match slice.base_file.filter(|b| in_window(&b.instant)) {
            Some(base) => {
                let path = file_path(slice.partition, &base.file_name());
                match &self.columns {
                    Some(columns) => {
                        let mut needed = columns.to_vec();
                        needed.extend([RECORD_KEY, COMMIT_TIME, COMMIT_SEQNO].map(String::from));
                        if let Ordering::EventTime(field) = self.ordering {
                            needed.push(field.clone());
                        }
                        read_base_file_columns(self.storage, &path, Some(&needed)).await?
                    }
                    None => read_base_file(self.storage, &path).await?,
                }
            }
            None => Vec::new(),
        };
        let base = match &self.keys {
            Some(keys) => only_keys(base, keys)?,
            None => base,
        };
        if self.read_optimized || slice.log_files.is_empty() {
            return Ok(base);
        }
        let mut blocks = self.log_blocks(slice).await?;
        if let Some(keys) = &self.keys {
            for block in &mut blocks {
                match &mut block.content {
                    BlockContent::AvroData(batch) | BlockContent::ParquetData(batch) => {
                        let kept = only_keys(vec![batch.clone()], keys)?;
                        *batch = match kept.into_iter().next() {
                            Some(b) => b,
                            None => batch.slice(0, 0),
                        };
                    }
                    BlockContent::Delete(records) => {
                        records.retain(|r| r.record_key.as_ref().is_some_and(|k| keys.contains(k)))
                    }
                    _ => {}
                }
            }
        }
        if blocks.is_empty() {
            return Ok(base);
        }
        let ordering = self.ordering.clone();
        tokio::task::spawn_blocking(move || merge(base, blocks, &ordering))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// The blocks of the slice's log files that apply, in order.
    async fn log_blocks(&self, slice: &FileSlice<'_>) -> Result<Vec<LogBlock>> {
        let paths: Vec<String> = slice
            .log_files
            .iter()
            .map(|l| file_path(slice.partition, &l.file_name()))
            .collect();
        let files: Vec<Vec<LogBlock>> = futures::stream::iter(paths)
            .map(|path| async move {
                let bytes = self.storage.get(&path).await?;
                tokio::task::spawn_blocking(move || read_log_blocks(&bytes))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?
            })
            .buffered(4)
            .try_collect()
            .await?;
        let mut applied: Vec<LogBlock> = Vec::new();
        for block in files.into_iter().flatten() {
            match &block.content {
                BlockContent::Corrupt { offset, reason } => {
                    tracing::warn!(file_id = %slice.file_id, offset, reason = %reason, "Skipping a corrupt log block.");
                }
                BlockContent::Command { target_instant } => {
                    applied.retain(|b| b.instant_time().as_ref() != Some(target_instant));
                }
                BlockContent::Undecoded { .. } => {}
                _ => {
                    let committed = block.instant_time().is_some_and(|t| {
                        self.timeline.is_committed(&t)
                            && self.as_of.is_none_or(|a| &t <= a)
                            && self.window.is_none_or(|(from, to)| &t > from && &t <= to)
                    });
                    if committed {
                        applied.push(block);
                    }
                }
            }
        }
        Ok(applied)
    }
}

/// The rows of `batches` whose record key is one of `keys` (batches left empty are dropped).
fn only_keys(
    batches: Vec<RecordBatch>,
    keys: &std::collections::HashSet<String>,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let Some(column) = batch.column_by_name(RECORD_KEY) else {
            out.push(batch);
            continue;
        };
        let keep: arrow::array::BooleanArray = column
            .as_string::<i32>()
            .iter()
            .map(|k| Some(k.is_some_and(|k| keys.contains(k))))
            .collect();
        let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
    }
    Ok(out)
}

/// Folds the blocks into the base records.
fn merge(
    base: Vec<RecordBatch>,
    blocks: Vec<LogBlock>,
    ordering: &Ordering,
) -> Result<Vec<RecordBatch>> {
    let schema = slice_schema(&base, &blocks);
    let mut merger = RecordMerger::new(schema, ordering)?;
    for batch in &base {
        merger.add_base(batch)?;
    }
    for block in &blocks {
        match &block.content {
            BlockContent::AvroData(batch) | BlockContent::ParquetData(batch) => {
                merger.add_records(batch)?
            }
            BlockContent::Delete(records) => merger.delete(records)?,
            _ => {}
        }
    }
    merger.finish()
}

/// The schema of the newest records, widened by older ones.
fn slice_schema(base: &[RecordBatch], blocks: &[LogBlock]) -> SchemaRef {
    let newest_first = blocks
        .iter()
        .rev()
        .filter_map(|b| match &b.content {
            BlockContent::AvroData(batch) | BlockContent::ParquetData(batch) => {
                Some(batch.schema())
            }
            _ => None,
        })
        .chain(base.first().map(|b| b.schema()));
    let mut result: Option<SchemaRef> = None;
    for schema in newest_first {
        result = Some(match result {
            None => schema,
            Some(current) => schema::evolve(&current, &schema).unwrap_or(current),
        });
    }
    result.unwrap_or_else(|| std::sync::Arc::new(arrow::datatypes::Schema::empty()))
}
