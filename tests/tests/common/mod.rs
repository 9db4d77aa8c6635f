//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Fields};
use inlet_table::write::Changes;
use inlet_table::{Table, TableConfig, TableProperties, TableType};
use inlet_tests::model::Shape;

pub fn properties(shape: &Shape) -> TableProperties {
    let mut props =
        TableProperties::new("model", TableType::CopyOnWrite, shape.record_key_fields());
    props.ordering_field = shape.ordering_field();
    props.partition_fields = shape.partition_fields();
    props.hive_style_partitioning = true;
    props.buckets = Some(shape.buckets);
    props
}

/// A table with one column of every supported type (3 rows, with nulls).
pub async fn all_types_table(uri: &str) -> anyhow::Result<Table> {
    let mut props = TableProperties::new("types", TableType::CopyOnWrite, vec!["id".into()]);
    props.buckets = Some(1);
    let table = Table::create(uri, TableConfig::default(), props).await?;
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
    ];
    let batch = RecordBatch::try_from_iter(columns)?;
    let mut writer = table.writer().await?;
    writer
        .commit(Changes::upsert(batch), BTreeMap::new())
        .await?;
    writer.close().await?;
    Ok(table)
}
