//! The Delta Lake mirror: a Delta log (`_delta_log/`) beside `.hoodie/` that names the same
//! Parquet files, so that Delta readers (Spark, Trino, DuckDB, delta-rs) read the table without
//! a copy.
//!
//! The mapping is XTable's: only base files are mirrored, so a merge-on-read table shows its
//! read-optimized view (changes in log files appear once compaction writes them into base files).
//! Each completed commit, delta commit, replace commit, compaction, rollback and restore becomes
//! one Delta version whose files are exactly the table's read-optimized file set as of that
//! instant: the version is the difference between that set and the files of the previous
//! version, so rollbacks, restores and replaced file groups need no rule of their own. Cleans and
//! savepoints change no latest file and make no version.
//!
//! Each version carries an application transaction (`txn`, app id [`APP_ID`], version = the
//! instant as a number) and the instant in its commit info, so that a mirror that fell behind
//! (a crash between the Hudi commit and the Delta commit, or a commit by a process that does not
//! mirror) catches up on the next sync without mirroring an instant twice. The Delta log is
//! written through the `deltalake` crate (put-if-absent of each version, conflict detection).
//!
//! What Delta readers see, and why:
//! - Column names are the physical names in the files (the names Spark, Trino and hudi-rs see;
//!   inlet alone reads the original names back). Delta's column mapping would show the original
//!   names but needs a reader and writer that support it.
//! - The Delta table is not partitioned: partition columns are read from the files themselves,
//!   exactly as Hudi wrote them, instead of being re-serialized into Delta partition values.
//! - Zone-less timestamps are `timestamp_ntz` (reader 3 / writer 7 with that one feature);
//!   every other type needs reader 1 / writer 2.
//! - A change of a column's type (Hudi's widening of int to long, float to double) cannot be
//!   expressed without Delta's type-widening feature: the mirror stops with an error naming the
//!   column and says how far it got; the Hudi table is unaffected.
//! - Never run Delta `VACUUM` on the table: the Hudi cleaner owns file deletion, and Delta would
//!   delete log files and uncommitted files it does not know.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError, ObjectStore};
use inlet_table::commit::metadata::CommitMetadata;
use inlet_table::commit::transaction::{CommitHook, Completed};
use inlet_table::file_group::file_path;
use inlet_table::{Instant, InstantTime, Snapshot, Table};
use serde_json::{Value, json};

use crate::{Error, Result};

/// The application id of the mirror's Delta transactions (`txn.appId`).
pub const APP_ID: &str = "inlet-mirror";
/// `hoodie.properties` key that turns the mirror on for every inlet process writing the table.
pub use inlet_table::properties::DELTA_MIRROR as PROPERTY;
/// Commit-info key naming the Hudi instant a Delta version mirrors.
pub const INSTANT_KEY: &str = "inlet.instant";

/// Whether the table's properties ask for a Delta mirror.
pub fn enabled(table: &Table) -> bool {
    table
        .properties()
        .other
        .get(PROPERTY)
        .is_some_and(|v| v == "true")
}

/// How far the mirror is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// The latest Delta version (`None`: no mirror yet).
    pub version: Option<u64>,
    /// The latest mirrored instant.
    pub instant: Option<String>,
    /// Completed instants the mirror has not caught up with, oldest first.
    pub behind: Vec<String>,
    /// Base files in the latest Delta version.
    pub files: usize,
}

/// One Delta version a sync made.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirrored {
    pub instant: String,
    pub version: u64,
    pub added: usize,
    pub removed: usize,
}

/// The mirror as a post-commit hook: after each completed action of a table whose properties
/// turn it on, the mirror catches up. A failure is logged by the commit path and retried by the
/// next commit (the Hudi commit stands either way).
#[derive(Debug, Default)]
pub struct DeltaMirrorHook;

#[async_trait]
impl CommitHook for DeltaMirrorHook {
    fn name(&self) -> &str {
        "delta mirror"
    }

    async fn completed(&self, table: &Table, completed: &Completed<'_>) -> inlet_table::Result<()> {
        if !enabled(table) || !completed.instant.action.changes_files() {
            return Ok(());
        }
        sync(table)
            .await
            .map(|_| ())
            .map_err(|e| inlet_table::Error::Unsupported(format!("Delta mirror: {e}")))
    }
}

