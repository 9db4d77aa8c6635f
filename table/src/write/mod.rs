//! Writes. A commit takes one batch of changes (upserts and deletes), plans which file group each
//! record goes to (bucket index) and writes every touched file group in parallel — copy-on-write:
//! a new base file merging the changes; merge-on-read: a new log file version holding them (a new
//! file group gets a base file) — then publishes all of it in one atomic commit with the caller's
//! metadata.

mod log_append;
mod merge;
mod parquet;
pub(crate) mod plan;

pub use crate::merge::Ordering;
pub use parquet::BaseFileWriter;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use futures::StreamExt;

use crate::FileId;
use crate::commit::lease::Lease;
use crate::commit::metadata::{ARROW_SCHEMA_KEY, CommitMetadata, KeyRanges, SCHEMA_KEY, WriteStat};
use crate::commit::rollback::{RollbackOutcome, rollback_completed, rollback_pending};
use crate::commit::{Completion, Requirement, Transaction};
use crate::error::{Error, Result};
use crate::file_group::{
    BaseFile, FileSystemView, LogFile, WriteToken, file_path, partition_metafile,
};
use crate::index;
use crate::index::global::{KeyIndex, LookupStats};
use crate::key::KeyGenerator;
use crate::properties::TableType;
use crate::schema;
use crate::snapshot::Snapshot;
use crate::storage::{Created, Storage};
use crate::table::Table;
use crate::timeline::{Action, InstantTime, Timeline};
use merge::{MergeContext, MergeTask, merge};
use plan::Plan;

/// What a write does with its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// New records. With a bucket index a key lives in exactly one file group, so an inserted key
    /// that exists is updated, never duplicated.
    Insert,
    /// Insert or update by record key; rows flagged in `deletes` are deletes.
    Upsert,
    /// Every row is a delete (only key, partition and ordering columns are needed).
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Insert => "INSERT",
            Operation::Upsert => "UPSERT",
            Operation::Delete => "DELETE",
        }
    }
}

/// One commit's worth of changes.
#[derive(Debug, Clone)]
pub struct Changes {
    pub batch: RecordBatch,
    /// Rows that are deletes (upserts only).
    pub deletes: Option<BooleanArray>,
    pub operation: Operation,
}

impl Changes {
    pub fn upsert(batch: RecordBatch) -> Self {
        Changes {
            batch,
            deletes: None,
            operation: Operation::Upsert,
        }
    }
}

/// A completed commit.
#[derive(Debug, Clone)]
pub struct Commit {
    pub instant: InstantTime,
    pub metadata: CommitMetadata,
    /// What finding the partitions of the commit's keys cost.
    pub lookup: LookupStats,
}

/// The table's single writer (holds the lease until closed or dropped).
#[derive(Debug)]
pub struct Writer {
    table: Table,
    lease: Option<Lease>,
    rolled_back: Vec<RollbackOutcome>,
    /// Which partition each key is stored in, with filters cached across commits.
    index: KeyIndex,
    /// The table as of this writer's latest commit, advanced commit by commit (`None` after a
    /// failure or a rollback: loaded afresh by the next commit).
    snapshot: Option<Snapshot>,
}

impl Writer {
    pub(crate) async fn open(table: Table) -> Result<Writer> {
        if table.properties().buckets.is_none() {
            return Err(Error::Unsupported(
                "inlet writes only tables with a bucket index (created by inlet)".to_string(),
            ));
        }
        let lease = Lease::acquire(table.storage(), table.config().lease_ttl).await?;
        let timeline = table.timeline().await?;
        let rolled_back = rollback_pending(&table, &lease, &timeline).await?;
        Ok(Writer {
            index: KeyIndex::new(table.config().index_cache_bytes),
            table,
            lease: Some(lease),
            rolled_back,
            snapshot: None,
        })
    }

