//! Change queries (Hudi's CDC query, `hoodie.datasource.query.incremental.format=cdc`): every
//! record each commit in `(from, to]` changed, as `op` (`i`, `u`, `d`), the commit's `instant`,
//! and the record `before` and `after` the commit (data columns, named as written).
//!
//! Per file group a commit wrote, the changes come from its `.cdc` file when the write stat names
//! one (`cdcStats`: copy-on-write tables with change data capture); otherwise they are found the
//! way Hudi's `HoodieCDCExtractor` infers them: the file group as of the commit is compared with
//! it as of the write before — keys the commit wrote are `i` or `u`, keys it removed `d`. File
//! groups a replace commit replaced yield a `d` for each record they held. Compactions change no
//! record. A key that moved between partitions is a `d` in one file group and an `i` in the
//! other, as Hudi reports it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};

use super::{ReadResult, earliest_readable, recorded_schema, table_schema};
use crate::cdc;
use crate::error::{Error, Result};
use crate::file_group::{BlockContent, FileSystemView, SliceRead, read_log_blocks};
use crate::merge::Ordering;
use crate::schema::{self, COMMIT_TIME, RECORD_KEY};
use crate::storage::Storage;
use crate::timeline::{InstantTime, Timeline};

/// The columns of the table as the change query names them and as files name them.
struct Columns {
    logical: SchemaRef,
    physical: SchemaRef,
    /// `physical` with the meta columns first: what slices read back as.
    stored: SchemaRef,
}

/// The changes of the commits in `(from, to]` (`to`: the latest write when `None`).
pub async fn read_changes(
    storage: &Storage,
    timeline: &Timeline,
    view: &FileSystemView,
    ordering: &Ordering,
    from: &InstantTime,
    to: Option<&InstantTime>,
) -> Result<ReadResult> {
    let logical = match recorded_schema(storage, timeline).await? {
        Some(recorded) => Arc::new(recorded),
        None => table_schema(storage, timeline)
            .await?
            .unwrap_or_else(|| Arc::new(Schema::empty())),
    };
    let physical = schema::physical(&logical)?;
    let columns = Columns {
        stored: schema::with_meta_columns(&physical),
        logical,
        physical,
    };
    let out = ReadResult {
        schema: cdc::record_schema(&columns.logical, cdc::INSTANT),
        batches: Vec::new(),
    };
    let Some(to) = to
        .cloned()
        .or_else(|| timeline.latest_completed_write().map(|i| i.time.clone()))
    else {
        return Ok(out);
    };
    let writes: Vec<&crate::Instant> = timeline.completed_writes().collect();
    let before = |time: &InstantTime| writes.iter().rev().find(|w| &w.time < time);
    let commits: Vec<&crate::Instant> = writes
        .iter()
        .copied()
        .filter(|i| &i.time > from && i.time <= to && !timeline.is_compaction(&i.time))
        .collect();
    // Each commit's changes need the table as of the write before it (and as of the commit):
    // refuse a window that starts before what the cleaner kept, rather than answer it from what
    // is left. Without a write before it on the timeline, the first commit must be readable
    // itself (older writes may have been archived).
    if let Some(first) = commits.first() {
        let at = before(&first.time).map_or(&first.time, |w| &w.time);
        if !timeline.savepoints().any(|s| &s.time == at)
            && let Some(earliest) = earliest_readable(storage, timeline).await?
            && at < &earliest
        {
            return Err(Error::Cleaned {
                at: at.clone(),
                earliest,
            });
        }
    }
    let mut batches = Vec::new();
    for commit in commits {
        let metadata = timeline.commit_metadata(storage, commit).await?;
        if metadata.compacted {
            continue;
        }
        let previous = before(&commit.time).map(|i| &i.time);
        let at = Moment {
            storage,
            timeline,
            view,
            ordering,
            columns: &columns,
            commit: &commit.time,
            previous,
        };
        for (partition, file_ids) in &metadata.partition_to_replace_file_ids {
            for file_id in file_ids {
                batches.extend(at.replaced(partition, file_id).await?);
            }
        }
        for stat in metadata.write_stats() {
            let partition = stat.partition_path.clone().unwrap_or_else(|| {
                let path = stat.path.as_deref().unwrap_or_default();
                path.rsplit_once('/').map_or("", |(p, _)| p).to_string()
            });
            match stat.cdc_stats.as_ref().filter(|c| !c.is_empty()) {
                Some(files) => {
                    for path in files.keys() {
                        batches.extend(at.cdc_file(path).await?);
                    }
                }
                None => batches.extend(at.inferred(&partition, &stat.file_id).await?),
            }
        }
    }
    Ok(ReadResult { batches, ..out })
}

/// One commit of a change query, and the write before it.
struct Moment<'a> {
    storage: &'a Storage,
    timeline: &'a Timeline,
    view: &'a FileSystemView,
    ordering: &'a Ordering,
    columns: &'a Columns,
    commit: &'a InstantTime,
    previous: Option<&'a InstantTime>,
}

