//! The MySQL/MariaDB source: an initial snapshot copied in primary-key ranges (`snapshot`),
//! then the binlog from the position taken before it (file/position), ROW events decoded with the
//! TABLE_MAP's full metadata, each transaction delivered whole at its XID.
//!
//! Positions are `generation << 52 | file number << 32 | offset` (the end of the event), so they
//! increase across file rotation; a table's checkpoint is the end of the last transaction it
//! holds, which is where the binlog is read again after a restart (each table skipping what it
//! has). Every checkpoint also holds the GTID state of that point ([`gtid`]; MariaDB: a position
//! per domain; MySQL with `gtid_mode=ON`: the executed set, once known exactly): when the
//! tables' checkpoints come from another server (a failover to a replica), the stream starts
//! from their GTIDs instead, each table skips the transactions its GTID state includes, and
//! the generation goes up by one, so that the new server's positions sort after the old one's.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use inlet_config::{OnGap, SnapshotLocking};
use mysql_async::binlog::events::EventData;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use tokio::sync::mpsc;

use super::catalog;
use super::gtid::{self, Gtid, GtidState, TxnId};
use super::rows::{self, Captured, Plan, Rows};
use super::{MysqlConnect, snapshot};
use crate::change::{
    Checkpoint, Event, Inside, SchemaChange, SnapshotState, Source, TableId, TableInfo,
};
use crate::error::{Error, Result};

mod position;
mod resume;

pub(super) use position::{GENERATION_SHIFT, binlog_position};
use position::{file_of, generation_of, offset_of};

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

/// Whether table `id` already has the transaction ending at `at` (with GTID `gtid`).
fn has(skip: &HashMap<TableId, Skip>, id: &TableId, at: u64, gtid: Option<&TxnId>) -> bool {
    match skip.get(id) {
        None => false,
        Some(Skip::Position(p)) => at <= *p,
        Some(Skip::Gtid(g)) => gtid.is_some_and(|gtid| g.includes(gtid)),
    }
}

/// The server's answer to a binlog request it cannot serve (a purged file, a position that is
/// not the start of an event).
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;

/// GTID positions of the latest commits kept for [`Source::gtid`]: the pipeline asks for
/// positions it has just processed, never for old ones.
const GTIDS_KEPT: usize = 100_000;

/// What a table already has, so the stream skips it.
#[derive(Debug, Clone)]
enum Skip {
    /// Transactions ending at or below this position (of this server).
    Position(u64),
    /// Transactions this GTID state includes (read from another server).
    Gtid(GtidState),
}

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
    /// How the snapshot's start position is taken.
    pub locking: SnapshotLocking,
    /// Configured key columns of tables without a primary key, by `database.table`.
    pub keys: BTreeMap<String, Vec<String>>,
}

/// Where a binlog stream starts.
#[derive(Debug, Clone)]
enum StreamFrom {
    /// A position of this server.
    Position(u64),
    /// After the transactions of a GTID state (MariaDB: `@slave_connect_state`; MySQL: the
    /// executed set of `COM_BINLOG_DUMP_GTID`).
    Gtid(GtidState),
}