    /// Writes that a dead writer left pending and that were rolled back on open.
    pub fn rolled_back(&self) -> &[RollbackOutcome] {
        &self.rolled_back
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The table as of this writer's latest commit (`None` before its first commit).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    fn lease(&self) -> Result<&Lease> {
        self.lease.as_ref().ok_or_else(|| Error::WriterLeaseLost {
            table: self.table.storage().uri().to_string(),
            reason: "the writer was closed".to_string(),
        })
    }

    /// Applies `changes` in one commit, with `extra_metadata` (e.g. a source checkpoint) stored in
    /// the same atomic commit. On any error nothing becomes visible and the files written so far
    /// are rolled back.
    pub async fn commit(
        &mut self,
        changes: Changes,
        extra_metadata: BTreeMap<String, String>,
    ) -> Result<Commit> {
        self.lease()?;
        let table = self.table.clone();
        let storage = table.storage();
        let started = std::time::Instant::now();
        let mut snapshot = self.current_snapshot().await?;
        let timeline = snapshot.timeline().clone();
        let mut prepared = prepare(&table, snapshot.schema(), &changes)?;
        let prepared_at = started.elapsed();
        let avro_schema = prepared.avro_schema.clone();
        let arrow_schema =
            serde_json::to_string(prepared.logical_schema.as_ref()).map_err(|e| Error::Schema {
                column: String::new(),
                reason: e.to_string(),
            })?;
        // A fresh writer of a partitioned table learns the key ranges of the files from the
        // writes on the timeline, when that is fewer requests than reading their footers.
        if !table.properties().partition_fields.is_empty()
            && snapshot.key_ranges().is_none()
            && 2 * timeline.completed_writes().count() < snapshot.view().live_file_groups().count()
        {
            snapshot.load_key_ranges().await?;
        }
        // A key lives in one partition: deletes go where their keys are, moves delete the old.
        let (relocation, lookup) = self
            .index
            .relocation(&snapshot, &prepared.plan, &prepared.data_schema)
            .await?;
        let view = snapshot.view();
        prepared.batch = prepared.plan.relocate(prepared.batch, &relocation)?;
        let located_at = started.elapsed();

        let action = match table.properties().table_type {
            TableType::CopyOnWrite => Action::Commit,
            TableType::MergeOnRead => Action::DeltaCommit,
        };
        let mut txn = Transaction::begin(&table, &timeline, action, Bytes::new()).await?;
        txn.require(Requirement::LatestWrite(
            timeline.latest_data_write().map(|i| i.time.clone()),
        ));
        let operation = changes.operation.name().to_string();
        let workload = CommitMetadata {
            operation_type: Some(operation.clone()),
            ..Default::default()
        };
        let result = async {
            let tasks = plan_file_groups(&table, view, &prepared, txn.instant_time());
            // The inflight file names every file the write may create, so that a rollback
            // after a crash finds them all (log files carry no instant in their names).
            let workload = CommitMetadata {
                partition_to_write_stats: planned_stats(&tasks),
                ..workload
            };
            txn.inflight(storage, Bytes::from(workload.to_json()))
                .await?;
            let (stats, ranges) =
                write_file_groups(&table, tasks, prepared, txn.instant_time()).await?;
            let mut metadata = CommitMetadata {
                operation_type: Some(operation),
                extra_metadata,
                ..Default::default()
            };
            metadata
                .extra_metadata
                .insert(SCHEMA_KEY.to_string(), avro_schema);
            metadata
                .extra_metadata
                .insert(ARROW_SCHEMA_KEY.to_string(), arrow_schema);
            for stat in stats {
                metadata.add_write_stat(stat);
            }
            metadata.set_key_ranges(&ranges);
            Ok::<_, Error>(metadata)
        }
        .await;
        let metadata = match result {
            Ok(metadata) => metadata,
            Err(e) => {
                self.index.forget();
                if let Err(rollback_error) = txn.abort(&table, self.lease()?).await {
                    tracing::error!(error = %rollback_error, "Rolling back a failed write failed; the next writer will roll it back.");
                }
                return Err(e);
            }
        };
        crate::failpoint!("commit.before-complete");
        crate::hang_point!("commit.before-complete");
        let written_at = started.elapsed();
        let commit = self.complete(txn, snapshot, metadata, lookup).await;
        tracing::debug!(
            ?prepared_at,
            ?located_at,
            ?written_at,
            completed_at = ?started.elapsed(),
            "commit phases (elapsed at the end of each)"
        );
        commit
    }

