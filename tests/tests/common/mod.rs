//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod cli;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Fields};
use inlet_table::write::{Changes, Operation};
use inlet_table::{Table, TableConfig, TableProperties, TableType};
use inlet_tests::canonical;
use inlet_tests::harness::run_python;
use inlet_tests::model::{self, Model, Shape};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

pub fn properties(shape: &Shape) -> TableProperties {
    let table_type = if shape.merge_on_read {
        TableType::MergeOnRead
    } else {
        TableType::CopyOnWrite
    };
    let mut props = TableProperties::new("model", table_type, shape.record_key_fields());
    props.ordering_field = shape.ordering_field();
    props.partition_fields = shape.partition_fields();
    props.hive_style_partitioning = shape.hive_style;
    props.buckets = Some(shape.buckets);
    props
}

/// A table with one column of every supported type (3 rows, with nulls).
pub async fn all_types_table(uri: &str) -> anyhow::Result<Table> {
    let mut props = TableProperties::new("types", TableType::CopyOnWrite, vec!["id".into()]);
    props.buckets = Some(1);
    let table = Table::create(uri, TableConfig::default(), props).await?;
    let mut writer = table.writer().await?;
    writer
        .commit(Changes::upsert(all_types_batch()?), BTreeMap::new())
        .await?;
    writer.close().await?;
    Ok(table)
}

/// One column of every supported type (3 rows, with nulls).
pub fn all_types_batch() -> anyhow::Result<RecordBatch> {
    let struct_fields = Fields::from(vec![
        Field::new("a", DataType::Utf8, true),
        Field::new("b", DataType::Int32, true),
    ]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        (
            "small",
            Arc::new(Int16Array::from(vec![Some(-3), Some(300), None])),
        ),
        (
            "int",
            Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(7)])),
        ),
        (
            "big",
            Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(-1), None])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(2.5), Some(-1e10), None])),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(12_345), None, Some(-1)])
                    .with_precision_and_scale(10, 3)?,
            ),
        ),
        (
            "text",
            Arc::new(StringArray::from(vec![Some("héllo"), Some(""), None])),
        ),
        (
            "bytes",
            Arc::new(BinaryArray::from(vec![
                Some(b"\x00\x01".as_ref()),
                None,
                Some(b"z".as_ref()),
            ])),
        ),
        (
            "day",
            Arc::new(Date32Array::from(vec![Some(0), Some(19_723), None])),
        ),
        (
            "at_utc",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), None, Some(-1)])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "at_local",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_700_000_000_123_456),
                Some(0),
                None,
            ])),
        ),
        (
            "list",
            Arc::new(ListArray::from_iter_primitive::<
                arrow::datatypes::Int64Type,
                _,
                _,
            >(vec![
                Some(vec![Some(1), None]),
                None,
                Some(vec![]),
            ])),
        ),
        (
            "record",
            Arc::new(StructArray::new(
                struct_fields,
                vec![
                    Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
                    Arc::new(Int32Array::from(vec![1, 2, 3])),
                ],
                Some(vec![true, true, false].into()),
            )),
        ),
        (
            "unsigned",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None])),
        ),
        (
            "tiny",
            Arc::new(Int8Array::from(vec![Some(-8), Some(7), None])),
        ),
        (
            "wide_dec",
            Arc::new(
                Decimal128Array::from(vec![Some(i128::MAX / 10_000), None, Some(0)])
                    .with_precision_and_scale(38, 4)?,
            ),
        ),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// Runs hudi-rs (PyPI `hudi`) on a table for every named query, in one Python process, and
