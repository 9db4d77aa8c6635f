//! The service (`inlet demo`, `inlet run`) as an operator meets it: a child process with its
//! admin endpoint, background table services and several pipelines. Tables are judged against
//! what the source holds, with hudi-rs and our reader; the web page in headless Chromium.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use inlet_config::{DatagenConfig, Mix};
use inlet_ingest::change::{Event, Source};
use inlet_ingest::datagen::DatagenSource;
use inlet_ingest::{CDC_POSITION, Checkpoint};
use inlet_table::{Action, Table, TableConfig};
use inlet_tests::canonical;
use inlet_tests::harness::http::{get, get_json};
use inlet_tests::harness::{inlet_bin, repo_root, run_python};

/// Compared columns of generated rows (`updated_at` is the generation time: not repeatable).
const GENERATED: [&str; 5] = ["id", "name", "region", "amount", "quantity"];

/// Waits until `file` holds `marker`, then returns the rest of its line.
fn wait_for_line(
    file: &Path,
    marker: &str,
    child: &mut Child,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            return Ok(rest.lines().next().unwrap_or_default().trim().to_string());
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited with {status} before saying {marker:?}:\n{text}");
        }
        ensure!(
            Instant::now() < deadline,
            "no {marker:?} within {timeout:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The completed instants of a table, with their actions as the timeline lists them.
async fn completed(uri: &str) -> anyhow::Result<Vec<(String, Action, bool)>> {
    let table = Table::open(uri, TableConfig::default()).await?;
    let timeline = table.timeline().await?;
    Ok(timeline
        .instants()
        .iter()
        .filter(|i| i.is_completed())
        .map(|i| {
            (
                i.time.to_string(),
                i.action,
                timeline.is_compaction(&i.time),
            )
        })
        .collect())
}

/// The table's last source checkpoint.
async fn checkpoint(uri: &str) -> anyhow::Result<Checkpoint> {
    let table = Table::open(uri, TableConfig::default()).await?;
    inlet_ingest::pipeline::table_checkpoint(&table)
        .await?
        .context("no checkpoint")
}

/// What the generator's table holds after every transaction up to `position`: canonical rows
/// of [`GENERATED`], from the generator run again (its stream is a function of the seed).
async fn generated_rows(
    config: DatagenConfig,
    table: &str,
    position: u64,
) -> anyhow::Result<Vec<String>> {
    let columns: Vec<String> = GENERATED.iter().map(|c| c.to_string()).collect();
    let mut source = DatagenSource::new(DatagenConfig { rate: 0, ..config })?;
    source.start(BTreeMap::new()).await?;
    let mut rows: BTreeMap<i64, String> = BTreeMap::new();
    loop {
        match source.next(Duration::from_millis(10)).await? {
            Event::Rows(batch) if batch.table.to_string() == table => {
                let ids = batch.batch.column(0).as_primitive::<Int64Type>();
                let positions = batch
                    .batch
                    .column_by_name(CDC_POSITION)
                    .context("position")?
                    .as_primitive::<Int64Type>();
                for i in 0..batch.batch.num_rows() {
                    if positions.value(i) as u64 > position {
                        continue;
                    }
                    if batch.deletes.value(i) {
                        rows.remove(&ids.value(i));
                    } else {
                        let row = canonical::rows(&[batch.batch.slice(i, 1)], &columns)?;
                        rows.insert(ids.value(i), row[0].clone());
                    }
                }
            }
            Event::Commit { position: at, .. } if at >= position => break,
            _ => {}
        }
    }
    let mut rows: Vec<String> = rows.into_values().collect();
    rows.sort();
    Ok(rows)
}

/// The lake table equals `expected` with our reader and with hudi-rs.
async fn assert_lake_equals(uri: &str, expected: &[String], what: &str) -> anyhow::Result<()> {
    let columns: Vec<String> = GENERATED.iter().map(|c| c.to_string()).collect();
    let ours = inlet_tests::harness::cdc::lake_rows(uri, &columns).await?;
    canonical::assert_same_rows(&ours, expected, &format!("{what} (our reader)"));
    let theirs = common::hudi_rs(
        uri,
        &[("snapshot".to_string(), serde_json::json!({}))],
        &columns,
        &[],
    )?;
    canonical::assert_same_rows(&theirs["snapshot"], expected, &format!("{what} (hudi-rs)"));
    Ok(())
}

/// The demo's generator, as `src/cli/demo.rs` configures it.
fn demo_generator() -> DatagenConfig {
    DatagenConfig {
        tables: vec!["shop.orders".into(), "shop.customers".into()],
        key_space: 5000,
        rate: 0,
        transaction_size: 10,
        mix: Mix::default(),
        seed: 7,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_live_tables_with_background_compaction_in_chromium() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let out = dir.path().join("demo.out");
    let mut child = Command::new(inlet_bin())
        .arg("demo")
        .arg(&lake)
        .args([
            "--admin",
            "127.0.0.1:0",
            "--duration",
            "40s",
            "--rate",
            "400",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(dir.path().join("demo.err"))?)
        .spawn()?;
    let page = wait_for_line(&out, "Admin page:", &mut child, Duration::from_secs(30))?;
    let address = page
        .strip_prefix("http://")
        .and_then(|a| a.strip_suffix('/'))
        .with_context(|| format!("page URL {page:?}"))?
        .to_string();
    let orders = lake.join("shop/orders").display().to_string();
    let customers = lake.join("shop/customers").display().to_string();

    // The page in Chromium: both tables shown, then a commit made after the page loaded.
    let seen = run_python(
        &repo_root()
            .join("tests/web/admin_page.py")
            .display()
            .to_string(),
        &[
            &page,
            "--tables",
            "shop.orders,shop.customers",
            "--timeout",
            "30",
        ],
    )?;
    let seen: serde_json::Value = serde_json::from_str(seen.trim())?;
    let shown: Vec<&str> = seen["tables_shown"]
        .as_array()
        .context("tables_shown")?
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    ensure!(
        shown.contains(&"shop.orders") && shown.contains(&"shop.customers"),
        "{seen}"
    );
    let new_table = seen["new_commit"]["table"]
        .as_str()
        .context("new_commit.table")?;
    let new_instant = seen["new_commit"]["instant"]
        .as_str()
        .context("new_commit.instant")?;
    let first = seen["first"][new_table].as_str().unwrap_or("");
    ensure!(new_instant > first, "{seen}");
    let uri = if new_table == "shop.orders" {
        &orders
    } else {
        &customers
    };
    ensure!(
        completed(uri)
            .await?
            .iter()
            .any(|(t, _, _)| t == new_instant),
        "the page showed {new_instant} of {new_table}, which is not completed on disk: {seen}"
    );
    ensure!(seen["pipelines"][0]["state"] == "streaming", "{seen}");

    // The API agrees with the disk.
    let tables = get_json(&address, "/api/tables", None)?;
    for t in tables.as_array().context("tables")? {
        let uri = if t["name"] == "shop.orders" {
            &orders
        } else {
            &customers
        };
        let latest = t["latest_instant"].as_str().context("latest_instant")?;
        ensure!(
            completed(uri)
                .await?
                .iter()
                .any(|(time, _, _)| time == latest),
            "API latest instant {latest} of {} is not completed on disk",
            t["name"]
        );
        ensure!(t["state"] == "ok" && t["commits"].as_u64() > Some(1), "{t}");
    }
    let (status, body) = get(&address, "/readyz", None)?;
    ensure!(status == 200, "readyz {status}: {body}");
    let (status, metrics) = get(&address, "/metrics", None)?;
    ensure!(status == 200, "{metrics}");
    for name in [
        "inlet_source_changes_total{pipeline=\"default\"}",
        "inlet_table_commits_total{table=\"shop.orders\",action=\"deltacommit\"}",
        "inlet_commit_duration_seconds_bucket{table=\"shop.customers\"",
        "inlet_source_lag_seconds{pipeline=\"default\"}",
        "inlet_table_pending_compactions{table=\"shop.orders\"}",
    ] {
        ensure!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }

    let status = child.wait()?;
    let stdout = std::fs::read_to_string(&out)?;
    let stderr = std::fs::read_to_string(dir.path().join("demo.err"))?;
    ensure!(
        status.success(),
        "demo failed: {status}\n{stdout}\n{stderr}"
    );
    ensure!(stdout.contains("Stopped."), "{stdout}");

    // Compaction and cleaning ran in the background while changes came in.
    let timeline = completed(&orders).await?;
    ensure!(
        timeline.iter().any(|(_, _, compaction)| *compaction),
        "no completed compaction: {timeline:?}\n{stderr}"
    );
    ensure!(
        timeline
            .iter()
            .any(|(_, action, _)| *action == Action::Clean),
        "no clean: {timeline:?}\n{stderr}"
    );
    // Every table holds exactly what the generator produced up to its checkpoint.
    for (table, uri) in [("shop.orders", &orders), ("shop.customers", &customers)] {
        let position = checkpoint(uri).await?.position;
        let expected = generated_rows(demo_generator(), table, position).await?;
        ensure!(
            expected.len() > 100,
            "{table}: only {} rows",
            expected.len()
        );
        assert_lake_equals(uri, &expected, table).await?;
    }
    Ok(())
}
