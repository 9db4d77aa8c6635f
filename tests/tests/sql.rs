//! `inlet sql` judged by an independent reader and an independent SQL engine: hudi-rs reads
//! the same lake tables, DuckDB runs the same query over what it read, and both answers must
//! be equal, for copy-on-write and merge-on-read tables with log files, with column names that
//! need quoting, and for the time-travel and incremental table functions.

mod common;

use std::path::Path;

use common::cli::{fails, ok};
use inlet_tests::canonical;
use inlet_tests::harness::run_python;
use inlet_tests::model::{Model, Shape};
use rand::SeedableRng;
use serde_json::json;

/// A table of random commits at `<lake>/s/<name>` (4 commits over 40 keys, deletes and
/// partition moves among them); its model.
async fn random_table(lake: &Path, name: &str, shape: Shape, seed: u64) -> anyhow::Result<Model> {
    let uri = lake.join("s").join(name).display().to_string();
    let table = inlet_table::Table::create(
        &uri,
        inlet_table::TableConfig::default(),
        common::properties(&shape),
    )
    .await?;
    let mut model = Model::new(shape);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    common::write_random_commits(&table, &mut model, &mut rng, 4, 40).await?;
    Ok(model)
}

/// What hudi-rs reads of a table for `query`, as a Parquet file with the columns' written names.
fn hudi_rs_parquet(
    uri: &str,
    query: serde_json::Value,
    out: &Path,
) -> anyhow::Result<std::path::PathBuf> {
    let columns = inlet_tests::model::canonical_columns();
    let batches = common::run_hudi_rs(uri, &[("q".to_string(), query)], &[])?;
    let batches = batches["q"]
        .iter()
        .map(|b| common::written_names(b, &columns))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let file = std::fs::File::create(out)?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| anyhow::anyhow!("hudi-rs returned no batch"))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(out.to_path_buf())
}

/// `inlet sql` and DuckDB (over `tables`: name → Parquet file) answer `query` alike.
fn assert_same_answer(
    lake: &Path,
    tables: &[(&str, &Path)],
    query: &str,
    work: &Path,
) -> anyhow::Result<usize> {
    assert_same_answers(lake, tables, query, query, work)
}