    /// Empties the table in one replace commit (Hudi's `insert_overwrite_table` with no rows):
    /// every live file group is replaced, and no table data is read. `extra_metadata` (a source
    /// checkpoint) goes into the same atomic commit. The schema stays the table's.
    pub async fn truncate(&mut self, extra_metadata: BTreeMap<String, String>) -> Result<Commit> {
        self.lease()?;
        let table = self.table.clone();
        let storage = table.storage();
        let snapshot = self.current_snapshot().await?;
        let timeline = snapshot.timeline().clone();
        let mut replaced: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for group in snapshot.view().live_file_groups() {
            replaced
                .entry(group.partition.to_string())
                .or_default()
                .push(group.file_id.to_string());
        }
        let operation = crate::commit::replace::INSERT_OVERWRITE_TABLE.to_string();
        let mut txn = Transaction::begin(
            &table,
            &timeline,
            Action::ReplaceCommit,
            crate::commit::replace::requested(&operation)?,
        )
        .await?;
        txn.require(Requirement::LatestWrite(
            timeline.latest_data_write().map(|i| i.time.clone()),
        ));
        let workload = CommitMetadata {
            operation_type: Some(operation.clone()),
            ..Default::default()
        };
        txn.inflight(storage, Bytes::from(workload.to_json()))
            .await?;
        let mut metadata = CommitMetadata {
            partition_to_replace_file_ids: replaced,
            operation_type: Some(operation),
            extra_metadata,
            ..Default::default()
        };
        // hudi-rs takes the schema from the latest commit: a replace commit without write stats
        // must carry it.
        if let Some(logical) = snapshot.schema() {
            let physical = schema::physical(logical)?;
            metadata.extra_metadata.insert(
                SCHEMA_KEY.to_string(),
                schema::avro_schema_json(&table.properties().name, &physical)?,
            );
            metadata.extra_metadata.insert(
                ARROW_SCHEMA_KEY.to_string(),
                serde_json::to_string(logical.as_ref()).map_err(|e| Error::Schema {
                    column: String::new(),
                    reason: e.to_string(),
                })?,
            );
        }
        self.complete(txn, snapshot, metadata, LookupStats::default())
            .await
    }

    /// Completes a write: on success the snapshot advances by it; a failed completion leaves
    /// the instant pending, which is rolled back now if this writer still may.
    async fn complete(
        &mut self,
        txn: Transaction,
        mut snapshot: Snapshot,
        metadata: CommitMetadata,
        lookup: LookupStats,
    ) -> Result<Commit> {
        let table = self.table.clone();
        let time = txn.instant_time().clone();
        match txn
            .complete(&table, self.lease()?, Completion::commit(&metadata))
            .await
        {
            Ok(completed) => {
                snapshot.advance(&completed, Some(&metadata));
                self.snapshot = Some(snapshot);
                Ok(Commit {
                    instant: time,
                    metadata,
                    lookup,
                })
            }
            Err(e) => {
                self.index.forget();
                let timeline = Timeline::load(table.storage()).await?;
                if let Some(pending) = timeline.get(&time).filter(|i| !i.is_completed()).cloned()
                    && self.lease()?.check().await.is_ok()
                {
                    crate::commit::rollback::rollback(&table, self.lease()?, &timeline, &pending)
                        .await?;
                }
                Err(e)
            }
        }
    }

