//! A table's state, loaded once: its timeline, file-system view and schema, pinned to the
//! instants it has seen. Readers and writers take one instead of listing the table for every
//! read or commit.
//!
//! A long-running writer keeps its snapshot current without listing the table again:
//! [`Snapshot::advance`] applies the commit it just made (its write stats name every file it
//! wrote), and [`Snapshot::refresh`] lists only `.hoodie/` and applies what other processes
//! completed since: a compaction's new base files, a clean's deleted files (from their
//! metadata), a newly scheduled compaction's pins (from its plan). A rollback or restore by
//! another process, or an instant that vanished from the timeline before its time (not
//! archived), makes it load the view afresh, which is rare and always correct.

use std::collections::HashSet;
use std::sync::Arc;

use apache_avro::types::Value;
use arrow::datatypes::SchemaRef;

use crate::RecordKey;
use crate::commit::avro_value::{field, field_strings};
use crate::commit::compaction_plan::CompactionPlan;
use crate::commit::metadata::{CommitMetadata, KeyRanges};
use crate::commit::read_instant;
use crate::error::{Error, Result};
use crate::file_group::FileSystemView;
use crate::index::global::{KeyIndex, LookupStats};
use crate::merge::Ordering;
use crate::read::{self, Query, ReadResult};
use crate::schema;
use crate::storage::Storage;
use crate::table::Table;
use crate::timeline::{Action, Instant, State, Timeline};

/// A table's timeline, file-system view and schema as of the instants it has seen.
#[derive(Debug, Clone)]
pub struct Snapshot {
    table: Table,
    timeline: Timeline,
    view: FileSystemView,
    schema: Option<SchemaRef>,
    /// How versions of a record are ordered (the table's ordering field).
    ordering: Ordering,
    /// The key ranges recorded by the completed writes on the timeline, once loaded (see
    /// [`Snapshot::load_key_ranges`]).
    key_ranges: Option<KeyRanges>,
}

impl Snapshot {
    /// Lists the timeline and the table's files once.
    pub async fn load(table: &Table) -> Result<Snapshot> {
        let storage = table.storage();
        let timeline = Timeline::load(storage).await?;
        let view = FileSystemView::load(storage, &timeline).await?;
        let schema = read::table_schema(storage, &timeline).await?;
        Ok(Snapshot {
            table: table.clone(),
            timeline,
            view,
            schema,
            ordering: table.properties().ordering()?,
            key_ranges: None,
        })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub fn view(&self) -> &FileSystemView {
        &self.view
    }

    /// The data schema (no meta columns) with the names its columns were written with; `None`
    /// before the first write.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// How versions of a record are ordered (the table's ordering field).
    pub fn ordering(&self) -> &Ordering {
        &self.ordering
    }

    /// The key ranges of files recorded by the writes on the timeline, if loaded.
    pub fn key_ranges(&self) -> Option<&KeyRanges> {
        self.key_ranges.as_ref()
    }

    /// Reads the key ranges each completed write on the timeline recorded for its files (one
    /// request per write): with them a writer reads a file group's filters only once a key falls
    /// in its range. Kept up to date from then on.
    pub async fn load_key_ranges(&mut self) -> Result<()> {
        let storage = self.table.storage();
        let mut ranges = KeyRanges::new();
        for instant in self.timeline.completed_writes() {
            let metadata = self.timeline.commit_metadata(storage, instant).await?;
            if let Some(recorded) = metadata.key_ranges() {
                ranges.extend(recorded);
            }
        }
        self.key_ranges = Some(ranges);
        Ok(())
    }

    /// Runs a query on this snapshot (`read_optimized`: base files only), collecting the rows.
    pub async fn read(&self, query: &Query, read_optimized: bool) -> Result<ReadResult> {
        let stream = self.read_stream(query, read_optimized).await?;
        Ok(ReadResult {
            schema: stream.schema,
            batches: futures::TryStreamExt::try_collect(stream.batches).await?,
        })
    }

    /// The changes of the commits in `(from, to]`, with before and after images (see
    /// [`read::read_changes`]).
    pub async fn read_changes(
        &self,
        from: &crate::InstantTime,
        to: Option<&crate::InstantTime>,
    ) -> Result<ReadResult> {
        read::read_changes(
            self.table.storage(),
            &self.timeline,
            &self.view,
            &self.ordering,
            from,
            to,
        )
        .await
    }

    /// Runs a query on this snapshot as a stream of batches, file slice by file slice (memory
    /// bounded by a few file groups, not by the table).
    pub async fn read_stream(
        &self,
        query: &Query,
        read_optimized: bool,
    ) -> Result<read::ReadStream<'_>> {
        let scope = read::Scope {
            read_optimized,
            ..Default::default()
        };
        self.read_stream_of(query, scope).await
    }

