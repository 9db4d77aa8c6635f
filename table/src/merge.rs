//! Record merging: the versions of a record, in write order, reduce to the one that wins under
//! the table's ordering. Copy-on-write commits use it to merge changes into a file group;
//! merge-on-read reads (and, later, compaction) use it to fold a slice's log blocks into its base
//! file. Deletes follow Hudi: a delete whose ordering value is 0 (natural order), missing, or of
//! another type than the ordering column always applies; otherwise the stored record survives
//! only if its ordering value is greater.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{cast, interleave};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};

use crate::error::Result;
use crate::file_group::log_file::DECIMAL_SCALE;
use crate::file_group::{DeleteRecord, OrderingValue};
use crate::schema::{self, RECORD_KEY};

/// How two versions of a record are ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordering {
    /// The later write wins.
    CommitTime,
    /// The greater value of this column wins; a tie, or a missing value on either side, falls
    /// back to the later write. A stale change (smaller value than the stored one) is dropped.
    EventTime(String),
}

/// Comparable encodings of an ordering column (`None` for nulls).
pub fn ordering_rows(converter: &RowConverter, column: &ArrayRef) -> Result<Vec<Option<OwnedRow>>> {
    let rows = converter.convert_columns(std::slice::from_ref(column))?;
    Ok((0..column.len())
        .map(|i| {
            if column.is_null(i) {
                None
            } else {
                Some(rows.row(i).owned())
            }
        })
        .collect())
}

/// Whether a newer version with ordering `newer` replaces one with ordering `older`.
pub fn supersedes(newer: Option<&OwnedRow>, older: Option<&OwnedRow>) -> bool {
    match (newer, older) {
        (Some(n), Some(o)) => n >= o,
        _ => true,
    }
}

/// A delete ordering value as a one-row array, `None` for natural order (null or integer 0).
fn ordering_value_array(value: &OrderingValue) -> Option<ArrayRef> {
    Some(match value {
        OrderingValue::Null | OrderingValue::Int(0) => return None,
        OrderingValue::Boolean(v) => Arc::new(BooleanArray::from(vec![*v])),
        OrderingValue::Int(v) => Arc::new(Int32Array::from(vec![*v])),
        OrderingValue::Long(v) | OrderingValue::TimeMicros(v) => {
            Arc::new(Int64Array::from(vec![*v]))
        }
        OrderingValue::Float(v) => Arc::new(Float32Array::from(vec![*v])),
        OrderingValue::Double(v) => Arc::new(Float64Array::from(vec![*v])),
        OrderingValue::Bytes(v) => Arc::new(BinaryArray::from(vec![v.as_slice()])),
        OrderingValue::String(v) => Arc::new(StringArray::from(vec![v.as_str()])),
        OrderingValue::Date(v) => Arc::new(Date32Array::from(vec![*v])),
        OrderingValue::Decimal(v) => Arc::new(
            Decimal128Array::from(vec![*v])
                .with_precision_and_scale(38, DECIMAL_SCALE as i8)
                .ok()?,
        ),
        OrderingValue::TimestampMicros(v) => Arc::new(TimestampMicrosecondArray::from(vec![*v])),
    })
}

/// Folds versions of records, keyed by `_hoodie_record_key`, into the winners. Rows without a
/// record key (tables written without meta fields) are kept as they are, like Hudi does.
#[derive(Debug)]
pub struct RecordMerger {
    schema: SchemaRef,
    ordering_column: Option<(usize, RowConverter)>,
    sources: Vec<RecordBatch>,
    /// Winning (source, row) of each record, `None` once deleted, in first-seen order.
    slots: Vec<Option<(usize, usize)>>,
    slot_ordering: Vec<Option<OwnedRow>>,
    index: HashMap<String, usize>,
}

impl RecordMerger {
    /// A merger producing rows of `schema` (meta columns then data columns).
    pub fn new(schema: SchemaRef, ordering: &Ordering) -> Result<Self> {
        let ordering_column = match ordering {
            Ordering::EventTime(field) => match schema.index_of(field) {
                Ok(i) => Some((
                    i,
                    RowConverter::new(vec![SortField::new(schema.field(i).data_type().clone())])?,
                )),
                Err(_) => None,
            },
            Ordering::CommitTime => None,
        };
        Ok(RecordMerger {
            schema,
            ordering_column,
            sources: Vec::new(),
            slots: Vec::new(),
            slot_ordering: Vec::new(),
            index: HashMap::new(),
        })
    }

    /// Adds versions written after every version added so far.
    pub fn add_records(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = schema::align(batch, &self.schema)?;
        let source = self.sources.len();
        let ordering = match &self.ordering_column {
            Some((i, converter)) => Some(ordering_rows(converter, batch.column(*i))?),
            None => None,
        };
        let keys = batch
            .column_by_name(RECORD_KEY)
            .map(|c| c.as_string::<i32>().clone());
        for row in 0..batch.num_rows() {
            let order = ordering.as_ref().and_then(|o| o[row].clone());
            let key = keys
                .as_ref()
                .filter(|k| k.is_valid(row))
                .map(|k| k.value(row));
            let Some(key) = key else {
                self.slots.push(Some((source, row)));
                self.slot_ordering.push(order);
                continue;
            };
            match self.index.get(key) {
                Some(&slot) => {
                    let alive = self.slots[slot].is_some();
                    if !alive || supersedes(order.as_ref(), self.slot_ordering[slot].as_ref()) {
                        self.slots[slot] = Some((source, row));
                        self.slot_ordering[slot] = order;
                    }
                }
                None => {
                    self.index.insert(key.to_string(), self.slots.len());
                    self.slots.push(Some((source, row)));
                    self.slot_ordering.push(order);
                }
            }
        }
        self.sources.push(batch);
        Ok(())
    }

    /// Applies deletes written after every version added so far.
    pub fn delete(&mut self, records: &[DeleteRecord]) -> Result<()> {
        for record in records {
            let Some(slot) = record
                .record_key
                .as_deref()
                .and_then(|k| self.index.get(k).copied())
            else {
                continue;
            };
            if self.slots[slot].is_none() {
                continue;
            }
            let applies = match (
                &self.ordering_column,
                ordering_value_array(&record.ordering_value),
            ) {
                (Some((i, converter)), Some(value)) => {
                    match cast(&value, self.schema.field(*i).data_type()) {
                        Ok(value) if value.null_count() == 0 => {
                            let delete_order = ordering_rows(converter, &value)?;
                            supersedes(delete_order[0].as_ref(), self.slot_ordering[slot].as_ref())
                        }
                        // Of another type than the ordering column: Hudi lets the delete win.
                        _ => true,
                    }
                }
                _ => true,
            };
            if applies {
                self.slots[slot] = None;
            }
        }
        Ok(())
    }

    /// The winning records, in the order their keys were first seen.
    pub fn finish(self) -> Result<Vec<RecordBatch>> {
        let picks: Vec<(usize, usize)> = self.slots.into_iter().flatten().collect();
        let mut out = Vec::new();
        for chunk in picks.chunks(8192) {
            let columns = (0..self.schema.fields().len())
                .map(|c| {
                    let arrays: Vec<&dyn Array> =
                        self.sources.iter().map(|b| b.column(c).as_ref()).collect();
                    interleave(&arrays, chunk)
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        Ok(out)
    }
}
