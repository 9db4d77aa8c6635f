//! The MySQL/MariaDB source: an initial snapshot copied in primary-key ranges (`snapshot`),
//! then the binlog from the position taken before it (file/position), ROW events decoded with the
//! TABLE_MAP's full metadata, each transaction delivered whole at its XID.
//!
//! Positions are `file number << 32 | offset` (the end of the event), so they increase across
//! file rotation; a table's checkpoint is the end of the last transaction it holds, which is
//! where the binlog is read again after a restart (each table skipping what it has).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema, SchemaRef};
use futures::StreamExt;
use inlet_config::OnGap;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Value};
use tokio::sync::mpsc;

use super::catalog::{self, MysqlTable};
use super::types::{ColumnBuilder, Conv, Refused};
use super::{MysqlConnect, snapshot};
use crate::change::{
    Checkpoint, Event, Rejected, RowBatch, SchemaChange, SnapshotState, Source, TableId, TableInfo,
    with_cdc_columns,
};
use crate::error::{Error, Result};

/// Whether the (upper-cased) statement names table `id` (unqualified names are in `schema`).
fn names_table(statement: &str, schema: &str, id: &TableId) -> bool {
    let name = id.name.to_ascii_uppercase();
    let qualified = format!("{}.{}", id.schema, id.name).to_ascii_uppercase();
    let words: Vec<String> = statement
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .map(|w| w.replace('`', ""))
        .collect();
    words.contains(&qualified) || (id.schema == schema && words.contains(&name))
}

/// The server's answer to a binlog request it cannot serve (a purged file, a position that is
/// not the start of an event).
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;

/// `@master_heartbeat_period`: how often an idle server sends a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Silence after which the connection counts as dead.
const SILENCE: Duration = Duration::from_secs(20);

/// What the MySQL source needs to know.
#[derive(Debug, Clone)]
pub struct MysqlOptions {
    pub connect: MysqlConnect,
    /// The replica id this reader registers with (unique among the server's replicas).
    pub server_id: u32,
    pub snapshot: bool,
    /// What to do when the binlog a table's checkpoint needs is purged.
    pub on_gap: OnGap,
    /// Snapshot ranges copied at once.
    pub snapshot_parallelism: usize,
    /// Rows per snapshot range.
    pub chunk_rows: usize,
    /// Configured key columns of tables without a primary key, by `database.table`.
    pub keys: BTreeMap<String, Vec<String>>,
}

/// A captured table: its columns' conversions (as the binlog carries them).
#[derive(Debug, Clone)]
pub(super) struct Captured {
    pub(super) table: MysqlTable,
    pub(super) convs: Vec<Conv>,
    pub(super) schema: SchemaRef,
}

impl Captured {
    fn new(table: MysqlTable) -> Self {
        let convs: Vec<Conv> = table.columns.iter().map(Conv::of).collect();
        for (c, conv) in table.columns.iter().zip(&convs) {
            if *conv == Conv::Other {
                tracing::warn!(table = %table.id, column = %c.name, column_type = %c.column_type, "No mapping for this type: written as text.");
            }
        }
        let schema = Arc::new(Schema::new(
            table
                .columns
                .iter()
                .zip(&convs)
                .map(|(c, conv)| Field::new(&c.name, conv.data_type(), true))
                .collect::<Vec<_>>(),
        ));
        Captured {
            table,
            convs,
            schema,
        }
    }
}

/// Rows of one table in the open transaction.
#[derive(Debug)]
pub(super) struct Rows {
    columns: Vec<ColumnBuilder>,
    op: StringBuilder,
    position: Int64Builder,
    commit_ts: TimestampMicrosecondBuilder,
    deletes: Vec<bool>,
    rejected: Vec<Rejected>,
}

