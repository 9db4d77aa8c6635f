//! Rows events: the column plan of each TABLE_MAP, row images split into their columns' bytes,
//! and those bytes appended to the open transaction's Arrow builders.
//!
//! mysql_common decodes row images too, but for every row it builds a `Column` per column and
//! parses the TABLE_MAP's optional metadata again: inlet's reader ran at 0.07× the rate at
//! which `mariadb-binlog` reads the same binlog. Here a TABLE_MAP is read once (a [`Plan`]), an
//! image is split by each column's size on the wire, and the common types (integers, floats,
//! decimals, dates, datetimes, timestamps, strings and blobs) go from their bytes straight into
//! the builder. Every other type, and every value the fast path does not take as it is (a zero
//! date, a decimal of another scale, text that is not UTF-8), is decoded by mysql_common and
//! converted by [`super::types`], so each type's rules stay in one place.
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::{Datelike, NaiveDate};
use mysql_async::Value;
use mysql_async::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::proto::MyDeserialize;

use super::catalog::MysqlTable;
use super::types::{ColumnBuilder, Conv, Refused, render};
use crate::change::{Rejected, RowBatch, TableId, with_cdc_columns};
use crate::error::{Error, Result};

/// A captured table: its columns' conversions (as the binlog carries them).
#[derive(Debug, Clone)]
pub(super) struct Captured {
    pub(super) table: MysqlTable,
    pub(super) convs: Vec<Conv>,
    pub(super) schema: SchemaRef,
}

impl Captured {
    pub(super) fn new(table: MysqlTable) -> Self {
        let convs: Vec<Conv> = table.columns.iter().map(Conv::of).collect();
        for (c, conv) in table.columns.iter().zip(&convs) {
            if *conv == Conv::Other {
                tracing::warn!(table = %table.id, column = %c.name, column_type = %c.column_type, "No mapping for this type: written as text.");
            }
        }
        let schema = Arc::new(Schema::new(
            table
                .columns
                .iter()
                .zip(&convs)
                .map(|(c, conv)| Field::new(&c.name, conv.data_type(), true))
                .collect::<Vec<_>>(),
        ));
        Captured {
            table,
            convs,
            schema,
        }
    }
}

/// A value that could not be appended as it is: why, and the value as MySQL prints it.
type Unappended = (Refused, String);

/// Rows of one table in the open transaction (or one snapshot chunk).
#[derive(Debug)]
pub(super) struct Rows {
    columns: Vec<ColumnBuilder>,
    op: StringBuilder,
    position: Int64Builder,
    commit_ts: TimestampMicrosecondBuilder,
    deletes: Vec<bool>,
    rejected: Vec<Rejected>,
}

impl Rows {
    pub(super) fn new(convs: &[Conv]) -> Self {
        Rows {
            columns: convs.iter().cloned().map(ColumnBuilder::new).collect(),
            op: StringBuilder::new(),
            position: Int64Builder::new(),
            commit_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            deletes: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// A row of values as a `SELECT` returns them, in the table's column order.
    pub(super) fn append(
        &mut self,
        captured: &Captured,
        values: &[Value],
        op: &str,
        position: i64,
        commit_ts: Option<i64>,
    ) -> Result<()> {
        self.push(captured, op, position, commit_ts, |i, builder| {
            let value = values.get(i).unwrap_or(&Value::NULL);
            builder.append(value).map_err(|r| (r, render(value)))
        })
    }

    /// A row image split by [`Plan::split`]; `missing` are the captured columns it lacks (see
    /// [`each_row`]), which go to the pipeline's recovery (the table stops, or the row goes to
    /// the dead letters) rather than into the lake as nulls.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append_image(
        &mut self,
        captured: &Captured,
        plan: &Plan,
        cells: &[Option<&[u8]>],
        missing: &[usize],
        op: &str,
        position: i64,
        commit_ts: Option<i64>,
    ) -> Result<()> {
        self.push(captured, op, position, commit_ts, |i, builder| {
            if missing.contains(&i) {
                builder.append_null();
                return Err((
                    Refused::NoRepresentation(
                        "the binlog does not hold this column's value: the session that wrote \
                         the change had binlog_row_image = MINIMAL or NOBLOB; set it to FULL \
                         for every session"
                            .to_string(),
                    ),
                    "(not in the binlog)".to_string(),
                ));
            }
            match plan.sources[i].and_then(|s| cells[s].map(|bytes| (s, bytes))) {
                None => {
                    builder.append_null();
                    Ok(())
                }
                Some((s, bytes)) => plan.columns[s].append(builder, bytes),
            }
        })
    }

    /// One row: `append` appends column `i` to its builder (a null in place of a value it
    /// refuses).
    fn push(
        &mut self,
        captured: &Captured,
        op: &str,
        position: i64,
        commit_ts: Option<i64>,
        mut append: impl FnMut(usize, &mut ColumnBuilder) -> std::result::Result<(), Unappended>,
    ) -> Result<()> {
        let row = self.deletes.len();
        for (i, builder) in self.columns.iter_mut().enumerate() {
            let name = &captured.table.columns[i].name;
            match append(i, builder) {
                Ok(()) => {}
                Err((Refused::NoRepresentation(reason), value)) => self.rejected.push(Rejected {
                    row,
                    column: name.clone(),
                    value,
                    reason,
                }),
                Err((Refused::Bad(reason), _)) => {
                    return Err(Error::SchemaChange {
                        table: captured.table.id.to_string(),
                        reason: format!("column {name}: {reason}"),
                    });
                }
            }
        }
        self.op.append_value(op);
        self.position.append_value(position);
        self.commit_ts.append_option(commit_ts);
        self.deletes.push(op == "d");
        Ok(())
    }

    pub(super) fn finish(mut self, captured: &Captured) -> Result<RowBatch> {
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|b| b.finish()).collect();
        arrays.push(Arc::new(self.op.finish()));
        arrays.push(Arc::new(self.position.finish()));
        arrays.push(Arc::new(self.commit_ts.finish()));
        Ok(RowBatch {
            table: captured.table.id.clone(),
            batch: RecordBatch::try_new(with_cdc_columns(&captured.schema), arrays)?,
            deletes: BooleanArray::from(self.deletes),
            unresolved: Vec::new(),
            rejected: self.rejected,
            inside: None,
        })
    }
}

