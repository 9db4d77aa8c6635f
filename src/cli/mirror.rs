//! `inlet mirror`: the Delta Lake mirror of a table, on demand.

use anyhow::Context;
use clap::Args;
use inlet_query::mirror;
use inlet_table::Table;

use super::StorageArgs;

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Table location.
    uri: String,
    /// Only report how far the mirror is; change nothing.
    #[arg(long, conflicts_with_all = ["enable", "disable"])]
    status: bool,
    /// Also keep the mirror current from now on: every later commit, compaction, rollback or
    /// restore made by inlet brings it up to date (sets inlet.delta.mirror in hoodie.properties).
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Stop keeping the mirror current (the Delta log stays as it is; no sync is made).
    #[arg(long)]
    disable: bool,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: MirrorArgs) -> anyhow::Result<()> {
    let mut table = Table::open(&args.uri, args.storage.table_config())
        .await
        .with_context(|| format!("opening {}", args.uri))?;
    if args.disable {
        table.set_property(mirror::PROPERTY, None).await?;
        println!(
            "The Delta mirror of {} is no longer kept current.",
            args.uri
        );
    } else if !args.status {
        if args.enable && !mirror::enabled(&table) {
            table.set_property(mirror::PROPERTY, Some("true")).await?;
        }
        for made in mirror::sync(&table)
            .await
            .with_context(|| format!("mirroring {} to Delta", args.uri))?
        {
            println!(
                "instant {} -> Delta version {} (+{} -{} files)",
                made.instant, made.version, made.added, made.removed
            );
        }
    }
    let status = mirror::status(&table).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "uri": args.uri,
                "enabled": mirror::enabled(&table),
                "delta_version": status.version,
                "instant": status.instant,
                "behind": status.behind,
                "files": status.files,
            })
        );
        return Ok(());
    }
    match (&status.version, &status.instant) {
        (Some(version), Some(instant)) => println!(
            "Delta version {version} mirrors instant {instant} ({} base files); {}.",
            status.files,
            match status.behind.len() {
                0 => "up to date".to_string(),
                n => format!(
                    "{n} instants behind (the latest is {})",
                    status.behind[n - 1]
                ),
            }
        ),
        _ => println!(
            "No Delta mirror yet; {} instants to mirror.",
            status.behind.len()
        ),
    }
    if table.properties().table_type == inlet_table::TableType::MergeOnRead {
        println!(
            "Delta readers see the read-optimized view: changes still in log files show once a \
             compaction folds them into base files."
        );
    }
    if !mirror::enabled(&table) && !args.disable {
        println!("Not kept current by later commits (use --enable).");
    }
    Ok(())
}
