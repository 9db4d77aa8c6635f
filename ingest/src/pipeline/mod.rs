//! The pipeline: changes from a [`Source`] buffered per table (bounded by rows, bytes and
//! time), committed to each lake table with the table's checkpoint in the same atomic commit,
//! and only then acknowledged to the source.
//!
//! ```text
//!  source ──Rows/Schema/Truncate──► per-table buffer ──bound reached at a Commit──► table commit
//!     ▲                                                                    (data + inlet.checkpoint)
//!     └──── acknowledge(min over tables of the position durable in each) ◄────────┘
//! ```
//!
//! Acknowledged position = the last source commit processed, lowered to the durable position of
//! every table that still buffers changes (or has stopped with an error). A table whose schema
//! changes in a way the lake table cannot follow stops (its rows are dropped from then on and
//! its position is never acknowledged past); the other tables go on.

mod batch;
pub mod dead_letter;
pub mod flow;
pub mod record;
mod toast;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::BooleanArray;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use inlet_config::RecoveryKind;
use inlet_table::Table;
use inlet_table::commit::metadata::CHECKPOINT_KEY;
use inlet_table::write::{Changes, Operation, Writer};

use crate::change::{Checkpoint, Event, Inside, RowBatch, SnapshotState, Source, TableId};
use crate::error::{Error, Result};
use crate::metrics;
use crate::status::{PipelineStatus, State};
use dead_letter::DeadLetter;
use flow::Flow;
use record::AckRecord;

/// Source commits whose times are kept for the lag at most.
const MAX_COMMIT_TIMES: usize = 4096;

/// How often the acknowledgement record is written at most (acknowledgements beyond it wait).
const RECORD_INTERVAL: Duration = Duration::from_secs(1);

/// Batching bounds, timing, and what the pipeline reports to.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_delay: Duration,
    /// Stop once every change up to this source position is durable (benchmarks, tests).
    pub stop_at: Option<u64>,
    /// The pipeline's name: the `pipeline` label of its metrics.
    pub name: String,
    pub status: Arc<PipelineStatus>,
    /// Background table services to consult around commits.
    pub services: Option<Arc<dyn TableServiceHooks>>,
    /// What happens to rows that cannot be written.
    pub recovery: RecoveryKind,
    pub max_value_bytes: usize,
    /// The dead-letter table (with [`RecoveryKind::DeadLetter`]).
    pub dead_letter: Option<Table>,
    /// Where acknowledged positions are recorded before the source is told, and what it holds.
    pub ack_record: Option<(AckRecord, u64)>,
}

impl PipelineOptions {
    /// Bounds only, for a pipeline nobody watches (tests, benchmarks).
    pub fn new(max_rows: usize, max_bytes: usize, max_delay: Duration) -> Self {
        PipelineOptions {
            max_rows,
            max_bytes,
            max_delay,
            stop_at: None,
            name: inlet_config::DEFAULT_PIPELINE.to_string(),
            status: Arc::default(),
            services: None,
            recovery: RecoveryKind::Stop,
            max_value_bytes: inlet_config::DEFAULT_MAX_VALUE_BYTES,
            dead_letter: None,
            ack_record: None,
        }
    }
}

/// The table services of the service, as the pipeline sees them: consulted around each commit
/// of a table, with its writer (compaction plans need the writer lease).
#[async_trait]
pub trait TableServiceHooks: Send + Sync + fmt::Debug {
    /// Before a commit: waits while the table's compaction falls too far behind (ingest slows
    /// down instead of letting log files grow without bound).
    async fn before_commit(&self, table: &TableId, writer: &mut Writer);

    /// After a commit: plans a compaction when the strategy says so and wakes the services.
    async fn after_commit(&self, table: &TableId, writer: &Writer);
}

/// The lake table of a source table.
#[derive(Debug, Clone)]
pub struct Target {
    pub table: Table,
    /// The record key (the source table's key columns).
    pub key: Vec<String>,
    /// The lake table's data columns before its first write (the source table's, through the
    /// flow).
    pub schema: SchemaRef,
    /// What the source table's rows become.
    pub flow: Flow,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Rows committed (snapshot rows and changes).
    pub rows: u64,
    pub commits: u64,
    /// The last position acknowledged to the source.
    pub acknowledged: u64,
    /// Tables stopped by an error, with it.
    pub failed: Vec<(TableId, String)>,
    /// Selected tables that were not captured, with the reason.
    pub skipped: Vec<(TableId, String)>,
}

