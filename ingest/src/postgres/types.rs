//! PostgreSQL types as Arrow types, and the one conversion of PostgreSQL text values into Arrow
//! column builders: the stream's (pgoutput text tuples), and the snapshot's for types it reads
//! as their text output (see [`super::binary`] for the ones it decodes from binary `COPY`).
//!
//! | PostgreSQL                                   | Arrow                                  |
//! |----------------------------------------------|----------------------------------------|
//! | `bool`                                       | Boolean                                |
//! | `int2` / `int4` / `int8`, `oid`              | Int16 / Int32 / Int64, Int64           |
//! | `float4` / `float8`                          | Float32 / Float64                      |
//! | `numeric(p, s)`, p ≤ 38, 0 ≤ s ≤ p           | Decimal128(p, s) (`NaN` rejected)      |
//! | `numeric` (no precision)                     | Utf8 (exact decimal text)              |
//! | `text`, `varchar`, `char(n)`, `name`, `"char"` | Utf8                                 |
//! | `bytea`                                      | Binary                                 |
//! | `date`                                       | Date32 (±infinity rejected)            |
//! | `time`                                       | Int64 µs since midnight                |
//! | `timestamp` / `timestamptz`                  | Timestamp(µs) / Timestamp(µs, "UTC")   |
//! | `uuid`, `json`, `jsonb`, enums               | Utf8                                   |
//! | one-dimensional arrays of the above          | List(item)                             |
//! | domains                                      | as their base type                     |
//! | anything else                                | Utf8 (text output), with a warning     |
//!
//! Sessions must use `DateStyle=ISO`, `TimeZone=UTC`, `bytea_output=hex` and
//! `extra_float_digits=3` ([`SESSION_OPTIONS`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};

/// Session settings that make text output parse the same way everywhere.
pub const SESSION_OPTIONS: &str = "-c DateStyle=ISO -c TimeZone=UTC -c bytea_output=hex -c extra_float_digits=3 -c IntervalStyle=postgres";

/// What the catalog says about one type (`pg_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub oid: u32,
    pub name: String,
    /// `typtype`: b base, e enum, d domain, c composite, r range, …
    pub kind: u8,
    /// `typelem` of array types (typcategory 'A'), else 0.
    pub element: u32,
    /// `typbasetype` of domains, else 0.
    pub base: u32,
    pub base_typmod: i32,
}

/// The types of a database, by OID.
pub type TypeCatalog = HashMap<u32, TypeInfo>;

/// How text values of a column become Arrow values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conv {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Decimal(u8, i8),
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    List(Box<Conv>),
}

impl Conv {
    pub fn data_type(&self) -> DataType {
        match self {
            Conv::Bool => DataType::Boolean,
            Conv::I16 => DataType::Int16,
            Conv::I32 => DataType::Int32,
            Conv::I64 | Conv::Time => DataType::Int64,
            Conv::F32 => DataType::Float32,
            Conv::F64 => DataType::Float64,
            Conv::Decimal(p, s) => DataType::Decimal128(*p, *s),
            Conv::Text => DataType::Utf8,
            Conv::Bytea => DataType::Binary,
            Conv::Date => DataType::Date32,
            Conv::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Conv::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Conv::List(item) => DataType::List(item_field(item)),
        }
    }
}

fn item_field(item: &Conv) -> FieldRef {
    Arc::new(Field::new("item", item.data_type(), true))
}

/// The conversion of a column of type `oid` with modifier `typmod`; `Err` holds the type name
/// when the column falls back to text (the caller warns, naming the column).
pub fn conversion(catalog: &TypeCatalog, oid: u32, typmod: i32) -> Result<Conv, (Conv, String)> {
    if let Some(conv) = builtin(oid, typmod) {
        return Ok(conv);
    }
    let Some(info) = catalog.get(&oid) else {
        return Err((Conv::Text, format!("type OID {oid}")));
    };
    match info.kind {
        b'e' => Ok(Conv::Text),
        b'd' if info.base != 0 => {
            let typmod = if typmod >= 0 {
                typmod
            } else {
                info.base_typmod
            };
            conversion(catalog, info.base, typmod)
        }
        _ if info.element != 0 => match conversion(catalog, info.element, typmod) {
            Ok(item @ Conv::List(_)) | Err((item, _)) => Err((item, info.name.clone())),
            Ok(item) => Ok(Conv::List(Box::new(item))),
        }
        .map_err(|(_, name)| (Conv::Text, name)),
        _ => Err((Conv::Text, info.name.clone())),
    }
}

