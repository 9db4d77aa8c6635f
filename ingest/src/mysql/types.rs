//! MySQL/MariaDB column types as Arrow types, and the one conversion of MySQL values (as the
//! binlog decodes them, or as a text-protocol `SELECT` returns them) into Arrow builders.
//!
//! | MySQL                                   | Arrow                                         |
//! |-----------------------------------------|-----------------------------------------------|
//! | `tinyint`/`smallint`/`mediumint`/`int`/`bigint` | Int8/Int16/Int32/Int32/Int64          |
//! | the same `unsigned`                     | the next wider type; `bigint unsigned` Decimal128(20, 0) |
//! | `decimal(p,s)`, p ≤ 38                  | Decimal128(p, s) (wider: exact text)          |
//! | `float` / `double`                      | Float32 / Float64 (bit-exact)                 |
//! | `bit(1)` / `bit(n)`                     | Boolean / Binary (big-endian bytes)           |
//! | `date`                                  | Date32                                        |
//! | `datetime(fsp)` / `timestamp(fsp)`      | Timestamp(µs) / Timestamp(µs, "UTC")          |
//! | `time(fsp)`                             | Int64 µs (signed, may exceed a day)           |
//! | `year`                                  | Int16                                         |
//! | `char`/`varchar`/`*text` (any charset)  | Utf8 (decoded by the column's character set)  |
//! | `binary`/`varbinary`/`*blob`            | Binary                                        |
//! | `enum` / `set`                          | Utf8 (the labels; a set's joined by `,`)      |
//! | `json`                                  | Utf8 (JSON text)                              |
//! | `geometry` and kin                      | Binary (WKB, without MySQL's SRID prefix)     |
//! | anything else                           | Utf8, with a warning                          |
//!
//! Zero dates (`0000-00-00`) have no representation: they are reported, never stored as null.

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::NaiveDate;
use mysql_async::Value;

use super::catalog::Column;

/// How a column's values are converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conv {
    Int8,
    Int16,
    /// Signed `mediumint`: the binlog decoder gives its 3 bytes without sign extension.
    Int24,
    Int32,
    Int64,
    /// `bigint unsigned`.
    Unsigned64,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Float32,
    Float64,
    Bit1,
    Bits,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    /// Text in a character set (`latin1` is MySQL's cp1252).
    Text {
        latin1: bool,
    },
    Binary,
    /// `binary(n)`: values are zero-padded to n bytes (the binlog leaves the padding out).
    FixedBinary(usize),
    Enum(Vec<String>),
    Set(Vec<String>),
    Json,
    Geometry,
    /// A type with no mapping: its text.
    Other,
}

impl Conv {
    /// The conversion of a column as `information_schema.COLUMNS` describes it.
    pub fn of(column: &Column) -> Conv {
        let unsigned = column.column_type.contains("unsigned");
        let latin1 = column
            .charset
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("latin1"));
        match column.data_type.as_str() {
            "tinyint" if unsigned => Conv::Int16,
            "tinyint" => Conv::Int8,
            "smallint" if unsigned => Conv::Int32,
            "smallint" => Conv::Int16,
            "mediumint" if unsigned => Conv::Int32,
            "mediumint" => Conv::Int24,
            "int" | "integer" if unsigned => Conv::Int64,
            "int" | "integer" => Conv::Int32,
            "bigint" if unsigned => Conv::Unsigned64,
            "bigint" => Conv::Int64,
            "decimal" | "numeric" => {
                let (p, s) = parenthesised(&column.column_type)
                    .and_then(|args| {
                        let mut parts = args.split(',').map(|p| p.trim().parse::<u8>().ok());
                        Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
                    })
                    .unwrap_or((10, 0));
                if p <= 38 {
                    Conv::Decimal {
                        precision: p,
                        scale: s as i8,
                    }
                } else {
                    Conv::Other
                }
            }
            "float" => Conv::Float32,
            "double" | "real" => Conv::Float64,
            "bit" if column.column_type == "bit(1)" => Conv::Bit1,
            "bit" => Conv::Bits,
            "date" => Conv::Date,
            "datetime" => Conv::DateTime,
            "timestamp" => Conv::Timestamp,
            "time" => Conv::Time,
            "year" => Conv::Year,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                Conv::Text { latin1 }
            }
            "binary" => parenthesised(&column.column_type)
                .and_then(|n| n.trim().parse().ok())
                .map_or(Conv::Binary, Conv::FixedBinary),
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Conv::Binary,
            "enum" => Conv::Enum(labels(&column.column_type)),
            "set" => Conv::Set(labels(&column.column_type)),
            "json" => Conv::Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" => Conv::Geometry,
            _ => Conv::Other,
        }
    }

    /// The conversion of the same column's values as a `SELECT` returns them: text arrives in
    /// the connection's character set (utf8mb4) whatever the column's, while the binlog carries
    /// the column's own bytes.
    pub fn for_select(&self) -> Conv {
        match self {
            // A SELECT also returns enum and set values as their labels.
            Conv::Text { .. } | Conv::Enum(_) | Conv::Set(_) => Conv::Text { latin1: false },
            other => other.clone(),
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Conv::Int8 => DataType::Int8,
            Conv::Int16 | Conv::Year => DataType::Int16,
            Conv::Int24 | Conv::Int32 => DataType::Int32,
            Conv::Int64 | Conv::Time => DataType::Int64,
            Conv::Unsigned64 => DataType::Decimal128(20, 0),
            Conv::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            Conv::Float32 => DataType::Float32,
            Conv::Float64 => DataType::Float64,
            Conv::Bit1 => DataType::Boolean,
            Conv::Bits | Conv::Binary | Conv::FixedBinary(_) | Conv::Geometry => DataType::Binary,
            Conv::Date => DataType::Date32,
            Conv::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Conv::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Conv::Text { .. } | Conv::Enum(_) | Conv::Set(_) | Conv::Json | Conv::Other => {
                DataType::Utf8
            }
        }
    }
}

