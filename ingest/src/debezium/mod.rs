//! Debezium change events (JSON lines) decoded into Arrow record batches.
//!
//! Each non-empty line is one change event, either wrapped in the Kafka
//! Connect `JsonConverter` envelope (`schemas.enable=true`):
//!
//! ```json
//! {"schema": {"type": "struct", "fields": [{"field": "before", ...}, {"field": "after", ...}, ...]},
//!  "payload": {"before": null, "after": {"id": 1}, "source": {...}, "op": "c", "ts_ms": 1709284530123}}
//! ```
//!
//! or as the bare payload. A line `null` (a Kafka tombstone), an envelope
//! with a null payload and blank lines are skipped. All lines of one input
//! must use the same form.
//!
//! `op` c (insert), r (snapshot read) and u (update) take the row from
//! `after`; d (delete) takes it from `before`, which under PostgreSQL's
//! `REPLICA IDENTITY DEFAULT` holds only the key columns (the others decode as
//! null, and such columns become nullable even if their schema says
//! otherwise). Other ops (t truncate, m message) are an error for now.
//!
//! # Columns
//!
//! The data columns come first: in the order of the Debezium schema (columns
//! added by a later schema are appended, and are null in earlier rows), or,
//! without the envelope, in order of first appearance. Then [`CDC_OP`],
//! [`CDC_POSITION`] and [`CDC_COMMIT_TS`]; see [`ChangeBatch::batch`].
//!
//! # Types with the envelope
//!
//! | Connect type / logical `name`                         | JSON value                   | Arrow                          |
//! |-------------------------------------------------------|------------------------------|--------------------------------|
//! | `boolean`                                             | bool                         | Boolean                        |
//! | `int8`                                                | integer                      | Int16 (for Spark; lossless)    |
//! | `int16` / `int32` / `int64`                           | integer                      | Int16 / Int32 / Int64          |
//! | `float32` / `float64`                                 | number, `"NaN"`, `"Infinity"`| Float32 / Float64              |
//! | `string`                                              | string                       | Utf8                           |
//! | `bytes`                                               | base64 string                | Binary                         |
//! | `array`                                               | array                        | List (item `item`)             |
//! | `struct`                                              | object                       | Struct                         |
//! | `map`                                                 | object, or `[[k, v], ...]`   | Map (`entries`: `keys`, `values`) |
//! | `org.apache.kafka.connect.data.Decimal`               | base64 unscaled (or number)  | Decimal128(p, s), p default 38 |
//! | `io.debezium.time.Date`, `…connect.data.Date`         | days                         | Date32                         |
//! | `io.debezium.time.Timestamp`, `…connect.data.Timestamp` | ms                         | Timestamp(µs, None)            |
//! | `io.debezium.time.MicroTimestamp`                     | µs                           | Timestamp(µs, None)            |
//! | `io.debezium.time.NanoTimestamp`                      | ns (must be whole µs)        | Timestamp(µs, None)            |
//! | `io.debezium.time.ZonedTimestamp`                     | ISO-8601 with offset         | Timestamp(µs, "UTC")           |
//! | `io.debezium.time.Time`, `…connect.data.Time`         | ms since midnight            | Int64 µs since midnight        |
//! | `io.debezium.time.MicroTime` / `NanoTime`             | µs / ns since midnight       | Int64 µs since midnight        |
//! | `io.debezium.data.Json`, `io.debezium.data.Uuid`      | string                       | Utf8                           |
//! | `io.debezium.data.VariableScaleDecimal`               |                              | error (see its hint)           |
//! | other names (`io.debezium.data.Enum`, …)              | as the base type             | as the base type               |
//!
//! Times of day are Int64 microseconds rather than Time64 because MySQL TIME
//! spans -838:59:59..838:59:59 (PostgreSQL allows 24:00:00), which Time64
//! cannot hold, and Spark SQL has traditionally had no time-of-day type.
//! `optional` fields are nullable.
//!
//! When lines carry different schemas, the columns are united; a column whose
//! Arrow type changes is an [`Error::TypeConflict`].
//!
//! # Types without the envelope
//!
//! Inferred from the values of all lines: boolean →
//! Boolean, integer → Int64, other number → Float64 (integers and others mixed
//! → Float64), string → Utf8, object → Struct, array → List, only nulls → Utf8;
//! all nullable. Any other mix is an [`Error::TypeConflict`].

mod convert;
mod envelope;
mod infer;
mod schema;
mod source;

use std::fmt;
use std::io::BufRead;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use convert::Cell;
use envelope::{Op, Parsed};
use infer::Inferred;
use schema::Column;