/// How a column's value is laid out in a row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// A little-endian integer of `bytes` bytes.
    Int {
        bytes: usize,
        unsigned: bool,
    },
    Float,
    Double,
    /// MySQL's binary decimal.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// `NEWDATE`: day, month and year packed into 3 bytes.
    Date,
    /// `YEAR`: one byte, the year less 1900, and 0 for the year 0000 (decoded here: mysql_common
    /// reads it as 1900).
    Year,
    /// `DATETIME2`: 5 big-endian bytes, then the fraction.
    DateTime2 {
        fsp: u8,
    },
    /// `TIMESTAMP2`: big-endian seconds since the epoch, then the fraction.
    Timestamp2 {
        fsp: u8,
    },
    /// Bytes after their little-endian length of `prefix` bytes: varchar, char, text, blob.
    Sized {
        prefix: usize,
    },
    /// Decoded by mysql_common.
    Other,
}

/// The bytes of a `DATETIME2`/`TIMESTAMP2`/`TIME2` fraction of `fsp` digits.
fn fraction_bytes(fsp: u8) -> usize {
    usize::from(fsp.min(6)).div_ceil(2)
}

/// Bytes of a group of `digits` decimal digits (of at most 9).
const DIGIT_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

fn decimal_bytes(precision: u8, scale: u8) -> usize {
    let integral = usize::from(precision.saturating_sub(scale));
    let scale = usize::from(scale);
    integral / 9 * 4 + DIGIT_BYTES[integral % 9] + scale / 9 * 4 + DIGIT_BYTES[scale % 9]
}

/// One column of a TABLE_MAP.
#[derive(Debug, Clone)]
pub(super) struct WireColumn {
    wire: Wire,
    column_type: ColumnType,
    meta: Vec<u8>,
    unsigned: bool,
    name: String,
}

impl WireColumn {
    fn new(column_type: ColumnType, meta: &[u8], unsigned: bool, name: String) -> Self {
        use ColumnType::*;
        let byte = |i: usize| meta.get(i).copied().unwrap_or(0);
        let wire = match column_type {
            MYSQL_TYPE_TINY => Wire::Int { bytes: 1, unsigned },
            MYSQL_TYPE_SHORT => Wire::Int { bytes: 2, unsigned },
            MYSQL_TYPE_INT24 => Wire::Int { bytes: 3, unsigned },
            MYSQL_TYPE_LONG => Wire::Int { bytes: 4, unsigned },
            MYSQL_TYPE_LONGLONG => Wire::Int { bytes: 8, unsigned },
            MYSQL_TYPE_FLOAT => Wire::Float,
            MYSQL_TYPE_DOUBLE => Wire::Double,
            MYSQL_TYPE_NEWDECIMAL if meta.len() >= 2 => Wire::Decimal {
                precision: byte(0),
                scale: byte(1),
            },
            MYSQL_TYPE_NEWDATE => Wire::Date,
            MYSQL_TYPE_YEAR => Wire::Year,
            MYSQL_TYPE_DATETIME2 if meta.len() == 1 => Wire::DateTime2 { fsp: byte(0) },
            MYSQL_TYPE_TIMESTAMP2 if meta.len() == 1 => Wire::Timestamp2 { fsp: byte(0) },
            MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING if meta.len() >= 2 => {
                let max = u16::from_le_bytes([byte(0), byte(1)]);
                Wire::Sized {
                    prefix: if max < 256 { 1 } else { 2 },
                }
            }
            // `get_column_type` has resolved the real type: this is a CHAR, whose maximum
            // length in bytes is split between the two metadata bytes (MySQL bug #37426).
            MYSQL_TYPE_STRING if meta.len() >= 2 && byte(0) >= 1 => {
                let (b0, b1) = (usize::from(byte(0)), usize::from(byte(1)));
                let max = if b0 & 0x30 != 0x30 {
                    b1 | (((b0 & 0x30) ^ 0x30) << 4)
                } else {
                    b1
                };
                Wire::Sized {
                    prefix: if max < 256 { 1 } else { 2 },
                }
            }
            MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB
                if (1..=4).contains(&byte(0)) =>
            {
                Wire::Sized {
                    prefix: usize::from(byte(0)),
                }
            }
            _ => Wire::Other,
        };
        WireColumn {
            wire,
            column_type,
            meta: meta.to_vec(),
            unsigned,
            name,
        }
    }

    /// The length of this column's value at the start of `buf`, or why there is none.
    fn span(&self, buf: &[u8]) -> std::result::Result<usize, String> {
        let short = || "the image ends before its columns do".to_string();
        let len = match self.wire {
            Wire::Int { bytes, .. } => bytes,
            Wire::Float => 4,
            Wire::Double => 8,
            Wire::Decimal { precision, scale } => decimal_bytes(precision, scale),
            Wire::Date => 3,
            Wire::Year => 1,
            Wire::DateTime2 { fsp } => 5 + fraction_bytes(fsp),
            Wire::Timestamp2 { fsp } => 4 + fraction_bytes(fsp),
            Wire::Sized { prefix } => prefix + le(buf.get(..prefix).ok_or_else(short)?) as usize,
            Wire::Other => {
                let mut parse = ParseBuf(buf);
                self.decode(&mut parse)
                    .map_err(|e| format!("undecodable {:?} value: {e}", self.column_type))?;
                buf.len() - parse.len()
            }
        };
        if len <= buf.len() {
            Ok(len)
        } else {
            Err(short())
        }
    }

