//! Archival: keeps the active timeline short by moving old instants to
//! `.hoodie/archived/.commits_.archive.<N>_1-0-1`, a Hudi log file of Avro data blocks of
//! `HoodieArchivedMetaEntry` records (one record per instant file: requested, inflight,
//! completed), as Hudi's timeline archiver writes them on object stores (a new file per run).
//!
//! When more than `max` completed commits are active, the oldest are archived down to `min`,
//! but only commits the cleaner has already passed (before the earliest commit the latest clean
//! retained): their replaced file versions are gone, so every file left from them is committed
//! data, which readers take for committed once its instant is archived. Nothing at or after the
//! earliest pending instant is archived. Clean and rollback instants older than the newest
//! archived commit go with them.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::RecordField;
use apache_avro::types::Value;
use inlet_table::commit::avro_value::{avro_error, field_str, read_container};
use inlet_table::commit::{delete_instant_files, read_instant};
use inlet_table::file_group::{
    BlockContent, BlockMetadata, BlockType, HeaderKey, LogBlock, encode_log_block,
};
use inlet_table::storage::Created;
use inlet_table::{Action, Error, Instant, InstantTime, Result, State, Timeline};

use crate::services::TableServices;

const ENTRY_SCHEMA: &str = include_str!("avro/HoodieArchivedMetaEntry.avsc");
const CLEAN_METADATA_SCHEMA: &str = include_str!("avro/HoodieCleanMetadata.avsc");
const ARCHIVE_DIR: &str = ".hoodie/archived";
/// Records per block (`hoodie.commits.archival.batch`).
const BATCH: usize = 10;
/// Avro data block content version.
const CONTENT_VERSION: i32 = 3;

/// How many completed commits stay on the active timeline (`hoodie.keep.min.commits` /
/// `hoodie.keep.max.commits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub min: usize,
    pub max: usize,
}

impl Default for Retention {
    /// Hudi's defaults.
    fn default() -> Self {
        Retention { min: 20, max: 30 }
    }
}

impl Retention {
    pub fn new(min: usize, max: usize) -> Result<Retention> {
        if min == 0 || max <= min {
            return Err(Error::InvalidConfig(format!(
                "archival keeps between min and max commits: need 1 <= min < max, got min {min}, max {max}"
            )));
        }
        Ok(Retention { min, max })
    }
}

/// What an archival did.
#[derive(Debug, Clone, Default)]
pub struct Archived {
    /// Archived instants, oldest first.
    pub instants: Vec<Instant>,
    /// The archive file written, table-relative.
    pub file: Option<String>,
    /// Why nothing (more) was archived, when it stopped short.
    pub limited_by: Option<String>,
}

