//! COPY's binary format (`COPY … TO STDOUT (FORMAT binary)`), which the snapshot reads, and the
//! binary send formats of the types it decodes without text: integers, floats, numeric, dates
//! and times, bytea, uuid, jsonb and text itself.
//!
//! Every other type (arrays, intervals, network types, …) is selected as its text output
//! (`format('%s', column)`) and converts exactly as a streamed (pgoutput text) value does. Binary
//! values that the text path would reject are rejected the same way, and [`Wire::text`] gives
//! their text output for dead letters and for the resume key.

use std::borrow::Cow;
use std::fmt::Write;

use super::types::{BadValue, ColumnBuilder, Conv, TypeCatalog, civil_from_days};
use crate::error::{Error, Result};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for dates and timestamps.
const PG_EPOCH_DAYS: i32 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// How a column's values arrive in COPY's binary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    /// `oid`: an unsigned 32-bit number.
    Oid,
    Float4,
    Float8,
    /// Base-10000 digits with a weight, a sign and a display scale.
    Numeric,
    /// The text itself: `text`, `varchar`, `char(n)`, `name`, `json`, enums.
    Text,
    /// A version byte (1), then the text.
    Jsonb,
    Uuid,
    Bytea,
    /// Days since 2000-01-01; `i32::MAX` / `i32::MIN` are ±infinity.
    Date,
    /// Microseconds since midnight.
    Time,
    /// Microseconds since 2000-01-01 00:00; `i64::MAX` / `i64::MIN` are ±infinity.
    Timestamp,
    TimestampTz,
    /// The type's text output, selected by `format('%s', …)`.
    Output,
}

impl Wire {
    /// How a column of type `oid` (domains send as their base type), converted as `conv`,
    /// arrives.
    pub fn of(types: &TypeCatalog, oid: u32, conv: &Conv) -> Wire {
        let (mut oid, mut kind) = (oid, b'b');
        // A domain over a domain is allowed; a cycle is not, but is not followed forever.
        for _ in 0..32 {
            match types.get(&oid) {
                Some(t) if t.kind == b'd' && t.base != 0 => oid = t.base,
                Some(t) => {
                    kind = t.kind;
                    break;
                }
                None => break,
            }
        }
        match conv {
            Conv::Bool => Wire::Bool,
            Conv::I16 => Wire::Int2,
            Conv::I32 => Wire::Int4,
            Conv::I64 if oid == 26 => Wire::Oid,
            Conv::I64 => Wire::Int8,
            Conv::F32 => Wire::Float4,
            Conv::F64 => Wire::Float8,
            Conv::Decimal(..) => Wire::Numeric,
            Conv::Bytea => Wire::Bytea,
            Conv::Date => Wire::Date,
            Conv::Time => Wire::Time,
            Conv::Timestamp => Wire::Timestamp,
            Conv::TimestampTz => Wire::TimestampTz,
            // `"char"` (18) sends its raw byte but outputs high bytes as octal escapes.
            Conv::Text => match oid {
                19 | 25 | 114 | 1042 | 1043 => Wire::Text,
                3802 => Wire::Jsonb,
                2950 => Wire::Uuid,
                _ if kind == b'e' => Wire::Text,
                _ => Wire::Output,
            },
            Conv::List(_) => Wire::Output,
        }
    }

    /// The select-list expression of `column` (quoted) for the snapshot's COPY. `format('%s')`
    /// calls the type's output function (a cast to text may not: `inet::text` adds the mask);
    /// `num_nulls` keeps NULL apart from a composite whose fields are all null.
    pub fn select(self, column: &str) -> String {
        match self {
            Wire::Output => {
                format!("CASE WHEN num_nulls({column}) = 0 THEN format('%s', {column}) END")
            }
            _ => column.to_string(),
        }
    }

