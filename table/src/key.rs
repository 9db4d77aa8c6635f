//! Record keys and partition paths of rows, in Hudi's string forms: a simple key is the value
//! itself, a complex key is `f1:v1,f2:v2`; a partition path joins the partition values with `/`,
//! as `field=value` when hive-style, with `__HIVE_DEFAULT_PARTITION__` for null or empty values.

use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use arrow::buffer::OffsetBuffer;
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

    /// The record key of every row. A null or empty key value is an error naming the column and
    /// row, except inside a complex key where Hudi spells it `__null__` (`__empty__`), as long as
    /// at least one part is present. Two different rows never get the same complex key: a value
    /// that would make the key ambiguous (one that contains `,b:` before column `b`, or that is
    /// literally `__null__` or `__empty__`) is refused, naming the row.
    pub fn record_keys(&self, batch: &RecordBatch) -> Result<StringArray> {
        let columns = self.columns(batch, &self.record_key_fields, "record key")?;
        if let [column] = columns.as_slice()
            && !self.complex
            && column.data_type().is_integer()
        {
            return integer_keys(column, &self.record_key_fields[0]);
        }
        let formatters = formatters(&columns)?;
        // The separator in front of each next field: a value containing it is ambiguous.
        let separators: Vec<String> = self
            .record_key_fields
            .iter()
            .skip(1)
            .map(|f| format!(",{f}:"))
            .collect();
        let mut keys = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 16);
        let mut key = String::new();
        let mut value = String::new();
        for row in 0..batch.num_rows() {
            key.clear();
            let mut present = 0;
            for (i, (column, formatter)) in columns.iter().zip(&formatters).enumerate() {
                let field = &self.record_key_fields[i];
                value.clear();
                let null = column.is_null(row);
                if !null {
                    write!(value, "{}", formatter.value(row)).map_err(|e| Error::Record {
                        row,
                        reason: format!("record key column {field:?}: {e}"),
                    })?;
                }
                if !self.complex {
                    if null || value.is_empty() {
                        let what = if null { "null" } else { "empty" };
                        return Err(Error::Record {
                            row,
                            reason: format!(
                                "record key column {field:?} is {what} (a Hudi record key needs a value)"
                            ),
                        });
                    }
                    key.push_str(&value);
                    continue;
                }
                if !null && (value == NULL_KEY_PART || value == EMPTY_KEY_PART) {
                    return Err(ambiguous(
                        row,
                        field,
                        &value,
                        "is how Hudi's key format spells a missing value",
                    ));
                }
                if let Some(separator) = separators.get(i).filter(|s| value.contains(s.as_str())) {
                    return Err(ambiguous(
                        row,
                        field,
                        &value,
                        &format!("contains {separator:?}, which separates the next key column"),
                    ));
                }
                if i > 0 {
                    key.push(',');
                }
                key.push_str(field);
                key.push(':');
                if null {
                    key.push_str(NULL_KEY_PART);
                } else if value.is_empty() {
                    key.push_str(EMPTY_KEY_PART);
                } else {
                    present += 1;
                    key.push_str(&value);
                }
            }
            if self.complex && present == 0 {
                return Err(Error::Record {
                    row,
                    reason: format!(
                        "record key columns {} are all null or empty",
                        self.record_key_fields.join(",")
                    ),
                });
            }
            keys.append_value(&key);
        }
        Ok(keys.finish())
    }

    /// The partition path of every row (`""` for a non-partitioned table). Values are used as
    /// directory names as they are (Hudi's default, `partitionpath.urlencode=false`); values that
    /// cannot be one directory name, or that would collide with a name readers reserve, are
    /// refused with an error naming the row.
    pub fn partition_paths(&self, batch: &RecordBatch) -> Result<StringArray> {
        if self.partition_fields.is_empty() {
            let empty = OffsetBuffer::new_zeroed(batch.num_rows());
            return Ok(StringArray::new(empty, Default::default(), None));
        }
        let columns = self.columns(batch, &self.partition_fields, "partition")?;
        let formatters = formatters(&columns)?;
        let mut paths = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 16);
        let mut path = String::new();
        let mut value = String::new();
        for row in 0..batch.num_rows() {
            path.clear();
            for (i, (column, formatter)) in columns.iter().zip(&formatters).enumerate() {
                let field = &self.partition_fields[i];
                value.clear();
                if !column.is_null(row) {
                    write!(value, "{}", formatter.value(row)).map_err(|e| Error::Record {
                        row,
                        reason: format!("partition column {field:?}: {e}"),
                    })?;
                }
                if value.is_empty() {
                    value.push_str(DEFAULT_PARTITION);
                }
                if i > 0 {
                    path.push('/');
                }
                let segment_start = path.len();
                if self.hive_style {
                    path.push_str(field);
                    path.push('=');
                }
                path.push_str(&value);
                if let Some(problem) = segment_problem(&path[segment_start..], i == 0) {
                    return Err(Error::Record {
                        row,
                        reason: format!(
                            "partition column {field:?} holds {value:?}, which {problem}{}",
                            if reserved(&value, i == 0) && !self.hive_style {
                                " (hive-style partitioning, --hive-style, allows it)"
                            } else {
                                ""
                            }
                        ),
                    });
                }
            }
            paths.append_value(&path);
        }
        Ok(paths.finish())
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