/// The text between the first `(` and the last `)`.
fn parenthesised(column_type: &str) -> Option<&str> {
    let start = column_type.find('(')?;
    let end = column_type.rfind(')')?;
    column_type.get(start + 1..end)
}

/// The labels of `enum('a','b''c')` / `set(...)`.
fn labels(column_type: &str) -> Vec<String> {
    let Some(inner) = parenthesised(column_type) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '\'') => quoted = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                current.push('\'');
                chars.next();
            }
            (true, '\'') => {
                quoted = false;
                out.push(std::mem::take(&mut current));
            }
            (true, '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (true, c) => current.push(c),
            (false, _) => {}
        }
    }
    out
}

/// Why a value could not be appended as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The value exists but the lake column cannot hold it (a zero date): stored as null, and
    /// the row goes to recovery.
    NoRepresentation(String),
    /// The value does not fit the column at all (a bug or a schema the binlog disagrees with).
    Bad(String),
}

/// Builds one Arrow column from MySQL values.
pub struct ColumnBuilder {
    conv: Conv,
    builder: Box<dyn ArrayBuilder>,
}

impl std::fmt::Debug for ColumnBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnBuilder")
            .field("conv", &self.conv)
            .field("len", &self.builder.len())
            .finish()
    }
}

impl ColumnBuilder {
    pub fn new(conv: Conv) -> Self {
        let builder: Box<dyn ArrayBuilder> = match &conv {
            Conv::Int8 => Box::new(Int8Builder::new()),
            Conv::Int16 | Conv::Year => Box::new(Int16Builder::new()),
            Conv::Int24 | Conv::Int32 => Box::new(Int32Builder::new()),
            Conv::Int64 | Conv::Time => Box::new(Int64Builder::new()),
            Conv::Unsigned64 => {
                Box::new(Decimal128Builder::new().with_data_type(DataType::Decimal128(20, 0)))
            }
            Conv::Decimal { precision, scale } => Box::new(
                Decimal128Builder::new().with_data_type(DataType::Decimal128(*precision, *scale)),
            ),
            Conv::Float32 => Box::new(Float32Builder::new()),
            Conv::Float64 => Box::new(Float64Builder::new()),
            Conv::Bit1 => Box::new(BooleanBuilder::new()),
            Conv::Bits | Conv::Binary | Conv::FixedBinary(_) | Conv::Geometry => {
                Box::new(BinaryBuilder::new())
            }
            Conv::Date => Box::new(Date32Builder::new()),
            Conv::DateTime => Box::new(TimestampMicrosecondBuilder::new()),
            Conv::Timestamp => Box::new(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            Conv::Text { .. } | Conv::Enum(_) | Conv::Set(_) | Conv::Json | Conv::Other => {
                Box::new(StringBuilder::new())
            }
        };
        ColumnBuilder { conv, builder }
    }

    pub fn finish(&mut self) -> ArrayRef {
        self.builder.finish()
    }

    /// The conversion this builder was made for.
    pub fn conv(&self) -> &Conv {
        &self.conv
    }

    /// The Arrow builder, as the type [`ColumnBuilder::new`] made for the conversion.
    pub fn typed<T: 'static>(&mut self) -> &mut T {
        typed(&mut self.builder)
    }

