//! Compaction of merge-on-read tables: a plan pins file slices that have log files
//! (`T.compaction.requested`), then each planned slice is merged — base records with the log
//! blocks on top, by the table's ordering rules — into a new base file named with `T`, and the
//! compaction completes as `T.commit` (`compacted: true`, operation `COMPACT`).
//!
//! Scheduling needs the writer lease: the plan must not race a write that appends to the
//! slices it pins. Once scheduled, writes go to the slice the compaction will create (see
//! `FileGroup::append_slice` in `inlet-table`), so execution may run beside the writer, under
//! the table services lease. Records keep their `_hoodie_commit_time` and `_hoodie_commit_seqno`
//! (Hudi's `preserveHoodieMetadata`), so incremental queries do not see compacted rows as new.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use inlet_table::commit::compaction_plan::{CompactionOperation, CompactionPlan};
use inlet_table::commit::metadata::{
    ARROW_SCHEMA_KEY, CHECKPOINT_KEY, CommitMetadata, KeyRange, KeyRanges, SCHEMA_KEY, WriteStat,
};
use inlet_table::commit::{Completion, Transaction};
use inlet_table::file_group::{
    BaseFile, FileSlice, FileSystemView, LogFile, SliceRead, WriteToken, file_path,
};
use inlet_table::write::{BaseFileWriter, Writer};
use inlet_table::{Action, Error, InstantTime, Result, State, Table, TableType, Timeline};

use crate::services::TableServices;

/// Which file slices a schedule picks. Every strategy only looks at slices with log files.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Every slice with log files (what `inlet compact` does by hand).
    All,
    /// Slices with at least this many delta commits (one log file each) since their base.
    DeltaCommits(usize),
    /// Slices whose log files add up to at least this fraction of their base file's size.
    LogRatio(f64),
}

impl Strategy {
    pub fn picks(&self, slice: &FileSlice<'_>) -> bool {
        let log_bytes: u64 = slice.log_files.iter().map(|l| l.size).sum();
        match self {
            _ if slice.log_files.is_empty() => false,
            Strategy::All => true,
            Strategy::DeltaCommits(n) => slice.log_files.len() >= *n,
            Strategy::LogRatio(ratio) => match slice.base_file {
                Some(base) if base.size > 0 => log_bytes as f64 / base.size as f64 >= *ratio,
                _ => true,
            },
        }
    }

    fn params(&self) -> BTreeMap<String, String> {
        let (name, value) = match self {
            Strategy::All => ("all", String::new()),
            Strategy::DeltaCommits(n) => ("delta-commits", n.to_string()),
            Strategy::LogRatio(r) => ("log-ratio", r.to_string()),
        };
        BTreeMap::from([
            ("inlet.strategy".to_string(), name.to_string()),
            ("inlet.strategy.value".to_string(), value),
        ])
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::All => f.write_str("all"),
            Strategy::DeltaCommits(n) => write!(f, "delta-commits:{n}"),
            Strategy::LogRatio(r) => write!(f, "log-ratio:{r}"),
        }
    }
}

impl FromStr for Strategy {
    type Err = Error;

    /// `all`, `delta-commits:N` (N ≥ 1) or `log-ratio:R` (R > 0, e.g. 0.2).
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || {
            Error::InvalidConfig(format!(
                "compaction strategy {s:?}: expected all, delta-commits:N (N >= 1) or log-ratio:R (R > 0)"
            ))
        };
        match s.split_once(':') {
            None if s == "all" => Ok(Strategy::All),
            Some(("delta-commits", n)) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Strategy::DeltaCommits(n)),
                _ => Err(invalid()),
            },
            Some(("log-ratio", r)) => match r.parse::<f64>() {
                Ok(r) if r > 0.0 && r.is_finite() => Ok(Strategy::LogRatio(r)),
                _ => Err(invalid()),
            },
            _ => Err(invalid()),
        }
    }
}

/// A scheduled compaction.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub instant: InstantTime,
    pub plan: CompactionPlan,
}

