//! The change model every source produces and the pipeline consumes, and the [`Source`] trait.
//!
//! A source delivers [`Event`]s in source commit order: [`Event::Schema`] before the first rows
//! of a table and whenever its columns change, [`Event::Rows`] (Arrow rows of one table with
//! their operation, position and commit time), [`Event::Truncate`], and [`Event::Commit`], the
//! boundary after which every change of the transactions up to `position` has been delivered.
//! An initial snapshot arrives first as `Rows` (operation `r`) and [`Event::SnapshotDone`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use serde_json::json;

use crate::error::Result;

/// A source table, `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableId {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// What a source knows about a table before it streams: its columns and its key.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub id: TableId,
    /// Data columns only (no CDC columns), as they are written.
    pub schema: SchemaRef,
    /// The columns that identify a row (primary key or replica identity index): the record key.
    pub key_columns: Vec<String>,
}

/// A table's columns changed (or are seen for the first time in this session).
#[derive(Debug, Clone)]
pub struct SchemaChange {
    pub table: TableId,
    /// Data columns only, in source order.
    pub schema: SchemaRef,
}

/// A cell whose value the source did not send (PostgreSQL's unchanged TOAST value): the pipeline
/// fills it from the row's previous image before committing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved {
    /// The row (in its [`RowBatch`]).
    pub row: usize,
    /// The column index in [`RowBatch::batch`].
    pub column: usize,
    /// The row whose key names the previous image: `row` itself, or, when the update changed the
    /// key, the delete row of the old key emitted just before it.
    pub key_row: usize,
}

/// The CDC columns every row batch ends with: [`crate::CDC_OP`], [`crate::CDC_POSITION`] and
/// [`crate::CDC_COMMIT_TS`].
pub fn cdc_fields() -> [arrow::datatypes::Field; 3] {
    use arrow::datatypes::{DataType, Field, TimeUnit};
    [
        Field::new(crate::CDC_OP, DataType::Utf8, false),
        Field::new(crate::CDC_POSITION, DataType::Int64, true),
        Field::new(
            crate::CDC_COMMIT_TS,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]
}

/// `data` columns followed by the CDC columns: the schema of a [`RowBatch`].
pub fn with_cdc_columns(data: &arrow::datatypes::Schema) -> SchemaRef {
    let mut fields: Vec<arrow::datatypes::Field> =
        data.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(cdc_fields());
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}

/// A cell the source sent that the lake column cannot hold (numeric `NaN`, date `infinity`):
/// the cell is null in the batch, and the pipeline must not write the row as it is (recovery
/// stops the table or diverts the row to the dead-letter table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The row (in its [`RowBatch`]).
    pub row: usize,
    pub column: String,
    /// The value as the source sent it.
    pub value: String,
    pub reason: String,
}

/// Changes to one table: data columns, then [`crate::CDC_OP`], [`crate::CDC_POSITION`] and
/// [`crate::CDC_COMMIT_TS`].
#[derive(Debug, Clone)]
pub struct RowBatch {
    pub table: TableId,
    pub batch: RecordBatch,
    /// true where the row is a delete (only its key columns matter).
    pub deletes: BooleanArray,
    pub unresolved: Vec<Unresolved>,
    /// Cells that could not be stored, in row order.
    pub rejected: Vec<Rejected>,
    /// Set when the batch ends inside a source transaction that is still open, by sources that
    /// can resume there ([`Source::durable_inside`]): a transaction larger than the batch
    /// bounds may then be written in several lake commits instead of held whole in memory.
    pub inside: Option<Inside>,
}

/// A point inside a source transaction: its change at `change` (a position of
/// [`crate::CDC_POSITION`]), in the transaction `txn`. Transactions are numbered in commit order
/// (PostgreSQL: the LSN of the commit record), and the changes of one transaction arrive in
/// increasing positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inside {
    pub txn: u64,
    pub change: u64,
}

/// One thing a source reports, in source commit order.
#[derive(Debug, Clone)]
pub enum Event {
    /// Columns of a table, sent before its first rows and again when they change.
    Schema(SchemaChange),
    /// Changed rows of one table.
    Rows(RowBatch),
    /// The tables were emptied; later rows of the same transaction follow as `Rows`.
    Truncate(Vec<TableId>),
    /// Every change of the source transactions up to and including `position` has been
    /// delivered. Positions of commits strictly increase.
    Commit { position: u64, commit_ts: i64 },
    /// Snapshot rows of `table` up to the row with this key (in key order) have been delivered;
    /// the copy is consistent with the stream from `position`.
    SnapshotProgress {
        table: TableId,
        after_key: Vec<String>,
        position: u64,
    },
    /// The snapshot of `table` is complete; streamed changes follow from `position`. When the
    /// copy was taken later than `position` (a resumed snapshot), changes below
    /// `consistent_from` replay over newer rows: until then a row may be missing from the table.
    SnapshotDone {
        table: TableId,
        position: u64,
        consistent_from: u64,
    },
    /// The rows delivered since the last `Commit` are void: their transaction will be delivered
    /// again from its start (after a reconnection).
    Rollback,
    /// Nothing happened for the `wait` given to [`Source::next`].
    Idle,
}

