//! Column names in files. Hudi readers parse the table's Avro schema, where a name must match
//! `[A-Za-z_][A-Za-z0-9_]*` (hudi-rs fails with "Invalid field name" otherwise). A table's
//! columns keep the names they were written with (its logical schema, recorded in every commit);
//! in files and in the Avro schema each name is replaced by its physical form, Hudi's own
//! sanitizing rule (`hoodie.streamer.source.sanitize.invalid.schema.field.names`): every
//! character outside `[A-Za-z0-9_]`, and a first character outside `[A-Za-z_]`, becomes `__`.
//! inlet reads the logical names back; other readers see the physical ones. Two names that
//! would become one are refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayData, ArrayRef, RecordBatch, make_array};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use crate::error::{Error, Result};

/// What replaces each invalid character (Hudi's `hoodie.streamer.source.sanitize.invalid.char.mask`
/// default).
const MASK: &str = "__";

/// The physical (Avro-valid) form of a column name.
pub fn physical_name(name: &str) -> Cow<'_, str> {
    let valid =
        |i: usize, c: char| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
    if !name.is_empty() && name.chars().enumerate().all(|(i, c)| valid(i, c)) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if valid(i, c) {
            out.push(c);
        } else {
            out.push_str(MASK);
        }
    }
    Cow::Owned(out)
}

/// The physical form of a schema: every field name, nested ones included, in its physical
/// form. Fails when a name is empty or two names of one record would become one.
pub fn physical(schema: &Schema) -> Result<SchemaRef> {
    Ok(Arc::new(Schema::new_with_metadata(
        physical_fields(schema.fields(), "")?,
        schema.metadata().clone(),
    )))
}

fn physical_fields(fields: &Fields, parent: &str) -> Result<Fields> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        let path = if parent.is_empty() {
            field.name().clone()
        } else {
            format!("{parent}.{}", field.name())
        };
        if field.name().is_empty() {
            return Err(Error::Schema {
                column: path,
                reason: "a column needs a name".to_string(),
            });
        }
        let name = physical_name(field.name()).into_owned();
        if let Some(other) = seen.insert(name.clone(), field.name()) {
            return Err(Error::Schema {
                column: path,
                reason: format!(
                    "columns {other:?} and {:?} would both be named {name:?} in the files \
                     (Avro names allow only letters, digits and _): rename one",
                    field.name()
                ),
            });
        }
        let data_type = physical_type(field.data_type(), &path)?;
        out.push(Arc::new(
            Field::new(name, data_type, field.is_nullable())
                .with_metadata(field.metadata().clone()),
        ));
    }
    Ok(out.into())
}

fn physical_type(data_type: &DataType, path: &str) -> Result<DataType> {
    Ok(match data_type {
        DataType::Struct(fields) => DataType::Struct(physical_fields(fields, path)?),
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(physical_type(item.data_type(), path)?),
        )),
        DataType::Map(entries, sorted) => DataType::Map(
            Arc::new(
                entries
                    .as_ref()
                    .clone()
                    .with_data_type(physical_type(entries.data_type(), path)?),
            ),
            *sorted,
        ),
        other => other.clone(),
    })
}

/// `batch` with the field names of `schema`, which must have the same columns in the same
/// order and differ at most in names (its physical or logical form).
pub fn rename(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| retype(column, field.data_type()))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The same array under a type that differs only in field names.
fn retype(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    Ok(make_array(retype_data(array.to_data(), to)?))
}

fn retype_data(data: ArrayData, to: &DataType) -> Result<ArrayData> {
    let children: Vec<&DataType> = match to {
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type()).collect(),
        DataType::List(item) => vec![item.data_type()],
        DataType::Map(entries, _) => vec![entries.data_type()],
        _ => Vec::new(),
    };
    let child_data = if children.is_empty() {
        data.child_data().to_vec()
    } else {
        data.child_data()
            .iter()
            .zip(children)
            .map(|(child, to)| retype_data(child.clone(), to))
            .collect::<Result<Vec<_>>>()?
    };
    Ok(data
        .into_builder()
        .data_type(to.clone())
        .child_data(child_data)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray, StructArray};

    #[test]
    fn hudi_sanitizing_rule() {
        for (name, physical) in [
            ("id", "id"),
            ("_cdc_op", "_cdc_op"),
            ("order id", "order__id"),
            ("a-b", "a__b"),
            ("1abc", "__abc"),
            ("Köln", "K__ln"),
            ("say \"hi\"", "say____hi__"),
            ("x.y", "x__y"),
            ("a1", "a1"),
        ] {
            assert_eq!(physical_name(name), physical, "{name:?}");
        }
    }

    #[test]
    fn names_round_trip_through_batches_and_collisions_are_refused() -> Result<()> {
        let inner = Fields::from(vec![Field::new("street name", DataType::Utf8, true)]);
        let logical = Arc::new(Schema::new(vec![
            Field::new("order id", DataType::Int32, true),
            Field::new("addr-ess", DataType::Struct(inner.clone()), true),
        ]));
        let batch = RecordBatch::try_new(
            logical.clone(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StructArray::new(
                    inner,
                    vec![Arc::new(StringArray::from(vec!["a", "b"]))],
                    None,
                )),
            ],
        )?;
        let physical_schema = physical(&logical)?;
        let names: Vec<&String> = physical_schema.fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["order__id", "addr__ess"]);
        let stored = rename(&batch, &physical_schema)?;
        assert_eq!(
            stored.column(1).data_type(),
            physical_schema.field(1).data_type()
        );
        assert_eq!(rename(&stored, &logical)?, batch);

        let clash = Schema::new(vec![
            Field::new("a b", DataType::Int32, true),
            Field::new("a-b", DataType::Int32, true),
        ]);
        let err = physical(&clash).expect_err("two names become one");
        assert!(err.to_string().contains("\"a__b\""), "{err}");
        let empty = Schema::new(vec![Field::new("", DataType::Int32, true)]);
        assert!(physical(&empty).is_err());
        Ok(())
    }
}
