//! Restore: the table back to a savepoint. As Hudi 0.14 does it: `R.restore.requested` (Avro
//! `HoodieRestorePlan`: every write, delta commit, replace commit and compaction after the
//! savepoint, pending or completed, newest first), `R.restore.inflight`, then each is rolled back
//! (its completed file first, so that it is hidden before its files go; then its data files; then
//! its other instant files), and `R.restore` records each rollback (Avro `HoodieRestoreMetadata`).
//! Rollback instants after the savepoint go too: what they undid is gone. A restore interrupted
//! by a crash is finished by running it again (its plan is reused; what was already rolled back
//! is skipped).
//!
//! It needs both leases: the writer's (no write may start meanwhile) and the services' (no
//! compaction or clean either).

use std::collections::HashMap;
use std::time::Instant as Stopwatch;

use apache_avro::types::Value;
use bytes::Bytes;

use super::avro_value::{
    container, field, field_str, first, map, read_container, record, some, string, strings,
};
use super::lease::Lease;
use super::rollback::{delete_files, files_written, metadata_value};
use super::transaction::{Completion, Transaction, delete_instant_files, read_instant};
use crate::error::{Error, Result};
use crate::table::Table;
use crate::timeline::{Action, Instant, InstantTime, State, Timeline};

const PLAN_SCHEMA: &str = r#"{"type":"record","name":"HoodieRestorePlan","namespace":"org.apache.hudi.avro.model","fields":[{"name":"instantsToRollback","type":{"type":"array","items":{"type":"record","name":"HoodieInstantInfo","fields":[{"name":"commitTime","type":{"type":"string","avro.java.string":"String"}},{"name":"action","type":{"type":"string","avro.java.string":"String"}}]},"default":null},"default":[]},{"name":"version","type":["int","null"],"default":2},{"name":"savepointToRestoreTimestamp","type":[{"type":"string","avro.java.string":"String"},"null"],"default":null}]}"#;
const METADATA_SCHEMA: &str = r#"{"type":"record","name":"HoodieRestoreMetadata","namespace":"org.apache.hudi.avro.model","fields":[{"name":"startRestoreTime","type":{"type":"string","avro.java.string":"String"}},{"name":"timeTakenInMillis","type":"long"},{"name":"instantsToRollback","type":{"type":"array","items":{"type":"string","avro.java.string":"String"}}},{"name":"hoodieRestoreMetadata","type":{"type":"map","values":{"type":"array","items":["null",{"type":"record","name":"HoodieRollbackMetadata","fields":[{"name":"startRollbackTime","type":{"type":"string","avro.java.string":"String"}},{"name":"timeTakenInMillis","type":"long"},{"name":"totalFilesDeleted","type":"int"},{"name":"commitsRollback","type":{"type":"array","items":{"type":"string","avro.java.string":"String"}}},{"name":"partitionMetadata","type":{"type":"map","values":{"type":"record","name":"HoodieRollbackPartitionMetadata","fields":[{"name":"partitionPath","type":{"type":"string","avro.java.string":"String"}},{"name":"successDeleteFiles","type":{"type":"array","items":{"type":"string","avro.java.string":"String"}}},{"name":"failedDeleteFiles","type":{"type":"array","items":{"type":"string","avro.java.string":"String"}}},{"name":"rollbackLogFiles","type":["null",{"type":"map","values":"long","avro.java.string":"String"}],"default":null},{"name":"logFilesFromFailedCommit","type":["null",{"type":"map","values":"long","avro.java.string":"String"}],"default":null}]},"avro.java.string":"String"}},{"name":"version","type":["int","null"],"default":1},{"name":"instantsRollback","type":{"type":"array","items":{"type":"record","name":"HoodieInstantInfo","fields":[{"name":"commitTime","type":{"type":"string","avro.java.string":"String"}},{"name":"action","type":{"type":"string","avro.java.string":"String"}}]},"default":[]},"default":[]}]}],"default":null},"avro.java.string":"String"}},{"name":"version","type":["int","null"],"default":1},{"name":"restoreInstantInfo","type":{"type":"array","items":"HoodieInstantInfo","default":null},"default":[]}]}"#;
/// `RestorePlanActionExecutor.RESTORE_PLAN_VERSION_2`.
const PLAN_VERSION: i32 = 2;

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub instant: InstantTime,
    /// The instants rolled back, newest first.
    pub rolled_back: Vec<Instant>,
    /// Data files deleted, table-relative.
    pub deleted_files: Vec<String>,
}

