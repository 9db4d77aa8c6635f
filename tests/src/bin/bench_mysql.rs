//! MariaDB change capture throughput, against a throwaway server (the test harness):
//!
//! 1. the initial snapshot of a ROWS-row table by inlet (rows/s, from start to durable in the
//!    lake), beside `SELECT *` of the same table by the `mariadb` client to /dev/null;
//! 2. CHANGES row changes (60% inserts, 30% updates, 10% deletes, in transactions of 1000 rows)
//!    committed while inlet is stopped, then read from the binlog twice, side by side: by
//!    `mariadb-binlog --read-from-remote-server` (to /dev/null) and by the inlet pipeline (to
//!    durable lake commits, the same code as `inlet run`). Prints both rates and their ratio.
//!
//! `cargo run --release -p inlet-tests --bin bench_mysql -- [ROWS] [CHANGES]` (default 1000000
//! 1000000), or `scripts/bench-mysql`.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, ensure};
use inlet_tests::harness::cdc::run_until;
use inlet_tests::harness::mariadb::{BINLOG_ARGS, MariaDbServer, binlog_at, fence};
use mysql_async::prelude::Queryable;

const TXN_ROWS: i64 = 1000;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: i64 = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let changes: i64 = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let (table_type, layout) = match args.get(2).map(String::as_str) {
        None | Some("cow") => ("cow", "copy-on-write"),
        Some("mor") => ("mor", "merge-on-read"),
        Some(other) => anyhow::bail!("table type {other:?}: cow or mor"),
    };
    // The harness's small buffer pool suits tests, not a million rows.
    let server = MariaDbServer::start_with(
        &[
            BINLOG_ARGS,
            &["--innodb-buffer-pool-size=1G", "--max-binlog-size=256M"],
        ]
        .concat(),
    )?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE snap (id BIGINT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(12,2),
                            status VARCHAR(10), updated_at DATETIME(6));
         CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(12,2),
                              status VARCHAR(10), updated_at DATETIME(6));",
    )
    .await?;
    for start in (0..rows).step_by(100_000) {
        conn.query_drop(format!(
            "INSERT INTO snap SELECT seq, CONCAT('customer-', seq % 9973), (seq % 100000) / 100,
                 ELT(1 + seq % 3, 'new', 'paid', 'shipped'), NOW(6)
               FROM seq_{}_to_{}",
            start + 1,
            (start + 100_000).min(rows)
        ))
        .await?;
    }
    let lake = tempfile::tempdir()?;
    let config = format!(
        "[admin]\nlisten = \"off\"\n\n[source]\nkind = \"mysql\"\nconnection = \"{}\"\n\
         include = [\"shop.*\"]\n\n[sink]\nbase_uri = {:?}\nbuckets = 4\ntable_type = {table_type:?}\n\n\
         [batch]\nmax_rows = 250000\nmax_bytes = 268435456\nmax_delay = \"2s\"\n",
        server.url(),
        lake.path().display().to_string()
    );

    // 1. Snapshot: the client's SELECT, then inlet's copy.
    let started = Instant::now();
    client(&server)
        .args(["--quick", "--batch", "-e", "SELECT * FROM shop.snap"])
        .stdout(Stdio::null())
        .status()
        .context("running the mariadb client")?
        .success()
        .then_some(())
        .context("the mariadb client failed")?;
    let select_secs = started.elapsed().as_secs_f64();
    let target = fence(&mut conn).await?;
    let started = Instant::now();
    let summary = run_until(&config, target).await?;
    let snapshot_secs = started.elapsed().as_secs_f64();
    ensure!(
        summary.rows as i64 >= rows,
        "snapshot wrote {} rows",
        summary.rows
    );

    // 2. A backlog of changes, written while inlet is stopped.
    let (from_file, from_offset) = binlog_at(&mut conn).await?;
    let started = Instant::now();
    let (inserts, updates) = (changes * 6 / 10, changes * 3 / 10);
    let deletes = changes - inserts - updates;
    let statements = inlet_tests::harness::change_statements(
        changes,
        TXN_ROWS,
        |first, last| {
            format!(
                "INSERT INTO orders SELECT seq, CONCAT('customer-', seq % 9973), (seq % 100000) / 100,
                     'new', NOW(6) FROM seq_{first}_to_{last}"
            )
        },
        |first, last| {
            format!(
                "UPDATE orders SET status = 'paid', amount = amount + 1, updated_at = NOW(6)
                   WHERE id BETWEEN {first} AND {last}"
            )
        },
        |first, last| format!("DELETE FROM orders WHERE id BETWEEN {first} AND {last}"),
    );
    for statement in &statements {
        conn.query_drop(statement).await?;
    }
    let target = fence(&mut conn).await?;
    let workload_secs = started.elapsed().as_secs_f64();

    // mariadb-binlog reads the same binlog from the server (its output counted, not kept).
    let started = Instant::now();
    let mut child = Command::new("mariadb-binlog")
        .args([
            "--read-from-remote-server",
            "--host=127.0.0.1",
            "--user=root",
        ])
        .arg(format!("--port={}", server.port()))
        .arg(format!("--start-position={from_offset}"))
        .arg("--to-last-log")
        .arg(&from_file)
        .stdout(Stdio::piped())
        .spawn()
        .context("running mariadb-binlog (Debian's mariadb-client)")?;
    let binlog_bytes = std::io::copy(
        child.stdout.as_mut().context("mariadb-binlog output")?,
        &mut std::io::sink(),
    )?;
    let status = child.wait()?;
    ensure!(status.success(), "mariadb-binlog failed: {status}");
    let binlog_secs = started.elapsed().as_secs_f64();

    // inlet's binlog reader alone: events decoded into Arrow batches, then dropped.
    let started = Instant::now();
    let decoded = decode_only(&server, lake.path(), target).await?;
    let decode_secs = started.elapsed().as_secs_f64();
    ensure!(decoded as i64 >= changes, "decoded {decoded} rows");

    // inlet reads it into the lake.
    let started = Instant::now();
    let summary = run_until(&config, target).await?;
    let inlet_secs = started.elapsed().as_secs_f64();
    ensure!(
        summary.rows as i64 >= changes,
        "inlet wrote {} rows for {changes} changes",
        summary.rows
    );

    let rate = |n: i64, s: f64| n as f64 / s;
    println!("MariaDB change capture (local disk, {layout}, 4 buckets)");
    println!(
        "mariadb SELECT  {rows} rows in {select_secs:.1} s: {:.0} rows/s (client to /dev/null)",
        rate(rows, select_secs)
    );
    println!(
        "snapshot        {rows} rows in {snapshot_secs:.1} s: {:.0} rows/s (copy to durable commits)",
        rate(rows, snapshot_secs)
    );
    println!(
        "ratio           snapshot / SELECT = {:.2}",
        select_secs / snapshot_secs
    );
    println!(
        "workload        {changes} changes ({inserts} inserts, {updates} updates, {deletes} \
         deletes; {TXN_ROWS} per transaction) written in {workload_secs:.1} s"
    );
    println!(
        "mariadb-binlog  {binlog_secs:.2} s: {:.0} changes/s (remote binlog, {:.0} MiB of output \
         to /dev/null)",
        rate(changes, binlog_secs),
        binlog_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "inlet decode    {decode_secs:.2} s: {:.0} changes/s (binlog to Arrow batches, not written)",
        rate(changes, decode_secs)
    );
    println!(
        "inlet           {inlet_secs:.1} s: {:.0} changes/s ({} commits, durable in the lake)",
        rate(changes, inlet_secs),
        summary.commits
    );
    println!(
        "ratio           inlet / mariadb-binlog = {:.2} (decode alone {:.2})",
        binlog_secs / inlet_secs,
        binlog_secs / decode_secs
    );
    Ok(())
}

