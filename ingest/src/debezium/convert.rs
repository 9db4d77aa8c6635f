//! Arrow arrays built column-wise from JSON values.
//!
//! A column is built from one [`Cell`] per row: the JSON value and the
//! [`Kind`] that says how that row's schema encodes it. Leaves go through
//! typed builders; lists, structs and maps gather the cells of their children
//! and build those recursively, so no per-cell arrays are made.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, ArrowPrimitiveType, BinaryBuilder, BooleanBuilder, Decimal128Builder, ListArray,
    MapArray, NullBufferBuilder, PrimitiveArray, PrimitiveBuilder, StringBuilder, StructArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DecimalType, Fields, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use arrow::error::ArrowError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use super::Path;
use super::schema::{Column, Kind, Unit, map_entries};
use crate::error::{Error, Result};

/// One row's value of a column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell<'a> {
    pub line: usize,
    /// `None` when null or absent.
    pub value: Option<&'a Value>,
    /// How this row's schema encodes the value.
    pub kind: &'a Kind,
    /// A null is allowed even if the column is not nullable: the row is a
    /// delete whose `before` holds only key columns, or the parent is null.
    pub null_ok: bool,
}

impl<'a> Cell<'a> {
    pub fn new(line: usize, value: Option<&'a Value>, kind: &'a Kind, null_ok: bool) -> Self {
        Cell {
            line,
            value: value.filter(|v| !v.is_null()),
            kind,
            null_ok,
        }
    }
}

/// Largest total size of the values of one Utf8/Binary array or the items of
/// one list (32-bit offsets).
const MAX_OFFSET: usize = i32::MAX as usize;

