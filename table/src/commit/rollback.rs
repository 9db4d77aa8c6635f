//! Rollback of a write that never completed: its data files are deleted, a rollback instant
//! (`R.rollback.requested` → `.inflight` → `R.rollback`, Avro `HoodieRollbackPlan` and
//! `HoodieRollbackMetadata` as Hudi writes them) records what was removed, and the pending
//! instant's own files are dropped from the timeline last, so a crash midway is simply rolled back
//! again on the next open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant as Stopwatch;

use apache_avro::types::Value;
use bytes::Bytes;

use super::avro_value::{container, strings};
use super::lease::Lease;
use super::metadata::CommitMetadata;
use super::transaction::{Completion, Transaction, delete_instant_files};
use crate::error::{Error, Result};
use crate::file_group::{BaseFile, FileSystemView, LogFile, partition_metafile};
use crate::storage::Storage;
use crate::table::Table;
use crate::timeline::{Action, Instant, InstantTime, State, TIMELINE_DIR, Timeline};

const PLAN_SCHEMA: &str = include_str!("avro/HoodieRollbackPlan.avsc");
const METADATA_SCHEMA: &str = include_str!("avro/HoodieRollbackMetadata.avsc");
/// Version of the rollback plan and metadata layouts Hudi 0.14 writes.
const ROLLBACK_VERSION: i32 = 1;

/// What a rollback removed.
#[derive(Debug, Clone)]
pub struct RollbackOutcome {
    pub rollback_instant: InstantTime,
    pub rolled_back: Instant,
    /// Deleted data files, table-relative.
    pub deleted_files: Vec<String>,
}

/// Rolls back every pending write on the timeline (a dead writer's), oldest first.
pub async fn rollback_pending(
    table: &Table,
    lease: &Lease,
    timeline: &Timeline,
) -> Result<Vec<RollbackOutcome>> {
    let storage = table.storage();
    let pending: Vec<Instant> = timeline
        .pending()
        .filter(|i| {
            matches!(
                i.action,
                Action::Commit | Action::DeltaCommit | Action::ReplaceCommit
            )
        })
        .cloned()
        .collect();
    let mut outcomes = Vec::new();
    for instant in pending {
        let timeline = Timeline::load(storage).await?;
        tracing::warn!(instant = %instant, "Rolling back a write that did not complete.");
        outcomes.push(rollback(table, lease, &timeline, &instant).await?);
    }
    // A rollback that crashed midway left its own instant pending; the write it was undoing is
    // still pending too and was rolled back again above, so the stale rollback instant goes.
    for stale in timeline.pending().filter(|i| i.action == Action::Rollback) {
        delete_instant_files(storage, stale, &[State::Inflight, State::Requested]).await?;
    }
    Ok(outcomes)
}

/// Rolls back one pending write (or compaction).
pub async fn rollback(
    table: &Table,
    lease: &Lease,
    timeline: &Timeline,
    pending: &Instant,
) -> Result<RollbackOutcome> {
    let files = files_of(table.storage(), pending).await?;
    undo(table, lease, timeline, pending, files).await
}