/// The mirror's state against the table's timeline.
pub async fn status(table: &Table) -> Result<Status> {
    let snapshot = Snapshot::load(table).await?;
    let delta = open(table).await?;
    let mirrored = match &delta {
        Some(d) => mirrored_instant(d).await?,
        None => None,
    };
    let behind = unmirrored(&snapshot, mirrored.as_ref())
        .into_iter()
        .map(|i| i.time.to_string())
        .collect();
    Ok(Status {
        version: delta.as_ref().and_then(DeltaTable::version),
        instant: mirrored.map(|t| t.to_string()),
        behind,
        files: match &delta {
            Some(d) => delta_files(d)?.len(),
            None => 0,
        },
    })
}

/// Brings the mirror up to the table's latest completed instant (creating it at the first
/// instant that has a schema), one Delta version per instant that changed the file set. Returns
/// the versions made.
pub async fn sync(table: &Table) -> Result<Vec<Mirrored>> {
    // Two processes may sync at once (the service and `inlet mirror`): the loser of a version
    // race starts over from the new state, where the transaction id tells what is done.
    let mut attempts = 0;
    loop {
        match sync_once(table).await {
            Err(Error::Mirror(reason)) if reason.contains(CONFLICT) && attempts < 5 => {
                attempts += 1;
            }
            other => return other,
        }
    }
}

/// Where the Delta log lives, relative to the table.
const LOG_DIR: &str = "_delta_log";

const CONFLICT: &str = "version conflict";

async fn sync_once(table: &Table) -> Result<Vec<Mirrored>> {
    let snapshot = Snapshot::load(table).await?;
    let mut delta = open(table).await?;
    let mirrored = match &delta {
        Some(d) => mirrored_instant(d).await?,
        None => None,
    };
    let todo = unmirrored(&snapshot, mirrored.as_ref());
    let Some(last) = todo.last().map(|i| i.time.clone()) else {
        return Ok(Vec::new());
    };
    // Instants older than what the cleaner kept can no longer be read as of themselves: their
    // changes go into the first version still readable.
    let floor = inlet_table::read::earliest_readable(table.storage(), snapshot.timeline()).await?;
    let mut metadata_cache: HashMap<InstantTime, Option<CommitMetadata>> = HashMap::new();
    let mut made = Vec::new();
    for instant in &todo {
        if instant.time != last && floor.as_ref().is_some_and(|f| instant.time < *f) {
            continue;
        }
        let schema = schema_as_of(&snapshot, &instant.time, &mut metadata_cache).await?;
        let Some(schema) = schema else {
            // Nothing written yet: nothing to show.
            continue;
        };
        let desired = read_optimized_files(&snapshot, &instant.time);
        let current = match &delta {
            Some(d) => delta_files(d)?,
            None => BTreeSet::new(),
        };
        let mut actions = Vec::new();
        let delta_schema = delta_schema(&schema)?;
        let needs_ntz = schema_needs_ntz(&schema);
        match &delta {
            None => {
                actions.push(protocol_action(needs_ntz)?);
                actions.push(metadata_action(&delta_schema, None)?);
            }
            Some(d) => {
                let state = d.snapshot().map_err(delta_error)?;
                let existing: StructType = state.schema().as_ref().clone();
                if existing != delta_schema {
                    check_evolution(&existing, &delta_schema)?;
                    let protocol = state.protocol();
                    if needs_ntz && protocol.min_writer_version() < 7 {
                        actions.push(protocol_action(true)?);
                    }
                    actions.push(metadata_action(&delta_schema, Some(state.metadata().id()))?);
                }
            }
        }
        let removed: Vec<&String> = current
            .iter()
            .filter(|p| !desired.contains_key(*p))
            .collect();
        let added: Vec<(&String, &FileInfo)> = desired
            .iter()
            .filter(|(p, _)| !current.contains(*p))
            .collect();
        let now = chrono::Utc::now().timestamp_millis();
        for path in &removed {
            actions.push(action(json!({"remove": {
                "path": encode_path(path),
                "dataChange": true,
                "deletionTimestamp": now,
                "extendedFileMetadata": false,
            }}))?);
        }
        for (path, info) in &added {
            let records = num_records(&snapshot, info, &mut metadata_cache).await?;
            let mut add = json!({
                "path": encode_path(path),
                "partitionValues": {},
                "size": info.size,
                "modificationTime": info.modified_ms,
                "dataChange": true,
            });
            if let Some(n) = records {
                add["stats"] = Value::String(json!({ "numRecords": n }).to_string());
            }
            actions.push(action(json!({ "add": add }))?);
        }
        let version = commit(table, &mut delta, instant, actions).await?;
        made.push(Mirrored {
            instant: instant.time.to_string(),
            version,
            added: added.len(),
            removed: removed.len(),
        });
    }
    Ok(made)
}

