//! Record merging: the versions of a record reduce to the one that wins under the table's
//! ordering, with Hudi's rules (checked against hudi-rs): a record without an ordering value
//! orders as the zero of the column's type; on a tie the later write wins; a delete is a tombstone that keeps its ordering value, except a
//! delete in natural order (ordering value missing or 0, or of another type than the ordering
//! column), which always wins, is not replaced by a later ordered delete, and which any later
//! record beats. Changes written after a base file
//! are folded among themselves first, and only the result meets the base record. Copy-on-write
//! commits use this to merge a batch into a file group; merge-on-read reads use it to fold a
//! slice's log blocks into its base file.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{cast, interleave};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, Row, RowConverter, Rows, SortField};

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

/// Comparable encodings of an ordering column, in one buffer (no allocation per row). A record
/// without an ordering value orders as the zero of the column's type, as in Hudi.
#[derive(Debug)]
pub struct OrderingValues {
    converter: Arc<RowConverter>,
    /// Encoded at the first comparison: in most batches no row is ever compared (keys written
    /// once, stored rows that no change touches), and encoding a million was a fifth of
    /// planning a bulk insert.
    rows: OnceLock<Rows>,
    /// The zero of the column's type, for nulls (`None` for types without one).
    zero: Option<Rows>,
    column: ArrayRef,
}

impl OrderingValues {
    pub fn new(converter: &Arc<RowConverter>, column: &ArrayRef) -> Result<Self> {
        // Encoding no rows checks the column's type against the converter's fields: the only
        // way encoding can fail.
        converter.convert_columns(&[column.slice(0, 0)])?;
        let zero = zero_of(column.data_type())
            .map(|zero| converter.convert_columns(&[zero]))
            .transpose()?;
        Ok(OrderingValues {
            converter: converter.clone(),
            rows: OnceLock::new(),
            zero,
            column: column.clone(),
        })
    }

    /// The ordering value of row `i` (the zero of the type when null).
    pub fn get(&self, i: usize) -> Option<Row<'_>> {
        if self.column.is_null(i) {
            return self.zero.as_ref().map(|z| z.row(0));
        }
        let rows = self.rows.get_or_init(|| {
            self.converter
                .convert_columns(std::slice::from_ref(&self.column))
                .expect("the column's type was checked in OrderingValues::new")
        });
        Some(rows.row(i))
    }

    /// Whether row `i` has no ordering value.
    pub fn is_null(&self, i: usize) -> bool {
        self.column.is_null(i)
    }
}

/// A one-row array holding the zero (0, false, empty string or bytes) of a type, if it has one.
fn zero_of(data_type: &arrow::datatypes::DataType) -> Option<ArrayRef> {
    use arrow::datatypes::DataType;
    match data_type {
        DataType::Utf8 => Some(Arc::new(StringArray::from(vec![""]))),
        DataType::Binary => Some(Arc::new(BinaryArray::from(vec![&b""[..]]))),
        _ => cast(
            &(Arc::new(Int64Array::from(vec![0])) as ArrayRef),
            data_type,
        )
        .ok()
        .filter(|a| a.null_count() == 0),
    }
}

/// Whether a newer version with ordering `newer` replaces one with ordering `older` (a missing
/// value is the smallest; ties go to the newer).
pub fn supersedes(newer: Option<Row<'_>>, older: Option<Row<'_>>) -> bool {
    match (newer, older) {
        (Some(n), Some(o)) => n >= o,
        (None, Some(_)) => false,
        _ => true,
    }
}

/// One version of a record: a record or a delete, with its ordering value (`None` when missing;
/// for a delete, natural order).
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    pub delete: bool,
    pub ordering: Option<Row<'a>>,
}

