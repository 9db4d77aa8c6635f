//! [`PostgresSource`]: the [`Source`] over a logical replication slot.
//!
//! Start-up: prerequisites, tables, publication; then either a new slot created on a gated
//! walsender session with `EXPORT_SNAPSHOT` (tables are copied inside that snapshot while the
//! session waits, then the same session streams from the slot's consistent point: no gap, no
//! overlap), or the existing slot (tables without a finished snapshot are copied again from
//! their last key in a fresh snapshot; replaying the slot from its confirmed position over them
//! converges, since streamed changes order above snapshot rows).
//!
//! Streaming: pgoutput messages become per-table Arrow rows; transactions that arrive back to
//! back are coalesced under one [`Event::Commit`]. Per table, transactions whose commit LSN is
//! below the table's checkpoint are skipped. A dropped connection is re-established with
//! backoff; a dropped or invalidated slot is an error.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use inlet_config::OnGap;

use futures::FutureExt;
use pgwire_replication::{Lsn as WireLsn, ReplicationClient, ReplicationEvent};
use tokio::sync::mpsc;

use super::Lsn;
use super::catalog::{self, CatalogTable};
use super::connect::{ConnectOptions, quote_ident};
use super::pgoutput::{self, Message, OldTuple, Relation, TupleData, TupleValue};
use super::rows::{Cell, ColumnSpec, RowBuilder, data_schema};
use super::snapshot::{self, CopyJob};
use super::types::TypeCatalog;
use crate::change::{
    Checkpoint, Event, Inside, SchemaChange, SnapshotState, Source, TableId, TableInfo,
};
use crate::error::{Error, Result};

/// Rows gathered across back-to-back transactions before they are handed on.
const COALESCE_ROWS: usize = 50_000;
/// Rows of one table inside one transaction before they are handed on early.
const TXN_CHUNK_ROWS: usize = 100_000;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Reconnection attempts before giving up.
const MAX_RECONNECTS: u32 = 20;

/// What the PostgreSQL source needs to know.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub connect: ConnectOptions,
    pub slot: String,
    pub publication: String,
    /// Copy existing rows first (`false`: stream only).
    pub snapshot: bool,
    pub snapshot_parallelism: usize,
    /// The pipeline's `batch.max_bytes`: a table no larger is copied without key order (see
    /// [`snapshot`]).
    pub batch_bytes: usize,
    /// Record keys named in the configuration, by `schema.table`, for tables without a usable
    /// primary key or replica identity index, and whether the operator vouches for their
    /// uniqueness where no unique index does.
    pub keys: BTreeMap<String, ConfiguredKey>,
    /// The slot's safety settings.
    pub slot_safety: SlotSafety,
    /// The highest position this pipeline ever acknowledged (its acknowledgement record), when
    /// recorded: a slot confirmed beyond it lost changes.
    pub acknowledged: Option<u64>,
}

/// Guardrails around the replication slot.
#[derive(Debug, Clone, Default)]
pub struct SlotSafety {
    /// The `pipeline` label of the slot metric.
    pub pipeline: String,
    pub max_lag_bytes: Option<u64>,
    /// Fail when the slot retains more than `max_lag_bytes`.
    pub stop_at_lag: bool,
    pub heartbeat_interval: Option<Duration>,
    pub on_gap: OnGap,
}

/// How often the slot's retained WAL is looked at.
const SLOT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// A record key named in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredKey {
    pub columns: Vec<String>,
    /// Unique in the source although no unique index says so (`assume_unique_key`).
    pub assume_unique: bool,
}

/// Logical replication from PostgreSQL (pgoutput protocol 1).
#[derive(Debug)]
pub struct PostgresSource {
    options: PostgresOptions,
    sql: Option<tokio_postgres::Client>,
    types: TypeCatalog,
    tables: BTreeMap<TableId, CatalogTable>,
    phase: Phase,
    queue: VecDeque<Event>,
    acked: u64,
    skip: HashMap<TableId, u64>,
    /// Per table, the open transaction whose changes up to a point are in the table already
    /// (from its checkpoint, or committed since): they are not delivered again.
    inside: HashMap<TableId, Inside>,
    /// Selected tables that are not captured, with the reason.
    skipped: Vec<(TableId, String)>,
    /// A lost replication connection being re-established, attempt by attempt between calls
    /// to `next` (so that the pipeline still sees shutdown and time bounds meanwhile).
    reconnect: Option<Reconnect>,
    /// The connection is to be dropped at the next step, as if lost (failpoint
    /// `error:postgres.after-commit-inside-transaction`, for tests).
    lose_connection: bool,
    /// When the slot is looked at next, and when the last heartbeat was written.
    next_slot_check: tokio::time::Instant,
    last_heartbeat: Option<tokio::time::Instant>,
    lag_warned: bool,
}

/// The next attempt to re-establish the replication connection.
#[derive(Debug)]
struct Reconnect {
    attempt: u32,
    delay: Duration,
    due: tokio::time::Instant,
}