/// `inlet sql` answers `ours` as DuckDB answers `theirs` over `tables`.
fn assert_same_answers(
    lake: &Path,
    tables: &[(&str, &Path)],
    ours_query: &str,
    query: &str,
    work: &Path,
) -> anyhow::Result<usize> {
    let ours = work.join("ours.parquet");
    ok(&[
        "sql",
        ours_query,
        "--lake",
        &lake.display().to_string(),
        "--format",
        "parquet",
        "--output",
        &ours.display().to_string(),
        "--meta",
    ]);
    let theirs = work.join("duckdb.parquet");
    let mut args = vec![
        "--query".to_string(),
        query.to_string(),
        "--out".to_string(),
        theirs.display().to_string(),
    ];
    for (name, file) in tables {
        args.push("--table".into());
        args.push(format!("{name}={}", file.display()));
    }
    run_python(
        "duckdb_sql.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let got = canonical::rows(&canonical::read_parquet(&ours)?, &[])?;
    let expected = canonical::rows(&canonical::read_parquet(&theirs)?, &[])?;
    canonical::assert_same_rows(&got, &expected, query);
    Ok(got.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_as_duckdb_over_hudi_rs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let shape = |merge_on_read, composite_key| Shape {
        merge_on_read,
        event_time: true,
        partitioned: true,
        composite_key,
        buckets: 2,
        hive_style: false,
    };
    random_table(&lake, "cow", shape(false, false), 11).await?;
    let mor = random_table(&lake, "mor", shape(true, true), 12).await?;
    let snapshot = |name: &str| -> anyhow::Result<std::path::PathBuf> {
        hudi_rs_parquet(
            &lake.join("s").join(name).display().to_string(),
            json!({}),
            &dir.path().join(format!("{name}.parquet")),
        )
    };
    let (cow_file, mor_file) = (snapshot("cow")?, snapshot("mor")?);
    let tables = [("s.cow", cow_file.as_path()), ("s.mor", mor_file.as_path())];
    let queries = [
        r#"SELECT id, part, ts, "välue name", "n-1" FROM s.mor"#,
        r#"SELECT id, part, ts, "välue name", "n-1" FROM s.cow WHERE ts > 0 OR part IS NULL"#,
        r#"SELECT part, count(*) AS c, min(ts) AS lo, max(id) AS hi FROM s.mor GROUP BY part"#,
        r#"SELECT m.id AS id, m."välue name" AS mv, c."välue name" AS cv
           FROM s.mor m JOIN s.cow c ON m.id = c.id AND m.part = c.part"#,
        r#"SELECT count(*) AS c FROM s.cow WHERE "välue name" LIKE '%a%'"#,
        "SELECT _hoodie_record_key AS k, _hoodie_commit_time AS t FROM s.mor ORDER BY k LIMIT 7",
    ];
    let mut rows = 0;
    for query in queries {
        rows += assert_same_answer(&lake, &tables, query, dir.path())?;
    }
    assert!(rows > 40, "the queries returned only {rows} rows");

    // Time travel and incremental reads through the table functions, as hudi-rs reads them.
    let uri = lake.join("s/mor").display().to_string();
    let instants: Vec<String> = mor.history.iter().map(|(t, _)| t.clone()).collect();
    let columns = r#"id, part, ts, "välue name", "n-1", _hoodie_commit_time AS t"#;
    let mut read = 0;
    for (i, at) in instants.iter().enumerate() {
        let file = dir.path().join(format!("as_of_{i}.parquet"));
        let as_of = hudi_rs_parquet(&uri, json!({"as_of": at}), &file)?;
        read += assert_same_answers(
            &lake,
            &[("s.mor", as_of.as_path())],
            &format!("SELECT {columns} FROM table_as_of('s.mor', '{at}')"),
            &format!("SELECT {columns} FROM s.mor"),
            dir.path(),
        )?;
        if i > 0 {
            let from = &instants[i - 1];
            let file = dir.path().join(format!("changes_{i}.parquet"));
            let changes = hudi_rs_parquet(&uri, json!({"start": from, "end": at}), &file)?;
            read += assert_same_answers(
                &lake,
                &[("s.mor", changes.as_path())],
                &format!("SELECT {columns} FROM table_changes('s.mor', '{from}', '{at}')"),
                &format!("SELECT {columns} FROM s.mor"),
                dir.path(),
            )?;
        }
    }
    assert!(read > 40, "the table functions returned only {read} rows");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_finds_tables_and_names_what_is_wrong() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let shape = Shape {
        merge_on_read: false,
        event_time: false,
        partitioned: false,
        composite_key: false,
        buckets: 1,
        hive_style: false,
    };
    random_table(&lake, "t", shape, 3).await?;
    let lake = lake.display().to_string();
    let sql = |query: &str| fails(&["sql", query, "--lake", &lake]);
    let err = sql("SELECT * FROM table_as_of('s.nope', '20240101000000000')");
    assert!(
        err.contains("no table \"s.nope\"") && err.contains("s.t"),
        "{err}"
    );
    let err = sql("SELECT * FROM table_as_of('s.t', '2024-01-01')");
    assert!(err.contains("not an instant time"), "{err}");
    let err = sql("SELECT * FROM table_changes('s.t')");
    assert!(
        err.contains("table_changes('schema.table', ['latest_state' | 'cdc',] 'FROM'[, 'TO'])"),
        "{err}"
    );
    let err = sql("SELECT nope FROM s.t");
    assert!(err.contains("nope"), "{err}");
    let err = fails(&["sql", "SELECT 1", "--lake", &format!("{lake}/missing")]);
    assert!(err.contains("no lake tables under"), "{err}");
    let err = fails(&["sql", "SELECT 1", "--lake", &lake, "--format", "parquet"]);
    assert!(err.contains("--output"), "{err}");
    // The tables of a service configuration are those under its base_uri.
    let config = dir.path().join("inlet.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"datagen\"\ntables = [\"s.t\"]\n\n[sink]\nbase_uri = {lake:?}\n"
        ),
    )?;
    let count = |args: &[&str]| {
        ok(&[
            &["sql", "SELECT count(*) AS c FROM s.t", "--format", "csv"],
            args,
        ]
        .concat())
    };
    let by_lake = count(&["--lake", &lake]);
    assert_eq!(count(&["--config", &config.display().to_string()]), by_lake);
    assert_eq!(count(&["--table", &format!("s.t={lake}/s/t")]), by_lake);
    assert!(
        by_lake.starts_with("c\n") && by_lake.trim() != "c\n0",
        "{by_lake}"
    );
    // Meta columns stay hidden unless asked for.
    let out = ok(&[
        "sql",
        "SELECT * FROM s.t LIMIT 1",
        "--lake",
        &lake,
        "--format",
        "jsonl",
    ]);
    assert!(out.contains("\"id\"") && !out.contains("_hoodie"), "{out}");
    Ok(())
}

/// Runs `query` over `tables` in-process; its rows in canonical form.
async fn lake_rows(
    tables: Vec<(String, inlet_table::Table)>,
    query: &str,
    read_optimized: bool,
) -> anyhow::Result<Vec<String>> {
    lake_rows_with(tables, query, true, read_optimized).await
}

/// [`lake_rows`], with the meta columns hidden (`meta` false): base files then decode only the
/// columns the query uses.
async fn lake_rows_with(
    tables: Vec<(String, inlet_table::Table)>,
    query: &str,
    meta: bool,
    read_optimized: bool,
) -> anyhow::Result<Vec<String>> {
    use futures::TryStreamExt;
    let lake = inlet_query::sql::Lake::with_options(tables, meta, read_optimized).await?;
    let batches: Vec<arrow::array::RecordBatch> = lake.sql(query).await?.try_collect().await?;
    canonical::rows(&batches, &[])
}

/// Filters that prune partitions, buckets and row groups change no answer: every query over a
/// table's latest state (base-file slices through DataFusion's Parquet scan, slices with logs
/// through inlet's merge) answers as the same query over `table_as_of` its latest instant
/// (inlet's read path alone, checked against DuckDB over hudi-rs above), on random tables with
/// hostile partition values, the default partition, composite keys and merge-on-read logs; and a
/// point query reads fewer objects than a scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_scans_answer_as_the_read_path() -> anyhow::Result<()> {
    use inlet_table::{Table, TableConfig};
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let mut compared = 0;
    for (i, (merge_on_read, hive_style, composite_key)) in [
        (false, false, false),
        (false, true, true),
        (true, false, true),
        (true, true, false),
    ]
    .into_iter()
    .enumerate()
    {
        let shape = Shape {
            merge_on_read,
            event_time: true,
            partitioned: true,
            composite_key,
            buckets: 3,
            hive_style,
        };
        let name = format!("t{i}");
        let model = random_table(&lake, &name, shape, 40 + i as u64).await?;
        let uri = lake.join("s").join(&name).display().to_string();
        let latest = model.history.last().expect("a commit").0.clone();
        let ids: Vec<i64> = model.records.values().map(|r| r.row.id).take(3).collect();
        let parts: Vec<String> = model
            .records
            .values()
            .filter_map(|r| r.row.part.clone())
            .take(3)
            .collect();
        let mut filters = vec![
            "part = ''".to_string(),
            "part IS NULL".to_string(),
            "part = 'Köln'".to_string(),
            "part = '%2F'".to_string(),
            "part IN ('Köln', 'Zürich', '#')".to_string(),
            "part <> 'p0'".to_string(),
            "part > 'a' AND ts > 10".to_string(),
            "part LIKE '%ö%'".to_string(),
            "id = -1".to_string(),
            r#""n-1" > 0 OR part = '~'"#.to_string(),
        ];
        for (id, part) in ids.iter().zip(&parts) {
            filters.push(format!("id = {id}"));
            filters.push(format!("id = {id} AND part = '{part}'"));
            filters.push(format!("{id} = id AND (part = '{part}' OR part IS NULL)"));
            filters.push(format!("part = '{part}'"));
        }
        let tables = || -> anyhow::Result<Vec<(String, Table)>> {
            let runtime = tokio::runtime::Handle::current();
            let table = tokio::task::block_in_place(|| {
                runtime.block_on(Table::open(&uri, TableConfig::default()))
            })?;
            Ok(vec![(format!("s.{name}"), table)])
        };
        for filter in &filters {
            for (select, read_optimized) in [
                ("*", false),
                ("count(*) AS c", false),
                ("id, part", false),
                ("*", true),
            ] {
                let query = |from: &str| format!("SELECT {select} FROM {from} WHERE {filter}");
                let got =
                    lake_rows(tables()?, &query(&format!("s.{name}")), read_optimized).await?;
                let expected = lake_rows(
                    tables()?,
                    &query(&format!("table_as_of('s.{name}', '{latest}')")),
                    read_optimized,
                )
                .await?;
                canonical::assert_same_rows(
                    &got,
                    &expected,
                    &format!("{} (read-optimized: {read_optimized})", query(&name)),
                );
                compared += 1;
            }
            // Without the meta columns, base files decode only what the query uses; the merge
            // still needs the record keys.
            let query = format!("SELECT id, part, ts FROM s.{name} WHERE {filter}");
            let got = lake_rows_with(tables()?, &query, false, false).await?;
            let expected = lake_rows(tables()?, &query, false).await?;
            canonical::assert_same_rows(&got, &expected, &format!("{query} (no meta columns)"));
        }
        // A limit over a pruned scan still counts what the filter selects, at most the limit.
        let limited = lake_rows(
            tables()?,
            &format!("SELECT count(*) AS c FROM (SELECT id FROM s.{name} WHERE ts > 0 LIMIT 3)"),
            false,
        )
        .await?;
        assert!(
            limited == [r#"{"c":3}"#]
                || model
                    .records
                    .values()
                    .filter(|r| r.row.ts > Some(0))
                    .count()
                    < 3,
            "{limited:?}"
        );

        // Pruning reads fewer objects: a point query against a full scan.
        let gets = |query: String| {
            let uri = uri.clone();
            let name = name.clone();
            async move {
                let counts = std::sync::Arc::new(inlet_table::requests::RequestCounts::default());
                let config = TableConfig {
                    request_counts: Some(counts.clone()),
                    ..TableConfig::default()
                };
                let table = Table::open(&uri, config).await?;
                let lake =
                    inlet_query::sql::Lake::new(vec![(format!("s.{name}"), table)], false).await?;
                let before = counts.now();
                use futures::TryStreamExt;
                let _: Vec<arrow::array::RecordBatch> =
                    lake.sql(&query).await?.try_collect().await?;
                anyhow::Ok(counts.now().since(&before).gets)
            }
        };
        if let (Some(id), Some(part)) = (ids.first(), parts.first()) {
            let all = gets(format!("SELECT * FROM s.{name}")).await?;
            let point = gets(format!(
                "SELECT * FROM s.{name} WHERE id = {id} AND part = '{part}'"
            ))
            .await?;
            assert!(
                point < all,
                "{name}: a point query made {point} GETs, a scan {all}"
            );
        }
    }
    assert!(compared > 100, "{compared}");
    Ok(())
}
