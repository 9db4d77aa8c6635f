//! `inlet compact`, `inlet clean`, `inlet archive` and `inlet rollback`: the table services, run
//! by hand. Each prints what it did.

use clap::Args;
use inlet_compaction::TableServices;
use inlet_compaction::archive::{self, Retention};
use inlet_compaction::clean::{self, Policy};
use inlet_compaction::compact::{self, Strategy};
use inlet_table::{Error, InstantTime, Table};

use super::StorageArgs;

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Table location (a merge-on-read table).
    uri: String,
    /// Only write the plan (`T.compaction.requested`); a later `inlet compact` executes it.
    #[arg(long)]
    schedule_only: bool,
    /// Which file slices to plan: `all` (every slice with log files, the default by hand),
    /// `delta-commits:N` (slices with at least N delta commits since their base) or
    /// `log-ratio:R` (log files at least R times the base file's size).
    #[arg(long, default_value = "all")]
    strategy: Strategy,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Table location.
    uri: String,
    /// `keep-latest-commits:N` (default, N = 10 as Hudi's `hoodie.cleaner.commits.retained`),
    /// `keep-latest-file-versions:N` or `keep-latest-by-hours:H`.
    #[arg(long, default_value = "keep-latest-commits:10")]
    policy: Policy,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Table location.
    uri: String,
    /// Completed commits kept on the active timeline after archiving (`hoodie.keep.min.commits`).
    #[arg(long, default_value_t = 20)]
    min_commits: usize,
    /// Archiving starts above this many completed commits (`hoodie.keep.max.commits`).
    #[arg(long, default_value_t = 30)]
    max_commits: usize,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Table location.
    uri: String,
    /// The instant to roll back: the latest completed commit, delta commit or compaction.
    instant: InstantTime,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn compact(args: CompactArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    // Scheduling needs the writer lease; with a writer running, pending plans still execute.
    match table.writer().await {
        Ok(writer) => {
            let scheduled = compact::schedule(&writer, &args.strategy).await;
            writer.close().await?;
            match scheduled? {
                Some(s) => println!(
                    "scheduled compaction {} of {} file group(s)",
                    s.instant,
                    s.plan.operations.len()
                ),
                None => println!(
                    "nothing to schedule: no file slice matches strategy {}",
                    args.strategy
                ),
            }
        }
        Err(Error::WriterLeaseHeld { owner, .. }) if !args.schedule_only => {
            eprintln!(
                "a writer ({owner}) holds the table: not scheduling, executing pending compactions only"
            );
        }
        Err(e) => return Err(e.into()),
    }
    if args.schedule_only {
        return Ok(());
    }
    let services = TableServices::open(table.clone()).await?;
    let pending: Vec<InstantTime> = table
        .timeline()
        .await?
        .pending_compactions()
        .map(|i| i.time.clone())
        .collect();
    for time in pending {
        let done = compact::execute(&services, &time).await?;
        if done.partial_files_removed > 0 {
            println!(
                "compaction {time}: removed {} file(s) of an earlier attempt",
                done.partial_files_removed
            );
        }
        println!(
            "compacted {time}: {} file group(s), {} log file(s) ({} bytes) into {} record(s), {} bytes of base files",
            done.file_groups, done.log_files, done.log_bytes, done.records, done.bytes_written
        );
    }
    services.close().await?;
    Ok(())
}

pub async fn clean(args: CleanArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    let services = TableServices::open(table).await?;
    let cleaned = clean::clean(&services, args.policy).await;
    services.close().await?;
    let cleaned = cleaned?;
    match &cleaned.instant {
        None => println!("nothing to clean ({} keeps every file)", args.policy.name()),
        Some(instant) => {
            println!(
                "clean {instant}: deleted {} file(s), {} bytes ({}{})",
                cleaned.files.len(),
                cleaned.bytes,
                args.policy.name(),
                cleaned
                    .earliest_retained
                    .as_ref()
                    .map(|t| format!(", earliest commit retained {t}"))
                    .unwrap_or_default()
            );
            for file in &cleaned.files {
                println!("  {file}");
            }
        }
    }
    Ok(())
}

pub async fn archive(args: ArchiveArgs) -> anyhow::Result<()> {
    let retention = Retention::new(args.min_commits, args.max_commits)?;
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    let services = TableServices::open(table).await?;
    let archived = archive::archive(&services, retention).await;
    services.close().await?;
    let archived = archived?;
    match &archived.file {
        None => println!("nothing to archive"),
        Some(file) => {
            println!("archived {} instant(s) to {file}", archived.instants.len());
            for instant in &archived.instants {
                println!("  {} {}", instant.time, instant.action);
            }
        }
    }
    if let Some(reason) = &archived.limited_by {
        println!("stopped short: {reason}");
    }
    Ok(())
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    let mut writer = table.writer().await?;
    let outcome = writer.rollback(&args.instant).await;
    writer.close().await?;
    let outcome = outcome?;
    println!(
        "rolled back {} ({}) with rollback {}: deleted {} file(s)",
        args.instant,
        outcome.rolled_back.action.completed_as(),
        outcome.rollback_instant,
        outcome.deleted_files.len()
    );
    for file in &outcome.deleted_files {
        println!("  {file}");
    }
    Ok(())
}