    /// The text output PostgreSQL gives for a value sent as `bytes` (with the session options
    /// of [`super::types::SESSION_OPTIONS`]): a dead letter's value, a resume key's literal.
    pub fn text(self, bytes: &[u8]) -> Result<Cow<'_, str>, BadValue> {
        let bad = || bad_bytes(self, bytes);
        Ok(Cow::Owned(match self {
            Wire::Text | Wire::Output => return utf8(bytes).map(Cow::Borrowed),
            Wire::Jsonb => return jsonb(bytes).map(Cow::Borrowed),
            Wire::Bool => String::from(["f", "t"][usize::from(fixed::<1>(bytes, bad)?[0] != 0)]),
            Wire::Int2 => i16::from_be_bytes(fixed(bytes, bad)?).to_string(),
            Wire::Int4 => i32::from_be_bytes(fixed(bytes, bad)?).to_string(),
            Wire::Int8 => i64::from_be_bytes(fixed(bytes, bad)?).to_string(),
            Wire::Oid => u32::from_be_bytes(fixed(bytes, bad)?).to_string(),
            Wire::Float4 => float_text(f32::from_be_bytes(fixed(bytes, bad)?)),
            Wire::Float8 => float_text(f64::from_be_bytes(fixed(bytes, bad)?)),
            Wire::Numeric => Numeric::parse(bytes).ok_or_else(bad)?.text(),
            Wire::Uuid => uuid_text(fixed(bytes, bad)?),
            Wire::Bytea => {
                let mut s = String::with_capacity(2 + 2 * bytes.len());
                s.push_str("\\x");
                for b in bytes {
                    let _ = write!(s, "{b:02x}");
                }
                s
            }
            Wire::Date => match i32::from_be_bytes(fixed(bytes, bad)?) {
                i32::MAX => "infinity".to_string(),
                i32::MIN => "-infinity".to_string(),
                days => {
                    let mut s = String::new();
                    if push_date(&mut s, i64::from(days) + i64::from(PG_EPOCH_DAYS)) {
                        s.push_str(" BC");
                    }
                    s
                }
            },
            Wire::Time => {
                let mut s = String::new();
                push_time(&mut s, i64::from_be_bytes(fixed(bytes, bad)?));
                s
            }
            Wire::Timestamp | Wire::TimestampTz => match i64::from_be_bytes(fixed(bytes, bad)?) {
                i64::MAX => "infinity".to_string(),
                i64::MIN => "-infinity".to_string(),
                micros => {
                    let days = micros.div_euclid(MICROS_PER_DAY);
                    let mut s = String::new();
                    let bc = push_date(&mut s, days + i64::from(PG_EPOCH_DAYS));
                    s.push(' ');
                    push_time(&mut s, micros.rem_euclid(MICROS_PER_DAY));
                    if self == Wire::TimestampTz {
                        s.push_str("+00");
                    }
                    if bc {
                        s.push_str(" BC");
                    }
                    s
                }
            },
        }))
    }
}

