//! Output formats of query results.

use std::io::Write;
use std::sync::Arc;

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

/// Writes batches in a format as they come (JSON lines and CSV row by row; a text table needs
/// them all, so it is printed at the end).
pub struct BatchWriter<'w> {
    inner: Inner<'w>,
    schema: Arc<Schema>,
    rows: usize,
}

impl std::fmt::Debug for BatchWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

enum Inner<'w> {
    Jsonl(arrow_json::LineDelimitedWriter<&'w mut dyn Write>),
    Csv(Box<arrow::csv::Writer<&'w mut dyn Write>>),
    Table(&'w mut dyn Write, Vec<RecordBatch>),
}

fn fail(format: &'static str) -> impl Fn(arrow::error::ArrowError) -> Error {
    move |e| Error::Output {
        format,
        reason: e.to_string(),
    }
}

impl<'w> BatchWriter<'w> {
    pub fn new(out: &'w mut dyn Write, format: Format, schema: &Schema) -> Result<Self> {
        let inner = match format {
            Format::Jsonl => Inner::Jsonl(
                arrow_json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow_json::writer::LineDelimited>(out),
            ),
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
                Inner::Csv(Box::new(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(out),
                ))
            }
            Format::Table => Inner::Table(out, Vec::new()),
        };
        Ok(BatchWriter {
            inner,
            schema: Arc::new(schema.clone()),
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        match &mut self.inner {
            Inner::Jsonl(writer) => writer.write(batch).map_err(fail("jsonl")),
            Inner::Csv(writer) => writer.write(batch).map_err(fail("csv")),
            Inner::Table(_, batches) => {
                batches.push(batch.clone());
                Ok(())
            }
        }
    }

    pub fn finish(self) -> Result<()> {
        let empty = RecordBatch::new_empty(self.schema.clone());
        match self.inner {
            Inner::Jsonl(mut writer) => writer.finish().map_err(fail("jsonl")),
            // A CSV of no rows still has its header.
            Inner::Csv(mut writer) if self.rows == 0 => writer.write(&empty).map_err(fail("csv")),
            Inner::Csv(_) => Ok(()),
            Inner::Table(out, mut batches) => {
                if batches.is_empty() {
                    batches.push(empty);
                }
                let table =
                    arrow::util::pretty::pretty_format_batches(&batches).map_err(fail("table"))?;
                writeln!(out, "{table}").map_err(|e| Error::Output {
                    format: "table",
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// Writes all `batches` in `format`.
pub fn write_batches(
    out: &mut dyn Write,
    format: Format,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<()> {
    let mut writer = BatchWriter::new(out, format, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()
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
