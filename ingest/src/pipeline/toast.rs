//! Filling cells the source did not send (PostgreSQL's unchanged TOAST values under the default
//! replica identity) with the row's previous image: the latest earlier row of the same key in
//! the batch (following chains of such updates, and an update that changed the key through the
//! delete of its old key), else the value stored in the lake table.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::cast;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use inlet_table::write::Writer;

use crate::change::{TableId, Unresolved};
use crate::error::{Error, Result};

/// Key strings of the rows of `columns` (one per row).
fn keys(columns: &[ArrayRef]) -> Result<Vec<String>> {
    let options = FormatOptions::default().with_null("\u{0}");
    let formatters = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = columns.first().map_or(0, |c| c.len());
    Ok((0..rows)
        .map(|row| {
            let mut key = String::new();
            for (i, f) in formatters.iter().enumerate() {
                if i > 0 {
                    key.push('\u{1f}');
                }
                key.push_str(&f.value(row).to_string());
            }
            key
        })
        .collect())
}

pub async fn resolve(
    writer: &mut Writer,
    id: &TableId,
    key_columns: &[String],
    batch: RecordBatch,
    deletes: BooleanArray,
    mut unresolved: Vec<Unresolved>,
    consistent_from: u64,
) -> Result<(RecordBatch, BooleanArray)> {
    if unresolved.is_empty() {
        return Ok((batch, deletes));
    }
    unresolved.sort_by_key(|u| (u.row, u.column));
    let key_arrays = key_columns
        .iter()
        .map(|k| {
            batch
                .column_by_name(k)
                .cloned()
                .ok_or_else(|| Error::SchemaChange {
                    table: id.to_string(),
                    reason: format!("key column {k} is missing from the changes"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let row_keys = keys(&key_arrays)?;
    // The previous image of each row with unresolved cells.
    let wanted: HashMap<usize, usize> = unresolved.iter().map(|u| (u.row, u.key_row)).collect();
    let key_rows: HashSet<usize> = wanted.values().copied().collect();
    let mut latest: HashMap<&str, usize> = HashMap::new();
    let mut before_delete: HashMap<usize, Option<usize>> = HashMap::new();
    let mut previous: HashMap<usize, Option<usize>> = HashMap::new();
    for (row, key) in row_keys.iter().enumerate() {
        if deletes.value(row) {
            let prior = latest.remove(key.as_str());
            if key_rows.contains(&row) {
                before_delete.insert(row, prior);
            }
            continue;
        }
        if let Some(&key_row) = wanted.get(&row) {
            let prior = if key_row == row {
                latest.get(key.as_str()).copied()
            } else {
                before_delete.get(&key_row).copied().flatten()
            };
            previous.insert(row, prior);
        }
        latest.insert(key.as_str(), row);
    }
    // Where each unresolved cell's value comes from: a batch row, or the lake row of a key.
    enum Origin {
        Batch(usize),
        Lake(String),
    }
    let mut origin: HashMap<(usize, usize), Origin> = HashMap::new();
    for u in &unresolved {
        let o = match previous.get(&u.row).copied().flatten() {
            Some(prior) => match origin.get(&(prior, u.column)) {
                Some(Origin::Batch(r)) => Origin::Batch(*r),
                Some(Origin::Lake(k)) => Origin::Lake(k.clone()),
                None => Origin::Batch(prior),
            },
            None => Origin::Lake(row_keys[u.key_row].clone()),
        };
        origin.insert((u.row, u.column), o);
    }
    // The rows whose stored versions are needed: the previous image's key, and (replaying over
    // a later snapshot) the row's own key. Only the file groups that can hold them are read.
    let lake_rows: Vec<usize> = unresolved
        .iter()
        .filter(|u| matches!(origin.get(&(u.row, u.column)), Some(Origin::Lake(_))))
        .flat_map(|u| [u.key_row, u.row])
        .collect::<HashSet<usize>>()
        .into_iter()
        .collect();
    let mut lake: Option<(RecordBatch, HashMap<String, usize>)> = None;
    if !lake_rows.is_empty() {
        let table = writer.table().clone();
        let (result, _) = writer
            .lookup(&batch, &lake_rows)
            .await
            .map_err(|e| Error::lake(&table, e))?;
        let stored = arrow::compute::concat_batches(&result.schema, &result.batches)?;
        let stored_keys = key_columns
            .iter()
            .map(|k| {
                stored
                    .column_by_name(k)
                    .map(|c| {
                        let target = batch
                            .column_by_name(k)
                            .map(|b| b.data_type().clone())
                            .unwrap_or_else(|| c.data_type().clone());
                        cast(c, &target)
                    })
                    .transpose()?
                    .ok_or_else(|| Error::SchemaChange {
                        table: id.to_string(),
                        reason: format!("key column {k} is missing from the lake table"),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let index: HashMap<String, usize> = keys(&stored_keys)?
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        lake = Some((stored, index));
    }
    let mut source: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
    // Rows not written (see below).
    let mut ghosts: HashSet<usize> = HashSet::new();
    for (&(row, column), o) in &origin {
        let from = match o {
            Origin::Batch(r) => (0, *r),
            Origin::Lake(key) => {
                let found = lake.as_ref().and_then(|(_, index)| index.get(key)).copied();
                let position = batch
                    .column_by_name(crate::CDC_POSITION)
                    .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>())
                    .map_or(0, |p| p.value(row));
                let found = if found.is_none() && (position as u64) < consistent_from {
                    // Replaying over a snapshot taken later: the previous image may be gone
                    // from it (deleted, or moved to this row's new key, before the snapshot).
                    // The snapshot's version of this row's own key holds the value as of the
                    // snapshot. If that is gone too, the row itself was gone by then: a later
                    // change (its delete, or a move to another key) follows. The row is not
                    // written: with nulls in the lake, a move in a later commit would copy
                    // them to the new key over the snapshot's full row.
                    let own = lake
                        .as_ref()
                        .and_then(|(_, index)| index.get(&row_keys[row]))
                        .copied();
                    match own {
                        Some(r) => Some(r),
                        None => {
                            ghosts.insert(row);
                            continue;
                        }
                    }
                } else {
                    found
                };
                let Some(found) = found else {
                    return Err(Error::ToastUnresolved {
                        table: id.to_string(),
                        column: batch.schema().field(column).name().clone(),
                        key: key.replace('\u{1f}', ", "),
                    });
                };
                (1, found)
            }
        };
        source.insert((row, column), from);
    }
    // Rebuild each column that has unresolved cells.
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let schema = batch.schema();
    let by_column: HashSet<usize> = unresolved.iter().map(|u| u.column).collect();
    for column in by_column {
        let current = batch.column(column);
        let stored: ArrayRef = match &lake {
            Some((stored, _)) => match stored.column_by_name(schema.field(column).name()) {
                Some(c) => cast(c, current.data_type())?,
                None => arrow::array::new_null_array(current.data_type(), stored.num_rows()),
            },
            None => arrow::array::new_null_array(current.data_type(), 0),
        };
        let indices: Vec<(usize, usize)> = (0..batch.num_rows())
            .map(|row| source.get(&(row, column)).copied().unwrap_or((0, row)))
            .collect();
        columns[column] =
            arrow::compute::interleave(&[current.as_ref(), stored.as_ref()], &indices)?;
    }
    let batch = RecordBatch::try_new(schema, columns)?;
    if ghosts.is_empty() {
        return Ok((batch, deletes));
    }
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|row| Some(!ghosts.contains(&row)))
        .collect();
    Ok((
        arrow::compute::filter_record_batch(&batch, &keep)?,
        arrow::compute::filter(&deletes, &keep)?
            .as_boolean()
            .clone(),
    ))
}