enum Phase {
    NotStarted,
    Snapshot {
        rx: mpsc::Receiver<Result<Event>>,
        /// The gated session that exported the snapshot (new slot), started afterwards.
        gated: Option<ReplicationClient>,
        start_at: u64,
    },
    Streaming(Box<Stream>),
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

impl PostgresSource {
    pub fn new(options: PostgresOptions) -> Self {
        PostgresSource {
            options,
            sql: None,
            types: TypeCatalog::new(),
            tables: BTreeMap::new(),
            phase: Phase::NotStarted,
            queue: VecDeque::new(),
            acked: 0,
            skip: HashMap::new(),
            inside: HashMap::new(),
            skipped: Vec::new(),
            reconnect: None,
            lose_connection: false,
            next_slot_check: tokio::time::Instant::now(),
            last_heartbeat: None,
            lag_warned: false,
        }
    }

    /// Every [`SLOT_CHECK_INTERVAL`] (or heartbeat interval): writes the heartbeat when due, and
    /// publishes the WAL the slot retains, warning (or failing, with `stop_at_slot_lag`) above
    /// `max_slot_lag_bytes`.
    async fn check_slot(&mut self) -> Result<()> {
        let now = tokio::time::Instant::now();
        if now < self.next_slot_check {
            return Ok(());
        }
        let safety = &self.options.slot_safety;
        let every = safety
            .heartbeat_interval
            .map_or(SLOT_CHECK_INTERVAL, |h| h.min(SLOT_CHECK_INTERVAL));
        self.next_slot_check = now + every;
        let Some(sql) = &self.sql else {
            return Ok(());
        };
        if let Some(interval) = safety.heartbeat_interval
            && self.last_heartbeat.is_none_or(|at| now - at >= interval)
        {
            self.last_heartbeat = Some(now);
            // Non-transactional: WAL that the slot's database produces, so the slot advances
            // even when nothing captured changes.
            if let Err(e) = sql
                .execute(
                    "SELECT pg_logical_emit_message(false, 'inlet.heartbeat', '')",
                    &[],
                )
                .await
            {
                tracing::warn!(error = %e, "Writing the heartbeat failed.");
            }
        }
        let row = sql
            .query_opt(
                "SELECT (pg_current_wal_lsn() - restart_lsn)::int8, wal_status \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.options.slot],
            )
            .await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Err(Error::SlotGone {
                    slot: self.options.slot.clone(),
                    detail: "the slot was dropped while inlet was streaming".to_string(),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "Reading the slot's retained WAL failed.");
                return Ok(());
            }
        };
        let retained: Option<i64> = row.get(0);
        let status: Option<String> = row.get(1);
        // An invalidated slot has no restart_lsn any more: look at its status first.
        if status.as_deref() == Some("lost") {
            return Err(Error::SlotGone {
                slot: self.options.slot.clone(),
                detail: "the server invalidated the slot (wal_status = lost): changes are missing"
                    .to_string(),
            });
        }
        let Some(retained) = retained else {
            return Ok(());
        };
        metrics::gauge!(crate::metrics::SLOT_RETAINED, "pipeline" => safety.pipeline.clone())
            .set(retained as f64);
        match safety.max_lag_bytes {
            Some(max) if retained as u64 > max => {
                if safety.stop_at_lag {
                    return Err(Error::SlotGone {
                        slot: self.options.slot.clone(),
                        detail: format!(
                            "the slot retains {retained} bytes of WAL, over max_slot_lag_bytes \
                             ({max}); stopping as stop_at_slot_lag asks (the server keeps the WAL \
                             until inlet catches up or the slot is dropped)"
                        ),
                    });
                }
                if !self.lag_warned {
                    self.lag_warned = true;
                    tracing::warn!(
                        slot = %self.options.slot,
                        retained_bytes = retained,
                        max_slot_lag_bytes = max,
                        status = status.as_deref().unwrap_or(""),
                        "The replication slot retains more WAL than max_slot_lag_bytes: inlet is behind (the server may invalidate the slot at max_slot_wal_keep_size)."
                    );
                }
            }
            _ => self.lag_warned = false,
        }
        Ok(())
    }

    fn sql(&self) -> Result<&tokio_postgres::Client> {
        self.sql.as_ref().ok_or(Error::Stopped)
    }

    /// Lists the captured tables: `selects` gets `schema.table`. Tables without a usable key are
    /// skipped (see [`PostgresSource::skipped`]); it is an error when no table is left to capture,
    /// before anything on the server changes.
    pub async fn discover(&mut self, selects: impl Fn(&str) -> bool) -> Result<Vec<TableInfo>> {
        let client = self.options.connect.connect().await?;
        let slot = catalog::slot(&client, &self.options.slot).await?;
        catalog::check_prerequisites(&client, &self.options.slot, slot.is_some()).await?;
        self.types = catalog::load_types(&client).await?;
        let keys = &self.options.keys;
        let selected = catalog::tables(&client, &self.types, selects, |id| {
            keys.get(&id.to_string()).cloned()
        })
        .await?;
        if selected.captured.is_empty() {
            let reason = if selected.skipped.is_empty() {
                "matches no table of the database".to_string()
            } else {
                let list: Vec<String> = selected
                    .skipped
                    .iter()
                    .map(|(id, why)| format!("{id}: {why}"))
                    .collect();
                format!(
                    "selects only tables that cannot be captured:\n  {}",
                    list.join("\n  ")
                )
            };
            return Err(Error::Config {
                field: "source.include".to_string(),
                reason,
            });
        }
        let tables = selected.captured;
        self.skipped = selected.skipped;
        catalog::ensure_publication(&client, &self.options.publication, &tables).await?;
        self.sql = Some(client);
        self.tables = tables.into_iter().map(|t| (t.id.clone(), t)).collect();
        Ok(self.table_infos())
    }