/// Restores the table to the savepoint at `savepoint`: everything written after it is rolled
/// back. `writer_lease` completes the restore; the caller also holds the services lease.
pub async fn restore(
    table: &Table,
    writer_lease: &Lease,
    savepoint: &InstantTime,
) -> Result<Restored> {
    let storage = table.storage();
    let timeline = Timeline::load(storage).await?;
    let refuse = |reason: String| Error::RestoreRefused {
        instant: savepoint.clone(),
        reason,
    };
    if !timeline.savepoints().any(|s| &s.time == savepoint) {
        return Err(refuse(
            "it is not a savepoint (inlet savepoints lists them)".to_string(),
        ));
    }
    if let Some(later) = timeline.savepoints().find(|s| &s.time > savepoint) {
        return Err(refuse(format!(
            "savepoint {} is later; delete it first (inlet savepoint --delete)",
            later.time
        )));
    }
    // An unfinished restore to the same savepoint is finished; to another one, refused.
    let pending = timeline
        .pending()
        .find(|i| i.action == Action::Restore)
        .cloned();
    let (mut txn, plan) = match pending {
        Some(pending) => {
            let requested = pending.with_state(State::Requested);
            let bytes = read_instant(storage, &requested)
                .await?
                .ok_or_else(|| Error::InstantNotFound(requested.to_string()))?;
            let plan = decode_plan(&bytes)?;
            if &plan.savepoint != savepoint {
                return Err(refuse(format!(
                    "restore {} to {} is unfinished; run that one again first",
                    pending.time, plan.savepoint
                )));
            }
            tracing::warn!(instant = %pending.time, "Finishing a restore that did not complete.");
            (Transaction::resume(pending), plan)
        }
        None => {
            let instants: Vec<Instant> = timeline
                .instants()
                .iter()
                .rev()
                .filter(|i| &i.time > savepoint && on_write_timeline(&timeline, i))
                .cloned()
                .collect();
            let plan = Plan {
                instants,
                savepoint: savepoint.clone(),
            };
            let txn =
                Transaction::begin(table, &timeline, Action::Restore, encode_plan(&plan)?).await?;
            (txn, plan)
        }
    };
    txn.inflight(storage, Bytes::new()).await?;
    let started = Stopwatch::now();
    let restore_time = txn.instant_time().clone();
    let mut rolled_back = Vec::new();
    let mut deleted_files = Vec::new();
    let mut per_instant = Vec::new();
    for planned in &plan.instants {
        // Re-read: a resumed restore skips what it rolled back already.
        let now = Timeline::load(storage).await?;
        let Some(instant) = now.get(&planned.time).cloned() else {
            continue;
        };
        let began = Stopwatch::now();
        let files = files_written(storage, &now, &instant).await?;
        // Hidden first: a crash from here on leaves a pending write, never a completed one
        // without its files.
        if instant.is_completed() {
            delete_instant_files(storage, &instant, &[State::Completed]).await?;
        }
        let pending = if now.is_compaction(&instant.time) {
            Instant::new(instant.time.clone(), Action::Compaction, State::Inflight)
        } else {
            instant.with_state(State::Inflight)
        };
        deleted_files.extend(delete_files(storage, &pending, &files).await?);
        delete_instant_files(storage, &pending, &[State::Inflight, State::Requested]).await?;
        let took = began.elapsed().as_millis() as i64;
        per_instant.push((
            instant.time.clone(),
            metadata_value(&restore_time, &pending, &files, took),
            current_info(&instant),
        ));
        rolled_back.push(instant);
        crate::failpoint!("restore.after-rollback");
    }
    let metadata = encode_metadata(
        &restore_time,
        started.elapsed().as_millis() as i64,
        per_instant,
    )?;
    txn.complete(table, writer_lease, Completion::avro(metadata))
        .await?;
    // Rollbacks after the savepoint undid writes that are gone now (as Hudi's finishRestore).
    let now = Timeline::load(storage).await?;
    for stale in now
        .instants()
        .iter()
        .filter(|i| i.action == Action::Rollback && &i.time > savepoint)
    {
        delete_instant_files(
            storage,
            stale,
            &[State::Completed, State::Inflight, State::Requested],
        )
        .await?;
    }
    tracing::info!(instant = %restore_time, savepoint = %savepoint, rolled_back = rolled_back.len(), "Restored.");
    Ok(Restored {
        instant: restore_time,
        rolled_back,
        deleted_files,
    })
}

