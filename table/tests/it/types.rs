//! Every supported column type survives a write and a read.

use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use inlet_table::Result;
use inlet_table::read::Query;

use crate::util::*;

fn all_types() -> RecordBatch {
    let struct_fields = Fields::from(vec![
        Field::new("a", DataType::Utf8, true),
        Field::new("b", DataType::Int32, true),
    ]);
    let list = ListArray::from_iter_primitive::<arrow::datatypes::Int64Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
        Some(vec![]),
    ]);
    let strukt = StructArray::new(
        struct_fields.clone(),
        vec![
            Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
            Arc::new(Int32Array::from(vec![1, 2, 3])),
        ],
        Some(vec![true, true, false].into()),
    );
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        (
            "tiny",
            Arc::new(Int8Array::from(vec![Some(-8), Some(7), None])),
        ),
        (
            "small",
            Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(i16::MAX), None])),
        ),
        (
            "int",
            Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(i32::MAX)])),
        ),
        (
            "big",
            Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(1e300), Some(-2.5), None])),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(12_345), None, Some(-1)])
                    .with_precision_and_scale(10, 3)
                    .expect("valid"),
            ),
        ),
        (
            "wide_dec",
            Arc::new(
                Decimal128Array::from(vec![Some(i128::MAX / 10_000), None, Some(0)])
                    .with_precision_and_scale(38, 4)
                    .expect("valid"),
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
                Some(b"".as_ref()),
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
        ("list", Arc::new(list)),
        ("record", Arc::new(strukt)),
        (
            "unsigned",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None])),
        ),
        (
            "millis",
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_700_000_000_123),
                None,
                Some(5),
            ])),
        ),
        (
            "large",
            Arc::new(LargeStringArray::from(vec![Some("l"), None, Some("m")])),
        ),
    ];
    RecordBatch::try_from_iter(columns).expect("valid batch")
}

#[tokio::test]
async fn every_type_round_trips() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], None, &[], 1)).await?;
    let input = all_types();
    upsert(&table, input.clone(), None).await?;
    let result = table.read(&Query::Snapshot).await?;
    let read = arrow::compute::concat_batches(&result.schema, &result.batches)?;
    let read = sort_by_id(&read)?;

    let same_type = [
        "id", "flag", "tiny", "small", "int", "big", "f32", "f64", "dec", "wide_dec", "text",
        "bytes", "day", "at_utc", "at_local", "list", "record",
    ];
    for name in same_type {
        let expected = input.column_by_name(name).expect("input column");
        let got = read
            .column_by_name(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(got.data_type(), expected.data_type(), "{name}");
        assert_eq!(got.to_data(), expected.to_data(), "{name}");
    }
    // Mapped types: u64 → decimal(20,0), ms → µs, large strings → strings.
    let unsigned = read
        .column_by_name("unsigned")
        .expect("unsigned")
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(unsigned.data_type(), &DataType::Decimal128(20, 0));
    assert_eq!(unsigned.value(0), u64::MAX as i128);
    let millis = read.column_by_name("millis").expect("millis");
    assert_eq!(
        millis.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        millis
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .value(0),
        1_700_000_000_123_000
    );
    assert_eq!(
        read.column_by_name("large")
            .expect("large")
            .as_string::<i32>()
            .value(2),
        "m"
    );

    // The commit's Avro schema names every column.
    let schema = read_schema_json(&dir)?;
    for name in input.schema().fields().iter().map(|f| f.name()) {
        assert!(
            schema.contains(&format!("\"name\":\"{name}\"")),
            "{name} missing from {schema}"
        );
    }
    Ok(())
}

fn sort_by_id(batch: &RecordBatch) -> Result<RecordBatch> {
    let indices =
        arrow::compute::sort_to_indices(batch.column_by_name("id").expect("id"), None, None)?;
    let columns = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &indices, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn read_schema_json(dir: &tempfile::TempDir) -> Result<String> {
    let commit = files(dir)
        .into_iter()
        .find(|f| f.ends_with(".commit"))
        .expect("a completed commit");
    let text = std::fs::read_to_string(dir.path().join(commit)).expect("readable");
    let metadata: serde_json::Value = serde_json::from_str(&text).expect("json");
    Ok(metadata["extraMetadata"]["schema"]
        .as_str()
        .expect("schema")
        .to_string())
}
