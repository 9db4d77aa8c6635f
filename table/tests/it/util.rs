use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use inlet_table::read::Query;
use inlet_table::write::{Changes, Commit, Operation};
use inlet_table::{Result, Table, TableConfig, TableProperties, TableType};

pub fn props(
    keys: &[&str],
    ordering: Option<&str>,
    partitions: &[&str],
    buckets: u32,
) -> TableProperties {
    let mut props = TableProperties::new(
        "t",
        TableType::CopyOnWrite,
        keys.iter().map(|s| s.to_string()).collect(),
    );
    props.ordering_field = ordering.map(str::to_string);
    props.partition_fields = partitions.iter().map(|s| s.to_string()).collect();
    props.hive_style_partitioning = true;
    props.buckets = Some(buckets);
    props
}

pub async fn local_table(dir: &tempfile::TempDir, props: TableProperties) -> Result<Table> {
    Table::create(
        &dir.path().display().to_string(),
        TableConfig::default(),
        props,
    )
    .await
}

/// Rows of (id, part, ts, value).
pub fn rows(rows: &[(i64, &str, Option<i64>, Option<&str>)]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("part", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("value", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid batch")
}

pub async fn upsert(
    table: &Table,
    batch: RecordBatch,
    deletes: Option<Vec<bool>>,
) -> Result<Commit> {
    let mut writer = table.writer().await?;
    let changes = Changes {
        batch,
        deletes: deletes.map(Into::into),
        operation: Operation::Upsert,
    };
    let commit = writer.commit(changes, BTreeMap::new()).await;
    writer.close().await?;
    commit
}

/// The rows of a read as `column=value` maps keyed by record key, for comparisons.
pub async fn read_map(
    table: &Table,
    query: &Query,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let result = table.read(query).await?;
    let mut out = BTreeMap::new();
    for batch in &result.batches {
        let keys = batch
            .column_by_name("_hoodie_record_key")
            .expect("meta column")
            .as_string::<i32>();
        for row in 0..batch.num_rows() {
            let mut values = BTreeMap::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                let text = if column.is_null(row) {
                    "null".to_string()
                } else {
                    arrow::util::display::array_value_to_string(column, row).expect("displayable")
                };
                values.insert(field.name().clone(), text);
            }
            assert!(
                out.insert(keys.value(row).to_string(), values).is_none(),
                "duplicate key {}",
                keys.value(row)
            );
        }
    }
    Ok(out)
}

/// `column` of every row, by record key.
pub async fn column(
    table: &Table,
    query: &Query,
    column: &str,
) -> Result<BTreeMap<String, String>> {
    Ok(read_map(table, query)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v[column].clone()))
        .collect())
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every file under the table directory, relative, sorted.
pub fn files(dir: &tempfile::TempDir) -> Vec<String> {
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .expect("inside")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir.path(), dir.path(), &mut out);
    out.sort();
    out
}