/// Rolls back the latest completed write (commit, delta commit or compaction): its files are
/// deleted and the table is as it was before it. Refused when that would lose data: a later
/// write, or a pending compaction, depends on it; or (copy-on-write) a file group it rewrote
/// has no earlier version left because the cleaner removed it.
pub async fn rollback_completed(
    table: &Table,
    lease: &Lease,
    timeline: &Timeline,
    time: &InstantTime,
) -> Result<RollbackOutcome> {
    let storage = table.storage();
    let refuse = |reason: String| Error::RollbackRefused {
        instant: time.clone(),
        reason,
    };
    let instant = timeline
        .get(time)
        .filter(|i| i.is_completed() && i.action.writes_data())
        .ok_or_else(|| {
            refuse(
                "it is not a completed commit, delta commit or compaction on the timeline"
                    .to_string(),
            )
        })?
        .clone();
    if let Some(savepoint) = timeline.savepoints().find(|s| &s.time == time) {
        return Err(refuse(format!(
            "savepoint {} keeps it; delete the savepoint first (inlet savepoint --delete)",
            savepoint.time
        )));
    }
    if let Some(later) = timeline.completed_writes().find(|i| &i.time > time) {
        return Err(refuse(format!(
            "{later} was written after it; roll back the latest write first"
        )));
    }
    if let Some(compaction) = timeline.pending_compactions().find(|i| &i.time > time) {
        return Err(refuse(format!(
            "compaction {} is scheduled on top of it; run it (inlet compact) first",
            compaction.time
        )));
    }
    let metadata = timeline.commit_metadata(storage, &instant).await?;
    let view = FileSystemView::load(storage, timeline).await?;
    for stat in metadata.write_stats() {
        let Some(prev) = stat.prev_commit.as_deref().filter(|p| *p != "null") else {
            continue;
        };
        let is_base = stat
            .path
            .as_deref()
            .and_then(|p| p.rsplit('/').next())
            .is_some_and(|name| BaseFile::parse(name).is_some());
        if !is_base {
            continue; // a log file: the slice it was appended to stays as it was
        }
        let partition = stat.partition_path.clone().unwrap_or_default();
        let previous_exists = prev
            .parse::<InstantTime>()
            .ok()
            .and_then(|prev| {
                view.file_group(&partition, &stat.file_id)
                    .and_then(|group| group.slice(&prev).map(|_| ()))
            })
            .is_some();
        if !previous_exists {
            return Err(refuse(format!(
                "file group {} in {:?} has no version before it any more (cleaned); rolling back would drop its records",
                stat.file_id, partition
            )));
        }
    }
    let files = files_written(storage, timeline, &instant).await?;
    // Hide the write first: from here on it is a pending write, which a crash leaves to be
    // rolled back again on the next open.
    delete_instant_files(storage, &instant, &[State::Completed]).await?;
    let pending = if timeline.is_compaction(time) {
        Instant::new(time.clone(), Action::Compaction, State::Inflight)
    } else {
        instant.with_state(State::Inflight)
    };
    undo(table, lease, timeline, &pending, files).await
}

/// Files a pending instant may have written: the files its inflight workload names (log files
/// carry no instant in their names), and base files named with its instant, looked for in the
/// partitions of the workload or compaction plan (the whole table when neither names them).
async fn files_of(storage: &Storage, pending: &Instant) -> Result<Files> {
    let target = &pending.time;
    let mut files = Files::new();
    // Where to look for base files named with the instant: the partitions its workload (inlet's
    // names every file it may write) or its compaction plan names; the whole table otherwise
    // (a writer that recorded no such workload: Java's names no files).
    let mut partitions: Option<BTreeSet<String>> = None;
    if pending.action.writes_data()
        && let Some(name) = pending.with_state(State::Inflight).file_name()
        && let Some(bytes) = storage.get_opt(&format!("{TIMELINE_DIR}/{name}")).await?
        && let Ok(workload) = CommitMetadata::from_json(&bytes)
    {
        let stats: Vec<_> = workload.write_stats().collect();
        // An empty workload names nothing to look in: the whole table is listed.
        if !stats.is_empty() && stats.iter().all(|s| s.path.is_some()) {
            partitions = Some(
                stats
                    .iter()
                    .filter_map(|s| s.path.as_deref())
                    .map(|p| p.rsplit_once('/').map_or("", |(dir, _)| dir).to_string())
                    .collect(),
            );
        }
        for stat in stats {
            if let Some(path) = &stat.path
                && storage.head(path).await?.is_some()
            {
                add_file(&mut files, path);
            }
        }
    } else if pending.action == Action::Compaction
        && let Ok(plan) = super::compaction_plan::CompactionPlan::load(storage, target).await
    {
        partitions = Some(
            plan.operations
                .iter()
                .map(|op| op.partition.to_string())
                .collect(),
        );
    }
    let listed = match &partitions {
        Some(partitions) => {
            let mut listed = Vec::new();
            for partition in partitions {
                listed.extend(storage.list_dir(partition).await?);
            }
            listed
        }
        None => storage.list("").await?,
    };
    for entry in listed {
        if entry.path.starts_with(TIMELINE_DIR) {
            continue;
        }
        let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
        if named_with(name, target) {
            add_file(&mut files, &entry.path);
        }
    }
    Ok(files)
}

/// Whether a file is one a write at `instant` names with its instant: a base file, or the `.cdc`
/// log that follows it (change data capture).
fn named_with(name: &str, instant: &InstantTime) -> bool {
    BaseFile::parse(name).is_some_and(|b| &b.instant == instant)
        || LogFile::parse(name).is_some_and(|l| l.cdc && &l.base_instant == instant)
}