/// The last checkpoint stored in a table's completed writes, newest first (commits of table
/// services carry none and are skipped).
pub async fn table_checkpoint(table: &Table) -> Result<Option<Checkpoint>> {
    let timeline = table.timeline().await.map_err(|e| Error::lake(table, e))?;
    for instant in timeline.completed_writes().rev() {
        let metadata = timeline
            .commit_metadata(table.storage(), instant)
            .await
            .map_err(|e| Error::lake(table, e))?;
        if let Some(text) = metadata.checkpoint() {
            return Ok(Checkpoint::from_json(text));
        }
    }
    Ok(None)
}

/// A buffered change of one table.
#[derive(Debug)]
enum Item {
    Rows(Box<RowBatch>),
    Truncate,
    /// Rows that cannot be written, for the dead-letter table.
    Dead(Vec<DeadLetter>),
}

#[derive(Debug)]
struct TableState {
    id: TableId,
    writer: Option<Writer>,
    key: Vec<String>,
    /// Changes in source order; the first `closed` belong to committed source transactions.
    pending: Vec<Item>,
    closed: usize,
    rows: usize,
    bytes: usize,
    since: Option<Instant>,
    /// Everything up to here is durable for this table while it has pending changes.
    floor: u64,
    durable: u64,
    /// `Some` while the initial snapshot is being copied: (position, last key copied).
    snapshot: Option<(u64, Vec<String>)>,
    /// Commit even without rows (a finished snapshot).
    force: bool,
    schema: Option<SchemaRef>,
    failed: Option<String>,
    /// Changes below this replay over a later snapshot (a row may be missing meanwhile).
    consistent_from: u64,
    /// Why no row of this table can be written any more (a column change the lake table cannot
    /// follow, with dead-letter recovery: its rows go to the dead-letter table).
    conflict: Option<String>,
    flow: Flow,
    /// The commit running on its own task (it holds the writer meanwhile).
    inflight: Option<InFlight>,
    /// [`Checkpoint::inside`] of the latest commit.
    durable_inside: Option<Inside>,
}

impl TableState {
    /// Whether committed changes wait to be written.
    fn has_pending(&self) -> bool {
        self.closed > 0 || self.force
    }

    /// Whether the batch has reached its size bounds. A table being copied is bounded by bytes
    /// only: every commit of a copy rewrites the file groups it touches (copy-on-write), which
    /// grow with the copy, so fewer, larger commits write less; memory is bounded all the same.
    fn full(&self, options: &PipelineOptions) -> bool {
        self.bytes >= options.max_bytes
            || (self.snapshot.is_none() && self.rows >= options.max_rows)
    }
}

/// Source → tables, exactly once.
#[derive(Debug)]
pub struct Pipeline<S: Source> {
    source: S,
    tables: BTreeMap<TableId, TableState>,
    options: PipelineOptions,
    processed: u64,
    acked: u64,
    /// Commit times of processed source commits not yet acknowledged, oldest first.
    commit_times: VecDeque<(u64, i64)>,
    /// The dead-letter table's writer (dead-letter recovery).
    dead_letter: Option<Writer>,
    /// The position last recorded in the acknowledgement record, and when.
    recorded: (u64, Option<Instant>),
    summary: RunSummary,
}

