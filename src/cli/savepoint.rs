//! `inlet savepoint`, `inlet savepoints` and `inlet restore`: keeping a commit so that the table
//! can be brought back to it.

use clap::Args;
use inlet_compaction::TableServices;
use inlet_table::commit::savepoint;
use inlet_table::{InstantTime, Table};

use super::StorageArgs;

#[derive(Debug, Args)]
pub struct SavepointArgs {
    /// Table location.
    uri: String,
    /// The completed commit, delta commit, replace commit or compaction to keep.
    instant: InstantTime,
    /// Delete this savepoint instead of creating it.
    #[arg(long)]
    delete: bool,
    /// Who takes the savepoint (recorded as `savepointedBy`).
    #[arg(long, default_value = "")]
    by: String,
    /// Why (recorded as `comments`).
    #[arg(long, default_value = "")]
    comment: String,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct SavepointsArgs {
    /// Table location.
    uri: String,
    /// One JSON object per savepoint instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Table location.
    uri: String,
    /// The savepoint to restore the table to; everything written after it is rolled back.
    instant: InstantTime,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn savepoint(args: SavepointArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    // Under the services lease: no clean may delete what the savepoint lists meanwhile.
    let services = TableServices::open(table.clone()).await?;
    let outcome = async {
        let lease = services.lease()?;
        if args.delete {
            savepoint::delete(&table, lease, &args.instant).await?;
            println!("deleted savepoint {}", args.instant);
        } else {
            let created =
                savepoint::create(&table, lease, &args.instant, &args.by, &args.comment).await?;
            let files: usize = created.files.values().map(Vec::len).sum();
            println!(
                "savepoint {} keeps {files} file(s) in {} partition(s)",
                created.time,
                created.files.len()
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    services.close().await?;
    outcome
}

pub async fn savepoints(args: SavepointsArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    let timeline = table.timeline().await?;
    let savepoints = savepoint::list(&table, &timeline).await?;
    for sp in &savepoints {
        let files: usize = sp.files.values().map(Vec::len).sum();
        let at = chrono::DateTime::from_timestamp_millis(sp.at_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "instant": sp.time.to_string(),
                    "savepointed_at": at,
                    "by": sp.by,
                    "comments": sp.comments,
                    "partitions": sp.files.len(),
                    "files": files,
                })
            );
        } else {
            println!(
                "{}  taken {at}  by {:?}  {:?}  {files} file(s)",
                sp.time, sp.by, sp.comments
            );
        }
    }
    if savepoints.is_empty() && !args.json {
        println!("no savepoints");
    }
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    // Both leases: no write, compaction or clean may run while writes are undone.
    let mut writer = table.writer().await?;
    let services = match TableServices::open(table.clone()).await {
        Ok(services) => services,
        Err(e) => {
            writer.close().await?;
            return Err(e.into());
        }
    };
    let outcome = writer.restore(&args.instant).await;
    services.close().await?;
    writer.close().await?;
    let outcome = outcome?;
    println!(
        "restored to {} with restore {}: rolled back {} instant(s), deleted {} file(s)",
        args.instant,
        outcome.instant,
        outcome.rolled_back.len(),
        outcome.deleted_files.len()
    );
    for instant in &outcome.rolled_back {
        println!("  {} {}", instant.time, instant.action);
    }
    Ok(())
}
