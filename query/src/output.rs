//! Output formats of query results.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};

use crate::{Error, Result};

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per row, nulls included.
    #[default]
    Jsonl,
    /// CSV with a header line (scalar columns only).
    Csv,
    /// An aligned text table.
    Table,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "table" => Ok(Format::Table),
            other => Err(format!("unknown format {other:?} (jsonl, csv or table)")),
        }
    }
}

pub fn write_batches(
    out: &mut dyn Write,
    format: Format,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<()> {
    let fail = |format: &'static str| {
        move |e: arrow::error::ArrowError| Error::Output {
            format,
            reason: e.to_string(),
        }
    };
    match format {
        Format::Jsonl => {
            let mut writer = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow_json::writer::LineDelimited>(out);
            for batch in batches {
                writer.write(batch).map_err(fail("jsonl"))?;
            }
            writer.finish().map_err(fail("jsonl"))?;
        }
        Format::Csv => {
            if let Some(nested) = schema.fields().iter().find(|f| {
                matches!(
                    f.data_type(),
                    DataType::List(_) | DataType::Struct(_) | DataType::Map(..)
                )
            }) {
                return Err(Error::Output {
                    format: "csv",
                    reason: format!(
                        "column {:?} is nested ({}); use --format jsonl",
                        nested.name(),
                        nested.data_type()
                    ),
                });
            }
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                let empty = RecordBatch::new_empty(std::sync::Arc::new(schema.clone()));
                writer.write(&empty).map_err(fail("csv"))?;
            }
            for batch in batches {
                writer.write(batch).map_err(fail("csv"))?;
            }
        }
        Format::Table => {
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    std::sync::Arc::new(schema.clone()),
                )])
            } else {
                arrow::util::pretty::pretty_format_batches(batches)
            }
            .map_err(fail("table"))?;
            writeln!(out, "{table}").map_err(|e| Error::Output {
                format: "table",
                reason: e.to_string(),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn jsonl_keeps_nulls_and_csv_has_a_header() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .map_err(|e| Error::Table(e.into()))?;
        let mut out = Vec::new();
        write_batches(
            &mut out,
            Format::Jsonl,
            &schema,
            std::slice::from_ref(&batch),
        )?;
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":null}\n"
        );
        let mut out = Vec::new();
        write_batches(&mut out, Format::Csv, &schema, &[batch])?;
        assert_eq!(String::from_utf8_lossy(&out), "id,name\n1,a\n2,\n");
        Ok(())
    }
}