    /// mysql_common's decoding of the value at the start of `buf`.
    fn decode<'a>(&'a self, buf: &mut ParseBuf<'a>) -> std::io::Result<BinlogValue<'static>> {
        BinlogValue::deserialize(
            (self.column_type, self.meta.as_slice(), self.unsigned, false),
            buf,
        )
        .map(BinlogValue::into_owned)
    }

    /// The value of `bytes` (this column's span) as mysql_common decodes it; JSON as its text.
    fn value(&self, bytes: &[u8]) -> std::result::Result<Value, String> {
        if self.wire == Wire::Year {
            // mysql_common reads the stored 0 of the year 0000 as 1900.
            return match bytes {
                [0] => Ok(Value::Int(0)),
                &[b] => Ok(Value::Int(1900 + i64::from(b))),
                _ => Err(format!("a YEAR of {} bytes", bytes.len())),
            };
        }
        match self.decode(&mut ParseBuf(bytes)) {
            Ok(BinlogValue::Value(v)) => Ok(v),
            Ok(BinlogValue::Jsonb(j)) => serde_json::Value::try_from(j)
                .map(|v| Value::Bytes(v.to_string().into_bytes()))
                .map_err(|e| format!("binary JSON that does not convert to text: {e}")),
            Ok(BinlogValue::JsonDiff(_)) => Err("a partial JSON update".to_string()),
            Err(e) => Err(format!("undecodable {:?} value: {e}", self.column_type)),
        }
    }

