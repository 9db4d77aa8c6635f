//! Cleaning: deleting file slices (a base file with its log files) that no retained instant
//! needs, as Hudi's cleaner does. The plan (Avro `HoodieCleanerPlan`) goes to
//! `T.clean.requested` and `T.clean.inflight`, the files are deleted, and `T.clean` records the
//! outcome (Avro `HoodieCleanMetadata`). A clean that crashed is finished by the next one.
//!
//! Policies, per file group:
//! - keep-latest-commits(N): the earliest commit to retain (ECTR) is the N-th latest completed
//!   commit; kept are every slice based at or after the ECTR, the newest slice before it (it
//!   serves queries as of the ECTR) and the latest slice;
//! - keep-latest-by-hours(H): the same, with the ECTR the first commit of the last H hours;
//! - keep-latest-file-versions(N): the newest N slices.
//!
//! Slices a pending compaction reads, and everything after them, are always kept. The ECTR never
//! passes the earliest pending write, whose base may still be needed.

use std::collections::BTreeMap;
use std::str::FromStr;

use apache_avro::types::Value;
use bytes::Bytes;
use inlet_table::commit::avro_value::{
    container, field, field_str, first, map, null, plain, read_container, record, some, string,
    strings,
};
use inlet_table::commit::compaction_plan::CompactionPlan;
use inlet_table::commit::savepoint;
use inlet_table::commit::{Completion, Transaction, read_instant};
use inlet_table::file_group::{FileGroup, FileSystemView, file_path};
use inlet_table::{Action, Error, Instant, InstantTime, Result, State, Timeline};

use crate::services::TableServices;

const PLAN_SCHEMA: &str = include_str!("avro/HoodieCleanerPlan.avsc");
const METADATA_SCHEMA: &str = include_str!("avro/HoodieCleanMetadata.avsc");
/// `CleanPlanner.LATEST_CLEAN_PLAN_VERSION` / `CleanerUtils.LATEST_CLEAN_METADATA_VERSION`.
const CLEAN_VERSION: i32 = 2;

/// Which file versions a clean keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    KeepLatestCommits(usize),
    KeepLatestFileVersions(usize),
    KeepLatestByHours(u64),
}

impl Default for Policy {
    /// Hudi's default: keep what the latest 10 commits need (`hoodie.cleaner.commits.retained`).
    fn default() -> Self {
        Policy::KeepLatestCommits(10)
    }
}

impl Policy {
    /// Hudi's name of the policy.
    pub fn name(self) -> &'static str {
        match self {
            Policy::KeepLatestCommits(_) => "KEEP_LATEST_COMMITS",
            Policy::KeepLatestFileVersions(_) => "KEEP_LATEST_FILE_VERSIONS",
            Policy::KeepLatestByHours(_) => "KEEP_LATEST_BY_HOURS",
        }
    }
}

impl FromStr for Policy {
    type Err = Error;

    /// `keep-latest-commits:N`, `keep-latest-file-versions:N` or `keep-latest-by-hours:H`, all ≥ 1.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || {
            Error::InvalidConfig(format!(
                "clean policy {s:?}: expected keep-latest-commits:N, keep-latest-file-versions:N or keep-latest-by-hours:H (N, H >= 1)"
            ))
        };
        let (name, n) = s.split_once(':').ok_or_else(invalid)?;
        let n: u64 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(invalid)?;
        match name {
            "keep-latest-commits" => Ok(Policy::KeepLatestCommits(n as usize)),
            "keep-latest-file-versions" => Ok(Policy::KeepLatestFileVersions(n as usize)),
            "keep-latest-by-hours" => Ok(Policy::KeepLatestByHours(n)),
            _ => Err(invalid()),
        }
    }
}

/// What a clean did.
#[derive(Debug, Clone, Default)]
pub struct Cleaned {
    /// The clean instant; `None` when there was nothing to delete (no instant is written then).
    pub instant: Option<InstantTime>,
    pub earliest_retained: Option<InstantTime>,
    /// Deleted files, table-relative.
    pub files: Vec<String>,
    pub bytes: u64,
}

/// Files to delete, per partition: (table-relative path, size).
type Deletions = BTreeMap<String, Vec<(String, u64)>>;