/// returns each result's batches.
pub fn run_hudi_rs(
    uri: &str,
    queries: &[(String, serde_json::Value)],
    options: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, Vec<RecordBatch>>> {
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
    run_python(
        "hudi_read.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    queries
        .iter()
        .map(|(name, _)| {
            Ok((
                name.clone(),
                canonical::read_parquet(&out.join(format!("{name}.parquet")))?,
            ))
        })
        .collect()
}

/// Like [`run_hudi_rs`], with each result in canonical form over `columns`. hudi-rs names a
/// column as the files do (Hudi's sanitized, Avro-valid form, see
/// `inlet_table::schema::physical_name`); each is read under that name and compared under the
/// name it was written with.
pub fn hudi_rs(
    uri: &str,
    queries: &[(String, serde_json::Value)],
    columns: &[String],
    options: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    run_hudi_rs(uri, queries, options)?
        .into_iter()
        .map(|(name, batches)| {
            let batches = batches
                .iter()
                .map(|b| written_names(b, columns))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((name, canonical::rows(&batches, columns)?))
        })
        .collect()
}

/// `columns` of a batch read by another reader, found by their names in files.
pub fn written_names(batch: &RecordBatch, columns: &[String]) -> anyhow::Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for column in columns {
        let physical = inlet_table::schema::physical_name(column);
        let array = batch.column_by_name(&physical).ok_or_else(|| {
            anyhow::anyhow!("column {physical} missing from {:?}", batch.schema())
        })?;
        fields.push(Field::new(column, array.data_type().clone(), true));
        arrays.push(array.clone());
    }
    Ok(RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        arrays,
    )?)
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
    let table = Table::create(uri, config, properties(&shape)).await?;
    let mut model = Model::new(shape);
    write_random_commits(&table, &mut model, &mut rng, 4, 40).await?;

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
        expected.push(model::canonical(
            model.incremental(&from, at).iter().map(|(k, r)| (k, r)),
        ));
    }
    queries.push((
        "incremental_open".to_string(),
        json!({"start": instants[0]}),
    ));
    let open = model.incremental(&instants[0], instants.last().expect("commits"));
    expected.push(model::canonical(open.iter().map(|(k, r)| (k, r))));

    let results = hudi_rs(uri, &queries, &model::canonical_columns(), &options)?;
    for ((name, query), expected) in queries.iter().zip(expected) {
        canonical::assert_same_rows(
            &results[name],
            &expected,
            &format!("hudi-rs {name} {query} (seed {seed}, {shape:?})"),
        );
    }
    Ok(model)
}

/// Writes `commits` commits of random changes over `keys` keys to the table and the model.
pub async fn write_random_commits(
    table: &Table,
    model: &mut Model,
    rng: &mut StdRng,
    commits: usize,
    keys: i64,
) -> anyhow::Result<()> {
    let mut writer = table.writer().await?;
    for _ in 0..commits {
        let changes = model::random_changes(rng, keys, 40);
        let (batch, deletes) = model::to_batch(&changes);
        let changes_in = Changes {
            batch,
            deletes: Some(deletes),
            operation: Operation::Upsert,
        };
        let commit = writer.commit(changes_in, BTreeMap::new()).await?;
        model.apply(commit.instant.as_str(), &changes);
    }
    writer.close().await?;
    Ok(())
}

/// hudi-rs and our reader agree on a table: snapshot, time travel to each completed write and
/// incremental reads from each, compared on the columns hudi-rs returns (it drops the meta
/// columns of tables written without them). Returns the number of queries compared.
pub async fn compare_with_hudi_rs(
    table: &Table,
    uri: &str,
    options: &[(String, String)],
) -> anyhow::Result<usize> {
    use inlet_table::read::Query;
    let timeline = table.timeline().await?;
    // (name, hudi-rs query, our query, read-optimized)
    let mut queries = vec![("snapshot".to_string(), json!({}), Query::Snapshot, false)];
    if table.properties().table_type == inlet_table::TableType::MergeOnRead {
        let ro = json!({"hudi_options": {"hoodie.read.use.read_optimized.mode": "true"}});
        queries.push(("read_optimized".to_string(), ro, Query::Snapshot, true));
    }
    for (i, instant) in timeline.completed_writes().enumerate() {
        let t = instant.time.to_string();
        queries.push((
            format!("as_of_{i}"),
            json!({"as_of": t}),
            Query::AsOf(instant.time.clone()),
            false,
        ));
        let incremental = Query::Incremental {
            from: instant.time.clone(),
            to: None,
        };
        queries.push((format!("from_{i}"), json!({"start": t}), incremental, false));
    }
    let named: Vec<(String, serde_json::Value)> = queries
        .iter()
        .map(|(n, q, _, _)| (n.clone(), q.clone()))
        .collect();
    let mut results = run_hudi_rs(uri, &named, options)?;
    let earliest = table.earliest_readable().await?;
    let savepoints: Vec<_> = timeline.savepoints().map(|s| s.time.clone()).collect();
    for (name, _, query, read_optimized) in &queries {
        let theirs = results.remove(name).unwrap_or_default();
        // Before what the cleaner retained, our reader refuses (hudi-rs answers from what is
        // left, which may be incomplete).
        if let (Query::AsOf(at) | Query::Incremental { to: Some(at), .. }, Some(earliest)) =
            (query, &earliest)
            && at < earliest
            && !savepoints.contains(at)
        {
            let refused = table.read(query).await;
            anyhow::ensure!(
                matches!(refused, Err(inlet_table::Error::Cleaned { .. })),
                "{uri}: {name} as of {at}, before {earliest}, was not refused"
            );
            continue;
        }
        let ours = if *read_optimized {
            table.read_optimized(query).await?
        } else {
            table.read(query).await?
        };
        assert_same_as_other_reader(&ours, &theirs, &format!("{uri}: {name} {query:?}"))?;
    }
    Ok(queries.len())
}