    /// Appends the value of `bytes` to `builder`: straight from the bytes where the fast path
    /// takes them, else through mysql_common's value and [`ColumnBuilder::append`].
    fn append(
        &self,
        builder: &mut ColumnBuilder,
        bytes: &[u8],
    ) -> std::result::Result<(), Unappended> {
        if fast(self.wire, builder, bytes).is_some() {
            return Ok(());
        }
        match self.value(bytes) {
            Ok(value) => builder.append(&value).map_err(|r| (r, render(&value))),
            Err(reason) => {
                builder.append_null();
                Err((Refused::Bad(reason), format!("0x{}", hex(bytes))))
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A little-endian unsigned integer of up to 8 bytes.
fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |v, &b| v << 8 | u64::from(b))
}

/// A big-endian unsigned integer of up to 8 bytes.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |v, &b| v << 8 | u64::from(b))
}

/// The fraction after a `DATETIME2`/`TIMESTAMP2`, in microseconds; `None` beyond its digits.
fn fraction_micros(bytes: &[u8]) -> Option<u32> {
    let (limit, scale) = match bytes.len() {
        0 => return Some(0),
        1 => (100, 10_000),
        2 => (10_000, 100),
        3 => (1_000_000, 1),
        _ => return None,
    };
    let v = be(bytes) as u32;
    (v < limit).then_some(v * scale)
}

/// Days from 0001-01-01 (chrono's day 1) to the epoch.
const EPOCH_FROM_CE: i32 = 719_163;

/// Appends `bytes` straight to `builder` for the common wire/column pairs; `None` (nothing
/// appended) for everything else, which goes through mysql_common and `types` instead.
fn fast(wire: Wire, builder: &mut ColumnBuilder, bytes: &[u8]) -> Option<()> {
    match (wire, builder.conv()) {
        (Wire::Int { unsigned, .. }, conv) => {
            let raw = le(bytes);
            let bits = 8 * bytes.len() as u32;
            let v: i128 = if unsigned {
                i128::from(raw)
            } else {
                // Sign-extend from the value's width.
                let shift = 64 - bits;
                i128::from(((raw << shift) as i64) >> shift)
            };
            match conv {
                Conv::Int8 => builder
                    .typed::<Int8Builder>()
                    .append_value(i8::try_from(v).ok()?),
                Conv::Int16 => builder
                    .typed::<Int16Builder>()
                    .append_value(i16::try_from(v).ok()?),
                Conv::Int24 | Conv::Int32 => builder
                    .typed::<Int32Builder>()
                    .append_value(i32::try_from(v).ok()?),
                Conv::Int64 => builder
                    .typed::<Int64Builder>()
                    .append_value(i64::try_from(v).ok()?),
                Conv::Unsigned64 => builder
                    .typed::<Decimal128Builder>()
                    .append_value(i128::from(u64::try_from(v).ok()?)),
                _ => return None,
            }
        }
        (Wire::Float, Conv::Float32) => builder
            .typed::<Float32Builder>()
            .append_value(f32::from_le_bytes(bytes.try_into().ok()?)),
        (Wire::Float, Conv::Float64) => builder
            .typed::<Float64Builder>()
            .append_value(f64::from(f32::from_le_bytes(bytes.try_into().ok()?))),
        (Wire::Double, Conv::Float64) => builder
            .typed::<Float64Builder>()
            .append_value(f64::from_le_bytes(bytes.try_into().ok()?)),
        (
            Wire::Decimal { precision, scale },
            Conv::Decimal {
                precision: p,
                scale: s,
            },
            // The column may have been widened since (more digits on either side of the point).
        ) if i16::from(scale) <= i16::from(*s)
            && i16::from(precision) - i16::from(scale) <= i16::from(*p) - i16::from(*s) =>
        {
            let v = decimal(bytes, precision, scale)?;
            let v = v.checked_mul(10i128.pow((i16::from(*s) - i16::from(scale)) as u32))?;
            builder.typed::<Decimal128Builder>().append_value(v);
        }
        (Wire::Date, Conv::Date) => {
            let v = le(bytes) as u32;
            let date = NaiveDate::from_ymd_opt((v >> 9) as i32, (v >> 5) & 15, v & 31)?;
            builder
                .typed::<Date32Builder>()
                .append_value(date.num_days_from_ce() - EPOCH_FROM_CE);
        }
        (Wire::DateTime2 { .. }, Conv::DateTime) => {
            let packed = be(bytes.get(..5)?).checked_sub(0x80_0000_0000)?;
            let micros = fraction_micros(&bytes[5..])?;
            let (ymd, hms) = (packed >> 17, packed & 0x1_FFFF);
            let (ym, day) = (ymd >> 5, ymd & 31);
            let time = NaiveDate::from_ymd_opt((ym / 13) as i32, (ym % 13) as u32, day as u32)?
                .and_hms_micro_opt(
                    (hms >> 12) as u32,
                    ((hms >> 6) & 63) as u32,
                    (hms & 63) as u32,
                    micros,
                )?;
            builder
                .typed::<TimestampMicrosecondBuilder>()
                .append_value(time.and_utc().timestamp_micros());
        }
        (Wire::Timestamp2 { .. }, Conv::Timestamp) => {
            // Unsigned seconds (MariaDB 11.5 reaches 2106); 0 is the zero date.
            let seconds = be(bytes.get(..4)?);
            if seconds == 0 {
                return None;
            }
            let micros = fraction_micros(&bytes[4..])?;
            builder
                .typed::<TimestampMicrosecondBuilder>()
                .append_value(seconds as i64 * 1_000_000 + i64::from(micros));
        }
        (Wire::Sized { prefix }, Conv::Text { latin1 }) => {
            let text = &bytes[prefix..];
            if *latin1 {
                builder
                    .typed::<StringBuilder>()
                    .append_value(super::types::cp1252(text));
            } else {
                builder
                    .typed::<StringBuilder>()
                    .append_value(std::str::from_utf8(text).ok()?);
            }
        }
        (Wire::Sized { prefix }, Conv::Binary) => {
            builder
                .typed::<BinaryBuilder>()
                .append_value(&bytes[prefix..]);
        }
        _ => return None,
    }
    Some(())
}

/// MySQL's binary decimal of `precision` digits, `scale` of them after the point, as the
/// unscaled integer; `None` for a group of digits out of its range (not a decimal MySQL wrote).
///
/// The digits are stored in groups of nine (four bytes, big-endian), the integral part's odd
/// leading digits and the fraction's odd trailing digits in fewer bytes. The first byte's top
/// bit is set for positive numbers; a negative number has every byte inverted.
fn decimal(bytes: &[u8], precision: u8, scale: u8) -> Option<i128> {
    if bytes.len() != decimal_bytes(precision, scale) || bytes.is_empty() {
        return None;
    }
    let negative = bytes[0] & 0x80 == 0;
    let mask = if negative { 0xFF } else { 0 };
    let mut at = 0;
    let mut group = |digits: usize| -> Option<i128> {
        let n = DIGIT_BYTES[digits];
        let mut v: u64 = 0;
        for (i, &b) in bytes.get(at..at + n)?.iter().enumerate() {
            let b = if at + i == 0 { b ^ 0x80 } else { b };
            v = v << 8 | u64::from(b ^ mask);
        }
        at += n;
        (v < 10u64.pow(digits as u32)).then_some(v as i128)
    };
    let integral = usize::from(precision.saturating_sub(scale));
    let scale = usize::from(scale);
    let mut value: i128 = 0;
    let mut take = |digits: usize, value: &mut i128| -> Option<()> {
        if digits > 0 {
            let g = group(digits)?;
            *value = value
                .checked_mul(10i128.pow(digits as u32))?
                .checked_add(g)?;
        }
        Some(())
    };
    take(integral % 9, &mut value)?;
    for _ in 0..integral / 9 {
        take(9, &mut value)?;
    }
    for _ in 0..scale / 9 {
        take(9, &mut value)?;
    }
    take(scale % 9, &mut value)?;
    Some(if negative { -value } else { value })
}

/// The columns of one TABLE_MAP and where their values go in the captured table.
#[derive(Debug)]
pub(super) struct Plan {
    /// The TABLE_MAP it was made from: a new one for the same table id makes a new plan.
    pub(super) table_map: TableMapEvent<'static>,
    pub(super) table: TableId,
    columns: Vec<WireColumn>,
    /// For each captured column, its column in the TABLE_MAP (none: an event written before
    /// the column was added).
    sources: Vec<Option<usize>>,
    /// TABLE_MAP columns the table no longer has (dropped after the event was written).
    unplaced: Vec<usize>,
    /// The TABLE_MAP columns of the captured table's key.
    key: Vec<Option<usize>>,
}

impl Plan {
    /// Columns are matched by name (the TABLE_MAP's full metadata, which the prerequisite
    /// checks ask for): a table's columns may have changed since the event was written.
    pub(super) fn new(table_map: &TableMapEvent<'_>, captured: &Captured) -> Result<Plan> {
        let table = captured.table.id.clone();
        let bad = |e: String| Error::Protocol(format!("the binlog's table map of {table}: {e}"));
        let meta = OptionalMetaExtractor::new(table_map.iter_optional_meta())
            .map_err(|e| bad(e.to_string()))?;
        let mut signedness = meta.iter_signedness();
        let mut names = meta.iter_column_name();
        let mut columns = Vec::new();
        for i in 0..table_map.columns_count() as usize {
            let column_type = table_map
                .get_column_type(i)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad(format!("no type for column {i}")))?;
            let unsigned = column_type.is_numeric_type() && signedness.next().unwrap_or(false);
            // Without names (binlog_row_metadata=MINIMAL) no column is placed, and a value
            // for one stops the table below rather than landing in the wrong column.
            let name = match names.next() {
                Some(name) => name.map_err(|e| bad(e.to_string()))?.name().into_owned(),
                None => format!("@{i}"),
            };
            let meta = table_map.get_column_metadata(i).unwrap_or_default();
            columns.push(WireColumn::new(column_type, meta, unsigned, name));
        }
        let position = |name: &str| columns.iter().position(|c| c.name == name);
        let sources: Vec<Option<usize>> = captured
            .table
            .columns
            .iter()
            .map(|c| position(&c.name))
            .collect();
        let unplaced = (0..columns.len())
            .filter(|&i| !sources.contains(&Some(i)))
            .collect();
        let key = captured.table.key.iter().map(|k| position(k)).collect();
        Ok(Plan {
            table_map: table_map.clone().into_owned(),
            table,
            columns,
            sources,
            unplaced,
            key,
        })
    }