/// Builds the array of `column` (the merged column) from its cells.
pub(crate) fn build_array(column: &Column, cells: &[Cell<'_>], path: &Path) -> Result<ArrayRef> {
    if !column.nullable
        && let Some(c) = cells.iter().find(|c| c.value.is_none() && !c.null_ok)
    {
        return Err(bad(
            c,
            path,
            "null or missing value for a non-optional field".to_owned(),
        ));
    }
    match &column.kind {
        Kind::List(item) => build_list(item, cells, path),
        Kind::Struct(children) => build_struct(children, cells, path),
        Kind::Map { key, value } => build_map(key, value, cells, path),
        leaf => build_leaf(&leaf.data_type(), cells, path),
    }
}

fn bad(cell: &Cell<'_>, path: &Path, reason: String) -> Error {
    Error::BadValue {
        line: cell.line,
        column: path.to_string(),
        reason,
    }
}

/// A row's schema disagrees with the merged one (cannot happen after a
/// successful merge; reported rather than panicking).
fn mismatch(cell: &Cell<'_>, path: &Path, expected: &str) -> Error {
    bad(
        cell,
        path,
        format!(
            "internal error: the line's schema has {} where {expected} was expected",
            cell.kind.describe()
        ),
    )
}

fn build_list(item: &Column, cells: &[Cell<'_>], path: &Path) -> Result<ArrayRef> {
    let item_path = Path::Item(path);
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0_i32);
    let mut nulls = NullBufferBuilder::new(cells.len());
    let mut items = Vec::new();
    for c in cells {
        match c.value {
            None => nulls.append_null(),
            Some(Value::Array(values)) => {
                let Kind::List(item_kind) = c.kind else {
                    return Err(mismatch(c, path, "a list"));
                };
                items.extend(
                    values
                        .iter()
                        .map(|v| Cell::new(c.line, Some(v), &item_kind.kind, false)),
                );
                nulls.append_non_null();
            }
            Some(other) => {
                return Err(bad(
                    c,
                    path,
                    format!("expected an array, found {}", show(other)),
                ));
            }
        }
        offsets.push(offset(items.len(), c, path)?);
    }
    let values = build_array(item, &items, &item_path)?;
    Ok(Arc::new(ListArray::try_new(
        Arc::new(item.field()),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        values,
        nulls.finish(),
    )?))
}

fn offset(len: usize, c: &Cell<'_>, path: &Path) -> Result<i32> {
    i32::try_from(len).map_err(|_| {
        bad(
            c,
            path,
            "more than 2^31 values in one column (Arrow 32-bit offsets)".to_owned(),
        )
    })
}

fn build_struct(children: &[Column], cells: &[Cell<'_>], path: &Path) -> Result<ArrayRef> {
    let mut nulls = NullBufferBuilder::new(cells.len());
    for c in cells {
        match c.value {
            None => nulls.append_null(),
            Some(Value::Object(_)) if matches!(c.kind, Kind::Struct(_)) => nulls.append_non_null(),
            Some(Value::Object(_)) => return Err(mismatch(c, path, "a struct")),
            Some(other) => {
                return Err(bad(
                    c,
                    path,
                    format!("expected an object, found {}", show(other)),
                ));
            }
        }
    }
    let mut arrays = Vec::with_capacity(children.len());
    for child in children {
        let child_path = Path::Field(path, &child.name);
        let child_cells: Vec<Cell<'_>> = cells
            .iter()
            .map(|c| match (c.value, c.kind) {
                (Some(Value::Object(object)), Kind::Struct(row_children)) => {
                    match row_children.iter().find(|rc| rc.name == child.name) {
                        Some(rc) => Cell::new(c.line, object.get(&child.name), &rc.kind, false),
                        // Not in this line's schema: the merged child is nullable.
                        None => Cell::new(c.line, None, &child.kind, true),
                    }
                }
                // The struct itself is null.
                _ => Cell::new(c.line, None, &child.kind, true),
            })
            .collect();
        arrays.push(build_array(child, &child_cells, &child_path)?);
    }
    let fields: Fields = children.iter().map(Column::field).collect();
    Ok(Arc::new(StructArray::try_new_with_length(
        fields,
        arrays,
        nulls.finish(),
        cells.len(),
    )?))
}

fn build_map(key: &Column, value: &Column, cells: &[Cell<'_>], path: &Path) -> Result<ArrayRef> {
    // Object keys are not JSON values; materialise them so that key cells can
    // borrow them like any other value.
    let object_keys: Vec<Vec<Value>> = cells
        .iter()
        .map(|c| match c.value {
            Some(Value::Object(object)) => {
                object.keys().map(|k| Value::String(k.clone())).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0_i32);
    let mut nulls = NullBufferBuilder::new(cells.len());
    let mut key_cells = Vec::new();
    let mut value_cells = Vec::new();
    for (c, keys) in cells.iter().zip(&object_keys) {
        let (key_kind, value_kind) = match c.kind {
            Kind::Map { key, value } => (&key.kind, &value.kind),
            _ if c.value.is_none() => (&key.kind, &value.kind),
            _ => return Err(mismatch(c, path, "a map")),
        };
        match c.value {
            None => nulls.append_null(),
            // JsonConverter writes maps with string keys as objects ...
            Some(Value::Object(object)) => {
                for (k, v) in keys.iter().zip(object.values()) {
                    key_cells.push(Cell::new(c.line, Some(k), key_kind, false));
                    value_cells.push(Cell::new(c.line, Some(v), value_kind, false));
                }
                nulls.append_non_null();
            }
            // ... and other maps as arrays of [key, value] pairs.
            Some(Value::Array(pairs)) => {
                for pair in pairs {
                    let Some([k, v]) = pair
                        .as_array()
                        .map(Vec::as_slice)
                        .and_then(|p| <&[Value; 2]>::try_from(p).ok())
                    else {
                        return Err(bad(
                            c,
                            path,
                            format!("expected a [key, value] pair, found {}", show(pair)),
                        ));
                    };
                    key_cells.push(Cell::new(c.line, Some(k), key_kind, false));
                    value_cells.push(Cell::new(c.line, Some(v), value_kind, false));
                }
                nulls.append_non_null();
            }
            Some(other) => {
                return Err(bad(
                    c,
                    path,
                    format!(
                        "expected an object or an array of pairs, found {}",
                        show(other)
                    ),
                ));
            }
        }
        offsets.push(offset(key_cells.len(), c, path)?);
    }
    let keys = build_array(key, &key_cells, &Path::Field(path, "keys"))?;
    let values = build_array(value, &value_cells, &Path::Field(path, "values"))?;
    let entries_field = map_entries(key, value);
    let entries = StructArray::try_new(
        Fields::from(vec![key.field(), value.field()]),
        vec![keys, values],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        entries_field,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        entries,
        nulls.finish(),
        false,
    )?))
}

fn build_leaf(data_type: &DataType, cells: &[Cell<'_>], path: &Path) -> Result<ArrayRef> {
    let n = cells.len();
    Ok(match data_type {
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for c in cells {
                match c.value {
                    None => b.append_null(),
                    Some(Value::Bool(v)) => b.append_value(*v),
                    Some(other) => {
                        return Err(bad(
                            c,
                            path,
                            format!("expected a boolean, found {}", show(other)),
                        ));
                    }
                }
            }
            Arc::new(b.finish())
        }
        DataType::Int16 => Arc::new(integers::<Int16Type>(cells, path)?),
        DataType::Int32 => Arc::new(integers::<Int32Type>(cells, path)?),
        DataType::Int64 => Arc::new(integers::<Int64Type>(cells, path)?),
        DataType::Date32 => Arc::new(integers::<Date32Type>(cells, path)?),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Arc::new(
            integers::<TimestampMicrosecondType>(cells, path)?.with_timezone_opt(tz.clone()),
        ),
        DataType::Float32 => {
            let mut b = PrimitiveBuilder::<Float32Type>::with_capacity(n);
            for c in cells {
                match c.value {
                    None => b.append_null(),
                    // Connect float32 values are written from a Java float, so
                    // narrowing the parsed f64 gives back that float.
                    Some(v) => b.append_value(read_f64(v).map_err(|r| bad(c, path, r))? as f32),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = PrimitiveBuilder::<Float64Type>::with_capacity(n);
            for c in cells {
                match c.value {
                    None => b.append_null(),
                    Some(v) => b.append_value(read_f64(v).map_err(|r| bad(c, path, r))?),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(n, 0);
            let mut total = 0_usize;
            for c in cells {
                match c.value {
                    None => b.append_null(),
                    Some(Value::String(s)) => {
                        total += s.len();
                        if total > MAX_OFFSET {
                            return Err(bad(
                                c,
                                path,
                                "more than 2 GiB of text in one column".to_owned(),
                            ));
                        }
                        b.append_value(s);
                    }
                    Some(other) => {
                        return Err(bad(
                            c,
                            path,
                            format!("expected a string, found {}", show(other)),
                        ));
                    }
                }
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::with_capacity(n, 0);
            let mut total = 0_usize;
            for c in cells {
                match c.value {
                    None => b.append_null(),
                    Some(v) => {
                        let bytes = read_base64(v).map_err(|r| bad(c, path, r))?;
                        total += bytes.len();
                        if total > MAX_OFFSET {
                            return Err(bad(
                                c,
                                path,
                                "more than 2 GiB of bytes in one column".to_owned(),
                            ));
                        }
                        b.append_value(bytes);
                    }
                }
            }
            Arc::new(b.finish())
        }
        DataType::Decimal128(precision, scale) => {
            let mut b =
                Decimal128Builder::with_capacity(n).with_precision_and_scale(*precision, *scale)?;
            for c in cells {
                match c.value {
                    None => b.append_null(),
                    Some(v) => {
                        let unscaled = read_decimal(c.kind, v).map_err(|r| bad(c, path, r))?;
                        Decimal128Type::validate_decimal_precision(unscaled, *precision, *scale)
                            .map_err(|_| {
                                bad(
                                    c,
                                    path,
                                    format!(
                                        "{} does not fit DECIMAL({precision},{scale})",
                                        Decimal128Type::format_decimal(unscaled, 38, *scale)
                                    ),
                                )
                            })?;
                        b.append_value(unscaled);
                    }
                }
            }
            Arc::new(b.finish())
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!("building {other} arrays")).into());
        }
    })
}

fn integers<T>(cells: &[Cell<'_>], path: &Path) -> Result<PrimitiveArray<T>>
where
    T: ArrowPrimitiveType,
    T::Native: TryFrom<i64>,
{
    let mut b = PrimitiveBuilder::<T>::with_capacity(cells.len());
    for c in cells {
        match c.value {
            None => b.append_null(),
            Some(v) => {
                let x = read_i64(c.kind, v).map_err(|r| bad(c, path, r))?;
                let x = T::Native::try_from(x).map_err(|_| {
                    bad(c, path, format!("{x} is out of range for {}", T::DATA_TYPE))
                })?;
                b.append_value(x);
            }
        }
    }
    Ok(b.finish())
}

/// A short rendering of a JSON value for error messages.
fn show(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".to_owned(),
        Value::Object(_) => return "an object".to_owned(),
    };
    let mut text = value.to_string();
    if text.len() > 60 {
        let mut end = 57;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    format!("{kind} {text}")
}

fn int(v: &Value) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("expected an integer, found {}", show(v)))
}

fn in_range(x: i64, min: i64, max: i64, what: &str) -> Result<i64, String> {
    if (min..=max).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is out of range for {what}"))
    }
}

/// Reads an integer-valued kind, converting times to microseconds.
fn read_i64(kind: &Kind, v: &Value) -> Result<i64, String> {
    match kind {
        Kind::Int { bits: 8 } => in_range(int(v)?, i8::MIN.into(), i8::MAX.into(), "int8"),
        Kind::Int { bits: 16 } => in_range(int(v)?, i16::MIN.into(), i16::MAX.into(), "int16"),
        Kind::Int { bits: 32 } => in_range(int(v)?, i32::MIN.into(), i32::MAX.into(), "int32"),
        Kind::Int { .. } => int(v),
        Kind::Date => in_range(
            int(v)?,
            i32::MIN.into(),
            i32::MAX.into(),
            "a date (days as int32)",
        ),
        Kind::Timestamp { unit, .. } | Kind::Time { unit } => to_micros(int(v)?, *unit),
        Kind::ZonedTimestamp => zoned_timestamp(v),
        other => Err(format!(
            "internal error: {} is not read as an integer",
            other.describe()
        )),
    }
}

fn to_micros(x: i64, unit: Unit) -> Result<i64, String> {
    match unit {
        Unit::Milli => x
            .checked_mul(1_000)
            .ok_or_else(|| format!("{x} ms is out of range in microseconds")),
        Unit::Micro => Ok(x),
        Unit::Nano if x % 1_000 == 0 => Ok(x / 1_000),
        Unit::Nano => Err(format!(
            "{x} ns is not a whole number of microseconds (sub-microsecond precision would be lost)"
        )),
    }
}

/// `io.debezium.time.ZonedTimestamp`: ISO-8601 with an offset → µs since the epoch (UTC).
fn zoned_timestamp(v: &Value) -> Result<i64, String> {
    let Value::String(s) = v else {
        return Err(format!(
            "expected an ISO-8601 timestamp string, found {}",
            show(v)
        ));
    };
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("invalid ISO-8601 timestamp with offset {s:?}: {e}"))?;
    if t.timestamp_subsec_nanos() % 1_000 != 0 {
        return Err(format!(
            "timestamp {s:?} has sub-microsecond precision, which would be lost"
        ));
    }
    Ok(t.timestamp_micros())
}

fn read_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("number {n} is not representable as a float")),
        // Jackson writes non-finite doubles as these strings (when allowed at all).
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        other => Err(format!("expected a number, found {}", show(other))),
    }
}

fn read_base64(v: &Value) -> Result<Vec<u8>, String> {
    let Value::String(s) = v else {
        return Err(format!("expected a base64 string, found {}", show(v)));
    };
    BASE64
        .decode(s)
        .map_err(|e| format!("invalid base64 {}: {e}", show(v)))
}

/// The unscaled value of a Connect Decimal: base64 of the big-endian two's
/// complement bytes, or (with `decimal.format=NUMERIC`) a JSON number.
fn read_decimal(kind: &Kind, v: &Value) -> Result<i128, String> {
    let Kind::Decimal { scale, .. } = kind else {
        return Err(format!(
            "internal error: {} is not read as a decimal",
            kind.describe()
        ));
    };
    match v {
        Value::String(_) => unscaled_from_bytes(&read_base64(v)?),
        Value::Number(n) => unscaled_from_text(&n.to_string(), *scale),
        other => Err(format!(
            "expected a base64 decimal string, found {}",
            show(other)
        )),
    }
}

/// Big-endian two's complement bytes (as from Java's `BigInteger.toByteArray`) → i128.
pub(crate) fn unscaled_from_bytes(bytes: &[u8]) -> Result<i128, String> {
    let Some(&first) = bytes.first() else {
        return Err("empty decimal value".to_owned());
    };
    let fill = if first & 0x80 == 0 { 0x00 } else { 0xFF };
    if bytes.len() > 16 {
        // Longer encodings are fine as long as the extra bytes only extend the sign.
        let (extra, rest) = bytes.split_at(bytes.len() - 16);
        if extra.iter().any(|&b| b != fill) || (rest[0] & 0x80 != 0) != (fill == 0xFF) {
            return Err(format!(
                "decimal value of {} bytes does not fit in 128 bits",
                bytes.len()
            ));
        }
        return unscaled_from_bytes(rest);
    }
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Ok(i128::from_be_bytes(buf))
}

/// A decimal number in text (`-12.345`, `1e3`, `1.5E-2`) → unscaled value at
/// `scale`; an error if that would drop non-zero digits.
pub(crate) fn unscaled_from_text(text: &str, scale: i8) -> Result<i128, String> {
    let invalid = || format!("invalid decimal number {text:?}");
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (
            &text[..i],
            text[i + 1..].parse::<i32>().map_err(|_| invalid())?,
        ),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let too_big = || format!("decimal number {text} does not fit in 128 bits");
    let mut unscaled: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        unscaled = unscaled
            .checked_mul(10)
            .and_then(|u| u.checked_add(i128::from(b - b'0')))
            .ok_or_else(too_big)?;
    }
    // value = unscaled * 10^(exponent - frac_len); we want value * 10^scale.
    let shift = i64::from(exponent) - frac_part.len() as i64 + i64::from(scale);
    if shift >= 0 {
        let factor = u32::try_from(shift)
            .ok()
            .and_then(|s| 10_i128.checked_pow(s));
        unscaled = match factor {
            _ if unscaled == 0 => 0,
            Some(f) => unscaled.checked_mul(f).ok_or_else(too_big)?,
            None => return Err(too_big()),
        };
    } else {
        let divisor = u32::try_from(-shift)
            .ok()
            .and_then(|s| 10_i128.checked_pow(s));
        let exact = match divisor {
            Some(d) => unscaled % d == 0,
            None => unscaled == 0,
        };
        if !exact {
            return Err(format!("{text} has more than {scale} fractional digits"));
        }
        unscaled = divisor.map_or(0, |d| unscaled / d);
    }
    Ok(if negative { -unscaled } else { unscaled })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    use serde_json::json;

    fn col(name: &str, nullable: bool, kind: Kind) -> Column {
        Column {
            name: name.to_owned(),
            nullable,
            kind,
        }
    }

    fn build(column: &Column, values: &[Value]) -> Result<ArrayRef> {
        let cells: Vec<Cell<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Cell::new(i + 1, Some(v), &column.kind, false))
            .collect();
        build_array(column, &cells, &Path::Column(&column.name))
    }

    #[test]
    fn decimal_bytes() {
        assert_eq!(unscaled_from_bytes(&[0x12, 0xD6, 0x44]), Ok(1_234_500));
        assert_eq!(unscaled_from_bytes(&[0xFF]), Ok(-1));
        assert_eq!(unscaled_from_bytes(&[0x00, 0x80]), Ok(128));
        assert_eq!(unscaled_from_bytes(&[0x80]), Ok(-128));
        let mut long = vec![0xFF; 4];
        long.extend([0x80; 1]);
        long.extend([0; 15]);
        assert_eq!(unscaled_from_bytes(&long), Ok(i128::MIN));
        let mut too_long = vec![0x00; 4];
        too_long.extend([0x80; 1]);
        too_long.extend([0; 15]);
        assert!(unscaled_from_bytes(&too_long).is_err());
        assert!(unscaled_from_bytes(&[]).is_err());
    }

    #[test]
    fn decimal_text() {
        assert_eq!(unscaled_from_text("12.345", 5), Ok(1_234_500));
        assert_eq!(unscaled_from_text("-1.5", 2), Ok(-150));
        assert_eq!(unscaled_from_text("1e3", 0), Ok(1000));
        assert_eq!(unscaled_from_text("1.5E-2", 3), Ok(15));
        assert_eq!(unscaled_from_text("100", -2), Ok(1));
        assert_eq!(unscaled_from_text("0.000", 0), Ok(0));
        assert!(unscaled_from_text("1.234", 2).is_err());
        assert!(unscaled_from_text("abc", 2).is_err());
        assert!(unscaled_from_text("-", 2).is_err());
        assert!(unscaled_from_text("1e400", 2).is_err());
    }

    #[test]
    fn decimal_column() {
        let c = col(
            "d",
            true,
            Kind::Decimal {
                precision: 7,
                scale: 5,
            },
        );
        let a = build(
            &c,
            &[json!("EtZE"), json!(null), json!(12.345), json!("/w==")],
        )
        .unwrap();
        let a = a.as_primitive::<Decimal128Type>();
        assert_eq!(a.value(0), 1_234_500);
        assert!(a.is_null(1));
        assert_eq!(a.value(2), 1_234_500);
        assert_eq!(a.value(3), -1);
        let e = build(&c, &[json!(1000)]).unwrap_err();
        assert!(e.to_string().contains("does not fit DECIMAL(7,5)"), "{e}");
        let e = build(&c, &[json!("1"), json!("!!")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 1: column `d`: invalid base64"),
            "{e}"
        );
    }

    #[test]
    fn times() {
        let c = col(
            "t",
            true,
            Kind::Timestamp {
                unit: Unit::Nano,
                utc: false,
            },
        );
        let a = build(&c, &[json!(1_000_000_000_123_000_i64)]).unwrap();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            1_000_000_000_123
        );
        let e = build(&c, &[json!(1_000_000_000_123_001_i64)]).unwrap_err();
        assert!(
            e.to_string().contains("not a whole number of microseconds"),
            "{e}"
        );

        let c = col("z", true, Kind::ZonedTimestamp);
        let a = build(
            &c,
            &[
                json!("1970-01-01T01:00:00.000001+01:00"),
                json!("1970-01-01T00:00:01Z"),
            ],
        )
        .unwrap();
        let a = a.as_primitive::<TimestampMicrosecondType>();
        assert_eq!((a.value(0), a.value(1)), (1, 1_000_000));
        assert_eq!(a.timezone(), Some("UTC"));
        let e = build(&c, &[json!("yesterday")]).unwrap_err();
        assert!(matches!(e, Error::BadValue { line: 1, .. }), "{e}");

        let c = col("tm", true, Kind::Time { unit: Unit::Milli });
        let a = build(&c, &[json!(1500)]).unwrap();
        assert_eq!(a.as_primitive::<Int64Type>().value(0), 1_500_000);
    }

    #[test]
    fn integer_ranges() {
        let c = col("i", false, Kind::Int { bits: 8 });
        let a = build(&c, &[json!(-128), json!(127)]).unwrap();
        assert_eq!(a.as_primitive::<Int16Type>().values(), &[-128, 127]);
        let e = build(&c, &[json!(128)]).unwrap_err();
        assert!(e.to_string().contains("out of range for int8"), "{e}");
        let e = build(&c, &[json!(1.5)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected an integer, found number 1.5"),
            "{e}"
        );
        let e = build(&c, &[json!(1), json!(null)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: column `i`: null or missing value for a non-optional field"
        );
    }

    #[test]
    fn floats_accept_integers_and_non_finite() {
        let c = col("f", true, Kind::Float64);
        let a = build(&c, &[json!(1), json!(2.5), json!("NaN")]).unwrap();
        let a = a.as_primitive::<Float64Type>();
        assert_eq!((a.value(0), a.value(1)), (1.0, 2.5));
        assert!(a.value(2).is_nan());
    }

    #[test]
    fn nested_values() {
        let item = col("item", true, Kind::Utf8);
        let list = col("l", true, Kind::List(Box::new(item)));
        let a = build(&list, &[json!(["a", null]), json!(null), json!([])]).unwrap();
        let a = a.as_list::<i32>();
        assert_eq!(a.value_offsets(), &[0, 2, 2, 2]);
        assert!(a.is_null(1));
        let e = build(&list, &[json!(["a", 1])]).unwrap_err();
        assert!(e.to_string().contains("column `l[]`"), "{e}");

        let s = col(
            "s",
            true,
            Kind::Struct(vec![
                col("x", false, Kind::Float64),
                col("y", true, Kind::Utf8),
            ]),
        );
        let a = build(
            &s,
            &[json!({"x": 1.0, "y": "a"}), json!(null), json!({"x": 2})],
        )
        .unwrap();
        let a = a.as_struct();
        assert!(a.is_null(1));
        assert_eq!(a.column(0).as_primitive::<Float64Type>().value(2), 2.0);
        assert!(a.column(1).is_null(2));
        let e = build(&s, &[json!({"y": "a"})]).unwrap_err();
        assert!(e.to_string().contains("column `s.x`"), "{e}");

        let m = col(
            "m",
            true,
            Kind::Map {
                key: Box::new(col("keys", false, Kind::Utf8)),
                value: Box::new(col("values", true, Kind::Utf8)),
            },
        );
        let a = build(
            &m,
            &[
                json!({"a": "1", "b": null}),
                json!(null),
                json!([["c", "3"]]),
            ],
        )
        .unwrap();
        let a = a.as_map();
        assert_eq!(a.value_offsets(), &[0, 2, 2, 3]);
        assert_eq!(a.keys().as_string::<i32>().value(2), "c");
        assert!(a.values().is_null(1));
    }
}