impl Rows {
    pub(super) fn new(convs: &[Conv]) -> Self {
        Rows {
            columns: convs.iter().cloned().map(ColumnBuilder::new).collect(),
            op: StringBuilder::new(),
            position: Int64Builder::new(),
            commit_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            deletes: Vec::new(),
            rejected: Vec::new(),
        }
    }

    pub(super) fn append(
        &mut self,
        captured: &Captured,
        values: &[Value],
        op: &str,
        position: i64,
        commit_ts: Option<i64>,
    ) -> Result<()> {
        let row = self.deletes.len();
        for (i, builder) in self.columns.iter_mut().enumerate() {
            let value = values.get(i).unwrap_or(&Value::NULL);
            let name = &captured.table.columns[i].name;
            match builder.append(value) {
                Ok(()) => {}
                Err(Refused::NoRepresentation(reason)) => self.rejected.push(Rejected {
                    row,
                    column: name.clone(),
                    value: super::types::render(value),
                    reason,
                }),
                Err(Refused::Bad(reason)) => {
                    return Err(Error::SchemaChange {
                        table: captured.table.id.to_string(),
                        reason: format!("column {name}: {reason}"),
                    });
                }
            }
        }
        self.op.append_value(op);
        self.position.append_value(position);
        self.commit_ts.append_option(commit_ts);
        self.deletes.push(op == "d");
        Ok(())
    }

    pub(super) fn finish(mut self, captured: &Captured) -> Result<RowBatch> {
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|b| b.finish()).collect();
        arrays.push(Arc::new(self.op.finish()));
        arrays.push(Arc::new(self.position.finish()));
        arrays.push(Arc::new(self.commit_ts.finish()));
        Ok(RowBatch {
            table: captured.table.id.clone(),
            batch: RecordBatch::try_new(with_cdc_columns(&captured.schema), arrays)?,
            deletes: BooleanArray::from(self.deletes),
            unresolved: Vec::new(),
            rejected: self.rejected,
        })
    }
}

/// Where the source is.
enum Phase {
    NotStarted,
    /// Copying tables (`snapshot`); then streaming from `stream_from`.
    Snapshot {
        events: mpsc::Receiver<Result<Event>>,
        copier: tokio::task::JoinHandle<()>,
        stream_from: u64,
    },
    Streaming(Box<BinlogStream>),
    Closed,
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::NotStarted => "NotStarted",
            Phase::Snapshot { .. } => "Snapshot",
            Phase::Streaming(_) => "Streaming",
            Phase::Closed => "Closed",
        })
    }
}

/// The open binlog transaction.
#[derive(Debug, Default)]
struct Txn {
    commit_ts: Option<i64>,
    rows: BTreeMap<TableId, Rows>,
}

/// Binlog capture from MySQL/MariaDB.
#[derive(Debug)]
pub struct MysqlSource {
    options: MysqlOptions,
    tables: BTreeMap<TableId, Captured>,
    skipped: Vec<(TableId, String)>,
    /// The binlog file name without its number (`binlog` of `binlog.000003`).
    prefix: String,
    file: u64,
    phase: Phase,
    queue: VecDeque<Event>,
    skip: HashMap<TableId, u64>,
    txn: Option<Txn>,
    /// The end of the last transaction delivered: where a reconnection reads again.
    delivered: u64,
    /// Which server this is ([`catalog::ServerInfo::identity`]).
    identity: Option<String>,
    last_event: tokio::time::Instant,
}

impl MysqlSource {
    pub fn new(options: MysqlOptions) -> Self {
        MysqlSource {
            options,
            tables: BTreeMap::new(),
            skipped: Vec::new(),
            prefix: String::new(),
            file: 0,
            phase: Phase::NotStarted,
            queue: VecDeque::new(),
            skip: HashMap::new(),
            txn: None,
            delivered: 0,
            identity: None,
            last_event: tokio::time::Instant::now(),
        }
    }