/// Archives old instants.
pub async fn archive(services: &TableServices, retention: Retention) -> Result<Archived> {
    let table = services.table();
    let storage = table.storage();
    let timeline = table.timeline().await?;
    let commits: Vec<&Instant> = timeline.completed_writes().collect();
    let mut outcome = Archived::default();
    if commits.len() <= retention.max {
        return Ok(outcome);
    }
    let mut candidates: Vec<&Instant> = commits[..commits.len() - retention.min].to_vec();
    let mut limit = |bound: &InstantTime, why: String, candidates: &mut Vec<&Instant>| {
        let before = candidates.len();
        candidates.retain(|c| &c.time < bound);
        if candidates.len() < before {
            outcome.limited_by = Some(why);
        }
    };
    if let Some(pending) = timeline
        .pending()
        .find(|i| i.action.writes_data() || i.action == Action::Compaction)
    {
        limit(
            &pending.time,
            format!("pending instant {}", pending.time),
            &mut candidates,
        );
    }
    // A savepoint's commit, and every later one, stays active: restore rolls back to it.
    if let Some(savepoint) = timeline.savepoints().next() {
        limit(
            &savepoint.time,
            format!("savepoint {}", savepoint.time),
            &mut candidates,
        );
    }
    // A replace commit stays while files of the groups it replaced are left: readers learn from
    // it that those groups are gone.
    for replace in timeline
        .completed_writes()
        .filter(|i| i.action == Action::ReplaceCommit)
    {
        if candidates.iter().all(|c| c.time < replace.time) {
            break;
        }
        if replaced_files_left(storage, &timeline, replace).await? {
            limit(
                &replace.time,
                format!(
                    "replace commit {} has replaced files not cleaned yet",
                    replace.time
                ),
                &mut candidates,
            );
            break;
        }
    }
    match latest_clean_retained(storage, &timeline).await? {
        Some(ectr) => limit(
            &ectr,
            format!("not cleaned yet (clean retains from {ectr})"),
            &mut candidates,
        ),
        None => {
            candidates.clear();
            outcome.limited_by =
                Some("no clean has run: archive only what was cleaned".to_string());
        }
    }
    let Some(newest) = candidates.last().map(|c| c.time.clone()) else {
        return Ok(outcome);
    };
    let mut archived: Vec<Instant> = timeline
        .instants()
        .iter()
        .filter(|i| {
            i.time <= newest
                && i.is_completed()
                && (i.action.writes_data() || matches!(i.action, Action::Clean | Action::Rollback))
        })
        .cloned()
        .collect();
    archived.sort_by(|a, b| a.time.cmp(&b.time));

    // Every file of each archived instant, in state order.
    let names: Vec<String> = storage
        .list_dir(".hoodie")
        .await?
        .into_iter()
        .filter_map(|e| e.path.rsplit('/').next().map(str::to_string))
        .collect();
    let mut files: Vec<(Instant, String)> = Vec::new();
    for instant in &archived {
        let mut of_instant: Vec<(Instant, String)> = names
            .iter()
            .filter_map(|name| {
                let parsed: Instant = name.parse().ok()?;
                (parsed.time == instant.time).then(|| (parsed, name.clone()))
            })
            .collect();
        of_instant.sort_by_key(|(i, _)| i.state);
        files.extend(of_instant);
    }

    let schema = Schema::parse_str(ENTRY_SCHEMA).map_err(avro_error)?;
    let mut records = Vec::new();
    for (instant, name) in &files {
        let bytes = storage.get(&format!(".hoodie/{name}")).await?;
        records.push(entry(&schema, instant, &bytes)?);
    }
    let mut content = Vec::new();
    for chunk in records.chunks(BATCH) {
        let mut block_content = Vec::new();
        block_content.extend_from_slice(&CONTENT_VERSION.to_be_bytes());
        block_content.extend_from_slice(&(chunk.len() as i32).to_be_bytes());
        for record in chunk {
            let datum = apache_avro::to_avro_datum(&schema, record.clone()).map_err(avro_error)?;
            block_content.extend_from_slice(&(datum.len() as i32).to_be_bytes());
            block_content.extend_from_slice(&datum);
        }
        let mut header = BlockMetadata::new();
        header.insert(HeaderKey::Schema, ENTRY_SCHEMA.trim());
        let block = LogBlock {
            header,
            content: BlockContent::Undecoded {
                block_type: BlockType::AvroData,
                content: block_content,
            },
            footer: BlockMetadata::new(),
        };
        content.extend(encode_log_block(&block)?);
    }

    services.check_lease().await?;
    let version = storage
        .list_dir(ARCHIVE_DIR)
        .await?
        .iter()
        .filter_map(|e| archive_version(e.path.rsplit('/').next().unwrap_or_default()))
        .max()
        .unwrap_or(0)
        + 1;
    let path = format!("{ARCHIVE_DIR}/.commits_.archive.{version}_1-0-1");
    if storage.put_if_absent(&path, content.into()).await? == Created::AlreadyExists {
        return Err(Error::CommitConflict {
            instant: newest,
            reason: format!("archive file {path} appeared meanwhile"),
        });
    }
    // Pending-state files first, then completed ones oldest first: a crash leaves no hole in
    // the middle of the active timeline (the next run archives the rest again).
    let (pending_files, completed_files): (Vec<_>, Vec<_>) =
        files.iter().partition(|(i, _)| i.state != State::Completed);
    for (instant, _) in pending_files.into_iter().chain(completed_files) {
        delete_instant_files(storage, instant, &[instant.state]).await?;
    }
    outcome.instants = archived;
    outcome.file = Some(path);
    Ok(outcome)
}

