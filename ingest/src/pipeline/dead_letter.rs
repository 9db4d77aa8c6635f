//! Rows that cannot be written, and the dead-letter table they go to with `[recovery] kind =
//! "dead-letter"`.
//!
//! A row cannot be written when a cell has no representation in its lake column (numeric
//! `NaN`, date `infinity`: [`Rejected`]), when a text or binary value is longer than
//! `max_value_bytes`, when a record key column is null (the row would have no identity), or when
//! its table's columns changed in a way the lake table cannot follow. [`screen`] takes such rows
//! out of a batch; the pipeline then stops the table (`stop`) or writes them here.
//!
//! The dead-letter table is a copy-on-write Hudi table at `<base_uri>/_dead_letter`, keyed by
//! `id` (source table, position, operation and a hash of the row, so a replay after a crash
//! writes the same records again instead of duplicates). Columns: `id`, `pipeline`,
//! `source_table`, `position`, `commit_ts`, `op`, `reason` and `row` (the row as JSON, with each
//! rejected cell as the source sent it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

use crate::change::{RowBatch, Unresolved};
use crate::error::Result;
use crate::{CDC_COMMIT_TS, CDC_OP, CDC_POSITION};

/// The directory of the dead-letter table under a sink's base URI.
pub const DIRECTORY: &str = "_dead_letter";

/// A row that cannot be written, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: String,
    pub source_table: String,
    pub position: Option<i64>,
    pub commit_ts: Option<i64>,
    pub op: String,
    pub reason: String,
    /// The row as JSON.
    pub row: String,
}

/// The rows of a batch that can be written, and those that cannot.
#[derive(Debug)]
pub struct Screened {
    pub keep: Option<RowBatch>,
    pub dead: Vec<DeadLetter>,
}

/// Why the table takes no rows at all (its columns changed in a way it cannot follow).
pub type Conflict<'a> = Option<&'a str>;

/// Takes the rows that cannot be written out of `rows`. `key` are the record key columns.
pub fn screen(
    rows: RowBatch,
    key: &[String],
    max_value_bytes: usize,
    conflict: Conflict<'_>,
) -> Result<Screened> {
    let batch = &rows.batch;
    let n = batch.num_rows();
    // Row → reasons (several cells of one row may be at fault), and raw values to show.
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut raw: BTreeMap<usize, Vec<(String, Value)>> = BTreeMap::new();
    if let Some(conflict) = conflict {
        for row in 0..n {
            reasons.entry(row).or_default().push(conflict.to_string());
        }
    }
    // A delete needs only its key: other columns of its old row are not written.
    let key_only = |row: usize, column: &str| {
        rows.deletes.is_valid(row) && rows.deletes.value(row) && !key.iter().any(|k| k == column)
    };
    for r in rows.rejected.iter().filter(|r| !key_only(r.row, &r.column)) {
        reasons
            .entry(r.row)
            .or_default()
            .push(format!("column {}: {}", r.column, r.reason));
        raw.entry(r.row)
            .or_default()
            .push((r.column.clone(), Value::String(r.value.clone())));
    }
    let schema = batch.schema();
    for (i, field) in schema.fields().iter().enumerate() {
        let lengths = value_lengths(batch.column(i).as_ref());
        let Some(lengths) = lengths else { continue };
        for (row, len) in lengths.into_iter().enumerate() {
            if len > max_value_bytes && !key_only(row, field.name()) {
                reasons.entry(row).or_default().push(format!(
                    "column {}: a value of {len} bytes is over recovery.max_value_bytes ({max_value_bytes})",
                    field.name()
                ));
                raw.entry(row).or_default().push((
                    field.name().clone(),
                    Value::String(format!("<{len} bytes, not shown>")),
                ));
            }
        }
    }
    for k in key {
        let Some(column) = batch.column_by_name(k) else {
            continue;
        };
        for row in 0..n {
            if column.is_null(row) {
                reasons.entry(row).or_default().push(format!(
                    "record key column {k} is null: the row has no identity in the lake table"
                ));
            }
        }
    }
    // A row whose unchanged values come from a rejected row cannot be completed either.
    for u in &rows.unresolved {
        if u.key_row != u.row && reasons.contains_key(&u.key_row) && !reasons.contains_key(&u.row) {
            reasons.entry(u.row).or_default().push(
                "its unchanged values come from the row of its old key, which cannot be written"
                    .to_string(),
            );
        }
    }
    if reasons.is_empty() {
        return Ok(Screened {
            keep: Some(rows),
            dead: Vec::new(),
        });
    }

    let mut dead = reasons
        .iter()
        .map(|(&row, why)| dead_letter(&rows, row, why.join("; "), raw.get(&row)))
        .collect::<Result<Vec<_>>>()?;
    // Identical rows at one position (snapshot rows, a multi-row insert) stay distinct records.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for letter in &mut dead {
        let n = seen.entry(letter.id.clone()).or_default();
        if *n > 0 {
            letter.id = format!("{}#{n}", letter.id);
        }
        *n += 1;
    }
    let mask = BooleanArray::from(
        (0..n)
            .map(|i| !reasons.contains_key(&i))
            .collect::<Vec<_>>(),
    );
    if mask.true_count() == 0 {
        return Ok(Screened { keep: None, dead });
    }
    let removed: BTreeSet<usize> = reasons.keys().copied().collect();
    // New index of each kept row: its index less the removed rows before it.
    let shift = |i: usize| i - removed.range(..i).count();
    let unresolved = rows
        .unresolved
        .iter()
        .filter(|u| !removed.contains(&u.row))
        .map(|u| Unresolved {
            row: shift(u.row),
            column: u.column,
            key_row: shift(u.key_row),
        })
        .collect();
    let deletes = arrow::compute::filter(&rows.deletes, &mask)?;
    let keep = RowBatch {
        table: rows.table.clone(),
        batch: filter_record_batch(batch, &mask)?,
        deletes: deletes.as_boolean().clone(),
        unresolved,
        rejected: Vec::new(),
        inside: rows.inside,
    };
    Ok(Screened {
        keep: Some(keep),
        dead,
    })
}