    /// [`Snapshot::read_stream`] of part of the table (see [`read::Scope`]).
    pub async fn read_stream_of(
        &self,
        query: &Query,
        scope: read::Scope<'_>,
    ) -> Result<read::ReadStream<'_>> {
        read::read_stream(
            self.table.storage(),
            &self.timeline,
            &self.view,
            &self.ordering,
            query,
            scope,
        )
        .await
    }

    /// The stored records of `keys` (record keys, as `_hoodie_record_key` holds them), reading
    /// only the file groups that may hold them (bucket, then each file's key filters, cached in
    /// `index`). Columns as [`Snapshot::read`] returns them. Memory: the records found, plus one
    /// file group being read at a time.
    pub async fn lookup(
        &self,
        index: &mut KeyIndex,
        keys: &HashSet<RecordKey>,
    ) -> Result<(ReadResult, LookupStats)> {
        let (batches, stats) = index.lookup(self, keys).await?;
        let logical = self
            .schema
            .clone()
            .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
        let physical = schema::with_meta_columns(schema::physical(&logical)?.as_ref());
        let logical = schema::with_meta_columns(&logical);
        let batches = batches
            .iter()
            .map(|b| schema::rename(&schema::align(b, &physical)?, &logical))
            .collect::<Result<Vec<_>>>()?;
        Ok((
            ReadResult {
                schema: logical,
                batches,
            },
            stats,
        ))
    }

    /// Applies an action this process just completed, with its commit metadata when it has one.
    pub fn advance(&mut self, instant: &Instant, commit: Option<&CommitMetadata>) {
        if let Some(metadata) = commit {
            self.apply_write(instant, metadata);
        }
        self.timeline.record(instant.clone());
    }

    /// Lists `.hoodie/` and applies every instant completed (or compaction scheduled) since this
    /// snapshot was taken.
    pub async fn refresh(&mut self) -> Result<()> {
        let storage = self.table.storage().clone();
        let now = Timeline::load(&storage).await?;
        // Instants gone from the timeline that archival did not take (archival only takes
        // instants older than every one left) were rolled back or restored away.
        let earliest = now.instants().first().map(|i| i.time.clone());
        let vanished = self.timeline.instants().iter().any(|old| {
            now.get(&old.time).is_none() && earliest.as_ref().is_some_and(|e| &old.time > e)
        });
        let mut reload = vanished;
        let mut changes = Vec::new();
        for instant in now.instants() {
            let known = self.timeline.get(&instant.time);
            if known.is_some_and(|k| k.state == instant.state) {
                continue;
            }
            match (instant.action, instant.state) {
                (Action::Rollback | Action::Restore, State::Completed) => reload = true,
                (_, State::Completed) => changes.push(instant.clone()),
                (Action::Compaction, State::Requested) if known.is_none() => {
                    changes.push(instant.clone())
                }
                _ => {}
            }
        }
        if reload {
            *self = Snapshot::load(&self.table).await?;
            return Ok(());
        }
        for instant in changes {
            match instant.action {
                Action::Compaction => {
                    let plan = CompactionPlan::load(&storage, &instant.time).await?;
                    self.view.pin(&plan, &instant.time);
                }
                action if action.writes_data() => {
                    let metadata = now.commit_metadata(&storage, &instant).await?;
                    self.apply_write(&instant, &metadata);
                    if metadata.arrow_schema().is_none() && !metadata.compacted {
                        // A write by another engine: its schema is in its files.
                        self.schema = read::table_schema(&storage, &now).await?;
                    }
                }
                Action::Clean => self.apply_clean(&storage, &instant).await?,
                _ => {}
            }
        }
        self.timeline = now;
        Ok(())
    }

    fn apply_write(&mut self, instant: &Instant, metadata: &CommitMetadata) {
        if self.timeline.is_compaction(&instant.time) || metadata.compacted {
            self.view.unpin(&instant.time);
        }
        for stat in metadata.write_stats() {
            let Some(path) = stat.path.as_deref() else {
                continue;
            };
            let (partition, name) = path.rsplit_once('/').unwrap_or(("", path));
            self.view
                .add_file(partition, name, stat.file_size_in_bytes.max(0) as u64);
            for (cdc, size) in stat.cdc_stats.iter().flatten() {
                let (partition, name) = cdc.rsplit_once('/').unwrap_or(("", cdc));
                self.view.add_file(partition, name, (*size).max(0) as u64);
            }
        }
        for (partition, file_ids) in &metadata.partition_to_replace_file_ids {
            for file_id in file_ids {
                self.view.replace(partition, file_id, &instant.time);
            }
        }
        if let (Some(ranges), Some(recorded)) = (self.key_ranges.as_mut(), metadata.key_ranges()) {
            ranges.extend(recorded);
        }
        if let Some(schema) = metadata.arrow_schema() {
            self.schema = Some(Arc::new(schema));
        }
    }

    /// Drops the files a completed clean deleted (`successDeleteFiles` per partition of its
    /// Avro `HoodieCleanMetadata`).
    async fn apply_clean(&mut self, storage: &Storage, clean: &Instant) -> Result<()> {
        let Some(bytes) = read_instant(storage, clean).await? else {
            return Ok(());
        };
        let avro = |e: apache_avro::Error| Error::Avro(format!("{clean}: {e}"));
        for record in apache_avro::Reader::new(&bytes[..]).map_err(avro)? {
            let record = record.map_err(avro)?;
            let Some(Value::Map(partitions)) = field(&record, "partitionMetadata") else {
                continue;
            };
            for (partition, metadata) in partitions {
                for path in field_strings(metadata, "successDeleteFiles") {
                    let name = path.rsplit('/').next().unwrap_or(&path);
                    self.view.remove_file(partition, name);
                }
            }
        }
        Ok(())
    }
}
