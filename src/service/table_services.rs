//! Background table services of the tables a pipeline writes: after each commit, a compaction
//! plan when the table's strategy picks slices (planning needs the writer lease, so the
//! pipeline does it between its commits), then, on a task of the table's own, execution of
//! pending compactions, cleaning and archival under the services lease — beside ingest,
//! never blocking a commit. When compaction falls behind, ingest of that table waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use inlet_compaction::TableServices;
use inlet_compaction::archive::{self, Retention};
use inlet_compaction::clean::{self, Policy};
use inlet_compaction::compact::{self, Strategy};
use inlet_config::{PipelineConfig, ServicesConfig};
use inlet_ingest::TableId;
use inlet_ingest::metrics::{INGEST_THROTTLED, MAX_LOG_FILES, PENDING_COMPACTIONS};
use inlet_ingest::pipeline::TableServiceHooks;
use inlet_ingest::status::PipelineStatus;
use inlet_table::write::Writer;
use inlet_table::{Table, TableType};
use tokio::sync::Notify;

/// Failed background runs in a row after which ingest stops waiting for compaction.
const FAILURES_BEFORE_GIVING_UP: usize = 3;

/// How often the services of an idle table look for work anyway (a compaction planned by a
/// previous run, files a clean may now delete).
const IDLE_PERIOD: Duration = Duration::from_secs(30);

/// What runs for one table.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `None`: no compaction (copy-on-write tables, or `"off"`).
    pub compaction: Option<Strategy>,
    pub clean: Option<Policy>,
    pub retention: Retention,
    pub max_pending_compactions: usize,
    pub max_log_files_per_slice: usize,
}

impl Plan {
    /// The services of source table `id` in `pipeline`: the table's own settings over
    /// `[services]`; errors name the field.
    pub fn of(
        services: &ServicesConfig,
        pipeline: &PipelineConfig,
        field_prefix: &str,
        id: &TableId,
        table_type: TableType,
    ) -> anyhow::Result<Plan> {
        let options = pipeline.table(&id.schema, &id.name);
        let (compaction, compaction_field) = match &options.compaction {
            Some(c) => (
                c.clone(),
                format!("{field_prefix}tables.\"{id}\".compaction"),
            ),
            None => (
                services.compaction.clone(),
                "services.compaction".to_string(),
            ),
        };
        let (cleaning, clean_field) = match &options.clean {
            Some(c) => (c.clone(), format!("{field_prefix}tables.\"{id}\".clean")),
            None => (services.clean.clone(), "services.clean".to_string()),
        };
        let compaction = match compaction.as_str() {
            "off" => None,
            text => {
                let strategy: Strategy = text
                    .parse()
                    .with_context(|| format!("{compaction_field}: {text:?} (or \"off\")"))?;
                (table_type == TableType::MergeOnRead).then_some(strategy)
            }
        };
        let clean = match cleaning.as_str() {
            "off" => None,
            text => Some(
                text.parse()
                    .with_context(|| format!("{clean_field}: {text:?} (or \"off\")"))?,
            ),
        };
        let retention = Retention::new(services.archive_min_commits, services.archive_max_commits)
            .context("services.archive_min_commits")?;
        Ok(Plan {
            compaction,
            clean,
            retention,
            max_pending_compactions: services.max_pending_compactions,
            max_log_files_per_slice: services.max_log_files_per_slice,
        })
    }
}

/// One table's services: what the pipeline's hooks and the background task share.
#[derive(Debug)]
struct TableService {
    name: String,
    table: Table,
    plan: Plan,
    /// Compactions planned and not completed, as last seen.
    pending: AtomicUsize,
    /// Background runs that failed in a row (ingest does not wait for a failing compaction).
    failures: AtomicUsize,
    /// Wakes the background task (a commit happened).
    wake: Notify,
    /// Told after every background run (ingest waiting for compaction re-checks).
    progress: Notify,
}