    /// The stored records of the keys of `rows` of `batch` (columns named as written, like
    /// `batch`), read from the file groups that can hold them only: what a change that carries
    /// only some columns (PostgreSQL's unchanged TOAST values) is completed from.
    pub async fn lookup(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
    ) -> Result<(crate::read::ReadResult, LookupStats)> {
        self.lease()?;
        let snapshot = self.current_snapshot().await?;
        let normalized = schema::normalize(batch)?;
        let physical = schema::physical(&normalized.schema())?;
        let named = schema::rename(&normalized, &physical)?;
        let keygen = KeyGenerator::new(self.table.properties());
        let all = keygen.record_keys(&named)?;
        let keys: std::collections::HashSet<crate::RecordKey> = rows
            .iter()
            .filter(|&&r| all.is_valid(r))
            .map(|&r| crate::RecordKey::from_storage(all.value(r)))
            .collect();
        let found = snapshot.lookup(&mut self.index, &keys).await;
        self.snapshot = Some(snapshot);
        found
    }

    /// This writer's snapshot, brought up to date (loaded on first use).
    async fn current_snapshot(&mut self) -> Result<Snapshot> {
        match self.snapshot.take() {
            Some(mut snapshot) => {
                snapshot.refresh().await?;
                Ok(snapshot)
            }
            None => Snapshot::load(&self.table).await,
        }
    }

    /// Fails unless this writer still holds the table's writer lease.
    pub async fn check_lease(&self) -> Result<()> {
        self.lease()?.check().await
    }

    /// Rolls back the latest completed write (see [`rollback_completed`]).
    pub async fn rollback(&mut self, time: &InstantTime) -> Result<RollbackOutcome> {
        self.check_lease().await?;
        let timeline = self.table.timeline().await?;
        self.index.forget();
        self.snapshot = None;
        rollback_completed(&self.table, self.lease()?, &timeline, time).await
    }

    /// Restores the table to the savepoint at `savepoint` (see [`crate::commit::restore`]); the
    /// caller also holds the table services lease.
    pub async fn restore(
        &mut self,
        savepoint: &InstantTime,
    ) -> Result<crate::commit::restore::Restored> {
        self.check_lease().await?;
        self.index.forget();
        self.snapshot = None;
        crate::commit::restore::restore(&self.table, self.lease()?, savepoint).await
    }

    /// Releases the lease.
    pub async fn close(mut self) -> Result<()> {
        match self.lease.take() {
            Some(lease) => lease.release().await,
            None => Ok(()),
        }
    }
}

/// The incoming batch made ready to merge: storage types, the evolved table schema, the plan.
#[derive(Debug)]
struct Prepared {
    /// The rows, with the column names of the files (see [`schema::physical`]).
    batch: RecordBatch,
    /// The table's data schema after this write, as the files name the columns.
    data_schema: SchemaRef,
    /// The same with the names the columns were written with (recorded in the commit).
    logical_schema: SchemaRef,
    avro_schema: String,
    /// The Avro schema with the meta fields, for log block headers.
    log_schema: String,
    /// The CDC record schema of copy-on-write change data capture tables.
    cdc_schema: Option<String>,
    plan: Plan,
}