/// Whether a newer version wins over the current one.
pub fn wins(newer: Version<'_>, current: Version<'_>) -> bool {
    if newer.delete {
        // A delete in natural order stays deleted in natural order: a later ordered delete does
        // not replace it (so any later record still beats it), as in hudi-rs.
        let natural_tombstone = current.delete && current.ordering.is_none();
        newer.ordering.is_none()
            || (!natural_tombstone && supersedes(newer.ordering, current.ordering))
    } else {
        (current.delete && current.ordering.is_none())
            || supersedes(newer.ordering, current.ordering)
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

/// Where a record's winning version comes from.
#[derive(Debug, Clone)]
enum State {
    Record { source: usize, row: usize },
    Deleted { ordering: Option<OwnedRow> },
}

/// Folds a file slice into its records: base records first ([`RecordMerger::add_base`]), then the
/// log blocks in order ([`RecordMerger::add_records`], [`RecordMerger::delete`]). Keyed by
/// `_hoodie_record_key`; rows without a record key (tables written without meta fields) are kept
/// as they are, as Hudi does.
#[derive(Debug)]
pub struct RecordMerger {
    schema: SchemaRef,
    ordering_column: Option<(usize, Arc<RowConverter>)>,
    sources: Vec<RecordBatch>,
    /// The ordering values of each source.
    orderings: Vec<Option<OrderingValues>>,
    /// The record keys of each source.
    keys: Vec<Option<StringArray>>,
    /// Base records by key, and rows without a key, in order: (source, row).
    base: Vec<(usize, usize)>,
    /// Positions in `base` by record key.
    base_index: HashTable<usize>,
    /// The fold of the log versions of each key, in first-seen order.
    logs: Vec<(KeyRef, State)>,
    /// Positions in `logs` by record key.
    log_index: HashTable<usize>,
    hasher: RandomState,
}

/// Where a record key is: in a source batch, or (delete records) owned.
#[derive(Debug, Clone)]
enum KeyRef {
    Row { source: usize, row: usize },
    Owned(String),
}

/// The key of a keyed row of a source.
fn key_at(keys: &[Option<StringArray>], source: usize, row: usize) -> &str {
    keys[source].as_ref().map_or("", |k| k.value(row))
}

fn key_of<'a>(keys: &'a [Option<StringArray>], key: &'a KeyRef) -> &'a str {
    match key {
        KeyRef::Row { source, row } => key_at(keys, *source, *row),
        KeyRef::Owned(key) => key,
    }
}

impl RecordMerger {
    /// A merger producing rows of `schema` (meta columns then data columns).
    pub fn new(schema: SchemaRef, ordering: &Ordering) -> Result<Self> {
        let ordering_column = match ordering {
            Ordering::EventTime(field) => match schema.index_of(field) {
                Ok(i) => Some((
                    i,
                    Arc::new(RowConverter::new(vec![SortField::new(
                        schema.field(i).data_type().clone(),
                    )])?),
                )),
                Err(_) => None,
            },
            Ordering::CommitTime => None,
        };
        Ok(RecordMerger {
            schema,
            ordering_column,
            sources: Vec::new(),
            orderings: Vec::new(),
            keys: Vec::new(),
            base: Vec::new(),
            base_index: HashTable::new(),
            logs: Vec::new(),
            log_index: HashTable::new(),
            hasher: RandomState::default(),
        })
    }

    /// Takes a batch in: its source number and record keys.
    fn prepare(&mut self, batch: &RecordBatch) -> Result<(usize, Option<StringArray>)> {
        let source = self.sources.len();
        let batch = schema::align(batch, &self.schema)?;
        let ordering = match &self.ordering_column {
            Some((i, converter)) => Some(OrderingValues::new(converter, batch.column(*i))?),
            None => None,
        };
        let keys = batch
            .column_by_name(RECORD_KEY)
            .map(|c| c.as_string::<i32>().clone());
        self.sources.push(batch);
        self.orderings.push(ordering);
        self.keys.push(keys.clone());
        Ok((source, keys))
    }

    fn ordering(&self, source: usize, row: usize) -> Option<Row<'_>> {
        self.orderings[source].as_ref().and_then(|o| o.get(row))
    }

    fn version<'a>(&'a self, state: &'a State) -> Version<'a> {
        match state {
            State::Record { source, row } => Version {
                delete: false,
                ordering: self.ordering(*source, *row),
            },
            State::Deleted { ordering } => Version {
                delete: true,
                ordering: ordering.as_ref().map(|o| o.row()),
            },
        }
    }

    /// Adds the records of the slice's base file.
    pub fn add_base(&mut self, batch: &RecordBatch) -> Result<()> {
        let (source, keys) = self.prepare(batch)?;
        for row in 0..self.sources[source].num_rows() {
            if let Some(key) = keys
                .as_ref()
                .filter(|k| k.is_valid(row))
                .map(|k| k.value(row))
            {
                let (hash, position) = (self.hasher.hash_one(key), self.base.len());
                let (keys, base, hasher) = (&self.keys, &self.base, &self.hasher);
                let key_of_base = |i: usize| key_at(keys, base[i].0, base[i].1);
                match self.base_index.entry(
                    hash,
                    |&i| key_of_base(i) == key,
                    |&i| hasher.hash_one(key_of_base(i)),
                ) {
                    Entry::Occupied(mut e) => *e.get_mut() = position,
                    Entry::Vacant(e) => {
                        e.insert(position);
                    }
                }
            }
            self.base.push((source, row));
        }
        Ok(())
    }

    fn fold(&mut self, key: KeyRef, state: State) {
        let (keys, logs, hasher) = (&self.keys, &self.logs, &self.hasher);
        let name = key_of(keys, &key);
        let found = self
            .log_index
            .find(hasher.hash_one(name), |&i| key_of(keys, &logs[i].0) == name)
            .copied();
        match found {
            Some(i) => {
                if wins(self.version(&state), self.version(&self.logs[i].1)) {
                    self.logs[i].1 = state;
                }
            }
            None => {
                let hash = hasher.hash_one(name);
                let position = self.logs.len();
                self.log_index.insert_unique(hash, position, |&i| {
                    hasher.hash_one(key_of(keys, &logs[i].0))
                });
                self.logs.push((key, state));
            }
        }
    }

    /// Adds log records written after every version added so far.
    pub fn add_records(&mut self, batch: &RecordBatch) -> Result<()> {
        let (source, keys) = self.prepare(batch)?;
        for row in 0..self.sources[source].num_rows() {
            match keys
                .as_ref()
                .filter(|k| k.is_valid(row))
                .map(|k| k.value(row))
            {
                Some(_) => self.fold(KeyRef::Row { source, row }, State::Record { source, row }),
                None => self.base.push((source, row)),
            }
        }
        Ok(())
    }

    /// Applies log deletes written after every version added so far.
    pub fn delete(&mut self, records: &[DeleteRecord]) -> Result<()> {
        for record in records {
            let Some(key) = record.record_key.as_deref() else {
                continue;
            };
            let ordering = match (
                &self.ordering_column,
                ordering_value_array(&record.ordering_value),
            ) {
                (Some((i, converter)), Some(value)) => {
                    match cast(&value, self.schema.field(*i).data_type()) {
                        Ok(value) if value.null_count() == 0 => {
                            OrderingValues::new(converter, &value)?
                                .get(0)
                                .map(|r| r.owned())
                        }
                        // Of another type than the ordering column: natural order, as in Hudi.
                        _ => None,
                    }
                }
                _ => None,
            };
            self.fold(KeyRef::Owned(key.to_string()), State::Deleted { ordering });
        }
        Ok(())
    }

    /// The winning records: base records in order (where they win), then records only in logs.
    pub fn finish(self) -> Result<Vec<RecordBatch>> {
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.base.len() + self.logs.len());
        let keys = &self.keys;
        let find_log = |key: &str| {
            self.log_index
                .find(self.hasher.hash_one(key), |&l| {
                    key_of(keys, &self.logs[l].0) == key
                })
                .copied()
        };
        let mut log_of_base: Vec<Option<usize>> = vec![None; self.base.len()];
        for &i in &self.base_index {
            let (source, row) = self.base[i];
            log_of_base[i] = find_log(key_at(keys, source, row));
        }
        for (i, &(source, row)) in self.base.iter().enumerate() {
            let base_version = Version {
                delete: false,
                ordering: self.ordering(source, row),
            };
            match log_of_base[i].map(|l| &self.logs[l].1) {
                Some(state) if wins(self.version(state), base_version) => {
                    if let State::Record { source, row } = state {
                        picks.push((*source, *row));
                    }
                }
                _ => picks.push((source, row)),
            }
        }
        for (key, state) in &self.logs {
            let key = key_of(keys, key);
            let in_base = self
                .base_index
                .find(self.hasher.hash_one(key), |&i| {
                    key_at(keys, self.base[i].0, self.base[i].1) == key
                })
                .is_some();
            if let (false, State::Record { source, row }) = (in_base, state) {
                picks.push((*source, *row));
            }
        }
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
