//! The inlet steps of the benchmark, each run in a child process of its own (so that its peak
//! resident memory is its own): bulk insert, upsert and compaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use inlet_compaction::TableServices;
use inlet_compaction::compact::{self, Strategy};
use inlet_table::read::Query;
use inlet_table::write::{Changes, Operation};
use inlet_table::{Table, TableConfig, TableProperties, TableType};

use crate::data::{self, BULK_FILE, UPSERT_FILE};
use crate::step::{Rss, Step};

/// The hidden first argument that makes the bench binary run one step.
pub const STEP_ARG: &str = "--step";

/// An inlet step: `Kind` on a table of `TableType`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Bulk,
    Upsert,
    Compact,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bulk => "bulk",
            Kind::Upsert => "upsert",
            Kind::Compact => "compact",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Kind> {
        [Kind::Bulk, Kind::Upsert, Kind::Compact]
            .into_iter()
            .find(|k| k.name() == s)
            .with_context(|| format!("unknown step {s:?}"))
    }
}

pub fn type_name(table_type: TableType) -> &'static str {
    match table_type {
        TableType::CopyOnWrite => "cow",
        TableType::MergeOnRead => "mor",
    }
}

fn parse_type(s: &str) -> anyhow::Result<TableType> {
    match s {
        "cow" => Ok(TableType::CopyOnWrite),
        "mor" => Ok(TableType::MergeOnRead),
        _ => anyhow::bail!("table type {s:?}: use cow or mor"),
    }
}

/// Arguments of the child process running `kind` on the table `dir/<type>`; the table must hold
/// `expect` rows afterwards.
pub fn child_args(
    kind: Kind,
    table_type: TableType,
    dir: &Path,
    buckets: u32,
    expect: usize,
) -> Vec<String> {
    vec![
        STEP_ARG.to_string(),
        kind.name().to_string(),
        type_name(table_type).to_string(),
        dir.display().to_string(),
        buckets.to_string(),
        expect.to_string(),
    ]
}

/// Runs the step [`child_args`] describes and prints its [`Step`] as one JSON line.
pub async fn run_child(args: &[String]) -> anyhow::Result<()> {
    // INLET_LOG=inlet_table=debug prints the commit's phases (to stderr).
    inlet_tests::harness::process::log_to_stderr();
    let [kind, table_type, dir, buckets, expect] = args else {
        anyhow::bail!("{STEP_ARG} KIND TYPE DIR BUCKETS EXPECT, got {args:?}");
    };
    let step = run(
        Kind::parse(kind)?,
        parse_type(table_type)?,
        Path::new(dir),
        buckets.parse()?,
        expect.parse()?,
    )
    .await?;
    println!("{}", step.to_json());
    Ok(())
}

async fn run(
    kind: Kind,
    table_type: TableType,
    dir: &Path,
    buckets: u32,
    expect: usize,
) -> anyhow::Result<Step> {
    let uri = dir.join(type_name(table_type)).display().to_string();
    let table = match kind {
        Kind::Bulk => {
            let mut props = TableProperties::new("bench", table_type, vec!["id".into()]);
            props.ordering_field = Some("_cdc_position".into());
            props.buckets = Some(buckets);
            Table::create(&uri, TableConfig::default(), props).await?
        }
        Kind::Upsert | Kind::Compact => Table::open(&uri, TableConfig::default()).await?,
    };
    let mut step = match kind {
        Kind::Bulk => {
            let batch = data::read_parquet(&dir.join(BULK_FILE))?;
            let changes = Changes {
                batch,
                deletes: None,
                operation: Operation::Insert,
            };
            commit(&table, changes).await?
        }
        Kind::Upsert => {
            let (batch, deletes) =
                data::split_deletes(data::read_parquet(&dir.join(UPSERT_FILE))?)?;
            let changes = Changes {
                batch,
                deletes: Some(deletes),
                operation: Operation::Upsert,
            };
            commit(&table, changes).await?
        }
        Kind::Compact => compact(&table).await?,
    };
    step.peak_rss_kib = Rss::now().peak_kib;

    let rows = table.read(&Query::Snapshot).await?.num_rows();
    anyhow::ensure!(
        rows == expect,
        "the {} table has {rows} rows after {}, expected {expect}",
        type_name(table_type),
        kind.name()
    );
    Ok(step)
}

/// Times one commit of `changes`, from an open writer.
async fn commit(table: &Table, changes: Changes) -> anyhow::Result<Step> {
    let rows = changes.batch.num_rows();
    let upsert = matches!(changes.operation, Operation::Upsert);
    let mut writer = table.writer().await?;
    let base = Rss::now().current_kib;
    let started = Instant::now();
    let commit = writer.commit(changes, BTreeMap::new()).await?;
    let secs = started.elapsed().as_secs_f64();
    writer.close().await?;
    let totals = commit.metadata.totals();
    Ok(Step {
        rows: rows as u64,
        secs,
        files: totals.files as u64,
        bytes: totals.bytes as u64,
        base_rss_kib: base,
        peak_rss_kib: 0,
        note: if upsert {
            format!(
                "{} updates, {} inserts, {} deletes",
                totals.updates, totals.inserts, totals.deletes
            )
        } else {
            String::new()
        },
    })
}

/// Times scheduling and executing a compaction of every file group with log files.
async fn compact(table: &Table) -> anyhow::Result<Step> {
    let base = Rss::now().current_kib;
    let started = Instant::now();
    let writer = table.writer().await?;
    let scheduled = compact::schedule(&writer, &Strategy::All).await?;
    writer.close().await?;
    let scheduled = scheduled.context("nothing to compact")?;
    let services = TableServices::open(table.clone()).await?;
    let done = compact::execute(&services, &scheduled.instant).await?;
    services.close().await?;
    let secs = started.elapsed().as_secs_f64();
    Ok(Step {
        rows: done.records,
        secs,
        files: done.file_groups as u64,
        bytes: done.bytes_written,
        base_rss_kib: base,
        peak_rss_kib: 0,
        note: format!(
            "{} log files ({:.1} MiB) merged",
            done.log_files,
            done.log_bytes as f64 / 1048576.0
        ),
    })
}