impl<S: Source> Pipeline<S> {
    /// Takes the writer lease of every table and reads its checkpoint. `tables` maps each
    /// captured source table to its lake table and record key.
    pub async fn open(
        source: S,
        tables: BTreeMap<TableId, Target>,
        options: PipelineOptions,
    ) -> Result<Self> {
        let mut states = BTreeMap::new();
        for (id, target) in tables {
            let table = target.table.clone();
            let key = target.key.clone();
            let flow = target.flow.clone();
            let checkpoint = table_checkpoint(&table).await?;
            let schema = table.schema().await.map_err(|e| Error::lake(&table, e))?;
            let writer = table.writer().await.map_err(|e| Error::lake(&table, e))?;
            for rolled_back in writer.rolled_back() {
                tracing::info!(table = %id, instant = %rolled_back.rolled_back.time, "Rolled back an unfinished write.");
            }
            let consistent_from = checkpoint.as_ref().map_or(0, |c| c.consistent_from);
            let (durable, snapshot) = match &checkpoint {
                // Not copied yet: the source copies it (or, without snapshots, marks it done).
                None => (0, Some((0, Vec::new()))),
                Some(c) => (
                    c.position,
                    match &c.snapshot {
                        SnapshotState::Done => None,
                        SnapshotState::After(k) => Some((c.position, k.clone())),
                    },
                ),
            };
            if let Some(kind) = checkpoint.as_ref().and_then(|c| c.source.as_deref())
                && kind != source.kind()
            {
                return Err(Error::Config {
                    field: "sink.base_uri".to_string(),
                    reason: format!(
                        "lake table {} holds positions of a {kind} source, and this pipeline reads \
                         a {} source (positions of different sources cannot be compared): write \
                         it under another base URI (or tables.\"{id}\".uri)",
                        table.storage().uri(),
                        source.kind()
                    ),
                });
            }
            tracing::info!(table = %id, checkpoint = ?checkpoint.as_ref().map(|c| source.display(c.position)), "Opened lake table.");
            states.insert(
                id.clone(),
                TableState {
                    id,
                    writer: Some(writer),
                    key,
                    pending: Vec::new(),
                    closed: 0,
                    rows: 0,
                    bytes: 0,
                    since: None,
                    floor: durable,
                    durable,
                    snapshot,
                    force: false,
                    schema: schema.or(Some(target.schema)),
                    failed: None,
                    consistent_from,
                    conflict: None,
                    flow,
                    inflight: None,
                    durable_inside: checkpoint.as_ref().and_then(|c| c.inside),
                },
            );
        }
        let dead_letter = match &options.dead_letter {
            Some(table) => Some(table.writer().await.map_err(|e| Error::lake(table, e))?),
            None => None,
        };
        let recorded = (options.ack_record.as_ref().map_or(0, |r| r.1), None);
        Ok(Pipeline {
            source,
            dead_letter,
            recorded,
            tables: states,
            options,
            processed: 0,
            acked: 0,
            commit_times: VecDeque::new(),
            summary: RunSummary::default(),
        })
    }

    /// The checkpoints the tables start from.
    async fn checkpoints(&self) -> Result<BTreeMap<TableId, Checkpoint>> {
        let mut out = BTreeMap::new();
        for (id, state) in &self.tables {
            let Some(writer) = &state.writer else {
                continue;
            };
            if let Some(c) = table_checkpoint(writer.table()).await? {
                out.insert(id.clone(), c);
            }
        }
        Ok(out)
    }

    /// Runs until `shutdown` is set (then commits what is buffered and acknowledges it), the
    /// `stop_at` position is durable, or an error.
    pub async fn run(mut self, shutdown: Arc<AtomicBool>) -> Result<RunSummary> {
        let checkpoints = self.checkpoints().await?;
        self.source.start(checkpoints).await?;
        self.report_state();
        let wait = self.options.max_delay.min(Duration::from_millis(500));
        let result = self.run_loop(&shutdown, wait).await;
        let result = match result {
            Ok(()) => self.flush_all().await,
            Err(e) => Err(e),
        };
        // Commits in flight end either way (their writers are closed below).
        let settled = self.settle_all().await;
        let result = result.and(settled);
        if result.is_ok() {
            self.acknowledge(true).await;
        }
        let _ = self.source.close().await;
        if let Some(writer) = self.dead_letter.take() {
            let _ = writer.close().await;
        }
        for state in self.tables.values_mut() {
            if let Some(writer) = state.writer.take() {
                let _ = writer.close().await;
            }
            if let Some(reason) = &state.failed {
                self.summary.failed.push((state.id.clone(), reason.clone()));
            }
        }
        if result.is_ok() {
            self.options.status.update(|s| s.state = State::Stopped);
        }
        self.summary.acknowledged = self.acked;
        result.map(|()| self.summary)
    }

    async fn run_loop(&mut self, shutdown: &AtomicBool, wait: Duration) -> Result<()> {
        loop {
            if shutdown.load(Ordering::SeqCst) {
                tracing::info!("Stopping: committing buffered changes.");
                return Ok(());
            }
            if let Some(stop) = self.options.stop_at {
                // Durable everywhere (once the commits in flight end, see `run`), or everywhere
                // but in tables stopped by an error; and no table still being copied (a copy's
                // rows are not durable when the positions it is consistent with are).
                let copying = self
                    .tables
                    .values()
                    .any(|s| s.failed.is_none() && s.snapshot.is_some());
                let caught_up = self.processed >= stop
                    && self
                        .tables
                        .values()
                        .all(|s| s.failed.is_some() || !s.has_pending());
                if !copying && (self.acked >= stop || caught_up) {
                    return Ok(());
                }
            }
            if self.settle_finished().await? {
                self.acknowledge(false).await;
            }
            let event = self.source.next(wait).await?;
            self.handle(event).await?;
        }
    }

