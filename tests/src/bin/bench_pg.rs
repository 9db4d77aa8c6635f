//! PostgreSQL change capture throughput, against a throwaway server (the test harness):
//!
//! 1. the initial snapshot of a ROWS-row table (rows/s, from start to durable in the lake);
//! 2. CHANGES row changes (60% inserts, 30% updates, 10% deletes, in transactions of 1000
//!    rows) committed while inlet is stopped, then the slot is copied and drained twice, side by
//!    side: by `pg_recvlogical` (pgoutput, to /dev/null) and by the inlet pipeline (to durable
//!    lake commits, the same code as `inlet run`). Prints both rates and their ratio.
//!
//! `cargo run --release -p inlet-tests --bin bench_pg -- [ROWS] [CHANGES]` (default 1000000
//! 1000000), or `scripts/bench-pg`.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, ensure};
use inlet_tests::harness::cdc::{FENCE_DDL, config_text, fence, run_until};
use inlet_tests::harness::postgres::PostgresServer;

const TXN_ROWS: i64 = 1000;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: i64 = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let changes: i64 = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE snap (id bigint PRIMARY KEY, customer text, amount numeric(12,2),
                                status text, updated_at timestamptz);
             CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2),
                                  status text, updated_at timestamptz);
             INSERT INTO snap SELECT g, 'customer-' || (g % 9973), (g % 100000) / 100.0,
                 (ARRAY['new','paid','shipped'])[1 + g % 3], now()
               FROM generate_series(1, {rows}) g;
             {FENCE_DDL};"
        ))
        .await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.*"], "")
        .replace("buckets = 2", "buckets = 4")
        .replace("max_rows = 100000", "max_rows = 250000")
        .replace("max_delay = \"200ms\"", "max_delay = \"2s\"")
        + "\n";
    let config = config.replace("[batch]\n", "[batch]\nmax_bytes = 268435456\n");

    // 1. Snapshot.
    let target = fence(&client).await?;
    let started = Instant::now();
    let summary = run_until(&config, target).await?;
    let snapshot_secs = started.elapsed().as_secs_f64();
    ensure!(
        summary.rows as i64 >= rows,
        "snapshot wrote {} rows",
        summary.rows
    );

    // 2. A backlog of changes, written while inlet is stopped.
    let started = Instant::now();
    let (inserts, updates) = (changes * 6 / 10, changes * 3 / 10);
    let deletes = changes - inserts - updates;
    let statements = inlet_tests::harness::change_statements(
        changes,
        TXN_ROWS,
        |first, last| {
            format!(
                "INSERT INTO orders SELECT g, 'customer-' || (g % 9973), (g % 100000) / 100.0, 'new', now()
                   FROM generate_series({first}, {last}) g"
            )
        },
        |first, last| {
            format!(
                "UPDATE orders SET status = 'paid', amount = amount + 1, updated_at = now()
                   WHERE id BETWEEN {first} AND {last}"
            )
        },
        |first, last| format!("DELETE FROM orders WHERE id BETWEEN {first} AND {last}"),
    );
    for statement in &statements {
        client.batch_execute(statement).await?;
    }
    let target = fence(&client).await?;
    let workload_secs = started.elapsed().as_secs_f64();
    client
        .batch_execute("SELECT pg_copy_logical_replication_slot('inlet', 'recvlogical')")
        .await?;

    // pg_recvlogical drains the copy of the slot.
    let recvlogical = pg_bin("pg_recvlogical")?;
    let started = Instant::now();
    let status = Command::new(&recvlogical)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
        ])
        .args([
            "-d",
            "postgres",
            "--slot",
            "recvlogical",
            "--start",
            "--no-loop",
        ])
        .args([
            "-f",
            "/dev/null",
            "-o",
            "proto_version=1",
            "-o",
            "publication_names=inlet",
        ])
        .arg(format!("--endpos={}", inlet_ingest::postgres::Lsn(target)))
        .status()
        .context("running pg_recvlogical")?;
    ensure!(status.success(), "pg_recvlogical failed: {status}");
    let recvlogical_secs = started.elapsed().as_secs_f64();

    // inlet drains the slot into the lake.
    let started = Instant::now();
    let summary = run_until(&config, target).await?;
    let inlet_secs = started.elapsed().as_secs_f64();
    ensure!(
        summary.rows as i64 >= changes,
        "inlet wrote {} rows for {changes} changes",
        summary.rows
    );

    let rate = |n: i64, s: f64| n as f64 / s;
    println!("PostgreSQL change capture (local disk, copy-on-write, 4 buckets)");
    println!(
        "snapshot    {rows} rows in {snapshot_secs:.1} s: {:.0} rows/s (copy to durable commits)",
        rate(rows, snapshot_secs)
    );
    println!(
        "workload    {changes} changes ({inserts} inserts, {updates} updates, {deletes} deletes; \
         {TXN_ROWS} per transaction) written in {workload_secs:.1} s"
    );
    println!(
        "pg_recvlogical  {recvlogical_secs:.1} s: {:.0} changes/s (pgoutput to /dev/null)",
        rate(changes, recvlogical_secs)
    );
    println!(
        "inlet           {inlet_secs:.1} s: {:.0} changes/s ({} commits, durable in the lake)",
        rate(changes, inlet_secs),
        summary.commits
    );
    println!(
        "ratio           inlet / pg_recvlogical = {:.2}",
        recvlogical_secs / inlet_secs
    );
    Ok(())
}

/// A PostgreSQL client program, from `pg_config --bindir` or the Debian location.
fn pg_bin(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let from_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    for dir in from_config
        .into_iter()
        .chain([std::path::PathBuf::from("/usr/lib/postgresql/15/bin")])
    {
        if dir.join(name).is_file() {
            return Ok(dir.join(name));
        }
    }
    anyhow::bail!("{name} not found: install postgresql-15 (client programs)")
}