/// A base file of the read-optimized view.
#[derive(Debug, Clone)]
struct FileInfo {
    instant: InstantTime,
    file_id: String,
    partition: String,
    size: u64,
    modified_ms: i64,
}

/// Table-relative path → file, of every file group's latest base file as of `as_of`.
fn read_optimized_files(snapshot: &Snapshot, as_of: &InstantTime) -> BTreeMap<String, FileInfo> {
    let mut files = BTreeMap::new();
    for slice in snapshot.view().latest_slices(Some(as_of)) {
        // A slice with only log files (a pending compaction's, or inserts into logs) shows its
        // latest base file in the read-optimized view: the previous slice's, if any.
        let base = slice.base_file.or_else(|| {
            let group = snapshot
                .view()
                .file_group(slice.partition.as_str(), slice.file_id.as_str())?;
            group.base_files.iter().rev().find(|b| b.instant <= *as_of)
        });
        let Some(base) = base else { continue };
        let path = file_path(slice.partition.as_str(), &base.file_name());
        files.insert(
            path,
            FileInfo {
                instant: base.instant.clone(),
                file_id: base.file_id.to_string(),
                partition: slice.partition.as_str().to_string(),
                size: base.size,
                modified_ms: base
                    .instant
                    .to_datetime()
                    .map_or(0, |t| t.timestamp_millis()),
            },
        );
    }
    files
}

/// The completed instants after `mirrored` that can change the file set, oldest first.
fn unmirrored<'a>(snapshot: &'a Snapshot, mirrored: Option<&InstantTime>) -> Vec<&'a Instant> {
    snapshot
        .timeline()
        .instants()
        .iter()
        .filter(|i| i.is_completed() && i.action.changes_files())
        .filter(|i| mirrored.is_none_or(|m| i.time > *m))
        .collect()
}

/// The table's data schema as of an instant: the latest write at or before it that recorded
/// one (tables written by other engines: the snapshot's).
async fn schema_as_of(
    snapshot: &Snapshot,
    as_of: &InstantTime,
    cache: &mut HashMap<InstantTime, Option<CommitMetadata>>,
) -> Result<Option<Schema>> {
    let writes: Vec<&Instant> = snapshot
        .timeline()
        .completed_writes()
        .filter(|w| w.time <= *as_of)
        .collect();
    for write in writes.iter().rev() {
        let metadata = commit_metadata(snapshot, &write.time, cache).await?;
        if let Some(schema) = metadata.and_then(|m| m.arrow_schema()) {
            return Ok(Some(schema));
        }
    }
    if writes.is_empty() {
        return Ok(None);
    }
    Ok(snapshot.schema().map(|s| s.as_ref().clone()))
}

async fn commit_metadata<'c>(
    snapshot: &Snapshot,
    time: &InstantTime,
    cache: &'c mut HashMap<InstantTime, Option<CommitMetadata>>,
) -> Result<Option<&'c CommitMetadata>> {
    if !cache.contains_key(time) {
        let metadata = match snapshot.timeline().get(time) {
            Some(instant) if instant.is_completed() => snapshot
                .timeline()
                .commit_metadata(snapshot.table().storage(), instant)
                .await
                .ok(),
            _ => None,
        };
        cache.insert(time.clone(), metadata);
    }
    Ok(cache.get(time).and_then(Option::as_ref))
}

/// The number of records in a base file, from the write stats of the instant that wrote it.
async fn num_records(
    snapshot: &Snapshot,
    file: &FileInfo,
    cache: &mut HashMap<InstantTime, Option<CommitMetadata>>,
) -> Result<Option<i64>> {
    let Some(metadata) = commit_metadata(snapshot, &file.instant, cache).await? else {
        return Ok(None);
    };
    Ok(metadata
        .partition_to_write_stats
        .get(&file.partition)
        .into_iter()
        .flatten()
        .find(|s| {
            s.file_id == file.file_id
                && s.path
                    .as_deref()
                    .is_some_and(|p| p.ends_with(".parquet") || p.ends_with(".orc"))
        })
        .map(|s| s.num_writes))
}

/// The latest mirrored instant: the mirror's application transaction version.
async fn mirrored_instant(delta: &DeltaTable) -> Result<Option<InstantTime>> {
    let state = delta.snapshot().map_err(delta_error)?;
    let version = state
        .transaction_version(delta.log_store().as_ref(), APP_ID)
        .await
        .map_err(delta_error)?;
    version
        .map(|v| {
            format!("{v:017}")
                .parse::<InstantTime>()
                .map_err(|e| Error::Mirror(format!("transaction version {v} is no instant: {e}")))
        })
        .transpose()
}