    /// Selected tables that are not captured, with the reason and the fix.
    pub fn skipped(&self) -> &[(TableId, String)] {
        &self.skipped
    }

    /// What the pipeline needs to know of each captured table.
    fn table_infos(&self) -> Vec<TableInfo> {
        self.tables
            .values()
            .map(|t| TableInfo {
                id: t.id.clone(),
                schema: data_schema(&t.columns),
                key_columns: t.key.clone(),
            })
            .collect()
    }

    async fn start_inner(&mut self, mut checkpoints: BTreeMap<TableId, Checkpoint>) -> Result<()> {
        let slot = catalog::slot(self.sql()?, &self.options.slot).await?;
        if let Some(info) = &slot {
            self.check_gap(info, &mut checkpoints)?;
        }
        self.skip = checkpoints
            .iter()
            .map(|(t, c)| (t.clone(), c.position))
            .collect();
        self.inside = checkpoints
            .iter()
            .filter_map(|(t, c)| Some((t.clone(), c.inside?)))
            .collect();
        let (tx, rx) = mpsc::channel(4);
        match slot {
            None => {
                if let Some((table, cp)) = checkpoints.iter().next() {
                    return Err(Error::SlotGone {
                        slot: self.options.slot.clone(),
                        detail: format!(
                            "lake table of {table} is at LSN {}, but the slot does not exist (it \
                             was dropped): the changes since are lost. Remove the lake tables to \
                             take a new snapshot",
                            Lsn(cp.position)
                        ),
                    });
                }
                let config = self
                    .options
                    .connect
                    .replication(&self.options.slot, &self.options.publication);
                let mut gated = ReplicationClient::connect_gated(config)
                    .await
                    .map_err(|e| Error::replication("opening the replication session", e))?;
                let export = if self.options.snapshot {
                    "EXPORT_SNAPSHOT"
                } else {
                    "NOEXPORT_SNAPSHOT"
                };
                let rows = gated
                    .simple_query(&format!(
                        "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {export}",
                        quote_ident(&self.options.slot)
                    ))
                    .await
                    .map_err(|e| Error::replication("creating the replication slot", e))?;
                let text = |i: usize| {
                    rows.first()
                        .and_then(|r| r.get(i).cloned().flatten())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                };
                let consistent: Lsn = text(1)
                    .ok_or_else(|| {
                        Error::Protocol(
                            "CREATE_REPLICATION_SLOT returned no consistent point".into(),
                        )
                    })?
                    .parse()?;
                let snapshot_name = text(2);
                tracing::info!(slot = %self.options.slot, consistent_point = %consistent, "Created the replication slot.");
                let jobs = self.jobs(&checkpoints, consistent.0);
                self.spawn_copies(snapshot_name, jobs, tx);
                self.phase = Phase::Snapshot {
                    rx,
                    gated: Some(gated),
                    start_at: consistent.0,
                };
            }
            Some(info) => {
                if info.plugin != "pgoutput" {
                    return Err(Error::SlotGone {
                        slot: self.options.slot.clone(),
                        detail: format!(
                            "the slot uses plugin {}, not pgoutput: drop it or choose another source.slot",
                            info.plugin
                        ),
                    });
                }
                if info.wal_status.as_deref() == Some("lost") {
                    return Err(Error::SlotGone {
                        slot: self.options.slot.clone(),
                        detail: "the slot was invalidated (wal_status = lost): WAL it needed was \
                                 removed, so changes are missing. Drop the slot and the lake \
                                 tables to take a new snapshot"
                            .to_string(),
                    });
                }
                if info.active {
                    return Err(Error::SlotGone {
                        slot: self.options.slot.clone(),
                        detail: "the slot is in use by another session (another inlet?)".into(),
                    });
                }
                let jobs = self.jobs(&checkpoints, info.confirmed_flush.0);
                tracing::info!(slot = %self.options.slot, confirmed_flush = %info.confirmed_flush, tables_to_copy = jobs.len(), "Reusing the replication slot.");
                self.spawn_copies(None, jobs, tx);
                self.phase = Phase::Snapshot {
                    rx,
                    gated: None,
                    start_at: info.confirmed_flush.0,
                };
            }
        }
        Ok(())
    }

