//! SQL over a lake table, inlet against DuckDB and hudi-rs. One run writes (seeded) a table of
//! ROWS rows — 8 partitions (`region`) of 4 buckets, so 32 file groups — twice: copy-on-write,
//! and merge-on-read with an upsert of 1 row in 50 of two partitions, which leaves log files on
//! 8 of the 32 file groups (25%). On each, two queries:
//!
//! - aggregate: `SELECT status, count(*), round(sum(amount), 2) … GROUP BY status` (a scan);
//! - point: `SELECT id, region, status, amount … WHERE id = K` (one row).
//!
//! inlet answers with `inlet_query::sql::Lake` (what `inlet sql` runs: the table's snapshot
//! loaded, pruned, base files through DataFusion's Parquet scan, log slices merged); DuckDB reads
//! the copy-on-write table's base files with `read_parquet` (they are its whole latest state);
//! hudi-rs reads either table through its DataFusion-free read path and pyarrow aggregates
//! (`tests/interop/bench_sql.py`). Every answer must be the same. Each engine runs each query
//! three times in a process of its own; the report has the median, the ratio to DuckDB and the
//! process's peak resident memory.
//!
//! `scripts/bench-sql [ROWS]` (default 10000000). Data goes to a temporary directory, removed at
//! the end, or to `INLET_BENCH_DIR` (empty or new), kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;
use inlet_table::write::{Changes, Operation};
use inlet_table::{Table, TableConfig, TableProperties, TableType};
use serde_json::{Value, json};

const STEP: &str = "--step";
const PARTITIONS: u64 = 8;
const BUCKETS: u32 = 4;
const RUNS: usize = 3;
const STATUSES: [&str; 5] = ["new", "paid", "shipped", "returned", "cancelled"];
/// Goal: inlet's time over DuckDB's on the copy-on-write table.
const GOAL: f64 = 1.5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(STEP) {
        return step(&args[1..]).await;
    }
    let rows: u64 = args
        .first()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    anyhow::ensure!(
        rows >= PARTITIONS * 100,
        "ROWS must be at least {}",
        PARTITIONS * 100
    );
    let python = std::env::var("INLET_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/bench_sql.py");
    let (_temp, dir) = inlet_tests::harness::bench_dir()?;
    let exe = std::env::current_exe()?;
    let dir_arg = dir.display().to_string();
    for kind in ["cow", "mor"] {
        eprintln!("bench-sql: writing the {kind} table ({rows} rows)");
        let built = run(
            Command::new(&exe).args([STEP, "build", kind, &dir_arg, &rows.to_string()]),
            kind,
        )?;
        eprintln!(
            "bench-sql: {kind} table written in {:.1} s",
            built["secs"].as_f64().unwrap_or_default()
        );
    }
    let key = rows / 2 + 7;
    let mut report: Vec<(String, String, Value)> = Vec::new();
    for kind in ["cow", "mor"] {
        let table = dir.join(kind).display().to_string();
        for query in ["aggregate", "point"] {
            let mut answers: BTreeMap<String, Value> = BTreeMap::new();
            let mut engines = vec![("inlet", None), ("hudi-rs", Some("hudi"))];
            if kind == "cow" {
                engines.insert(1, ("DuckDB", Some("duckdb")));
            }
            for (engine, peer) in engines {
                eprintln!("bench-sql: {engine} {kind} {query}");
                let out = match peer {
                    None => run(
                        Command::new(&exe).args([STEP, "query", query, &table, &key.to_string()]),
                        engine,
                    )?,
                    Some(peer) => run(
                        Command::new(&python).args([script, &table, peer, query, &key.to_string()]),
                        engine,
                    )?,
                };
                answers.insert(engine.to_string(), canonical(&out["result"]));
                report.push((format!("{kind} {query}"), engine.to_string(), out));
            }
            let first = answers.values().next().cloned();
            for (engine, answer) in &answers {
                anyhow::ensure!(
                    Some(answer) == first.as_ref(),
                    "{kind} {query}: {engine} answered {answer}, another engine {first:?}"
                );
            }
        }
    }
    print_report(rows, &report);
    Ok(())
}

/// Runs a child that prints one JSON line last; that line.
fn run(command: &mut Command, label: &str) -> anyhow::Result<Value> {
    let stdout = inlet_tests::harness::run_child(command, label)?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("{label}: no JSON line in {stdout:?}"))?;
    Ok(serde_json::from_str(line)?)
}