/// The table-relative paths of the files in the latest Delta version.
fn delta_files(delta: &DeltaTable) -> Result<BTreeSet<String>> {
    let state = delta.snapshot().map_err(delta_error)?;
    Ok(state
        .log_data()
        .iter()
        .map(|f| f.path().into_owned())
        .collect())
}

/// The Delta log store over the table's own object store (local disk or S3 alike).
fn log_store(table: &Table) -> Result<LogStoreRef> {
    let storage = table.storage();
    let uri = storage.uri();
    let location = if uri.contains("://") && !uri.starts_with("file://") {
        url::Url::parse(&uri.replacen("s3a://", "s3://", 1))
    } else {
        let dir = storage
            .local_root()
            .ok_or_else(|| Error::Mirror(format!("{uri}: no local directory")))?;
        url::Url::from_directory_path(dir).map_err(|()| url::ParseError::EmptyHost)
    }
    .map_err(|e| Error::Mirror(format!("{uri}: {e}")))?;
    // The table's store is rooted at the table (local disk) or at the bucket (S3, with the
    // table's prefix): Delta wants both a store at the table and one at the root.
    let store = storage.object_store().clone();
    let (prefixed, root): (
        std::sync::Arc<dyn ObjectStore>,
        std::sync::Arc<dyn ObjectStore>,
    ) = match storage.local_root() {
        Some(_) => (
            store,
            std::sync::Arc::new(deltalake::logstore::object_store::local::LocalFileSystem::new()),
        ),
        None => {
            let prefix = storage.path("")?;
            (
                std::sync::Arc::new(deltalake::logstore::object_store::prefix::PrefixStore::new(
                    store.clone(),
                    prefix,
                )),
                store,
            )
        }
    };
    Ok(default_logstore(
        prefixed,
        root,
        &location,
        &StorageConfig::default(),
    ))
}

/// The mirror, loaded at its latest version; `None` when there is none yet.
async fn open(table: &Table) -> Result<Option<DeltaTable>> {
    // Asking the kernel for a table that is not there logs an error of its own.
    if table.storage().list_dir(LOG_DIR).await?.is_empty() {
        return Ok(None);
    }
    let mut delta = DeltaTable::new(log_store(table)?);
    match delta.load().await {
        Ok(()) => Ok(Some(delta)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(delta_error(e)),
    }
}

/// Commits one version for `instant`; returns its number.
async fn commit(
    table: &Table,
    delta: &mut Option<DeltaTable>,
    instant: &Instant,
    actions: Vec<Action>,
) -> Result<u64> {
    let version = instant
        .time
        .as_str()
        .parse::<i64>()
        .map_err(|e| Error::Mirror(format!("instant {}: {e}", instant.time)))?;
    let properties = CommitProperties::default()
        .with_application_transaction(Transaction::new(APP_ID, version))
        .with_metadata([
            (INSTANT_KEY.to_string(), json!(instant.time.as_str())),
            (
                "inlet.action".to_string(),
                json!(instant.action.to_string()),
            ),
        ]);
    let log_store = match delta {
        Some(d) => d.log_store(),
        None => log_store(table)?,
    };
    let operation = match delta {
        Some(_) => DeltaOperation::Update { predicate: None },
        None => {
            let (protocol, metadata) = protocol_and_metadata(&actions)?;
            DeltaOperation::Create {
                mode: SaveMode::ErrorIfExists,
                location: log_store.root_url().clone(),
                protocol,
                metadata,
            }
        }
    };
    let reference: Option<&dyn TableReference> = match delta {
        Some(d) => Some(d.snapshot().map_err(delta_error)?),
        None => None,
    };
    let finalized = CommitBuilder::from(properties)
        .with_actions(actions)
        .with_max_retries(0)
        .build(reference, log_store.clone(), operation)
        .await
        .map_err(|e| match e {
            DeltaTableError::VersionAlreadyExists(_) | DeltaTableError::Transaction { .. } => {
                Error::Mirror(format!("{CONFLICT}: {e}"))
            }
            other => delta_error(other),
        })?;
    let number = finalized.version();
    let mut reloaded = DeltaTable::new(log_store);
    reloaded.load().await.map_err(delta_error)?;
    *delta = Some(reloaded);
    tracing::info!(
        table = %table.storage().uri(),
        instant = %instant.time,
        version = number,
        "Mirrored to Delta."
    );
    Ok(number)
}

fn protocol_and_metadata(
    actions: &[Action],
) -> Result<(deltalake::kernel::Protocol, deltalake::kernel::Metadata)> {
    let protocol = actions.iter().find_map(|a| match a {
        Action::Protocol(p) => Some(p.clone()),
        _ => None,
    });
    let metadata = actions.iter().find_map(|a| match a {
        Action::Metadata(m) => Some(m.clone()),
        _ => None,
    });
    protocol
        .zip(metadata)
        .ok_or_else(|| Error::Mirror("a new mirror needs a protocol and metadata".into()))
}

fn action(value: Value) -> Result<Action> {
    serde_json::from_value(value).map_err(|e| Error::Mirror(format!("building an action: {e}")))
}

/// Reader 1 / writer 2, or reader 3 / writer 7 with `timestampNtz` when a column needs it.
fn protocol_action(ntz: bool) -> Result<Action> {
    action(if ntz {
        json!({"protocol": {
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"],
            "writerFeatures": ["timestampNtz"],
        }})
    } else {
        json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}})
    })
}