    pub fn append_null(&mut self) {
        match &self.conv {
            Conv::Int8 => self.typed::<Int8Builder>().append_null(),
            Conv::Int16 | Conv::Year => self.typed::<Int16Builder>().append_null(),
            Conv::Int24 | Conv::Int32 => self.typed::<Int32Builder>().append_null(),
            Conv::Int64 | Conv::Time => self.typed::<Int64Builder>().append_null(),
            Conv::Unsigned64 | Conv::Decimal { .. } => {
                self.typed::<Decimal128Builder>().append_null()
            }
            Conv::Float32 => self.typed::<Float32Builder>().append_null(),
            Conv::Float64 => self.typed::<Float64Builder>().append_null(),
            Conv::Bit1 => self.typed::<BooleanBuilder>().append_null(),
            Conv::Bits | Conv::Binary | Conv::FixedBinary(_) | Conv::Geometry => {
                self.typed::<BinaryBuilder>().append_null()
            }
            Conv::Date => self.typed::<Date32Builder>().append_null(),
            Conv::DateTime | Conv::Timestamp => {
                self.typed::<TimestampMicrosecondBuilder>().append_null()
            }
            Conv::Text { .. } | Conv::Enum(_) | Conv::Set(_) | Conv::Json | Conv::Other => {
                self.typed::<StringBuilder>().append_null()
            }
        }
    }

    /// Appends one value; on `Err` a null was appended in its place.
    pub fn append(&mut self, value: &Value) -> Result<(), Refused> {
        let result = self.try_append(value);
        if result.is_err() {
            self.append_null();
        }
        result
    }

