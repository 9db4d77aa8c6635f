//! Adding columns and widening types on write; refusing every other change.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use inlet_table::read::Query;
use inlet_table::{Error, Result};

use crate::util::*;

fn batch(columns: Vec<(&str, arrow::array::ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("valid batch")
}

#[tokio::test]
async fn added_columns_and_widened_types_read_back_for_old_files() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    // Two buckets: the second write touches only one, so the other keeps an old-schema file.
    let table = local_table(&dir, props(&["id"], None, &[], 2)).await?;
    let ids: Vec<i64> = (0..10).collect();
    upsert(
        &table,
        batch(vec![
            ("id", Arc::new(Int64Array::from(ids.clone()))),
            (
                "n",
                Arc::new(Int32Array::from((0..10).collect::<Vec<i32>>())),
            ),
            ("x", Arc::new(Float32Array::from(vec![0.5f32; 10]))),
        ]),
        None,
    )
    .await?;
    upsert(
        &table,
        batch(vec![
            ("id", Arc::new(Int64Array::from(vec![0]))),
            ("n", Arc::new(Int64Array::from(vec![5_000_000_000]))),
            ("x", Arc::new(arrow::array::Float64Array::from(vec![0.25]))),
            ("added", Arc::new(StringArray::from(vec!["new"]))),
        ]),
        None,
    )
    .await?;
    let schema = table.schema().await?.expect("schema");
    let types: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(
        types,
        [
            ("id".to_string(), DataType::Int64),
            ("n".to_string(), DataType::Int64),
            ("x".to_string(), DataType::Float64),
            ("added".to_string(), DataType::Utf8)
        ]
    );
    let result = table.read(&Query::Snapshot).await?;
    let read = arrow::compute::concat_batches(&result.schema, &result.batches)?;
    assert_eq!(read.num_rows(), 10);
    let (id, n, x, added) = (
        read.column_by_name("id")
            .expect("id")
            .as_primitive::<Int64Type>(),
        read.column_by_name("n")
            .expect("n")
            .as_primitive::<Int64Type>(),
        read.column_by_name("x")
            .expect("x")
            .as_primitive::<Float64Type>(),
        read.column_by_name("added")
            .expect("added")
            .as_string::<i32>(),
    );
    for row in 0..10 {
        match id.value(row) {
            0 => assert_eq!(
                (n.value(row), x.value(row), added.value(row)),
                (5_000_000_000, 0.25, "new")
            ),
            i => {
                assert_eq!((n.value(row), x.value(row)), (i, 0.5));
                assert!(added.is_null(row));
            }
        }
    }
    // A later write that leaves columns out keeps them (null in its rows).
    upsert(
        &table,
        batch(vec![("id", Arc::new(Int64Array::from(vec![42])))]),
        None,
    )
    .await?;
    let after = table.schema().await?.expect("schema");
    assert_eq!(after.fields().len(), 4);
    Ok(())
}

#[tokio::test]
async fn other_type_changes_are_refused_with_both_types_named() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], None, &[], 1)).await?;
    upsert(
        &table,
        batch(vec![
            ("id", Arc::new(Int64Array::from(vec![1]))),
            ("s", Arc::new(StringArray::from(vec!["a"]))),
        ]),
        None,
    )
    .await?;
    let before = files(&dir);
    let err = upsert(
        &table,
        batch(vec![
            ("id", Arc::new(Int64Array::from(vec![2]))),
            ("s", Arc::new(Int32Array::from(vec![7]))),
        ]),
        None,
    )
    .await
    .expect_err("utf8 to int32");
    assert!(
        matches!(&err, Error::SchemaConflict { column, .. } if column == "s"),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("Utf8") && text.contains("Int32"), "{text}");
    // Narrowing is refused too.
    let err = upsert(
        &table,
        batch(vec![("id", Arc::new(Int32Array::from(vec![2])))]),
        None,
    )
    .await;
    assert!(
        err.is_ok(),
        "a narrower write into a wider column is widened, not refused: {err:?}"
    );
    let before_len = before.len();
    assert!(files(&dir).len() > before_len);
    Ok(())
}