/// Longest directory name most file systems (and so Hudi's readers) allow, in bytes.
const MAX_SEGMENT_BYTES: usize = 255;

/// Directory names that readers take for something else than partitions: `.hoodie` at any level
/// (Java's file-system listing skips it everywhere; our own listing skips `.hoodie*` at the top,
/// and `.hoodie_partition_metadata` is the partition metafile), and at the top of the table the
/// folders hudi-rs skips (`metadata`, `_delta_log`).
fn reserved(segment: &str, first: bool) -> bool {
    segment.starts_with(".hoodie") || (first && (segment == "metadata" || segment == "_delta_log"))
}

/// Why a partition directory name cannot be used, if it cannot.
fn segment_problem(segment: &str, first: bool) -> Option<&'static str> {
    if segment.contains('/') {
        Some("contains '/' (a partition value must be one directory name)")
    } else if segment.chars().any(|c| c.is_control()) {
        Some("contains a control character, which cannot be in a directory name")
    } else if segment == "." || segment == ".." {
        Some("is not a directory name")
    } else if segment.len() > MAX_SEGMENT_BYTES {
        Some("is longer than a directory name may be (255 bytes)")
    } else if reserved(segment, first) {
        Some("is a name reserved at the top of a Hudi table")
    } else {
        None
    }
}