/// Whether any file of a file group the replace commit replaced is still stored.
async fn replaced_files_left(
    storage: &inlet_table::storage::Storage,
    timeline: &Timeline,
    replace: &Instant,
) -> Result<bool> {
    let metadata = timeline.commit_metadata(storage, replace).await?;
    for (partition, file_ids) in &metadata.partition_to_replace_file_ids {
        for entry in storage.list_dir(partition).await? {
            let name = entry.path.rsplit('/').next().unwrap_or_default();
            if file_ids
                .iter()
                .any(|id| name.starts_with(id.as_str()) || name.starts_with(&format!(".{id}")))
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The `N` of `.commits_.archive.N_…`.
fn archive_version(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(".commits_.archive.")?;
    rest.split('_').next()?.parse().ok()
}

/// The earliest commit the latest completed clean retained.
async fn latest_clean_retained(
    storage: &inlet_table::storage::Storage,
    timeline: &Timeline,
) -> Result<Option<InstantTime>> {
    let Some(clean) = timeline
        .instants()
        .iter()
        .rev()
        .find(|i| i.action == Action::Clean && i.is_completed())
    else {
        return Ok(None);
    };
    let bytes = read_instant(storage, clean)
        .await?
        .ok_or_else(|| Error::InstantNotFound(clean.to_string()))?;
    let metadata = read_container(&bytes, CLEAN_METADATA_SCHEMA)?;
    // Keep-latest-file-versions records no commit bound: that clean then covered everything
    // before it.
    Ok(Some(
        field_str(&metadata, "earliestCommitToRetain")
            .filter(|t| !t.is_empty())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| clean.time.clone()),
    ))
}

/// One archived record: the instant's identity and, where it converts, its details.
fn entry(schema: &Schema, instant: &Instant, bytes: &[u8]) -> Result<Value> {
    let Schema::Record(entry) = schema else {
        return Err(Error::Avro(
            "HoodieArchivedMetaEntry is not a record".to_string(),
        ));
    };
    let mut values: HashMap<&str, Value> = HashMap::new();
    values.insert("commitTime", Value::String(instant.time.to_string()));
    values.insert(
        "actionType",
        Value::String(instant.action.name().to_string()),
    );
    values.insert("actionState", Value::String(instant.state.to_string()));
    let detail = match (instant.action, instant.state) {
        _ if bytes.is_empty() => None,
        (Action::Commit | Action::DeltaCommit | Action::ReplaceCommit, _) => {
            let key =
                if instant.action == Action::ReplaceCommit && instant.state == State::Completed {
                    "hoodieReplaceCommitMetadata"
                } else if instant.action == Action::ReplaceCommit {
                    "HoodieInflightReplaceMetadata"
                } else {
                    "hoodieCommitMetadata"
                };
            serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .map(|json| (key, Value::from(json)))
        }
        (Action::Clean, State::Completed) => avro_detail(bytes).map(|v| ("hoodieCleanMetadata", v)),
        (Action::Clean, _) => avro_detail(bytes).map(|v| ("hoodieCleanerPlan", v)),
        (Action::Rollback, State::Completed) => {
            avro_detail(bytes).map(|v| ("hoodieRollbackMetadata", v))
        }
        (Action::Compaction, _) => avro_detail(bytes).map(|v| ("hoodieCompactionPlan", v)),
        _ => None,
    };
    if let Some((key, value)) = detail
        && let Some(field) = entry.fields.iter().find(|f| f.name == key)
    {
        // Details that do not fit Hudi's record stay out; the identity fields are what the
        // timeline needs.
        match value.resolve(&field.schema) {
            Ok(resolved) => {
                values.insert(key, resolved);
            }
            Err(e) => {
                tracing::debug!(instant = %instant, error = %e, "Archiving an instant without its details.");
            }
        }
    }
    let fields = entry
        .fields
        .iter()
        .map(|f| {
            let value = values
                .remove(f.name.as_str())
                .map_or_else(|| null_of(f), |v| wrap(f, v));
            (f.name.clone(), value)
        })
        .collect();
    Ok(Value::Record(fields))
}

/// An Avro container's record.
fn avro_detail(bytes: &[u8]) -> Option<Value> {
    let mut reader = apache_avro::Reader::new(bytes).ok()?;
    reader.next()?.ok()
}

/// The null branch of a nullable field.
fn null_of(field: &RecordField) -> Value {
    match &field.schema {
        Schema::Union(union) => {
            let index = union
                .variants()
                .iter()
                .position(|s| matches!(s, Schema::Null))
                .unwrap_or(0);
            Value::Union(index as u32, Box::new(Value::Null))
        }
        _ => Value::Null,
    }
}

/// A value in the non-null branch of a nullable field (resolved values already are unions).
fn wrap(field: &RecordField, value: Value) -> Value {
    match (&field.schema, value) {
        (_, union @ Value::Union(..)) => union,
        (Schema::Union(union), value) => {
            let index = union
                .variants()
                .iter()
                .position(|s| !matches!(s, Schema::Null))
                .unwrap_or(0);
            Value::Union(index as u32, Box::new(value))
        }
        (_, value) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inlet_table::commit::metadata::{CommitMetadata, WriteStat};

    #[test]
    fn archive_file_versions() {
        assert_eq!(archive_version(".commits_.archive.12_1-0-1"), Some(12));
        assert_eq!(archive_version(".commits_.archive.1_1-0-1"), Some(1));
        assert_eq!(archive_version("mergeArchivePlan"), None);
    }

    #[test]
    fn retention_is_validated() {
        assert!(Retention::new(2, 3).is_ok());
        assert!(Retention::new(3, 3).is_err());
        assert!(Retention::new(0, 3).is_err());
    }

    #[test]
    fn entries_carry_commit_details() {
        let schema = Schema::parse_str(ENTRY_SCHEMA).unwrap();
        let mut metadata = CommitMetadata {
            operation_type: Some("UPSERT".to_string()),
            ..Default::default()
        };
        metadata.partition_to_write_stats.insert(
            "p".to_string(),
            vec![WriteStat {
                file_id: "f-0".to_string(),
                path: Some("p/f-0_0-0-0_20240101000000000.parquet".to_string()),
                num_writes: 3,
                ..Default::default()
            }],
        );
        let instant = Instant::new(
            "20240101000000000".parse().unwrap(),
            Action::DeltaCommit,
            State::Completed,
        );
        let entry = entry(&schema, &instant, &metadata.to_json()).unwrap();
        let datum = apache_avro::to_avro_datum(&schema, entry.clone()).unwrap();
        assert!(!datum.is_empty());
        let details = inlet_table::commit::avro_value::field(&entry, "hoodieCommitMetadata");
        assert!(details.is_some(), "{entry:?}");
        let text = format!("{details:?}");
        assert!(text.contains("f-0") && text.contains("UPSERT"), "{text}");
    }
}