/// Plans a compaction of the slices the strategy picks; `None` when it picks none. File groups
/// that already have a pending compaction are left out.
pub async fn schedule(writer: &Writer, strategy: &Strategy) -> Result<Option<Scheduled>> {
    let table = writer.table();
    if table.properties().table_type != TableType::MergeOnRead {
        return Err(Error::Unsupported(
            "compaction applies to merge-on-read tables only".to_string(),
        ));
    }
    writer.check_lease().await?;
    let storage = table.storage();
    let timeline = table.timeline().await?;
    if let Some(pending) = timeline
        .pending()
        .find(|i| i.action != Action::Compaction && i.action.writes_data())
    {
        return Err(Error::CommitConflict {
            instant: pending.time.clone(),
            reason: "a write is in progress; compaction is scheduled between writes".to_string(),
        });
    }
    let view = FileSystemView::load(storage, &timeline).await?;
    let mut operations = Vec::new();
    for group in view.file_groups() {
        if group.pending_compaction.is_some() {
            continue;
        }
        let Some(slice) = group.latest_slice(None) else {
            continue;
        };
        if !strategy.picks(&slice) {
            continue;
        }
        let log_bytes: u64 = slice.log_files.iter().map(|l| l.size).sum();
        let base_bytes = slice.base_file.map_or(0, |b| b.size);
        operations.push(CompactionOperation {
            partition: group.partition.clone(),
            file_id: group.file_id.clone(),
            base_instant: slice.base_instant.clone(),
            base_file: slice.base_file.map(BaseFile::file_name),
            log_files: slice.log_files.iter().map(|l| l.file_name()).collect(),
            metrics: BTreeMap::from([
                ("TOTAL_LOG_FILES".to_string(), slice.log_files.len() as f64),
                ("TOTAL_LOG_FILES_SIZE".to_string(), log_bytes as f64),
                (
                    "TOTAL_IO_MB".to_string(),
                    (2 * base_bytes + log_bytes) as f64 / (1024.0 * 1024.0),
                ),
            ]),
        });
    }
    if operations.is_empty() {
        return Ok(None);
    }
    let plan = CompactionPlan {
        operations,
        strategy: strategy.params(),
    };
    let txn = Transaction::begin(table, &timeline, Action::Compaction, plan.encode()?).await?;
    let time = txn.instant_time().clone();
    tracing::info!(instant = %time, file_groups = plan.operations.len(), "Scheduled a compaction.");
    Ok(Some(Scheduled {
        instant: time,
        plan,
    }))
}

/// What a compaction did.
#[derive(Debug, Clone, Default)]
pub struct Compacted {
    pub instant: Option<InstantTime>,
    pub file_groups: usize,
    /// Records in the new base files.
    pub records: u64,
    pub log_files: u64,
    pub log_bytes: u64,
    /// Bytes of the new base files.
    pub bytes_written: u64,
    /// Base files left by an earlier attempt that crashed, deleted before this one.
    pub partial_files_removed: usize,
}

/// Executes the pending compaction at `time`: merges each planned slice into a new base file
/// (file groups in parallel, `write_parallelism` at a time, one file group in memory each) and
/// completes it. A compaction left inflight by a crash is executed again from the start.
pub async fn execute(services: &TableServices, time: &InstantTime) -> Result<Compacted> {
    inlet_table::hang_point!("compaction.execute");
    inlet_table::fail_with_error!("compaction.execute");
    let table = services.table();
    let storage = table.storage();
    let timeline = table.timeline().await?;
    let instant = timeline
        .get(time)
        .filter(|i| i.action == Action::Compaction && !i.is_completed())
        .cloned()
        .ok_or_else(|| Error::InstantNotFound(format!("pending compaction {time}")))?;
    let plan = CompactionPlan::load(storage, time).await?;
    let mut outcome = Compacted {
        instant: Some(time.clone()),
        ..Default::default()
    };
    if instant.state == State::Inflight {
        outcome.partial_files_removed = remove_partial_files(table, &plan, time).await?;
    }
    let mut txn = Transaction::resume(instant);
    txn.inflight(storage, Bytes::new()).await?;

    let ordering = table.properties().ordering()?;
    let parallelism = table.config().write_parallelism.max(1);
    // Indexes, not borrowed items: a closure over `&CompactionOperation` makes the future
    // non-`Send` for tokio::spawn (a higher-ranked lifetime the compiler cannot prove).
    let operations = &plan.operations;
    let results: Vec<Result<(WriteStat, Option<KeyRange>)>> =
        futures::stream::iter(0..operations.len())
            .map(|index| {
                compact_slice(table, &timeline, &ordering, &operations[index], time, index)
            })
            .buffer_unordered(parallelism)
            .collect()
            .await;
    let mut metadata = CommitMetadata {
        compacted: true,
        operation_type: Some("COMPACT".to_string()),
        ..Default::default()
    };
    let mut ranges = KeyRanges::new();
    for result in results {
        let (stat, range) = result?;
        if let Some(path) = &stat.path {
            ranges.insert(path.clone(), range);
        }
        outcome.file_groups += 1;
        outcome.records += stat.num_writes as u64;
        outcome.log_files += stat.total_log_files_compacted as u64;
        outcome.log_bytes += stat.total_log_size_compacted as u64;
        outcome.bytes_written += stat.file_size_in_bytes as u64;
        metadata.add_write_stat(stat);
    }
    metadata.set_key_ranges(&ranges);
    // The schema and source checkpoint of the writes the compaction covers stay the latest
    // recorded ones when the compaction is the latest commit.
    if let Some(latest) = timeline.as_of(time).latest_data_write() {
        let covered = timeline.commit_metadata(storage, latest).await?;
        for key in [SCHEMA_KEY, ARROW_SCHEMA_KEY, CHECKPOINT_KEY] {
            if let Some(value) = covered.extra_metadata.get(key) {
                metadata
                    .extra_metadata
                    .insert(key.to_string(), value.clone());
            }
        }
    }
    txn.complete(table, services.lease()?, Completion::commit(&metadata))
        .await?;
    tracing::info!(instant = %time, file_groups = outcome.file_groups, records = outcome.records, "Compaction completed.");
    Ok(outcome)
}