    /// Checks the server and lists the tables `selects` picks (it gets `database.table`);
    /// tables without a key are skipped (see [`MysqlSource::skipped`]), and none left is an error.
    pub async fn discover(&mut self, selects: impl Fn(&str) -> bool) -> Result<Vec<TableInfo>> {
        let mut conn = self.options.connect.connect().await?;
        self.identity = Some(catalog::check(&mut conn).await?.identity);
        let (tables, skipped) = catalog::discover(&mut conn, &selects, &self.options.keys).await?;
        if tables.is_empty() {
            return Err(Error::Config {
                field: "source.include".to_string(),
                reason: if skipped.is_empty() {
                    "matches no table".to_string()
                } else {
                    let list: Vec<String> =
                        skipped.iter().map(|(t, r)| format!("{t}: {r}")).collect();
                    format!(
                        "no selected table can be captured:\n  {}",
                        list.join("\n  ")
                    )
                },
            });
        }
        self.skipped = skipped;
        for table in tables {
            self.tables.insert(table.id.clone(), Captured::new(table));
        }
        let _ = conn.disconnect().await;
        Ok(self.infos())
    }

    /// Reads a table's columns again (after `ALTER TABLE`, or when the binlog's table map no
    /// longer matches them) and tells the pipeline, which evolves the lake table or stops it.
    async fn refresh(&mut self, id: &TableId) -> Result<()> {
        let mut conn = self.options.connect.connect().await?;
        let (tables, _) =
            catalog::discover(&mut conn, |t| t == id.to_string(), &self.options.keys).await?;
        let _ = conn.disconnect().await;
        let Some(table) = tables.into_iter().next() else {
            tracing::warn!(table = %id, "The table is gone from the source (dropped or renamed): no more changes are captured for it.");
            self.tables.remove(id);
            return Ok(());
        };
        let captured = Captured::new(table);
        tracing::info!(table = %id, columns = captured.convs.len(), "Columns changed in the source.");
        self.queue.push_back(Event::Schema(SchemaChange {
            table: id.clone(),
            schema: captured.schema.clone(),
        }));
        self.tables.insert(id.clone(), captured);
        Ok(())
    }

    /// Selected tables that are not captured, with the reason.
    pub fn skipped(&self) -> &[(TableId, String)] {
        &self.skipped
    }

    fn infos(&self) -> Vec<TableInfo> {
        self.tables
            .values()
            .map(|c| TableInfo {
                id: c.table.id.clone(),
                schema: c.schema.clone(),
                key_columns: c.table.key.clone(),
            })
            .collect()
    }