/// Where the source is.
enum Phase {
    NotStarted,
    /// Copying tables (`snapshot`); then streaming from `stream_from`.
    Snapshot {
        events: mpsc::Receiver<Result<Event>>,
        copier: tokio::task::JoinHandle<()>,
        stream_from: StreamFrom,
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
    /// Its MariaDB GTID, and whether it is a standalone group (DDL: no `COMMIT` ends it).
    gtid: Option<(TxnId, bool)>,
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
    skip: HashMap<TableId, Skip>,
    /// The column plan of each table id's latest TABLE_MAP.
    plans: HashMap<u64, Plan>,
    txn: Option<Txn>,
    /// The end of the last transaction delivered: where a reconnection reads again.
    delivered: u64,
    /// Where the stream started when it started by GTID and has delivered nothing since.
    started_at: Option<GtidState>,
    /// Which server this is ([`catalog::ServerInfo::identity`]).
    identity: Option<String>,
    /// MariaDB (GTIDs tracked), not MySQL.
    mariadb: bool,
    /// MySQL with `gtid_mode=ON`: GTID sets tracked.
    mysql_gtids: bool,
    /// The generation of this session's positions (see the module doc).
    generation: u64,
    /// MariaDB: the GTID position at `delivered`.
    gtid: Option<GtidState>,
    /// MariaDB: the GTID positions of the latest delivered positions ([`Source::gtid`]).
    gtids: BTreeMap<u64, String>,
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
            plans: HashMap::new(),
            txn: None,
            delivered: 0,
            started_at: None,
            identity: None,
            mariadb: false,
            mysql_gtids: false,
            generation: 0,
            gtid: None,
            gtids: BTreeMap::new(),
            last_event: tokio::time::Instant::now(),
        }
    }

    /// Checks the server and lists the tables `selects` picks (it gets `database.table`);
    /// tables without a key are skipped (see [`MysqlSource::skipped`]), and none left is an error.
    pub async fn discover(&mut self, selects: impl Fn(&str) -> bool) -> Result<Vec<TableInfo>> {
        let mut conn = self.options.connect.connect().await?;
        let info = catalog::check(&mut conn).await?;
        self.identity = Some(info.identity);
        self.mariadb = info.mariadb;
        if !info.mariadb {
            let mode: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_mode")
                .await
                .map_err(Self::mysql_err("reading gtid_mode"))?;
            self.mysql_gtids = mode.is_some_and(|m| m.eq_ignore_ascii_case("ON"));
        }
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
        self.plans.retain(|_, plan| plan.table != *id);
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

    async fn start_streaming(&mut self, from: StreamFrom) -> Result<()> {
        let mut conn = self.options.connect.connect().await?;
        if self.mariadb {
            // GTID events instead of `BEGIN` (MariaDB rewrites them for older replicas).
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(Self::mysql_err("announcing GTID support"))?;
        }
        let request = BinlogStreamRequest::new(self.options.server_id);
        // The file name the request borrows.
        let file = match &from {
            StreamFrom::Position(position) => self.file_name(*position),
            StreamFrom::Gtid(_) => String::new(),
        };
        let request = match &from {
            StreamFrom::Position(position) => {
                let offset = offset_of(*position).max(4);
                // A position the server has purged is an error that names it, not an empty
                // stream.
                let logs: Vec<mysql_async::Row> = conn
                    .query("SHOW BINARY LOGS")
                    .await
                    .map_err(Self::mysql_err("listing the binlog files"))?;
                let names: Vec<String> =
                    logs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
                if !names.contains(&file) {
                    return Err(Error::Protocol(format!(
                        "the binlog position {file}:{offset} that the lake tables need is gone \
                         from the server (its binlogs start at {}): changes since are lost. Set \
                         source.on_gap = \"resnapshot\" to copy the tables again, and keep \
                         binlogs longer (binlog_expire_logs_seconds)",
                        names.first().map_or("nothing", String::as_str)
                    )));
                }
                self.gtid = self.gtid_at(&mut conn, &file, offset, *position).await?;
                tracing::info!(from = %format!("{file}:{offset}"), "Streaming the binlog.");
                self.file = file_of(*position);
                self.delivered = *position;
                self.started_at = None;
                self.record_gtid(*position);
                request.with_filename(file.as_bytes()).with_pos(offset)
            }
            StreamFrom::Gtid(gtid) => {
                tracing::info!(gtid = %gtid, "Streaming the binlog from a GTID position.");
                self.gtid = Some(gtid.clone());
                self.started_at = Some(gtid.clone());
                match gtid {
                    // MariaDB's replica protocol: the position to continue from, then a dump
                    // without a file name.
                    GtidState::Maria(_) => {
                        conn.exec_drop("SET @slave_connect_state = ?", (gtid.to_string(),))
                            .await
                            .map_err(Self::mysql_err("setting the GTID position to stream from"))?;
                        request
                    }
                    // MySQL's: COM_BINLOG_DUMP_GTID with the executed set; the server sends
                    // every transaction not in it.
                    GtidState::Mysql(set) => request.with_gtid().with_gtid_set(
                        set.intervals()
                            .map(|(uuid, ranges)| {
                                mysql_async::Sid::new(uuid).with_intervals(
                                    ranges
                                        .into_iter()
                                        .map(|(s, e)| mysql_async::GnoInterval::new(s, e))
                                        .collect(),
                                )
                            })
                            .collect::<Vec<_>>(),
                    ),
                }
            }
        };
        // Heartbeats from an idle server, so that silence means a dead connection.
        conn.query_drop(format!(
            "SET @master_heartbeat_period = {}",
            HEARTBEAT.as_nanos()
        ))
        .await
        .map_err(Self::mysql_err("setting the heartbeat period"))?;
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(Self::mysql_err("starting the binlog stream"))?;
        self.last_event = tokio::time::Instant::now();
        self.phase = Phase::Streaming(Box::new(stream));
        Ok(())
    }

    /// Where a reconnection reads again: after the last transaction delivered.
    fn resume_from(&self) -> StreamFrom {
        match &self.started_at {
            Some(gtid) => StreamFrom::Gtid(gtid.clone()),
            None => StreamFrom::Position(self.delivered),
        }
    }

    /// Where the stream is, for messages.
    fn describe(&self, from: &StreamFrom) -> String {
        match from {
            StreamFrom::Position(p) => self.display(*p),
            StreamFrom::Gtid(g) => format!("GTID position {g}"),
        }
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
            match self.start_streaming(self.resume_from()).await {
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
                    self.describe(&self.resume_from()),
                    e.message
                )));
            }
            Ok(Some(Err(e))) => return self.reconnect(&e.to_string()).await,
            Ok(Some(Ok(event))) => event,
        };
        self.last_event = tokio::time::Instant::now();
        let log_pos = u64::from(event.header().log_pos());
        let timestamp = i64::from(event.header().timestamp()) * 1_000_000;
        if event.header().event_type_raw() == gtid::GTID_EVENT {
            let (gtid, flags) = Gtid::from_event(event.data(), event.header().server_id())
                .ok_or_else(|| Error::Protocol("a GTID event too short to read".into()))?;
            self.end_standalone();
            self.txn = Some(Txn {
                commit_ts: Some(timestamp),
                rows: BTreeMap::new(),
                gtid: Some((TxnId::Maria(gtid), flags & gtid::FL_STANDALONE != 0)),
            });
            return Ok(());
        }
        let data = event
            .read_data()
            .map_err(|e| Error::Protocol(format!("decoding a binlog event: {e}")))?;
        let at = self.generation << GENERATION_SHIFT | self.file << 32 | log_pos;
        match data {
            // MySQL: a transaction's GTID, before its BEGIN (a DDL has no BEGIN and no COMMIT:
            // like MariaDB's standalone groups it ends where the next GTID begins).
            Some(EventData::GtidEvent(event)) if self.mysql_gtids => {
                self.end_standalone();
                match gtid::mysql_txn_id(&event) {
                    Some(id) => {
                        self.txn = Some(Txn {
                            commit_ts: Some(timestamp),
                            rows: BTreeMap::new(),
                            gtid: Some((id, true)),
                        })
                    }
                    None => self.stop_tracking_gtids("a tagged GTID"),
                }
            }
            // MySQL: every transaction of the earlier binlog files, at the start of each file.
            // Added to the state, never replacing it (a stream by GTID set skips more).
            Some(EventData::PreviousGtidsEvent(event)) if self.mysql_gtids => {
                match gtid::previous_set(&event) {
                    Some(previous) => {
                        let mut state = match self.gtid.take() {
                            Some(GtidState::Mysql(set)) => set,
                            _ => Default::default(),
                        };
                        state.union(&previous);
                        self.gtid = Some(GtidState::Mysql(state));
                    }
                    None => self.stop_tracking_gtids("tagged GTIDs"),
                }
            }
            Some(EventData::RotateEvent(rotate)) => {
                let name = rotate.name().to_string();
                self.set_file(&name);
            }
            Some(EventData::QueryEvent(query)) => {
                let text = query.query().trim().to_string();
                let upper = text.to_ascii_uppercase();
                if upper == "BEGIN" {
                    // MySQL: after its GTID event, which inlet does not track.
                    let gtid = self.txn.take().and_then(|t| t.gtid);
                    self.txn = Some(Txn {
                        commit_ts: Some(timestamp),
                        rows: BTreeMap::new(),
                        gtid,
                    });
                } else if upper == "COMMIT" {
                    self.commit(at, timestamp)?;
                } else if upper.starts_with("TRUNCATE") {
                    let schema = query.schema().to_string();
                    let gtid = self.txn.as_ref().and_then(|t| t.gtid).map(|(g, _)| g);
                    // A table already past it (a restart reads from the oldest checkpoint) has
                    // rows written after it.
                    let truncated: Vec<TableId> = self
                        .tables
                        .keys()
                        .filter(|id| names_table(&upper, &schema, id))
                        .filter(|id| !has(&self.skip, id, at, gtid.as_ref()))
                        .cloned()
                        .collect();
                    if !truncated.is_empty() {
                        self.queue.push_back(Event::Truncate(truncated));
                        self.commit(at, timestamp)?;
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

                let gtid = self.txn.as_ref().and_then(|t| t.gtid).map(|(g, _)| g);
                if has(&self.skip, &id, at, gtid.as_ref()) {
                    return Ok(());
                }
                let table_id = rows.table_id();
                if self
                    .plans
                    .get(&table_id)
                    .is_none_or(|plan| plan.table_map != *tme)
                {
                    self.plans.insert(table_id, Plan::new(tme, captured)?);
                }
                let plan = &self.plans[&table_id];
                let txn = self.txn.get_or_insert_with(|| Txn {
                    commit_ts: Some(timestamp),
                    rows: BTreeMap::new(),
                    gtid: None,
                });
                let out = txn
                    .rows
                    .entry(id)
                    .or_insert_with(|| Rows::new(&captured.convs));
                let ts = txn.commit_ts;
                rows::each_row(&rows, plan, |op, cells, missing| {
                    out.append_image(captured, plan, cells, missing, op, at as i64, ts)
                })?;
            }
            Some(EventData::XidEvent(_)) => self.commit(at, timestamp)?,
            _ => {}
        }
        Ok(())
    }

    /// MySQL 8.4's tagged GTIDs are not read: from here on checkpoints hold positions only
    /// (a failover then needs `on_gap`), rather than GTID sets that would miss transactions.
    fn stop_tracking_gtids(&mut self, why: &str) {
        if self.mysql_gtids {
            tracing::warn!(
                why,
                "GTIDs inlet does not read: checkpoints hold binlog positions only from here on."
            );
        }
        self.mysql_gtids = false;
        self.gtid = None;
        if let Some(txn) = &mut self.txn {
            txn.gtid = None;
        }
    }

    /// The open transaction's rows, then its commit.
    fn commit(&mut self, position: u64, timestamp: i64) -> Result<()> {
        let txn = self.txn.take().unwrap_or_default();
        if let (Some(state), Some((gtid, _))) = (&mut self.gtid, txn.gtid) {
            state.apply(gtid);
        }
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
        self.started_at = None;
        self.record_gtid(position);
        Ok(())
    }

    /// A standalone group (DDL) has no `COMMIT`: it ends where the next transaction begins.
    fn end_standalone(&mut self) {
        if let (
            Some(state),
            Some(Txn {
                gtid: Some((gtid, true)),
                ..
            }),
        ) = (&mut self.gtid, &self.txn)
        {
            state.apply(*gtid);
        }
    }
}

