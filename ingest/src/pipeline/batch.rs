//! One batch from a table's buffered [`RowBatch`]es: columns united by name (data columns in
//! the order of the table's schema, then new ones, then the CDC columns), narrower types cast to
//! wider ones, missing columns null.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::{cast, concat};
use arrow::datatypes::{Field, Schema, SchemaRef};
use inlet_table::parallel;

use crate::change::{RowBatch, TableId, Unresolved, cdc_fields, with_cdc_columns};
use crate::error::{Error, Result};

/// An empty batch with `data` columns and the CDC columns.
pub fn empty_with_cdc(data: &Schema) -> Result<RecordBatch> {
    Ok(RecordBatch::new_empty(with_cdc_columns(data)))
}

/// Concatenates `batches`; `None` if there are none.
pub fn concat_rows(
    table: &TableId,
    batches: Vec<RowBatch>,
    table_schema: Option<&SchemaRef>,
) -> Result<Option<(RecordBatch, BooleanArray, Vec<Unresolved>)>> {
    if batches.is_empty() {
        return Ok(None);
    }
    let cdc = cdc_fields();
    let is_cdc = |name: &str| cdc.iter().any(|f| f.name() == name);
    let data = |schema: &Schema| {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .filter(|f| !is_cdc(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        Schema::new(fields)
    };
    // The table's one rule set decides how the batches' columns combine.
    let mut merged: SchemaRef = Arc::new(match table_schema {
        Some(schema) => data(schema),
        None => Schema::empty(),
    });
    for b in &batches {
        merged = inlet_table::schema::evolve(&merged, &data(&b.batch.schema())).map_err(|e| {
            Error::SchemaChange {
                table: table.to_string(),
                reason: e.to_string(),
            }
        })?;
    }
    let mut fields: Vec<Field> = merged.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(cdc);
    let schema = Arc::new(Schema::new(fields));
    let mut aligned = Vec::with_capacity(batches.len());
    let mut deletes = Vec::with_capacity(batches.len());
    let mut unresolved = Vec::new();
    let mut offset = 0;
    for b in batches {
        let source = b.batch.schema();
        for u in &b.unresolved {
            let column_name = source.field(u.column).name();
            let column = schema.index_of(column_name)?;
            unresolved.push(Unresolved {
                row: u.row + offset,
                column,
                key_row: u.key_row + offset,
            });
        }
        offset += b.batch.num_rows();
        let columns = schema
            .fields()
            .iter()
            .map(|f| match source.index_of(f.name()) {
                Ok(i) => {
                    let c = b.batch.column(i);
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        Ok(cast(c, f.data_type())?)
                    }
                }
                Err(_) => Ok(new_null_array(f.data_type(), b.batch.num_rows())),
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        aligned.push(RecordBatch::try_new(schema.clone(), columns)?);
        deletes.push(b.deletes);
    }
    let batch = concat_columns(&schema, &aligned)?;
    let refs: Vec<&dyn arrow::array::Array> = deletes.iter().map(|d| d as _).collect();
    let deletes = concat(&refs)?;
    let deletes = arrow::array::AsArray::as_boolean(deletes.as_ref()).clone();
    Ok(Some((batch, deletes, unresolved)))
}

/// `concat_batches`, the columns shared out over the cores: at a million rows the copy is a
/// commit's longest step before its file groups are written side by side.
fn concat_columns(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let width = schema.fields().len();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let threads = if rows < parallel::MIN_ROWS {
        1
    } else {
        parallel::threads().min(width).max(1)
    };
    let parts = parallel::each(threads, |t| {
        (t..width)
            .step_by(threads)
            .map(|c| {
                let arrays: Vec<&dyn arrow::array::Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                Ok((c, concat(&arrays)?))
            })
            .collect::<Result<Vec<(usize, ArrayRef)>>>()
    });
    let mut columns: Vec<Option<ArrayRef>> = vec![None; width];
    for part in parts {
        for (c, array) in part? {
            columns[c] = Some(array);
        }
    }
    let columns: Vec<ArrayRef> = columns.into_iter().flatten().collect();
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}
