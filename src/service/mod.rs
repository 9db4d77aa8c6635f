//! The service of `inlet run` and `inlet demo`: every configured pipeline on a task of its own
//! (one failing does not stop the others), the background table services of their tables, the
//! metrics recorder and the admin endpoint.

pub mod progress;
pub mod table_services;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use inlet_config::{Config, DEFAULT_PIPELINE, PipelineConfig, ServicesConfig};
use inlet_ingest::metrics::{COMMIT_DURATION, COMMIT_DURATION_BUCKETS};
use inlet_ingest::service::DEAD_LETTER_TABLE;
use inlet_ingest::status::State;
use inlet_ingest::{RunSummary, TableId};
use inlet_table::TableConfig;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::oneshot;

use crate::admin::{self, Admin, PipelineView};
use table_services::{PipelineServices, Plan};

/// How long a stopping pipeline waits for its table services to finish what they do.
const SERVICES_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How each pipeline ended.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub view: Arc<PipelineView>,
    pub result: Result<RunSummary, String>,
}

/// Runs every pipeline of `config` until `shutdown` is set (or all have stopped). `serving`
/// receives the admin endpoint's address once it listens.
pub async fn run(
    config: &Config,
    shutdown: Arc<AtomicBool>,
    serving: Option<oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<Vec<Outcome>> {
    let views: Vec<Arc<PipelineView>> = config
        .pipelines
        .iter()
        .map(|(name, p)| Arc::new(PipelineView::new(name, p.source.kind())))
        .collect();
    let listener = match config.admin.address()? {
        Some(address) => Some(admin::bind(address).await?),
        None => None,
    };
    let admin = Arc::new(Admin {
        pipelines: views.clone(),
        token: config.admin.token()?,
        metrics: install_metrics(),
    });
    let (stop_admin, admin_stopped) = oneshot::channel::<()>();
    let server = match listener {
        Some(listener) => {
            let address = listener.local_addr()?;
            tracing::info!("Admin endpoint on http://{address}/");
            if let Some(serving) = serving {
                let _ = serving.send(address);
            }
            Some(tokio::spawn(admin::serve(listener, admin, async {
                let _ = admin_stopped.await;
            })))
        }
        None => None,
    };

    let progress = progress::spawn(views.clone());
    let single = config.pipelines.len() == 1;
    let mut tasks = Vec::new();
    for ((name, pipeline), view) in config.pipelines.iter().zip(&views) {
        let prefix = if single && name == DEFAULT_PIPELINE {
            String::new()
        } else {
            format!("pipelines.{name}.")
        };
        let task = run_pipeline(
            pipeline.clone(),
            config.services.clone(),
            prefix,
            view.clone(),
            shutdown.clone(),
        );
        tasks.push((name.clone(), view.clone(), tokio::spawn(task)));
    }
    let mut outcomes = Vec::new();
    for (name, view, task) in tasks {
        let result = match task.await {
            Ok(result) => result,
            Err(e) => Err(format!("the pipeline task ended abnormally: {e}")),
        };
        if let Err(reason) = &result {
            view.status.update(|s| {
                s.state = State::Failed;
                s.reason = Some(reason.clone());
            });
        }
        outcomes.push(Outcome { name, view, result });
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    let _ = stop_admin.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(outcomes)
}

/// One pipeline with its table services; the error is the reason it failed, as shown.
async fn run_pipeline(
    config: PipelineConfig,
    services_config: ServicesConfig,
    prefix: String,
    view: Arc<PipelineView>,
    shutdown: Arc<AtomicBool>,
) -> Result<RunSummary, String> {
    let fail = |e: &dyn std::fmt::Display| {
        let reason = e.to_string();
        tracing::error!(pipeline = %view.name, "Pipeline failed: {reason}");
        view.status.update(|s| {
            s.state = State::Failed;
            s.reason = Some(reason.clone());
        });
        reason
    };
    let mut hooks = crate::cli::hooks();
    if let Some(catalog) = &config.sink.catalog {
        let target = inlet_query::catalog::GlueTarget {
            database: catalog.database.clone(),
            region: catalog.region.clone(),
            endpoint: catalog.endpoint.clone(),
            table: None,
        };
        let hook = inlet_query::catalog::GlueCatalogHook::new(target).map_err(|e| {
            fail(&inlet_ingest::Error::Config {
                field: format!("{prefix}sink.catalog"),
                reason: e.to_string(),
            })
        })?;
        hooks.push(Arc::new(hook));
    }
    let prepared = inlet_ingest::service::prepare(
        &view.name,
        &config,
        TableConfig {
            hooks,
            ..TableConfig::default()
        },
        view.status.clone(),
    )
    .await
    .map_err(|e| fail(&with_prefix(e, &prefix)))?;
    for (table, reason) in prepared.skipped() {
        tracing::warn!(pipeline = %view.name, %table, "Not captured: {reason}");
    }
    let mut services = PipelineServices::new(view.status.clone(), shutdown.clone());
    for (id, target) in prepared.targets() {
        let table = &target.table;
        let plan = Plan::of(
            &services_config,
            &config,
            &prefix,
            id,
            table.properties().table_type,
        )
        .map_err(|e| fail(&format!("{e:#}")))?;
        services.add(id.clone(), table.clone(), plan);
        // The page shows the table's latest instant from the start.
        if let Ok(timeline) = table.timeline().await {
            let latest = timeline.latest_time().map(ToString::to_string);
            view.status.update(|s| {
                s.tables.entry(id.to_string()).or_default().latest_instant = latest;
            });
        }
        view.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.to_string(), table.clone());
    }
    if let Some(table) = prepared.dead_letter() {
        let id = TableId::new("_inlet", "dead_letter");
        let plan = Plan::of(
            &services_config,
            &config,
            &prefix,
            &id,
            table.properties().table_type,
        )
        .map_err(|e| fail(&format!("{e:#}")))?;
        services.add(id, table.clone(), plan);
        view.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(DEAD_LETTER_TABLE.to_string(), table.clone());
    }
    let services = Arc::new(services);
    let background = services.spawn();
    let result = prepared
        .run(shutdown.clone(), None, Some(services.clone()))
        .await
        .map_err(|e| with_prefix(e, &prefix));
    // The table services stop with their pipeline.
    shutdown_services(&services, &shutdown);
    for mut task in background {
        // A compaction stopped midway is safe (the next start runs it again): do not let a
        // slow one hold up the stop.
        if tokio::time::timeout(SERVICES_STOP_GRACE, &mut task)
            .await
            .is_err()
        {
            tracing::warn!(pipeline = %view.name, "Table services did not stop in time: abandoning them (an unfinished compaction runs again at the next start).");
            task.abort();
        }
    }
    result.map_err(|e| fail(&e))
}

/// A configuration error of a pipeline, naming the field as the file spells it
/// (`pipelines.<name>.tables."s.t".columns`).
fn with_prefix(error: inlet_ingest::Error, prefix: &str) -> inlet_ingest::Error {
    match error {
        inlet_ingest::Error::Config { field, reason } if !prefix.is_empty() => {
            inlet_ingest::Error::Config {
                field: format!("{prefix}{field}"),
                reason,
            }
        }
        other => other,
    }
}

/// Lets the background tasks of a stopped pipeline end: they finish what they do, then stop.
fn shutdown_services(services: &PipelineServices, shutdown: &AtomicBool) {
    if !shutdown.load(Ordering::SeqCst) {
        // The pipeline stopped by itself (an error): its services stop with it.
        services.stop();
    }
    services.wake_all();
}

/// Installs the Prometheus recorder (once per process) with the histogram buckets.
fn install_metrics() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(COMMIT_DURATION.to_string()),
            COMMIT_DURATION_BUCKETS,
        )
        .ok()?;
    match builder.install_recorder() {
        Ok(handle) => {
            inlet_ingest::metrics::describe();
            Some(handle)
        }
        Err(e) => {
            tracing::warn!("Metrics are not recorded: {e}");
            None
        }
    }
}