fn prepare(table: &Table, current: Option<&SchemaRef>, changes: &Changes) -> Result<Prepared> {
    let props = table.properties();
    let batch = schema::normalize(&changes.batch)?;
    if let Some(meta) = batch
        .schema()
        .fields()
        .iter()
        .find(|f| schema::is_meta_column(f.name()))
    {
        return Err(Error::Schema {
            column: meta.name().clone(),
            reason: "meta columns cannot be written".to_string(),
        });
    }
    let current = current
        .cloned()
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let logical_schema = schema::evolve(&current, &batch.schema())?;
    let batch = schema::align(&batch, &logical_schema)?;
    // Files and the Avro schema use Avro-valid names; the commit records the written ones.
    let data_schema = schema::physical(&logical_schema)?;
    let batch = schema::rename(&batch, &data_schema)?;
    let deletes = match (changes.operation, &changes.deletes) {
        (Operation::Delete, _) => BooleanArray::from(vec![true; batch.num_rows()]),
        (_, Some(deletes)) if deletes.len() == batch.num_rows() => deletes.clone(),
        (_, Some(deletes)) => {
            return Err(Error::InvalidConfig(format!(
                "{} delete flags for {} rows",
                deletes.len(),
                batch.num_rows()
            )));
        }
        (_, None) => BooleanArray::from(vec![false; batch.num_rows()]),
    };
    let ordering = props.ordering()?;
    let keygen = KeyGenerator::new(props);
    let buckets = props.buckets.unwrap_or(1);
    let plan = plan::plan(&batch, deletes, &keygen, buckets, &ordering)?;
    let avro_schema = schema::avro_schema_json(&props.name, &data_schema)?;
    let log_schema =
        schema::avro_schema_json(&props.name, &schema::with_meta_columns(&data_schema))?;
    let cdc_schema = (props.cdc()? && props.table_type == TableType::CopyOnWrite)
        .then(|| crate::cdc::avro_schema(&avro_schema))
        .transpose()?;
    Ok(Prepared {
        batch,
        data_schema,
        logical_schema,
        avro_schema,
        log_schema,
        cdc_schema,
        plan,
    })
}

/// One file group to rewrite.
#[derive(Debug)]
struct Task {
    index: usize,
    partition: String,
    file_id: FileId,
    /// The file group's latest slice, `None` for a new file group.
    slice: Option<SliceInfo>,
    rows: Vec<usize>,
    /// The file the write creates: a base file, or a log file of `slice` (merge-on-read).
    file: PlannedFile,
}

#[derive(Debug, Clone)]
enum PlannedFile {
    Base(BaseFile),
    Log(LogFile),
}

impl PlannedFile {
    fn name(&self) -> String {
        match self {
            PlannedFile::Base(base) => base.file_name(),
            PlannedFile::Log(log) => log.file_name(),
        }
    }
}

/// What a write needs of a file group's latest slice.
#[derive(Debug, Clone)]
struct SliceInfo {
    base_instant: InstantTime,
    base_file: Option<BaseFile>,
    log_files: Vec<LogFile>,
}

/// Which file group each planned group of rows goes to, and the file it will write there.
fn plan_file_groups(
    table: &Table,
    view: &FileSystemView,
    prepared: &Prepared,
    instant: &InstantTime,
) -> Vec<Task> {
    let merge_on_read = table.properties().table_type == TableType::MergeOnRead;
    // Existing file group of each (partition, bucket) written: only those partitions are looked
    // at, so the cost does not grow with the table.
    let mut existing: BTreeMap<(&str, u32), (&FileId, Option<SliceInfo>)> = BTreeMap::new();
    let partitions: BTreeSet<&str> = prepared
        .plan
        .groups
        .keys()
        .map(|(partition, _)| partition.as_str())
        .collect();
    for partition in partitions {
        for group in view.live_file_groups_in(partition) {
            if let Some(bucket) = index::bucket_of_file_id(&group.file_id) {
                let latest = group.append_slice().map(|s| SliceInfo {
                    base_instant: s.base_instant.clone(),
                    base_file: s.base_file.cloned(),
                    log_files: s.log_files.into_iter().cloned().collect(),
                });
                existing.insert((group.partition.as_str(), bucket), (&group.file_id, latest));
            }
        }
    }
    let mut tasks = Vec::new();
    for (index, ((partition, bucket), rows)) in prepared.plan.groups.iter().enumerate() {
        let (file_id, slice) = match existing.get(&(partition.as_str(), *bucket)) {
            Some((file_id, slice)) => ((*file_id).clone(), slice.clone()),
            None => (index::new_bucket_file_id(*bucket), None),
        };
        let token = WriteToken {
            partition: index as u32,
            stage: 0,
            attempt: 0,
        };
        let file = match &slice {
            Some(slice) if merge_on_read => {
                let version = slice
                    .log_files
                    .iter()
                    .map(|l| l.version)
                    .max()
                    .map_or(LogFile::FIRST_VERSION, |v| v + 1);
                PlannedFile::Log(LogFile::new(&file_id, &slice.base_instant, version, &token))
            }
            _ => PlannedFile::Base(BaseFile::new(&file_id, &token, instant)),
        };
        tasks.push(Task {
            index,
            partition: partition.clone(),
            file_id,
            slice,
            rows: rows.clone(),
            file,
        });
    }
    tasks
}

