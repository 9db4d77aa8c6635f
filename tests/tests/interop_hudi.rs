//! Independent readers judge our tables: PyPI `hudi` 0.5.0 (hudi-rs) must return exactly what
//! the model says for snapshot, time-travel and incremental queries, and pyarrow and duckdb must
//! read every base file.

use std::collections::BTreeMap;
use std::path::Path;

use inlet_table::write::{Changes, Operation};
use inlet_table::{Table, TableConfig};
use inlet_tests::canonical;
use inlet_tests::harness::run_python;
use inlet_tests::model::{self, Model, Shape};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

mod common;

/// Runs hudi-rs on a table for every query and returns each result in canonical form.
fn hudi_rs(
    uri: &str,
    queries: &[(String, serde_json::Value)],
    columns: &[String],
    options: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let work = tempfile::tempdir()?;
    let spec: Vec<serde_json::Value> = queries
        .iter()
        .map(|(name, q)| {
            let mut q = q.clone();
            q["name"] = json!(name);
            q
        })
        .collect();
    let spec_path = work.path().join("queries.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let out = work.path().join("out");
    let mut args: Vec<String> = vec![
        uri.to_string(),
        "--queries".into(),
        spec_path.display().to_string(),
        "--out-dir".into(),
        out.display().to_string(),
    ];
    for (k, v) in options {
        args.push("--storage-option".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_python("hudi_read.py", &args)?;
    let mut results = BTreeMap::new();
    for (name, _) in queries {
        let batches = canonical::read_parquet(&out.join(format!("{name}.parquet")))?;
        results.insert(name.clone(), canonical::rows(&batches, columns)?);
    }
    Ok(results)
}

/// Builds a table from random changes (several commits) and checks every query with hudi-rs.
pub async fn check_against_model(
    uri: &str,
    config: TableConfig,
    shape: Shape,
    seed: u64,
) -> anyhow::Result<Model> {
    let mut rng = StdRng::seed_from_u64(seed);
    let options = config.storage_options.clone();
    let table = Table::create(uri, config, common::properties(&shape)).await?;
    let mut model = Model::new(shape);
    let mut writer = table.writer().await?;
    for _ in 0..4 {
        let changes = model::random_changes(&mut rng, 40, 40);
        let (batch, deletes) = model::to_batch(&changes);
        let commit = writer
            .commit(
                Changes {
                    batch,
                    deletes: Some(deletes),
                    operation: Operation::Upsert,
                },
                BTreeMap::new(),
            )
            .await?;
        model.apply(commit.instant.as_str(), &changes);
    }
    writer.close().await?;

    let instants: Vec<String> = model.history.iter().map(|(t, _)| t.clone()).collect();
    let mut queries = vec![("snapshot".to_string(), json!({}))];
    let mut expected = vec![model::canonical(&model.records)];
    for (i, at) in instants.iter().enumerate() {
        queries.push((format!("as_of_{i}"), json!({"as_of": at})));
        expected.push(model::canonical(&model.as_of(at)));
        let from = if i == 0 {
            "00000000000000000".to_string()
        } else {
            instants[i - 1].clone()
        };
        queries.push((
            format!("incremental_{i}"),
            json!({"start": from, "end": at}),
        ));
        expected.push(model::canonical(&model.incremental(&from, at)));
    }
    queries.push((
        "incremental_open".to_string(),
        json!({"start": instants[0]}),
    ));
    expected.push(model::canonical(
        &model.incremental(&instants[0], instants.last().expect("commits")),
    ));

    let results = hudi_rs(uri, &queries, &model::canonical_columns(), &options)?;
    for ((name, query), expected) in queries.iter().zip(expected) {
        assert_eq!(
            results[name], expected,
            "hudi-rs {name} {query} (seed {seed}, {shape:?})"
        );
    }
    Ok(model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hudi_rs_agrees_with_the_model() -> anyhow::Result<()> {
    let shapes = [
        Shape {
            event_time: true,
            partitioned: true,
            composite_key: false,
            buckets: 2,
        },
        Shape {
            event_time: false,
            partitioned: false,
            composite_key: false,
            buckets: 1,
        },
        Shape {
            event_time: true,
            partitioned: false,
            composite_key: true,
            buckets: 3,
        },
        Shape {
            event_time: false,
            partitioned: true,
            composite_key: true,
            buckets: 4,
        },
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let uri = dir.path().display().to_string();
        let model =
            check_against_model(&uri, TableConfig::default(), shape, 1000 + i as u64).await?;
        assert!(!model.records.is_empty());
        check_base_files(dir.path()).await?;
    }
    Ok(())
}

/// pyarrow and duckdb read every base file, with the row counts our reader finds.
async fn check_base_files(dir: &Path) -> anyhow::Result<()> {
    let report: serde_json::Value = serde_json::from_str(
        run_python("check_base_files.py", &[&dir.display().to_string()])?.trim(),
    )?;
    let files = report["files"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("no files in {report}"))?;
    assert!(!files.is_empty());
    for (path, rows) in files {
        let ours: usize = canonical::read_parquet(&dir.join(path))?
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows.as_u64(), Some(ours as u64), "{path}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hudi_rs_reads_every_column_type() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let uri = dir.path().display().to_string();
    let table = common::all_types_table(&uri).await?;
    let ours = table.read(&inlet_table::read::Query::Snapshot).await?;
    let columns: Vec<String> = ours
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let results = hudi_rs(&uri, &[("snapshot".to_string(), json!({}))], &columns, &[])?;
    assert_eq!(
        results["snapshot"],
        canonical::rows(&ours.batches, &columns)?
    );
    assert_eq!(results["snapshot"].len(), 3);
    check_base_files(dir.path()).await?;
    Ok(())
}