    /// A slot confirmed beyond everything this pipeline acknowledged (its record) and every
    /// table's checkpoint was dropped and recreated, or advanced by someone else: the changes in
    /// between are lost. Fails, or with `on_gap = "resnapshot"` empties the tables that miss
    /// changes and copies them again.
    fn check_gap(
        &mut self,
        info: &catalog::SlotInfo,
        checkpoints: &mut BTreeMap<TableId, Checkpoint>,
    ) -> Result<()> {
        let Some(recorded) = self.options.acknowledged else {
            // No record yet (a first start, or tables written by an older inlet): nothing to
            // compare with; the record starts with this run.
            return Ok(());
        };
        let newest = checkpoints.values().map(|c| c.position).max().unwrap_or(0);
        let allowed = recorded.max(newest);
        if info.confirmed_flush.0 <= allowed {
            return Ok(());
        }
        let affected: Vec<TableId> = checkpoints
            .iter()
            .filter(|(_, c)| c.position < info.confirmed_flush.0)
            .map(|(t, _)| t.clone())
            .collect();
        if affected.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = affected.iter().map(ToString::to_string).collect();
        if self.options.slot_safety.on_gap == OnGap::Fail || !self.options.snapshot {
            return Err(Error::SlotGone {
                slot: self.options.slot.clone(),
                detail: format!(
                    "the slot starts at LSN {}, but inlet acknowledged only up to LSN {} (the slot \
                     was dropped and recreated, or advanced by someone else): changes of {} \
                     after their checkpoints are lost. Set source.on_gap = \"resnapshot\" (with \
                     snapshot = \"initial\") to copy those tables again, or remove their lake tables",
                    info.confirmed_flush,
                    Lsn(allowed),
                    names.join(", ")
                ),
            });
        }
        tracing::warn!(
            slot = %self.options.slot,
            from = %Lsn(allowed),
            to = %info.confirmed_flush,
            tables = %names.join(", "),
            "The slot lost changes the lake tables need: emptying and copying them again."
        );
        for table in &affected {
            checkpoints.remove(table);
        }
        self.queue.push_back(Event::Truncate(affected.clone()));
        // Until their copies are done these tables are snapshotting: the pipeline holds the
        // acknowledgement back for them, and the emptying commit records a copy to redo.
        for table in affected {
            self.queue.push_back(Event::SnapshotProgress {
                table,
                after_key: Vec::new(),
                position: info.confirmed_flush.0,
            });
        }
        Ok(())
    }

    /// Tables whose snapshot is not done; with snapshots off they are marked done at `position`.
    fn jobs(&mut self, checkpoints: &BTreeMap<TableId, Checkpoint>, position: u64) -> Vec<CopyJob> {
        let mut jobs = Vec::new();
        for table in self.tables.values() {
            let after = match checkpoints.get(&table.id).map(|c| &c.snapshot) {
                Some(SnapshotState::Done) => continue,
                Some(SnapshotState::After(key)) if key.is_empty() => None,
                Some(SnapshotState::After(key)) => Some(key.clone()),
                None => None,
            };
            if !self.options.snapshot {
                self.queue.push_back(Event::SnapshotDone {
                    table: table.id.clone(),
                    position,
                    consistent_from: 0,
                });
                continue;
            }
            jobs.push(CopyJob {
                table: table.clone(),
                after,
                position,
            });
            // Streamed changes for this table start at the snapshot's position.
            self.skip.insert(table.id.clone(), position);
        }
        for event in &self.queue {
            if let Event::SnapshotDone {
                table, position, ..
            } = event
            {
                self.skip.insert(table.clone(), *position);
            }
        }
        jobs
    }

    fn spawn_copies(
        &self,
        snapshot_name: Option<String>,
        jobs: Vec<CopyJob>,
        tx: mpsc::Sender<Result<Event>>,
    ) {
        let options = self.options.connect.clone();
        let parallelism = self.options.snapshot_parallelism;
        let batch_bytes = self.options.batch_bytes;
        tokio::spawn(snapshot::run(
            options,
            snapshot_name,
            jobs,
            parallelism,
            batch_bytes,
            tx,
        ));
    }

    async fn begin_streaming(
        &mut self,
        gated: Option<ReplicationClient>,
        start_at: u64,
    ) -> Result<()> {
        let client = match gated {
            Some(mut client) => {
                client
                    .start()
                    .await
                    .map_err(|e| Error::replication("starting replication", e))?;
                client
            }
            None => self.connect_stream().await?,
        };
        tracing::info!(from = %Lsn(start_at), "Streaming changes.");
        self.phase = Phase::Streaming(Box::new(Stream {
            client,
            relations: HashMap::new(),
            txn: None,
            dirty: Vec::new(),
            group: None,
            group_rows: 0,
            last_end: 0,
            delivered_end: 0,
        }));
        Ok(())
    }

    async fn connect_stream(&self) -> Result<ReplicationClient> {
        let config = self
            .options
            .connect
            .replication(&self.options.slot, &self.options.publication)
            .with_start_lsn(WireLsn(0))
            .with_ack_lsn(WireLsn(self.acked));
        let mut client = ReplicationClient::connect(config)
            .await
            .map_err(|e| self.stream_error("connecting the replication stream", e))?;
        client
            .wait_started()
            .await
            .map_err(|e| self.stream_error("starting replication", e))?;
        Ok(client)
    }

    fn stream_error(&self, context: &str, e: pgwire_replication::PgWireError) -> Error {
        let text = e.to_string();
        if text.contains("does not exist") && text.contains("slot") {
            return Error::SlotGone {
                slot: self.options.slot.clone(),
                detail: format!(
                    "{text}: the slot was dropped while inlet ran; changes since the last \
                     acknowledged LSN {} are lost. Remove the lake tables to take a new snapshot",
                    Lsn(self.acked)
                ),
            };
        }
        if text.contains("requested WAL segment") || text.contains("invalidated") {
            return Error::SlotGone {
                slot: self.options.slot.clone(),
                detail: format!("{text}: WAL the slot needs is gone, so changes are missing"),
            };
        }
        Error::replication(context, e)
    }