    fn try_append(&mut self, value: &Value) -> Result<(), Refused> {
        if *value == Value::NULL {
            self.append_null();
            return Ok(());
        }
        let bad = |what: &str| Refused::Bad(format!("{value:?} is not a valid {what}"));
        let ColumnBuilder { conv, builder } = self;
        match conv {
            Conv::Int8 => {
                let v = int(value)
                    .and_then(|v| i8::try_from(v).ok())
                    .ok_or_else(|| bad("tinyint"))?;
                typed::<Int8Builder>(builder).append_value(v);
            }
            Conv::Int16 => {
                let v = int(value)
                    .and_then(|v| i16::try_from(v).ok())
                    .ok_or_else(|| bad("int16"))?;
                typed::<Int16Builder>(builder).append_value(v);
            }
            Conv::Year => {
                let v = int(value)
                    .and_then(|v| i16::try_from(v).ok())
                    .ok_or_else(|| bad("year"))?;
                typed::<Int16Builder>(builder).append_value(v);
            }
            Conv::Int24 => {
                let v = int(value).ok_or_else(|| bad("mediumint"))?;
                // 2^23..2^24 cannot be a signed mediumint: the decoder's unextended negative.
                let v = if (1 << 23..1 << 24).contains(&v) {
                    v - (1 << 24)
                } else {
                    v
                };
                let v = i32::try_from(v).map_err(|_| bad("mediumint"))?;
                typed::<Int32Builder>(builder).append_value(v);
            }
            Conv::Int32 => {
                let v = int(value)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| bad("int32"))?;
                typed::<Int32Builder>(builder).append_value(v);
            }
            Conv::Int64 => {
                let v = int(value)
                    .and_then(|v| i64::try_from(v).ok())
                    .ok_or_else(|| bad("int64"))?;
                typed::<Int64Builder>(builder).append_value(v);
            }
            Conv::Unsigned64 => {
                let v = int(value)
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| bad("bigint unsigned"))?;
                typed::<Decimal128Builder>(builder).append_value(i128::from(v));
            }
            Conv::Decimal { scale, .. } => {
                let text = text(value).ok_or_else(|| bad("decimal"))?;
                let v = parse_decimal(&text, *scale).ok_or_else(|| bad("decimal"))?;
                typed::<Decimal128Builder>(builder).append_value(v);
            }
            Conv::Float32 => {
                let v = match value {
                    Value::Float(f) => *f,
                    Value::Double(d) => *d as f32,
                    _ => text(value)
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| bad("float"))?,
                };
                typed::<Float32Builder>(builder).append_value(v);
            }
            Conv::Float64 => {
                let v = match value {
                    Value::Double(d) => *d,
                    Value::Float(f) => f64::from(*f),
                    _ => text(value)
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| bad("double"))?,
                };
                typed::<Float64Builder>(builder).append_value(v);
            }
            Conv::Bit1 => {
                let v = match value {
                    Value::Bytes(b) => b.iter().any(|&x| x != 0),
                    Value::Int(i) => *i != 0,
                    Value::UInt(u) => *u != 0,
                    _ => return Err(bad("bit(1)")),
                };
                typed::<BooleanBuilder>(builder).append_value(v);
            }
            Conv::Bits | Conv::Binary => {
                let Value::Bytes(b) = value else {
                    return Err(bad("binary value"));
                };
                typed::<BinaryBuilder>(builder).append_value(b);
            }
            Conv::FixedBinary(n) => {
                let Value::Bytes(b) = value else {
                    return Err(bad("binary value"));
                };
                let mut padded = b.clone();
                if padded.len() < *n {
                    padded.resize(*n, 0);
                }
                typed::<BinaryBuilder>(builder).append_value(padded);
            }
            Conv::Geometry => {
                let Value::Bytes(b) = value else {
                    return Err(bad("geometry"));
                };
                // MySQL's internal format: a 4-byte SRID, then WKB.
                typed::<BinaryBuilder>(builder).append_value(b.get(4..).unwrap_or_default());
            }
            Conv::Date => {
                let (y, m, d) = date_parts(value).ok_or_else(|| bad("date"))?;
                let date = NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                    .ok_or_else(|| zero_date(value))?;
                let days = (date - epoch()).num_days();
                typed::<Date32Builder>(builder).append_value(days as i32);
            }
            Conv::Timestamp => {
                let micros = match epoch_micros(value) {
                    // The binlog carries a TIMESTAMP as seconds since the epoch; 0 is the zero date.
                    Some(0) => return Err(zero_date(value)),
                    Some(micros) => micros,
                    None => datetime_micros(value)?,
                };
                typed::<TimestampMicrosecondBuilder>(builder).append_value(micros);
            }
            Conv::DateTime => {
                let micros = datetime_micros(value)?;
                typed::<TimestampMicrosecondBuilder>(builder).append_value(micros);
            }
            Conv::Time => {
                let micros = time_micros(value).ok_or_else(|| bad("time"))?;
                typed::<Int64Builder>(builder).append_value(micros);
            }
            Conv::Text { latin1 } => {
                let Value::Bytes(b) = value else {
                    return Err(bad("text"));
                };
                let text = if *latin1 { cp1252(b) } else { utf8(b)? };
                typed::<StringBuilder>(builder).append_value(text);
            }
            Conv::Enum(labels) => {
                let label = match value {
                    Value::Int(_) | Value::UInt(_) | Value::Bytes(_) => {
                        let i = index(value).ok_or_else(|| bad("enum index"))?;
                        // 0 is the "invalid value" MySQL stores as ''.
                        if i == 0 {
                            String::new()
                        } else {
                            labels
                                .get(i as usize - 1)
                                .cloned()
                                .ok_or_else(|| bad("enum index"))?
                        }
                    }
                    _ => return Err(bad("enum")),
                };
                typed::<StringBuilder>(builder).append_value(label);
            }
            Conv::Set(labels) => {
                let text = match value {
                    Value::Int(_) | Value::UInt(_) | Value::Bytes(_) => {
                        let bits = index(value).ok_or_else(|| bad("set bits"))?;
                        labels
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| bits & (1 << i) != 0)
                            .map(|(_, l)| l.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    }
                    _ => return Err(bad("set")),
                };
                typed::<StringBuilder>(builder).append_value(text);
            }
            Conv::Json | Conv::Other => {
                let text = text(value).ok_or_else(|| bad("text"))?;
                typed::<StringBuilder>(builder).append_value(text);
            }
        }
        Ok(())
    }
}

fn typed<T: 'static>(builder: &mut Box<dyn ArrayBuilder>) -> &mut T {
    builder
        .as_any_mut()
        .downcast_mut::<T>()
        .expect("the builder made for this conversion")
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn zero_date(value: &Value) -> Refused {
    Refused::NoRepresentation(format!("{} is a zero date", render(value)))
}

/// A value as MySQL would print it, for messages.
pub fn render(value: &Value) -> String {
    match value {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Date(y, m, d, h, mi, s, us) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        other => other.as_sql(false),
    }
}