impl ColumnBuilder {
    /// Appends one value sent in `wire`'s binary format, with [`ColumnBuilder::append_text`]'s
    /// contract: `Ok(false)` when the value has no Arrow representation (stored as null), an
    /// error when it does not decode.
    pub fn append_binary(&mut self, wire: Wire, bytes: &[u8]) -> Result<bool, BadValue> {
        let bad = || bad_bytes(wire, bytes);
        match (&mut *self, wire) {
            (ColumnBuilder::Bool(b), Wire::Bool) => b.append_value(fixed::<1>(bytes, bad)?[0] != 0),
            (ColumnBuilder::I16(b), Wire::Int2) => {
                b.append_value(i16::from_be_bytes(fixed(bytes, bad)?))
            }
            (ColumnBuilder::I32(b), Wire::Int4) => {
                b.append_value(i32::from_be_bytes(fixed(bytes, bad)?))
            }
            (ColumnBuilder::I64(b), Wire::Int8) | (ColumnBuilder::Time(b), Wire::Time) => {
                b.append_value(i64::from_be_bytes(fixed(bytes, bad)?))
            }
            (ColumnBuilder::I64(b), Wire::Oid) => {
                b.append_value(i64::from(u32::from_be_bytes(fixed(bytes, bad)?)))
            }
            // NaN as the text path parses it: PostgreSQL's text output has no NaN payloads.
            (ColumnBuilder::F32(b), Wire::Float4) => {
                let v = f32::from_be_bytes(fixed(bytes, bad)?);
                b.append_value(if v.is_nan() { f32::NAN } else { v })
            }
            (ColumnBuilder::F64(b), Wire::Float8) => {
                let v = f64::from_be_bytes(fixed(bytes, bad)?);
                b.append_value(if v.is_nan() { f64::NAN } else { v })
            }
            (ColumnBuilder::Decimal(b, scale), Wire::Numeric) => {
                let numeric = Numeric::parse(bytes).ok_or_else(bad)?;
                if numeric.sign >= SPECIAL {
                    return Ok(self.reject());
                }
                let value = numeric.unscaled(*scale).ok_or_else(|| {
                    BadValue(format!("{:?} is not a valid numeric", numeric.text()))
                })?;
                b.append_value(value)
            }
            (ColumnBuilder::Bytea(b), Wire::Bytea) => b.append_value(bytes),
            (ColumnBuilder::Date(b), Wire::Date) => match i32::from_be_bytes(fixed(bytes, bad)?) {
                i32::MAX | i32::MIN => return Ok(self.reject()),
                days => match days.checked_add(PG_EPOCH_DAYS) {
                    Some(days) => b.append_value(days),
                    None => return Ok(self.reject()),
                },
            },
            (ColumnBuilder::Timestamp(b, _), Wire::Timestamp | Wire::TimestampTz) => {
                // Past ~294247 AD a PostgreSQL timestamp has no microsecond count since 1970
                // in 64 bits.
                let epoch = i64::from(PG_EPOCH_DAYS) * MICROS_PER_DAY;
                match i64::from_be_bytes(fixed(bytes, bad)?) {
                    i64::MAX | i64::MIN => return Ok(self.reject()),
                    micros => match micros.checked_add(epoch) {
                        Some(micros) => b.append_value(micros),
                        None => return Ok(self.reject()),
                    },
                }
            }
            (_, Wire::Text | Wire::Output) => return self.append_text(utf8(bytes)?),
            (_, Wire::Jsonb) => return self.append_text(jsonb(bytes)?),
            (_, Wire::Uuid) => return self.append_text(&uuid_text(fixed(bytes, bad)?)),
            (builder, wire) => {
                return Err(BadValue(format!(
                    "a {wire:?} value cannot fill a {builder:?} column"
                )));
            }
        }
        Ok(true)
    }

    fn reject(&mut self) -> bool {
        self.append_null();
        false
    }
}

/// Splits COPY binary data, arriving in chunks with arbitrary boundaries, into tuples.
#[derive(Debug, Default)]
pub struct BinaryCopy {
    partial: Vec<u8>,
    header_read: bool,
    trailer_read: bool,
    fields: Vec<Option<(usize, usize)>>,
}

/// One tuple of COPY binary data: its fields' bytes, `None` for NULL.
#[derive(Debug, Clone, Copy)]
pub struct Tuple<'a> {
    data: &'a [u8],
    fields: &'a [Option<(usize, usize)>],
}

