//! Crash safety: a child process is aborted at a failpoint (after a write's data files and before
//! its completion; in the middle of a compaction; in the middle of a clean). After each crash our
//! reader and hudi-rs see exactly the last completed state, the next operation succeeds, and no
//! file of the crashed write is left behind or read.

mod common;

use std::path::Path;

use inlet_compaction::TableServices;
use inlet_compaction::clean::{self, Policy};
use inlet_compaction::compact;
use inlet_table::read::Query;
use inlet_table::{Table, TableConfig};
use inlet_tests::canonical;
use inlet_tests::model::{self, Model, Shape};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn crash(uri: &str, failpoint: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crash_child"))
        .arg(uri)
        .args(args)
        .env("INLET_FAILPOINT", failpoint)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        !out.status.success() && stderr.contains(&format!("failpoint {failpoint} reached")),
        "the child did not crash at {failpoint}: {:?} {stderr}",
        out.status
    );
    Ok(())
}

fn data_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".parquet") || name.contains(".log.") {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// Our reader and hudi-rs both read exactly the model's state.
async fn assert_state(
    table: &Table,
    uri: &str,
    model: &Model,
    context: &str,
) -> anyhow::Result<()> {
    let ours = table.read(&Query::Snapshot).await?;
    let expected = model::canonical(&model.records);
    canonical::assert_same_rows(
        &canonical::rows(&ours.batches, &model::canonical_columns())?,
        &expected,
        &format!("ours {context}"),
    );
    let theirs = common::hudi_rs(
        uri,
        &[("snapshot".to_string(), serde_json::json!({}))],
        &model::canonical_columns(),
        &[],
    )?;
    canonical::assert_same_rows(
        &theirs["snapshot"],
        &expected,
        &format!("hudi-rs {context}"),
    );
    Ok(())
}

async fn table_with_history(
    dir: &Path,
    merge_on_read: bool,
) -> anyhow::Result<(Table, Model, StdRng)> {
    let shape = Shape {
        merge_on_read,
        event_time: true,
        partitioned: false,
        composite_key: false,
        buckets: 2,
        hive_style: true,
    };
    let uri = dir.display().to_string();
    let table = Table::create(&uri, TableConfig::default(), common::properties(&shape)).await?;
    let mut model = Model::new(shape);
    let mut rng = StdRng::seed_from_u64(21);
    common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;
    Ok((table, model, rng))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_crashes_before_completing_is_invisible_and_rolled_back() -> anyhow::Result<()>
{
    for merge_on_read in [false, true] {
        let dir = tempfile::tempdir()?;
        let uri = dir.path().display().to_string();
        let (table, mut model, mut rng) = table_with_history(dir.path(), merge_on_read).await?;
        let before = data_files(dir.path());
        crash(&uri, "commit.before-complete", &["write", "99"])?;
        assert!(
            data_files(dir.path()).len() > before.len(),
            "the crashed write left no file"
        );
        assert_eq!(table.timeline().await?.pending().count(), 1);
        assert_state(&table, &uri, &model, "after a crashed write").await?;

        // The next writer rolls the crashed write back: every file it wrote goes (log files too).
        let writer = table.writer().await?;
        assert_eq!(writer.rolled_back().len(), 1);
        writer.close().await?;
        assert_eq!(
            data_files(dir.path()),
            before,
            "merge_on_read={merge_on_read}"
        );
        common::write_random_commits(&table, &mut model, &mut rng, 1, 30).await?;
        assert_state(&table, &uri, &model, "write after recovery").await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_that_crashes_midway_runs_again() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let uri = dir.path().display().to_string();
    let (table, mut model, mut rng) = table_with_history(dir.path(), true).await?;
    crash(&uri, "compaction.after-first-file", &["compact"])?;
    let timeline = table.timeline().await?;
    let pending: Vec<_> = timeline.pending_compactions().cloned().collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_state(&table, &uri, &model, "after a crashed compaction").await?;

    // Writes go on beside the pending compaction, then it runs again from the start.
    common::write_random_commits(&table, &mut model, &mut rng, 1, 30).await?;
    let services = TableServices::open(table.clone()).await?;
    let done = compact::execute(&services, &pending[0].time).await?;
    services.close().await?;
    assert!(done.partial_files_removed >= 1, "{done:?}");
    assert_eq!(table.timeline().await?.pending().count(), 0);
    let ours = table.read(&Query::Snapshot).await?;
    let rows = canonical::rows(&ours.batches, &model::canonical_columns())?;
    for expected in model::canonical(&model.records) {
        assert!(rows.contains(&expected), "lost: {expected}");
    }
    common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_that_crashes_midway_is_finished_by_the_next() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let uri = dir.path().display().to_string();
    let (table, mut model, mut rng) = table_with_history(dir.path(), true).await?;
    // A compaction makes older slices that the clean may delete.
    let writer = table.writer().await?;
    let scheduled = compact::schedule(&writer, &compact::Strategy::All)
        .await?
        .expect("slices");
    writer.close().await?;
    let services = TableServices::open(table.clone()).await?;
    compact::execute(&services, &scheduled.instant).await?;
    services.close().await?;
    model.compact();
    let before = data_files(dir.path());

    crash(&uri, "clean.after-delete", &["clean"])?;
    let after_crash = data_files(dir.path());
    assert!(
        after_crash.len() < before.len(),
        "the crashed clean deleted nothing"
    );
    assert_eq!(table.timeline().await?.pending().count(), 1);
    assert_state(&table, &uri, &model, "after a crashed clean").await?;

    let services = TableServices::open(table.clone()).await?;
    let cleaned = clean::clean(&services, Policy::KeepLatestFileVersions(1)).await?;
    services.close().await?;
    assert!(cleaned.instant.is_some());
    assert_eq!(table.timeline().await?.pending().count(), 0);
    assert!(
        data_files(dir.path())
            .iter()
            .all(|f| f.contains(scheduled.instant.as_str()))
    );
    assert_state(&table, &uri, &model, "after the clean finished").await?;
    common::write_random_commits(&table, &mut model, &mut rng, 1, 30).await?;
    assert_state(&table, &uri, &model, "write after the clean").await?;
    Ok(())
}

/// A restore that crashes after rolling back one write leaves a readable table (an earlier
/// completed state) and a pending restore; the next restore to the same savepoint finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_crashes_midway_is_finished_by_the_next() -> anyhow::Result<()> {
    for merge_on_read in [false, true] {
        let dir = tempfile::tempdir()?;
        let uri = dir.path().display().to_string();
        let (table, mut model, _) = table_with_history(dir.path(), merge_on_read).await?;
        let kept: inlet_table::InstantTime = model.history[0].0.parse()?;
        let at_savepoint = {
            let mut m = model.clone();
            m.records = model.as_of(kept.as_str());
            m
        };
        let services = TableServices::open(table.clone()).await?;
        inlet_table::commit::savepoint::create(&table, services.lease()?, &kept, "", "").await?;
        services.close().await?;
        let newest = model.history[2].0.clone();

        crash(&uri, "restore.after-rollback", &["restore", kept.as_str()])?;
        let timeline = table.timeline().await?;
        assert!(
            timeline.get(&newest.parse()?).is_none(),
            "the newest write was rolled back first"
        );
        assert_eq!(
            timeline
                .pending()
                .filter(|i| i.action == inlet_table::Action::Restore)
                .count(),
            1
        );
        // Readers see the state before the newest write: a state the table had.
        model.records = model.as_of(model.history[1].0.as_str());
        assert_state(&table, &uri, &model, "after a crashed restore").await?;

        let mut writer = table.writer().await?;
        let services = TableServices::open(table.clone()).await?;
        let restored = writer.restore(&kept).await?;
        services.close().await?;
        writer.close().await?;
        assert_eq!(restored.rolled_back.len(), 1, "{restored:?}");
        let timeline = table.timeline().await?;
        assert_eq!(timeline.pending().count(), 0);
        assert_eq!(
            timeline.latest_completed_write().map(|i| i.time.clone()),
            Some(kept.clone())
        );
        assert_state(&table, &uri, &at_savepoint, "after the restore finished").await?;
    }
    Ok(())
}