/// A key value as the snapshot keeps it between ranges and in its checkpoints (text), `None`
/// for null. [`key_param`] turns it back into a statement parameter that the server compares
/// exactly as it orders the column, which keyset paging needs (a range that compared otherwise
/// would skip rows): integers as integers rather than strings (which compare as doubles, losing
/// bigints past 2^53), decimals cast to their own type, bytes as hex, enums and sets by their
/// number (as `ORDER BY` sorts them), times as times.
pub fn key_text(conv: &Conv, value: &Value) -> Option<String> {
    Some(match (conv, value) {
        (_, Value::NULL) => return None,
        (Conv::Binary | Conv::FixedBinary(_) | Conv::Bits | Conv::Geometry, Value::Bytes(b)) => {
            b.iter().map(|byte| format!("{byte:02x}")).collect()
        }
        (_, Value::Time(negative, days, h, m, s, us)) => format!(
            "{}{}:{m:02}:{s:02}.{us:06}",
            if *negative { "-" } else { "" },
            *days * 24 + u32::from(*h)
        ),
        // Display of a float is the shortest text that parses back to the same bits.
        (_, Value::Float(f)) => f.to_string(),
        (_, Value::Double(f)) => f.to_string(),
        (_, other) => render(other),
    })
}

/// The placeholder and parameter of a key value kept as [`key_text`].
pub fn key_param(conv: &Conv, text: &str) -> (String, Value) {
    let bytes = || Value::Bytes(text.as_bytes().to_vec());
    let plain = |value: Value| ("?".to_string(), value);
    match conv {
        Conv::Int8
        | Conv::Int16
        | Conv::Int24
        | Conv::Int32
        | Conv::Int64
        | Conv::Unsigned64
        | Conv::Year => plain(match (text.parse::<i64>(), text.parse::<u64>()) {
            (Ok(i), _) => Value::Int(i),
            (_, Ok(u)) => Value::UInt(u),
            _ => bytes(),
        }),
        Conv::Decimal { precision, scale } => {
            (format!("CAST(? AS DECIMAL({precision}, {scale}))"), bytes())
        }
        Conv::Float32 => plain(text.parse().map_or_else(|_| bytes(), Value::Float)),
        Conv::Float64 => plain(text.parse().map_or_else(|_| bytes(), Value::Double)),
        Conv::Binary | Conv::FixedBinary(_) | Conv::Geometry => ("UNHEX(?)".to_string(), bytes()),
        Conv::Bit1 | Conv::Bits => ("CAST(CONV(?, 16, 10) AS UNSIGNED)".to_string(), bytes()),
        Conv::Date | Conv::DateTime | Conv::Timestamp => {
            plain(parse_datetime(text).unwrap_or_else(bytes))
        }
        Conv::Time => plain(parse_time(text).unwrap_or_else(bytes)),
        Conv::Enum(labels) => plain(
            labels
                .iter()
                .position(|l| l == text)
                .map_or_else(bytes, |i| Value::UInt(i as u64 + 1)),
        ),
        Conv::Set(labels) => plain(
            text.split(',')
                .filter(|l| !l.is_empty())
                .map(|l| labels.iter().position(|x| x == l).map(|i| 1u64 << i))
                .sum::<Option<u64>>()
                .map_or_else(bytes, Value::UInt),
        ),
        Conv::Text { .. } | Conv::Json | Conv::Other => plain(bytes()),
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (as [`render`] writes a date or time stamp).
fn parse_datetime(text: &str) -> Option<Value> {
    let (date, time) = text.split_once(' ').unwrap_or((text, "00:00:00"));
    let mut d = date.splitn(3, '-').map(str::parse::<u32>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, us) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(str::parse::<u8>);
    let (h, mi, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    Some(Value::Date(
        u16::try_from(y).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(day).ok()?,
        h,
        mi,
        s,
        us.parse().ok()?,
    ))
}

/// `[-]H:MM:SS.ffffff` (as [`key_text`] writes a time), hours past a day carried into days.
fn parse_time(text: &str) -> Option<Value> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (hms, us) = rest.split_once('.').unwrap_or((rest, "0"));
    let mut t = hms.splitn(3, ':').map(str::parse::<u32>);
    let (h, m, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    Some(Value::Time(
        negative,
        h / 24,
        u8::try_from(h % 24).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(s).ok()?,
        us.parse().ok()?,
    ))
}

fn int(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// An enum index or set bit mask as the binlog carries it: a number, or its little-endian bytes.
fn index(value: &Value) -> Option<u64> {
    match value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::UInt(u) => Some(*u),
        Value::Bytes(b) if b.len() <= 8 => Some(
            b.iter()
                .rev()
                .fold(0u64, |acc, &byte| acc << 8 | u64::from(byte)),
        ),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Date(..) | Value::Time(..) => Some(render(value)),
        Value::NULL => None,
    }
}

fn utf8(bytes: &[u8]) -> Result<String, Refused> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Refused::Bad(format!("{bytes:?} is not valid UTF-8")))
}

/// MySQL's `latin1` is Windows-1252: 0x80–0x9F are printable characters, not C1 controls.
pub(super) fn cp1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// `[-]digits[.digits]` scaled to `scale` digits, exactly (no float on the way).
fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let scale = usize::try_from(scale).ok()?;
    if fraction.len() > scale {
        return None;
    }
    let mut value: i128 = 0;
    for c in whole
        .chars()
        .chain(fraction.chars())
        .chain(std::iter::repeat_n('0', scale - fraction.len()))
    {
        value = value
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)?))?;
    }
    Some(if negative { -value } else { value })
}