/// The operation column: Utf8, never null, one of `c`, `r`, `u`, `d`.
pub const CDC_OP: &str = "_cdc_op";
/// The log position column: Int64, nullable. PostgreSQL LSN, or for MySQL
/// `binlog file number << 32 | binlog position`.
pub const CDC_POSITION: &str = "_cdc_position";
/// The commit time column: Timestamp(Microsecond, "UTC"), nullable.
pub const CDC_COMMIT_TS: &str = "_cdc_commit_ts";

pub(crate) fn is_reserved(name: &str) -> bool {
    [CDC_OP, CDC_POSITION, CDC_COMMIT_TS].contains(&name)
}

/// Decoded changes, in input order.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// Data columns (in order of the Debezium schema, or of first appearance when inferred),
    /// then `_cdc_op` (Utf8, non-null: c/r/u/d), `_cdc_position` (Int64, nullable),
    /// `_cdc_commit_ts` (Timestamp(Microsecond, Some("UTC")), nullable).
    pub batch: RecordBatch,
    /// true where the row is a delete (`op` = "d"); its values come from `before`.
    pub deletes: BooleanArray,
    /// The 1-based input line of each row (blank lines and tombstones make no row).
    pub lines: Vec<usize>,
}

/// Decodes Debezium change events, one JSON object per line, into one batch.
///
/// Errors name the 1-based line (and column) they are about; nothing is
/// returned for an input with any bad line. An input without events gives a
/// batch with no rows and only the three change metadata columns.
pub fn decode(mut input: impl BufRead) -> Result<ChangeBatch> {
    let mut decoder = Decoder::default();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let read = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| Error::Io {
                line: line + 1,
                source,
            })?;
        if read == 0 {
            break;
        }
        line += 1;
        decoder.push_line(line, &buf)?;
    }
    decoder.finish()
}

/// A column path in error messages: `a`, `a.b`, `a[]`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    Column(&'a str),
    Field(&'a Path<'a>, &'a str),
    Item(&'a Path<'a>),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Column(name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent) => write!(f, "{parent}[]"),
        }
    }
}

/// One decoded change, before the columns are built.
#[derive(Debug)]
struct Event {
    line: usize,
    op: Op,
    position: Option<i64>,
    commit_ts: Option<i64>,
    /// The row's values by column index (shorter when later columns are absent).
    row: Vec<Value>,
    /// Index into [`Decoder::schemas`] (envelope input only).
    schema: usize,
}

/// The values of `row` by index in `columns`, dropping the keys (and any
/// key that is not a column). Rows usually list their keys in column order,
/// so key i is looked for at column i first.
fn align<C>(row: Map<String, Value>, columns: &[C], name: impl Fn(&C) -> &String) -> Vec<Value> {
    let mut values = Vec::with_capacity(row.len());
    for (i, (key, value)) in row.into_iter().enumerate() {
        let index = if columns.get(i).is_some_and(|c| *name(c) == key) {
            Some(i)
        } else {
            columns.iter().position(|c| *name(c) == key)
        };
        let Some(index) = index else { continue };
        if values.len() <= index {
            values.resize(index + 1, Value::Null);
        }
        values[index] = value;
    }
    values
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Envelope,
    Bare,
}

impl Format {
    fn describe(self) -> &'static str {
        match self {
            Format::Envelope => "the {\"schema\",\"payload\"} envelope",
            Format::Bare => "bare payloads",
        }
    }
}

/// A distinct row schema seen in the input.
#[derive(Debug)]
struct RowSchema {
    raw: Value,
    columns: Vec<Column>,
}

