//! Merging incoming changes into one file group (copy-on-write): stored rows that a change
//! supersedes are replaced or deleted in place, untouched rows are copied with their
//! `_hoodie_commit_time`/`_hoodie_commit_seqno`, new keys are appended. Pure: no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::interleave;
use arrow::datatypes::SchemaRef;

use super::plan::{Plan, ordering_converter, ordering_rows, supersedes};
use crate::error::Result;
use crate::schema::{self, COMMIT_SEQNO, COMMIT_TIME, RECORD_KEY};
use crate::timeline::InstantTime;

/// The merged contents of a file group and what changed.
#[derive(Debug)]
pub struct Merged {
    /// Meta columns then data columns, ready to write.
    pub batch: RecordBatch,
    pub inserts: usize,
    pub updates: usize,
    pub deletes: usize,
}

/// Inputs that stay the same for every file group of a commit.
#[derive(Debug)]
pub struct MergeContext {
    pub instant: InstantTime,
    /// Incoming rows, aligned to `data_schema`.
    pub incoming: RecordBatch,
    pub plan: Plan,
    pub data_schema: SchemaRef,
    /// The event-time ordering column, if any.
    pub ordering_field: Option<String>,
}

/// Merges the incoming `rows` into `stored` (meta + data columns, aligned to the table schema, or
/// `None` for a new file group). Returns `None` when nothing changes (stale or no-op changes).
pub fn merge(
    ctx: &MergeContext,
    stored: Option<&RecordBatch>,
    rows: &[usize],
    partition: &str,
    file_name: &str,
    task: usize,
) -> Result<Option<Merged>> {
    let plan = &ctx.plan;
    let stored_keys: Option<&StringArray> = stored
        .and_then(|b| b.column_by_name(RECORD_KEY))
        .map(|c| c.as_string::<i32>());
    let index: HashMap<&str, usize> = stored_keys
        .map(|keys| {
            keys.iter()
                .enumerate()
                .filter_map(|(i, k)| k.map(|k| (k, i)))
                .collect()
        })
        .unwrap_or_default();
    let stored_ordering = match (stored, ctx.ordering_field.as_deref()) {
        (Some(batch), Some(field)) if plan.ordering.is_some() => {
            match batch.column_by_name(field) {
                Some(column) => Some(ordering_rows(&ordering_converter(column)?, column)?),
                None => None,
            }
        }
        _ => None,
    };

    let stored_len = stored.map_or(0, |b| b.num_rows());
    // For each stored row: None = keep, Some(None) = delete, Some(Some(r)) = replace by row r.
    let mut fate: Vec<Option<Option<usize>>> = vec![None; stored_len];
    let mut inserts = Vec::new();
    let (mut updates, mut deletes) = (0, 0);
    for &row in rows {
        let is_delete = plan.deletes.value(row);
        match index.get(plan.keys.value(row)) {
            Some(&i) => {
                let newer = plan.ordering.as_ref().and_then(|o| o[row].as_ref());
                let older = stored_ordering.as_ref().and_then(|o| o[i].as_ref());
                if !supersedes(newer, older) {
                    continue;
                }
                if is_delete {
                    deletes += 1;
                    fate[i] = Some(None);
                } else {
                    updates += 1;
                    fate[i] = Some(Some(row));
                }
            }
            None if !is_delete => inserts.push(row),
            None => {}
        }
    }
    if updates == 0 && deletes == 0 && inserts.is_empty() {
        return Ok(None);
    }

    // (source, row): source 0 = stored, 1 = incoming.
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(stored_len + inserts.len());
    for (i, f) in fate.iter().enumerate() {
        match f {
            None => picks.push((0, i)),
            Some(Some(row)) => picks.push((1, *row)),
            Some(None) => {}
        }
    }
    picks.extend(inserts.iter().map(|&row| (1, row)));

    let mut columns: Vec<ArrayRef> = Vec::with_capacity(5 + ctx.data_schema.fields().len());
    let stored_meta = |name: &str| {
        stored
            .and_then(|b| b.column_by_name(name))
            .map(|c| c.as_string::<i32>())
    };
    let (old_times, old_seqnos) = (stored_meta(COMMIT_TIME), stored_meta(COMMIT_SEQNO));
    let instant = ctx.instant.as_str();
    let mut new_records = 0usize;
    let mut times = Vec::with_capacity(picks.len());
    let mut seqnos = Vec::with_capacity(picks.len());
    let mut keys = Vec::with_capacity(picks.len());
    for &(source, row) in &picks {
        if source == 0 {
            times.push(old_times.and_then(|a| a.is_valid(row).then(|| a.value(row).to_string())));
            seqnos.push(old_seqnos.and_then(|a| a.is_valid(row).then(|| a.value(row).to_string())));
            keys.push(stored_keys.map(|k| k.value(row).to_string()));
        } else {
            times.push(Some(instant.to_string()));
            seqnos.push(Some(format!("{instant}_{task}_{new_records}")));
            new_records += 1;
            keys.push(Some(plan.keys.value(row).to_string()));
        }
    }
    columns.push(Arc::new(StringArray::from(times)));
    columns.push(Arc::new(StringArray::from(seqnos)));
    columns.push(Arc::new(StringArray::from(keys)));
    columns.push(Arc::new(StringArray::from(vec![partition; picks.len()])));
    columns.push(Arc::new(StringArray::from(vec![file_name; picks.len()])));
    for field in ctx.data_schema.fields() {
        let incoming = ctx.incoming.column_by_name(field.name()).cloned();
        let stored_column = stored.and_then(|b| b.column_by_name(field.name())).cloned();
        let sources: Vec<ArrayRef> = [stored_column, incoming]
            .into_iter()
            .map(|c| c.unwrap_or_else(|| arrow::array::new_null_array(field.data_type(), 0)))
            .collect();
        let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
        columns.push(interleave(&refs, &picks)?);
    }
    let batch = RecordBatch::try_new(schema::with_meta_columns(&ctx.data_schema), columns)?;
    Ok(Some(Merged {
        batch,
        inserts: inserts.len(),
        updates,
        deletes,
    }))
}
