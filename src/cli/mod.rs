//! Command-line arguments and the commands they run.

mod catalog;
mod demo;
mod mirror;
mod read;
mod run;
mod savepoint;
mod services;
mod sql;
mod table;
pub(crate) mod timeline;
mod write;

use clap::{Args, Parser, Subcommand};
use inlet_table::TableConfig;

#[derive(Debug, Parser)]
#[command(name = "inlet", version, about = "Change data capture into Apache Hudi tables", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and manage tables.
    #[command(subcommand)]
    Table(table::TableCommand),
    /// Write Debezium change events (one JSON object per line) to a table in one commit.
    Write(write::WriteArgs),
    /// Read a table: snapshot, time travel (--as-of) or incremental (--from/--to).
    Read(read::ReadArgs),
    /// Query tables with SQL (DataFusion): --table NAME=URI, --lake BASE_URI or --config FILE.
    Sql(sql::SqlArgs),
    /// Show the table's timeline: instants, their state and what each commit wrote.
    Timeline(timeline::TimelineArgs),
    /// Compact a merge-on-read table: schedule a plan, then fold log files into new base files.
    Compact(services::CompactArgs),
    /// Delete file versions that no retained commit needs (Hudi's cleaner).
    Clean(services::CleanArgs),
    /// Move old instants from the active timeline to .hoodie/archived.
    Archive(services::ArchiveArgs),
    /// Roll back the latest completed commit, delta commit or compaction.
    Rollback(services::RollbackArgs),
    /// Keep a completed commit so that the table can be restored to it (or --delete one).
    Savepoint(savepoint::SavepointArgs),
    /// List the table's savepoints.
    Savepoints(savepoint::SavepointsArgs),
    /// Restore the table to a savepoint: every write after it is rolled back.
    Restore(savepoint::RestoreArgs),
    /// Register tables in a catalog (AWS Glue) for Athena, Presto, Trino and Spark.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Sync the table's Delta Lake mirror (_delta_log beside .hoodie), or show how far it is.
    Mirror(mirror::MirrorArgs),
    /// Run the service on generated changes: two tables, background compaction, the admin page.
    Demo(demo::DemoArgs),
    /// Capture PostgreSQL or MySQL changes into lake tables until SIGINT/SIGTERM (see examples/).
    Run(run::RunArgs),
}

/// Options for reaching a table's storage.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Object-store option KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000, aws_region=eu-west-1);
    /// repeatable. Missing S3 options come from the usual AWS_* environment variables.
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_key_value, global = true)]
    storage_options: Vec<(String, String)>,
}

impl StorageArgs {
    fn table_config(&self) -> TableConfig {
        TableConfig {
            storage_options: self.storage_options.clone(),
            hooks: hooks(),
            ..Default::default()
        }
    }
}

/// The post-commit hooks of every table the binary opens: the Delta mirror (acting only on
/// tables whose properties turn it on).
pub(crate) fn hooks() -> inlet_table::commit::transaction::Hooks {
    vec![std::sync::Arc::new(inlet_query::mirror::DeltaMirrorHook)]
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Table(command) => table::run(command).await,
        Command::Write(args) => write::run(args).await,
        Command::Read(args) => read::run(args).await,
        Command::Sql(args) => sql::run(args).await,
        Command::Timeline(args) => timeline::run(args).await,
        Command::Compact(args) => services::compact(args).await,
        Command::Clean(args) => services::clean(args).await,
        Command::Archive(args) => services::archive(args).await,
        Command::Rollback(args) => services::rollback(args).await,
        Command::Savepoint(args) => savepoint::savepoint(args).await,
        Command::Savepoints(args) => savepoint::savepoints(args).await,
        Command::Restore(args) => savepoint::restore(args).await,
        Command::Catalog(command) => catalog::run(command).await,
        Command::Mirror(args) => mirror::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Run(args) => run::run(args).await,
    }
}
