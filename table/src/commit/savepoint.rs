//! Savepoints: a completed write marked to be kept, so that the table can be restored to it
//! ([`super::restore`]). As Hudi 0.14 writes them: `T.savepoint.inflight` (empty) then
//! `T.savepoint` (Avro `HoodieSavepointMetadata`), named with the time T of the write they keep,
//! listing per partition the file names of the latest slice of every file group as of T (base
//! file and log files). The cleaner keeps every slice holding a savepointed file; archival stops
//! at the oldest savepoint; rollback refuses a savepointed write.

use std::collections::{BTreeMap, HashSet};

use apache_avro::types::Value;

use super::avro_value::{
    container, field, field_str, field_strings, first, map, read_container, record, string, strings,
};
use super::lease::Lease;
use super::transaction::{Completion, Transaction, delete_instant_files, read_instant};
use crate::error::{Error, Result};
use crate::read::earliest_readable;
use crate::snapshot::Snapshot;
use crate::table::Table;
use crate::timeline::{Action, Instant, InstantTime, State, Timeline};

/// `HoodieSavepointMetadata` as Hudi's generated class declares it (both records of
/// `HoodieSavePointMetadata.avsc`).
pub(crate) const SCHEMA: &str = r#"{"type":"record","name":"HoodieSavepointMetadata","namespace":"org.apache.hudi.avro.model","fields":[{"name":"savepointedBy","type":{"type":"string","avro.java.string":"String"}},{"name":"savepointedAt","type":"long"},{"name":"comments","type":{"type":"string","avro.java.string":"String"}},{"name":"partitionMetadata","type":{"type":"map","values":{"type":"record","name":"HoodieSavepointPartitionMetadata","fields":[{"name":"partitionPath","type":{"type":"string","avro.java.string":"String"}},{"name":"savepointDataFile","type":{"type":"array","items":{"type":"string","avro.java.string":"String"}}}]},"avro.java.string":"String"}},{"name":"version","type":["int","null"],"default":1}]}"#;

/// A savepoint on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Savepoint {
    /// The time of the write it keeps (and its own).
    pub time: InstantTime,
    pub by: String,
    /// When it was taken, in milliseconds since the epoch.
    pub at_ms: i64,
    pub comments: String,
    /// File names it keeps, per partition.
    pub files: BTreeMap<String, Vec<String>>,
}

/// Savepoints the completed write at `time`. Needs the services lease: a clean must not run
/// meanwhile.
pub async fn create(
    table: &Table,
    services_lease: &Lease,
    time: &InstantTime,
    by: &str,
    comments: &str,
) -> Result<Savepoint> {
    let snapshot = Snapshot::load(table).await?;
    let timeline = snapshot.timeline();
    let refuse = |reason: String| Error::SavepointRefused {
        instant: time.clone(),
        reason,
    };
    if !timeline.is_completed_write(time) {
        return Err(refuse(
            "it is not a completed commit, delta commit, replace commit or compaction on the timeline"
                .to_string(),
        ));
    }
    if timeline.savepoints().any(|s| &s.time == time) {
        return Err(refuse("it is savepointed already".to_string()));
    }
    if let Some(clean) = timeline.pending().find(|i| i.action == Action::Clean) {
        return Err(refuse(format!(
            "clean {} is unfinished and may delete its files; finish it first (inlet clean)",
            clean.time
        )));
    }
    if let Some(earliest) = earliest_readable(table.storage(), timeline).await?
        && time < &earliest
    {
        return Err(refuse(format!(
            "the cleaner removed file versions it needs (the earliest readable instant is {earliest})"
        )));
    }
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for slice in snapshot.view().latest_slices(Some(time)) {
        let names = files.entry(slice.partition.to_string()).or_default();
        if let Some(base) = slice.base_file {
            names.push(base.file_name());
        }
        names.extend(slice.log_files.iter().map(|l| l.file_name()));
    }
    let savepoint = Savepoint {
        time: time.clone(),
        by: by.to_string(),
        at_ms: chrono::Utc::now().timestamp_millis(),
        comments: comments.to_string(),
        files,
    };
    let txn = Transaction::savepoint(table, time).await?;
    txn.complete(table, services_lease, Completion::avro(encode(&savepoint)?))
        .await?;
    Ok(savepoint)
}