/// The inflight workload: one stat per planned file, naming it.
fn planned_stats(tasks: &[Task]) -> BTreeMap<String, Vec<WriteStat>> {
    let mut stats: BTreeMap<String, Vec<WriteStat>> = BTreeMap::new();
    for task in tasks {
        stats
            .entry(task.partition.clone())
            .or_default()
            .push(WriteStat {
                file_id: task.file_id.to_string(),
                path: Some(file_path(&task.partition, &task.file.name())),
                prev_commit: Some(
                    task.slice
                        .as_ref()
                        .map_or_else(|| "null".to_string(), |s| s.base_instant.to_string()),
                ),
                partition_path: Some(task.partition.clone()),
                ..Default::default()
            });
    }
    stats
}

async fn write_file_groups(
    table: &Table,
    tasks: Vec<Task>,
    prepared: Prepared,
    instant: &InstantTime,
) -> Result<(Vec<WriteStat>, KeyRanges)> {
    let storage = table.storage();
    let new_partitions: BTreeSet<String> = tasks
        .iter()
        .filter(|t| t.slice.is_none())
        .map(|t| t.partition.clone())
        .collect();

    let ctx = Arc::new(MergeContext {
        instant: instant.clone(),
        incoming: prepared.batch,
        plan: prepared.plan,
        data_schema: prepared.data_schema,
        ordering_field: table.properties().ordering_field.clone(),
        log_schema: (table.properties().table_type == TableType::MergeOnRead)
            .then_some(prepared.log_schema),
        avro_data_blocks: table.properties().avro_data_blocks()?,
        // Merge-on-read writes no `.cdc` files (see `crate::cdc`).
        cdc_schema: prepared.cdc_schema,
    });
    let parallelism = table.config().write_parallelism.max(1);
    // Every rewrite runs to its end even when another fails: a file write already handed to a
    // blocking thread cannot be cancelled, and the rollback must see every file that was written.
    let results: Vec<Result<Option<Written>>> = futures::stream::iter(tasks)
        .map(|task| rewrite(storage, ctx.clone(), task))
        .buffer_unordered(parallelism)
        .collect()
        .await;
    let stats = results.into_iter().collect::<Result<Vec<_>>>()?;

    for partition in new_partitions {
        let (path, text) = partition_metafile(&partition, instant);
        if storage.head(&path).await?.is_none() {
            storage.put(&path, Bytes::from(text)).await?;
        }
    }
    let mut ranges = KeyRanges::new();
    let mut stats: Vec<WriteStat> = stats
        .into_iter()
        .flatten()
        .map(|(stat, range)| {
            if let Some(path) = &stat.path {
                ranges.insert(path.clone(), range);
            }
            stat
        })
        .collect();
    stats.sort_by(|a, b| (&a.partition_path, &a.file_id).cmp(&(&b.partition_path, &b.file_id)));
    Ok((stats, ranges))
}

/// A written file's stat and key range.
type Written = (WriteStat, Option<(String, String)>);