/// A table's resume point, stored as `inlet.checkpoint` in its commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every source transaction with a commit position at or below this is in the table.
    pub position: u64,
    pub snapshot: SnapshotState,
    /// Changes below this position replay over a snapshot taken after them (see
    /// [`Event::SnapshotDone`]); 0 when there is no such window.
    pub consistent_from: u64,
    /// The kind of source whose position this is ([`Source::kind`]); `None` in checkpoints
    /// written without one (`inlet write`, earlier versions).
    pub source: Option<String>,
    /// The server the position was read from ([`Source::origin`]), when the source tells.
    pub origin: Option<String>,
    /// The source's global transaction ids up to `position` ([`Source::gtid`]), which mean the
    /// same on every server of a replication topology (MariaDB: a GTID per domain).
    pub gtid: Option<String>,
    /// Part of a larger transaction is in the table too: every transaction committed before
    /// `inside.txn`, and its changes up to `inside.change`. The source resumes after them.
    pub inside: Option<Inside>,
}

/// How far the table's initial snapshot got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotState {
    Done,
    /// Rows up to this key (in key order) are copied. Empty: from the start, also for a copy
    /// without key order (committed in parts, it starts over when interrupted).
    After(Vec<String>),
}

impl Checkpoint {
    /// The JSON stored in the commit: the position, the kind of source it belongs to, and the
    /// position as people read it (`at`: an LSN, a binlog file and offset, …).
    pub fn to_json(&self, source: &str, at: &str) -> String {
        let snapshot = match &self.snapshot {
            SnapshotState::Done => json!("done"),
            SnapshotState::After(key) => json!({ "after": key }),
        };
        let mut value = json!({
            "position": self.position,
            "snapshot": snapshot,
        });
        // Written without a source (`inlet write` keeping a table's checkpoint): none recorded.
        if !source.is_empty() {
            value["source"] = json!(source);
            value["at"] = json!(at);
        }
        if self.consistent_from > self.position {
            value["consistent_from"] = json!(self.consistent_from);
        }
        if let Some(origin) = &self.origin {
            value["origin"] = json!(origin);
        }
        if let Some(gtid) = &self.gtid {
            value["gtid"] = json!(gtid);
        }
        if let Some(inside) = &self.inside {
            value["inside"] = json!({ "txn": inside.txn, "change": inside.change });
        }
        value.to_string()
    }

    /// Parses [`Checkpoint::to_json`]; checkpoints of `inlet write` (`{"position": N}`) count as
    /// done snapshots. `None` if it is not a checkpoint of this shape.
    pub fn from_json(text: &str) -> Option<Checkpoint> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let position = value.get("position")?.as_u64()?;
        let snapshot = match value.get("snapshot") {
            Some(serde_json::Value::Object(o)) => SnapshotState::After(
                o.get("after")?
                    .as_array()?
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => SnapshotState::Done,
        };
        let consistent_from = value
            .get("consistent_from")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let source = value
            .get("source")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            // Checkpoints written before the kind was recorded came from PostgreSQL.
            .or_else(|| value.get("lsn").map(|_| "postgres".to_string()));
        let text_of = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
        Some(Checkpoint {
            position,
            snapshot,
            consistent_from,
            source,
            origin: text_of("origin"),
            gtid: text_of("gtid"),
            inside: value.get("inside").and_then(|v| {
                Some(Inside {
                    txn: v.get("txn")?.as_u64()?,
                    change: v.get("change")?.as_u64()?,
                })
            }),
        })
    }
}

