//! Property test: random batches of inserts, updates and deletes are applied to a table and to
//! the in-memory model; after every commit the snapshot must match, and at the end every time
//! travel and incremental read between commits must match too.
//!
//! Merge-on-read tables get compactions, cleans (random policies) and rolled-back writes between
//! commits; every table gets truncates (replace commits of every file group), savepoints and
//! restores to them: snapshots must still match, time travel must match back to the earliest
//! instant the cleans retained, and our reader must agree with hudi-rs on every query
//! (incremental reads across table services and replace commits are checked against hudi-rs
//! rather than the model).
//!
//! Change queries (before and after images) of every commit, and of a window over all of them,
//! must match the model's changes between consecutive states; half the tables keep Hudi's `.cdc`
//! files, the others are read by inference from their file slices.
//!
//! hudi-rs (PyPI `hudi`) then reads every table the test wrote and must agree with our reader.
//! Every other table keeps a Delta Lake mirror (the commit hook); PyPI `deltalake` reads each of
//! its versions equal to our read-optimized read as of the version's instant.
//!
//! Time-budgeted: `INLET_PROPTEST_SECONDS` (default 20). The seed is printed; replay a failure
//! with `INLET_PROPTEST_SEED=<seed>`.

mod common;

use std::time::{Duration, Instant};

