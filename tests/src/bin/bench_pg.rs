//! PostgreSQL change capture throughput and memory, against a throwaway server (the test
//! harness), each inlet figure side by side with a peer that does the same read without the lake:
//!
//! 1. the initial snapshot of a ROWS-row table (rows/s, from start to durable in the lake), next
//!    to `COPY snap TO STDOUT (FORMAT binary)` on one connection, counted and dropped. The COPY
//!    runs right before inlet's snapshot, so both read the table from the same warm cache.
//!    Prints both rates and the ratio inlet snapshot / COPY (goal >= 0.5; inlet decodes every
//!    row into Arrow and commits it to the lake);
//! 2. CHANGES row changes (60% inserts, 30% updates, 10% deletes, in transactions of 1000
//!    rows) committed while inlet is stopped, then the slot is copied and drained twice, side by
//!    side: by `pg_recvlogical` (pgoutput, to /dev/null) and by the inlet pipeline (to durable
//!    lake commits, the same code as `inlet run`). Prints both rates and their ratio.
//!
//! Each inlet line also prints the phase's peak RSS: the pipeline runs in this process, whose
//! peak (VmHWM) is reset to its current RSS before each phase and read after it (see [`Rss`]).
//! The server is a separate process and is not counted; the peak includes the bench's own small
//! state, and whatever the allocator kept from an earlier phase ("from N MiB": the RSS when the
//! phase started).
//!
//! `--large [ROWS]` runs the two memory cases instead (goal: peak RSS < 1 GiB each), with
//! `batch.max_bytes` = 64 MiB (inlet's default) rather than 256 MiB:
//! a. the snapshot of a ROWS-row table (default 10000000), with its COPY baseline;
//! b. one source transaction of ROWS/2 rows (a single `INSERT ... SELECT`, 5000000 by default)
//!    committed while inlet is stopped, drained by `pg_recvlogical` and by inlet (changes/s).
//!
//! Timings are printed, never checked; only the row counts inlet wrote are.
//!
//! `cargo run --release -p inlet-tests --bin bench_pg -- [ROWS] [CHANGES]` (default 1000000
//! 1000000), `... -- --large [ROWS]`, or `scripts/bench-pg`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::TryStreamExt;
use inlet_ingest::RunSummary;
use inlet_tests::harness::cdc::{FENCE_DDL, config_text, fence, run_until, run_until_within};
use inlet_tests::harness::postgres::PostgresServer;
use inlet_tests::harness::process::{Rss, log_to_stderr};
use tokio_postgres::Client;

/// Rows per transaction of the default mode's change backlog.
const TXN_ROWS: i64 = 1000;
/// `batch.max_bytes` of the default mode: large batches, for throughput.
const MAX_BYTES: usize = 256 * 1024 * 1024;
/// `batch.max_bytes` of the large cases: inlet's default, the setting the memory goal is for.
const LARGE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Snapshot rows of the large cases when ROWS is not given (the transaction has half as many).
const LARGE_ROWS: i64 = 10_000_000;
/// How long one inlet run of the large cases may take: minutes are expected, an hour means the
/// pipeline is stuck ([`run_until`] gives up at 60 s, enough for the default mode only).
const LARGE_LIMIT: Duration = Duration::from_secs(3600);

/// Which cases to run: `--large` as the first argument selects the memory cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Default,
    Large,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    log_to_stderr();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--large") {
        let rows: i64 = args.get(1).map_or(Ok(LARGE_ROWS), |a| a.parse())?;
        memory_cases(rows).await
    } else {
        let rows: i64 = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
        let changes: i64 = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
        throughput(rows, changes).await
    }
}

/// The default mode: a ROWS-row snapshot, then a backlog of CHANGES mixed changes.
async fn throughput(rows: i64, changes: i64) -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    create_tables(&client, rows).await?;
    let lake = tempfile::tempdir()?;
    let config = bench_config(&pg, lake.path(), MAX_BYTES);

    // 1. Snapshot, after its COPY baseline.
    let snapshot = snapshot(&client, &config, rows, Mode::Default).await?;

    // 2. A backlog of changes, written while inlet is stopped.
    let started = Instant::now();
    let (inserts, updates) = (changes * 6 / 10, changes * 3 / 10);
    let deletes = changes - inserts - updates;
    let statements = inlet_tests::harness::change_statements(
        changes,
        TXN_ROWS,
        insert_orders,
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
    let recvlogical_secs = recvlogical(&pg, &client, target).await?;
    let (summary, inlet) = measure(&config, target, Mode::Default).await?;
    ensure!(
        summary.rows as i64 >= changes,
        "inlet wrote {} rows for {changes} changes",
        summary.rows
    );

    println!("PostgreSQL change capture (local disk, copy-on-write, 4 buckets)");
    snapshot.print(rows, Mode::Default);
    println!(
        "workload    {changes} changes ({inserts} inserts, {updates} updates, {deletes} deletes; \
         {TXN_ROWS} per transaction) written in {workload_secs:.1} s"
    );
    print_drain(changes, recvlogical_secs, &summary, &inlet, Mode::Default);
    Ok(())
}