    /// Splits the image at the start of `buf` (whose columns are those set in `present`) into
    /// its columns' bytes, `None` for null or absent ones, and moves `buf` past it.
    pub(super) fn split<'a>(
        &self,
        present: &[bool],
        buf: &mut &'a [u8],
        cells: &mut Vec<Option<&'a [u8]>>,
    ) -> Result<()> {
        let truncated = || {
            Error::Protocol(format!(
                "a row image of {} ends before its columns do",
                self.table
            ))
        };
        cells.clear();
        cells.resize(self.columns.len(), None);
        let count = present.iter().filter(|&&p| p).count();
        let nulls = buf.get(..count.div_ceil(8)).ok_or_else(truncated)?;
        let mut rest = &buf[nulls.len()..];
        let mut n = 0;
        for (i, column) in self.columns.iter().enumerate() {
            if !present.get(i).copied().unwrap_or(false) {
                continue;
            }
            let null = nulls[n / 8] & (1 << (n % 8)) != 0;
            n += 1;
            if null {
                continue;
            }
            let len = column.span(rest).map_err(|why| {
                Error::Protocol(format!(
                    "a row image of {}, column {}: {why}",
                    self.table, column.name
                ))
            })?;
            cells[i] = Some(&rest[..len]);
            rest = &rest[len..];
        }
        for &i in &self.unplaced {
            if cells[i].is_some() {
                return Err(Error::SchemaChange {
                    table: self.table.to_string(),
                    reason: format!(
                        "the binlog holds values of column {}, which the table no longer has \
                         (it was dropped after this change, and inlet started behind the \
                         drop): recreate the lake table",
                        self.columns[i].name
                    ),
                });
            }
        }
        *buf = rest;
        Ok(())
    }

    /// Whether two images of a row differ in the captured table's key.
    pub(super) fn key_changed(&self, before: &[Option<&[u8]>], after: &[Option<&[u8]>]) -> bool {
        self.key
            .iter()
            .flatten()
            .any(|&i| before.get(i) != after.get(i))
    }
}