/// A source of changes.
///
/// # Contract
///
/// - **Order.** Events come in source commit order. A [`Event::Commit`] at position `p` means
///   every change of every transaction whose commit is at or below `p` has been delivered (a
///   source may coalesce several transactions under one `Commit`). Rows of one table keep the
///   source's order, and `_cdc_position` increases per key in that order. Rows of a transaction
///   not yet committed may be delivered before its `Commit` (at a schema change, a truncate or a
///   size limit); until its `Commit` they are not written, and [`Event::Rollback`] voids them
///   when the source will deliver the transaction again.
/// - **Resume.** [`Source::start`] gets each table's durable [`Checkpoint`]. The source skips,
///   per table, every transaction at or below that table's position, and re-copies tables whose
///   snapshot is not done.
/// - **Acknowledgement.** [`Source::acknowledge`] is called only with positions whose every
///   change is durable in all tables; the source may then release them (PostgreSQL: advance the
///   slot's `confirmed_flush_lsn`). A source never releases anything it was not told is durable,
///   so after a crash it replays from at or below every table's checkpoint.
/// - **Liveness.** [`Source::next`] returns [`Event::Idle`] after `wait` without news, so the
///   caller can commit by time and notice shutdown; the source keeps its connection alive
///   (keepalives) while the caller is busy between calls.
pub trait Source: Send {
    /// The kind of source (`postgres`, `mysql`, `datagen`), recorded in checkpoints: positions
    /// of different kinds cannot be compared.
    fn kind(&self) -> &'static str;

    /// The server positions are read from (e.g. `server_id 3`), recorded in checkpoints: a
    /// source that finds another server's positions there does not read its own at them.
    fn origin(&self) -> Option<String> {
        None
    }

    /// A position as people read it (an LSN, a binlog file and offset), for logs and checkpoints.
    fn display(&self, position: u64) -> String {
        position.to_string()
    }

    /// The global transaction ids of everything up to `position` (a position of a delivered
    /// [`Event::Commit`] or snapshot event), recorded in checkpoints: unlike positions they carry
    /// over to another server of the same replication topology.
    fn gtid(&self, _position: u64) -> Option<String> {
        None
    }

    /// Checks prerequisites and lists the captured tables.
    fn tables(&mut self) -> impl Future<Output = Result<Vec<TableInfo>>> + Send;

    /// Starts the snapshot and/or the stream from the tables' checkpoints (absent: no data yet).
    fn start(
        &mut self,
        checkpoints: BTreeMap<TableId, Checkpoint>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The next event, or [`Event::Idle`] after `wait`.
    fn next(&mut self, wait: Duration) -> impl Future<Output = Result<Event>> + Send;

    /// Everything up to `position` is durable downstream.
    fn acknowledge(&mut self, position: u64);

    /// The changes of `table` up to `inside` (see [`Checkpoint::inside`]) are durable although
    /// their transaction is still open: if they come again (after a lost connection), they are
    /// not delivered again. Only called for rows whose [`RowBatch::inside`] the source set; no
    /// default, so that a wrapper cannot forget to pass it on.
    fn durable_inside(&mut self, table: &TableId, inside: Inside);

    /// Stops reading (after the last acknowledgement has been sent).
    fn close(&mut self) -> impl Future<Output = Result<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip() {
        for cp in [
            Checkpoint {
                position: 0x1_0000_00A0,
                snapshot: SnapshotState::Done,
                consistent_from: 0,
                source: Some("postgres".into()),
                origin: None,
                gtid: None,
                inside: Some(Inside {
                    txn: 0x1_0000_0200,
                    change: 0x1_0000_0100,
                }),
            },
            Checkpoint {
                position: 7,
                snapshot: SnapshotState::After(vec!["42".into(), "x".into()]),
                consistent_from: 9,
                source: Some("mysql".into()),
                origin: Some("server_id 3".into()),
                gtid: Some("0-3-17,1-2-5".into()),
                inside: None,
            },
        ] {
            let kind = cp.source.clone().unwrap_or_default();
            assert_eq!(
                Checkpoint::from_json(&cp.to_json(&kind, "x")),
                Some(cp.clone())
            );
        }
        let text = Checkpoint {
            position: 0x1_0000_00A0,
            snapshot: SnapshotState::Done,
            consistent_from: 0,
            source: None,
            origin: None,
            gtid: None,
            inside: None,
        }
        .to_json("postgres", "1/A0");
        assert!(
            text.contains("\"at\":\"1/A0\"") && text.contains("\"source\":\"postgres\""),
            "{text}"
        );
        assert_eq!(
            Checkpoint::from_json(r#"{"position": 12}"#),
            Some(Checkpoint {
                position: 12,
                snapshot: SnapshotState::Done,
                consistent_from: 0,
                source: None,
                origin: None,
                gtid: None,
                inside: None,
            })
        );
        // Checkpoints of earlier versions carried an LSN: PostgreSQL's.
        assert_eq!(
            Checkpoint::from_json(r#"{"position": 12, "lsn": "0/C"}"#).and_then(|c| c.source),
            Some("postgres".to_string())
        );
        assert_eq!(Checkpoint::from_json("nope"), None);
    }
}