#[derive(Debug, Default)]
struct Decoder {
    format: Option<Format>,
    events: Vec<Event>,
    /// Envelope input: the distinct row schemas, and all their columns merged.
    schemas: Vec<RowSchema>,
    columns: Vec<Column>,
    /// Envelope schema texts already seen, with the side (`after`/`before`)
    /// and the index into `schemas` of its row schema.
    schema_texts: Vec<(Box<str>, &'static str, usize)>,
    /// Bare input: the inferred column types.
    inferred: Vec<(String, Inferred)>,
}

impl Decoder {
    fn push_line(&mut self, line: usize, bytes: &[u8]) -> Result<()> {
        let (format, schema, payload) = match envelope::parse_line(line, bytes)? {
            Parsed::Skip => return Ok(()),
            Parsed::Envelope { schema, payload } => (Format::Envelope, Some(schema), payload),
            Parsed::Bare(payload) => (Format::Bare, None, payload),
        };
        match self.format {
            None => self.format = Some(format),
            Some(seen) if seen != format => {
                return Err(Error::Malformed {
                    line,
                    reason: format!(
                        "this line uses {} but earlier lines use {}",
                        format.describe(),
                        seen.describe()
                    ),
                });
            }
            Some(_) => {}
        }
        let change = envelope::take_change(line, payload)?;
        let (schema, row) = match schema {
            Some(schema) => {
                let index = self.row_schema(line, schema, change.op.side())?;
                (index, align(change.row, &self.columns, |c| &c.name))
            }
            None => {
                infer::observe_row(&mut self.inferred, &change.row, line)?;
                (0, align(change.row, &self.inferred, |(name, _)| name))
            }
        };
        self.events.push(Event {
            line,
            op: change.op,
            position: change.position,
            commit_ts: change.commit_ts,
            row,
            schema,
        });
        Ok(())
    }

    /// The index of the row schema (of `side`) of this envelope schema,
    /// merging it into the columns when it is new.
    fn row_schema(&mut self, line: usize, schema: &RawValue, side: &'static str) -> Result<usize> {
        // Schemas rarely change: the same text as a recent line settles it.
        let text = schema.get();
        if let Some(&(_, _, index)) = self
            .schema_texts
            .iter()
            .rev()
            .find(|(t, s, _)| *s == side && **t == *text)
        {
            return Ok(index);
        }
        let schema: Value = serde_json::from_str(text).map_err(|e| Error::BadSchema {
            line,
            reason: e.to_string(),
        })?;
        let raw = envelope::take_row_schema(line, schema, side)?;
        let index = match self.schemas.iter().rposition(|s| s.raw == raw) {
            Some(index) => index,
            None => {
                let columns = schema::row_columns(&raw, line)?;
                if let Some(c) = columns.iter().find(|c| is_reserved(&c.name)) {
                    return Err(Error::ReservedColumn {
                        line,
                        column: c.name.clone(),
                    });
                }
                if self.schemas.is_empty() {
                    self.columns = columns.clone();
                } else {
                    schema::merge_columns(&mut self.columns, &columns, line, None)?;
                }
                self.schemas.push(RowSchema { raw, columns });
                self.schemas.len() - 1
            }
        };
        self.schema_texts.push((text.into(), side, index));
        Ok(index)
    }

    fn finish(self) -> Result<ChangeBatch> {
        let Decoder {
            format,
            mut events,
            schemas,
            columns,
            inferred,
            ..
        } = self;
        let columns = match format {
            Some(Format::Bare) => infer::into_columns(inferred),
            _ => columns,
        };
        // For each row schema, where each merged column is in it.
        let positions: Vec<Vec<Option<usize>>> = schemas
            .iter()
            .map(|s| {
                columns
                    .iter()
                    .map(|c| s.columns.iter().position(|sc| sc.name == c.name))
                    .collect()
            })
            .collect();

        let mut fields = Vec::with_capacity(columns.len() + 3);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 3);
        for (i, column) in columns.iter().enumerate() {
            let cells: Vec<Cell<'_>> = events
                .iter()
                .map(|e| {
                    let null_ok = e.op == Op::Delete;
                    let own = positions
                        .get(e.schema)
                        .and_then(|p| p.get(i).copied().flatten())
                        .and_then(|j| schemas.get(e.schema)?.columns.get(j));
                    match (format, own) {
                        (Some(Format::Envelope), Some(own)) => {
                            Cell::new(e.line, e.row.get(i), &own.kind, null_ok)
                        }
                        // Not in this line's schema: null (the merged column is nullable).
                        (Some(Format::Envelope), None) => {
                            Cell::new(e.line, None, &column.kind, true)
                        }
                        _ => Cell::new(e.line, e.row.get(i), &column.kind, null_ok),
                    }
                })
                .collect();
            let array = convert::build_array(column, &cells, &Path::Column(&column.name))?;
            drop(cells);
            // The column is in Arrow now: free its JSON values.
            for e in &mut events {
                if let Some(value) = e.row.get_mut(i) {
                    *value = Value::Null;
                }
            }
            let nullable = column.nullable || array.null_count() > 0;
            fields.push(Field::new(&column.name, column.kind.data_type(), nullable));
            arrays.push(array);
        }

