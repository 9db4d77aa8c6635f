//! Rows of one table built straight into Arrow builders: data columns from PostgreSQL text or
//! binary values, then the CDC columns, the delete flags and the cells left for the pipeline to fill
//! (unchanged TOAST values).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema, SchemaRef};

use super::binary::Wire;
use super::types::{ColumnBuilder, Conv};
use crate::change::{Rejected, RowBatch, TableId, Unresolved};
use crate::error::{Error, Result};

/// One value of a row being appended.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Null,
    /// Not sent (unchanged TOAST value): resolved later.
    Unchanged,
    Text(&'a str),
    /// A value in COPY's binary format.
    Binary(Wire, &'a [u8]),
}

/// A column of a captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub conv: Conv,
}

/// The data schema (no CDC columns) of these columns.
pub fn data_schema(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.conv.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Builds [`RowBatch`]es of one table.
#[derive(Debug)]
pub struct RowBuilder {
    table: TableId,
    specs: Vec<ColumnSpec>,
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    op: StringBuilder,
    position: Int64Builder,
    commit_ts: TimestampMicrosecondBuilder,
    deletes: BooleanBuilder,
    unresolved: Vec<Unresolved>,
    rejected: Vec<Rejected>,
    rows: usize,
    bytes: usize,
    /// Rows to make room for after each [`RowBuilder::finish`] (0: grow as needed).
    capacity: usize,
}

impl RowBuilder {
    pub fn new(table: TableId, specs: Vec<ColumnSpec>) -> Self {
        RowBuilder::with_capacity(table, specs, 0)
    }

    /// A builder that makes room for `rows` rows at a time (none: builders grow as rows come):
    /// batches of a known size are built without reallocation, and without unused capacity.
    pub fn with_capacity(table: TableId, specs: Vec<ColumnSpec>, rows: usize) -> Self {
        let mut fields: Vec<Field> = specs
            .iter()
            .map(|c| Field::new(&c.name, c.conv.data_type(), true))
            .collect();
        fields.extend(crate::change::cdc_fields());
        let mut builder = RowBuilder {
            columns: Vec::new(),
            table,
            specs,
            schema: Arc::new(Schema::new(fields)),
            op: StringBuilder::new(),
            position: Int64Builder::new(),
            commit_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            deletes: BooleanBuilder::new(),
            unresolved: Vec::new(),
            rejected: Vec::new(),
            rows: 0,
            bytes: 0,
            capacity: rows,
        };
        builder.make_room();
        builder
    }

    /// Fresh builders with room for [`RowBuilder::capacity`] rows (a finished builder has none).
    fn make_room(&mut self) {
        let rows = match self.capacity {
            0 if !self.columns.is_empty() => return,
            0 => 1024,
            rows => rows,
        };
        self.columns = self
            .specs
            .iter()
            .map(|c| ColumnBuilder::with_capacity(&c.conv, rows))
            .collect();
        self.op = StringBuilder::with_capacity(rows, rows);
        self.position = Int64Builder::with_capacity(rows);
        self.commit_ts = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        self.deletes = BooleanBuilder::with_capacity(rows);
    }

    pub fn table(&self) -> &TableId {
        &self.table
    }

    pub fn specs(&self) -> &[ColumnSpec] {
        &self.specs
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Approximate bytes of the values appended since the last [`RowBuilder::finish`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends a row; returns its index. `cells` must yield one cell per column (missing ones are
    /// null). `key_row` is the row whose key identifies the previous image for unchanged cells
    /// (default: this row).
    pub fn append<'a>(
        &mut self,
        op: &str,
        position: Option<i64>,
        commit_ts: Option<i64>,
        delete: bool,
        cells: impl IntoIterator<Item = Cell<'a>>,
        key_row: Option<usize>,
    ) -> Result<usize> {
        let row = self.rows;
        let mut cells = cells.into_iter();
        for (i, builder) in self.columns.iter_mut().enumerate() {
            let (stored, value): (_, &dyn Fn() -> String) = match cells.next().unwrap_or(Cell::Null)
            {
                Cell::Null => {
                    builder.append_null();
                    continue;
                }
                Cell::Unchanged => {
                    builder.append_null();
                    self.unresolved.push(Unresolved {
                        row,
                        column: i,
                        key_row: key_row.unwrap_or(row),
                    });
                    continue;
                }
                Cell::Text(text) => {
                    self.bytes += text.len();
                    (builder.append_text(text), &|| text.to_string())
                }
                Cell::Binary(wire, bytes) => {
                    self.bytes += bytes.len();
                    (builder.append_binary(wire, bytes), &move || {
                        wire.text(bytes).map_or_else(|e| e.0, Cow::into_owned)
                    })
                }
            };
            let spec = &self.specs[i];
            let stored = stored.map_err(|e| Error::PgValue {
                table: self.table.to_string(),
                column: spec.name.clone(),
                reason: e.0,
            })?;
            if !stored {
                // The value as the source sent it, for the dead letter.
                let value = value();
                self.rejected.push(Rejected {
                    row,
                    column: spec.name.clone(),
                    reason: format!(
                        "{value:?} has no representation in the lake column ({})",
                        spec.conv.data_type()
                    ),
                    value,
                });
            }
        }
        self.op.append_value(op);
        self.position.append_option(position);
        self.commit_ts.append_option(commit_ts);
        self.deletes.append_value(delete);
        self.bytes += 24;
        self.rows += 1;
        Ok(row)
    }

    /// The rows so far (`None` if there are none); the builder is left empty.
    pub fn finish(&mut self) -> Result<Option<RowBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|b| b.finish()).collect();
        arrays.push(Arc::new(self.op.finish()));
        arrays.push(Arc::new(self.position.finish()));
        arrays.push(Arc::new(self.commit_ts.finish()));
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let deletes = self.deletes.finish();
        self.make_room();
        self.rows = 0;
        self.bytes = 0;
        Ok(Some(RowBatch {
            table: self.table.clone(),
            batch,
            deletes,
            unresolved: std::mem::take(&mut self.unresolved),
            rejected: std::mem::take(&mut self.rejected),
            inside: None,
        }))
    }
}