/// Data files to delete per partition: (file id, table-relative path).
pub(crate) type Files = BTreeMap<String, Vec<(String, String)>>;

fn add_file(files: &mut Files, path: &str) {
    let (partition, name) = path.rsplit_once('/').unwrap_or(("", path));
    let file_id = BaseFile::parse(name)
        .map(|b| b.file_id)
        .or_else(|| LogFile::parse(name).map(|l| l.file_id))
        .unwrap_or_default();
    let paths = files.entry(partition.to_string()).or_default();
    if !paths.iter().any(|(_, p)| p == path) {
        paths.push((file_id.to_string(), path.to_string()));
    }
}

async fn undo(
    table: &Table,
    lease: &Lease,
    timeline: &Timeline,
    pending: &Instant,
    files: Files,
) -> Result<RollbackOutcome> {
    let storage = table.storage();
    let started = Stopwatch::now();
    let plan = encode_plan(storage, pending, &files)?;
    let mut txn = Transaction::begin(table, timeline, Action::Rollback, plan).await?;
    let time = txn.instant_time().clone();
    txn.inflight(storage, Bytes::new()).await?;

    let deleted = delete_files(storage, pending, &files).await?;
    let metadata = encode_metadata(&time, pending, &files, started.elapsed().as_millis() as i64)?;
    txn.complete(table, lease, Completion::avro(metadata))
        .await?;

    // Only now drop the rolled-back instant's files, latest state first. A compaction keeps its
    // requested plan: it is pending again, to be executed anew (as Hudi does).
    let states: &[State] = if pending.action == Action::Compaction {
        &[State::Inflight]
    } else {
        &[State::Inflight, State::Requested]
    };
    delete_instant_files(storage, pending, states).await?;
    Ok(RollbackOutcome {
        rollback_instant: time,
        rolled_back: pending.clone(),
        deleted_files: deleted,
    })
}

/// Deletes the data files of a write being rolled back, and the partitions it created.
pub(crate) async fn delete_files(
    storage: &Storage,
    pending: &Instant,
    files: &Files,
) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for paths in files.values() {
        for (_, path) in paths {
            storage.delete(path).await?;
            deleted.push(path.clone());
            crate::failpoint!("rollback.after-delete");
        }
    }
    // A partition the write created goes with it: its metafile names the write.
    let created_by = format!("commitTime={}", pending.time);
    for partition in files.keys() {
        let (path, _) = partition_metafile(partition, &pending.time);
        if let Some(bytes) = storage.get_opt(&path).await?
            && String::from_utf8_lossy(&bytes)
                .lines()
                .any(|l| l == created_by)
        {
            storage.delete(&path).await?;
        }
    }
    Ok(deleted)
}

/// Every data file an instant wrote: for a completed write, the files its write stats name (and
/// base files named with it in those partitions); for a pending one, [`files_of`].
pub(crate) async fn files_written(
    storage: &Storage,
    timeline: &Timeline,
    instant: &Instant,
) -> Result<Files> {
    if !(instant.is_completed() && instant.action.writes_data()) {
        return files_of(storage, instant).await;
    }
    // A completed write's metadata names the files it wrote; base files named with its instant
    // are looked for in those partitions only.
    let metadata = timeline.commit_metadata(storage, instant).await?;
    let mut files = Files::new();
    let mut partitions = BTreeSet::new();
    for stat in metadata.write_stats() {
        if let Some(path) = &stat.path {
            add_file(&mut files, path);
            partitions.insert(path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string());
        }
    }
    for partition in partitions {
        for entry in storage.list_dir(&partition).await? {
            let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
            if named_with(name, &instant.time) {
                add_file(&mut files, &entry.path);
            }
        }
    }
    Ok(files)
}

pub(crate) fn instant_info(instant: &Instant) -> Value {
    Value::Record(vec![
        (
            "commitTime".to_string(),
            Value::String(instant.time.to_string()),
        ),
        (
            "action".to_string(),
            Value::String(instant.action.completed_as().to_string()),
        ),
    ])
}

fn full_path(storage: &Storage, rel: &str) -> String {
    format!("{}/{rel}", storage.uri().trim_end_matches('/'))
}