    fn mysql_err(context: &str) -> impl Fn(mysql_async::Error) -> Error + '_ {
        move |source| Error::Mysql {
            context: context.to_string(),
            source,
        }
    }

    /// The binlog file holding position `position`.
    fn file_name(&self, position: u64) -> String {
        format!("{}.{:06}", self.prefix, position >> 32)
    }

    /// Reads `binlog.000003` into the prefix and number.
    fn set_file(&mut self, name: &str) {
        if let Some((prefix, number)) = parse_file(name) {
            self.prefix = prefix;
            self.file = number;
        }
    }

    async fn start_streaming(&mut self, position: u64) -> Result<()> {
        let mut conn = self.options.connect.connect().await?;
        let file = self.file_name(position);
        let offset = (position & 0xFFFF_FFFF).max(4);
        // A position the server has purged is an error that names it, not an empty stream.
        let logs: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(Self::mysql_err("listing the binlog files"))?;
        let names: Vec<String> = logs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
        if !names.contains(&file) {
            return Err(Error::Protocol(format!(
                "the binlog position {file}:{offset} that the lake tables need is gone from the \
                 server (its binlogs start at {}): changes since are lost. Set source.on_gap = \
                 \"resnapshot\" to copy the tables again, and keep binlogs longer \
                 (binlog_expire_logs_seconds)",
                names.first().map_or("nothing", String::as_str)
            )));
        }
        // Heartbeats from an idle server, so that silence means a dead connection.
        conn.query_drop(format!(
            "SET @master_heartbeat_period = {}",
            HEARTBEAT.as_nanos()
        ))
        .await
        .map_err(Self::mysql_err("setting the heartbeat period"))?;
        tracing::info!(from = %format!("{file}:{offset}"), "Streaming the binlog.");
        let stream = conn
            .get_binlog_stream(
                BinlogStreamRequest::new(self.options.server_id)
                    .with_filename(file.as_bytes())
                    .with_pos(offset),
            )
            .await
            .map_err(Self::mysql_err("starting the binlog stream"))?;
        self.file = position >> 32;
        self.delivered = position;
        self.last_event = tokio::time::Instant::now();
        self.phase = Phase::Streaming(Box::new(stream));
        Ok(())
    }

    /// The connection was lost (an error, or silence beyond the heartbeats): the open
    /// transaction is dropped (it comes again) and the stream restarts after the last
    /// transaction delivered, with backoff between attempts.
    async fn reconnect(&mut self, why: &str) -> Result<()> {
        self.txn = None;
        if let Phase::Streaming(stream) = std::mem::replace(&mut self.phase, Phase::NotStarted) {
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.close()).await;
        }
        let mut delay = Duration::from_millis(500);
        loop {
            tracing::warn!(
                reason = why,
                delay_ms = delay.as_millis() as u64,
                "Binlog connection lost; reconnecting."
            );
            tokio::time::sleep(delay).await;
            match self.start_streaming(self.delivered).await {
                Ok(()) => return Ok(()),
                Err(e @ (Error::Mysql { .. } | Error::Stopped)) => {
                    tracing::warn!(error = %e, "Reconnecting failed; trying again.");
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads binlog events until something is queued or `wait` passes.
    async fn step(&mut self, wait: Duration) -> Result<()> {
        let Phase::Streaming(stream) = &mut self.phase else {
            return Ok(());
        };
        let event = match tokio::time::timeout(wait, stream.next()).await {
            Err(_) => {
                if self.last_event.elapsed() > SILENCE {
                    return self.reconnect("no heartbeat").await;
                }
                self.queue.push_back(Event::Idle);
                return Ok(());
            }
            Ok(None) => return self.reconnect("the server closed the stream").await,
            // The server cannot send from this position (purged, or not the start of an
            // event): reconnecting would get the same answer forever.
            Ok(Some(Err(mysql_async::Error::Server(e))))
                if e.code == ER_MASTER_FATAL_ERROR_READING_BINLOG =>
            {
                return Err(Error::Protocol(format!(
                    "the server cannot send its binlog from {}: {}",
                    self.display(self.delivered),
                    e.message
                )));
            }
            Ok(Some(Err(e))) => return self.reconnect(&e.to_string()).await,
            Ok(Some(Ok(event))) => event,
        };
        self.last_event = tokio::time::Instant::now();
        let log_pos = u64::from(event.header().log_pos());
        let timestamp = i64::from(event.header().timestamp()) * 1_000_000;
        let data = event
            .read_data()
            .map_err(|e| Error::Protocol(format!("decoding a binlog event: {e}")))?;
        let position = |file: u64| file << 32 | log_pos;
        match data {
            Some(EventData::RotateEvent(rotate)) => {
                let name = rotate.name().to_string();
                self.set_file(&name);
            }
            Some(EventData::QueryEvent(query)) => {
                let text = query.query().trim().to_string();
                let upper = text.to_ascii_uppercase();
                if upper == "BEGIN" {
                    self.txn = Some(Txn {
                        commit_ts: Some(timestamp),
                        rows: BTreeMap::new(),
                    });
                } else if upper == "COMMIT" {
                    self.commit(position(self.file), timestamp)?;
                } else if upper.starts_with("TRUNCATE") {
                    let schema = query.schema().to_string();
                    let truncated: Vec<TableId> = self
                        .tables
                        .keys()
                        .filter(|id| names_table(&upper, &schema, id))
                        .cloned()
                        .collect();
                    if !truncated.is_empty() {
                        self.queue.push_back(Event::Truncate(truncated));
                        self.queue.push_back(Event::Commit {
                            position: position(self.file),
                            commit_ts: timestamp,
                        });
                        self.delivered = position(self.file);
                    }
                } else if upper.starts_with("ALTER TABLE")
                    || upper.starts_with("RENAME TABLE")
                    || upper.starts_with("DROP TABLE")
                {
                    let schema = query.schema().to_string();
                    let named: Vec<TableId> = self
                        .tables
                        .keys()
                        .filter(|id| names_table(&upper, &schema, id))
                        .cloned()
                        .collect();
                    for id in named {
                        self.refresh(&id).await?;
                    }
                }
            }
            Some(EventData::RowsEvent(rows)) => {
                let Some(tme) = stream.get_tme(rows.table_id()) else {
                    return Ok(());
                };
                let id = TableId::new(
                    tme.database_name().to_string(),
                    tme.table_name().to_string(),
                );
                let Some(captured) = self.tables.get(&id) else {
                    return Ok(());
                };

                let at = position(self.file);
                if self.skip.get(&id).is_some_and(|&s| at <= s) {
                    return Ok(());
                }
                let txn = self.txn.get_or_insert_with(|| Txn {
                    commit_ts: Some(timestamp),
                    rows: BTreeMap::new(),
                });
                let out = txn
                    .rows
                    .entry(id.clone())
                    .or_insert_with(|| Rows::new(&captured.convs));
                let tme = tme.clone();
                let key_index: Vec<usize> = captured
                    .table
                    .key
                    .iter()
                    .filter_map(|k| captured.table.columns.iter().position(|c| &c.name == k))
                    .collect();
                for row in rows.rows(&tme) {
                    let (before, after) =
                        row.map_err(|e| Error::Protocol(format!("decoding rows of {id}: {e}")))?;
                    // Columns are matched by name (the table map's full metadata): an event
                    // written before a column was added has no value for it (null), one written
                    // before a column was dropped has a value inlet can no longer place.
                    let values =
                        |image: &mysql_async::binlog::row::BinlogRow| -> Result<Vec<Value>> {
                            let names: Vec<String> = image
                                .columns_ref()
                                .iter()
                                .map(|c| c.name_str().into_owned())
                                .collect();
                            for (i, name) in names.iter().enumerate() {
                                let known = captured.table.columns.iter().any(|c| &c.name == name);
                                let valued = !matches!(
                                    image.as_ref(i),
                                    None | Some(BinlogValue::Value(Value::NULL))
                                );
                                if !known && valued {
                                    return Err(Error::SchemaChange {
                                        table: id.to_string(),
                                        reason: format!(
                                            "the binlog holds values of column {name}, which the table \
                                         no longer has (it was dropped after this change, and \
                                         inlet started behind the drop): recreate the lake table"
                                        ),
                                    });
                                }
                            }
                            captured
                                .table
                                .columns
                                .iter()
                                .map(|c| {
                                    match names
                                        .iter()
                                        .position(|n| n == &c.name)
                                        .and_then(|i| image.as_ref(i))
                                    {
                                        Some(BinlogValue::Value(v)) => Ok(v.clone()),
                                        Some(BinlogValue::Jsonb(j)) => Ok(Value::Bytes(
                                            serde_json::Value::try_from(j.clone())
                                                .map(|v| v.to_string())
                                                .unwrap_or_default()
                                                .into_bytes(),
                                        )),
                                        Some(other) => Err(Error::Protocol(format!(
                                            "{id}: a value the binlog cannot give whole ({other:?})"
                                        ))),
                                        None => Ok(Value::NULL),
                                    }
                                })
                                .collect()
                        };
                    let ts = txn.commit_ts;
                    match (&rows, before, after) {
                        (
                            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_),
                            _,
                            Some(a),
                        ) => {
                            out.append(captured, &values(&a)?, "c", at as i64, ts)?;
                        }
                        (
                            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_),
                            Some(b),
                            _,
                        ) => {
                            out.append(captured, &values(&b)?, "d", at as i64, ts)?;
                        }
                        (_, Some(b), Some(a)) => {
                            let (b, a) = (values(&b)?, values(&a)?);
                            // A changed key: the old key is deleted first.
                            if key_index.iter().any(|&i| b.get(i) != a.get(i)) {
                                out.append(captured, &b, "d", at as i64, ts)?;
                            }
                            out.append(captured, &a, "u", at as i64, ts)?;
                        }
                        _ => {}
                    }
                }
            }
            Some(EventData::XidEvent(_)) => self.commit(position(self.file), timestamp)?,
            _ => {}
        }
        Ok(())
    }

    /// The open transaction's rows, then its commit.
    fn commit(&mut self, position: u64, timestamp: i64) -> Result<()> {
        let txn = self.txn.take().unwrap_or_default();
        for (id, rows) in txn.rows {
            if let Some(captured) = self.tables.get(&id) {
                self.queue.push_back(Event::Rows(rows.finish(captured)?));
            }
        }
        self.queue.push_back(Event::Commit {
            position,
            commit_ts: txn.commit_ts.unwrap_or(timestamp),
        });
        self.delivered = position;
        Ok(())
    }

    /// A binlog position that every later read sees whole: MariaDB's `binlog_snapshot_position`
    /// of a consistent-snapshot transaction (the transactions before it are committed, which
    /// `SHOW MASTER STATUS` does not promise: a transaction is in the binlog before it commits).
    async fn snapshot_position(&mut self, conn: &mut Conn) -> Result<u64> {
        conn.query_drop(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
             START TRANSACTION WITH CONSISTENT SNAPSHOT",
        )
        .await
        .map_err(Self::mysql_err("starting the snapshot"))?;
        let status: Vec<(String, String)> = conn
            .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(Self::mysql_err("reading the snapshot's binlog position"))?;
        conn.query_drop("COMMIT")
            .await
            .map_err(Self::mysql_err("ending the snapshot transaction"))?;
        let value = |name: &str| {
            status
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        match (
            value("binlog_snapshot_file"),
            value("binlog_snapshot_position"),
        ) {
            (Some(file), Some(offset)) if !file.is_empty() => {
                self.set_file(&file);
                Ok(self.file << 32 | offset.parse::<u64>().unwrap_or(4))
            }
            _ => Err(Error::Config {
                field: "source.snapshot".to_string(),
                reason: "the server gives no binlog_snapshot_file/position, the binlog position \
                         a lock-free snapshot starts from (MariaDB does; MySQL does not, and \
                         inlet does not take a global read lock): use snapshot = \"never\" and \
                         load the existing rows another way"
                    .to_string(),
            }),
        }
    }

    /// Tables whose checkpoint lies in a binlog file the server has purged, or was read from
    /// another server, miss changes. Fails naming them, or with `on_gap = "resnapshot"` empties
    /// them and copies them again.
    async fn check_gap(
        &mut self,
        conn: &mut Conn,
        checkpoints: &mut BTreeMap<TableId, Checkpoint>,
        current: u64,
    ) -> Result<()> {
        let logs: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(Self::mysql_err("listing the binlog files"))?;
        let Some((first_name, first)) = logs
            .first()
            .and_then(|r| r.get::<String, _>(0))
            .and_then(|name| Some((name.clone(), parse_file(&name)?.1)))
        else {
            return Ok(());
        };
        // Positions read from another server (a failover, or the connection moved to another
        // database) mean nothing in this server's binlog.
        let foreign: Vec<(TableId, String)> = checkpoints
            .iter()
            .filter(|(t, _)| self.tables.contains_key(*t))
            .filter_map(|(t, c)| match (&c.origin, &self.identity) {
                (Some(theirs), Some(ours)) if theirs != ours => Some((t.clone(), theirs.clone())),
                _ => None,
            })
            .collect();
        let affected: Vec<TableId> = checkpoints
            .iter()
            .filter(|(t, c)| self.tables.contains_key(*t) && c.position >> 32 < first)
            .map(|(t, _)| t.clone())
            .chain(foreign.iter().map(|(t, _)| t.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if affected.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = affected
            .iter()
            .map(|t| format!("{t} (at {})", self.display(checkpoints[t].position)))
            .collect();
        if self.options.on_gap == OnGap::Fail || !self.options.snapshot {
            let advice = "Set source.on_gap = \"resnapshot\" (with snapshot = \"initial\") to \
                          copy those tables again, or remove their lake tables";
            if let Some((_, theirs)) = foreign.first() {
                return Err(Error::Protocol(format!(
                    "the lake tables {} hold binlog positions of the server with {theirs}, and \
                     this is the server with {} (a failover, or another database): binlog \
                     positions do not carry over between servers. {advice}",
                    names.join(", "),
                    self.identity.as_deref().unwrap_or("?")
                )));
            }
            return Err(Error::Protocol(format!(
                "the binlog positions that {} need are gone from the server (its binlogs \
                 start at {first_name}): changes since are lost. {advice}; and keep binlogs \
                 longer (binlog_expire_logs_seconds)",
                names.join(", ")
            )));
        }
        tracing::warn!(tables = %names.join(", "), first = %first_name, "The lake tables miss changes (their binlog is purged, or their positions are of another server): emptying and copying them again.");
        for table in &affected {
            checkpoints.remove(table);
        }
        self.queue.push_back(Event::Truncate(affected.clone()));
        // Until their copies are done these tables are snapshotting: the emptying commit
        // records a copy to redo.
        for table in affected {
            self.queue.push_back(Event::SnapshotProgress {
                table,
                after_key: Vec::new(),
                position: current,
            });
        }
        Ok(())
    }

    /// The server's current binlog position.
    async fn master_position(&mut self, conn: &mut Conn) -> Result<u64> {
        let (file, position) = binlog_position(conn).await?;
        self.set_file(&file);
        Ok(position)
    }
}

/// `binlog.000003` as its prefix and number.
fn parse_file(name: &str) -> Option<(String, u64)> {
    // The artificial ROTATE before the format description carries 4 checksum bytes.
    let name: String = name.chars().take_while(|c| c.is_ascii_graphic()).collect();
    let (prefix, number) = name.rsplit_once('.')?;
    let digits: String = number
        .chars()
        .take_while(char::is_ascii_digit)
        .take(6)
        .collect();
    Some((prefix.to_string(), digits.parse().ok()?))
}

/// The server's current binlog file and position (`file number << 32 | offset`).
pub(super) async fn binlog_position(conn: &mut Conn) -> Result<(String, u64)> {
    let row: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(MysqlSource::mysql_err("reading the binlog position"))?;
    let row = row.ok_or_else(|| {
        Error::Protocol("SHOW MASTER STATUS returned nothing: is log_bin on?".into())
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let offset: u64 = row.get(1).unwrap_or(4);
    let (_, number) = parse_file(&file)
        .ok_or_else(|| Error::Protocol(format!("an unexpected binlog file name {file:?}")))?;
    Ok((file, number << 32 | offset))
}

impl Source for MysqlSource {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn origin(&self) -> Option<String> {
        self.identity.clone()
    }

    fn display(&self, position: u64) -> String {
        format!("{}:{}", self.file_name(position), position & 0xFFFF_FFFF)
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>> {
        if self.tables.is_empty() {
            return self.discover(|_| true).await;
        }
        Ok(self.infos())
    }

    async fn start(&mut self, mut checkpoints: BTreeMap<TableId, Checkpoint>) -> Result<()> {
        let mut conn = self.options.connect.connect().await?;
        let current = self.master_position(&mut conn).await?;
        for captured in self.tables.values() {
            self.queue.push_back(Event::Schema(SchemaChange {
                table: captured.table.id.clone(),
                schema: captured.schema.clone(),
            }));
        }
        self.check_gap(&mut conn, &mut checkpoints, current).await?;
        let copies: Vec<TableId> = self
            .tables
            .keys()
            .filter(|id| {
                !matches!(
                    checkpoints.get(*id).map(|c| &c.snapshot),
                    Some(SnapshotState::Done)
                )
            })
            .cloned()
            .collect();
        self.skip = checkpoints
            .iter()
            .map(|(t, c)| (t.clone(), c.position))
            .collect();
        let resume = checkpoints
            .values()
            .filter(|c| c.snapshot == SnapshotState::Done)
            .map(|c| c.position)
            .min();
        if copies.is_empty() || !self.options.snapshot {
            for table in copies {
                self.skip.insert(table.clone(), current);
                self.queue.push_back(Event::SnapshotDone {
                    table,
                    position: current,
                    consistent_from: 0,
                });
            }
            let _ = conn.disconnect().await;
            return self.start_streaming(resume.unwrap_or(current)).await;
        }
        let position = self.snapshot_position(&mut conn).await?;
        let _ = conn.disconnect().await;
        let mut start = resume.map_or(position, |r| r.min(position));
        let mut jobs = Vec::new();
        for table in copies {
            let after = match checkpoints.get(&table).map(|c| (&c.snapshot, c.position)) {
                // A copy interrupted after some ranges: it goes on after the last key copied.
                // Rows up to there were copied after `earlier`: the binlog replays from there.
                Some((SnapshotState::After(key), earlier)) if !key.is_empty() => {
                    tracing::info!(table = %table, after = ?key, "Resuming the snapshot after the last copied key.");
                    start = start.min(earlier);
                    Some((key.clone(), earlier))
                }
                _ => None,
            };
            let position = after.as_ref().map_or(position, |(_, earlier)| *earlier);
            self.skip.insert(table.clone(), position);
            jobs.push(snapshot::Job {
                table: self.tables[&table].clone(),
                after: after.map(|(key, _)| key),
                position,
            });
        }
        tracing::info!(tables = jobs.len(), from = %self.display(position), parallelism = self.options.snapshot_parallelism, "Copying the snapshot.");
        let (tx, events) = mpsc::channel(4 * self.options.snapshot_parallelism.max(1));
        let copier = tokio::spawn(snapshot::run(
            self.options
                .connect
                .pool(self.options.snapshot_parallelism + 1),
            jobs,
            self.options.snapshot_parallelism,
            self.options.chunk_rows,
            tx,
        ));
        self.phase = Phase::Snapshot {
            events,
            copier,
            stream_from: start,
        };
        Ok(())
    }

    async fn next(&mut self, wait: Duration) -> Result<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(event);
            }
            match &mut self.phase {
                Phase::Snapshot {
                    events,
                    stream_from,
                    ..
                } => match events.recv().await {
                    Some(event) => return event,
                    None => {
                        let from = *stream_from;
                        self.start_streaming(from).await?;
                    }
                },
                Phase::Streaming(_) => self.step(wait).await?,
                Phase::NotStarted | Phase::Closed => return Err(Error::Stopped),
            }
        }
    }

    fn acknowledge(&mut self, _position: u64) {
        // The binlog keeps no reader state: the checkpoints in the lake are the position.
    }

    async fn close(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Streaming(stream) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), stream.close()).await;
            }
            Phase::Snapshot { copier, .. } => copier.abort(),
            _ => {}
        }
        Ok(())
    }
}