    /// Re-establishes the stream after `error`, with backoff.
    async fn reconnect(&mut self, error: pgwire_replication::PgWireError) -> Result<()> {
        let Phase::Streaming(stream) = &mut self.phase else {
            return Err(Error::Stopped);
        };
        // Everything after the last delivered Commit is voided and read again.
        for rel in stream.relations.values_mut() {
            if let Some(c) = &mut rel.captured {
                c.builder.finish()?;
            }
        }
        stream.dirty.clear();
        stream.group = None;
        stream.group_rows = 0;
        stream.txn = None;
        stream.relations.clear();
        self.queue.push_back(Event::Rollback);
        if !retryable(&error) {
            return Err(self.stream_error("streaming", error));
        }
        let delay = Duration::from_millis(500);
        tracing::warn!(error = %error, delay_ms = delay.as_millis() as u64, "Replication connection lost; reconnecting.");
        self.reconnect = Some(Reconnect {
            attempt: 1,
            delay,
            due: tokio::time::Instant::now() + delay,
        });
        Ok(())
    }

    /// One step of re-establishing the connection: waits at most `wait` for the next attempt
    /// (`Idle` while it is not due), then makes it.
    async fn retry_connection(&mut self, wait: Duration) -> Result<Option<Event>> {
        let Some(due) = self.reconnect.as_ref().map(|r| r.due) else {
            return Ok(None);
        };
        let now = tokio::time::Instant::now();
        if now < due {
            tokio::time::sleep((due - now).min(wait)).await;
            if tokio::time::Instant::now() < due {
                return Ok(Some(Event::Idle));
            }
        }
        let config = self
            .options
            .connect
            .replication(&self.options.slot, &self.options.publication)
            .with_start_lsn(WireLsn(0))
            .with_ack_lsn(WireLsn(self.acked));
        let connected = match ReplicationClient::connect(config).await {
            Ok(mut client) => client.wait_started().await.map(|()| client),
            Err(e) => Err(e),
        };
        match connected {
            Ok(client) => {
                if let Phase::Streaming(stream) = &mut self.phase {
                    stream.client = client;
                    stream.last_end = stream.delivered_end;
                }
                self.reconnect = None;
                tracing::info!("Replication connection re-established.");
                Ok(None)
            }
            Err(e) => {
                let Some(r) = self.reconnect.as_mut() else {
                    return Ok(None);
                };
                if r.attempt >= MAX_RECONNECTS || !retryable(&e) {
                    self.reconnect = None;
                    return Err(self.stream_error("reconnecting", e));
                }
                r.attempt += 1;
                r.delay = (r.delay * 2).min(MAX_BACKOFF);
                r.due = tokio::time::Instant::now() + r.delay;
                tracing::warn!(error = %e, attempt = r.attempt, delay_ms = r.delay.as_millis() as u64, "Reconnecting failed; trying again.");
                Ok(Some(Event::Idle))
            }
        }
    }

