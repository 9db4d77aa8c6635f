//! Record keys and partition paths of rows, in Hudi's string forms: a simple key is the value
//! itself, a complex key is `f1:v1,f2:v2`; a partition path joins the partition values with `/`,
//! as `field=value` when hive-style, with `__HIVE_DEFAULT_PARTITION__` for null or empty values.

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};
use crate::properties::TableProperties;

pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";
const NULL_KEY_PART: &str = "__null__";
const EMPTY_KEY_PART: &str = "__empty__";

/// Derives record keys and partition paths from a table's key and partition fields.
#[derive(Debug, Clone)]
pub struct KeyGenerator {
    record_key_fields: Vec<String>,
    partition_fields: Vec<String>,
    hive_style: bool,
    complex: bool,
}

impl KeyGenerator {
    pub fn new(properties: &TableProperties) -> Self {
        KeyGenerator {
            record_key_fields: properties.record_key_fields.clone(),
            partition_fields: properties.partition_fields.clone(),
            hive_style: properties.hive_style_partitioning,
            complex: properties.complex_keys(),
        }
    }

    pub fn record_key_fields(&self) -> &[String] {
        &self.record_key_fields
    }

    pub fn partition_fields(&self) -> &[String] {
        &self.partition_fields
    }

    /// The record key of every row. A null (or empty) key value is an error naming the column and
    /// row, except inside a complex key where Hudi spells it `__null__` (`__empty__`), as long as
    /// at least one part is present.
    pub fn record_keys(&self, batch: &RecordBatch) -> Result<StringArray> {
        let columns = self.columns(batch, &self.record_key_fields, "record key")?;
        let formatters = formatters(&columns)?;
        let mut keys = Vec::with_capacity(batch.num_rows());
        let mut key = String::new();
        for row in 0..batch.num_rows() {
            key.clear();
            let mut present = 0;
            for (i, (column, formatter)) in columns.iter().zip(&formatters).enumerate() {
                let field = &self.record_key_fields[i];
                let value = if column.is_null(row) {
                    None
                } else {
                    Some(formatter.value(row).to_string())
                };
                if !self.complex {
                    match value {
                        Some(v) if !v.is_empty() => key.push_str(&v),
                        _ => {
                            return Err(Error::MissingRecordKey {
                                column: field.clone(),
                                row,
                            });
                        }
                    }
                    continue;
                }
                if i > 0 {
                    key.push(',');
                }
                key.push_str(field);
                key.push(':');
                match value {
                    None => key.push_str(NULL_KEY_PART),
                    Some(v) if v.is_empty() => key.push_str(EMPTY_KEY_PART),
                    Some(v) => {
                        present += 1;
                        key.push_str(&v);
                    }
                }
            }
            if self.complex && present == 0 {
                return Err(Error::MissingRecordKey {
                    column: self.record_key_fields.join(","),
                    row,
                });
            }
            keys.push(key.clone());
        }
        Ok(StringArray::from(keys))
    }