fn builtin(oid: u32, typmod: i32) -> Option<Conv> {
    Some(match oid {
        16 => Conv::Bool,
        21 => Conv::I16,
        23 => Conv::I32,
        20 | 26 => Conv::I64,
        700 => Conv::F32,
        701 => Conv::F64,
        1700 => numeric(typmod),
        17 => Conv::Bytea,
        18 | 19 | 25 | 1042 | 1043 | 114 | 3802 | 2950 => Conv::Text,
        1082 => Conv::Date,
        1083 => Conv::Time,
        1114 => Conv::Timestamp,
        1184 => Conv::TimestampTz,
        _ => return None,
    })
}

fn numeric(typmod: i32) -> Conv {
    if typmod < 4 {
        return Conv::Text;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // The scale is an 11-bit signed number since PostgreSQL 15.
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    if (1..=38).contains(&precision) && (0..=precision).contains(&scale) {
        Conv::Decimal(precision as u8, scale as i8)
    } else {
        Conv::Text
    }
}

/// An Arrow builder fed with PostgreSQL text values.
#[derive(Debug)]
pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    Time(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder, i8),
    Text(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    List {
        item: FieldRef,
        offsets: Vec<i32>,
        validity: NullBufferBuilder,
        child: Box<ColumnBuilder>,
    },
}

/// Why a text value could not be converted (the caller names the column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue(pub String);

impl ColumnBuilder {
    pub fn new(conv: &Conv) -> ColumnBuilder {
        ColumnBuilder::with_capacity(conv, 1024)
    }

    /// A builder with room for `rows` values (and as many bytes per variable-length value).
    pub fn with_capacity(conv: &Conv, rows: usize) -> ColumnBuilder {
        match conv {
            Conv::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(rows)),
            Conv::I16 => ColumnBuilder::I16(Int16Builder::with_capacity(rows)),
            Conv::I32 => ColumnBuilder::I32(Int32Builder::with_capacity(rows)),
            Conv::I64 => ColumnBuilder::I64(Int64Builder::with_capacity(rows)),
            Conv::Time => ColumnBuilder::Time(Int64Builder::with_capacity(rows)),
            Conv::F32 => ColumnBuilder::F32(Float32Builder::with_capacity(rows)),
            Conv::F64 => ColumnBuilder::F64(Float64Builder::with_capacity(rows)),
            Conv::Decimal(p, s) => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(rows).with_data_type(DataType::Decimal128(*p, *s)),
                *s,
            ),
            Conv::Text => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows)),
            Conv::Bytea => ColumnBuilder::Bytea(BinaryBuilder::with_capacity(rows, rows)),
            Conv::Date => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
            Conv::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows), false)
            }
            Conv::TimestampTz => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
                true,
            ),
            Conv::List(item) => ColumnBuilder::List {
                item: item_field(item),
                offsets: Vec::from([0]),
                validity: NullBufferBuilder::new(rows),
                child: Box::new(ColumnBuilder::with_capacity(item, rows)),
            },
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnBuilder::Bool(b) => b.len(),
            ColumnBuilder::I16(b) => b.len(),
            ColumnBuilder::I32(b) => b.len(),
            ColumnBuilder::I64(b) | ColumnBuilder::Time(b) => b.len(),
            ColumnBuilder::F32(b) => b.len(),
            ColumnBuilder::F64(b) => b.len(),
            ColumnBuilder::Decimal(b, _) => b.len(),
            ColumnBuilder::Text(b) => b.len(),
            ColumnBuilder::Bytea(b) => b.len(),
            ColumnBuilder::Date(b) => b.len(),
            ColumnBuilder::Timestamp(b, _) => b.len(),
            ColumnBuilder::List { offsets, .. } => offsets.len() - 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::I16(b) => b.append_null(),
            ColumnBuilder::I32(b) => b.append_null(),
            ColumnBuilder::I64(b) | ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::F32(b) => b.append_null(),
            ColumnBuilder::F64(b) => b.append_null(),
            ColumnBuilder::Decimal(b, _) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Bytea(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b, _) => b.append_null(),
            ColumnBuilder::List {
                offsets, validity, ..
            } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                validity.append_null();
            }
        }
    }

    /// Appends one value given in PostgreSQL's text output format. `Ok(false)`: the value has no
    /// Arrow representation (numeric `NaN` and `±Infinity`, date/timestamp `±infinity`, a
    /// timestamp past 294247 AD) and was stored as null. An error is fatal for the builder (a
    /// list may be partly appended).
    pub fn append_text(&mut self, text: &str) -> Result<bool, BadValue> {
        // Timestamps past 294247 AD are found by their own parse below.
        let special = match self {
            ColumnBuilder::Timestamp(..) => matches!(text, "infinity" | "-infinity"),
            _ => !self.represents(text),
        };
        if special {
            self.append_null();
            return Ok(false);
        }
        let bad = |what: &str| BadValue(format!("{text:?} is not a valid {what}"));
        match self {
            ColumnBuilder::Bool(b) => match text {
                "t" | "true" => b.append_value(true),
                "f" | "false" => b.append_value(false),
                _ => return Err(bad("boolean")),
            },
            ColumnBuilder::I16(b) => b.append_value(text.parse().map_err(|_| bad("int2"))?),
            ColumnBuilder::I32(b) => b.append_value(text.parse().map_err(|_| bad("int4"))?),
            ColumnBuilder::I64(b) => b.append_value(text.parse().map_err(|_| bad("int8"))?),
            ColumnBuilder::Time(b) => b.append_value(parse_time(text).ok_or_else(|| bad("time"))?),
            ColumnBuilder::F32(b) => {
                b.append_value(parse_float(text).ok_or_else(|| bad("float4"))? as f32)
            }
            ColumnBuilder::F64(b) => {
                b.append_value(parse_float(text).ok_or_else(|| bad("float8"))?)
            }
            ColumnBuilder::Decimal(b, scale) => {
                b.append_value(parse_decimal(text, *scale).ok_or_else(|| bad("numeric"))?)
            }
            ColumnBuilder::Text(b) => b.append_value(text),
            ColumnBuilder::Bytea(b) => {
                b.append_value(parse_bytea(text).ok_or_else(|| bad("bytea (hex)"))?)
            }
            ColumnBuilder::Date(b) => b.append_value(parse_date(text).ok_or_else(|| bad("date"))?),
            ColumnBuilder::Timestamp(b, tz) => {
                let micros = parse_timestamp(text, *tz).ok_or_else(|| bad("timestamp"))?;
                match i64::try_from(micros) {
                    Ok(micros) => b.append_value(micros),
                    Err(_) => {
                        b.append_null();
                        return Ok(false);
                    }
                }
            }
            ColumnBuilder::List {
                offsets,
                validity,
                child,
                ..
            } => {
                let elements = parse_array(text).ok_or_else(|| bad("array"))?;
                // An element without a representation rejects the whole array (a null element
                // would change it silently).
                if elements.iter().flatten().any(|v| !child.represents(v)) {
                    offsets.push(offsets.last().copied().unwrap_or(0));
                    validity.append_null();
                    return Ok(false);
                }
                for element in &elements {
                    match element {
                        None => child.append_null(),
                        Some(v) => {
                            child.append_text(v)?;
                        }
                    }
                }
                offsets.push(child.len() as i32);
                validity.append_non_null();
            }
        }
        Ok(true)
    }

    /// Whether the value `text` (valid or not) has an Arrow representation in this builder.
    fn represents(&self, text: &str) -> bool {
        match self {
            ColumnBuilder::Decimal(..) => !matches!(text, "NaN" | "Infinity" | "-Infinity"),
            ColumnBuilder::Date(_) => !matches!(text, "infinity" | "-infinity"),
            ColumnBuilder::Timestamp(_, tz) => {
                !matches!(text, "infinity" | "-infinity")
                    && parse_timestamp(text, *tz).is_none_or(|m| i64::try_from(m).is_ok())
            }
            _ => true,
        }
    }

    /// The values so far as an array; the builder is left empty.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) | ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, _) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytea(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b, _) => Arc::new(b.finish()),
            ColumnBuilder::List {
                item,
                offsets,
                validity,
                child,
            } => {
                let values = child.finish();
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = validity.finish();
                Arc::new(ListArray::new(item.clone(), offsets, values, nulls))
            }
        }
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// `-123.45` at `scale` as an unscaled i128 (extra fraction digits must be zeros).
pub fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    for b in int.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let scale = usize::try_from(scale).ok()?;
    let frac = frac.as_bytes();
    for i in 0..scale {
        let d = match frac.get(i) {
            Some(b) if b.is_ascii_digit() => i128::from(b - b'0'),
            Some(_) => return None,
            None => 0,
        };
        value = value.checked_mul(10)?.checked_add(d)?;
    }
    if frac.iter().skip(scale).any(|&b| b != b'0') {
        return None;
    }
    Some(if negative { -value } else { value })
}

fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// `YYYY-MM-DD` (ISO; `… BC` for years before 1) as days since 1970-01-01.
fn parse_date(text: &str) -> Option<i32> {
    match text.strip_suffix(" BC") {
        Some(t) => parse_ymd(t, true),
        None => parse_ymd(text, false),
    }
}

/// `YYYY-MM-DD` (of the era `bc` says) as days since the Unix epoch (PostgreSQL's dates reach
/// year 5874897, far past chrono's range).
fn parse_ymd(text: &str, bc: bool) -> Option<i32> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let year = if bc { 1 - year } else { year };
    i32::try_from(days_from_civil(year, month, day)?).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 is 1 BC); `None` if there is no
/// such day. (H. Hinnant's `days_from_civil`, in eras of 400 years.)
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day == 0 || day > days_in_month || year.unsigned_abs() > 1 << 40 {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (year.div_euclid(400), year.rem_euclid(400));
    let day_of_year = (153 * i64::from((month + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let (era, day_of_era) = (days.div_euclid(146_097), days.rem_euclid(146_097));
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight (24:00:00 allowed).
fn parse_time(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let (s, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let s: i64 = s.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros: i64 = 0;
    for i in 0..6 {
        micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]` as microseconds since the Unix epoch (UTC
/// when an offset is given), which may be beyond 64 bits (PostgreSQL's timestamps reach 294276
/// AD, Arrow's microseconds since 1970 294247 AD).
fn parse_timestamp(text: &str, with_offset: bool) -> Option<i128> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (date, time) = text.split_once(' ')?;
    let (time, offset_secs) = if with_offset {
        let at = time.rfind(['+', '-'])?;
        let (time, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let mut secs = 0i64;
        for (i, part) in offset[1..].split(':').enumerate() {
            let v: i64 = part.parse().ok()?;
            secs += v * [3600, 60, 1].get(i)?;
        }
        (time, sign * secs)
    } else {
        (time, 0)
    };
    let days = parse_ymd(date, bc)?;
    let micros = parse_time(time)?;
    Some(
        i128::from(days) * 86_400_000_000 + i128::from(micros)
            - i128::from(offset_secs) * 1_000_000,
    )
}

/// The elements of a one-dimensional array literal `{a,"b c",NULL}` (a `[l:u]=` bounds prefix is
/// ignored; nested dimensions are flattened).
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let text = match text.find("={") {
        Some(at) if text.starts_with('[') => &text[at + 1..],
        _ => text,
    };
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    let mut current: Option<(String, bool)> = None;
    let chars: Vec<char> = text.chars().collect();
    let _ = bytes;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => {}
            '}' | ',' => {
                if let Some((value, quoted)) = current.take() {
                    out.push(if !quoted && value == "NULL" {
                        None
                    } else {
                        Some(value)
                    });
                }
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    if i < chars.len() {
                        value.push(chars[i]);
                    }
                    i += 1;
                }
                current = Some((value, true));
            }
            _ => {
                let entry = current.get_or_insert_with(|| (String::new(), false));
                if c == '\\' && i + 1 < chars.len() {
                    i += 1;
                    entry.0.push(chars[i]);
                } else if !c.is_whitespace() || !entry.0.is_empty() {
                    entry.0.push(c);
                }
            }
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, Int32Type, TimestampMicrosecondType};

    #[test]
    fn numeric_typmods() {
        // numeric(12,2): ((12 << 16) | 2) + 4
        assert_eq!(numeric((12 << 16 | 2) + 4), Conv::Decimal(12, 2));
        assert_eq!(numeric(-1), Conv::Text);
        assert_eq!(numeric((50 << 16) + 4), Conv::Text);
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_decimal("-12.30", 2), Some(-1230));
        assert_eq!(parse_decimal("5", 3), Some(5000));
        assert_eq!(parse_decimal("1.234", 2), None);
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("0001-01-01 BC"), parse_date("0000-01-01"));
        assert_eq!(parse_time("24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_time("00:00:01.5"), Some(1_500_000));
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:01.000001", false),
            Some(1_000_001)
        );
        assert_eq!(parse_timestamp("1970-01-01 01:00:00+01", true), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00-00:30", true),
            Some(1_800_000_000)
        );
        assert_eq!(parse_bytea("\\x00ff"), Some(vec![0, 255]));
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn civil_dates_agree_with_chrono_and_reach_postgres_limits() {
        use chrono::Datelike;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-95_000_000i64..95_000_000).step_by(9973).chain(-800..800) {
            let date = epoch + chrono::Duration::days(days);
            let (y, m, d) = civil_from_days(days);
            assert_eq!(
                (y, m, d),
                (i64::from(date.year()), date.month(), date.day())
            );
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2000, 13, 1), None);
        // PostgreSQL's first and last dates (`date '5874897-12-31' - date '1970-01-01'`).
        assert_eq!(parse_date("5874897-12-31"), Some(2_145_042_905));
        assert_eq!(parse_date("4714-11-24 BC"), Some(-2_440_588));
        assert_eq!(civil_from_days(2_145_042_905), (5_874_897, 12, 31));
    }

    #[test]
    fn values_without_an_arrow_representation_are_rejected_not_wrapped() {
        let mut t = ColumnBuilder::new(&Conv::Timestamp);
        assert_eq!(t.append_text("294247-01-10 04:00:54.775807"), Ok(true));
        assert_eq!(t.append_text("294247-01-10 04:00:54.775808"), Ok(false));
        assert_eq!(t.append_text("294276-12-31 23:59:59.999999"), Ok(false));
        assert_eq!(t.append_text("4714-11-24 00:00:00 BC"), Ok(true));
        let a = t.finish();
        let a = a.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(a.value(0), i64::MAX);
        assert!(a.is_null(1) && a.is_null(2));
        assert_eq!(a.value(3), -2_440_588 * 86_400_000_000);
        let mut n = ColumnBuilder::new(&Conv::Decimal(10, 2));
        for special in ["NaN", "Infinity", "-Infinity"] {
            assert_eq!(n.append_text(special), Ok(false), "{special}");
        }
        let mut d = ColumnBuilder::new(&Conv::Date);
        assert!(
            d.append_text("Infinity").is_err(),
            "dates spell it infinity"
        );
        // One element without a representation rejects its array, not just the element.
        let mut l = ColumnBuilder::new(&Conv::List(Box::new(Conv::Timestamp)));
        assert_eq!(
            l.append_text("{\"2000-01-01 00:00:00\",infinity}"),
            Ok(false)
        );
        assert_eq!(l.append_text("{\"294270-01-01 00:00:00\"}"), Ok(false));
        assert_eq!(l.append_text("{\"2000-01-01 00:00:00\",NULL}"), Ok(true));
        let a = l.finish();
        let a = a.as_list::<i32>();
        assert!(a.is_null(0) && a.is_null(1) && !a.is_null(2));
        assert_eq!(a.value(2).len(), 2);
    }

    #[test]
    fn arrays() {
        assert_eq!(
            parse_array(r#"{1,NULL,"NULL","a \"b\"",c\,d}"#).unwrap(),
            vec![
                Some("1".into()),
                None,
                Some("NULL".into()),
                Some("a \"b\"".into()),
                Some("c,d".into())
            ]
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(parse_array("[0:1]={1,2}").unwrap().len(), 2);
        let mut b = ColumnBuilder::new(&Conv::List(Box::new(Conv::I32)));
        b.append_text("{1,2}").unwrap();
        b.append_null();
        b.append_text("{}").unwrap();
        assert!(b.append_text("{3,x}").is_err());
        let array = b.finish();
        let list = array.as_list::<i32>();
        assert_eq!(list.len(), 3);
        assert!(list.is_null(1));
        assert_eq!(list.value(0).as_primitive::<Int32Type>().values(), &[1, 2]);
        assert_eq!(list.value(2).len(), 0);
    }

    #[test]
    fn builders() {
        let mut d = ColumnBuilder::new(&Conv::Decimal(10, 2));
        d.append_text("1.50").unwrap();
        assert_eq!(d.append_text("NaN"), Ok(false));
        assert!(d.append_text("x").is_err());
        let a = d.finish();
        assert_eq!(a.as_primitive::<Decimal128Type>().value(0), 150);
        let mut t = ColumnBuilder::new(&Conv::TimestampTz);
        t.append_text("2000-01-01 00:00:00+00").unwrap();
        let a = t.finish();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            946_684_800_000_000
        );
        assert_eq!(a.data_type(), &Conv::TimestampTz.data_type());
        let mut dt = ColumnBuilder::new(&Conv::Date);
        dt.append_text("2000-01-01").unwrap();
        assert_eq!(dt.finish().as_primitive::<Date32Type>().value(0), 10957);
    }
}