/// Byte lengths of the values of a text or binary column (`None` for other types).
fn value_lengths(column: &dyn Array) -> Option<Vec<usize>> {
    let lengths = |offsets: &[i32]| offsets.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
    let long = |offsets: &[i64]| offsets.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
    match column.data_type() {
        DataType::Utf8 => Some(lengths(column.as_string::<i32>().value_offsets())),
        DataType::Binary => Some(lengths(column.as_binary::<i32>().value_offsets())),
        DataType::LargeUtf8 => Some(long(column.as_string::<i64>().value_offsets())),
        DataType::LargeBinary => Some(long(column.as_binary::<i64>().value_offsets())),
        _ => None,
    }
}

/// The dead letter of one row.
fn dead_letter(
    rows: &RowBatch,
    row: usize,
    reason: String,
    raw: Option<&Vec<(String, Value)>>,
) -> Result<DeadLetter> {
    let batch = &rows.batch;
    let data: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| ![CDC_OP, CDC_POSITION, CDC_COMMIT_TS].contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let slice = batch.project(&data)?.slice(row, 1);
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    writer.write(&slice)?;
    writer.finish()?;
    let mut value: Value = serde_json::from_slice(&writer.into_inner())
        .ok()
        .and_then(|v: Value| v.as_array().and_then(|a| a.first().cloned()))
        .unwrap_or(Value::Object(Default::default()));
    if let (Some(object), Some(raw)) = (value.as_object_mut(), raw) {
        for (column, text) in raw {
            object.insert(column.clone(), text.clone());
        }
    }
    let text = value.to_string();
    let op = batch
        .column_by_name(CDC_OP)
        .and_then(|c| c.as_string_opt::<i32>().map(|c| c.value(row).to_string()))
        .unwrap_or_default();
    let position = batch
        .column_by_name(CDC_POSITION)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>())
        .and_then(|c| c.is_valid(row).then(|| c.value(row)));
    let commit_ts = batch
        .column_by_name(CDC_COMMIT_TS)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>())
        .and_then(|c| c.is_valid(row).then(|| c.value(row)));
    let table = rows.table.to_string();
    Ok(DeadLetter {
        id: format!(
            "{table}|{}|{op}|{:016x}",
            position.unwrap_or(0),
            fnv1a(text.as_bytes())
        ),
        source_table: table,
        position,
        commit_ts,
        op,
        reason,
        row: text,
    })
}

/// FNV-1a, 64 bits: a hash that is the same in every build (record ids must survive restarts).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The dead-letter table's columns.
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("source_table", DataType::Utf8, false),
        Field::new("position", DataType::Int64, true),
        Field::new("commit_ts", ts.clone(), true),
        Field::new("op", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("row", DataType::Utf8, false),
        Field::new("rejected_at", ts, false),
    ]))
}