impl<'a> Tuple<'a> {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let (start, end) = (*self.fields.get(i)?)?;
        Some(&self.data[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<&'a [u8]>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The 11-byte signature of COPY binary data, then 32-bit flags and a header extension length.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl BinaryCopy {
    /// Feeds a chunk; calls `row` for every complete tuple.
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(Tuple<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.partial.is_empty() {
            let used = self.parse(chunk, &mut row)?;
            self.partial.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.partial);
            data.extend_from_slice(chunk);
            let used = self.parse(&data, &mut row)?;
            data.drain(..used);
            self.partial = data;
        }
        Ok(())
    }

    /// Checks that the data ended where it should: after the trailer.
    pub fn finish(&self) -> Result<()> {
        if self.trailer_read && self.partial.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!(
                "the data ended without its trailer ({} bytes of an unfinished tuple)",
                self.partial.len()
            )))
        }
    }

    /// Parses the complete tuples at the start of `data`; returns the bytes used.
    fn parse(
        &mut self,
        data: &[u8],
        row: &mut impl FnMut(Tuple<'_>) -> Result<()>,
    ) -> Result<usize> {
        let mut at = 0;
        if !self.header_read {
            let Some(fixed) = data.get(..SIGNATURE.len() + 8) else {
                return Ok(0);
            };
            if &fixed[..SIGNATURE.len()] != SIGNATURE {
                return Err(malformed("the signature is missing".to_string()));
            }
            let flags = be_u32(&fixed[SIGNATURE.len()..]);
            // Bit 16: OIDs included. Bits 17–31 are critical: unknown ones must be refused.
            if flags >> 16 != 0 {
                return Err(malformed(format!("unsupported header flags {flags:#x}")));
            }
            let extension = be_u32(&fixed[SIGNATURE.len() + 4..]) as usize;
            at = fixed.len() + extension;
            if data.len() < at {
                return Ok(0);
            }
            self.header_read = true;
        }
        while let Some(count) = data.get(at..at + 2) {
            if self.trailer_read {
                return Err(malformed("data after the trailer".to_string()));
            }
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                self.trailer_read = true;
                at += 2;
                continue;
            }
            let count = usize::try_from(count)
                .map_err(|_| malformed(format!("a tuple of {count} fields")))?;
            self.fields.clear();
            let mut p = at + 2;
            for _ in 0..count {
                let Some(len) = data.get(p..p + 4) else {
                    return Ok(at);
                };
                let len = be_u32(len) as i32;
                p += 4;
                if len == -1 {
                    self.fields.push(None);
                    continue;
                }
                let len = usize::try_from(len)
                    .map_err(|_| malformed(format!("a field of {len} bytes")))?;
                if data.len() < p + len {
                    return Ok(at);
                }
                self.fields.push(Some((p, p + len)));
                p += len;
            }
            row(Tuple {
                data,
                fields: &self.fields,
            })?;
            at = p;
        }
        Ok(at)
    }
}

