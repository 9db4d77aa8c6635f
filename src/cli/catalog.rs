//! `inlet catalog sync`: registers a table in the AWS Glue Data Catalog, as Hudi's Glue sync does.

use anyhow::Context;
use clap::{Args, Subcommand};
use inlet_query::catalog::{self, GlueTarget};
use inlet_table::Table;

use super::StorageArgs;

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Create or update the table's Glue tables (merge-on-read: NAME_ro, NAME_rt and NAME) and
    /// their partitions. AWS credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    /// (and AWS_SESSION_TOKEN).
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Table location.
    uri: String,
    /// Glue database (created when missing).
    #[arg(long)]
    glue_database: String,
    /// Glue table name (default: the table's name).
    #[arg(long)]
    glue_table: Option<String>,
    /// AWS region (default: AWS_REGION, else us-east-1).
    #[arg(long)]
    region: Option<String>,
    /// Another Glue endpoint (e.g. a local test server).
    #[arg(long)]
    endpoint: Option<String>,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(command: CatalogCommand) -> anyhow::Result<()> {
    let CatalogCommand::Sync(args) = command;
    let table = Table::open(&args.uri, args.storage.table_config())
        .await
        .with_context(|| format!("opening {}", args.uri))?;
    let target = GlueTarget {
        database: args.glue_database,
        region: args.region,
        endpoint: args.endpoint,
        table: args.glue_table,
    };
    let glue = catalog::client(&target)?;
    for synced in catalog::sync(&glue, &table, &target)
        .await
        .with_context(|| format!("syncing {} to Glue database {}", args.uri, target.database))?
    {
        println!(
            "{}.{}: {}, {} partitions added, {} updated, {} dropped",
            target.database,
            synced.table,
            match (synced.created, synced.schema_updated) {
                (true, _) => "created",
                (false, true) => "columns updated",
                (false, false) => "up to date",
            },
            synced.partitions_added,
            synced.partitions_updated,
            synced.partitions_dropped
        );
    }
    Ok(())
}