/// The `--large` mode: a ROWS-row snapshot, then one transaction of ROWS/2 inserts.
async fn memory_cases(rows: i64) -> anyhow::Result<()> {
    let txn_rows = rows / 2;
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    create_tables(&client, rows).await?;
    let lake = tempfile::tempdir()?;
    let config = bench_config(&pg, lake.path(), LARGE_MAX_BYTES);

    // a. Snapshot, after its COPY baseline.
    let snapshot = snapshot(&client, &config, rows, Mode::Large).await?;

    // b. One transaction, written while inlet is stopped.
    let started = Instant::now();
    client.batch_execute(&insert_orders(1, txn_rows)).await?;
    let target = fence(&client).await?;
    let workload_secs = started.elapsed().as_secs_f64();
    let recvlogical_secs = recvlogical(&pg, &client, target).await?;
    let (summary, inlet) = measure(&config, target, Mode::Large).await?;
    ensure!(
        summary.rows as i64 >= txn_rows,
        "inlet wrote {} rows for a transaction of {txn_rows}",
        summary.rows
    );

    println!(
        "PostgreSQL change capture, memory cases (local disk, copy-on-write, 4 buckets, \
         batch.max_bytes = {} MiB)",
        LARGE_MAX_BYTES / (1024 * 1024)
    );
    snapshot.print(rows, Mode::Large);
    println!(
        "transaction {txn_rows} inserts in one INSERT ... SELECT, written in {workload_secs:.1} s"
    );
    print_drain(txn_rows, recvlogical_secs, &summary, &inlet, Mode::Large);
    Ok(())
}

/// The benchmark's `inlet run` configuration: 4 buckets and large batches (250000 rows, 2 s,
/// `max_bytes`), so that commits are amortised as in production.
fn bench_config(pg: &PostgresServer, lake: &Path, max_bytes: usize) -> String {
    let config = config_text(pg, lake, &["public.*"], "")
        .replace("buckets = 2", "buckets = 4")
        .replace("max_rows = 100000", "max_rows = 250000")
        .replace("max_delay = \"200ms\"", "max_delay = \"2s\"")
        + "\n";
    config.replace("[batch]\n", &format!("[batch]\nmax_bytes = {max_bytes}\n"))
}

/// Creates `snap` with `rows` rows, an empty `orders` with the same columns, and the fence table.
async fn create_tables(client: &Client, rows: i64) -> anyhow::Result<()> {
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
    Ok(())
}

/// The statement inserting orders `first..=last`.
fn insert_orders(first: i64, last: i64) -> String {
    format!(
        "INSERT INTO orders SELECT g, 'customer-' || (g % 9973), (g % 100000) / 100.0, 'new', now()
           FROM generate_series({first}, {last}) g"
    )
}

/// The initial snapshot next to its COPY baseline.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    /// Bytes read by `COPY snap TO STDOUT (FORMAT binary)`.
    copy_bytes: u64,
    copy_secs: f64,
    inlet: Phase,
}

/// Times the COPY baseline, then inlet's snapshot right after it (both read `snap` from the
/// same warm cache), and checks that inlet wrote every row.
async fn snapshot(
    client: &Client,
    config: &str,
    rows: i64,
    mode: Mode,
) -> anyhow::Result<Snapshot> {
    let (copy_bytes, copy_secs) = copy_to_nowhere(client, "snap").await?;
    let target = fence(client).await?;
    let (summary, inlet) = measure(config, target, mode).await?;
    ensure!(
        summary.rows as i64 >= rows,
        "snapshot wrote {} rows",
        summary.rows
    );
    Ok(Snapshot {
        copy_bytes,
        copy_secs,
        inlet,
    })
}