        fields.push(Field::new(CDC_OP, DataType::Utf8, false));
        arrays.push(Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| e.op.as_str()),
        )));
        fields.push(Field::new(CDC_POSITION, DataType::Int64, true));
        arrays.push(Arc::new(Int64Array::from_iter(
            events.iter().map(|e| e.position),
        )));
        fields.push(Field::new(
            CDC_COMMIT_TS,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from_iter(events.iter().map(|e| e.commit_ts))
                .with_timezone("UTC"),
        ));

        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(events.len())),
        )?;
        let deletes = events.iter().map(|e| Some(e.op == Op::Delete)).collect();
        let lines = events.iter().map(|e| e.line).collect();
        Ok(ChangeBatch {
            batch,
            deletes,
            lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type};

    fn decode_str(input: &str) -> Result<ChangeBatch> {
        decode(input.as_bytes())
    }

    #[test]
    fn empty_input() {
        let b = decode_str("\n\nnull\n").unwrap();
        assert_eq!(b.batch.num_rows(), 0);
        assert_eq!(b.batch.num_columns(), 3);
        assert_eq!(b.deletes.len(), 0);
    }

    #[test]
    fn bare_rows_and_metadata() {
        let input = concat!(
            r#"{"op":"r","after":{"id":1,"name":"a"},"source":{"lsn":10,"ts_ms":5},"ts_ms":7}"#,
            "\n\n",
            r#"{"op":"u","before":null,"after":{"id":1,"name":"b"},"source":{"lsn":20},"ts_ms":8}"#,
            "\nnull\r\n",
            r#"{"op":"d","before":{"id":1},"after":null,"source":{"lsn":30}}"#,
        );
        let b = decode_str(input).unwrap();
        let batch = &b.batch;
        assert_eq!(batch.num_rows(), 3);
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "name", CDC_OP, CDC_POSITION, CDC_COMMIT_TS]);
        let id = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(id.values(), &[1, 1, 1]);
        let name = batch.column(1).as_string::<i32>();
        assert_eq!(
            (name.value(0), name.value(1), name.is_null(2)),
            ("a", "b", true)
        );
        let op = batch.column(2).as_string::<i32>();
        assert_eq!((op.value(0), op.value(1), op.value(2)), ("r", "u", "d"));
        assert_eq!(
            batch.column(3).as_primitive::<Int64Type>().values(),
            &[10, 20, 30]
        );
        let ts = batch
            .column(4)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(
            (ts.value(0), ts.value(1), ts.is_null(2)),
            (5_000, 8_000, true)
        );
        assert_eq!(
            b.deletes.iter().collect::<Vec<_>>(),
            [Some(false), Some(false), Some(true)]
        );
    }

    #[test]
    fn mixed_forms_are_an_error() {
        let input = concat!(
            r#"{"op":"c","after":{"id":1}}"#,
            "\n",
            r#"{"schema":{"type":"struct","fields":[]},"payload":{"op":"c","after":{"id":2}}}"#,
        );
        let e = decode_str(input).unwrap_err();
        assert!(matches!(e, Error::Malformed { line: 2, .. }), "{e}");
    }

    #[test]
    fn envelope_schema_per_line() {
        let line = |ty: &str, name: &str, v: i64| {
            format!(
                r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","optional":true,"field":"after","fields":[{{"type":"int32","field":"id"}},{{"type":"{ty}","name":"{name}","field":"t"}}]}}]}},"payload":{{"op":"c","after":{{"id":1,"t":{v}}}}}}}"#
            )
        };
        let input = [
            line("int64", "io.debezium.time.Timestamp", 1),
            line("int64", "io.debezium.time.MicroTimestamp", 1),
        ]
        .join("\n");
        let b = decode_str(&input).unwrap();
        let id = b.batch.column(0).as_primitive::<Int32Type>();
        assert_eq!(id.values(), &[1, 1]);
        assert!(!b.batch.schema().field(0).is_nullable());
        let t = b
            .batch
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(t.values(), &[1_000, 1]);
    }

    #[test]
    fn reserved_names() {
        let e = decode_str(r#"{"op":"c","after":{"_cdc_position":1}}"#).unwrap_err();
        assert!(matches!(e, Error::ReservedColumn { line: 1, .. }), "{e}");
    }

    #[test]
    fn io_errors_name_the_line() {
        struct Failing(usize);
        impl std::io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("boom"));
                }
                self.0 = 0;
                let line = b"{\"op\":\"c\",\"after\":{}}\n";
                buf[..line.len()].copy_from_slice(line);
                Ok(line.len())
            }
        }
        let e = decode(std::io::BufReader::new(Failing(1))).unwrap_err();
        assert!(matches!(e, Error::Io { line: 2, .. }), "{e}");
    }
}