/// Deletes the savepoint at `time` (its completed file, then its inflight one, as Hudi does).
pub async fn delete(table: &Table, services_lease: &Lease, time: &InstantTime) -> Result<()> {
    services_lease.check().await?;
    let timeline = Timeline::load(table.storage()).await?;
    let Some(savepoint) = timeline
        .savepoints()
        .chain(timeline.pending_savepoints())
        .find(|s| &s.time == time)
        .cloned()
    else {
        return Err(Error::InstantNotFound(format!("savepoint {time}")));
    };
    delete_instant_files(
        table.storage(),
        &savepoint,
        &[State::Completed, State::Inflight],
    )
    .await
}

/// Every completed savepoint, oldest first.
pub async fn list(table: &Table, timeline: &Timeline) -> Result<Vec<Savepoint>> {
    let mut out = Vec::new();
    for instant in timeline.savepoints() {
        out.push(read(table, instant).await?);
    }
    Ok(out)
}

/// The files savepoints keep, as (partition, file name).
pub async fn kept_files(table: &Table, timeline: &Timeline) -> Result<HashSet<(String, String)>> {
    let mut kept = HashSet::new();
    for savepoint in list(table, timeline).await? {
        for (partition, names) in savepoint.files {
            for name in names {
                kept.insert((partition.clone(), name));
            }
        }
    }
    Ok(kept)
}

async fn read(table: &Table, instant: &Instant) -> Result<Savepoint> {
    let bytes = read_instant(table.storage(), instant)
        .await?
        .ok_or_else(|| Error::InstantNotFound(instant.to_string()))?;
    let value = read_container(&bytes, SCHEMA)?;
    let mut files = BTreeMap::new();
    if let Some(Value::Map(partitions)) = field(&value, "partitionMetadata") {
        for (partition, metadata) in partitions {
            files.insert(
                partition.clone(),
                field_strings(metadata, "savepointDataFile"),
            );
        }
    }
    Ok(Savepoint {
        time: instant.time.clone(),
        by: field_str(&value, "savepointedBy")
            .unwrap_or_default()
            .to_string(),
        at_ms: match field(&value, "savepointedAt") {
            Some(Value::Long(ms)) => *ms,
            _ => 0,
        },
        comments: field_str(&value, "comments")
            .unwrap_or_default()
            .to_string(),
        files,
    })
}

fn encode(savepoint: &Savepoint) -> Result<bytes::Bytes> {
    let partitions = savepoint.files.iter().map(|(partition, names)| {
        (
            partition.clone(),
            record(vec![
                ("partitionPath", string(partition.clone())),
                ("savepointDataFile", strings(names.iter().cloned())),
            ]),
        )
    });
    container(
        SCHEMA,
        record(vec![
            ("savepointedBy", string(savepoint.by.clone())),
            ("savepointedAt", Value::Long(savepoint.at_ms)),
            ("comments", string(savepoint.comments.clone())),
            ("partitionMetadata", map(partitions)),
            ("version", first(Value::Int(1))),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_hudis_schema() -> Result<()> {
        let savepoint = Savepoint {
            time: "20240101000001000".parse()?,
            by: "ops".to_string(),
            at_ms: 1_700_000_000_123,
            comments: "before the migration".to_string(),
            files: BTreeMap::from([
                (
                    "".to_string(),
                    vec!["a_0-0-0_20240101000001000.parquet".to_string()],
                ),
                ("city=Köln".to_string(), Vec::new()),
            ]),
        };
        let bytes = encode(&savepoint)?;
        let value = read_container(&bytes, SCHEMA)?;
        assert_eq!(field_str(&value, "savepointedBy"), Some("ops"));
        let Some(Value::Map(partitions)) = field(&value, "partitionMetadata") else {
            panic!("no partition metadata: {value:?}");
        };
        assert_eq!(
            field_strings(&partitions[""], "savepointDataFile"),
            ["a_0-0-0_20240101000001000.parquet"]
        );
        assert!(partitions.contains_key("city=Köln"));
        Ok(())
    }
}