/// The `mariadb` client connected to `server` as root.
fn client(server: &MariaDbServer) -> Command {
    let mut command = Command::new("mariadb");
    command
        .args(["--host=127.0.0.1", "--user=root"])
        .arg(format!("--port={}", server.port()));
    command
}

/// Reads the binlog from the lake tables' checkpoints to `target` with inlet's MySQL source, as
/// the pipeline does, without writing: the rows decoded.
async fn decode_only(
    server: &MariaDbServer,
    lake: &std::path::Path,
    target: u64,
) -> anyhow::Result<usize> {
    use inlet_ingest::change::{Event, Source, TableId};
    use inlet_ingest::mysql::{MysqlConnect, MysqlOptions, MysqlSource};
    let mut source = MysqlSource::new(MysqlOptions {
        connect: MysqlConnect::parse(&server.url(), None)?,
        server_id: 99,
        snapshot: true,
        on_gap: inlet_config::OnGap::Fail,
        snapshot_parallelism: 1,
        chunk_rows: 10_000,
        locking: Default::default(),
        keys: Default::default(),
    });
    let tables = source.tables().await?;
    let mut checkpoints = std::collections::BTreeMap::new();
    for info in &tables {
        let uri = lake.join(&info.id.schema).join(&info.id.name);
        let table =
            inlet_table::Table::open(&uri.display().to_string(), Default::default()).await?;
        let checkpoint = inlet_ingest::pipeline::table_checkpoint(&table)
            .await?
            .context("a lake table without a checkpoint")?;
        checkpoints.insert(TableId::clone(&info.id), checkpoint);
    }
    source.start(checkpoints).await?;
    let mut rows = 0;
    loop {
        match source.next(std::time::Duration::from_secs(5)).await? {
            Event::Rows(batch) => rows += batch.batch.num_rows(),
            Event::Commit { position, .. } if position >= target => break,
            Event::Idle => anyhow::bail!("the binlog ended before {target}"),
            _ => {}
        }
    }
    source.close().await?;
    Ok(rows)
}