fn ambiguous(row: usize, field: &str, value: &str, why: &str) -> Error {
    Error::Record {
        row,
        reason: format!(
            "record key column {field:?} holds {value:?}, which {why}: in Hudi's key format \
             (`a:1,b:2`) two different keys would become one, so the row is refused"
        ),
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

/// The keys of a simple key on one integer column (the usual case: a database's id), in the
/// same decimal text as the general path, by the cast kernel rather than a formatter call per
/// row (several times faster at a million rows).
fn integer_keys(column: &ArrayRef, field: &str) -> Result<StringArray> {
    if let Some(row) = (0..column.len()).find(|&r| column.is_null(r)) {
        return Err(Error::Record {
            row,
            reason: format!(
                "record key column {field:?} is null (a Hudi record key needs a value)"
            ),
        });
    }
    let text = arrow::compute::cast(column, &DataType::Utf8)?;
    Ok(text.as_string::<i32>().clone())
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
    fn integer_keys_are_the_formatters_text() -> Result<()> {
        use arrow::array::{Int8Array, Int16Array, Int64Array, UInt64Array};
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from(vec![i8::MIN, -1, 0, 7, i8::MAX])),
            Arc::new(Int16Array::from(vec![i16::MIN, -10, 0, 100, i16::MAX])),
            Arc::new(Int32Array::from(vec![i32::MIN, -1, 0, 1_000_000, i32::MAX])),
            Arc::new(Int64Array::from(vec![i64::MIN, -42, 0, 1 << 40, i64::MAX])),
            Arc::new(UInt64Array::from(vec![0, 1, 9, 10, u64::MAX])),
        ];
        for column in columns {
            let batch = RecordBatch::try_from_iter(vec![("id", column.clone())])?;
            let keys = generator(&["id"], &[], false).record_keys(&batch)?;
            let formatter = &formatters(std::slice::from_ref(&column))?[0];
            let expected: Vec<String> = (0..column.len())
                .map(|r| formatter.value(r).to_string())
                .collect();
            let got: Vec<&str> = keys.iter().flatten().collect();
            assert_eq!(got, expected, "{}", column.data_type());
        }
        let nulls = RecordBatch::try_from_iter(vec![(
            "id",
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        )])?;
        let err = generator(&["id"], &[], false)
            .record_keys(&nulls)
            .expect_err("null key");
        assert_eq!(
            err.to_string(),
            "row 2 of the commit: record key column \"id\" is null (a Hudi record key needs a value)"
        );
        Ok(())
    }

    #[test]
    fn simple_and_complex_keys() -> Result<()> {
        let simple = generator(&["name"], &[], false);
        let err = simple.record_keys(&batch()).expect_err("null simple key");
        assert_eq!(
            err.to_string(),
            "row 2 of the commit: record key column \"name\" is null (a Hudi record key needs a value)"
        );

        let complex = generator(&["id", "name"], &[], false);
        let keys = complex.record_keys(&batch().slice(0, 2))?;
        let keys: Vec<_> = keys.iter().flatten().collect();
        assert_eq!(keys, ["id:1,name:a", "id:2,name:__null__"]);
        // Like Hudi, a complex key needs at least one part that is neither null nor empty.
        let err = complex
            .record_keys(&batch())
            .expect_err("all parts null or empty");
        assert!(matches!(err, Error::Record { row: 2, .. }), "{err}");
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

    fn one_column(name: &str, values: Vec<Option<&str>>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new(name, DataType::Utf8, true)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(StringArray::from(values))])
            .expect("valid batch")
    }

    #[test]
    fn ambiguous_complex_keys_are_refused() -> Result<()> {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let keygen = generator(&["a", "b"], &[], false);
        let rows = |a: Vec<Option<&str>>, b: Vec<Option<&str>>| {
            RecordBatch::try_new(
                Arc::new(schema.clone()),
                vec![
                    Arc::new(StringArray::from(a)),
                    Arc::new(StringArray::from(b)),
                ],
            )
            .expect("valid batch")
        };
        // The pair: both would be "a:x,b:y,b:z".
        let err = keygen
            .record_keys(&rows(
                vec![Some("x"), Some("x,b:y")],
                vec![Some("y,b:z"), Some("z")],
            ))
            .expect_err("ambiguous");
        assert!(
            err.to_string()
                .starts_with("row 2 of the commit: record key column \"a\" holds \"x,b:y\""),
            "{err}"
        );
        // A value spelled like a missing one would collide with it.
        for spelled in ["__null__", "__empty__"] {
            let err = keygen
                .record_keys(&rows(vec![Some(spelled)], vec![Some("1")]))
                .expect_err("spelled like a missing value");
            assert!(matches!(err, Error::Record { row: 0, .. }), "{err}");
        }
        // Separators that cannot make two keys one are fine, also in the last column.
        let keys = keygen.record_keys(&rows(
            vec![Some("x,c:1"), Some("a:b"), Some("x,b"), Some("")],
            vec![Some("y,b:z"), Some(",a:"), Some("z"), Some("q")],
        ))?;
        let keys: Vec<_> = keys.iter().flatten().collect();
        assert_eq!(
            keys,
            [
                "a:x,c:1,b:y,b:z",
                "a:a:b,b:,a:",
                "a:x,b,b:z",
                "a:__empty__,b:q"
            ]
        );
        // A simple key is the value itself; an empty one is refused as empty, not null.
        let err = generator(&["k"], &[], false)
            .record_keys(&one_column("k", vec![Some("a"), Some("")]))
            .expect_err("empty simple key");
        assert_eq!(
            err.to_string(),
            "row 2 of the commit: record key column \"k\" is empty (a Hudi record key needs a value)"
        );
        Ok(())
    }

    #[test]
    fn partition_values_become_directory_names_or_are_refused() -> Result<()> {
        let plain = generator(&["p"], &["p"], false);
        let hive = generator(&["p"], &["p"], true);
        let fine = [
            "Köln", "Zürich", "%2F", "a%", "#", "?", "*", "~", "x\\y", "_x", ".x", "a b",
        ];
        let paths =
            plain.partition_paths(&one_column("p", fine.iter().map(|v| Some(*v)).collect()))?;
        assert_eq!(paths.iter().flatten().collect::<Vec<_>>(), fine);
        let long = "é".repeat(128);
        for bad in [
            ".hoodie",
            ".hoodie_x",
            "metadata",
            "_delta_log",
            "a/b",
            ".",
            "..",
            "a\nb",
            "\u{7f}",
            long.as_str(),
        ] {
            let err = plain
                .partition_paths(&one_column("p", vec![Some("ok"), Some(bad)]))
                .expect_err(bad);
            assert!(
                matches!(err, Error::Record { row: 1, .. }),
                "{bad:?}: {err}"
            );
        }
        // Hive style names every directory `p=…`: reserved names are fine there.
        let paths = hive.partition_paths(&one_column(
            "p",
            vec![Some(".hoodie"), Some("metadata"), Some("..")],
        ))?;
        assert_eq!(
            paths.iter().flatten().collect::<Vec<_>>(),
            ["p=.hoodie", "p=metadata", "p=.."]
        );
        assert!(
            hive.partition_paths(&one_column("p", vec![Some("a/b")]))
                .is_err()
        );
        // Below the top, only `.hoodie` is reserved.
        let two = generator(&["a"], &["a", "b"], false);
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(StringArray::from(vec!["metadata"])),
            ],
        )?;
        assert_eq!(two.partition_paths(&batch)?.value(0), "x/metadata");
        let batch = RecordBatch::try_new(
            batch.schema(),
            vec![
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(StringArray::from(vec![".hoodie"])),
            ],
        )?;
        assert!(two.partition_paths(&batch).is_err());
        Ok(())
    }
}