impl Moment<'_> {
    /// The records of a `.cdc` file.
    async fn cdc_file(&self, path: &str) -> Result<Vec<RecordBatch>> {
        let bytes = self.storage.get(path).await?;
        let blocks = tokio::task::spawn_blocking(move || read_log_blocks(&bytes))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let columns = self.columns;
        let mut out = Vec::new();
        for block in blocks {
            match block.content {
                BlockContent::CdcData(records) => {
                    let column = |name: &str| {
                        records
                            .column_by_name(name)
                            .cloned()
                            .ok_or_else(|| Error::Schema {
                                column: name.to_string(),
                                reason: format!("missing from the change records of {path}"),
                            })
                    };
                    let ops = column(cdc::OP)?;
                    let ops: Vec<&str> = ops.as_string::<i32>().iter().flatten().collect();
                    let image = |name: &str| -> Result<ArrayRef> {
                        cdc::conform_image(&column(name)?, &columns.physical, &columns.logical)
                    };
                    out.push(cdc::records(
                        &columns.logical,
                        cdc::INSTANT,
                        self.commit.as_str(),
                        &ops,
                        image(cdc::BEFORE)?,
                        image(cdc::AFTER)?,
                    )?);
                }
                BlockContent::Corrupt { offset, reason } => {
                    return Err(Error::Schema {
                        column: String::new(),
                        reason: format!("{path}: damaged block at byte {offset}: {reason}"),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// A `d` for every record of a file group the commit replaced.
    async fn replaced(&self, partition: &str, file_id: &str) -> Result<Vec<RecordBatch>> {
        let before = self.group_as_of(partition, file_id, self.previous).await?;
        let rows: UInt32Array = (0..before.num_rows() as u32).map(Some).collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let data = &self.columns.logical;
        Ok(vec![cdc::records(
            data,
            cdc::INSTANT,
            self.commit.as_str(),
            &vec!["d"; rows.len()],
            self.image(&before, &rows)?,
            cdc::no_image(data, rows.len()),
        )?])
    }

    /// The changes of a file group the commit wrote, from its states before and after.
    async fn inferred(&self, partition: &str, file_id: &str) -> Result<Vec<RecordBatch>> {
        if self.view.file_group(partition, file_id).is_none() {
            return Err(Error::Unsupported(format!(
                "the changes of {} cannot be read: the cleaner removed file group {file_id} of \
                 partition {partition:?}",
                self.commit
            )));
        }
        let before = self.group_as_of(partition, file_id, self.previous).await?;
        let after = self
            .group_as_of(partition, file_id, Some(self.commit))
            .await?;
        let key_rows = |batch: &RecordBatch| -> HashMap<String, u32> {
            match batch.column_by_name(RECORD_KEY) {
                Some(keys) => keys
                    .as_string::<i32>()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, k)| Some((k?.to_string(), i as u32)))
                    .collect(),
                None => HashMap::new(),
            }
        };
        let mut stored = key_rows(&before);
        let (mut ops, mut old, mut new) = (Vec::new(), Vec::new(), Vec::new());
        if let (Some(keys), Some(times)) = (
            after.column_by_name(RECORD_KEY),
            after.column_by_name(COMMIT_TIME),
        ) {
            let (keys, times) = (keys.as_string::<i32>(), times.as_string::<i32>());
            for i in 0..after.num_rows() {
                let Some(key) = keys.is_valid(i).then(|| keys.value(i)) else {
                    continue;
                };
                let was = stored.remove(key);
                if times.is_valid(i) && times.value(i) == self.commit.as_str() {
                    ops.push(if was.is_some() { "u" } else { "i" });
                    old.push(was);
                    new.push(Some(i as u32));
                }
            }
        }
        // Keys stored before and gone after: deleted (or moved away) by the commit.
        let mut gone: Vec<u32> = stored.into_values().collect();
        gone.sort_unstable();
        for row in gone {
            ops.push("d");
            old.push(Some(row));
            new.push(None);
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![cdc::records(
            &self.columns.logical,
            cdc::INSTANT,
            self.commit.as_str(),
            &ops,
            self.image(&before, &old.into_iter().collect())?,
            self.image(&after, &new.into_iter().collect())?,
        )?])
    }

    /// Rows `rows` of a file group's records as an image column.
    fn image(&self, records: &RecordBatch, rows: &UInt32Array) -> Result<ArrayRef> {
        let columns: Vec<ArrayRef> = self
            .columns
            .physical
            .fields()
            .iter()
            .map(|f| {
                records
                    .column_by_name(f.name())
                    .cloned()
                    .unwrap_or_else(|| new_null_array(f.data_type(), records.num_rows()))
            })
            .collect();
        cdc::image(&self.columns.logical, &columns, rows)
    }

    /// A file group's records as of an instant (none before the table's first write), in the
    /// stored columns.
    async fn group_as_of(
        &self,
        partition: &str,
        file_id: &str,
        as_of: Option<&InstantTime>,
    ) -> Result<RecordBatch> {
        let stored = &self.columns.stored;
        let slice = as_of.and_then(|t| {
            self.view
                .file_group(partition, file_id)?
                .latest_slice(Some(t))
        });
        let Some(slice) = slice else {
            return Ok(RecordBatch::new_empty(stored.clone()));
        };
        let reader = SliceRead {
            storage: self.storage,
            timeline: self.timeline,
            ordering: self.ordering,
            as_of,
            window: None,
            read_optimized: false,
            columns: None,
            keys: None,
        };
        let batches = reader
            .read(&slice)
            .await?
            .iter()
            .map(|b| schema::align(b, stored))
            .collect::<Result<Vec<_>>>()?;
        Ok(concat_batches(stored, &batches)?)
    }
}
