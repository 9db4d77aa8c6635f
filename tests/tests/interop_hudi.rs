//! Independent readers judge our tables: PyPI `hudi` 0.5.0 (hudi-rs) must return exactly what
//! the model says for snapshot, time-travel and incremental queries, and pyarrow and duckdb must
//! read every base file.

use std::path::Path;

use anyhow::Context;
use arrow::array::{Array, AsArray};

use common::{check_against_model, hudi_rs};
use inlet_table::TableConfig;
use inlet_tests::canonical;
use inlet_tests::harness::run_python;
use inlet_tests::model::Shape;
use serde_json::json;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hudi_rs_agrees_with_the_model() -> anyhow::Result<()> {
    let shapes = [
        Shape {
            merge_on_read: false,
            event_time: true,
            partitioned: true,
            composite_key: false,
            buckets: 2,
            hive_style: true,
        },
        Shape {
            merge_on_read: false,
            event_time: false,
            partitioned: false,
            composite_key: false,
            buckets: 1,
            hive_style: true,
        },
        Shape {
            merge_on_read: false,
            event_time: true,
            partitioned: false,
            composite_key: true,
            buckets: 3,
            hive_style: true,
        },
        Shape {
            merge_on_read: false,
            event_time: false,
            partitioned: true,
            composite_key: true,
            buckets: 4,
            hive_style: true,
        },
    ];
    // Each shape as copy-on-write and as merge-on-read.
    let both = shapes.into_iter().flat_map(|s| {
        [
            s,
            Shape {
                merge_on_read: true,
                ..s
            },
        ]
    });
    for (i, shape) in both.enumerate() {
        let dir = tempfile::tempdir()?;
        let uri = dir.path().display().to_string();
        let model =
            check_against_model(&uri, TableConfig::default(), shape, 1000 + i as u64).await?;
        assert!(!model.records.is_empty());
        let table = inlet_table::Table::open(&uri, TableConfig::default()).await?;
        common::compare_with_hudi_rs(&table, &uri, &[]).await?;
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

#[tokio::test]
async fn every_column_type_round_trips_through_our_reader() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let table = common::all_types_table(&dir.path().display().to_string()).await?;
    let result = table.read(&inlet_table::read::Query::Snapshot).await?;
    let read = arrow::compute::concat_batches(&result.schema, &result.batches)?;
    let indices =
        arrow::compute::sort_to_indices(read.column_by_name("id").expect("id"), None, None)?;
    let read = arrow::compute::take_record_batch(&read, &indices)?;
    let input = common::all_types_batch()?;
    for field in input.schema().fields() {
        let expected = input.column_by_name(field.name()).expect("input column");
        let got = read.column_by_name(field.name()).expect("column read back");
        if field.name() == "unsigned" {
            // u64 is stored as decimal(20,0), which holds u64::MAX.
            let got = got.as_primitive::<arrow::datatypes::Decimal128Type>();
            assert_eq!(
                got.data_type(),
                &arrow::datatypes::DataType::Decimal128(20, 0)
            );
            assert_eq!(
                (got.value(0), got.value(1), got.is_null(2)),
                (u64::MAX as i128, 0, true)
            );
            continue;
        }
        assert_eq!(got.data_type(), expected.data_type(), "{}", field.name());
        assert_eq!(got.to_data(), expected.to_data(), "{}", field.name());
    }
    Ok(())
}

/// Apache Spark's own Parquet reader reads every column type of our base files, with the Spark
/// types a Hudi table of this schema has.
#[tokio::test]
async fn spark_reads_every_column_type() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    common::all_types_table(&dir.path().display().to_string()).await?;
    let output = run_python("spark_read.py", &[&dir.path().display().to_string()])?;
    let files: Vec<serde_json::Value> = output
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(files.len(), 1, "{output}");
    let file = &files[0];
    assert_eq!(file["rows"], 3);
    let schema = file["schema"].as_str().unwrap_or_default();
    for column in [
        "_hoodie_commit_time:string",
        "id:bigint",
        "flag:boolean",
        "small:smallint",
        "tiny:tinyint",
        "int:int",
        "f32:float",
        "f64:double",
        "dec:decimal(10,3)",
        "wide_dec:decimal(38,4)",
        "text:string",
        "bytes:binary",
        "day:date",
        "at_utc:timestamp",
        "at_local:timestamp_ntz",
        "list:array<bigint>",
        "record:struct<a:string,b:int>",
        "unsigned:decimal(20,0)",
    ] {
        assert!(
            schema.contains(column),
            "{column} not in Spark schema {schema}"
        );
    }
    let rows: Vec<serde_json::Value> = file["json"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.as_str())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let first = rows
        .iter()
        .find(|r| r["id"] == 1)
        .ok_or_else(|| anyhow::anyhow!("row 1 missing: {rows:?}"))?;
    assert_eq!(first["unsigned"].to_string(), "18446744073709551615");
    assert_eq!(first["dec"].to_string(), "12.345");
    assert_eq!(first["text"], "héllo");
    assert_eq!(first["at_utc"], "2023-11-14T22:13:20.123Z");
    assert_eq!(first["at_local"], "2023-11-14T22:13:20.123");
    assert_eq!(first["list"], serde_json::json!([1, null]));
    assert_eq!(first["record"], serde_json::json!({"a": "x", "b": 1}));
    Ok(())
}

