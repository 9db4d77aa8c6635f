//! Table services end to end: compaction (also with writes while it is pending), cleaning,
//! rollback of completed writes and archival, each checked against the model, with hudi-rs
//! reading every table the same way our reader does (snapshot, read-optimized, every as-of and
//! incremental query).

mod common;

use inlet_compaction::TableServices;
use inlet_compaction::archive::{self, Retention};
use inlet_compaction::clean::{self, Policy};
use inlet_compaction::compact::{self, Strategy};
use inlet_table::read::Query;
use inlet_table::{Table, TableConfig};
use inlet_tests::model::{self, Model, Shape};
use inlet_tests::{canonical, harness};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn mor(partitioned: bool, event_time: bool) -> Shape {
    Shape {
        merge_on_read: true,
        event_time,
        partitioned,
        composite_key: false,
        buckets: 2,
        hive_style: true,
    }
}

/// A new table of `shape` in a temp dir (kept alive by the returned guard), its model and a
/// seeded random source.
async fn new_table(
    shape: Shape,
    seed: u64,
) -> anyhow::Result<(tempfile::TempDir, String, Table, Model, StdRng)> {
    let dir = tempfile::tempdir()?;
    let uri = dir.path().display().to_string();
    let table = Table::create(&uri, TableConfig::default(), common::properties(&shape)).await?;
    Ok((
        dir,
        uri,
        table,
        Model::new(shape),
        StdRng::seed_from_u64(seed),
    ))
}

async fn snapshot(table: &Table, read_optimized: bool) -> anyhow::Result<Vec<String>> {
    let result = if read_optimized {
        table.read_optimized(&Query::Snapshot).await?
    } else {
        table.read(&Query::Snapshot).await?
    };
    canonical::rows(&result.batches, &model::canonical_columns())
}

async fn assert_snapshot(table: &Table, model: &Model, context: &str) -> anyhow::Result<()> {
    canonical::assert_same_rows(
        &snapshot(table, false).await?,
        &model::canonical(&model.records),
        context,
    );
    Ok(())
}