/// Cleans the table by `policy`. A clean left pending by a crash is finished first.
pub async fn clean(services: &TableServices, policy: Policy) -> Result<Cleaned> {
    let table = services.table();
    let storage = table.storage();
    let timeline = table.timeline().await?;
    if let Some(pending) = timeline
        .pending()
        .find(|i| i.action == Action::Clean)
        .cloned()
    {
        tracing::warn!(instant = %pending.time, "Finishing a clean that did not complete.");
        return finish_pending(services, &pending).await;
    }
    let Some(ectr) = earliest_commit_to_retain(&timeline, policy) else {
        return Ok(Cleaned::default());
    };
    let view = FileSystemView::load(storage, &timeline).await?;
    let mut pinned: BTreeMap<(inlet_table::PartitionPath, inlet_table::FileId), InstantTime> =
        BTreeMap::new();
    for compaction in timeline.pending_compactions() {
        for op in CompactionPlan::load(storage, &compaction.time)
            .await?
            .operations
        {
            pinned.insert((op.partition, op.file_id), op.base_instant);
        }
    }
    // Slices holding a file a savepoint keeps stay, whatever the policy (as Hudi's cleaner).
    let savepointed = savepoint::kept_files(table, &timeline).await?;
    let kept = |partition: &str, name: String| savepointed.contains(&(partition.to_string(), name));
    let mut deletions = Deletions::new();
    for group in view.file_groups() {
        let pin = pinned.get(&(group.partition.clone(), group.file_id.clone()));
        // A file group replaced before what the policy retains goes whole (Hudi's
        // `getReplacedFilesEligibleToClean`).
        let replaced = view
            .replaced_at(&group.partition, &group.file_id)
            .is_some_and(|at| ectr.as_ref().is_none_or(|e| at < e));
        let obsolete = if replaced && pin.is_none() {
            group.slice_instants()
        } else {
            obsolete_slices(group, policy, ectr.as_ref(), pin)
        };
        for slice in obsolete {
            let Some(slice) = group.slice(slice) else {
                continue;
            };
            let p = group.partition.as_str();
            if slice.base_file.is_some_and(|b| kept(p, b.file_name()))
                || slice.log_files.iter().any(|l| kept(p, l.file_name()))
            {
                continue;
            }
            let files = deletions.entry(group.partition.to_string()).or_default();
            if let Some(base) = slice.base_file {
                files.push((file_path(&group.partition, &base.file_name()), base.size));
            }
            let cdc = group
                .cdc_files
                .iter()
                .filter(|c| &c.base_instant == slice.base_instant);
            for log in slice.log_files.into_iter().chain(cdc) {
                files.push((file_path(&group.partition, &log.file_name()), log.size));
            }
        }
    }
    if deletions.values().all(Vec::is_empty) {
        return Ok(Cleaned {
            earliest_retained: ectr,
            ..Default::default()
        });
    }
    services.check_lease().await?;
    let last_completed = timeline
        .latest_completed_write()
        .map(|i| i.time.to_string())
        .unwrap_or_default();
    let ectr_instant = ectr.as_ref().and_then(|t| timeline.get(t)).cloned();
    let plan = encode_plan(
        storage.uri(),
        policy,
        ectr_instant.as_ref(),
        &last_completed,
        &deletions,
    )?;
    let mut txn = Transaction::begin(table, &timeline, Action::Clean, plan.clone()).await?;
    txn.inflight(storage, plan).await?;
    execute(
        services,
        txn,
        policy.name(),
        ectr,
        &last_completed,
        deletions,
    )
    .await
}

/// The earliest commit whose files every policy but file versions keeps; `None` when the policy
/// cleans nothing yet. For keep-latest-file-versions it is `Some(None)`: no commit bound.
fn earliest_commit_to_retain(timeline: &Timeline, policy: Policy) -> Option<Option<InstantTime>> {
    let commits: Vec<&Instant> = timeline.completed_writes().collect();
    let ectr = match policy {
        Policy::KeepLatestFileVersions(_) => return Some(None),
        Policy::KeepLatestCommits(n) => {
            if commits.len() <= n {
                return None;
            }
            commits[commits.len() - n].time.clone()
        }
        Policy::KeepLatestByHours(hours) => {
            let latest = commits.last()?.time.to_datetime()?;
            let cutoff = latest - chrono::Duration::hours(hours as i64);
            commits
                .iter()
                .find(|c| c.time.to_datetime().is_some_and(|t| t >= cutoff))?
                .time
                .clone()
        }
    };
    // Never beyond the earliest pending write or compaction: the slice it builds on stays.
    let pending = timeline
        .pending()
        .find(|i| i.action.writes_data() || i.action == Action::Compaction);
    match pending {
        Some(p) if p.time < ectr => {
            let before = commits.iter().rev().find(|c| c.time < p.time)?;
            Some(Some(before.time.clone()))
        }
        _ => Some(Some(ectr)),
    }
}