    async fn handle(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Schema(mut change) => {
                let Some(state) = self.tables.get_mut(&change.table) else {
                    return Ok(());
                };
                if state.failed.is_some() {
                    return Ok(());
                }
                change.schema = state.flow.schema(&change.schema);
                if let Some(current) = &state.schema {
                    // One rule set, the table's: add columns, widen integers and floats.
                    match inlet_table::schema::evolve(current, &change.schema) {
                        Ok(evolved) => {
                            state.schema = Some(evolved);
                            state.conflict = None;
                        }
                        Err(conflict) if self.options.recovery == RecoveryKind::DeadLetter => {
                            // Rows from here on go to the dead-letter table, with this reason.
                            let reason = format!(
                                "{conflict}: the lake table cannot follow this column change; \
                                 recreate the lake table (or revert the column type)"
                            );
                            tracing::error!(table = %state.id, "{reason}; its rows go to the dead-letter table.");
                            state.conflict = Some(reason);
                        }
                        Err(conflict) => {
                            let reason = format!(
                                "{conflict}. Recreate the lake table (or revert the column type) \
                                 and restart"
                            );
                            let id = change.table.clone();
                            return self.fail_table(&id, reason).await;
                        }
                    }
                } else {
                    state.schema = Some(change.schema);
                }
            }
            Event::Rows(rows) => {
                let processed = self.processed;
                let Some(state) = self.tables.get_mut(&rows.table) else {
                    return Ok(());
                };
                if state.failed.is_some() {
                    return Ok(());
                }
                let n = rows.batch.num_rows();
                ::metrics::counter!(metrics::SOURCE_CHANGES, "pipeline" => self.options.name.clone())
                    .increment(n as u64);
                let copying = state.snapshot.is_some();
                let inside = rows.inside;
                self.options.status.update(|s| {
                    s.changes += n as u64;
                    if copying {
                        let table = s.tables.entry(state.id.to_string()).or_default();
                        table.copy.get_or_insert_default().rows += n as u64;
                    }
                });
                let Some(rows) = state.flow.rows(rows)? else {
                    return Ok(());
                };
                let screened = dead_letter::screen(
                    rows,
                    &state.key,
                    self.options.max_value_bytes,
                    state.conflict.as_deref(),
                )?;
                if !screened.dead.is_empty() && self.options.recovery == RecoveryKind::Stop {
                    let first = &screened.dead[0];
                    let reason = format!(
                        "a row cannot be written ({}; position {}, op {}, row {}). With \
                         [recovery] kind = \"dead-letter\" such rows go to the dead-letter table",
                        first.reason,
                        first.position.unwrap_or(0),
                        first.op,
                        truncated(&first.row, 500),
                    );
                    let id = state.id.clone();
                    return self.fail_table(&id, reason).await;
                }
                if state.pending.is_empty() {
                    state.since = Some(Instant::now());
                    state.floor = state.durable.max(processed);
                }
                if !screened.dead.is_empty() {
                    state.pending.push(Item::Dead(screened.dead));
                }
                if let Some(rows) = screened.keep {
                    state.rows += rows.batch.num_rows();
                    state.bytes += rows.batch.get_array_memory_size();
                    state.pending.push(Item::Rows(Box::new(rows)));
                }
                // Memory is bounded by `max_bytes`, not by the size of a source transaction:
                // one that outgrows it is written in several commits, each checkpointed inside
                // it (a source that cannot resume there sends no `inside`, and its transactions
                // stay whole).
                // Not while the table is being copied: its checkpoint is then the copy's, which
                // has no place for `inside`.
                if let Some(inside) = inside
                    && state.bytes >= self.options.max_bytes
                    && state.snapshot.is_none()
                {
                    let id = state.id.clone();
                    return self.flush_inside(&id, inside).await;
                }
            }
            Event::Truncate(tables) => {
                let processed = self.processed;
                for id in tables {
                    if let Some(state) = self.tables.get_mut(&id)
                        && state.failed.is_none()
                    {
                        if matches!(state.flow, Flow::Outbox { .. }) {
                            // Emptying an outbox deletes no event that was published.
                            tracing::info!(table = %id, "Truncate of an outbox table: the events stay.");
                            continue;
                        }
                        if state.pending.is_empty() {
                            state.since = Some(Instant::now());
                            state.floor = state.durable.max(processed);
                        }
                        state.pending.push(Item::Truncate);
                    }
                }
            }
            Event::Commit {
                position,
                commit_ts,
            } => {
                self.processed = self.processed.max(position);
                if commit_ts > 0 {
                    if self.commit_times.len() >= MAX_COMMIT_TIMES
                        && let Some(back) = self.commit_times.back_mut()
                    {
                        // Bounded (a stopped table freezes the acknowledgement): the newest
                        // entry stands for the commits after it, keeping its older time.
                        back.0 = position;
                    } else {
                        self.commit_times.push_back((position, commit_ts));
                    }
                }
                for state in self.tables.values_mut() {
                    state.closed = state.pending.len();
                }
                self.flush_due().await?;
                self.acknowledge(false).await;
            }
            Event::SnapshotProgress {
                table,
                after_key,
                position,
            } => {
                if let Some(state) = self.tables.get_mut(&table) {
                    if after_key.is_empty() {
                        // A copy from the start (or one without key order, whose every chunk
                        // says so): when starting over (the table was emptied because the source
                        // lost changes it needs), what the table held before counts no more, and
                        // positions of another server may be lower than its old ones. Positions
                        // of a copy are all its `position`, so saying it again changes nothing.
                        state.durable = position;
                        state.floor = position;
                    }
                    state.snapshot = Some((position, after_key));
                    state.closed = state.pending.len();
                    if state.full(&self.options) {
                        self.flush(&table).await?;
                    }
                }
            }
            Event::SnapshotDone {
                table,
                position,
                consistent_from,
            } => {
                // Every source transaction up to the snapshot's position is in it (tables still
                // being copied hold the acknowledgement back through their floor).
                self.processed = self.processed.max(position);
                self.options.status.update(|s| {
                    let entry = s.tables.entry(table.to_string()).or_default();
                    entry.copy.get_or_insert_default().done = true;
                });
                if let Some(state) = self.tables.get_mut(&table) {
                    state.snapshot = None;
                    state.consistent_from = consistent_from;
                    state.closed = state.pending.len();
                    state.force = true;
                    // Positions below the snapshot's are in it.
                    state.floor = position;
                    state.durable = state.durable.max(position);
                    self.flush(&table).await?;
                }
                self.report_state();
            }
            Event::Rollback => {
                // Rows of the open transaction will come again.
                for state in self.tables.values_mut() {
                    let closed = state.closed;
                    state.pending.truncate(closed);
                }
            }
            Event::Idle => {
                self.flush_due().await?;
                self.acknowledge(false).await;
            }
        }
        Ok(())
    }

    /// Stops a table: what committed transactions brought before is kept, nothing after is
    /// written or acknowledged; the other tables go on.
    async fn fail_table(&mut self, id: &TableId, cause: String) -> Result<()> {
        if self.tables.get(id).is_some_and(|s| s.closed > 0) {
            self.flush(id).await?;
        }
        self.settle(id).await?;
        let Some(state) = self.tables.get_mut(id) else {
            return Ok(());
        };
        let reason = format!(
            "{cause}. The table stopped at {} (nothing after it is written or acknowledged)",
            self.source.display(state.durable)
        );
        tracing::error!(table = %state.id, "{reason}");
        self.options.status.update(|s| {
            s.tables.entry(state.id.to_string()).or_default().failed = Some(reason.clone());
        });
        state.failed = Some(reason);
        state.pending.clear();
        state.closed = 0;
        self.report_state();
        Ok(())
    }

    async fn flush_due(&mut self) -> Result<()> {
        let due: Vec<TableId> = self
            .tables
            .values()
            .filter(|s| {
                s.failed.is_none()
                    && s.has_pending()
                    && (s.full(&self.options)
                        || s.since
                            .is_some_and(|t| t.elapsed() >= self.options.max_delay)
                        || self.options.stop_at.is_some_and(|p| self.processed >= p))
            })
            .map(|s| s.id.clone())
            .collect();
        for id in due {
            self.flush(&id).await?;
        }
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<()> {
        let ids: Vec<TableId> = self
            .tables
            .values()
            .filter(|s| s.failed.is_none() && s.has_pending())
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            self.flush(&id).await?;
        }
        Ok(())
    }

    /// Tells the source what is durable in every table: first recorded (at most once per
    /// [`RECORD_INTERVAL`] unless `now`; a position not recorded yet waits), then acknowledged.
    async fn acknowledge(&mut self, now: bool) {
        let mut ack = self.processed;
        for state in self.tables.values() {
            if state.failed.is_some() || state.inflight.is_some() {
                ack = ack.min(state.durable);
            } else if state.has_pending() || state.snapshot.is_some() {
                ack = ack.min(state.floor);
            }
        }
        if let Some((record, _)) = &self.options.ack_record
            && ack > self.recorded.0
        {
            let due = now
                || self
                    .recorded
                    .1
                    .is_none_or(|at| at.elapsed() >= RECORD_INTERVAL);
            if due {
                match record.write(ack, &self.source.display(ack)).await {
                    Ok(()) => self.recorded = (ack, Some(Instant::now())),
                    Err(e) => tracing::warn!(
                        "Recording the acknowledged position failed (the acknowledgement waits): {e}"
                    ),
                }
            }
            ack = ack.min(self.recorded.0);
        }
        if ack > self.acked {
            self.acked = ack;
            tracing::debug!(position = %self.source.display(ack), "Acknowledged.");
            self.source.acknowledge(ack);
        }
        self.report_progress();
    }

    /// Publishes how far the pipeline is durable, and the lag: now minus the source commit time
    /// of the oldest change received and not yet durable (0 when every change is durable).
    fn report_progress(&mut self) {
        while let Some(&(position, _)) = self.commit_times.front()
            && position <= self.acked
        {
            self.commit_times.pop_front();
        }
        let oldest = self.commit_times.front().map(|&(_, ts)| ts);
        let acked = self.acked;
        let at = (acked > 0).then(|| self.source.display(acked));
        self.options.status.update(|s| {
            s.acknowledged = (acked > 0).then_some(acked);
            s.position = at;
            s.oldest_pending_commit_ts = oldest;
        });
        let lag = oldest.map_or(0.0, |ts| {
            (chrono::Utc::now().timestamp_micros() - ts).max(0) as f64 / 1e6
        });
        ::metrics::gauge!(metrics::SOURCE_LAG, "pipeline" => self.options.name.clone()).set(lag);
    }

    /// Snapshotting while any table is still being copied, streaming after.
    fn report_state(&self) {
        let copying = self
            .tables
            .values()
            .any(|s| s.failed.is_none() && s.snapshot.is_some());
        let state = if copying {
            State::Snapshotting
        } else {
            State::Streaming
        };
        self.options.status.update(|s| s.state = state);
    }

    /// Commits the table's buffered changes with its checkpoint (after its commit in flight).
    async fn flush(&mut self, id: &TableId) -> Result<()> {
        self.flush_through(id, None).await
    }

    /// Commits all the table's buffered changes, those of the open source transaction too, up
    /// to `inside`: a transaction larger than the batch bounds is written in several commits.
    async fn flush_inside(&mut self, id: &TableId, inside: Inside) -> Result<()> {
        if let Some(state) = self.tables.get_mut(id) {
            state.closed = state.pending.len();
        }
        tracing::info!(
            table = %id,
            rows = self.tables.get(id).map_or(0, |s| s.rows),
            "A source transaction outgrew batch.max_bytes: committing its changes so far."
        );
        self.flush_through(id, Some(inside)).await?;
        self.source.durable_inside(id, inside);
        Ok(())
    }

    /// [`Pipeline::flush`], with the checkpoint inside an open transaction when `inside` is set.
    async fn flush_through(&mut self, id: &TableId, inside: Option<Inside>) -> Result<()> {
        self.settle(id).await?;
        let processed = self.processed;
        let Some(state) = self.tables.get_mut(id) else {
            return Ok(());
        };
        let Some(writer) = state.writer.as_mut() else {
            return Ok(());
        };
        let origin = self.source.origin();
        let checkpoint = match &state.snapshot {
            Some((position, after)) => Checkpoint {
                position: *position,
                snapshot: SnapshotState::After(after.clone()),
                consistent_from: 0,
                source: None,
                origin,
                gtid: None,
                inside: None,
            },
            None => Checkpoint {
                position: state.durable.max(processed),
                snapshot: SnapshotState::Done,
                consistent_from: state.consistent_from,
                source: None,
                origin,
                gtid: None,
                inside,
            },
        };
        let (kind, source) = (self.source.kind(), &self.source);
        let metadata = |c: &Checkpoint| {
            let c = Checkpoint {
                gtid: source.gtid(c.position),
                ..c.clone()
            };
            BTreeMap::from([(
                CHECKPOINT_KEY.to_string(),
                c.to_json(kind, &source.display(c.position)),
            )])
        };
        let mut items: Vec<Item> = state.pending.drain(..state.closed).collect();
        state.closed = 0;
        // Dead letters go to their table whatever a truncate does to this one.
        let mut dead = Vec::new();
        items.retain_mut(|item| match item {
            Item::Dead(d) => {
                dead.append(d);
                false
            }
            _ => true,
        });
        // A truncate makes everything before it moot.
        let truncate = items.iter().rposition(|i| matches!(i, Item::Truncate));
        if let Some(at) = truncate {
            items.drain(..=at);
            let table = writer.table().clone();
            let keep = if items.is_empty() && !state.force {
                checkpoint.clone()
            } else {
                // The rows after the truncate follow in a second commit with the new checkpoint.
                Checkpoint {
                    position: state.durable,
                    snapshot: SnapshotState::Done,
                    consistent_from: state.consistent_from,
                    source: None,
                    origin: checkpoint.origin.clone(),
                    gtid: None,
                    inside: state.durable_inside,
                }
            };
            // A replace commit of every file group: no table data is read.
            let commit = writer
                .truncate(metadata(&keep))
                .await
                .map_err(|e| Error::lake(&table, e))?;
            let groups: usize = commit
                .metadata
                .partition_to_replace_file_ids
                .values()
                .map(Vec::len)
                .sum();
            tracing::info!(table = %id, instant = %commit.instant, file_groups = groups, "Truncated.");
            self.summary.commits += 1;
            state.durable = keep.position;
        }
        let rows: Vec<RowBatch> = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Rows(r) => Some(*r),
                Item::Truncate | Item::Dead(_) => None,
            })
            .collect();
        // Dead letters are durable before the position that brought them is.
        if !dead.is_empty() {
            let Some(dead_letter) = self.dead_letter.as_mut() else {
                return Err(Error::Config {
                    field: "recovery.kind".into(),
                    reason: "rows for the dead-letter table, but it is not open".into(),
                });
            };
            let batch = dead_letter::to_batch(&self.options.name, &dead)?;
            let table = dead_letter.table().clone();
            dead_letter
                .commit(Changes::upsert(batch), BTreeMap::new())
                .await
                .map_err(|e| Error::lake(&table, e))?;
            inlet_table::failpoint!("pipeline.after-dead-letters");
            tracing::warn!(table = %id, rows = dead.len(), reason = %dead[0].reason, "Rows went to the dead-letter table.");
            ::metrics::counter!(metrics::DEAD_LETTERS, "pipeline" => self.options.name.clone(), "table" => id.to_string())
                .increment(dead.len() as u64);
            self.options.status.update(|s| {
                s.tables.entry(id.to_string()).or_default().dead_letters += dead.len() as u64;
            });
        }
        let Some(state) = self.tables.get_mut(id) else {
            return Ok(());
        };
        let position = checkpoint.position;
        state.durable_inside = checkpoint.inside;
        // What is left belongs to the open transaction: once the commit is durable, so is
        // everything before it.
        state.floor = position;
        state.rows = state
            .pending
            .iter()
            .map(|i| match i {
                Item::Rows(r) => r.batch.num_rows(),
                Item::Truncate | Item::Dead(_) => 0,
            })
            .sum();
        state.bytes = state
            .pending
            .iter()
            .map(|i| match i {
                Item::Rows(r) => r.batch.get_array_memory_size(),
                Item::Truncate | Item::Dead(_) => 0,
            })
            .sum();
        state.since = (!state.pending.is_empty()).then(Instant::now);
        if rows.is_empty() && !state.force {
            state.durable = position;
            return Ok(());
        }
        state.force = false;
        let Some(mut writer) = state.writer.take() else {
            return Ok(());
        };
        let table = writer.table().clone();
        let commit = DataCommit {
            id: id.clone(),
            key: state.key.clone(),
            schema: state.schema.clone(),
            consistent_from: state.consistent_from,
            rows,
            metadata: metadata(&checkpoint),
            at: match checkpoint.inside {
                Some(inside) => format!(
                    "{}, inside the transaction committing at {} through {}",
                    self.source.display(position),
                    self.source.display(inside.txn),
                    self.source.display(inside.change)
                ),
                None => self.source.display(position),
            },
            inside: checkpoint.inside.is_some(),
            services: self.options.services.clone(),
        };
        // The commit runs while the pipeline reads on; the table's next flush (or the end of
        // the run) waits for it, and nothing of it is acknowledged before it is durable.
        let handle = tokio::spawn(async move {
            let result = commit.run(&mut writer).await;
            (writer, result)
        });
        state.inflight = Some(InFlight {
            position,
            table,
            handle,
        });
        Ok(())
    }

    /// Waits for the table's commit in flight, if any, and takes its outcome.
    async fn settle(&mut self, id: &TableId) -> Result<()> {
        let Some(state) = self.tables.get_mut(id) else {
            return Ok(());
        };
        let Some(inflight) = state.inflight.take() else {
            return Ok(());
        };
        let (writer, result) = inflight.handle.await.map_err(|e| {
            let reason = format!("the commit task ended abnormally: {e}");
            Error::lake(&inflight.table, inlet_table::Error::Task(reason))
        })?;
        state.writer = Some(writer);
        let rows = result?;
        state.durable = inflight.position;
        self.summary.rows += rows as u64;
        self.summary.commits += 1;
        Ok(())
    }

    /// Takes the outcome of every commit that has finished (without waiting): true if any did.
    async fn settle_finished(&mut self) -> Result<bool> {
        let done: Vec<TableId> = self
            .tables
            .values()
            .filter(|s| s.inflight.as_ref().is_some_and(|f| f.handle.is_finished()))
            .map(|s| s.id.clone())
            .collect();
        for id in &done {
            self.settle(id).await?;
        }
        Ok(!done.is_empty())
    }

    /// Waits for every commit in flight.
    async fn settle_all(&mut self) -> Result<()> {
        let ids: Vec<TableId> = self.tables.keys().cloned().collect();
        let mut first_error = None;
        for id in ids {
            if let Err(e) = self.settle(&id).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A table commit that runs on its own task, overlapping the reading of the next changes.
#[derive(Debug)]
struct InFlight {
    /// The checkpoint it makes durable.
    position: u64,
    table: Table,
    handle: tokio::task::JoinHandle<(Writer, Result<usize>)>,
}

/// What a data commit needs, owned, so that it can run on its own task.
struct DataCommit {
    id: TableId,
    key: Vec<String>,
    schema: Option<SchemaRef>,
    consistent_from: u64,
    rows: Vec<RowBatch>,
    metadata: BTreeMap<String, String>,
    /// The checkpoint, for the log.
    at: String,
    /// Whether the checkpoint is inside an open source transaction.
    inside: bool,
    services: Option<Arc<dyn TableServiceHooks>>,
}

impl DataCommit {
    /// Commits the rows (or, with none, a commit that only carries the checkpoint): the rows
    /// written.
    async fn run(self, writer: &mut Writer) -> Result<usize> {
        let DataCommit {
            id,
            key,
            schema,
            consistent_from,
            rows,
            metadata,
            at,
            inside,
            services,
        } = self;
        let table = writer.table().clone();
        let (batch, deletes, unresolved) = match batch::concat_rows(&id, rows, schema.as_ref())? {
            Some(b) => b,
            None => {
                let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
                (
                    batch::empty_with_cdc(&schema)?,
                    BooleanArray::from(Vec::<bool>::new()),
                    Vec::new(),
                )
            }
        };
        let (batch, deletes) = toast::resolve(
            writer,
            &id,
            &key,
            batch,
            deletes,
            unresolved,
            consistent_from,
        )
        .await?;
        let rows = batch.num_rows();
        if let Some(services) = &services {
            services.before_commit(&id, writer).await;
        }
        let started = Instant::now();
        writer
            .commit(
                Changes {
                    batch,
                    deletes: Some(deletes),
                    operation: Operation::Upsert,
                },
                metadata,
            )
            .await
            .map_err(|e| Error::lake(&table, e))?;
        if inside {
            inlet_table::failpoint!("pipeline.after-commit-inside-transaction");
        }
        tracing::info!(
            table = %id,
            rows,
            checkpoint = %at,
            ms = started.elapsed().as_millis() as u64,
            "Committed."
        );
        if let Some(services) = &services {
            services.after_commit(&id, writer).await;
        }
        Ok(rows)
    }
}

/// At most `max` bytes of `text` (at a character boundary), marked when cut.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests;