/// The table at `uri` holds exactly `expected` (canonical rows over `columns`), read by our
/// reader and by hudi-rs; `what` names it in failures.
pub async fn assert_lake_equals(
    uri: &str,
    columns: &[String],
    expected: &[String],
    what: &str,
) -> anyhow::Result<()> {
    let ours = inlet_tests::harness::cdc::lake_rows(uri, columns).await?;
    canonical::assert_same_rows(&ours, expected, &format!("{what} (our reader)"));
    let theirs = hudi_rs(uri, &[("snapshot".to_string(), json!({}))], columns, &[])?;
    canonical::assert_same_rows(&theirs["snapshot"], expected, &format!("{what} (hudi-rs)"));
    Ok(())
}

/// PyPI `deltalake` reads every version of the table's Delta mirror equal to our read-optimized
/// read as of the instant the version mirrors (its commit info's `inlet.instant`), on the
/// columns Delta shows (the names in files). Versions of instants that are no longer on the
/// timeline (rolled back, restored away) or no longer retained by the cleaner are history Delta
/// keeps and Hudi does not; they are skipped. The mirror must be up to date and its latest
/// version must mirror the latest instant. Returns the number of versions compared.
pub async fn compare_with_delta(
    table: &Table,
    uri: &str,
    options: &[(String, String)],
) -> anyhow::Result<usize> {
    use inlet_table::read::Query;
    let status = inlet_query::mirror::status(table).await?;
    anyhow::ensure!(
        status.behind.is_empty(),
        "{uri}: the Delta mirror is behind by {:?}",
        status.behind
    );
    let work = tempfile::tempdir()?;
    let out = work.path().join("versions");
    let mut args = vec![
        uri.to_string(),
        "--out-dir".to_string(),
        out.display().to_string(),
    ];
    for (k, v) in options {
        args.push("--storage-option".into());
        args.push(format!("{k}={v}"));
    }
    let printed = run_python(
        "delta_read.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let report: serde_json::Value = serde_json::from_str(printed.trim())?;
    let versions = report["versions"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("delta_read.py printed {printed}"))?;
    let timeline = table.timeline().await?;
    let earliest = table.earliest_readable().await?;
    let mut compared = 0;
    for (i, version) in versions.iter().enumerate() {
        let number = version["version"].as_u64().unwrap_or_default();
        anyhow::ensure!(number == i as u64, "{uri}: Delta versions {versions:?}");
        let instant: inlet_table::InstantTime = version["instant"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{uri}: version {number} names no instant"))?
            .parse()?;
        if i + 1 == versions.len() {
            anyhow::ensure!(
                status.instant.as_deref() == Some(instant.as_str()),
                "{uri}: the latest Delta version mirrors {instant}, the status says {:?}",
                status.instant
            );
        }
        let on_timeline = timeline.get(&instant).is_some_and(|t| t.is_completed());
        let retained = earliest.as_ref().is_none_or(|e| instant >= *e);
        if !on_timeline || !retained {
            continue;
        }
        if let Some(error) = version["error"].as_str() {
            // delta-rs (PyPI deltalake 1.6) expands a relative path "~/…" to the home
            // directory: a top-level partition directory named "~" is readable by Spark, not by
            // it. The failure must be that one.
            if version["tilde"] == true && error.contains("not found") {
                continue;
            }
            anyhow::bail!("{uri}: Delta version {number} ({instant}) cannot be read: {error}");
        }
        let theirs = canonical::read_parquet(&out.join(format!("v{number}.parquet")))?;
        let ours = table.read_optimized(&Query::AsOf(instant.clone())).await?;
        assert_same_as_other_reader(
            &ours,
            &theirs,
            &format!(
                "{uri}: Delta version {number} against our read-optimized read as of {instant}"
            ),
        )?;
        compared += 1;
    }
    Ok(compared)
}

/// Our read holds the rows another reader returned, on the columns that reader returned. Other
/// readers see columns by their names in files (Avro-valid); ours by the names they were written
/// with.
fn assert_same_as_other_reader(
    ours: &inlet_table::read::ReadResult,
    theirs: &[RecordBatch],
    context: &str,
) -> anyhow::Result<()> {
    let columns: Vec<String> = match theirs.first() {
        Some(batch) => batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        None => Vec::new(),
    };
    let expected = canonical::rows(theirs, &columns)?;
    let ours_in_files = ours
        .batches
        .iter()
        .map(|b| inlet_table::schema::rename(b, &inlet_table::schema::physical(&b.schema())?))
        .collect::<Result<Vec<_>, _>>()?;
    let got = if ours.num_rows() == 0 {
        Vec::new()
    } else {
        canonical::rows(&ours_in_files, &columns)?
    };
    canonical::assert_same_rows(&got, &expected, context);
    Ok(())
}

/// A table's change query replays onto its state: from the earliest instant still readable, the
/// changes of every later commit, applied in commit order (deletes of a commit first, so that a
/// key moved between partitions is deleted and then inserted), lead from the state as of that
/// instant to the latest state — every `before` equal to what the key held, no insert of a key
/// present, no update or delete of one absent. Returns the number of changes replayed.
pub async fn assert_changes_replay(table: &Table) -> anyhow::Result<usize> {
    use inlet_table::InstantTime;
    use inlet_table::read::Query;
    let key_fields = table.properties().record_key_fields.clone();
    let from: InstantTime = match table.earliest_readable().await? {
        Some(t) => t,
        None => "00000000000000000".parse()?,
    };
    let json_rows = |batches: &[RecordBatch]| -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(canonical::json_objects(batches)?
            .into_iter()
            .map(serde_json::Value::Object)
            .collect())
    };
    let data = |mut row: serde_json::Value| {
        if let Some(object) = row.as_object_mut() {
            object.retain(|k, _| !inlet_table::schema::is_meta_column(k));
        }
        row
    };
    let key = |row: &serde_json::Value| -> String {
        key_fields
            .iter()
            .map(|f| row[f].to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut state: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    if from.as_str().bytes().any(|b| b != b'0') {
        for row in json_rows(&table.read(&Query::AsOf(from.clone())).await?.batches)? {
            let row = data(row);
            state.insert(key(&row), row);
        }
    }
    let changes = json_rows(&table.read_changes(&from, None).await?.batches)?;
    let mut by_instant: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for change in &changes {
        by_instant
            .entry(change["instant"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(change);
    }
    for (instant, changes) in by_instant {
        let (deletes, writes): (Vec<_>, Vec<_>) = changes.into_iter().partition(|c| c["op"] == "d");
        for change in deletes.into_iter().chain(writes) {
            let op = change["op"].as_str().unwrap_or_default();
            let (before, after) = (&change["before"], &change["after"]);
            let k = key(if op == "i" { after } else { before });
            let held = state.remove(&k);
            match op {
                "i" => anyhow::ensure!(held.is_none(), "{instant}: insert of held key {k}"),
                _ => anyhow::ensure!(
                    held.as_ref() == Some(before),
                    "{instant}: {op} of key {k} whose before {before} is not what it held: {held:?}"
                ),
            }
            if op != "d" {
                state.insert(k, after.clone());
            }
        }
    }
    let mut latest: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for row in json_rows(&table.read(&Query::Snapshot).await?.batches)? {
        let row = data(row);
        latest.insert(key(&row), row);
    }
    anyhow::ensure!(
        state == latest,
        "replaying {} changes after {from} does not give the latest state: {} keys vs {}",
        changes.len(),
        state.len(),
        latest.len()
    );
    Ok(changes.len())
}