/// Writes one file group's changes: a new base file (copy-on-write, or a new merge-on-read file
/// group), or a log file appended to its latest slice (merge-on-read). `None` when nothing changes.
async fn rewrite(storage: &Storage, ctx: Arc<MergeContext>, task: Task) -> Result<Option<Written>> {
    if let (PlannedFile::Log(log_file), Some(slice)) = (task.file.clone(), task.slice.clone()) {
        return append(storage, ctx, task, slice, log_file).await;
    }
    let previous = task.slice.as_ref().and_then(|s| s.base_file.clone());
    let stored = match &previous {
        Some(base) => {
            let path = file_path(&task.partition, &base.file_name());
            Some((storage.get(&path).await?, path))
        }
        None => None,
    };
    let name = task.file.name();
    let path = file_path(&task.partition, &name);
    // Merging and encoding are CPU work: keep them off the async executor.
    let (partition, index, rows, target) =
        (task.partition.clone(), task.index, task.rows, path.clone());
    let merged = tokio::task::spawn_blocking(move || {
        let task = MergeTask {
            stored,
            rows: &rows,
            partition: &partition,
            file_name: &name,
            path: &target,
            task: index,
        };
        merge(&ctx, &task)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    let Some(merged) = merged else {
        return Ok(None);
    };
    let size = merged.bytes.len() as u64;
    storage.put(&path, merged.bytes).await?;
    // The `.cdc` file follows the new base file: named with this commit's instant and the base
    // file's write token, so that a rollback finds it as it finds the base file.
    let cdc_stats = match (merged.cdc, &task.file) {
        (Some(bytes), PlannedFile::Base(base)) => {
            let log = LogFile {
                file_id: task.file_id.clone(),
                base_instant: base.instant.clone(),
                version: LogFile::FIRST_VERSION,
                write_token: base.write_token.clone(),
                cdc: true,
                size: 0,
            };
            let cdc_path = file_path(&task.partition, &log.file_name());
            let cdc_size = bytes.len() as i64;
            storage.put(&cdc_path, bytes).await?;
            Some(BTreeMap::from([(cdc_path, cdc_size)]))
        }
        _ => None,
    };
    let prev = previous.as_ref().map(|b| &b.instant);
    let stat = WriteStat {
        cdc_stats,
        num_writes: merged.rows as i64,
        num_deletes: merged.deletes as i64,
        num_update_writes: merged.updates as i64,
        num_inserts: merged.inserts as i64,
        ..WriteStat::new_file(&task.partition, &task.file_id, path, prev, size)
    };
    Ok(Some((stat, merged.key_range)))
}

/// Appends one file group's changes as a new log file version of its latest slice.
async fn append(
    storage: &Storage,
    ctx: Arc<MergeContext>,
    task: Task,
    slice: SliceInfo,
    log_file: LogFile,
) -> Result<Option<Written>> {
    let instant = ctx.instant.clone();
    let version = log_file.version;
    let path = file_path(&task.partition, &log_file.file_name());
    let (partition, file_id, index, rows) = (
        task.partition.clone(),
        task.file_id.clone(),
        task.index,
        task.rows,
    );
    let appended = tokio::task::spawn_blocking(move || {
        let schema = ctx.log_schema.as_deref().unwrap_or_default();
        log_append::encode_log_append(&ctx, &rows, &partition, &file_id, index, schema)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    let Some(appended) = appended else {
        return Ok(None);
    };
    let size = appended.bytes.len() as u64;
    if storage.put_if_absent(&path, appended.bytes).await? == Created::AlreadyExists {
        return Err(Error::CommitConflict {
            instant: instant.clone(),
            reason: format!("log file {path} already exists"),
        });
    }
    let mut log_files: Vec<String> = slice.log_files.iter().map(LogFile::file_name).collect();
    log_files.push(log_file.file_name());
    let records = (appended.upserts + appended.deletes) as i64;
    let stat = WriteStat {
        num_writes: records,
        num_deletes: appended.deletes as i64,
        // With a bucket index every record of an existing file group is an update of it.
        num_update_writes: appended.upserts as i64,
        total_log_blocks: appended.blocks as i64,
        total_log_records: records,
        base_file: Some(slice.base_file.map(|b| b.file_name()).unwrap_or_default()),
        log_files: Some(log_files),
        log_version: Some(i64::from(version)),
        log_offset: Some(0),
        ..WriteStat::new_file(
            &task.partition,
            &task.file_id,
            path,
            Some(&slice.base_instant),
            size,
        )
    };
    Ok(Some((stat, appended.key_range)))
}