fn encode_plan(storage: &Storage, pending: &Instant, files: &Files) -> Result<Bytes> {
    let requests = files
        .iter()
        .flat_map(|(partition, paths)| {
            paths.iter().map(move |(file_id, path)| {
                Value::Record(vec![
                    (
                        "partitionPath".to_string(),
                        Value::String(partition.clone()),
                    ),
                    (
                        "fileId".to_string(),
                        Value::Union(1, Box::new(Value::String(file_id.clone()))),
                    ),
                    (
                        "latestBaseInstant".to_string(),
                        Value::Union(1, Box::new(Value::String(pending.time.to_string()))),
                    ),
                    (
                        "filesToBeDeleted".to_string(),
                        strings([full_path(storage, path)]),
                    ),
                    (
                        "logBlocksToBeDeleted".to_string(),
                        Value::Union(0, Box::new(Value::Null)),
                    ),
                ])
            })
        })
        .collect();
    let plan = Value::Record(vec![
        (
            "instantToRollback".to_string(),
            Value::Union(1, Box::new(instant_info(pending))),
        ),
        (
            "RollbackRequests".to_string(),
            Value::Union(1, Box::new(Value::Array(requests))),
        ),
        (
            "version".to_string(),
            Value::Union(0, Box::new(Value::Int(ROLLBACK_VERSION))),
        ),
    ]);
    container(PLAN_SCHEMA, plan)
}

fn encode_metadata(
    time: &InstantTime,
    pending: &Instant,
    files: &Files,
    took_ms: i64,
) -> Result<Bytes> {
    container(
        METADATA_SCHEMA,
        metadata_value(time, pending, files, took_ms),
    )
}

/// `HoodieRollbackMetadata` of a rollback at `time` of `pending`, which deleted `files`.
pub(crate) fn metadata_value(
    time: &InstantTime,
    pending: &Instant,
    files: &Files,
    took_ms: i64,
) -> Value {
    let partitions: HashMap<String, Value> = files
        .iter()
        .map(|(partition, paths)| {
            let value = Value::Record(vec![
                (
                    "partitionPath".to_string(),
                    Value::String(partition.clone()),
                ),
                (
                    "successDeleteFiles".to_string(),
                    strings(paths.iter().map(|(_, p)| p.clone())),
                ),
                ("failedDeleteFiles".to_string(), Value::Array(Vec::new())),
                (
                    "rollbackLogFiles".to_string(),
                    Value::Union(0, Box::new(Value::Null)),
                ),
                (
                    "logFilesFromFailedCommit".to_string(),
                    Value::Union(0, Box::new(Value::Null)),
                ),
            ]);
            (partition.clone(), value)
        })
        .collect();
    let total: usize = files.values().map(Vec::len).sum();
    Value::Record(vec![
        (
            "startRollbackTime".to_string(),
            Value::String(time.to_string()),
        ),
        ("timeTakenInMillis".to_string(), Value::Long(took_ms)),
        ("totalFilesDeleted".to_string(), Value::Int(total as i32)),
        (
            "commitsRollback".to_string(),
            strings([pending.time.to_string()]),
        ),
        ("partitionMetadata".to_string(), Value::Map(partitions)),
        (
            "version".to_string(),
            Value::Union(0, Box::new(Value::Int(ROLLBACK_VERSION))),
        ),
        (
            "instantsRollback".to_string(),
            Value::Array(vec![instant_info(pending)]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::avro_value::avro_error;

    #[test]
    fn plan_and_metadata_are_readable_avro_containers() -> Result<()> {
        let storage = Storage::open("memory://rollback-avro", &[])?;
        let pending = Instant::new(
            "20240418173213674".parse()?,
            Action::Commit,
            State::Inflight,
        );
        let mut files = BTreeMap::new();
        files.insert(
            "p=1".to_string(),
            vec![(
                "f1-0".to_string(),
                "p=1/f1-0_0-0-0_20240418173213674.parquet".to_string(),
            )],
        );
        for bytes in [
            encode_plan(&storage, &pending, &files)?,
            encode_metadata(&"20240418173300000".parse()?, &pending, &files, 5)?,
        ] {
            assert_eq!(&bytes[..4], b"Obj\x01");
            let reader = apache_avro::Reader::new(&bytes[..]).map_err(avro_error)?;
            let records: Vec<Value> = reader.collect::<Result<_, _>>().map_err(avro_error)?;
            assert_eq!(records.len(), 1);
            let text = format!("{:?}", records[0]);
            assert!(
                text.contains("20240418173213674") && text.contains("f1-0"),
                "{text}"
            );
        }
        Ok(())
    }
}