impl Source for MysqlSource {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn origin(&self) -> Option<String> {
        self.identity.clone()
    }

    fn display(&self, position: u64) -> String {
        format!("{}:{}", self.file_name(position), offset_of(position))
    }

    fn gtid(&self, position: u64) -> Option<String> {
        self.gtids
            .range(..=position)
            .next_back()
            .map(|(_, g)| g.clone())
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>> {
        if self.tables.is_empty() {
            return self.discover(|_| true).await;
        }
        Ok(self.infos())
    }

    async fn start(&mut self, mut checkpoints: BTreeMap<TableId, Checkpoint>) -> Result<()> {
        checkpoints.retain(|t, _| self.tables.contains_key(t));
        let mut conn = self.options.connect.connect().await?;
        self.generation = checkpoints
            .values()
            .map(|c| generation_of(c.position))
            .max()
            .unwrap_or(0);
        let (by_gtid, no_gtid) = match self.gtid_resume(&mut conn, &checkpoints).await? {
            Ok(gtids) => {
                // Another server's positions: this one's sort after them.
                self.generation += 1;
                tracing::info!(
                    server = self.identity.as_deref().unwrap_or("?"),
                    generation = self.generation,
                    "The lake tables were read from another server: continuing from their GTID positions."
                );
                (Some(gtids), String::new())
            }
            Err(why) => (None, why),
        };
        // MySQL has no function for the GTID set at a position: a restart by position takes
        // the one its checkpoint recorded.
        if !self.mariadb && self.mysql_gtids && by_gtid.is_none() {
            for c in checkpoints.values() {
                if let Some(text) = &c.gtid {
                    self.gtids.insert(c.position, text.clone());
                }
            }
        }
        let current = self.master_position(&mut conn).await?;
        for captured in self.tables.values() {
            self.queue.push_back(Event::Schema(SchemaChange {
                table: captured.table.id.clone(),
                schema: captured.schema.clone(),
            }));
        }
        match &by_gtid {
            None => {
                self.check_gap(&mut conn, &mut checkpoints, current, &no_gtid)
                    .await?;
                self.skip = checkpoints
                    .iter()
                    .map(|(t, c)| (t.clone(), Skip::Position(c.position)))
                    .collect();
            }
            Some(gtids) => {
                // A copy the other server had not finished: its copied rows missed changes the
                // new copy would skip; copied again from an emptied table.
                let unfinished: Vec<TableId> = checkpoints
                    .iter()
                    .filter(|(_, c)| c.snapshot != SnapshotState::Done)
                    .map(|(t, _)| t.clone())
                    .collect();
                for table in &unfinished {
                    checkpoints.remove(table);
                }
                if !unfinished.is_empty() {
                    self.queue.push_back(Event::Truncate(unfinished.clone()));
                    for table in unfinished {
                        self.queue.push_back(Event::SnapshotProgress {
                            table,
                            after_key: Vec::new(),
                            position: current,
                        });
                    }
                }
                self.skip = checkpoints
                    .keys()
                    .map(|t| (t.clone(), Skip::Gtid(gtids[t].clone())))
                    .collect();
            }
        }
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
        let done = checkpoints
            .iter()
            .filter(|(_, c)| c.snapshot == SnapshotState::Done);
        let resume = match &by_gtid {
            None => done
                .map(|(_, c)| c.position)
                .min()
                .map(StreamFrom::Position),
            Some(gtids) => done
                .map(|(t, _)| gtids[t].clone())
                .reduce(|a, b| a.meet(&b))
                .map(StreamFrom::Gtid),
        };
        if copies.is_empty() || !self.options.snapshot {
            for table in copies {
                self.skip.insert(table.clone(), Skip::Position(current));
                self.queue.push_back(Event::SnapshotDone {
                    table,
                    position: current,
                    consistent_from: 0,
                });
            }
            let _ = conn.disconnect().await;
            return self
                .start_streaming(resume.unwrap_or(StreamFrom::Position(current)))
                .await;
        }
        let position = self.snapshot_position(&mut conn).await?;
        let _ = conn.disconnect().await;
        let mut start = match resume {
            None => StreamFrom::Position(position),
            Some(StreamFrom::Position(r)) => StreamFrom::Position(r.min(position)),
            Some(StreamFrom::Gtid(g)) => {
                let at_copy = self.gtid.clone().ok_or_else(|| {
                    Error::Protocol("the server gave no GTID position for the snapshot".into())
                })?;
                StreamFrom::Gtid(g.meet(&at_copy))
            }
        };
        let mut jobs = Vec::new();
        for table in copies {
            let after = match checkpoints.get(&table).map(|c| (&c.snapshot, c.position)) {
                // A copy interrupted after some ranges: it goes on after the last key copied.
                // Rows up to there were copied after `earlier`: the binlog replays from there.
                Some((SnapshotState::After(key), earlier)) if !key.is_empty() => {
                    tracing::info!(table = %table, after = ?key, "Resuming the snapshot after the last copied key.");
                    if let StreamFrom::Position(s) = &mut start {
                        *s = (*s).min(earlier);
                    }
                    Some((key.clone(), earlier))
                }
                _ => None,
            };
            let position = after.as_ref().map_or(position, |(_, earlier)| *earlier);
            self.skip.insert(table.clone(), Skip::Position(position));
            jobs.push(snapshot::Job {
                table: self.tables[&table].clone(),
                after: after.map(|(key, _)| key),
                position,
                generation: self.generation,
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
                        let from = stream_from.clone();
                        self.start_streaming(from).await?;
                    }
                },
                Phase::Streaming(_) => self.step(wait).await?,
                Phase::NotStarted | Phase::Closed => return Err(Error::Stopped),
            }
        }
    }

    /// Never called: rows of MySQL transactions carry no `inside` (a transaction is delivered
    /// whole, and held whole).
    fn durable_inside(&mut self, _table: &TableId, _inside: Inside) {}

    fn acknowledge(&mut self, position: u64) {
        // The binlog keeps no reader state: the checkpoints in the lake are the position. GTID
        // positions below the acknowledged one are no longer asked for.
        if let Some((&last, _)) = self.gtids.range(..=position).next_back() {
            self.gtids = self.gtids.split_off(&last);
        }
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