/// The base instants of the slices of `group` that the policy lets go, oldest first.
fn obsolete_slices<'a>(
    group: &'a FileGroup,
    policy: Policy,
    ectr: Option<&InstantTime>,
    pinned: Option<&InstantTime>,
) -> Vec<&'a InstantTime> {
    let mut slices = group.slice_instants();
    // Slices a pending compaction reads, and all later ones, stay.
    if let Some(pin) = pinned {
        slices.retain(|t| *t < pin);
    }
    let keep_newest = match policy {
        Policy::KeepLatestFileVersions(n) => n.saturating_sub(usize::from(pinned.is_some())),
        _ => {
            let Some(ectr) = ectr else { return Vec::new() };
            // Slices at or after the ECTR stay, and the newest one before it.
            slices.retain(|t| *t < ectr);
            1
        }
    };
    let obsolete = slices.len().saturating_sub(keep_newest);
    slices.truncate(obsolete);
    slices
}

async fn execute(
    services: &TableServices,
    txn: Transaction,
    policy: &str,
    ectr: Option<InstantTime>,
    last_completed: &str,
    deletions: Deletions,
) -> Result<Cleaned> {
    let started = std::time::Instant::now();
    let storage = services.table().storage();
    let mut cleaned = Cleaned {
        instant: Some(txn.instant_time().clone()),
        earliest_retained: ectr.clone(),
        ..Default::default()
    };
    let mut partitions = Vec::new();
    for (partition, files) in &deletions {
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        for (path, size) in files {
            // Deleting a file that is already gone (a resumed clean) is a success.
            match storage.delete(path).await {
                Ok(()) => {
                    deleted.push(file_name(path));
                    cleaned.files.push(path.clone());
                    cleaned.bytes += size;
                }
                Err(e) => {
                    tracing::warn!(path = %path, error = %e, "Could not delete a file.");
                    failed.push(file_name(path));
                }
            }
            inlet_table::failpoint!("clean.after-delete");
        }
        let patterns: Vec<String> = files.iter().map(|(p, _)| file_name(p)).collect();
        partitions.push((
            partition.clone(),
            record(vec![
                ("partitionPath", string(partition.clone())),
                ("policy", string(policy)),
                ("deletePathPatterns", strings(patterns)),
                ("successDeleteFiles", strings(deleted)),
                ("failedDeleteFiles", strings(failed)),
                ("isPartitionDeleted", some(Value::Boolean(false))),
            ]),
        ));
    }
    services.check_lease().await?;
    let metadata = record(vec![
        ("startCleanTime", string(txn.instant_time().to_string())),
        (
            "timeTakenInMillis",
            Value::Long(started.elapsed().as_millis() as i64),
        ),
        ("totalFilesDeleted", Value::Int(cleaned.files.len() as i32)),
        (
            "earliestCommitToRetain",
            string(ectr.map(|t| t.to_string()).unwrap_or_default()),
        ),
        ("lastCompletedCommitTimestamp", string(last_completed)),
        ("partitionMetadata", map(partitions)),
        ("version", first(Value::Int(CLEAN_VERSION))),
        ("bootstrapPartitionMetadata", null()),
    ]);
    let metadata = Completion::avro(container(METADATA_SCHEMA, metadata)?);
    txn.complete(services.table(), services.lease()?, metadata)
        .await?;
    Ok(cleaned)
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Finishes a clean from its plan.
async fn finish_pending(services: &TableServices, pending: &Instant) -> Result<Cleaned> {
    let storage = services.table().storage();
    let requested = pending.with_state(State::Requested);
    let bytes = read_instant(storage, &requested)
        .await?
        .ok_or_else(|| Error::InstantNotFound(requested.to_string()))?;
    let plan = read_container(&bytes, PLAN_SCHEMA)?;
    let policy = field_str(&plan, "policy")
        .unwrap_or("KEEP_LATEST_COMMITS")
        .to_string();
    let ectr: Option<InstantTime> = field(&plan, "earliestInstantToRetain")
        .and_then(|i| field_str(i, "timestamp"))
        .and_then(|t| t.parse().ok());
    let last_completed = field_str(&plan, "lastCompletedCommitTimestamp")
        .unwrap_or_default()
        .to_string();
    let root = format!("{}/", storage.uri().trim_end_matches('/'));
    let mut deletions = Deletions::new();
    if let Some(Value::Map(partitions)) = field(&plan, "filePathsToBeDeletedPerPartition") {
        for (partition, files) in partitions {
            let Value::Array(files) = plain(files) else {
                continue;
            };
            let paths = deletions.entry(partition.clone()).or_default();
            for info in files {
                if let Some(path) = field_str(info, "filePath") {
                    let relative = path.strip_prefix(&root).unwrap_or(path);
                    paths.push((relative.to_string(), 0));
                }
            }
        }
    }
    let mut txn = Transaction::resume(pending.clone());
    txn.inflight(storage, bytes).await?;
    execute(services, txn, &policy, ectr, &last_completed, deletions).await
}

fn encode_plan(
    root: &str,
    policy: Policy,
    ectr: Option<&Instant>,
    last_completed: &str,
    deletions: &Deletions,
) -> Result<Bytes> {
    let root = root.trim_end_matches('/');
    let earliest = ectr.map_or_else(null, |i| {
        some(record(vec![
            ("timestamp", string(i.time.to_string())),
            ("action", string(i.action.name())),
            ("state", string("COMPLETED")),
        ]))
    });
    let files = deletions.iter().map(|(partition, files)| {
        let infos = files
            .iter()
            .map(|(path, _)| {
                record(vec![
                    ("filePath", some(string(format!("{root}/{path}")))),
                    ("isBootstrapBaseFile", some(Value::Boolean(false))),
                ])
            })
            .collect();
        (partition.clone(), Value::Array(infos))
    });
    let plan = record(vec![
        ("earliestInstantToRetain", earliest),
        ("lastCompletedCommitTimestamp", string(last_completed)),
        ("policy", string(policy.name())),
        ("filesToBeDeletedPerPartition", null()),
        ("version", first(Value::Int(CLEAN_VERSION))),
        ("filePathsToBeDeletedPerPartition", some(map(files))),
        ("partitionsToBeDeleted", some(Value::Array(Vec::new()))),
    ]);
    container(PLAN_SCHEMA, plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse() {
        assert_eq!(
            "keep-latest-commits:3".parse::<Policy>().ok(),
            Some(Policy::KeepLatestCommits(3))
        );
        assert_eq!(
            "keep-latest-file-versions:1".parse::<Policy>().ok(),
            Some(Policy::KeepLatestFileVersions(1))
        );
        assert_eq!(
            "keep-latest-by-hours:24".parse::<Policy>().ok(),
            Some(Policy::KeepLatestByHours(24))
        );
        for bad in ["keep-latest-commits", "keep-latest-commits:0", "newest:1"] {
            assert!(bad.parse::<Policy>().is_err(), "{bad}");
        }
    }

    fn timeline(names: &[&str]) -> Timeline {
        Timeline::from_file_names(names.iter().map(|s| s.to_string()))
    }

    #[test]
    fn earliest_commit_to_retain_stops_at_pending_writes() {
        let t = timeline(&[
            "20240101000001000.deltacommit",
            "20240101000002000.deltacommit",
            "20240101000003000.deltacommit",
            "20240101000004000.deltacommit",
        ]);
        let ectr = earliest_commit_to_retain(&t, Policy::KeepLatestCommits(2));
        assert_eq!(
            ectr.flatten().map(|t| t.to_string()).as_deref(),
            Some("20240101000003000")
        );
        assert!(earliest_commit_to_retain(&t, Policy::KeepLatestCommits(4)).is_none());
        let with_pending = timeline(&[
            "20240101000001000.deltacommit",
            "20240101000002000.deltacommit",
            "20240101000002500.compaction.requested",
            "20240101000003000.deltacommit",
            "20240101000004000.deltacommit",
        ]);
        let ectr = earliest_commit_to_retain(&with_pending, Policy::KeepLatestCommits(1));
        assert_eq!(
            ectr.flatten().map(|t| t.to_string()).as_deref(),
            Some("20240101000002000")
        );
    }
}