/// Deletes the base files an earlier, crashed attempt of this compaction wrote.
async fn remove_partial_files(
    table: &Table,
    plan: &CompactionPlan,
    time: &InstantTime,
) -> Result<usize> {
    let storage = table.storage();
    let mut removed = 0;
    let partitions: std::collections::BTreeSet<&str> = plan
        .operations
        .iter()
        .map(|op| op.partition.as_str())
        .collect();
    for partition in partitions {
        for entry in storage.list_dir(partition).await? {
            let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
            if BaseFile::parse(name).is_some_and(|b| &b.instant == time) {
                storage.delete(&entry.path).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Merges one planned slice into its new base file.
async fn compact_slice(
    table: &Table,
    timeline: &Timeline,
    ordering: &inlet_table::write::Ordering,
    op: &CompactionOperation,
    time: &InstantTime,
    index: usize,
) -> Result<(WriteStat, Option<KeyRange>)> {
    let storage = table.storage();
    let corrupt = |name: &str| Error::CorruptFile {
        path: file_path(&op.partition, name),
        reason: "not a Hudi file name in a compaction plan".to_string(),
    };
    let base_file = match &op.base_file {
        Some(name) => Some(BaseFile::parse(name).ok_or_else(|| corrupt(name))?),
        None => None,
    };
    let mut log_files = Vec::new();
    for name in &op.log_files {
        let mut log = LogFile::parse(name).ok_or_else(|| corrupt(name))?;
        log.size = storage
            .head(&file_path(&op.partition, name))
            .await?
            .map_or(0, |m| m.size);
        log_files.push(log);
    }
    let slice = FileSlice {
        partition: &op.partition,
        file_id: &op.file_id,
        base_instant: &op.base_instant,
        base_file: base_file.as_ref(),
        log_files: log_files.iter().collect(),
    };
    let read = SliceRead::latest(storage, timeline, ordering);
    let records = read.read(&slice).await?;
    let blocks_hint = log_files.len();

    let token = WriteToken {
        partition: index as u32,
        stage: 0,
        attempt: 0,
    };
    let name = BaseFile::new(&op.file_id, &token, time).file_name();
    let path = file_path(&op.partition, &name);
    let schema = match records.first() {
        Some(batch) => batch.schema(),
        None => match base_file.as_ref() {
            // Everything was deleted: an empty base file with the stored schema ends the slice.
            Some(base) => {
                inlet_table::read::read_base_file_schema(
                    storage,
                    &file_path(&op.partition, &base.file_name()),
                )
                .await?
            }
            None => {
                let logical = table
                    .schema()
                    .await?
                    .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
                inlet_table::schema::with_meta_columns(
                    inlet_table::schema::physical(&logical)?.as_ref(),
                )
            }
        },
    };
    let target = path.clone();
    let (bytes, rows, range) = tokio::task::spawn_blocking(move || {
        let mut writer = BaseFileWriter::new(schema.clone(), &target)?;
        for batch in &records {
            writer.write(batch)?;
        }
        let rows = writer.rows();
        let range = writer.key_range();
        Ok::<_, Error>((writer.finish()?, rows, range))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    let size = bytes.len() as u64;
    storage.put(&path, bytes).await?;
    inlet_table::failpoint!("compaction.after-first-file");

    let log_bytes: u64 = log_files.iter().map(|l| l.size).sum();
    let stat = WriteStat {
        num_writes: rows as i64,
        num_update_writes: rows as i64,
        total_log_files_compacted: log_files.len() as i64,
        total_log_size_compacted: log_bytes as i64,
        total_log_blocks: blocks_hint as i64,
        total_updated_records_compacted: rows as i64,
        ..WriteStat::new_file(
            &op.partition,
            &op.file_id,
            path,
            Some(&op.base_instant),
            size,
        )
    };
    Ok((stat, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse() {
        assert_eq!("all".parse::<Strategy>().ok(), Some(Strategy::All));
        assert_eq!(
            "delta-commits:3".parse::<Strategy>().ok(),
            Some(Strategy::DeltaCommits(3))
        );
        assert_eq!(
            "log-ratio:0.5".parse::<Strategy>().ok(),
            Some(Strategy::LogRatio(0.5))
        );
        for bad in [
            "",
            "delta-commits:0",
            "log-ratio:-1",
            "log-ratio:x",
            "newest",
        ] {
            let error = bad.parse::<Strategy>().expect_err(bad).to_string();
            assert!(error.contains("delta-commits:N"), "{error}");
        }
    }
}
