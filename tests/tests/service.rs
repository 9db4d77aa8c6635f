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

/// The admin token of the service test.
const TOKEN: &str = "test-token-8fZq";

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
        let columns: Vec<String> = GENERATED.iter().map(|c| c.to_string()).collect();
        common::assert_lake_equals(uri, &columns, &expected, table).await?;
    }
    Ok(())
}

/// `inlet run` as a child process, logging to `log`, with `env` set.
fn spawn_run(config: &Path, log: &Path, env: &[(&str, &str)]) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut command = Command::new(inlet_bin());
    command
        .args(["run", "--config"])
        .arg(config)
        .env("INLET_LOG", "warn,inlet=info,inlet_ingest=info")
        .env_remove("INLET_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    for (k, v) in env {
        command.env(k, v);
    }
    Ok(command.spawn()?)
}

/// The admin address a service logs once it listens (after `skip` earlier such lines).
fn admin_address(log: &Path, child: &mut Child, skip: usize) -> anyhow::Result<String> {
    let marker = "Admin endpoint on http://";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().filter(|l| l.contains(marker)).nth(skip) {
            let rest = &line[line.find(marker).context("marker")? + marker.len()..];
            return Ok(rest
                .trim_end_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string());
        }
        if let Some(status) = child.try_wait()? {
            bail!("inlet run exited with {status}:\n{text}");
        }
        ensure!(Instant::now() < deadline, "no admin endpoint:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One round of random changes to both tables, rows moving between partitions included.
async fn random_changes(
    client: &tokio_postgres::Client,
    rng: &mut rand::rngs::StdRng,
    round: u32,
) -> anyhow::Result<()> {
    use rand::Rng;
    let mut sql = String::from("BEGIN;");
    for _ in 0..rng.random_range(5..40) {
        let id = rng.random_range(1..400);
        let region = ["Köln", "東京", "x=y", "Zürich ", "O'Hare"][rng.random_range(0..5)]
            .replace('\'', "''");
        sql.push_str(&match rng.random_range(0..5) {
            0 => format!("DELETE FROM orders WHERE id = {id};"),
            1 => format!("UPDATE orders SET region = '{region}' WHERE id = {id};"),
            2 => format!(
                "INSERT INTO orders VALUES ({id}, '{region}', {}.{:02}, 'r{round}') \
                 ON CONFLICT (id) DO UPDATE SET amount = orders.amount + 1, note = 'u{round}';",
                rng.random_range(0..100_000),
                rng.random_range(0..100)
            ),
            3 => format!(
                "INSERT INTO customers VALUES ({id}, 'c{round}') ON CONFLICT (id) DO UPDATE SET name = 'n{round}';"
            ),
            _ => format!("DELETE FROM customers WHERE id = {id};"),
        });
    }
    sql.push_str("COMMIT;");
    client.batch_execute(&sql).await?;
    Ok(())
}

/// The lake table of `public.<table>` under `lake` equals the source (our reader, hudi-rs).
async fn assert_matches_source(
    client: &tokio_postgres::Client,
    lake: &Path,
    table: &str,
) -> anyhow::Result<()> {
    use inlet_tests::harness::cdc::expected_rows;
    let uri = lake.join("public").join(table).display().to_string();
    let (expected, columns) = expected_rows(client, "public", table).await?;
    ensure!(!expected.is_empty(), "{table} is empty in the source");
    common::assert_lake_equals(&uri, &columns, &expected, table).await?;
    Ok(())
}

/// Waits until pipeline `name` has acknowledged `position` (the API's position, an LSN).
fn wait_acknowledged(
    address: &str,
    name: &str,
    position: u64,
    token: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pipelines = get_json(address, "/api/pipelines", token)?;
        let pipeline = pipelines
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .cloned()
            .with_context(|| format!("no pipeline {name}: {pipelines}"))?;
        if let Some(at) = pipeline["position"].as_str()
            && at.parse::<inlet_ingest::postgres::Lsn>()?.0 >= position
        {
            return Ok(pipeline);
        }
        ensure!(
            Instant::now() < deadline,
            "{name} did not reach {position}: {pipeline}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Completed write commits on the timeline (not compactions), with their totals.
async fn write_totals(uri: &str) -> anyhow::Result<BTreeMap<String, (i64, i64, i64)>> {
    let table = Table::open(uri, TableConfig::default()).await?;
    let timeline = table.timeline().await?;
    let mut out = BTreeMap::new();
    for instant in timeline.completed_writes() {
        if timeline.is_compaction(&instant.time) {
            continue;
        }
        let totals = timeline
            .commit_metadata(table.storage(), instant)
            .await?
            .totals();
        out.insert(
            instant.time.to_string(),
            (totals.inserts, totals.updates, totals.deletes),
        );
    }
    Ok(out)
}

/// The value of one metric sample in Prometheus text, by its name with labels.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_run_beside_background_table_services_and_survive_a_crash_in_compaction()
-> anyhow::Result<()> {
    use inlet_tests::harness::cdc::{FENCE_DDL, fence};
    use inlet_tests::harness::postgres::PostgresServer;
    use rand::SeedableRng;

    let seed: u64 = std::env::var("INLET_SERVICE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("service test seed {seed} (replay with INLET_SERVICE_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, region text, amount numeric(12,2), note text);
             CREATE TABLE customers (id int PRIMARY KEY, name text);
             INSERT INTO orders SELECT g, 'Köln', g, 'snapshot' FROM generate_series(1, 300) g;
             INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 100) g;",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("shop");
    // Two pipelines: `shop`, and `broken`, whose database does not exist.
    let config = format!(
        r#"
[admin]
listen = "127.0.0.1:0"
token_env = "INLET_SERVICE_TEST_TOKEN"

[services]
compaction = "delta-commits:2"
clean = "keep-latest-commits:2"
archive_min_commits = 200
archive_max_commits = 300

[pipelines.shop.source]
kind = "postgres"
connection = "{connection}"
slot = "shop"
publication = "shop"

[pipelines.shop.sink]
base_uri = {lake:?}
table_type = "mor"
buckets = 2

[pipelines.shop.batch]
max_delay = "100ms"

[pipelines.shop.tables."public.orders"]
partition_by = ["region"]
delta_mirror = true

[pipelines.shop.tables."public.customers"]
table_type = "cow"
cdc = true
clean = "keep-latest-commits:100"

[pipelines.broken.source]
kind = "postgres"
connection = "{broken}"
slot = "broken"

[pipelines.broken.sink]
base_uri = {other:?}

[pipelines.badcols.source]
kind = "postgres"
connection = "{connection}"
slot = "badcols"
publication = "badcols"
include = ["public.orders"]

[pipelines.badcols.sink]
base_uri = {third:?}

[pipelines.badcols.tables."public.orders"]
columns = ["id", "nope"]
"#,
        connection = pg.connection_string(),
        broken = pg.connection_string_for("nope"),
        lake = lake.display().to_string(),
        other = dir.path().join("broken").display().to_string(),
        third = dir.path().join("badcols").display().to_string(),
    );
    let config_path = dir.path().join("inlet.toml");
    std::fs::write(&config_path, config)?;
    let log = dir.path().join("inlet.log");
    let orders = lake.join("public/orders").display().to_string();

    // First run: killed (abort, as SIGKILL) in the middle of its first background compaction.
    let mut child = spawn_run(
        &config_path,
        &log,
        &[
            ("INLET_FAILPOINT", "compaction.after-first-file"),
            ("INLET_SERVICE_TEST_TOKEN", TOKEN),
        ],
    )?;
    admin_address(&log, &mut child, 0)?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut round = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        ensure!(
            Instant::now() < deadline,
            "no compaction crash:\n{}",
            std::fs::read_to_string(&log)?
        );
        round += 1;
        random_changes(&client, &mut rng, round).await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    let text = std::fs::read_to_string(&log)?;
    ensure!(
        !status.success() && text.contains("failpoint compaction.after-first-file reached"),
        "{status}:\n{text}"
    );
    // The first run's commits, per table: the second run's API counts only its own.
    let mut before: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for table in ["orders", "customers", "inlet_fence"] {
        let uri = lake.join("public").join(table).display().to_string();
        let times = match write_totals(&uri).await {
            Ok(writes) => writes.into_keys().collect(),
            Err(_) => Default::default(),
        };
        before.insert(format!("public.{table}"), times);
    }

    // Second run: recovers (the compaction is executed again) and goes on.
    let mut child = spawn_run(&config_path, &log, &[("INLET_SERVICE_TEST_TOKEN", TOKEN)])?;
    let address = admin_address(&log, &mut child, 1)?;
    for _ in 0..12 {
        round += 1;
        random_changes(&client, &mut rng, round).await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let target = fence(&client).await?;
    wait_acknowledged(&address, "shop", target, Some(TOKEN))?;
    // Background services finish what the last commits planned.
    let deadline = Instant::now() + Duration::from_secs(60);
    let tables = loop {
        let tables = get_json(&address, "/api/tables", Some(TOKEN))?;
        let pending: u64 = tables
            .as_array()
            .context("tables")?
            .iter()
            .map(|t| t["pending_compactions"].as_u64().unwrap_or(0))
            .sum();
        let on_disk = Table::open(&orders, TableConfig::default())
            .await?
            .timeline()
            .await?
            .pending_compactions()
            .count();
        if pending == 0 && on_disk == 0 {
            break tables;
        }
        ensure!(
            Instant::now() < deadline,
            "compactions stay pending: {tables}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The API needs the token; probes and metrics do not.
    for token in [None, Some("wrong")] {
        let (status, body) = get(&address, "/api/tables", token)?;
        ensure!(status == 401, "/api/tables with {token:?}: {status} {body}");
    }
    for path in ["/healthz", "/metrics", "/"] {
        let (status, _) = get(&address, path, None)?;
        ensure!(status == 200, "{path}: {status}");
    }

    // The broken pipeline failed alone, and says why; readiness says which one is not ready.
    let pipelines = get_json(&address, "/api/pipelines", Some(TOKEN))?;
    let by_name = |name: &str| {
        pipelines
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    ensure!(by_name("shop")["state"] == "streaming", "{pipelines}");
    ensure!(by_name("shop")["lag_seconds"] == 0.0, "{pipelines}");
    ensure!(by_name("broken")["state"] == "failed", "{pipelines}");
    ensure!(
        by_name("broken")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nope")),
        "{pipelines}"
    );
    // A configuration error found at start names the field as the file spells it.
    ensure!(
        by_name("badcols")["state"] == "failed"
            && by_name("badcols")["reason"].as_str().is_some_and(|r| r
                .contains("pipelines.badcols.tables.\"public.orders\".columns")
                && r.contains("\"nope\"")),
        "{pipelines}"
    );
    let (status, body) = get(&address, "/readyz", None)?;
    ensure!(
        status == 503 && body.contains("broken") && !body.contains("\"shop\""),
        "{status} {body}"
    );

    // The API and the metrics count what the disk holds: the second run's write commits.
    let (_, metrics) = get(&address, "/metrics", None)?;
    for t in tables.as_array().context("tables")? {
        let name = t["name"].as_str().context("name")?;
        let uri = lake
            .join("public")
            .join(name.trim_start_matches("public."))
            .display()
            .to_string();
        let writes = write_totals(&uri).await?;
        let ours: Vec<&(i64, i64, i64)> = writes
            .iter()
            .filter(|(time, _)| !before.get(name).is_some_and(|b| b.contains(*time)))
            .map(|(_, totals)| totals)
            .collect();
        {
            ensure!(
                t["commits"].as_u64() == Some(ours.len() as u64),
                "{name}: {t} vs {} on disk",
                ours.len()
            );
            for (op, index) in [("insert", 0), ("update", 1), ("delete", 2)] {
                let on_disk: i64 = ours
                    .iter()
                    .map(|totals| [totals.0, totals.1, totals.2][index])
                    .sum();
                ensure!(
                    t["rows"][op].as_i64() == Some(on_disk),
                    "{name} {op}: {t} vs {on_disk} on disk"
                );
                let series = format!("inlet_table_rows_total{{table=\"{name}\",op=\"{op}\"}}");
                ensure!(
                    sample(&metrics, &series) == Some(on_disk as f64),
                    "{series} in\n{metrics}"
                );
            }
        }
        ensure!(t["pending_compactions"] == 0, "{t}");
        let series = format!("inlet_table_pending_compactions{{table=\"{name}\"}}");
        ensure!(
            sample(&metrics, &series) == Some(0.0),
            "{series} in\n{metrics}"
        );
    }
    ensure!(
        sample(&metrics, "inlet_source_lag_seconds{pipeline=\"shop\"}") == Some(0.0),
        "{metrics}"
    );
    ensure!(
        sample(&metrics, "inlet_source_changes_total{pipeline=\"shop\"}").is_some_and(|n| n > 0.0),
        "{metrics}"
    );

    // Compaction (resumed after the crash, and new ones) and cleaning ran beside ingest, and
    // every table equals its source.
    let timeline = completed(&orders).await?;
    ensure!(
        timeline.iter().filter(|(_, _, c)| *c).count() >= 2,
        "{timeline:?}"
    );
    ensure!(
        timeline.iter().any(|(_, a, _)| *a == Action::Clean),
        "{timeline:?}"
    );
    for table in ["orders", "customers"] {
        assert_matches_source(&client, &lake, table).await?;
    }

    // SIGTERM: the service stops cleanly; the failed pipeline makes the exit status an error.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let status = child.wait()?;
    let text = std::fs::read_to_string(&log)?;
    ensure!(
        !status.success() && text.contains("broken: ") && text.contains("Pipeline shop stopped"),
        "{status}:\n{text}"
    );
    for table in ["orders", "customers"] {
        assert_matches_source(&client, &lake, table).await?;
    }
    // The mirrored table's Delta log kept up with the service's commits and background
    // compactions, across the crash: PyPI `deltalake` reads each version as our read-optimized
    // view of its instant.
    let mirrored = Table::open(&orders, TableConfig::default()).await?;
    let versions = common::compare_with_delta(&mirrored, &orders, &[]).await?;
    ensure!(versions >= 2, "only {versions} Delta versions compared");
    ensure!(
        !lake.join("public/customers/_delta_log").exists(),
        "a table without delta_mirror got a mirror"
    );
    // Change queries replay onto both tables across the crash: `public.customers` (never
    // cleaned: from its first commit, the snapshot's inserts included) from the `.cdc` files its
    // copy-on-write commits wrote (`cdc = true`), `public.orders` (merge-on-read, compacted and
    // cleaned meanwhile: from the earliest instant still readable) from its file slices.
    for table in ["orders", "customers"] {
        let uri = lake.join("public").join(table).display().to_string();
        let table_now = Table::open(&uri, TableConfig::default()).await?;
        let replayed = common::assert_changes_replay(&table_now).await?;
        eprintln!("public.{table}: {replayed} changes replayed");
        if table == "customers" {
            ensure!(
                replayed >= 100,
                "only {replayed} changes of public.customers"
            );
        }
    }
    let cdc_files = walkdir(&lake.join("public/customers"))
        .into_iter()
        .filter(|p| p.ends_with(".cdc"))
        .count();
    ensure!(
        cdc_files > 0,
        "public.customers (cdc = true) has no .cdc file"
    );
    Ok(())
}

/// Every file under a directory.
fn walkdir(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().display().to_string());
            }
        }
    }
    out
}

/// Completed delta commits of a table (0 when it has none yet).
async fn delta_commits(uri: &str) -> usize {
    match completed(uri).await {
        Ok(instants) => instants
            .iter()
            .filter(|(_, action, _)| *action == Action::DeltaCommit)
            .count(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_waits_for_compaction_that_falls_behind_and_not_for_one_that_fails()
-> anyhow::Result<()> {
    use inlet_tests::harness::cdc::{FENCE_DDL, config_text, fence};
    use inlet_tests::harness::postgres::PostgresServer;

    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int);")
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = config_text(&pg, &lake, &["public.*"], "")
        .replace("buckets = 2", "buckets = 1\ntable_type = \"mor\"")
        .replace("max_delay = \"200ms\"", "max_delay = \"50ms\"")
        + "\n[services]\ncompaction = \"delta-commits:2\"\nmax_log_files_per_slice = 1\n";
    let config_path = dir.path().join("inlet.toml");
    std::fs::write(&config_path, &config)?;
    let log = dir.path().join("inlet.log");
    let uri = lake.join("public/t").display().to_string();

    // Compaction that never finishes: after a few log files, ingest of t waits.
    let mut child = spawn_run(
        &config_path,
        &log,
        &[("INLET_FAILPOINT", "hang:compaction.execute")],
    )?;
    let address = admin_address(&log, &mut child, 0)?;
    for i in 0..40 {
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({i}, {i})"))
            .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = get(&address, "/metrics", None)?;
    let throttled = sample(&metrics, "inlet_ingest_throttled_total{table=\"public.t\"}");
    let written = delta_commits(&uri).await;
    ensure!(throttled >= Some(1.0), "not throttled:\n{metrics}");
    // The snapshot, two delta commits that plan the compaction, and the log files allowed
    // beside it; not one commit per transaction.
    ensure!(
        written <= 8,
        "{written} delta commits while compaction hung"
    );
    child.kill()?;
    child.wait()?;

    // Compaction that fails: ingest waits a little, then goes on (and says so).
    let mut child = spawn_run(
        &config_path,
        &log,
        &[("INLET_FAILPOINT", "error:compaction.execute")],
    )?;
    admin_address(&log, &mut child, 1)?;
    // Commits spread out, so that log files pile up beside the pending (failing) compaction.
    for i in 40..60 {
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({i}, {i})"))
            .await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let target = fence(&client).await?;
    inlet_tests::harness::cdc::wait_confirmed(&client, "inlet", target, Duration::from_secs(60))
        .await?;
    ensure!(
        std::fs::read_to_string(&log)?.contains("Compaction keeps failing: ingest goes on"),
        "{}",
        std::fs::read_to_string(&log)?
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(child.wait()?.success());

    // Then everything is there, and compaction catches up.
    let mut child = spawn_run(&config_path, &log, &[])?;
    let address = admin_address(&log, &mut child, 2)?;
    let target = fence(&client).await?;
    wait_acknowledged(&address, "default", target, None)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !completed(&uri).await?.iter().any(|(_, _, c)| *c) {
        ensure!(Instant::now() < deadline, "no compaction completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(child.wait()?.success());
    assert_matches_source(&client, &lake, "t").await?;
    Ok(())
}
