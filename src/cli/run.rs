//! `inlet run --config FILE`: the change capture service. Runs the configured pipelines, their
//! background table services and the admin endpoint until SIGINT/SIGTERM, then commits what is
//! buffered, acknowledges it and exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use inlet_config::Config;
use inlet_ingest::postgres::Lsn;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (TOML); see examples/inlet.toml.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// How long a stop may take after SIGINT/SIGTERM before the process exits anyway (status 3):
    /// set it below the orchestrator's own limit (Kubernetes' terminationGracePeriodSeconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = inlet_config::parse_duration)]
    stop_grace: Duration,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(shutdown.clone(), args.stop_grace)?;
    let outcomes = crate::service::run(&config, shutdown, None).await?;
    report(&outcomes)
}

/// Prints how each pipeline ended; an error when any failed or had tables stop.
pub fn report(outcomes: &[crate::service::Outcome]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for outcome in outcomes {
        let name = &outcome.name;
        match &outcome.result {
            Ok(summary) => {
                eprintln!(
                    "Pipeline {name} stopped: {} rows in {} commits; acknowledged up to {}",
                    summary.rows,
                    summary.commits,
                    match outcome.view.kind {
                        inlet_config::SourceKind::Postgres =>
                            format!("LSN {}", Lsn(summary.acknowledged)),
                        _ => outcome
                            .view
                            .status
                            .get()
                            .position
                            .unwrap_or_else(|| summary.acknowledged.to_string()),
                    }
                );
                for (table, reason) in &summary.skipped {
                    eprintln!("Skipped {table}: {reason}");
                }
                for (table, reason) in &summary.failed {
                    problems.push(format!("{name}: table {table}: {reason}"));
                }
            }
            Err(reason) => problems.push(format!("{name}: {reason}")),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    if outcomes.len() == 1 && outcomes[0].result.is_err() {
        // One pipeline: its error, as it always was.
        anyhow::bail!(
            "{}",
            problems[0]
                .split_once(": ")
                .map_or(problems[0].as_str(), |p| p.1)
        );
    }
    anyhow::bail!(
        "pipelines stopped with errors:\n  {}",
        problems.join("\n  ")
    )
}

/// Ends the process after a second signal, or when the stop takes longer than `grace`. Exiting
/// then is safe: what was not committed is rolled back by the next start and read again from the
/// source, which was never told it was durable.
pub fn spawn_signal_handler(shutdown: Arc<AtomicBool>, grace: Duration) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("Signal received: finishing the open commit and stopping");
        shutdown.store(true, Ordering::SeqCst);
        // A second signal, or the grace period, ends the process at once.
        tokio::select! {
            _ = interrupt.recv() => eprintln!("Second signal: exiting now"),
            _ = terminate.recv() => eprintln!("Second signal: exiting now"),
            _ = tokio::time::sleep(grace) => eprintln!(
                "Not stopped within {grace:?}: exiting now (unfinished commits are rolled back at \
                 the next start; nothing undurable was acknowledged)"
            ),
        }
        std::process::exit(EXIT_FORCED);
    });
    Ok(())
}

/// Exit status of a stop forced by a second signal or the grace period.
const EXIT_FORCED: i32 = 3;
