//! `inlet run --config FILE`: the change capture service. Captures the configured PostgreSQL
//! tables into lake tables until SIGINT/SIGTERM, then commits what is buffered, acknowledges it
//! and exits.

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
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(shutdown.clone())?;
    let summary = inlet_ingest::service::run(&config, shutdown, None).await?;
    eprintln!(
        "Stopped: {} rows in {} commits; acknowledged up to LSN {}",
        summary.rows,
        summary.commits,
        Lsn(summary.acknowledged)
    );
    for (table, reason) in &summary.skipped {
        eprintln!("Skipped {table}: {reason}");
    }
    if !summary.failed.is_empty() {
        let list: Vec<String> = summary
            .failed
            .iter()
            .map(|(t, reason)| format!("{t}: {reason}"))
            .collect();
        anyhow::bail!("tables stopped with errors:\n  {}", list.join("\n  "));
    }
    Ok(())
}

/// How long a stop may take after SIGINT/SIGTERM before the process exits anyway. Exiting then
/// is safe: what was not committed is rolled back by the next start and read again from the
/// source, which was never told it was durable.
const STOP_GRACE: Duration = Duration::from_secs(30);

fn spawn_signal_handler(shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
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
            _ = tokio::time::sleep(STOP_GRACE) => eprintln!(
                "Not stopped within {}s: exiting now (unfinished commits are rolled back at the \
                 next start; nothing undurable was acknowledged)",
                STOP_GRACE.as_secs()
            ),
        }
        std::process::exit(EXIT_FORCED);
    });
    Ok(())
}

/// Exit status of a stop forced by a second signal or the grace period.
const EXIT_FORCED: i32 = 3;