    async fn next_inner(&mut self, wait: Duration) -> Result<Event> {
        // Keepalives and skipped transactions can arrive without end: after `wait` the pipeline
        // gets `Idle` anyway, to check its time bounds and shutdown.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(event);
            }
            self.check_slot().await?;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Event::Idle);
            }
            let wait = (deadline - now).min(self.next_slot_check.saturating_duration_since(now));
            match &mut self.phase {
                Phase::NotStarted | Phase::Closed => return Err(Error::Stopped),
                Phase::Snapshot { rx, .. } => match tokio::time::timeout(wait, rx.recv()).await {
                    Err(_) => return Ok(Event::Idle),
                    Ok(Some(event)) => return event,
                    Ok(None) => {
                        let Phase::Snapshot {
                            gated, start_at, ..
                        } = std::mem::replace(&mut self.phase, Phase::NotStarted)
                        else {
                            return Err(Error::Stopped);
                        };
                        self.begin_streaming(gated, start_at).await?;
                    }
                },
                Phase::Streaming(_) => {
                    if let Some(event) = self.step(wait).await? {
                        return Ok(event);
                    }
                }
            }
        }
    }

    /// Reads replication events until something is queued, or returns `Idle`.
    async fn step(&mut self, wait: Duration) -> Result<Option<Event>> {
        if self.reconnect.is_some() {
            return self.retry_connection(wait).await;
        }
        if std::mem::take(&mut self.lose_connection)
            && let Phase::Streaming(stream) = &mut self.phase
        {
            let _ = stream.client.shutdown().await;
            let lost = std::io::Error::other("connection dropped by a failpoint");
            self.reconnect(pgwire_replication::PgWireError::Io(std::sync::Arc::new(
                lost,
            )))
            .await?;
            return Ok(None);
        }
        let Phase::Streaming(stream) = &mut self.phase else {
            return Err(Error::Stopped);
        };
        let received = if stream.group.is_some() && stream.txn.is_none() {
            // A finished group: extend it only with what is already there.
            match stream.client.recv().now_or_never() {
                Some(r) => r,
                None => {
                    stream.hand_on(&mut self.queue)?;
                    return Ok(None);
                }
            }
        } else {
            match tokio::time::timeout(wait, stream.client.recv()).await {
                Ok(r) => r,
                // Also inside a long transaction, so that time bounds and shutdown are checked.
                Err(_) => return Ok(Some(Event::Idle)),
            }
        };
        let event = match received {
            Ok(Some(event)) => event,
            Ok(None) => return Err(Error::Stopped),
            Err(e) => {
                self.reconnect(e).await?;
                return Ok(None);
            }
        };
        match event {
            ReplicationEvent::Begin {
                final_lsn,
                commit_time_micros,
                ..
            } => {
                let skip_all = final_lsn.0 < stream.last_end;
                stream.txn = Some(Txn {
                    final_lsn: final_lsn.0,
                    commit_ts: pgoutput::pg_timestamp_to_unix_micros(commit_time_micros),
                    skip_all,
                });
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let skipped = stream.txn.take().is_some_and(|t| t.skip_all);
                if !skipped {
                    stream.last_end = end_lsn.0;
                    stream.group = Some((
                        end_lsn.0,
                        pgoutput::pg_timestamp_to_unix_micros(commit_time_micros).unwrap_or(0),
                    ));
                    if stream.group_rows >= COALESCE_ROWS {
                        stream.hand_on(&mut self.queue)?;
                    }
                }
            }
            ReplicationEvent::XLogData {
                wal_start, data, ..
            } => {
                let message = pgoutput::decode(data)?;
                if let Message::Relation(relation) = &message
                    && needs_types(&self.types, relation)
                {
                    // A column of a type created after start-up.
                    self.types =
                        catalog::load_types(self.sql.as_ref().ok_or(Error::Stopped)?).await?;
                }
                let Phase::Streaming(stream) = &mut self.phase else {
                    return Err(Error::Stopped);
                };
                stream.apply(
                    message,
                    wal_start.0,
                    &self.tables,
                    &self.types,
                    (&self.skip, &self.inside),
                    &mut self.queue,
                )?;
            }
            ReplicationEvent::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                tracing::debug!(transactional, lsn = %Lsn(lsn.0), prefix, bytes = content.len(), "Logical decoding message.");
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // Between transactions, every transaction that commits below the server's end
                // of WAL has been delivered (those touching only uncaptured tables are not sent
                // at all): that position can be acknowledged once the tables are durable, so an
                // idle or unrelated workload does not make the slot retain WAL, and a server
                // shutting down (which waits for the client to confirm everything it sent)
                // is not held up.
                if stream.txn.is_none() && wal_end.0 > stream.last_end {
                    stream.last_end = wal_end.0;
                    let commit_ts = stream.group.map_or(0, |(_, ts)| ts);
                    stream.group = Some((wal_end.0, commit_ts));
                    stream.hand_on(&mut self.queue)?;
                }
            }
            ReplicationEvent::StoppedAt { .. } => return Err(Error::Stopped),
        }
        Ok(None)
    }
}