    /// The partition path of every row (`""` for a non-partitioned table).
    pub fn partition_paths(&self, batch: &RecordBatch) -> Result<StringArray> {
        if self.partition_fields.is_empty() {
            return Ok(StringArray::from(vec![""; batch.num_rows()]));
        }
        let columns = self.columns(batch, &self.partition_fields, "partition")?;
        let formatters = formatters(&columns)?;
        let mut paths = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut path = String::new();
            for (i, (column, formatter)) in columns.iter().zip(&formatters).enumerate() {
                let field = &self.partition_fields[i];
                let value = if column.is_null(row) {
                    String::new()
                } else {
                    formatter.value(row).to_string()
                };
                let value = if value.is_empty() {
                    DEFAULT_PARTITION.to_string()
                } else {
                    value
                };
                if value.contains('/') || value == "." || value == ".." {
                    return Err(Error::Partition {
                        column: field.clone(),
                        reason: format!(
                            "value {value:?} at row {row} cannot be a partition directory"
                        ),
                    });
                }
                if i > 0 {
                    path.push('/');
                }
                if self.hive_style {
                    path.push_str(field);
                    path.push('=');
                }
                path.push_str(&value);
            }
            paths.push(path);
        }
        Ok(StringArray::from(paths))
    }

    fn columns(&self, batch: &RecordBatch, fields: &[String], what: &str) -> Result<Vec<ArrayRef>> {
        fields
            .iter()
            .map(|name| {
                let column = batch.column_by_name(name).ok_or_else(|| Error::Schema {
                    column: name.clone(),
                    reason: format!("{what} column is missing from the written rows"),
                })?;
                if matches!(
                    column.data_type(),
                    DataType::List(_) | DataType::Struct(_) | DataType::Map(..)
                ) {
                    return Err(Error::Schema {
                        column: name.clone(),
                        reason: format!(
                            "a {what} column must have a scalar type, not {}",
                            column.data_type()
                        ),
                    });
                }
                Ok(column.clone())
            })
            .collect()
    }
}

fn formatters(columns: &[ArrayRef]) -> Result<Vec<ArrayFormatter<'_>>> {
    // Dates as 2024-01-31, timestamps as ISO 8601, decimals with their scale (12.34500).
    static OPTIONS: FormatOptions<'static> = FormatOptions::new();
    columns
        .iter()
        .map(|c| Ok(ArrayFormatter::try_new(c.as_ref(), &OPTIONS)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::TableType;
    use arrow::array::{Date32Array, Int32Array};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(2), None])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("")])),
                Arc::new(Date32Array::from(vec![Some(19_723), None, Some(0)])),
            ],
        )
        .expect("valid batch")
    }

    fn generator(keys: &[&str], partitions: &[&str], hive: bool) -> KeyGenerator {
        let mut props = TableProperties::new(
            "t",
            TableType::CopyOnWrite,
            keys.iter().map(|s| s.to_string()).collect(),
        );
        props.partition_fields = partitions.iter().map(|s| s.to_string()).collect();
        props.hive_style_partitioning = hive;
        KeyGenerator::new(&props)
    }

    #[test]
    fn simple_and_complex_keys() -> Result<()> {
        let simple = generator(&["name"], &[], false);
        let err = simple.record_keys(&batch()).expect_err("null simple key");
        assert_eq!(
            err.to_string(),
            "record key column \"name\" is null at row 1"
        );

        let complex = generator(&["id", "name"], &[], false);
        let keys = complex.record_keys(&batch().slice(0, 2))?;
        let keys: Vec<_> = keys.iter().flatten().collect();
        assert_eq!(keys, ["id:1,name:a", "id:2,name:__null__"]);
        // Like Hudi, a complex key needs at least one part that is neither null nor empty.
        let err = complex
            .record_keys(&batch())
            .expect_err("all parts null or empty");
        assert!(
            matches!(err, Error::MissingRecordKey { row: 2, .. }),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn hive_and_plain_partition_paths() -> Result<()> {
        let hive = generator(&["id"], &["day", "name"], true);
        let paths: Vec<_> = hive
            .partition_paths(&batch())?
            .iter()
            .flatten()
            .map(String::from)
            .collect();
        assert_eq!(
            paths,
            [
                "day=2024-01-01/name=a",
                "day=__HIVE_DEFAULT_PARTITION__/name=__HIVE_DEFAULT_PARTITION__",
                "day=1970-01-01/name=__HIVE_DEFAULT_PARTITION__"
            ]
        );
        let plain = generator(&["id"], &["id"], false);
        let paths: Vec<_> = plain
            .partition_paths(&batch())?
            .iter()
            .flatten()
            .map(String::from)
            .collect();
        assert_eq!(paths, ["1", "2", DEFAULT_PARTITION]);
        Ok(())
    }
}
