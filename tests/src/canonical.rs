//! A reader-independent form of query results, to compare what two readers returned: every row
//! as a JSON object of chosen columns, with types that readers legitimately differ on (integer
//! widths, timestamp zones) normalised, dates and timestamps as numbers (a date past chrono's
//! range has no other rendering, and one error string for every such date would hide a wrong
//! one); rows sorted. Floats are compared bit for bit: each is
//! the string [`float_text`] gives.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema};

/// Rows of `batches` restricted to `columns` (all when empty), as sorted JSON strings.
pub fn rows(batches: &[RecordBatch], columns: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let names: Vec<String> = if columns.is_empty() {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        } else {
            columns.to_vec()
        };
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for name in &names {
            let column = batch.column_by_name(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "column {name} missing; have {:?}",
                    schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
                )
            })?;
            let target = match column.data_type() {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    Some(DataType::Int64)
                }
                DataType::Float32 => Some(DataType::Float64),
                DataType::Timestamp(..) | DataType::Date64 => Some(DataType::Int64),
                DataType::Date32 => Some(DataType::Int32),
                DataType::LargeUtf8 | DataType::Utf8View => Some(DataType::Utf8),
                _ => None,
            };
            let column = match target {
                Some(t) => cast(column, &t)?,
                None => column.clone(),
            };
            let column: ArrayRef = match column.as_primitive_opt::<Float64Type>() {
                Some(floats) => Arc::new(
                    floats
                        .iter()
                        .map(|v| v.map(float_text))
                        .collect::<StringArray>(),
                ),
                None => column,
            };
            fields.push(Field::new(name, column.data_type().clone(), true));
            arrays.push(column);
        }
        let normalized = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(Vec::new());
        writer.write(&normalized)?;
        writer.finish()?;
        let text = String::from_utf8(writer.into_inner())?;
        out.extend(text.lines().map(str::to_string));
    }
    out.sort();
    Ok(out)
}

/// `batch` with each struct column replaced by its children, named `struct.child`, null where
/// the struct is (change query images: `before.id`, `after.id`, …).
pub fn flatten(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match column.as_struct_opt() {
            Some(image) => {
                for (child_field, child) in image.fields().iter().zip(image.columns()) {
                    let nulls = arrow::buffer::NullBuffer::union(image.nulls(), child.nulls());
                    let data = child.to_data().into_builder().nulls(nulls).build()?;
                    fields.push(Field::new(
                        format!("{}.{}", field.name(), child_field.name()),
                        child.data_type().clone(),
                        true,
                    ));
                    columns.push(arrow::array::make_array(data));
                }
            }
            None => {
                fields.push(field.as_ref().clone().with_nullable(true));
                columns.push(column.clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Change query results in canonical form: images flattened (see [`flatten`]), rows sorted.
pub fn change_rows(batches: &[RecordBatch]) -> anyhow::Result<Vec<String>> {
    let flat = batches
        .iter()
        .map(flatten)
        .collect::<anyhow::Result<Vec<_>>>()?;
    rows(&flat, &[])
}

/// Rows of `batches` as JSON objects (arrow-json's forms; nulls explicit), in order.
pub fn json_objects(
    batches: &[RecordBatch],
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::LineDelimited>(Vec::new());
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let text = String::from_utf8(writer.into_inner())?;
    Ok(text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

/// A double as text that tells every bit: the shortest decimal that reads back as it (Rust's
/// `{:?}`, so `-0.0`, `5e-324` and `1.7976931348623157e308` stay themselves), and for NaN its
/// bits.
pub fn float_text(v: f64) -> String {
    if v.is_nan() {
        format!("NaN:{:016x}", v.to_bits())
    } else {
        format!("{v:?}")
    }
}

/// Reads a Parquet file (written by an interop script) into batches.
pub fn read_parquet(path: &Path) -> anyhow::Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path)?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// Panics with the rows only one side has, when two canonical row lists differ.
#[track_caller]
pub fn assert_same_rows(got: &[String], expected: &[String], context: &str) {
    if got == expected {
        return;
    }
    let only_got: Vec<&String> = got.iter().filter(|r| !expected.contains(r)).collect();
    let only_expected: Vec<&String> = expected.iter().filter(|r| !got.contains(r)).collect();
    panic!(
        "{context}: {} rows vs {} expected\nonly in result:\n  {}\nonly expected:\n  {}",
        got.len(),
        expected.len(),
        only_got
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        only_expected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}
