//! `inlet run --config FILE`: the change capture service. Captures the configured PostgreSQL
//! tables into lake tables until SIGINT/SIGTERM, then commits what is buffered, acknowledges it
//! and exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    });
    Ok(())
}