/// `HoodieInstantInfo` with the action the instant has now (a pending compaction is a
/// `compaction`, a completed one a `commit`), as Hudi's restore plan records it.
fn current_info(instant: &Instant) -> Value {
    record(vec![
        ("commitTime", string(instant.time.to_string())),
        ("action", string(instant.action.name())),
    ])
}

/// Instants a restore rolls back: writes and compactions, in any state.
fn on_write_timeline(timeline: &Timeline, instant: &Instant) -> bool {
    instant.action.writes_data()
        || instant.action == Action::Compaction
        || timeline.is_compaction(&instant.time)
}

#[derive(Debug)]
struct Plan {
    instants: Vec<Instant>,
    savepoint: InstantTime,
}

fn encode_plan(plan: &Plan) -> Result<Bytes> {
    container(
        PLAN_SCHEMA,
        record(vec![
            (
                "instantsToRollback",
                Value::Array(plan.instants.iter().map(current_info).collect()),
            ),
            ("version", first(Value::Int(PLAN_VERSION))),
            (
                "savepointToRestoreTimestamp",
                first(string(plan.savepoint.to_string())),
            ),
        ]),
    )
}

fn decode_plan(bytes: &[u8]) -> Result<Plan> {
    let value = read_container(bytes, PLAN_SCHEMA)?;
    let savepoint = field_str(&value, "savepointToRestoreTimestamp")
        .ok_or_else(|| Error::Avro("a restore plan without its savepoint".to_string()))?
        .parse()?;
    let mut instants = Vec::new();
    if let Some(Value::Array(items)) = field(&value, "instantsToRollback") {
        for item in items {
            let (Some(time), Some(action)) =
                (field_str(item, "commitTime"), field_str(item, "action"))
            else {
                continue;
            };
            instants.push(Instant::new(
                time.parse()?,
                action.parse()?,
                State::Completed,
            ));
        }
    }
    Ok(Plan {
        instants,
        savepoint,
    })
}

fn encode_metadata(
    time: &InstantTime,
    took_ms: i64,
    per_instant: Vec<(InstantTime, Value, Value)>,
) -> Result<Bytes> {
    let times: Vec<String> = per_instant.iter().map(|(t, _, _)| t.to_string()).collect();
    let infos: Vec<Value> = per_instant
        .iter()
        .map(|(_, _, info)| info.clone())
        .collect();
    let rollbacks: HashMap<String, Value> = per_instant
        .into_iter()
        .map(|(t, rollback, _)| (t.to_string(), Value::Array(vec![some(rollback)])))
        .collect();
    container(
        METADATA_SCHEMA,
        record(vec![
            ("startRestoreTime", string(time.to_string())),
            ("timeTakenInMillis", Value::Long(took_ms)),
            ("instantsToRollback", strings(times)),
            ("hoodieRestoreMetadata", map(rollbacks)),
            ("version", first(Value::Int(1))),
            ("restoreInstantInfo", Value::Array(infos)),
        ]),
    )
}