fn date_parts(value: &Value) -> Option<(u16, u8, u8)> {
    match value {
        Value::Date(y, m, d, ..) => Some((*y, *m, *d)),
        Value::Bytes(b) => {
            let t = std::str::from_utf8(b).ok()?;
            let mut parts = t.get(..10)?.split('-');
            Some((
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
            ))
        }
        _ => None,
    }
}

fn datetime_micros(value: &Value) -> Result<i64, Refused> {
    let bad = || Refused::Bad(format!("{value:?} is not a valid datetime"));
    let (y, m, d, h, mi, s, us) = match value {
        Value::Date(y, m, d, h, mi, s, us) => (*y, *m, *d, *h, *mi, *s, *us),
        Value::Bytes(b) => {
            // `YYYY-MM-DD HH:MM:SS[.ffffff]` from the text protocol.
            let t = std::str::from_utf8(b).map_err(|_| bad())?;
            let (y, m, d) = date_parts(value).ok_or_else(bad)?;
            let time = t.get(11..).unwrap_or("00:00:00");
            let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
            let mut parts = hms.split(':').map(|p| p.parse::<u8>().ok());
            let (h, mi, s) = (
                parts.next().flatten().unwrap_or(0),
                parts.next().flatten().unwrap_or(0),
                parts.next().flatten().unwrap_or(0),
            );
            let us = format!("{frac:0<6}")
                .get(..6)
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
            (y, m, d, h, mi, s, us)
        }
        _ => return Err(bad()),
    };
    let date = NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
        .ok_or_else(|| zero_date(value))?;
    let time = date
        .and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us)
        .ok_or_else(bad)?;
    Ok(time.and_utc().timestamp_micros())
}

/// `seconds[.fraction]` since the epoch (a TIMESTAMP as the binlog decodes it).
fn epoch_micros(value: &Value) -> Option<i64> {
    let text = match value {
        Value::Bytes(b) => std::str::from_utf8(b).ok()?,
        Value::Int(i) => return i.checked_mul(1_000_000),
        Value::UInt(u) => return i64::try_from(*u).ok()?.checked_mul(1_000_000),
        _ => return None,
    };
    if text.contains(['-', ':', ' ']) {
        return None;
    }
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = seconds.parse().ok()?;
    let micros: i64 = format!("{fraction:0<6}").get(..6)?.parse().ok()?;
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

fn time_micros(value: &Value) -> Option<i64> {
    let (negative, days, h, m, s, us) = match value {
        Value::Time(n, d, h, m, s, us) => (*n, *d, *h, *m, *s, *us),
        Value::Bytes(b) => {
            let t = std::str::from_utf8(b).ok()?;
            let (negative, t) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t),
            };
            let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
            let mut parts = hms.split(':');
            let hours: u32 = parts.next()?.parse().ok()?;
            let m: u8 = parts.next()?.parse().ok()?;
            let s: u8 = parts.next()?.parse().ok()?;
            let us = format!("{frac:0<6}").get(..6)?.parse().ok()?;
            (negative, hours / 24, (hours % 24) as u8, m, s, us)
        }
        _ => return None,
    };
    let micros = ((i64::from(days) * 24 + i64::from(h)) * 60 + i64::from(m)) * 60_000_000
        + i64::from(s) * 1_000_000
        + i64::from(us);
    Some(if negative { -micros } else { micros })
}