fn metadata_action(schema: &StructType, id: Option<&str>) -> Result<Action> {
    let schema_string =
        serde_json::to_string(schema).map_err(|e| Error::Mirror(format!("schema: {e}")))?;
    action(json!({"metaData": {
        "id": id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
        "format": {"provider": "parquet", "options": {}},
        "schemaString": schema_string,
        "partitionColumns": [],
        "configuration": {},
        "createdTime": chrono::Utc::now().timestamp_millis(),
    }}))
}

/// A Delta version may add columns; it may not change the type of one it has.
fn check_evolution(existing: &StructType, new: &StructType) -> Result<()> {
    for field in existing.fields() {
        match new.field(field.name()) {
            Some(now) if now.data_type() != field.data_type() => {
                return Err(Error::Mirror(format!(
                    "column {:?} changed type from {} to {}: a Delta table cannot say that \
                     without the type-widening feature, which the mirror does not use; the Hudi \
                     table is unaffected",
                    field.name(),
                    type_name(field.data_type()),
                    type_name(now.data_type())
                )));
            }
            Some(_) => {}
            None => {
                return Err(Error::Mirror(format!(
                    "column {:?} is gone from the table's schema",
                    field.name()
                )));
            }
        }
    }
    Ok(())
}

fn type_name(t: &deltalake::kernel::DataType) -> String {
    serde_json::to_string(t).unwrap_or_else(|_| format!("{t:?}"))
}

/// The Delta schema of a data schema: physical column names, Delta types.
fn delta_schema(schema: &Schema) -> Result<StructType> {
    let physical = inlet_table::schema::physical(schema)?;
    let fields: Vec<Value> = physical
        .fields()
        .iter()
        .map(|f| delta_field(f))
        .collect::<Result<_>>()?;
    serde_json::from_value(json!({"type": "struct", "fields": fields}))
        .map_err(|e| Error::Mirror(format!("schema: {e}")))
}

fn delta_field(field: &Field) -> Result<Value> {
    crate::spark::spark_field(field.name(), field.data_type(), "timestamp_ntz")
        .map_err(|t| unsupported(field.name(), &t))
}

fn unsupported(column: &str, data_type: &DataType) -> Error {
    Error::Mirror(format!(
        "column {column:?} has type {data_type}, which Delta has no type for"
    ))
}

fn schema_needs_ntz(schema: &Schema) -> bool {
    fn needs(t: &DataType) -> bool {
        match t {
            DataType::Timestamp(_, None) => true,
            DataType::List(item) => needs(item.data_type()),
            DataType::Map(entries, _) => needs(entries.data_type()),
            DataType::Struct(fields) => fields.iter().any(|f| needs(f.data_type())),
            _ => false,
        }
    }
    schema.fields().iter().any(|f| needs(f.data_type()))
}

/// A table-relative path as a Delta `add.path`: a relative URI, percent-encoded (a partition
/// directory `Köln` or `a b` is named `K%C3%B6ln`, `a%20b`).
fn encode_path(path: &str) -> String {
    const KEEP: &[u8] = b"-._~/=";
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || KEEP.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn delta_error(e: DeltaTableError) -> Error {
    Error::Mirror(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_encoded_uris() {
        assert_eq!(
            encode_path("city=Köln/f_1-0_2.parquet"),
            "city=K%C3%B6ln/f_1-0_2.parquet"
        );
        assert_eq!(encode_path("a b/%2F:x"), "a%20b/%252F%3Ax");
    }
}