/// Answers compared across engines: numbers as numbers with cents, rows sorted.
fn canonical(result: &Value) -> Value {
    let mut rows: Vec<String> = result
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            row.as_array()
                .into_iter()
                .flatten()
                .map(|v| match v.as_f64() {
                    Some(f) if !v.is_string() => format!("{f:.2}"),
                    _ => v.as_str().map_or_else(|| v.to_string(), str::to_string),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    json!(rows)
}

fn print_report(rows: u64, report: &[(String, String, Value)]) {
    println!(
        "\nSQL over {rows} rows, {PARTITIONS} partitions x {BUCKETS} buckets; median of {RUNS} \
         runs per engine, each in its own process\n"
    );
    println!(
        "| query | engine | seconds (median) | runs | / DuckDB | peak RSS |\n|---|---|---:|---|---:|---:|"
    );
    let mut duckdb: BTreeMap<&str, f64> = BTreeMap::new();
    for (query, engine, out) in report {
        if engine == "DuckDB" {
            duckdb.insert(query.as_str(), out["secs"].as_f64().unwrap_or_default());
        }
    }
    for (query, engine, out) in report {
        let secs = out["secs"].as_f64().unwrap_or_default();
        let runs: Vec<String> = out["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .map(|r| format!("{r:.3}"))
            .collect();
        let ratio = duckdb
            .get(query.replace("mor", "cow").as_str())
            .filter(|d| **d > 0.0)
            .map_or("".to_string(), |d| format!("{:.2}x", secs / d));
        let rss = out["peak_rss_kib"].as_u64().unwrap_or_default() as f64 / 1024.0;
        println!(
            "| {query} | {engine} | {secs:.3} | {} | {ratio} | {rss:.0} MiB |",
            runs.join(", ")
        );
    }
    println!(
        "\nGoal: inlet within {GOAL}x of DuckDB on the copy-on-write table (ratio column, cow rows)."
    );
}

/// A child step: `build cow|mor DIR ROWS` or `query aggregate|point TABLE KEY`.
async fn step(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("build") => build(&args[1], Path::new(&args[2]), args[3].parse()?).await,
        Some("query") => query(&args[1], &args[2], args[3].parse()?).await,
        other => anyhow::bail!("unknown step {other:?}"),
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("customer", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// Rows `ids` of partition `p` (amounts shifted by `bump` cents in an upsert).
fn rows_of(
    p: u64,
    ids: impl Iterator<Item = u64> + Clone,
    bump: u64,
) -> anyhow::Result<RecordBatch> {
    let ids: Vec<u64> = ids.collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|&i| i as i64))),
        Arc::new(StringArray::from(vec![format!("r{p}"); ids.len()])),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|&i| STATUSES[((i * 7 + bump) % 5) as usize]),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("customer-{:06}", i % 100_000)),
        )),
        Arc::new(Float64Array::from_iter_values(
            ids.iter()
                .map(|&i| ((i * 7919 + bump) % 100_000) as f64 / 100.0),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                ids.iter().map(|&i| 1_764_000_000_000_000 + i as i64 * 1000),
            )
            .with_timezone("UTC"),
        ),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// Writes the table: one commit per partition; merge-on-read tables then get an upsert of 1 row
/// in 50 of partitions r0 and r1 (log files on their 8 file groups).
async fn build(kind: &str, dir: &Path, rows: u64) -> anyhow::Result<()> {
    let table_type = match kind {
        "cow" => TableType::CopyOnWrite,
        _ => TableType::MergeOnRead,
    };
    let mut props = TableProperties::new("bench", table_type, vec!["id".into()]);
    props.partition_fields = vec!["region".into()];
    props.buckets = Some(BUCKETS);
    let uri = dir.join(kind).display().to_string();
    let table = Table::create(&uri, TableConfig::default(), props).await?;
    let started = Instant::now();
    let mut writer = table.writer().await?;
    let per = rows / PARTITIONS;
    for p in 0..PARTITIONS {
        let end = if p + 1 == PARTITIONS {
            rows
        } else {
            (p + 1) * per
        };
        let batch = rows_of(p, p * per..end, 0)?;
        let changes = Changes {
            batch,
            deletes: None,
            operation: Operation::Insert,
        };
        writer.commit(changes, BTreeMap::new()).await?;
    }
    if table_type == TableType::MergeOnRead {
        for p in 0..2 {
            let batch = rows_of(p, (p * per..(p + 1) * per).step_by(50), 1)?;
            writer
                .commit(Changes::upsert(batch), BTreeMap::new())
                .await?;
        }
    }
    writer.close().await?;
    println!("{}", json!({"secs": started.elapsed().as_secs_f64()}));
    Ok(())
}

/// Runs a query [`RUNS`] times as `inlet sql` does (snapshot loaded each time).
async fn query(query: &str, uri: &str, key: u64) -> anyhow::Result<()> {
    let sql = match query {
        "aggregate" => "SELECT status, count(*) AS n, round(sum(amount), 2) AS total FROM s.t \
                        GROUP BY status ORDER BY status"
            .to_string(),
        _ => format!("SELECT id, region, status, amount FROM s.t WHERE id = {key}"),
    };
    let mut times = Vec::new();
    let mut result = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let table = Table::open(uri, TableConfig::default()).await?;
        let lake = inlet_query::sql::Lake::new(vec![("s.t".to_string(), table)], false).await?;
        let batches: Vec<RecordBatch> = lake.sql(&sql).await?.try_collect().await?;
        times.push(started.elapsed().as_secs_f64());
        result = rows_as_json(&batches)?;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    println!(
        "{}",
        json!({"secs": sorted[RUNS / 2], "runs": times, "result": result, "peak_rss_kib": peak})
    );
    Ok(())
}

/// Rows as JSON arrays of their values, in column order.
fn rows_as_json(batches: &[RecordBatch]) -> anyhow::Result<Vec<Value>> {
    let names: Vec<String> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(inlet_tests::canonical::json_objects(batches)?
        .into_iter()
        .map(|object| {
            Value::Array(
                names
                    .iter()
                    .map(|n| object.get(n).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect())
}