/// The services of every table of one pipeline; the pipeline's [`TableServiceHooks`].
#[derive(Debug)]
pub struct PipelineServices {
    tables: BTreeMap<TableId, Arc<TableService>>,
    status: Arc<PipelineStatus>,
    /// The process is stopping.
    shutdown: Arc<AtomicBool>,
    /// This pipeline stopped (the process may go on with others).
    stopped: Arc<AtomicBool>,
}

impl PipelineServices {
    pub fn new(status: Arc<PipelineStatus>, shutdown: Arc<AtomicBool>) -> Self {
        PipelineServices {
            tables: BTreeMap::new(),
            status,
            shutdown,
            stopped: Arc::default(),
        }
    }

    /// Ends the background tasks after what they are doing (with [`PipelineServices::wake_all`]).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Adds a table; its background task starts with [`PipelineServices::spawn`].
    pub fn add(&mut self, id: TableId, table: Table, plan: Plan) {
        let service = TableService {
            name: id.to_string(),
            table,
            plan,
            pending: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            wake: Notify::new(),
            progress: Notify::new(),
        };
        self.tables.insert(id, Arc::new(service));
    }

    /// Starts one background task per table; they end after `shutdown` is set.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.tables
            .values()
            .map(|service| {
                let service = service.clone();
                let status = self.status.clone();
                let stop = [self.shutdown.clone(), self.stopped.clone()];
                tokio::spawn(async move { background(service, status, stop).await })
            })
            .collect()
    }

    /// Wakes every task (at shutdown, so that they notice it).
    pub fn wake_all(&self) {
        for service in self.tables.values() {
            service.wake.notify_one();
            service.progress.notify_waiters();
        }
    }
}

#[async_trait]
impl TableServiceHooks for PipelineServices {
    async fn before_commit(&self, id: &TableId, writer: &mut Writer) {
        let Some(service) = self.tables.get(id) else {
            return;
        };
        if service.plan.compaction.is_none() {
            return;
        }
        let mut warned = false;
        loop {
            let pending = service.pending.load(Ordering::SeqCst);
            let logs = max_log_files(writer);
            let behind = pending > service.plan.max_pending_compactions
                || (pending > 0 && logs > service.plan.max_log_files_per_slice);
            if !behind || self.shutdown.load(Ordering::SeqCst) {
                return;
            }
            let failures = service.failures.load(Ordering::SeqCst);
            if failures >= FAILURES_BEFORE_GIVING_UP {
                // Waiting for a compaction that keeps failing would stop ingest for good (and
                // make the slot retain WAL); the failures are logged and counted instead.
                tracing::error!(
                    table = %id,
                    pending,
                    failures,
                    "Compaction keeps failing: ingest goes on without waiting for it."
                );
                return;
            }
            if !warned {
                tracing::warn!(
                    table = %id,
                    pending,
                    max_log_files_per_slice = logs,
                    "Compaction is behind: ingest of this table waits for it."
                );
                metrics::counter!(INGEST_THROTTLED, "table" => service.name.clone()).increment(1);
                warned = true;
            }
            service.wake.notify_one();
            let _ = tokio::time::timeout(Duration::from_secs(1), service.progress.notified()).await;
        }
    }