/// Connection losses, server restarts and a slot still held by the previous session are worth
/// retrying; authentication, configuration and protocol errors are not.
fn retryable(error: &pgwire_replication::PgWireError) -> bool {
    if error.is_transient() || error.is_io() {
        return true;
    }
    let text = error.to_string();
    [
        "57P01",
        "57P02",
        "57P03",
        "terminating connection",
        "the database system is",
        "is active for PID",
        "connection reset",
        "unexpected eof",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn needs_types(types: &TypeCatalog, relation: &Relation) -> bool {
    relation
        .columns
        .iter()
        .any(|c| c.type_oid >= 10_000 && !types.contains_key(&c.type_oid))
}

/// The transaction being decoded.
#[derive(Debug, Clone, Copy)]
struct Txn {
    final_lsn: u64,
    commit_ts: Option<i64>,
    /// Already delivered before a reconnect.
    skip_all: bool,
}

/// A relation of the stream.
#[derive(Debug)]
struct Rel {
    /// `None`: not captured.
    captured: Option<Captured>,
}

#[derive(Debug)]
struct Captured {
    table: TableId,
    builder: RowBuilder,
    /// Positions (in the relation's columns) of the lake record key columns.
    key: Vec<usize>,
    skip_below: u64,
    /// Transactions committed before `inside.txn`, and its changes up to `inside.change`, are
    /// in the table already.
    inside: Option<Inside>,
}

struct Stream {
    client: ReplicationClient,
    relations: HashMap<u32, Rel>,
    txn: Option<Txn>,
    /// Relations with rows in their builder.
    dirty: Vec<u32>,
    /// The last transaction end (and its commit time) of the group being gathered.
    group: Option<(u64, i64)>,
    group_rows: usize,
    /// End LSN of the last transaction received (to skip repeats after a reconnection).
    last_end: u64,
    /// End LSN of the last `Commit` handed on.
    delivered_end: u64,
}

impl Stream {
    /// Queues the rows gathered so far and, if a group is closed, its `Commit`.
    fn hand_on(&mut self, queue: &mut VecDeque<Event>) -> Result<()> {
        for oid in self.dirty.drain(..) {
            if let Some(Rel {
                captured: Some(c), ..
            }) = self.relations.get_mut(&oid)
                && let Some(rows) = c.builder.finish()?
            {
                queue.push_back(Event::Rows(rows));
            }
        }
        self.group_rows = 0;
        if let Some((position, commit_ts)) = self.group.take() {
            self.delivered_end = position;
            queue.push_back(Event::Commit {
                position,
                commit_ts,
            });
        }
        Ok(())
    }

    /// Hands on the rows of relation `oid` gathered so far; `inside`: they end inside the open
    /// transaction, at that change.
    fn flush_relation(
        &mut self,
        oid: u32,
        inside: Option<Inside>,
        queue: &mut VecDeque<Event>,
    ) -> Result<()> {
        if let Some(Rel {
            captured: Some(c), ..
        }) = self.relations.get_mut(&oid)
            && let Some(mut rows) = c.builder.finish()?
        {
            rows.inside = inside;
            queue.push_back(Event::Rows(rows));
        }
        self.dirty.retain(|&d| d != oid);
        Ok(())
    }

    fn apply(
        &mut self,
        message: Message,
        position: u64,
        tables: &BTreeMap<TableId, CatalogTable>,
        types: &TypeCatalog,
        skip: (&HashMap<TableId, u64>, &HashMap<TableId, Inside>),
        queue: &mut VecDeque<Event>,
    ) -> Result<()> {
        let txn = self.txn.unwrap_or(Txn {
            final_lsn: 0,
            commit_ts: None,
            skip_all: false,
        });
        match message {
            Message::Relation(relation) => self.relation(relation, tables, types, skip, queue)?,
            Message::Type(_) | Message::Origin(_) | Message::Logical(_) => {}
            Message::Begin(_) | Message::Commit(_) => {}
            Message::Insert(insert) => {
                if let Some(c) = self.target(insert.relation_oid, &txn, position)? {
                    let cells = cells(&insert.new)?;
                    c.builder.append(
                        "c",
                        Some(position as i64),
                        txn.commit_ts,
                        false,
                        cells,
                        None,
                    )?;
                    self.mark(insert.relation_oid, &txn, position, queue)?;
                }
            }
            Message::Update(update) => {
                if let Some(c) = self.target(update.relation_oid, &txn, position)? {
                    let new = cells(&update.new)?;
                    let old = match &update.old {
                        Some(old) => Some(cells(old.tuple())?),
                        None => None,
                    };
                    let key_changed = old.as_ref().is_some_and(|old| {
                        c.key.iter().any(|&k| {
                            !matches!(old.get(k), Some(Cell::Null | Cell::Unchanged) | None)
                                && text_of(old.get(k)) != text_of(new.get(k))
                        })
                    });
                    let mut key_row = None;
                    if key_changed && let Some(old) = &old {
                        // The old key goes away; the new row takes unchanged values from it.
                        let old_cells: Vec<Cell<'_>> = old
                            .iter()
                            .enumerate()
                            .map(|(i, cell)| match cell {
                                Cell::Unchanged if !c.key.contains(&i) => Cell::Null,
                                other => *other,
                            })
                            .collect();
                        key_row = Some(c.builder.append(
                            "d",
                            Some(position as i64),
                            txn.commit_ts,
                            true,
                            old_cells,
                            None,
                        )?);
                    }
                    let full_old = matches!(update.old, Some(OldTuple::Full(_)));
                    let merged: Vec<Cell<'_>> = new
                        .iter()
                        .enumerate()
                        .map(|(i, cell)| match (cell, &old) {
                            (Cell::Unchanged, Some(old)) if full_old => {
                                old.get(i).copied().unwrap_or(Cell::Unchanged)
                            }
                            (other, _) => *other,
                        })
                        .collect();
                    c.builder.append(
                        "u",
                        Some(position as i64),
                        txn.commit_ts,
                        false,
                        merged,
                        key_row,
                    )?;
                    self.mark(update.relation_oid, &txn, position, queue)?;
                }
            }
            Message::Delete(delete) => {
                if let Some(c) = self.target(delete.relation_oid, &txn, position)? {
                    let old = cells(delete.old.tuple())?;
                    let old = old
                        .into_iter()
                        .map(|cell| match cell {
                            Cell::Unchanged => Cell::Null,
                            other => other,
                        })
                        .collect::<Vec<_>>();
                    c.builder
                        .append("d", Some(position as i64), txn.commit_ts, true, old, None)?;
                    self.mark(delete.relation_oid, &txn, position, queue)?;
                }
            }
            Message::Truncate(truncate) => {
                let mut truncated = Vec::new();
                for oid in truncate.relation_oids {
                    if self.target(oid, &txn, position)?.is_some() {
                        self.flush_relation(oid, None, queue)?;
                        if let Some(Rel {
                            captured: Some(c), ..
                        }) = self.relations.get(&oid)
                        {
                            truncated.push(c.table.clone());
                        }
                    }
                }
                if !truncated.is_empty() {
                    queue.push_back(Event::Truncate(truncated));
                }
            }
        }
        Ok(())
    }

    /// The captured relation `oid` if this transaction's change at `position` is wanted.
    fn target(&mut self, oid: u32, txn: &Txn, position: u64) -> Result<Option<&mut Captured>> {
        if txn.skip_all {
            return Ok(None);
        }
        match self.relations.get_mut(&oid) {
            None => Err(Error::Protocol(format!(
                "change for relation OID {oid} before its Relation message"
            ))),
            Some(Rel { captured: None }) => Ok(None),
            Some(Rel {
                captured: Some(c), ..
            }) => {
                let written = match c.inside {
                    Some(inside) => {
                        txn.final_lsn < inside.txn
                            || (txn.final_lsn == inside.txn && position <= inside.change)
                    }
                    None => false,
                };
                Ok((txn.final_lsn >= c.skip_below && !written).then_some(c))
            }
        }
    }

    /// Notes rows of relation `oid` (the latest at `position`), and hands them on early when
    /// the open transaction has many.
    fn mark(
        &mut self,
        oid: u32,
        txn: &Txn,
        position: u64,
        queue: &mut VecDeque<Event>,
    ) -> Result<()> {
        if !self.dirty.contains(&oid) {
            self.dirty.push(oid);
        }
        self.group_rows += 1;
        let big = matches!(
            self.relations.get(&oid),
            Some(Rel { captured: Some(c) }) if c.builder.len() >= TXN_CHUNK_ROWS
        );
        if big {
            let inside = Inside {
                txn: txn.final_lsn,
                change: position,
            };
            self.flush_relation(oid, Some(inside), queue)?;
        }
        Ok(())
    }

    fn relation(
        &mut self,
        relation: Relation,
        tables: &BTreeMap<TableId, CatalogTable>,
        types: &TypeCatalog,
        (skip, inside): (&HashMap<TableId, u64>, &HashMap<TableId, Inside>),
        queue: &mut VecDeque<Event>,
    ) -> Result<()> {
        let id = TableId::new(
            if relation.namespace.is_empty() {
                "pg_catalog".to_string()
            } else {
                relation.namespace.clone()
            },
            relation.name.clone(),
        );
        let Some(table) = tables.get(&id) else {
            self.relations.insert(relation.oid, Rel { captured: None });
            return Ok(());
        };
        let specs: Vec<ColumnSpec> = catalog::column_specs(
            types,
            false,
            &id,
            relation
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.type_oid, c.type_modifier)),
        );
        let previous = match self.relations.get(&relation.oid) {
            Some(Rel {
                captured: Some(c), ..
            }) => Some(c.builder.specs().to_vec()),
            _ => None,
        };
        if previous.as_deref() == Some(specs.as_slice()) {
            return Ok(());
        }
        // A barrier: rows built with the old columns go first.
        self.flush_relation(relation.oid, None, queue)?;
        let mut key = Vec::new();
        for k in &table.key {
            let Some(i) = relation.columns.iter().position(|c| &c.name == k) else {
                return Err(Error::SchemaChange {
                    table: id.to_string(),
                    reason: format!(
                        "key column {k} is no longer published; the lake table's record key \
                         cannot change"
                    ),
                });
            };
            key.push(i);
        }
        queue.push_back(Event::Schema(SchemaChange {
            table: id.clone(),
            schema: data_schema(&specs),
        }));
        self.relations.insert(
            relation.oid,
            Rel {
                captured: Some(Captured {
                    builder: RowBuilder::new(id.clone(), specs),
                    key,
                    skip_below: skip.get(&id).copied().unwrap_or(0),
                    inside: inside.get(&id).copied(),
                    table: id,
                }),
            },
        );
        Ok(())
    }
}