fn malformed(reason: String) -> Error {
    Error::Protocol(format!("COPY binary data: {reason}"))
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// `bytes` as an array of exactly `N` bytes.
fn fixed<const N: usize>(bytes: &[u8], bad: impl Fn() -> BadValue) -> Result<[u8; N], BadValue> {
    bytes.try_into().map_err(|_| bad())
}

fn bad_bytes(wire: Wire, bytes: &[u8]) -> BadValue {
    BadValue(format!("{} bytes are not a {wire:?} value", bytes.len()))
}

fn utf8(bytes: &[u8]) -> Result<&str, BadValue> {
    std::str::from_utf8(bytes).map_err(|_| {
        BadValue(format!(
            "\"{}\" is not UTF-8: the database's encoding must be UTF8, as for streamed changes",
            String::from_utf8_lossy(bytes).escape_debug()
        ))
    })
}

fn jsonb(bytes: &[u8]) -> Result<&str, BadValue> {
    match bytes.split_first() {
        Some((1, text)) => utf8(text),
        _ => Err(BadValue(format!(
            "jsonb of version {:?} is not known (1 is)",
            bytes.first()
        ))),
    }
}

fn uuid_text(b: [u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// A float as text that reads back as the same value (`Infinity`, `NaN` as PostgreSQL spells
/// them).
fn float_text<F: Into<f64> + std::fmt::Debug + Copy>(v: F) -> String {
    let wide: f64 = v.into();
    if wide.is_nan() {
        "NaN".to_string()
    } else if wide.is_infinite() {
        if wide > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{v:?}")
    }
}

/// `YYYY-MM-DD` of `days` since 1970-01-01; returns whether the year is BC (the caller writes
/// the era last, as PostgreSQL does: `0044-03-15 12:00:00 BC`).
fn push_date(s: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    let bc = year <= 0;
    let year = if bc { 1 - year } else { year };
    let _ = write!(s, "{year:04}-{month:02}-{day:02}");
    bc
}

/// `HH:MM:SS[.ffffff]` of microseconds since midnight (trailing zeros of the fraction dropped).
fn push_time(s: &mut String, micros: i64) {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let _ = write!(
        s,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let digits = format!("{frac:06}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
}

/// `sign` values of numeric's special values: NaN (0xC000), +Infinity (0xD000), -Infinity
/// (0xF000).
const SPECIAL: u16 = 0xC000;
const NEGATIVE: u16 = 0x4000;

/// A numeric as sent: base-10000 digits, the first of weight `weight`.
#[derive(Debug)]
struct Numeric<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

impl<'a> Numeric<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Numeric<'a>> {
        let header = bytes.get(..8)?;
        let count = usize::try_from(i16::from_be_bytes([header[0], header[1]])).ok()?;
        let digits = bytes.get(8..)?;
        (digits.len() == 2 * count).then_some(Numeric {
            weight: i16::from_be_bytes([header[2], header[3]]),
            sign: u16::from_be_bytes([header[4], header[5]]),
            dscale: u16::from_be_bytes([header[6], header[7]]),
            digits,
        })
    }

    /// The base-10000 digit of weight `self.weight - i` (0 outside the sent digits).
    fn digit(&self, i: i64) -> i128 {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.digits.get(2 * i..2 * i + 2))
            .map_or(0, |d| i128::from(i16::from_be_bytes([d[0], d[1]])))
    }

    /// The `k`-th decimal digit after the point.
    fn fraction_digit(&self, k: i64) -> i128 {
        let group = self.digit(i64::from(self.weight) + 1 + k / 4);
        group / 10i128.pow(3 - (k % 4) as u32) % 10
    }

    /// The value times 10^`scale`, if that is a whole number that fits: the groups down to the
    /// one holding the `scale`-th fraction digit, whose lower digits and every later group must
    /// be zeros. (Implicit zero groups before the first sent one add nothing.)
    fn unscaled(&self, scale: i8) -> Option<i128> {
        let scale = i64::from(scale.max(0));
        let last_full = i64::from(self.weight) + scale / 4;
        let mut value: i128 = 0;
        for i in 0..=last_full {
            value = value.checked_mul(10_000)?.checked_add(self.digit(i))?;
        }
        let mut last = last_full;
        let rest = (scale % 4) as u32;
        if rest > 0 {
            last += 1;
            // In 32 bits: a 128-bit division is a library call.
            let (group, below) = (self.digit(last) as i32, 10i32.pow(4 - rest));
            if group % below != 0 {
                return None;
            }
            value = value
                .checked_mul(10i128.pow(rest))?
                .checked_add(i128::from(group / below))?;
        }
        let sent = self.digits.len() as i64 / 2;
        if (last.max(-1) + 1..sent).any(|i| self.digit(i) != 0) {
            return None;
        }
        Some(if self.sign == NEGATIVE { -value } else { value })
    }

    /// numeric's text output: every digit of the display scale.
    fn text(&self) -> String {
        match self.sign {
            0xC000 => return "NaN".to_string(),
            0xD000 => return "Infinity".to_string(),
            0xF000 => return "-Infinity".to_string(),
            _ => {}
        }
        let mut s = String::new();
        if self.sign == NEGATIVE {
            s.push('-');
        }
        if self.weight < 0 {
            s.push('0');
        }
        for i in 0..=i64::from(self.weight) {
            let _ = if i == 0 {
                write!(s, "{}", self.digit(i))
            } else {
                write!(s, "{:04}", self.digit(i))
            };
        }
        if self.dscale > 0 {
            s.push('.');
            for k in 0..i64::from(self.dscale) {
                let _ = write!(s, "{}", self.fraction_digit(k));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::super::types::parse_decimal;
    use super::*;

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((digits.len() as i16).to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(dscale.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics() {
        // 123456789.125 = [1, 2345, 6789, 1250] with weight 2.
        let n = numeric(2, 0, 3, &[1, 2345, 6789, 1250]);
        let n = Numeric::parse(&n).unwrap();
        assert_eq!(n.text(), "123456789.125");
        assert_eq!(n.unscaled(3), Some(123_456_789_125));
        assert_eq!(n.unscaled(5), Some(12_345_678_912_500));
        assert_eq!(n.unscaled(2), None, "a digit would be lost");
        // -0.001: weight -1, digit 10.
        let n = numeric(-1, NEGATIVE, 3, &[10]);
        let n = Numeric::parse(&n).unwrap();
        assert_eq!((n.text(), n.unscaled(3)), ("-0.001".to_string(), Some(-1)));
        // 0.00000001: one digit of weight -2 (10000^-2).
        let n = numeric(-2, 0, 8, &[1]);
        let n = Numeric::parse(&n).unwrap();
        assert_eq!(
            (n.text(), n.unscaled(8)),
            ("0.00000001".to_string(), Some(1))
        );
        // Zero has no digits; 10000 is one digit of weight 1.
        let zero = numeric(0, 0, 2, &[]);
        assert_eq!(Numeric::parse(&zero).unwrap().text(), "0.00");
        assert_eq!(Numeric::parse(&zero).unwrap().unscaled(2), Some(0));
        let n = numeric(1, 0, 0, &[1]);
        assert_eq!(Numeric::parse(&n).unwrap().text(), "10000");
        assert_eq!(Numeric::parse(&n).unwrap().unscaled(0), Some(10_000));
        // 38 nines at scale 2 (36 before the point) fit; a weight beyond i128 does not.
        let mut digits = vec![9999; 9];
        digits.push(9900);
        let n = numeric(8, 0, 2, &digits);
        let n = Numeric::parse(&n).unwrap();
        assert_eq!(n.unscaled(2), Some(10i128.pow(38) - 1));
        let n = numeric(10, 0, 0, &[1]);
        assert_eq!(Numeric::parse(&n).unwrap().unscaled(0), None);
        assert_eq!(
            Numeric::parse(&numeric(0, 0xC000, 0, &[])).unwrap().text(),
            "NaN"
        );
        assert!(Numeric::parse(&[0, 1, 0, 0]).is_none());
    }

    /// PostgreSQL's binary numeric of `unscaled` / 10^`scale`: base-10000 groups aligned at the
    /// point, leading and trailing zero groups dropped.
    fn sent(unscaled: i128, scale: u16) -> Vec<u8> {
        let digits = unscaled.unsigned_abs().to_string();
        let scale = usize::from(scale);
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        let int = format!("{int:0>width$}", width = int.len().div_ceil(4) * 4);
        let frac = format!("{frac:0<width$}", width = frac.len().div_ceil(4) * 4);
        let groups: Vec<i16> = int
            .as_bytes()
            .chunks(4)
            .chain(frac.as_bytes().chunks(4))
            .map(|g| std::str::from_utf8(g).unwrap().parse().unwrap())
            .collect();
        let mut weight = (int.len() / 4) as i16 - 1;
        let first = groups.iter().position(|&g| g != 0).unwrap_or(groups.len());
        let last = groups
            .iter()
            .rposition(|&g| g != 0)
            .map_or(first, |i| i + 1);
        weight -= first as i16;
        let sign = if unscaled < 0 { NEGATIVE } else { 0 };
        let weight = if first == last { 0 } else { weight };
        numeric(weight, sign, scale as u16, &groups[first..last])
    }

    #[test]
    fn numerics_of_every_size_and_scale() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let digits = rng.random_range(0..=38u32);
            let magnitude = if digits == 0 {
                0
            } else {
                rng.random_range(0..10i128.pow(digits))
            };
            let value = if rng.random() { -magnitude } else { magnitude };
            let scale: u16 = rng.random_range(0..=digits.max(1) as u16);
            let bytes = sent(value, scale);
            let n = Numeric::parse(&bytes).unwrap();
            assert_eq!(
                n.unscaled(scale as i8),
                Some(value),
                "{value} scale {scale}"
            );
            let text = n.text();
            assert_eq!(parse_decimal(&text, scale as i8), Some(value), "{text}");
            if scale < 38 && value.checked_mul(10).is_some() {
                assert_eq!(n.unscaled(scale as i8 + 1), Some(value * 10));
            }
            if scale > 0 && value % 10 != 0 {
                assert_eq!(
                    n.unscaled(scale as i8 - 1),
                    None,
                    "{text} at scale {}",
                    scale - 1
                );
            }
        }
    }

    #[test]
    fn texts() {
        let w = |wire: Wire, b: &[u8]| wire.text(b).unwrap().into_owned();
        assert_eq!(w(Wire::Date, &0i32.to_be_bytes()), "2000-01-01");
        assert_eq!(w(Wire::Date, &i32::MAX.to_be_bytes()), "infinity");
        // 1 BC is year 0 (a leap year): 2000 years and 485 leap days before 2000.
        assert_eq!(w(Wire::Date, &(-730_485i32).to_be_bytes()), "0001-01-01 BC");
        assert_eq!(w(Wire::Date, &(-730_486i32).to_be_bytes()), "0002-12-31 BC");
        let micros = -(730_485i64 * MICROS_PER_DAY) + 1_500_000;
        assert_eq!(
            w(Wire::TimestampTz, &micros.to_be_bytes()),
            "0001-01-01 00:00:01.5+00 BC"
        );
        assert_eq!(
            w(Wire::Timestamp, &(MICROS_PER_DAY - 1).to_be_bytes()),
            "2000-01-01 23:59:59.999999"
        );
        assert_eq!(w(Wire::Time, &(MICROS_PER_DAY).to_be_bytes()), "24:00:00");
        assert_eq!(
            w(Wire::Float8, &f64::NEG_INFINITY.to_be_bytes()),
            "-Infinity"
        );
        assert_eq!(w(Wire::Float4, &1.5f32.to_be_bytes()), "1.5");
        assert_eq!(w(Wire::Bytea, &[0, 255]), "\\x00ff");
        assert_eq!(w(Wire::Oid, &u32::MAX.to_be_bytes()), "4294967295");
        assert_eq!(
            w(
                Wire::Uuid,
                &[
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11
                ]
            ),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert!(Wire::Int4.text(&[1, 2]).is_err());
        assert!(Wire::Jsonb.text(&[2, b'{', b'}']).is_err());
    }

    #[test]
    fn tuples_across_chunks() {
        let mut data = SIGNATURE.to_vec();
        data.extend(0u32.to_be_bytes());
        data.extend(4u32.to_be_bytes());
        data.extend(b"ext!");
        for fields in [
            &[Some(&b"ab"[..]), None][..],
            &[Some(&b""[..]), Some(&b"xyz"[..])],
        ] {
            data.extend((fields.len() as i16).to_be_bytes());
            for f in fields {
                match f {
                    None => data.extend((-1i32).to_be_bytes()),
                    Some(b) => {
                        data.extend((b.len() as i32).to_be_bytes());
                        data.extend(*b);
                    }
                }
            }
        }
        data.extend((-1i16).to_be_bytes());
        for size in [1, 2, 5, data.len()] {
            let mut parser = BinaryCopy::default();
            let mut rows: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
            for chunk in data.chunks(size) {
                parser
                    .push(chunk, |t| {
                        rows.push(t.iter().map(|f| f.map(<[u8]>::to_vec)).collect());
                        Ok(())
                    })
                    .unwrap();
            }
            parser.finish().unwrap();
            assert_eq!(
                rows,
                vec![
                    vec![Some(b"ab".to_vec()), None],
                    vec![Some(Vec::new()), Some(b"xyz".to_vec())]
                ],
                "chunks of {size}"
            );
        }
        let mut parser = BinaryCopy::default();
        parser.push(&data[..data.len() - 3], |_| Ok(())).unwrap();
        assert!(parser.finish().is_err(), "a cut tuple is an error");
        assert!(
            BinaryCopy::default()
                .push(b"PGCOPY\n\xff\r\n\x01abcdefgh", |_| Ok(()))
                .is_err()
        );
    }
}