/// Every column type also survives a merge-on-read log block, Parquet or Avro: read back with its
/// exact type by our reader, and by hudi-rs as our reader reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_survives_log_blocks() -> anyhow::Result<()> {
    for format in ["parquet", "avro"] {
        every_column_type_survives_log_blocks_of(format).await?;
    }
    Ok(())
}

async fn every_column_type_survives_log_blocks_of(format: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let uri = dir.path().display().to_string();
    let mut props = inlet_table::TableProperties::new(
        "types",
        inlet_table::TableType::MergeOnRead,
        vec!["id".into()],
    );
    props.buckets = Some(1);
    props.other.insert(
        inlet_table::properties::LOG_BLOCK_FORMAT.to_string(),
        format.to_string(),
    );
    let table = inlet_table::Table::create(&uri, TableConfig::default(), props).await?;
    let batch = common::all_types_batch()?;
    let mut writer = table.writer().await?;
    for _ in 0..2 {
        let changes = inlet_table::write::Changes::upsert(batch.clone());
        writer
            .commit(changes, std::collections::BTreeMap::new())
            .await?;
    }
    writer.close().await?;
    let logs = std::fs::read_dir(dir.path())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".log."))
        .count();
    assert_eq!(logs, 1, "the second write is a log block");
    let log = std::fs::read_dir(dir.path())?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains(".log."))
        .expect("a log file");
    let blocks = inlet_table::file_group::read_log_blocks(&std::fs::read(log.path())?)?;
    let expected = match format {
        "avro" => inlet_table::file_group::BlockType::AvroData,
        _ => inlet_table::file_group::BlockType::ParquetData,
    };
    assert_eq!(blocks[0].block_type(), expected, "{format}");

    let result = table.read(&inlet_table::read::Query::Snapshot).await?;
    let read = arrow::compute::concat_batches(&result.schema, &result.batches)?;
    let indices =
        arrow::compute::sort_to_indices(read.column_by_name("id").expect("id"), None, None)?;
    let read = arrow::compute::take_record_batch(&read, &indices)?;
    for field in batch
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name() != "unsigned")
    {
        let got = read.column_by_name(field.name()).expect("column read back");
        assert_eq!(got.data_type(), field.data_type(), "{}", field.name());
        assert_eq!(
            got.to_data(),
            batch.column_by_name(field.name()).expect("input").to_data(),
            "{format}: {}",
            field.name()
        );
    }
    common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    Ok(())
}

/// Row groups a copy-on-write rewrite copies byte for byte (untouched, >= 16Ki rows) next to
/// row groups it writes anew: hudi-rs agrees with our reader on every query (snapshot, as of
/// each commit, incremental from each), and pyarrow and duckdb read every base file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_row_groups_are_read_by_hudi_rs_pyarrow_and_duckdb() -> anyhow::Result<()> {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use inlet_table::write::{Changes, Operation};
    use inlet_table::{Table, TableProperties, TableType};

    let dir = tempfile::tempdir()?;
    let uri = dir.path().display().to_string();
    let mut props = TableProperties::new("copied", TableType::CopyOnWrite, vec!["id".into()]);
    props.ordering_field = Some("ts".into());
    props.buckets = Some(1);
    let table = Table::create(&uri, TableConfig::default(), props).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
    ]));
    let batch = |ids: Vec<i64>, v: &str, ts: i64| -> anyhow::Result<RecordBatch> {
        let n = ids.len();
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("{v}-{i}-é")),
                )),
                Arc::new(Int64Array::from(vec![ts; n])),
            ],
        )?)
    };
    let n = 40_000i64;
    let mut writer = table.writer().await?;
    // Inserts, more inserts (the first row group is copied), then changes of the second row
    // group only (the first is copied again): an update, a delete and an insert.
    writer
        .commit(
            Changes::upsert(batch((0..n).collect(), "first", 1)?),
            Default::default(),
        )
        .await?;
    writer
        .commit(
            Changes::upsert(batch((n..2 * n).collect(), "second", 2)?),
            Default::default(),
        )
        .await?;
    let last = writer
        .commit(
            Changes {
                batch: batch(vec![n + 5, n + 6, 3 * n], "third", 3)?,
                deletes: Some(BooleanArray::from(vec![false, true, false])),
                operation: Operation::Upsert,
            },
            Default::default(),
        )
        .await?;
    writer.close().await?;
    let stats: Vec<_> = last.metadata.write_stats().collect();
    let path = dir.path().join(stats[0].path.as_deref().context("a path")?);
    let file = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&path)?)?;
    let groups: Vec<i64> = parquet::file::reader::FileReader::metadata(&file)
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    // The copied first row group; the second (40000 - 1 deleted) with the insert.
    assert_eq!(groups, vec![n, n], "{path:?}");
    let compared = common::compare_with_hudi_rs(&table, &uri, &[]).await?;
    assert_eq!(
        compared, 7,
        "snapshot, and as of and from each of 3 commits"
    );
    let rows = table.read(&inlet_table::read::Query::Snapshot).await?;
    assert_eq!(rows.num_rows() as i64, 2 * n);
    check_base_files(dir.path()).await?;
    Ok(())
}