/// The Arrow builders of a table's columns.
pub fn builders(convs: &[Conv]) -> Vec<ColumnBuilder> {
    convs.iter().cloned().map(ColumnBuilder::new).collect()
}

/// Finished arrays of `builders`.
pub fn finish(builders: &mut [ColumnBuilder]) -> Vec<ArrayRef> {
    builders.iter_mut().map(|b| b.finish()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};

    #[test]
    fn key_values_come_back_from_their_text_as_parameters_of_their_column_type() {
        let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
        let cases: Vec<(Conv, Value, Value, &str)> = vec![
            // Past 2^53: as a string the server would compare it as a double.
            (
                Conv::Int64,
                Value::Int(9_007_199_254_740_993),
                Value::Int(9_007_199_254_740_993),
                "?",
            ),
            (Conv::Int64, Value::Int(i64::MIN), Value::Int(i64::MIN), "?"),
            (
                Conv::Unsigned64,
                Value::UInt(u64::MAX),
                Value::UInt(u64::MAX),
                "?",
            ),
            (Conv::Year, Value::Int(2155), Value::Int(2155), "?"),
            (
                Conv::Decimal {
                    precision: 30,
                    scale: 10,
                },
                bytes(b"-12345678901234567890.0123456789"),
                bytes(b"-12345678901234567890.0123456789"),
                "CAST(? AS DECIMAL(30, 10))",
            ),
            // Bytes that are not UTF-8 survive as hex.
            (
                Conv::Binary,
                bytes(&[0xff, 0, 0x80]),
                bytes(b"ff0080"),
                "UNHEX(?)",
            ),
            (
                Conv::Bits,
                bytes(&[1, 0]),
                bytes(b"0100"),
                "CAST(CONV(?, 16, 10) AS UNSIGNED)",
            ),
            (
                Conv::Float64,
                Value::Double(0.1 + 0.2),
                Value::Double(0.1 + 0.2),
                "?",
            ),
            (
                Conv::Float32,
                Value::Float(f32::MIN_POSITIVE),
                Value::Float(f32::MIN_POSITIVE),
                "?",
            ),
            (
                Conv::DateTime,
                Value::Date(2024, 2, 29, 23, 59, 59, 999_999),
                Value::Date(2024, 2, 29, 23, 59, 59, 999_999),
                "?",
            ),
            (
                Conv::Date,
                Value::Date(1, 1, 1, 0, 0, 0, 0),
                Value::Date(1, 1, 1, 0, 0, 0, 0),
                "?",
            ),
            (
                Conv::Time,
                Value::Time(true, 34, 22, 59, 59, 5),
                Value::Time(true, 34, 22, 59, 59, 5),
                "?",
            ),
            // Enums and sets order by their number, so they are compared by it.
            (
                Conv::Enum(vec!["b".into(), "a".into()]),
                bytes(b"a"),
                Value::UInt(2),
                "?",
            ),
            (
                Conv::Set(vec!["x".into(), "y".into(), "z".into()]),
                bytes(b"x,z"),
                Value::UInt(5),
                "?",
            ),
            (
                Conv::Text { latin1: false },
                bytes("Köln, 1".as_bytes()),
                bytes("Köln, 1".as_bytes()),
                "?",
            ),
        ];
        for (conv, value, param, placeholder) in cases {
            let text = key_text(&conv, &value).unwrap();
            assert_eq!(
                key_param(&conv, &text),
                (placeholder.to_string(), param),
                "{conv:?} {text}"
            );
        }
        assert_eq!(key_text(&Conv::Int32, &Value::NULL), None);
    }

    fn column(data_type: &str, column_type: &str) -> Column {
        Column {
            name: "c".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: true,
            charset: None,
        }
    }

    #[test]
    fn types_map_without_loss() {
        let cases = [
            ("tinyint", "tinyint(4)", DataType::Int8),
            ("tinyint", "tinyint(3) unsigned", DataType::Int16),
            ("smallint", "smallint(5) unsigned", DataType::Int32),
            ("mediumint", "mediumint(8) unsigned", DataType::Int32),
            ("int", "int(10) unsigned", DataType::Int64),
            ("bigint", "bigint(20) unsigned", DataType::Decimal128(20, 0)),
            ("decimal", "decimal(38,10)", DataType::Decimal128(38, 10)),
            ("decimal", "decimal(65,2)", DataType::Utf8),
            ("bit", "bit(1)", DataType::Boolean),
            ("bit", "bit(9)", DataType::Binary),
            (
                "timestamp",
                "timestamp(6)",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            ("enum", "enum('a','b')", DataType::Utf8),
            ("point", "point", DataType::Binary),
        ];
        for (data_type, column_type, expected) in cases {
            assert_eq!(
                Conv::of(&column(data_type, column_type)).data_type(),
                expected,
                "{column_type}"
            );
        }
        assert_eq!(
            Conv::of(&column("enum", "enum('x','it''s','a,b')")),
            Conv::Enum(vec!["x".into(), "it's".into(), "a,b".into()])
        );
    }

    #[test]
    fn values_from_the_binlog_and_from_text_agree() {
        let mut b = ColumnBuilder::new(Conv::Unsigned64);
        b.append(&Value::UInt(u64::MAX)).unwrap();
        b.append(&Value::Bytes(b"18446744073709551615".to_vec()))
            .unwrap();
        let a = b.finish();
        let a = a.as_primitive::<Decimal128Type>();
        assert_eq!(a.value(0), i128::from(u64::MAX));
        assert_eq!(a.value(1), i128::from(u64::MAX));

        let mut b = ColumnBuilder::new(Conv::Decimal {
            precision: 10,
            scale: 2,
        });
        for v in ["-12345678.90", "0.01", "7", ".5"] {
            b.append(&Value::Bytes(v.as_bytes().to_vec())).unwrap();
        }
        assert!(b.append(&Value::Bytes(b"1.234".to_vec())).is_err());
        let a = b.finish();
        let a = a.as_primitive::<Decimal128Type>();
        assert_eq!(
            (a.value(0), a.value(1), a.value(2), a.value(3)),
            (-1234567890, 1, 700, 50)
        );

        let mut b = ColumnBuilder::new(Conv::DateTime);
        b.append(&Value::Date(2024, 2, 29, 23, 59, 59, 999_999))
            .unwrap();
        b.append(&Value::Bytes(b"2024-02-29 23:59:59.999999".to_vec()))
            .unwrap();
        assert_eq!(
            b.append(&Value::Date(0, 0, 0, 0, 0, 0, 0)),
            Err(Refused::NoRepresentation(
                "0000-00-00 00:00:00.000000 is a zero date".into()
            ))
        );
        let a = b.finish();
        let a = a.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(a.value(0), a.value(1));
        assert!(a.is_null(2));

        let mut b = ColumnBuilder::new(Conv::Date);
        b.append(&Value::Bytes(b"1000-01-01".to_vec())).unwrap();
        b.append(&Value::Date(9999, 12, 31, 0, 0, 0, 0)).unwrap();
        let a = b.finish();
        let a = a.as_primitive::<Date32Type>();
        assert_eq!(
            a.value(0),
            (NaiveDate::from_ymd_opt(1000, 1, 1).unwrap() - epoch()).num_days() as i32
        );

        let mut b = ColumnBuilder::new(Conv::Time);
        b.append(&Value::Time(true, 34, 22, 59, 59, 0)).unwrap();
        b.append(&Value::Bytes(b"-838:59:59.000000".to_vec()))
            .unwrap();
        let a = b.finish();
        let a = a.as_primitive::<Int64Type>();
        assert_eq!(a.value(0), a.value(1));
        assert_eq!(a.value(0), -((838 * 3600 + 59 * 60 + 59) * 1_000_000));

        let mut b = ColumnBuilder::new(Conv::Text { latin1: true });
        b.append(&Value::Bytes(vec![0x80, b'K', 0xF6, b'l', b'n']))
            .unwrap();
        let a = b.finish();
        assert_eq!(a.as_string::<i32>().value(0), "€Köln");

        let mut b = ColumnBuilder::new(Conv::Set(vec!["a".into(), "b".into(), "c".into()]));
        b.append(&Value::UInt(5)).unwrap();
        b.append(&Value::Bytes(vec![5])).unwrap();
        let a = b.finish();
        assert_eq!(a.as_string::<i32>().value(0), a.as_string::<i32>().value(1));

        let mut b = ColumnBuilder::new(Conv::Float64);
        let bits = f64::from_bits(0x7FEF_FFFF_FFFF_FFFF);
        b.append(&Value::Double(bits)).unwrap();
        let a = b.finish();
        assert_eq!(
            a.as_primitive::<arrow::datatypes::Float64Type>()
                .value(0)
                .to_bits(),
            bits.to_bits()
        );
    }
}