/// Dead letters as a batch of the dead-letter table.
pub fn to_batch(pipeline: &str, letters: &[DeadLetter]) -> Result<RecordBatch> {
    let now = chrono::Utc::now().timestamp_micros();
    let strings = |f: fn(&DeadLetter) -> &str| {
        Arc::new(StringArray::from_iter_values(letters.iter().map(f))) as Arc<dyn Array>
    };
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            strings(|d| &d.id),
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|_| pipeline),
            )),
            strings(|d| &d.source_table),
            Arc::new(Int64Array::from_iter(letters.iter().map(|d| d.position))),
            Arc::new(
                TimestampMicrosecondArray::from_iter(letters.iter().map(|d| d.commit_ts))
                    .with_timezone("UTC"),
            ),
            strings(|d| &d.op),
            strings(|d| &d.reason),
            strings(|d| &d.row),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(letters.iter().map(|_| now))
                    .with_timezone("UTC"),
            ),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Rejected, TableId};

    fn rows() -> RowBatch {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)])) as Arc<dyn Array>,
            ),
            (
                "t",
                Arc::new(StringArray::from(vec!["a", "bbbbbbbbbb", "c", "d"])) as _,
            ),
            (
                CDC_OP,
                Arc::new(StringArray::from(vec!["c", "u", "c", "d"])) as _,
            ),
            (
                CDC_POSITION,
                Arc::new(Int64Array::from(vec![10, 11, 12, 13])) as _,
            ),
        ])
        .unwrap();
        RowBatch {
            table: TableId::new("s", "t"),
            batch,
            deletes: BooleanArray::from(vec![false, false, false, true]),
            unresolved: vec![Unresolved {
                row: 3,
                column: 1,
                key_row: 3,
            }],
            rejected: vec![Rejected {
                row: 0,
                column: "t".into(),
                value: "NaN".into(),
                reason: "no representation".into(),
            }],
            inside: None,
        }
    }

    #[test]
    fn each_kind_of_bad_row_is_taken_out_with_its_reason() {
        let s = screen(rows(), &["id".into()], 5, None).unwrap();
        let reasons: Vec<(Option<i64>, &str)> = s
            .dead
            .iter()
            .map(|d| (d.position, d.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].1.contains("column t: no representation"));
        assert!(
            reasons[1]
                .1
                .contains("10 bytes is over recovery.max_value_bytes (5)")
        );
        assert!(reasons[2].1.contains("record key column id is null"));
        // The raw value is shown instead of the null the batch holds.
        assert_eq!(s.dead[0].row, r#"{"id":1,"t":"NaN"}"#);
        assert_eq!(s.dead[1].row, r#"{"id":2,"t":"<10 bytes, not shown>"}"#);
        let keep = s.keep.unwrap();
        assert_eq!(keep.batch.num_rows(), 1);
        assert!(keep.deletes.value(0));
        assert_eq!(
            keep.unresolved,
            vec![Unresolved {
                row: 0,
                column: 1,
                key_row: 0
            }]
        );
        // Ids are stable (replays write the same records) and distinct.
        let again = screen(rows(), &["id".into()], 5, None).unwrap();
        assert_eq!(again.dead, s.dead);
        let ids: BTreeSet<&str> = s.dead.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn deletes_are_judged_by_their_key_and_identical_rows_stay_distinct() {
        let mut batch = rows();
        batch.deletes = BooleanArray::from(vec![true, true, false, true]);
        let s = screen(batch, &["id".into()], 5, None).unwrap();
        // Rows 0 and 1 are deletes: their NaN and long value are in columns not written.
        assert_eq!(s.dead.len(), 1, "{:?}", s.dead);
        assert!(s.dead[0].reason.contains("record key column id is null"));
        let two = RowBatch {
            rejected: vec![
                Rejected {
                    row: 0,
                    column: "t".into(),
                    value: "NaN".into(),
                    reason: "r".into(),
                },
                Rejected {
                    row: 1,
                    column: "t".into(),
                    value: "NaN".into(),
                    reason: "r".into(),
                },
            ],
            ..same_rows()
        };
        let s = screen(two, &[], 100, None).unwrap();
        assert_eq!(s.dead.len(), 2);
        assert_ne!(s.dead[0].id, s.dead[1].id);
    }

    /// Two identical rows at one position.
    fn same_rows() -> RowBatch {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "t",
                Arc::new(StringArray::from(vec!["a", "a"])) as Arc<dyn Array>,
            ),
            (CDC_OP, Arc::new(StringArray::from(vec!["r", "r"])) as _),
            (CDC_POSITION, Arc::new(Int64Array::from(vec![0, 0])) as _),
        ])
        .unwrap();
        RowBatch {
            table: TableId::new("s", "t"),
            batch,
            deletes: BooleanArray::from(vec![false, false]),
            unresolved: Vec::new(),
            rejected: Vec::new(),
            inside: None,
        }
    }

    #[test]
    fn a_conflict_takes_every_row_and_clean_rows_pass() {
        let s = screen(rows(), &["id".into()], 100, Some("column t changed type")).unwrap();
        assert!(s.keep.is_none());
        assert_eq!(s.dead.len(), 4);
        let mut clean = rows();
        clean.rejected.clear();
        let s = screen(clean.clone(), &[], 100, None).unwrap();
        assert!(s.dead.is_empty());
        assert_eq!(s.keep.unwrap().batch.num_rows(), 4);
    }
}