fn cells(tuple: &TupleData) -> Result<Vec<Cell<'_>>> {
    tuple
        .columns
        .iter()
        .map(|value| match value {
            TupleValue::Null => Ok(Cell::Null),
            TupleValue::UnchangedToast => Ok(Cell::Unchanged),
            TupleValue::Text(bytes) => std::str::from_utf8(bytes).map(Cell::Text).map_err(|_| {
                Error::Protocol(
                    "a text value is not UTF-8 (set the database encoding to UTF8)".into(),
                )
            }),
            TupleValue::Binary(_) => Err(Error::Protocol(
                "binary tuple values were not requested".into(),
            )),
        })
        .collect()
}

fn text_of<'a>(cell: Option<&Cell<'a>>) -> Option<&'a str> {
    match cell {
        Some(Cell::Text(t)) => Some(t),
        _ => None,
    }
}

impl Source for PostgresSource {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn display(&self, position: u64) -> String {
        Lsn(position).to_string()
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>> {
        // Selection happens in `discover`; without it every ordinary table is captured.
        if self.tables.is_empty() {
            return self.discover(|_| true).await;
        }
        Ok(self.table_infos())
    }

    async fn start(&mut self, checkpoints: BTreeMap<TableId, Checkpoint>) -> Result<()> {
        self.start_inner(checkpoints).await?;
        self.acked = self.skip.values().copied().min().unwrap_or(0);
        Ok(())
    }

    async fn next(&mut self, wait: Duration) -> Result<Event> {
        self.next_inner(wait).await
    }

    fn durable_inside(&mut self, table: &TableId, inside: Inside) {
        // Read by the relations of the next connection: the current one sends no change twice.
        self.inside.insert(table.clone(), inside);
        #[cfg(feature = "failpoints")]
        if inlet_table::failpoint::error_at("postgres.after-commit-inside-transaction") {
            self.lose_connection = true;
        }
    }

    fn acknowledge(&mut self, position: u64) {
        if position <= self.acked {
            return;
        }
        self.acked = position;
        if let Phase::Streaming(stream) = &self.phase {
            stream.client.update_applied_lsn(WireLsn(position));
        }
    }

    async fn close(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Streaming(mut stream) => {
                // Let the worker send the last acknowledgement (within its status interval).
                let metrics = stream.client.metrics();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                while metrics.last_applied_lsn().0 < self.acked
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stream.client.shutdown()).await;
            }
            Phase::Snapshot { gated, .. } => drop(gated),
            _ => {}
        }
        Ok(())
    }
}