impl Snapshot {
    fn print(&self, rows: i64, mode: Mode) {
        println!(
            "COPY        {rows} rows ({:.0} MiB binary) in {:.1} s: {:.0} rows/s (one connection, \
             to nowhere; run right before the snapshot, on the same warm cache)",
            self.copy_bytes as f64 / (1024.0 * 1024.0),
            self.copy_secs,
            rate(rows, self.copy_secs)
        );
        println!(
            "snapshot    {rows} rows in {:.1} s: {:.0} rows/s (copy to durable commits), {}",
            self.inlet.secs,
            rate(rows, self.inlet.secs),
            self.inlet.memory(mode)
        );
        println!(
            "ratio       inlet snapshot / COPY = {:.2} (goal >= 0.5)",
            self.copy_secs / self.inlet.secs
        );
    }
}

/// The drain of a backlog of `changes` by `pg_recvlogical` and by inlet, and their ratio.
fn print_drain(
    changes: i64,
    recvlogical_secs: f64,
    summary: &RunSummary,
    inlet: &Phase,
    mode: Mode,
) {
    println!(
        "pg_recvlogical  {recvlogical_secs:.1} s: {:.0} changes/s (pgoutput to /dev/null)",
        rate(changes, recvlogical_secs)
    );
    println!(
        "inlet           {:.1} s: {:.0} changes/s ({} commits, durable in the lake), {}",
        inlet.secs,
        rate(changes, inlet.secs),
        summary.commits,
        inlet.memory(mode)
    );
    println!(
        "ratio           inlet / pg_recvlogical = {:.2}",
        recvlogical_secs / inlet.secs
    );
}

/// `n` per second.
fn rate(n: i64, secs: f64) -> f64 {
    n as f64 / secs
}

/// `COPY table TO STDOUT (FORMAT binary)` on `client`, the data counted and dropped: bytes and
/// seconds.
async fn copy_to_nowhere(client: &Client, table: &str) -> anyhow::Result<(u64, f64)> {
    let sql = format!("COPY {table} TO STDOUT (FORMAT binary)");
    let started = Instant::now();
    let stream = client.copy_out(sql.as_str()).await?;
    let mut stream = std::pin::pin!(stream);
    let mut bytes: u64 = 0;
    while let Some(chunk) = stream.try_next().await? {
        bytes += chunk.len() as u64;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

/// One inlet run: wall time and this process's resident memory.
#[derive(Debug, Clone, Copy)]
struct Phase {
    secs: f64,
    /// Right after the peak was reset, before the run.
    start: Rss,
    /// After the run: its `peak_kib` is the run's peak.
    end: Rss,
    /// Whether the kernel reset the peak; if not, `end.peak_kib` counts from process start.
    peak_reset: bool,
}

impl Phase {
    /// "peak RSS N MiB (from M MiB)", with the goal in the large cases.
    fn memory(&self, mode: Mode) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let mut text = format!(
            "peak RSS {:.0} MiB (from {:.0} MiB",
            mib(self.end.peak_kib),
            mib(self.start.current_kib)
        );
        if !self.peak_reset {
            text.push_str("; peak since process start: clear_refs refused");
        }
        if mode == Mode::Large {
            text.push_str("; goal < 1 GiB");
        }
        text.push(')');
        text
    }
}

/// Runs the pipeline of `config` to `target` as one phase: resets the peak RSS, then times the
/// run.
async fn measure(config: &str, target: u64, mode: Mode) -> anyhow::Result<(RunSummary, Phase)> {
    let peak_reset = Rss::reset_peak();
    let start = Rss::now();
    let started = Instant::now();
    let summary = match mode {
        Mode::Default => run_until(config, target).await?,
        Mode::Large => run_until_within(config, target, LARGE_LIMIT).await?,
    };
    let secs = started.elapsed().as_secs_f64();
    let phase = Phase {
        secs,
        start,
        end: Rss::now(),
        peak_reset,
    };
    Ok((summary, phase))
}

/// Copies inlet's slot and drains the copy up to `target` with `pg_recvlogical` (pgoutput, to
/// /dev/null), the peer of inlet's drain: seconds.
async fn recvlogical(pg: &PostgresServer, client: &Client, target: u64) -> anyhow::Result<f64> {
    client
        .batch_execute("SELECT pg_copy_logical_replication_slot('inlet', 'recvlogical')")
        .await?;
    let program = pg_bin("pg_recvlogical")?;
    let started = Instant::now();
    let status = Command::new(&program)
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
    Ok(started.elapsed().as_secs_f64())
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
