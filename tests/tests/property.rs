//! Property test: random batches of inserts, updates and deletes are applied to a table and to
//! the in-memory model; after every commit the snapshot must match, and at the end every time
//! travel and incremental read between commits must match too.
//!
//! hudi-rs (PyPI `hudi`) then reads every table the test wrote and must agree with our reader.
//!
//! Time-budgeted: `INLET_PROPTEST_SECONDS` (default 20). The seed is printed; replay a failure
//! with `INLET_PROPTEST_SEED=<seed>`.

mod common;

use std::time::{Duration, Instant};

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
    while cases == 0 || started.elapsed() < budget {
        cases += 1;
        let shape = Shape::random(&mut rng);
        let dir = tempfile::tempdir()?;
        let table = Table::create(
            &dir.path().display().to_string(),
            TableConfig::default(),
            common::properties(&shape),
        )
        .await?;
        let mut model = Model::new(shape);
        let count = rng.random_range(2..=6);
        for _ in 0..count {
            common::write_random_commits(&table, &mut model, &mut rng, 1, 25).await?;
            commits += 1;
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
            let got = read(&table, &Query::AsOf(at.parse()?)).await?;
            canonical::assert_same_rows(
                &got,
                &model::canonical(&model.as_of(at)),
                &format!("as of {at} (seed {seed}, {shape:?})"),
            );
            for to in &instants[i + 1..] {
                let query = Query::Incremental {
                    from: at.parse()?,
                    to: Some(to.parse()?),
                };
                let got = read(&table, &query).await?;
                canonical::assert_same_rows(
                    &got,
                    &model::canonical(&model.incremental(at, to)),
                    &format!("({at}, {to}] (seed {seed}, {shape:?})"),
                );
            }
        }
        let uri = dir.path().display().to_string();
        hudi_queries += common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    }
    println!(
        "property test: {cases} tables, {commits} commits, all reads matched the model; \
         hudi-rs agreed on {hudi_queries} queries"
    );
    Ok(())
}