use inlet_compaction::TableServices;
use inlet_compaction::clean::{self, Policy};
use inlet_compaction::compact::{self, Strategy};
use inlet_query::mirror;
use inlet_table::commit::savepoint;
use inlet_table::read::Query;
use inlet_table::{Table, TableConfig};
use inlet_tests::canonical;
use inlet_tests::model::{self, Model, Shape};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn read(table: &Table, query: &Query) -> anyhow::Result<Vec<String>> {
    let result = table.read(query).await?;
    canonical::rows(&result.batches, &model::canonical_columns())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_changes_match_the_model() -> anyhow::Result<()> {
    let seed = env_u64("INLET_PROPTEST_SEED").unwrap_or_else(|| rand::rng().random());
    let budget = Duration::from_secs(env_u64("INLET_PROPTEST_SECONDS").unwrap_or(20));
    println!(
        "property test seed {seed} (replay with INLET_PROPTEST_SEED={seed}), budget {budget:?}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut cases = 0;
    let mut commits = 0;
    let mut hudi_queries = 0;
    let mut delta_versions = 0;
    let mut change_queries = 0;
    let (mut compactions, mut cleans, mut rollbacks) = (0, 0, 0);
    let (mut truncates, mut savepoints, mut restores) = (0, 0, 0);
    while cases == 0 || started.elapsed() < budget {
        cases += 1;
        let shape = Shape::random(&mut rng);
        let dir = tempfile::tempdir()?;
        // Every other table keeps a Delta mirror, brought up to date by the hook after every
        // completed action; PyPI `deltalake` judges it at the end.
        let mirrored = cases % 2 == 0;
        let mut props = common::properties(&shape);
        // Half the tables keep Hudi's `.cdc` files (copy-on-write writes them); change queries
        // on the others are inferred from the file slices, and both must match the model.
        if cases % 4 < 2 {
            props.enable_cdc();
        }
        let mut config = TableConfig::default();
        if mirrored {
            props
                .other
                .insert(mirror::PROPERTY.to_string(), "true".to_string());
            config
                .hooks
                .push(std::sync::Arc::new(mirror::DeltaMirrorHook));
        }
        let table = Table::create(&dir.path().display().to_string(), config, props).await?;
        let mut model = Model::new(shape);
        let count = rng.random_range(2..=6);
        // Time travel is exact from here on (cleans drop older file versions).
        let mut retained_from = String::new();
        let mut services_ran = false;
        // The model as of the table's savepoint, if it has one.
        let mut savepoint: Option<Model> = None;
        for _ in 0..count {
            // Several commits by one writer: its snapshot and key index advance commit by commit.
            let n = rng.random_range(1..=3);
            common::write_random_commits(&table, &mut model, &mut rng, n, 25).await?;
            commits += n;
            match rng.random_range(0..12) {
                0 => {
                    let mut writer = table.writer().await?;
                    let commit = writer.truncate(Default::default()).await?;
                    writer.close().await?;
                    model.truncate(commit.instant.as_str());
                    truncates += 1;
                    services_ran = true;
                }
                1 if savepoint.is_none() => {
                    let at = model.history.last().expect("a commit").0.parse()?;
                    let services = TableServices::open(table.clone()).await?;
                    let taken = savepoint::create(&table, services.lease()?, &at, "", "").await;
                    services.close().await?;
                    match taken {
                        Ok(_) => {
                            savepoint = Some(model.clone());
                            savepoints += 1;
                        }
                        // Only when a clean already removed what it needs.
                        Err(inlet_table::Error::SavepointRefused { reason, .. })
                            if reason.contains("cleaner") => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                2 | 3 if savepoint.is_some() => {
                    let kept = savepoint.take().expect("a savepoint");
                    let at = kept.history.last().expect("a commit").0.parse()?;
                    let mut writer = table.writer().await?;
                    let services = TableServices::open(table.clone()).await?;
                    writer.restore(&at).await?;
                    services.close().await?;
                    writer.close().await?;
                    let services = TableServices::open(table.clone()).await?;
                    savepoint::delete(&table, services.lease()?, &at).await?;
                    services.close().await?;
                    model = kept;
                    restores += 1;
                    services_ran = true;
                }
                _ => {}
            }
            if shape.merge_on_read {
                match rng.random_range(0..10) {
                    0..3 => {
                        let writer = table.writer().await?;
                        let scheduled = compact::schedule(&writer, &Strategy::All).await?;
                        writer.close().await?;
                        if let Some(scheduled) = scheduled {
                            let services = TableServices::open(table.clone()).await?;
                            compact::execute(&services, &scheduled.instant).await?;
                            services.close().await?;
                            model.compact();
                            compactions += 1;
                            services_ran = true;
                        }
                    }
                    3..5 => {
                        let policy = match rng.random_range(0..2) {
                            0 => Policy::KeepLatestCommits(rng.random_range(1..=3)),
                            _ => Policy::KeepLatestFileVersions(rng.random_range(1..=2)),
                        };
                        let services = TableServices::open(table.clone()).await?;
                        let cleaned = clean::clean(&services, policy).await?;
                        services.close().await?;
                        if cleaned.instant.is_some() {
                            cleans += 1;
                            services_ran = true;
                            let floor = match (&cleaned.earliest_retained, policy) {
                                (Some(ectr), Policy::KeepLatestCommits(_)) => ectr.to_string(),
                                // Older versions of some file group may be gone: only the
                                // latest state is exact.
                                _ => model
                                    .history
                                    .last()
                                    .map(|(t, _)| t.clone())
                                    .unwrap_or_default(),
                            };
                            retained_from = retained_from.max(floor);
                        }
                    }
                    5 => {
                        // A write that is rolled back leaves the table as it was.
                        let mut probe = model.clone();
                        common::write_random_commits(&table, &mut probe, &mut rng, 1, 25).await?;
                        let instant = probe.history.last().expect("a commit").0.parse()?;
                        let mut writer = table.writer().await?;
                        writer.rollback(&instant).await?;
                        writer.close().await?;
                        rollbacks += 1;
                        canonical::assert_same_rows(
                            &read(&table, &Query::Snapshot).await?,
                            &model::canonical(&model.records),
                            &format!("after rolling back {instant} (seed {seed}, {shape:?})"),
                        );
                    }
                    _ => {}
                }
            }
            let got = read(&table, &Query::Snapshot).await?;
            let at = &model.history.last().expect("a commit").0;
            canonical::assert_same_rows(
                &got,
                &model::canonical(&model.records),
                &format!("snapshot after {at} (seed {seed}, {shape:?})"),
            );
        }
        let instants: Vec<String> = model.history.iter().map(|(t, _)| t.clone()).collect();
        for (i, at) in instants.iter().enumerate() {
            if at.as_str() < retained_from.as_str() {
                continue;
            }
            let got = read(&table, &Query::AsOf(at.parse()?)).await?;
            canonical::assert_same_rows(
                &got,
                &model::canonical(&model.as_of(at)),
                &format!("as of {at} (seed {seed}, {shape:?})"),
            );
            for to in instants[i + 1..].iter().filter(|_| !services_ran) {
                let query = Query::Incremental {
                    from: at.parse()?,
                    to: Some(to.parse()?),
                };
                let got = read(&table, &query).await?;
                canonical::assert_same_rows(
                    &got,
                    &model::canonical(model.incremental(at, to).iter().map(|(k, r)| (k, r))),
                    &format!("({at}, {to}] (seed {seed}, {shape:?})"),
                );
            }
        }
        // Change queries: each commit's changes since the commit before, and one window over
        // every commit whose previous state the cleaner kept.
        let mut window: Vec<String> = Vec::new();
        let mut window_from: Option<&String> = None;
        for i in 1..instants.len() {
            let (from, to) = (&instants[i - 1], &instants[i]);
            if from.as_str() < retained_from.as_str() {
                continue;
            }
            let got = table
                .read_changes(&from.parse()?, Some(&to.parse()?))
                .await?;
            let expected = model.changes(i);
            canonical::assert_same_rows(
                &canonical::change_rows(&got.batches)?,
                &expected,
                &format!("changes ({from}, {to}] (seed {seed}, {shape:?})"),
            );
            change_queries += 1;
            window_from.get_or_insert(from);
            window.extend(expected);
        }
        if let Some(from) = window_from {
            window.sort();
            let got = table.read_changes(&from.parse()?, None).await?;
            canonical::assert_same_rows(
                &canonical::change_rows(&got.batches)?,
                &window,
                &format!("changes after {from} (seed {seed}, {shape:?})"),
            );
        }
        let uri = dir.path().display().to_string();
        hudi_queries += common::compare_with_hudi_rs(&table, &uri, &[]).await?;
        if mirrored {
            delta_versions += common::compare_with_delta(&table, &uri, &[]).await?;
        }
    }
    println!(
        "property test: {cases} tables, {commits} commits, {compactions} compactions, {cleans} \
         cleans, {rollbacks} rollbacks, {truncates} truncates, {savepoints} savepoints, \
         {restores} restores, all reads and {change_queries} change queries matched the model; \
         hudi-rs agreed on {hudi_queries} queries; deltalake agreed on {delta_versions} Delta versions"
    );
    Ok(())
}