/// The rows of a rows event, each as the operation and its images (split by `plan`), in the
/// order `visit` should append them: an update that changes the key deletes the old key first.
///
/// `visit` also gets the captured columns the image lacks. A session with `binlog_row_image` set
/// to `MINIMAL` or `NOBLOB` logs an insert or update without some columns, whose values the
/// binlog then does not hold; an update's key columns it leaves out are unchanged, and taken from
/// its before image.
pub(super) fn each_row<'a>(
    rows: &'a RowsEventData<'a>,
    plan: &Plan,
    mut visit: impl FnMut(&str, &[Option<&'a [u8]>], &[usize]) -> Result<()>,
) -> Result<()> {
    let n = plan.columns.len();
    let (before, after) = match rows {
        RowsEventData::PartialUpdateRowsEvent(_) => {
            return Err(Error::Protocol(format!(
                "{}: partial JSON updates cannot be captured whole; run SET GLOBAL \
                 binlog_row_value_options = ''",
                plan.table
            )));
        }
        // Which columns each image holds.
        _ => (
            rows.columns_before_image().map(|b| {
                (0..n)
                    .map(|i| b.get(i).is_some_and(|bit| *bit))
                    .collect::<Vec<_>>()
            }),
            rows.columns_after_image().map(|b| {
                (0..n)
                    .map(|i| b.get(i).is_some_and(|bit| *bit))
                    .collect::<Vec<_>>()
            }),
        ),
    };
    let has = |image: &Option<Vec<bool>>, i: usize| {
        image
            .as_ref()
            .is_some_and(|p| p.get(i).copied().unwrap_or(false))
    };
    // Key columns an update's after image leaves out, which its before image holds.
    let from_before: Vec<usize> = match (&before, &after) {
        (Some(_), Some(_)) => plan
            .key
            .iter()
            .flatten()
            .copied()
            .filter(|&i| !has(&after, i) && has(&before, i))
            .collect(),
        _ => Vec::new(),
    };
    // Captured columns the inserted or updated row lacks.
    let missing: Vec<usize> = plan
        .sources
        .iter()
        .enumerate()
        .filter_map(|(j, source)| {
            let i = (*source)?;
            (after.is_some() && !has(&after, i) && !from_before.contains(&i)).then_some(j)
        })
        .collect();
    let mut buf = rows.rows_data();
    let (mut old, mut new) = (Vec::new(), Vec::new());
    while !buf.is_empty() {
        if let Some(present) = &before {
            plan.split(present, &mut buf, &mut old)?;
        }
        if let Some(present) = &after {
            plan.split(present, &mut buf, &mut new)?;
        }
        for &i in &from_before {
            new[i] = old[i];
        }
        match (&before, &after) {
            (None, Some(_)) => visit("c", &new, &missing)?,
            (Some(_), None) => visit("d", &old, &[])?,
            (Some(_), Some(_)) => {
                if plan.key_changed(&old, &new) {
                    visit("d", &old, &[])?;
                }
                visit("u", &new, &missing)?;
            }
            (None, None) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use crate::mysql::test_event as event;

    /// Random bytes of a value of `wire`, most of them a value MySQL could have written (a
    /// decimal's groups in range, a plausible date) and the rest anything at all.
    fn random(rng: &mut StdRng, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.random::<u8>()).collect()
    }

    fn sample(rng: &mut StdRng, wire: Wire) -> Vec<u8> {
        let any = rng.random_bool(0.2);
        match wire {
            Wire::Decimal { precision, scale } if !any => {
                let negative = rng.random_bool(0.5);
                let integral = usize::from(precision - scale);
                let scale = usize::from(scale);
                let mut groups = vec![integral % 9];
                groups.extend(std::iter::repeat_n(9, integral / 9 + scale / 9));
                groups.push(scale % 9);
                let mut out = Vec::new();
                for digits in groups.into_iter().filter(|&d| d > 0) {
                    let v = rng.random_range(0..10u64.pow(digits as u32));
                    out.extend_from_slice(&v.to_be_bytes()[8 - DIGIT_BYTES[digits]..]);
                }
                out[0] ^= 0x80;
                if negative {
                    out.iter_mut().for_each(|b| *b = !*b);
                }
                out
            }
            Wire::DateTime2 { fsp } if !any => {
                let mut r = StdRng::seed_from_u64(rng.random());
                let (y, m, d) = (
                    r.random_range(0..10000u64),
                    r.random_range(0..13),
                    r.random_range(0..32),
                );
                let (h, mi, s) = (
                    r.random_range(0..24u64),
                    r.random_range(0..60),
                    r.random_range(0..60),
                );
                let packed =
                    0x80_0000_0000 + ((((y * 13 + m) << 5 | d) << 17) | h << 12 | mi << 6 | s);
                let mut out = packed.to_be_bytes()[3..].to_vec();
                let n = fraction_bytes(fsp);
                let frac = r.random_range(0..10u64.pow(2 * n as u32));
                out.extend_from_slice(&frac.to_be_bytes()[8 - n..]);
                out
            }
            Wire::Timestamp2 { fsp } => {
                // mysql_common reads the seconds as signed: compare below 2038 only.
                let mut out = rng.random_range(0..i32::MAX as u32).to_be_bytes().to_vec();
                let n = fraction_bytes(fsp);
                let frac = if any {
                    rng.random::<u32>() as u64
                } else {
                    rng.random_range(0..10u64.pow(2 * n as u32))
                };
                out.extend_from_slice(&frac.to_be_bytes()[8 - n..]);
                out
            }
            Wire::Sized { prefix } => {
                let len = rng.random_range(0..40usize);
                let mut out = (len as u64).to_le_bytes()[..prefix].to_vec();
                if any {
                    out.extend(random(rng, len));
                } else {
                    let text: String = (0..len)
                        .map(|_| ['a', 'Z', ' ', ',', 'ö', '€', '😀', '\0'][rng.random_range(0..8)])
                        .collect();
                    let text = text.as_bytes();
                    out[..prefix].copy_from_slice(&(text.len() as u64).to_le_bytes()[..prefix]);
                    out.extend_from_slice(text);
                }
                out
            }
            Wire::Int { bytes, .. } => random(rng, bytes),
            Wire::Float => random(rng, 4),
            Wire::Double => random(rng, 8),
            Wire::Decimal { precision, scale } => random(rng, decimal_bytes(precision, scale)),
            Wire::Date => random(rng, 3),
            Wire::Year => random(rng, 1),
            Wire::DateTime2 { fsp } => random(rng, 5 + fraction_bytes(fsp)),
            Wire::Other => Vec::new(),
        }
    }

    /// The fast path and mysql_common's decoder followed by `types` agree on every value the
    /// fast path takes, and it takes most of the values MySQL could have written.
    #[test]
    fn the_fast_path_appends_what_the_general_decoder_does() {
        use ColumnType::*;
        let decimal = |p: u8, s: u8| {
            (
                MYSQL_TYPE_NEWDECIMAL,
                vec![p, s],
                false,
                Conv::Decimal {
                    precision: p,
                    scale: s as i8,
                },
            )
        };
        let mut cases = vec![
            (MYSQL_TYPE_TINY, vec![], false, Conv::Int8),
            (MYSQL_TYPE_TINY, vec![], true, Conv::Int16),
            (MYSQL_TYPE_SHORT, vec![], false, Conv::Int16),
            (MYSQL_TYPE_SHORT, vec![], true, Conv::Int32),
            (MYSQL_TYPE_INT24, vec![], false, Conv::Int24),
            (MYSQL_TYPE_INT24, vec![], true, Conv::Int32),
            (MYSQL_TYPE_LONG, vec![], false, Conv::Int32),
            (MYSQL_TYPE_LONG, vec![], true, Conv::Int64),
            (MYSQL_TYPE_LONGLONG, vec![], false, Conv::Int64),
            (MYSQL_TYPE_LONGLONG, vec![], true, Conv::Unsigned64),
            // A column widened by ALTER after the event was written.
            (MYSQL_TYPE_SHORT, vec![], false, Conv::Int64),
            (MYSQL_TYPE_TINY, vec![], true, Conv::Unsigned64),
            (MYSQL_TYPE_FLOAT, vec![4], false, Conv::Float32),
            (MYSQL_TYPE_FLOAT, vec![4], false, Conv::Float64),
            (MYSQL_TYPE_DOUBLE, vec![8], false, Conv::Float64),
            decimal(1, 0),
            decimal(5, 5),
            decimal(9, 0),
            decimal(10, 2),
            decimal(12, 2),
            decimal(18, 9),
            decimal(20, 0),
            decimal(27, 13),
            decimal(38, 10),
            decimal(38, 0),
            (
                MYSQL_TYPE_NEWDECIMAL,
                vec![12, 2],
                false,
                Conv::Decimal {
                    precision: 14,
                    scale: 4,
                },
            ),
            (MYSQL_TYPE_NEWDATE, vec![], false, Conv::Date),
            (
                MYSQL_TYPE_VARCHAR,
                vec![40, 0],
                false,
                Conv::Text { latin1: false },
            ),
            (
                MYSQL_TYPE_VARCHAR,
                vec![0, 1],
                false,
                Conv::Text { latin1: true },
            ),
            (
                MYSQL_TYPE_STRING,
                vec![0xFE, 40],
                false,
                Conv::Text { latin1: false },
            ),
            (MYSQL_TYPE_BLOB, vec![2], false, Conv::Binary),
            (
                MYSQL_TYPE_BLOB,
                vec![3],
                false,
                Conv::Text { latin1: false },
            ),
            (MYSQL_TYPE_VARCHAR, vec![16, 0], false, Conv::Binary),
        ];
        for fsp in 0..=6 {
            cases.push((MYSQL_TYPE_DATETIME2, vec![fsp], false, Conv::DateTime));
            cases.push((MYSQL_TYPE_TIMESTAMP2, vec![fsp], false, Conv::Timestamp));
        }
        let mut rng = StdRng::seed_from_u64(0x1EE7);
        for (column_type, meta, unsigned, conv) in cases {
            let column = WireColumn::new(column_type, &meta, unsigned, "c".into());
            assert_ne!(column.wire, Wire::Other, "{column_type:?}");
            let (mut fast_builder, mut general) = (
                ColumnBuilder::new(conv.clone()),
                ColumnBuilder::new(conv.clone()),
            );
            let mut taken = 0;
            for _ in 0..3000 {
                let bytes = sample(&mut rng, column.wire);
                assert_eq!(
                    column.span(&bytes),
                    Ok(bytes.len()),
                    "{column_type:?} {bytes:?}"
                );
                if fast(column.wire, &mut fast_builder, &bytes).is_none() {
                    continue;
                }
                taken += 1;
                let value = column.value(&bytes).expect("mysql_common decodes it");
                general.append(&value).unwrap_or_else(|e| {
                    panic!("{conv:?} {bytes:?}: fast took {value:?}, types refuses it: {e:?}")
                });
                let (a, b) = (fast_builder.finish(), general.finish());
                assert_eq!(
                    a.to_data().buffers()[0].as_slice(),
                    b.to_data().buffers()[0].as_slice(),
                    "{column_type:?} {meta:?} {conv:?} {bytes:02x?}: {value:?}"
                );
                if a.to_data().buffers().len() > 1 {
                    assert_eq!(
                        a.to_data().buffers()[1].as_slice(),
                        b.to_data().buffers()[1].as_slice()
                    );
                }
                assert_eq!(a.is_null(0), b.is_null(0));
            }
            assert!(
                taken > 1000,
                "{column_type:?} {conv:?}: the fast path took only {taken} of 3000"
            );
        }
    }

    /// The general decoder reads the year 0000 (stored as 0) as 1900, which a SELECT does not.
    #[test]
    fn years_keep_the_year_0000() {
        let column = WireColumn::new(ColumnType::MYSQL_TYPE_YEAR, &[], true, "y".into());
        let mut builder = ColumnBuilder::new(Conv::Year);
        for byte in [0u8, 1, 124, 255] {
            assert_eq!(column.span(&[byte, 9]), Ok(1));
            column.append(&mut builder, &[byte]).unwrap();
        }
        let years = builder.finish();
        let years = years.as_primitive::<arrow::datatypes::Int16Type>();
        assert_eq!(years.values().to_vec(), [0, 1901, 2024, 2155]);
    }

    #[test]
    fn decimals_decode_as_mysql_writes_them() {
        // DECIMAL(14,4) 1234567890.1234 and its negative, from MySQL's documentation of the
        // format, and -0.0001.
        let positive = [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
        assert_eq!(decimal(&positive, 14, 4), Some(12_345_678_901_234));
        let negative: Vec<u8> = positive.iter().map(|b| !b).collect();
        assert_eq!(decimal(&negative, 14, 4), Some(-12_345_678_901_234));
        assert_eq!(
            decimal(&[0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE], 14, 4),
            Some(-1)
        );
        // A group of nine digits beyond 999999999 is not a decimal.
        assert_eq!(decimal(&[0x80, 0x3B, 0x9A, 0xCA, 0x00], 9, 0), None);
        assert_eq!(decimal(&[0x80], 9, 0), None);
    }

    /// The post-header of a v2 rows event of table 108 with six columns, all in each image.
    fn rows_body(images: usize, rows: &[u8]) -> Vec<u8> {
        let mut body = vec![108, 0, 0, 0, 0, 0, 1, 0, 2, 0, 6];
        body.extend(std::iter::repeat_n(0x3F, images));
        body.extend_from_slice(rows);
        body
    }

    /// Event bytes laid out as MySQL 8.0 writes them (the binlog format's documentation): a
    /// table map with MySQL's optional metadata (signedness of the numeric columns, names, the
    /// primary key), v2 rows events (types 30–32, with their extra-data length), a binary JSON
    /// column (type 245, which MariaDB does not have) and a partial JSON update (type 39).
    #[test]
    fn row_events_laid_out_as_mysql_8_writes_them() {
        use mysql_async::binlog::events::EventData;
        // id INT UNSIGNED PRIMARY KEY, name VARCHAR(40) utf8mb4, doc JSON, price DECIMAL(10,2),
        // at DATETIME(6), tiny TINYINT.
        let mut map = vec![108, 0, 0, 0, 0, 0, 1, 0];
        map.extend_from_slice(b"\x04shop\x00\x01t\x00\x06");
        map.extend_from_slice(&[3, 15, 245, 246, 18, 1]);
        map.extend_from_slice(&[6, 160, 0, 4, 10, 2, 6]);
        map.push(0b0011_1110);
        // SIGNEDNESS (most significant bit first): id unsigned, price and tiny signed.
        map.extend_from_slice(&[1, 1, 0b1000_0000]);
        let names = ["id", "name", "doc", "price", "at", "tiny"];
        map.extend_from_slice(&[4, names.iter().map(|n| 1 + n.len() as u8).sum()]);
        for name in names {
            map.push(name.len() as u8);
            map.extend_from_slice(name.as_bytes());
        }
        map.extend_from_slice(&[8, 1, 0]);
        let map_event = event(19, &map);
        let Some(EventData::TableMapEvent(table_map)) = map_event.read_data().unwrap() else {
            panic!("not a table map")
        };

        let column =
            |name: &str, data_type: &str, column_type: &str| super::super::catalog::Column {
                name: name.into(),
                data_type: data_type.into(),
                column_type: column_type.into(),
                nullable: true,
                charset: None,
            };
        let captured = Captured::new(MysqlTable {
            id: TableId::new("shop", "t"),
            columns: vec![
                column("id", "int", "int(10) unsigned"),
                column("name", "varchar", "varchar(40)"),
                column("doc", "json", "json"),
                column("price", "decimal", "decimal(10,2)"),
                column("at", "datetime", "datetime(6)"),
                column("tiny", "tinyint", "tinyint(4)"),
            ],
            key: vec!["id".into()],
        });
        let plan = Plan::new(&table_map, &captured).unwrap();

        // {"k":1} in MySQL's binary JSON: a small object of one key, its int16 value inlined.
        let json = [0x00, 1, 0, 12, 0, 11, 0, 1, 0, 0x05, 1, 0, b'k'];
        let mut first = vec![0x00, 0xFF, 0xFF, 0xFF, 0xFF, 5];
        first.extend_from_slice("Köln".as_bytes());
        first.extend_from_slice(&(json.len() as u32).to_le_bytes());
        first.extend_from_slice(&json);
        // -1234.56: the positive form 80 00 04 d2 38, every byte inverted.
        first.extend_from_slice(&[0x7F, 0xFF, 0xFB, 0x2D, 0xC7]);
        first.extend_from_slice(&[0x99, 0xB2, 0xBB, 0x7E, 0xFB, 0x0F, 0x42, 0x3F]);
        first.push(0x80);
        // id 1, name, doc and at null, price 0.01, tiny 127.
        let second = [0b0001_0110, 1, 0, 0, 0, 0x80, 0, 0, 0, 0x01, 0x7F];

        let mut out = Rows::new(&captured.convs);
        let mut ops = Vec::new();
        let mut append = |rows_event: &mysql_async::binlog::events::Event| -> Result<()> {
            let Some(EventData::RowsEvent(rows)) = rows_event.read_data().unwrap() else {
                panic!("not a rows event")
            };
            each_row(&rows, &plan, |op, cells, missing| {
                ops.push(op.to_string());
                out.append_image(&captured, &plan, cells, missing, op, 7, None)
            })
        };
        append(&event(
            30,
            &rows_body(1, &[first.clone(), second.to_vec()].concat()),
        ))
        .unwrap();
        // The key changes from 4294967295 to 7: the old key is deleted first.
        let mut moved = first.clone();
        moved[1..5].copy_from_slice(&[7, 0, 0, 0]);
        append(&event(31, &rows_body(2, &[first.clone(), moved].concat()))).unwrap();
        append(&event(32, &rows_body(1, &second))).unwrap();
        let err = append(&event(39, &rows_body(2, &[])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("binlog_row_value_options"), "{err}");

        assert_eq!(ops, ["c", "c", "d", "u", "d"]);
        let batch = out.finish(&captured).unwrap().batch;
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        use arrow::array::AsArray;
        use arrow::datatypes::{Decimal128Type, Int8Type, Int64Type, TimestampMicrosecondType};
        let ids: Vec<i64> = column("id").as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ids, [4294967295, 1, 4294967295, 7, 1]);
        let names = column("name");
        assert_eq!(names.as_string::<i32>().value(0), "Köln");
        assert!(names.is_null(1));
        assert_eq!(column("doc").as_string::<i32>().value(0), r#"{"k":1}"#);
        let prices = column("price");
        let prices = prices.as_primitive::<Decimal128Type>();
        assert_eq!((prices.value(0), prices.value(1)), (-123456, 1));
        let at = column("at");
        assert_eq!(
            at.as_primitive::<TimestampMicrosecondType>().value(0),
            1_709_251_199_999_999
        );
        assert!(at.is_null(1));
        let tiny = column("tiny");
        let tiny = tiny.as_primitive::<Int8Type>();
        assert_eq!((tiny.value(0), tiny.value(1)), (-128, 127));
    }
}
