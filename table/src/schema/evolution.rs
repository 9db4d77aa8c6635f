//! Schema evolution on write. A write may add nullable columns and widen a column's type
//! (int8 → int16 → int32 → int64, float32 → float64); columns it leaves out stay in the table and
//! are null in its rows. Any other change is refused, naming the column and both types.

use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// The table schema after a write with `incoming` (both already normalised, data columns only).
pub fn evolve(table: &Schema, incoming: &Schema) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    for new in incoming.fields() {
        match fields.iter_mut().find(|f| f.name() == new.name()) {
            Some(existing) => {
                let merged =
                    merge_type(existing.data_type(), new.data_type()).ok_or_else(|| {
                        Error::SchemaConflict {
                            column: new.name().clone(),
                            from: existing.data_type().to_string(),
                            to: new.data_type().to_string(),
                        }
                    })?;
                *existing = Field::new(new.name(), merged, true);
            }
            None => fields.push(Field::new(new.name(), new.data_type().clone(), true)),
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn int_rank(t: &DataType) -> Option<u8> {
    match t {
        DataType::Int8 => Some(1),
        DataType::Int16 => Some(2),
        DataType::Int32 => Some(3),
        DataType::Int64 => Some(4),
        _ => None,
    }
}

/// The type that holds both `a` and `b` without loss, when it is a widening Hudi readers accept.
fn merge_type(a: &DataType, b: &DataType) -> Option<DataType> {
    if equal_ignoring_nullability(a, b) {
        return Some(a.clone());
    }
    if let (Some(x), Some(y)) = (int_rank(a), int_rank(b)) {
        return Some(if x >= y { a.clone() } else { b.clone() });
    }
    match (a, b) {
        (DataType::Float32, DataType::Float64) | (DataType::Float64, DataType::Float32) => {
            Some(DataType::Float64)
        }
        _ => None,
    }
}

fn equal_ignoring_nullability(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y)) => {
            equal_ignoring_nullability(x.data_type(), y.data_type())
        }
        (DataType::Struct(x), DataType::Struct(y)) => {
            x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(p, q)| {
                    p.name() == q.name() && equal_ignoring_nullability(p.data_type(), q.data_type())
                })
        }
        (DataType::Map(x, _), DataType::Map(y, _)) => {
            equal_ignoring_nullability(x.data_type(), y.data_type())
        }
        _ => a == b,
    }
}

/// Reshapes a batch to `schema`: columns in the schema's order, missing ones null, narrower types
/// widened. Columns of the batch that the schema lacks are an error (evolve first).
pub fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let source = batch.schema();
    if let Some(extra) = source
        .fields()
        .iter()
        .find(|f| schema.field_with_name(f.name()).is_err())
    {
        return Err(Error::Schema {
            column: extra.name().clone(),
            reason: "not in the table schema".to_string(),
        });
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match source.index_of(field.name()) {
            Ok(i) => {
                let column = batch.column(i);
                if column.data_type() == field.data_type() {
                    Ok(column.clone())
                } else {
                    cast(column, field.data_type()).map_err(|e| Error::Schema {
                        column: field.name().clone(),
                        reason: e.to_string(),
                    })
                }
            }
            Err(_) => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Float32Array, Int32Array};
    use arrow::datatypes::{Float64Type, Int64Type};

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn adds_columns_and_widens_but_refuses_other_changes() -> Result<()> {
        let table = schema(&[
            ("id", DataType::Int32),
            ("v", DataType::Float32),
            ("s", DataType::Utf8),
        ]);
        let incoming = schema(&[
            ("id", DataType::Int64),
            ("v", DataType::Float64),
            ("new", DataType::Boolean),
        ]);
        let evolved = evolve(&table, &incoming)?;
        let names: Vec<_> = evolved
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("id", DataType::Int64),
                ("v", DataType::Float64),
                ("s", DataType::Utf8),
                ("new", DataType::Boolean)
            ]
        );
        // A narrower write into a wider table is fine: the table stays wide.
        assert_eq!(
            evolve(&evolved, &table)?.field(0).data_type(),
            &DataType::Int64
        );

        let err = evolve(&table, &schema(&[("s", DataType::Int64)]))
            .expect_err("utf8 to int64 is refused");
        let text = err.to_string();
        assert!(
            text.contains("\"s\"") && text.contains("Utf8") && text.contains("Int64"),
            "{text}"
        );
        assert!(evolve(&table, &schema(&[("id", DataType::Float64)])).is_err());
        Ok(())
    }

    #[test]
    fn align_fills_missing_columns_and_widens() -> Result<()> {
        let old = Arc::new(schema(&[("id", DataType::Int32), ("v", DataType::Float32)]));
        let batch = RecordBatch::try_new(
            old.clone(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(Float32Array::from(vec![0.5, 1.5])),
            ],
        )?;
        let target = evolve(
            &old,
            &schema(&[
                ("id", DataType::Int64),
                ("v", DataType::Float64),
                ("x", DataType::Utf8),
            ]),
        )?;
        let aligned = align(&batch, &target)?;
        assert_eq!(
            aligned.column(0).as_primitive::<Int64Type>().values(),
            &[1, 2]
        );
        assert_eq!(
            aligned.column(1).as_primitive::<Float64Type>().values(),
            &[0.5, 1.5]
        );
        assert_eq!(aligned.column(2).null_count(), 2);
        Ok(())
    }
}