    async fn after_commit(&self, id: &TableId, writer: &Writer) {
        let Some(service) = self.tables.get(id) else {
            return;
        };
        let logs = max_log_files(writer);
        metrics::gauge!(MAX_LOG_FILES, "table" => service.name.clone()).set(logs as f64);
        if let Some(strategy) = &service.plan.compaction
            && picks_any(writer, strategy)
        {
            match compact::schedule(writer, strategy).await {
                Ok(Some(scheduled)) => {
                    let pending = service.pending.fetch_add(1, Ordering::SeqCst) + 1;
                    publish_pending(service, &self.status, pending);
                    tracing::info!(
                        table = %id,
                        instant = %scheduled.instant,
                        file_groups = scheduled.plan.operations.len(),
                        "Planned a compaction."
                    );
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(table = %id, "Planning a compaction failed: {e}"),
            }
        }
        service.wake.notify_one();
    }
}

/// Whether the strategy would pick any slice of the writer's view: a cheap check before
/// planning, which lists the table again.
fn picks_any(writer: &Writer, strategy: &Strategy) -> bool {
    let Some(snapshot) = writer.snapshot() else {
        return true;
    };
    snapshot.view().live_file_groups().any(|group| {
        group.pending_compaction.is_none()
            && group
                .latest_slice(None)
                .is_some_and(|slice| strategy.picks(&slice))
    })
}

/// The most log files in one file slice of the writer's view.
fn max_log_files(writer: &Writer) -> usize {
    writer.snapshot().map_or(0, |snapshot| {
        snapshot
            .view()
            .live_file_groups()
            .filter_map(|group| group.latest_slice(None).map(|s| s.log_files.len()))
            .max()
            .unwrap_or(0)
    })
}

fn publish_pending(service: &TableService, status: &PipelineStatus, pending: usize) {
    metrics::gauge!(PENDING_COMPACTIONS, "table" => service.name.clone()).set(pending as f64);
    status.update(|s| {
        s.tables
            .entry(service.name.clone())
            .or_default()
            .pending_compactions = pending;
    });
}

/// One table's background task: after each wake-up (a commit, or the idle period), runs
/// pending compactions, the clean and the archival; errors are logged and retried at the next
/// wake-up.
async fn background(
    service: Arc<TableService>,
    status: Arc<PipelineStatus>,
    stop: [Arc<AtomicBool>; 2],
) {
    let stopping = || stop.iter().any(|s| s.load(Ordering::SeqCst));
    loop {
        let _ = tokio::time::timeout(IDLE_PERIOD, service.wake.notified()).await;
        if stopping() {
            break;
        }
        match run_once(&service, &status, &stopping).await {
            Ok(()) => service.failures.store(0, Ordering::SeqCst),
            Err(e) => {
                let failures = service.failures.fetch_add(1, Ordering::SeqCst) + 1;
                tracing::warn!(table = %service.name, failures, "Table services: {e:#}");
            }
        }
        service.progress.notify_waiters();
    }
}

async fn run_once(
    service: &TableService,
    status: &PipelineStatus,
    stopping: &impl Fn() -> bool,
) -> anyhow::Result<()> {
    let timeline = service.table.timeline().await?;
    let pending: Vec<_> = timeline
        .pending_compactions()
        .map(|i| i.time.clone())
        .collect();
    publish_pending(service, status, pending.len());
    service.pending.store(pending.len(), Ordering::SeqCst);
    let services = TableServices::open(service.table.clone()).await?;
    let result = async {
        for time in &pending {
            if stopping() {
                return Ok(());
            }
            let compacted = compact::execute(&services, time).await?;
            // One fewer; plans made meanwhile by the pipeline stay counted.
            let left = service
                .pending
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(1)))
                .map_or(0, |n| n.saturating_sub(1));
            publish_pending(service, status, left);
            service.progress.notify_waiters();
            tracing::info!(
                table = %service.name,
                instant = %time,
                file_groups = compacted.file_groups,
                log_files = compacted.log_files,
                records = compacted.records,
                "Compacted."
            );
        }
        if let Some(policy) = service.plan.clean {
            let cleaned = clean::clean(&services, policy).await?;
            if let Some(instant) = &cleaned.instant {
                tracing::info!(table = %service.name, %instant, files = cleaned.files.len(), bytes = cleaned.bytes, "Cleaned.");
            }
        }
        let archived = archive::archive(&services, service.plan.retention).await?;
        if let Some(file) = &archived.file {
            tracing::info!(table = %service.name, instants = archived.instants.len(), file, "Archived.");
        }
        anyhow::Ok(())
    }
    .await;
    services.close().await?;
    result
}
