//! Freshness of `inlet run`: how long after a source commit its rows are visible in the lake,
//! under a steady PostgreSQL workload, with background compaction on.
//!
//! A throwaway server (the test harness) takes RATE changes/s for SECONDS: 80% inserts into
//! `events` (each a new row, so every row's version survives to be measured) and 20% updates of
//! `hot`, in transactions every 20 ms. `inlet run` (a child process: the release binary,
//! merge-on-read tables, `max_delay = "1s"`, compaction `delta-commits:5`) captures both. A
//! watcher polls the `events` timeline every 10 ms and notes when each commit becomes visible;
//! afterwards each commit's rows are read back (an incremental read of exactly that commit) and
//! every row's delay is that time minus its `_cdc_commit_ts`. Prints p50/p90/p99/max, the
//! achieved rate, commits and compactions, and the peak RSS of `inlet run`.
//!
//! `scripts/bench-freshness [SECONDS] [RATE]` (default 60 5000).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use inlet_query::ReadRequest;
use inlet_table::{Table, TableConfig};
use inlet_tests::harness::cdc::{FENCE_DDL, config_text, fence};
use inlet_tests::harness::http::get_json;
use inlet_tests::harness::postgres::PostgresServer;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().map_or(Ok(60), |a| a.parse())?;
    let rate: u64 = args.get(1).map_or(Ok(5000), |a| a.parse())?;
    let bin = std::env::var("INLET_BIN").context("INLET_BIN: the inlet binary to measure")?;

    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE events (id bigint PRIMARY KEY, kind text, amount numeric(12,2), body text);
             CREATE TABLE hot (id int PRIMARY KEY, n bigint, note text);
             INSERT INTO hot SELECT g, 0, 'hot-' || g FROM generate_series(1, 10000) g;
             {FENCE_DDL};"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = config_text(&pg, &lake, &["public.*"], "")
        .replace("max_delay = \"200ms\"", "max_delay = \"1s\"")
        .replace("buckets = 2", "buckets = 4\ntable_type = \"mor\"")
        + "\n[services]\ncompaction = \"delta-commits:5\"\n";
    let config_path = dir.path().join("inlet.toml");
    std::fs::write(&config_path, &config)?;
    let log = dir.path().join("inlet.log");
    let mut child = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&config_path)
        .env("INLET_LOG", "warn,inlet=info,inlet_ingest=info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(dir.path().join("inlet.err"))?)
        .spawn()?;
    let address = admin_address(&dir.path().join("inlet.err"))?;
    // Streaming (the snapshot of hot done) before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json(&address, "/readyz", None).is_err() {
        ensure!(Instant::now() < deadline, "not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The watcher: when each completed write of `events` became visible.
    let timeline = lake.join("public/events/.hoodie");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || watch(&timeline, &stop))
    };

    // The workload: a transaction every 20 ms.
    let per_txn = (rate / 50).max(1);
    let inserts = per_txn * 4 / 5;
    let updates = per_txn - inserts;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut next_id: u64 = 1;
    let mut changes = 0u64;
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    while started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let first = (rng >> 33) % (10_000 - updates.min(9_999)) + 1;
        client
            .batch_execute(&format!(
                "BEGIN;
                 INSERT INTO events SELECT g, 'kind-' || (g % 7), (g % 100000) / 100.0, md5(g::text)
                   FROM generate_series({next_id}, {}) g;
                 UPDATE hot SET n = n + 1 WHERE id BETWEEN {first} AND {};
                 COMMIT;",
                next_id + inserts - 1,
                first + updates - 1
            ))
            .await?;
        next_id += inserts;
        changes += per_txn;
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Everything durable, then the peak memory, then a clean stop.
    let target = fence(&client).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pipelines = get_json(&address, "/api/pipelines", None)?;
        let at = pipelines[0]["position"].as_str().unwrap_or("0/0");
        if at.parse::<inlet_ingest::postgres::Lsn>()?.0 >= target {
            break;
        }
        ensure!(Instant::now() < deadline, "not caught up: {pipelines}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tables = get_json(&address, "/api/tables", None)?;
    let peak_rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))?;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    ensure!(
        status.success(),
        "inlet run: {status}\n{}",
        std::fs::read_to_string(&log)?
    );

    // Each row's commit (its `_hoodie_commit_time`: `events` rows are written once, and
    // compaction keeps it) and that commit's visibility time.
    let table = Table::open(
        &lake.join("public/events").display().to_string(),
        TableConfig::default(),
    )
    .await?;
    let request = ReadRequest {
        columns: Some(vec![
            "_hoodie_commit_time".to_string(),
            "_cdc_commit_ts".to_string(),
        ]),
        meta: true,
        ..Default::default()
    };
    let (_, batches) = inlet_query::read(&table, &request).await?;
    let mut delays = Vec::new();
    let mut measured = std::collections::BTreeSet::new();
    for batch in &batches {
        let commits = batch
            .column_by_name("_hoodie_commit_time")
            .context("commit time")?;
        let commits = arrow::compute::cast(commits, &arrow::datatypes::DataType::Utf8)?;
        let commits = commits.as_string::<i32>();
        let ts = batch
            .column_by_name("_cdc_commit_ts")
            .context("_cdc_commit_ts")?;
        let ts = arrow::compute::cast(
            ts,
            &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )?;
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            let Some(visible) = seen.get(commits.value(i)) else {
                continue;
            };
            let visible = visible.duration_since(SystemTime::UNIX_EPOCH)?.as_micros() as i64;
            delays.push((visible - ts.value(i)) as f64 / 1e6);
            measured.insert(commits.value(i).to_string());
        }
    }
    let commits = measured.len();
    ensure!(!delays.is_empty(), "no rows measured");
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    let commits_by_table: Vec<String> = tables
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{} {}", t["name"], t["commits"]))
        .collect();
    println!(
        "freshness of inlet run, {seconds} s of {rate} changes/s requested (80% inserts into events, 20% updates of hot), max_delay = 1s, merge-on-read, compaction delta-commits:5"
    );
    println!(
        "  changes          {changes} in {elapsed:.1} s ({:.0}/s achieved)",
        changes as f64 / elapsed
    );
    println!(
        "  events commits   {commits} measured ({} rows)",
        delays.len()
    );
    println!(
        "  compactions      events {}, hot {}",
        compactions(&lake, "events").await?,
        compactions(&lake, "hot").await?
    );
    println!(
        "  delay (s)        p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        at(0.5),
        at(0.9),
        at(0.99),
        delays[delays.len() - 1]
    );
    println!("  peak RSS         {peak_rss} (inlet run)");
    println!("  write commits    {}", commits_by_table.join(", "));
    Ok(())
}

/// Completed compactions of lake table `public.<name>`.
async fn compactions(lake: &Path, name: &str) -> anyhow::Result<usize> {
    let uri = lake.join("public").join(name).display().to_string();
    let timeline = Table::open(&uri, TableConfig::default())
        .await?
        .timeline()
        .await?;
    Ok(timeline
        .instants()
        .iter()
        .filter(|i| i.is_completed() && timeline.is_compaction(&i.time))
        .count())
}

/// Polls the timeline directory until `stop`, noting when each completed write appears.
fn watch(timeline: &Path, stop: &std::sync::atomic::AtomicBool) -> BTreeMap<String, SystemTime> {
    let mut seen = BTreeMap::new();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if let Ok(entries) = std::fs::read_dir(timeline) {
            let now = SystemTime::now();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(time) = name.strip_suffix(".deltacommit") {
                    seen.entry(time.to_string()).or_insert(now);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

/// The admin address `inlet run` logs once it listens.
fn admin_address(log: &Path) -> anyhow::Result<String> {
    let marker = "Admin endpoint on http://";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            return Ok(rest.split('/').next().unwrap_or_default().to_string());
        }
        ensure!(Instant::now() < deadline, "no admin endpoint:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