async fn compact_all(table: &Table) -> anyhow::Result<compact::Compacted> {
    let writer = table.writer().await?;
    let scheduled = compact::schedule(&writer, &Strategy::All).await?;
    writer.close().await?;
    let scheduled = scheduled.ok_or_else(|| anyhow::anyhow!("nothing scheduled"))?;
    let services = TableServices::open(table.clone()).await?;
    let done = compact::execute(&services, &scheduled.instant).await?;
    services.close().await?;
    Ok(done)
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with(".hoodie") {
                    stack.push(path);
                }
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_folds_logs_into_base_files_and_keeps_every_read() -> anyhow::Result<()> {
    for (i, shape) in [mor(false, true), mor(true, false)].into_iter().enumerate() {
        let (_dir, uri, table, mut model, mut rng) = new_table(shape, 40 + i as u64).await?;
        common::write_random_commits(&table, &mut model, &mut rng, 4, 30).await?;
        assert_snapshot(&table, &model, "before compaction").await?;
        let before_ro = snapshot(&table, true).await?;

        let done = compact_all(&table).await?;
        model.compact();
        assert!(done.file_groups > 0 && done.log_files > 0, "{done:?}");
        assert_snapshot(&table, &model, "after compaction").await?;
        // Read-optimized now sees the compacted state, and did not before.
        let after_ro = snapshot(&table, true).await?;
        canonical::assert_same_rows(
            &after_ro,
            &model::canonical(&model.records),
            "read-optimized",
        );
        assert_ne!(
            before_ro, after_ro,
            "{shape:?}: the compaction changed no base file"
        );
        // Compacted records keep the commit time of the write that wrote them.
        let timeline = table.timeline().await?;
        let compaction = timeline
            .latest_completed_write()
            .expect("compaction")
            .time
            .to_string();
        assert!(model.records.values().all(|r| r.commit_time != compaction));
        // Every record it reports is in a base file it wrote (slices without logs are left).
        let in_new_base_files: usize = table
            .read(&Query::Snapshot)
            .await?
            .batches
            .iter()
            .map(|b| {
                let names = b.column_by_name("_hoodie_file_name").expect("meta column");
                let names = arrow::array::AsArray::as_string::<i32>(names.as_ref());
                names
                    .iter()
                    .filter(|n| n.is_some_and(|n| n.ends_with(&format!("_{compaction}.parquet"))))
                    .count()
            })
            .sum();
        assert_eq!(done.records as usize, in_new_base_files, "{shape:?}");
        assert!(in_new_base_files > 0, "{shape:?}");

        common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;
        assert_snapshot(&table, &model, "writes after compaction").await?;
        let queries = common::compare_with_hudi_rs(&table, &uri, &[]).await?;
        assert!(queries >= 10);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_while_a_compaction_is_pending_are_kept() -> anyhow::Result<()> {
    let shape = mor(true, true);
    let (dir, uri, table, mut model, mut rng) = new_table(shape, 7).await?;
    common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;

    let writer = table.writer().await?;
    let scheduled = compact::schedule(&writer, &Strategy::All)
        .await?
        .expect("slices with logs");
    writer.close().await?;
    // Writes go on: their log files attach to the slice the compaction will create.
    common::write_random_commits(&table, &mut model, &mut rng, 2, 30).await?;
    let pinned = files(dir.path())
        .into_iter()
        .filter(|f| f.contains(&format!("_{}.log.", scheduled.instant)))
        .count();
    assert!(
        pinned > 0,
        "no log file was written to the pending compaction's slice"
    );
    assert_snapshot(&table, &model, "while the compaction is pending").await?;

    let services = TableServices::open(table.clone()).await?;
    let done = compact::execute(&services, &scheduled.instant).await?;
    services.close().await?;
    assert_eq!(done.file_groups, scheduled.plan.operations.len());
    // Every key the model has is still there, with the latest version written meanwhile
    // (compaction drops tombstones, so only keys that were deleted could differ).
    let ours = table.read(&Query::Snapshot).await?;
    let rows = canonical::rows(&ours.batches, &model::canonical_columns())?;
    for expected in model::canonical(&model.records) {
        assert!(
            rows.contains(&expected),
            "lost after compaction: {expected}"
        );
    }
    common::write_random_commits(&table, &mut model, &mut rng, 1, 30).await?;
    common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaning_keeps_what_retained_commits_need() -> anyhow::Result<()> {
    for merge_on_read in [false, true] {
        let shape = Shape {
            merge_on_read,
            ..mor(false, true)
        };
        let (dir, uri, table, mut model, mut rng) = new_table(shape, 11).await?;
        for _ in 0..3 {
            common::write_random_commits(&table, &mut model, &mut rng, 2, 30).await?;
            if merge_on_read {
                compact_all(&table).await?;
                model.compact();
            }
        }
        let before = files(dir.path());
        let services = TableServices::open(table.clone()).await?;
        let cleaned = clean::clean(&services, Policy::KeepLatestCommits(2)).await?;
        services.close().await?;
        let ectr = cleaned.earliest_retained.clone().expect("a commit bound");
        assert!(!cleaned.files.is_empty(), "{shape:?}: nothing cleaned");
        let after = files(dir.path());
        assert_eq!(after.len() + cleaned.files.len(), before.len());
        assert_snapshot(&table, &model, "after clean").await?;
        // Every query as of a retained commit still reads what it read before.
        for (instant, state) in &model.history {
            if instant.as_str() >= ectr.as_str() {
                let got = table.read(&Query::AsOf(instant.parse()?)).await?;
                canonical::assert_same_rows(
                    &canonical::rows(&got.batches, &model::canonical_columns())?,
                    &model::canonical(state),
                    &format!("{shape:?} as of retained {instant}"),
                );
            }
        }
        // Keep one version only: the latest slices stay, snapshot unchanged.
        let services = TableServices::open(table.clone()).await?;
        clean::clean(&services, Policy::KeepLatestFileVersions(1)).await?;
        services.close().await?;
        assert_snapshot(&table, &model, "after keep-latest-file-versions:1").await?;
        let hudi = common::hudi_rs(
            &uri,
            &[("snapshot".to_string(), serde_json::json!({}))],
            &model::canonical_columns(),
            &[],
        )?;
        canonical::assert_same_rows(
            &hudi["snapshot"],
            &model::canonical(&model.records),
            "hudi-rs after clean",
        );
        // Nothing left to clean: no instant is written.
        let services = TableServices::open(table.clone()).await?;
        let again = clean::clean(&services, Policy::KeepLatestFileVersions(1)).await?;
        services.close().await?;
        assert!(again.instant.is_none() && again.files.is_empty());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_of_the_latest_write_restores_the_previous_state() -> anyhow::Result<()> {
    for merge_on_read in [false, true] {
        let shape = Shape {
            merge_on_read,
            ..mor(true, true)
        };
        let (dir, uri, table, mut model, mut rng) = new_table(shape, 5).await?;
        common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;
        let files_before = files(dir.path());
        let previous = model.history[1].clone();
        let mut probe = model.clone();
        common::write_random_commits(&table, &mut probe, &mut rng, 1, 30).await?;
        let latest = probe.history.last().expect("commit").0.clone();

        let mut writer = table.writer().await?;
        // Only the latest write can be rolled back.
        let refused = writer
            .rollback(&previous.0.parse()?)
            .await
            .expect_err("not the latest");
        assert!(
            refused
                .to_string()
                .contains("roll back the latest write first"),
            "{refused}"
        );
        let outcome = writer.rollback(&latest.parse()?).await?;
        writer.close().await?;
        assert!(!outcome.deleted_files.is_empty());
        assert_eq!(
            files(dir.path()),
            files_before,
            "{shape:?}: files left by the rolled-back write"
        );
        assert_snapshot(&table, &model, "after rollback").await?;

        // The table takes writes again, and hudi-rs agrees with us on everything.
        common::write_random_commits(&table, &mut model, &mut rng, 1, 30).await?;
        assert_snapshot(&table, &model, "write after rollback").await?;
        if merge_on_read {
            // A completed compaction rolls back to a pending one, which runs again.
            compact_all(&table).await?;
            let compaction = table
                .timeline()
                .await?
                .latest_completed_write()
                .expect("c")
                .time
                .clone();
            let mut writer = table.writer().await?;
            writer.rollback(&compaction).await?;
            writer.close().await?;
            let timeline = table.timeline().await?;
            assert_eq!(timeline.pending_compactions().count(), 1);
            assert_snapshot(&table, &model, "after rolling back the compaction").await?;
            let services = TableServices::open(table.clone()).await?;
            compact::execute(&services, &compaction).await?;
            services.close().await?;
            model.compact();
            assert_snapshot(&table, &model, "compaction run again").await?;
        }
        common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archival_moves_cleaned_instants_to_the_archive() -> anyhow::Result<()> {
    let shape = mor(false, true);
    let (dir, uri, table, mut model, mut rng) = new_table(shape, 3).await?;
    common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;
    compact_all(&table).await?;
    model.compact();
    common::write_random_commits(&table, &mut model, &mut rng, 4, 30).await?;
    let retention = Retention::new(2, 3)?;

    // Nothing is archived before a clean has passed it.
    let services = TableServices::open(table.clone()).await?;
    let none = archive::archive(&services, retention).await?;
    assert!(none.file.is_none() && none.limited_by.is_some(), "{none:?}");
    let cleaned = clean::clean(&services, Policy::KeepLatestCommits(3)).await?;
    let ectr = cleaned.earliest_retained.expect("bound");
    let archived = archive::archive(&services, retention).await?;
    services.close().await?;

    let file = archived.file.clone().expect("an archive file");
    assert!(file.ends_with(".commits_.archive.1_1-0-1"), "{file}");
    assert!(!archived.instants.is_empty());
    assert!(
        archived.instants.iter().all(|i| i.time < ectr),
        "archived past the clean"
    );
    let timeline = table.timeline().await?;
    for instant in &archived.instants {
        assert!(
            timeline.get(&instant.time).is_none(),
            "{instant} still active"
        );
    }
    let bytes = std::fs::read(dir.path().join(&file))?;
    let blocks = inlet_table::file_group::read_log_blocks(&bytes)?;
    assert!(!blocks.is_empty() && blocks.iter().all(|b| !b.is_corrupt()));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("HoodieArchivedMetaEntry"));
    for instant in &archived.instants {
        assert!(
            text.contains(instant.time.as_str()),
            "{instant} not in the archive"
        );
    }

    assert_snapshot(&table, &model, "after archival").await?;
    let hudi = common::hudi_rs(
        &uri,
        &[("snapshot".to_string(), serde_json::json!({}))],
        &model::canonical_columns(),
        &[],
    )?;
    canonical::assert_same_rows(
        &hudi["snapshot"],
        &model::canonical(&model.records),
        "hudi-rs after archival",
    );
    common::write_random_commits(&table, &mut model, &mut rng, 1, 30).await?;
    assert_snapshot(&table, &model, "write after archival").await?;
    Ok(())
}

#[test]
fn cli_runs_the_services() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let uri = dir.path().join("t").display().to_string();
    let inlet = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new(harness::inlet_bin())
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "inlet {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let read = |uri: &str| -> anyhow::Result<Vec<String>> {
        let mut lines: Vec<String> = inlet(&["read", uri])?.lines().map(str::to_string).collect();
        lines.sort();
        Ok(lines)
    };
    let events = harness::repo_root().join("src/cli/demo");
    inlet(&[
        "table",
        "create",
        &uri,
        "--name",
        "t",
        "--type",
        "mor",
        "--record-key",
        "id",
        "--ordering-field",
        "_cdc_position",
    ])?;
    for file in ["events-1.jsonl", "events-2.jsonl"] {
        inlet(&["write", &uri, &events.join(file).display().to_string()])?;
    }
    let before = read(&uri)?;
    let scheduled = inlet(&["compact", &uri, "--schedule-only"])?;
    assert!(
        scheduled.starts_with("scheduled compaction "),
        "{scheduled}"
    );
    let compacted = inlet(&["compact", &uri])?;
    assert!(
        compacted.contains("compacted ") && compacted.contains("log file(s)"),
        "{compacted}"
    );
    assert_eq!(read(&uri)?, before);
    let cleaned = inlet(&["clean", &uri, "--policy", "keep-latest-file-versions:1"])?;
    assert!(
        cleaned.contains("deleted ") && cleaned.contains(".parquet"),
        "{cleaned}"
    );
    assert_eq!(read(&uri)?, before);
    let archived = inlet(&["archive", &uri, "--min-commits", "1", "--max-commits", "2"])?;
    assert!(archived.contains("archived "), "{archived}");
    inlet(&[
        "write",
        &uri,
        &events.join("events-2.jsonl").display().to_string(),
    ])?;
    let latest = inlet(&["timeline", &uri, "--json"])?;
    let last = latest.lines().last().unwrap_or_default();
    let instant: serde_json::Value = serde_json::from_str(last)?;
    let instant = instant["instant"].as_str().unwrap_or_default().to_string();
    let rolled = inlet(&["rollback", &uri, &instant])?;
    assert!(
        rolled.contains(&format!("rolled back {instant}")),
        "{rolled}"
    );
    assert_eq!(read(&uri)?, before);
    let out = std::process::Command::new(harness::inlet_bin())
        .args(["clean", &uri, "--policy", "keep-some"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep-latest-commits:N"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_runs_beside_a_writer() -> anyhow::Result<()> {
    let shape = mor(false, true);
    let (_dir, uri, table, mut model, mut rng) = new_table(shape, 17).await?;
    common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;
    let writer = table.writer().await?;
    let scheduled = compact::schedule(&writer, &Strategy::All)
        .await?
        .expect("slices");
    writer.close().await?;

    // The writer commits while the compaction executes under the services lease.
    let services = TableServices::open(table.clone()).await?;
    let compaction = compact::execute(&services, &scheduled.instant);
    let writes = common::write_random_commits(&table, &mut model, &mut rng, 3, 30);
    let (compacted, written) = tokio::join!(compaction, writes);
    compacted?;
    written?;
    services.close().await?;
    // A second service run cannot start while one holds the lease.
    let first = TableServices::open(table.clone()).await?;
    let second = TableServices::open(table.clone())
        .await
        .expect_err("services lease");
    assert!(second.to_string().contains("table services"), "{second}");
    first.close().await?;

    let ours = table.read(&Query::Snapshot).await?;
    let rows = canonical::rows(&ours.batches, &model::canonical_columns())?;
    for expected in model::canonical(&model.records) {
        assert!(
            rows.contains(&expected),
            "lost beside the compaction: {expected}"
        );
    }
    common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_refused_once_the_replaced_versions_are_cleaned() -> anyhow::Result<()> {
    let shape = Shape {
        merge_on_read: false,
        ..mor(false, true)
    };
    let (_dir, _uri, table, mut model, mut rng) = new_table(shape, 9).await?;
    common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;
    let services = TableServices::open(table.clone()).await?;
    clean::clean(&services, Policy::KeepLatestFileVersions(1)).await?;
    services.close().await?;

    let latest = table
        .timeline()
        .await?
        .latest_completed_write()
        .expect("a write")
        .time
        .clone();
    let mut writer = table.writer().await?;
    let refused = writer
        .rollback(&latest)
        .await
        .expect_err("versions cleaned");
    writer.close().await?;
    assert!(refused.to_string().contains("cleaned"), "{refused}");
    assert_snapshot(&table, &model, "after the refused rollback").await?;
    assert_eq!(table.timeline().await?.pending().count(), 0);
    Ok(())
}

/// Records every completed action a table reports to its hooks.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<(String, String, bool)>>);

#[async_trait::async_trait]
impl inlet_table::commit::CommitHook for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    async fn completed(
        &self,
        _table: &Table,
        completed: &inlet_table::commit::Completed<'_>,
    ) -> inlet_table::Result<()> {
        let mut seen = self.0.lock().expect("recorder lock");
        seen.push((
            completed.instant.time.to_string(),
            completed.instant.action.to_string(),
            completed.commit.is_some(),
        ));
        Ok(())
    }
}

/// Writes, compaction, cleaning and rollback all complete through the one transaction path,
/// which reports each to the table's hooks once, with commit metadata for the actions that
/// carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_completed_action_reaches_the_hooks() -> anyhow::Result<()> {
    let recorder = std::sync::Arc::new(Recorder::default());
    let dir = tempfile::tempdir()?;
    let uri = dir.path().display().to_string();
    let config = TableConfig {
        hooks: vec![recorder.clone()],
        ..TableConfig::default()
    };
    let shape = mor(true, true);
    let table = Table::create(&uri, config, common::properties(&shape)).await?;
    let (mut model, mut rng) = (Model::new(shape), StdRng::seed_from_u64(77));
    common::write_random_commits(&table, &mut model, &mut rng, 3, 20).await?;
    compact_all(&table).await?;
    common::write_random_commits(&table, &mut model, &mut rng, 2, 20).await?;
    let latest = table
        .timeline()
        .await?
        .latest_completed_write()
        .expect("a write")
        .time
        .clone();
    let mut writer = table.writer().await?;
    writer.rollback(&latest).await?;
    writer.close().await?;
    let services = TableServices::open(table.clone()).await?;
    let cleaned = clean::clean(&services, Policy::KeepLatestCommits(1)).await?;
    services.close().await?;
    assert!(cleaned.instant.is_some(), "the clean deleted nothing");

    let seen = recorder.0.lock().expect("recorder lock").clone();
    let mut expected: Vec<(String, String, bool)> = table
        .timeline()
        .await?
        .instants()
        .iter()
        .map(|i| {
            let commit = i.action.writes_data();
            (i.time.to_string(), i.action.to_string(), commit)
        })
        .collect();
    // The rolled-back write completed, reached the hooks, and is gone from the timeline.
    expected.push((latest.to_string(), "deltacommit".to_string(), true));
    expected.sort();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    assert_eq!(seen_sorted, expected);
    let actions: std::collections::BTreeSet<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(
        actions,
        ["clean", "commit", "deltacommit", "rollback"]
            .into_iter()
            .collect(),
        "{seen:?}"
    );

    // Savepoint, replace commit (truncate) and restore report through the same path.
    let kept = table
        .timeline()
        .await?
        .latest_completed_write()
        .expect("a write")
        .time
        .clone();
    let services = TableServices::open(table.clone()).await?;
    inlet_table::commit::savepoint::create(&table, services.lease()?, &kept, "", "").await?;
    services.close().await?;
    let mut writer = table.writer().await?;
    let truncate = writer.truncate(Default::default()).await?;
    let services = TableServices::open(table.clone()).await?;
    let restored = writer.restore(&kept).await?;
    services.close().await?;
    writer.close().await?;
    let later: Vec<(String, String, bool)> =
        recorder.0.lock().expect("recorder lock")[seen.len()..].to_vec();
    assert_eq!(
        later,
        [
            (kept.to_string(), "savepoint".to_string(), false),
            (
                truncate.instant.to_string(),
                "replacecommit".to_string(),
                true
            ),
            (restored.instant.to_string(), "restore".to_string(), false),
        ]
    );
    Ok(())
}

/// A savepoint keeps its commit readable through later writes, compactions and cleans that would
/// otherwise remove its files; a restore brings the table back to exactly that state (hudi-rs
/// agrees), and the table takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoint_and_restore_bring_the_table_back() -> anyhow::Result<()> {
    use inlet_table::commit::savepoint;
    for (i, merge_on_read) in [false, true].into_iter().enumerate() {
        let shape = Shape {
            merge_on_read,
            ..mor(true, true)
        };
        let (dir, uri, table, mut model, mut rng) = new_table(shape, 90 + i as u64).await?;
        common::write_random_commits(&table, &mut model, &mut rng, 3, 25).await?;
        if merge_on_read {
            // The savepoint's slices are then not the first ones, which the clean may delete.
            compact_all(&table).await?;
            model.compact();
            common::write_random_commits(&table, &mut model, &mut rng, 1, 25).await?;
        }
        let kept: inlet_table::InstantTime = model.history.last().expect("a commit").0.parse()?;
        let at_savepoint = model.clone();
        let files_at_savepoint = files(dir.path());

        let services = TableServices::open(table.clone()).await?;
        let refused = savepoint::create(
            &table,
            services.lease()?,
            &"20200101000000000".parse()?,
            "",
            "",
        )
        .await
        .expect_err("no such commit");
        assert!(
            refused.to_string().contains("not a completed commit"),
            "{refused}"
        );
        let created =
            savepoint::create(&table, services.lease()?, &kept, "tests", "before").await?;
        assert!(!created.files.is_empty());
        services.close().await?;

        // Later writes, a compaction, and a clean that keeps only the latest commit.
        common::write_random_commits(&table, &mut model, &mut rng, 3, 25).await?;
        if merge_on_read {
            compact_all(&table).await?;
            model.compact();
            common::write_random_commits(&table, &mut model, &mut rng, 2, 25).await?;
        }
        let services = TableServices::open(table.clone()).await?;
        let cleaned = clean::clean(&services, Policy::KeepLatestCommits(1)).await?;
        services.close().await?;
        assert!(
            !cleaned.files.is_empty(),
            "{shape:?}: the clean deleted nothing"
        );
        assert!(
            cleaned
                .earliest_retained
                .as_ref()
                .is_some_and(|e| e > &kept),
            "{cleaned:?}"
        );
        // The savepoint's state is still readable, exactly.
        let as_of = table.read(&Query::AsOf(kept.clone())).await?;
        canonical::assert_same_rows(
            &canonical::rows(&as_of.batches, &model::canonical_columns())?,
            &model::canonical(&at_savepoint.records),
            "as of the savepoint, after the clean",
        );
        // Restore.
        let mut writer = table.writer().await?;
        let services = TableServices::open(table.clone()).await?;
        let restored = writer.restore(&kept).await?;
        services.close().await?;
        writer.close().await?;
        assert!(restored.rolled_back.iter().all(|i| i.time > kept));
        assert!(!restored.rolled_back.is_empty());
        model = at_savepoint;
        assert_snapshot(&table, &model, "after the restore").await?;
        let timeline = table.timeline().await?;
        assert_eq!(
            timeline.latest_completed_write().map(|i| i.time.clone()),
            Some(kept.clone())
        );
        assert!(
            timeline.instants().iter().all(|i| i.time <= kept
                || matches!(
                    i.action,
                    inlet_table::Action::Clean | inlet_table::Action::Restore
                )),
            "{:?}",
            timeline.instants()
        );
        // No data file of a rolled-back write is left (cleaned ones stay cleaned).
        let now = files(dir.path());
        let data =
            |f: &String| !f.contains(".hoodie") && !f.ends_with(".hoodie_partition_metadata");
        for file in now.iter().filter(|f| data(f)) {
            assert!(
                files_at_savepoint.contains(file),
                "{file} outlived the restore"
            );
        }
        common::compare_with_hudi_rs(&table, &uri, &[]).await?;

        // The table takes writes again; the savepoint can go.
        common::write_random_commits(&table, &mut model, &mut rng, 2, 25).await?;
        assert_snapshot(&table, &model, "writes after the restore").await?;
        let services = TableServices::open(table.clone()).await?;
        savepoint::delete(&table, services.lease()?, &kept).await?;
        services.close().await?;
        assert_eq!(table.timeline().await?.savepoints().count(), 0);
        common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    }
    Ok(())
}

/// A truncate replaces every file group; the cleaner later deletes the replaced files, and
/// archival keeps the replace commit until it has (readers learn from it that those groups are
/// gone). Every read agrees with the model and with hudi-rs along the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_file_groups_are_cleaned_before_their_replace_commit_is_archived()
-> anyhow::Result<()> {
    for (i, merge_on_read) in [false, true].into_iter().enumerate() {
        let shape = Shape {
            merge_on_read,
            ..mor(true, true)
        };
        let (dir, uri, table, mut model, mut rng) = new_table(shape, 120 + i as u64).await?;
        common::write_random_commits(&table, &mut model, &mut rng, 3, 25).await?;
        let mut writer = table.writer().await?;
        let truncate = writer.truncate(Default::default()).await?;
        writer.close().await?;
        model.truncate(truncate.instant.as_str());
        let replaced: Vec<String> = truncate
            .metadata
            .partition_to_replace_file_ids
            .values()
            .flatten()
            .cloned()
            .collect();
        assert!(!replaced.is_empty());
        common::write_random_commits(&table, &mut model, &mut rng, 3, 25).await?;
        assert_snapshot(&table, &model, "after the truncate").await?;
        let of_replaced = |files: &[String]| {
            files
                .iter()
                .filter(|f| replaced.iter().any(|id| f.contains(id.as_str())))
                .count()
        };
        assert!(of_replaced(&files(dir.path())) > 0);
        common::compare_with_hudi_rs(&table, &uri, &[]).await?;

        let services = TableServices::open(table.clone()).await?;
        let cleaned = clean::clean(&services, Policy::KeepLatestCommits(1)).await?;
        assert!(of_replaced(&cleaned.files) > 0, "{cleaned:?}");
        assert_eq!(of_replaced(&files(dir.path())), 0, "replaced files left");
        let archived = archive::archive(&services, Retention::new(1, 2)?).await?;
        services.close().await?;
        assert!(
            archived.instants.iter().any(|i| i.time == truncate.instant),
            "{shape:?}: {archived:?}"
        );
        assert_snapshot(&table, &model, "after clean and archival").await?;
        common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    }
    Ok(())
}
