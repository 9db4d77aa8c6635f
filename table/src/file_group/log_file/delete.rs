//! Delete records: the keys a delete block removes, each with the ordering value that decides
//! whether the delete beats a record with the same key. Block-content version 3 stores them as
//! one Avro binary datum of `HoodieDeleteRecordList`, whose ordering value is a union of
//! single-field wrapper records.

use std::sync::LazyLock;

use apache_avro::types::Value;
use apache_avro::{Decimal, Schema};

use super::reader::Cursor;

/// `HoodieDeleteRecordList` with the wrapper records of Hudi 0.14 inlined, in union order.
const DELETE_RECORD_LIST_SCHEMA: &str = include_str!("HoodieDeleteRecordList.avsc");

static SCHEMA: LazyLock<Result<Schema, String>> =
    LazyLock::new(|| Schema::parse_str(DELETE_RECORD_LIST_SCHEMA).map_err(|e| e.to_string()));

/// Scale of `DecimalWrapper` (`decimal(30, 15)`): Java rescales every decimal ordering value to it.
pub const DECIMAL_SCALE: u32 = 15;

/// One deleted key.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRecord {
    pub record_key: Option<String>,
    pub partition_path: Option<String>,
    pub ordering_value: OrderingValue,
}

/// The ordering (precombine) value of a delete, one variant per wrapper of the Avro union.
///
/// Java merges by it: `Int(0)` means "no ordering, the delete wins"; otherwise an existing record
/// survives only when its ordering value is of the same kind and greater. Write the variant that
/// matches the ordering column's type, and one kind per block (hudi-rs rejects mixed blocks).
#[derive(Debug, Clone, PartialEq)]
pub enum OrderingValue {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(Vec<u8>),
    String(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// Unscaled value at scale [`DECIMAL_SCALE`].
    Decimal(i128),
    /// Microseconds since midnight.
    TimeMicros(i64),
    /// Microseconds since the epoch.
    TimestampMicros(i64),
}

impl OrderingValue {
    /// What Spark SQL `DELETE` writes: deletes regardless of the existing record's ordering value.
    pub const NATURAL: OrderingValue = OrderingValue::Int(0);

    /// The union branch and the wrapper's `value` field.
    fn to_avro(&self) -> Value {
        let (branch, value) = match self {
            OrderingValue::Null => return Value::Union(0, Box::new(Value::Null)),
            OrderingValue::Boolean(v) => (1, Value::Boolean(*v)),
            OrderingValue::Int(v) => (2, Value::Int(*v)),
            OrderingValue::Long(v) => (3, Value::Long(*v)),
            OrderingValue::Float(v) => (4, Value::Float(*v)),
            OrderingValue::Double(v) => (5, Value::Double(*v)),
            OrderingValue::Bytes(v) => (6, Value::Bytes(v.clone())),
            OrderingValue::String(v) => (7, Value::String(v.clone())),
            OrderingValue::Date(v) => (8, Value::Int(*v)),
            OrderingValue::Decimal(v) => (9, Value::Decimal(Decimal::from(minimal_be_bytes(*v)))),
            OrderingValue::TimeMicros(v) => (10, Value::TimeMicros(*v)),
            OrderingValue::TimestampMicros(v) => (11, Value::Long(*v)),
        };
        let wrapper = Value::Record(vec![("value".to_string(), value)]);
        Value::Union(branch, Box::new(wrapper))
    }
}

fn schema() -> Result<&'static Schema, String> {
    SCHEMA
        .as_ref()
        .map_err(|e| format!("HoodieDeleteRecordList schema: {e}"))
}

/// The Avro binary datum of a `HoodieDeleteRecordList`.
pub(super) fn encode_delete_records(records: &[DeleteRecord]) -> Result<Vec<u8>, String> {
    // hudi-rs 0.5.0 refuses a block whose ordering values use more than one union branch
    // ("Delete block mixes ordering types"), null included.
    if let Some(first) = records.first() {
        let kind = std::mem::discriminant(&first.ordering_value);
        if let Some(other) = records
            .iter()
            .find(|r| std::mem::discriminant(&r.ordering_value) != kind)
        {
            return Err(format!(
                "ordering values of one block must be of one kind, found {:?} and {:?}",
                first.ordering_value, other.ordering_value
            ));
        }
    }
    let optional_string = |s: &Option<String>| match s {
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let list = records
        .iter()
        .map(|r| {
            Value::Record(vec![
                ("recordKey".to_string(), optional_string(&r.record_key)),
                (
                    "partitionPath".to_string(),
                    optional_string(&r.partition_path),
                ),
                ("orderingVal".to_string(), r.ordering_value.to_avro()),
            ])
        })
        .collect();
    let value = Value::Record(vec![("deleteRecordList".to_string(), Value::Array(list))]);
    apache_avro::to_avro_datum(schema()?, value).map_err(|e| e.to_string())
}

/// Decodes the Avro binary datum of a `HoodieDeleteRecordList`, which must fill `datum` exactly.
///
/// By hand rather than with `apache_avro::from_avro_datum`, which reserves memory for as many
/// array items as a (possibly damaged) block count claims before reading any of them.
pub(super) fn decode_delete_records(datum: &[u8]) -> Result<Vec<DeleteRecord>, String> {
    let mut avro = AvroCursor(Cursor::new(datum));
    let mut records = Vec::new();
    loop {
        let count = avro.long()?;
        if count == 0 {
            break;
        }
        if count < 0 {
            avro.long()?; // a negative count is followed by the block's size in bytes
        }
        for _ in 0..count.unsigned_abs() {
            records.push(DeleteRecord {
                record_key: avro.optional_string()?,
                partition_path: avro.optional_string()?,
                ordering_value: avro.ordering_value()?,
            });
        }
    }
    if !avro.0.is_empty() {
        return Err(format!(
            "{} bytes after the HoodieDeleteRecordList datum",
            avro.0.remaining()
        ));
    }
    Ok(records)
}

/// Avro binary primitives over a [`Cursor`].
struct AvroCursor<'a>(Cursor<'a>);

impl AvroCursor<'_> {
    /// A zig-zag varint of at most ten bytes.
    fn long(&mut self) -> Result<i64, String> {
        let mut raw = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.0.take(1)?[0];
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("varint longer than ten bytes".to_string())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int out of range: {v}"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        Ok(self.0.take(len)?.to_vec())
    }

    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?).map_err(|e| format!("string is not UTF-8: {e}"))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.0.take(N)?);
        Ok(out)
    }

    /// A `["null", "string"]` union.
    fn optional_string(&mut self) -> Result<Option<String>, String> {
        match self.long()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            branch => Err(format!("union branch {branch} of [null, string]")),
        }
    }

    /// The `orderingVal` union: null or a wrapper record of one field.
    fn ordering_value(&mut self) -> Result<OrderingValue, String> {
        Ok(match self.long()? {
            0 => OrderingValue::Null,
            1 => match self.fixed::<1>()?[0] {
                0 => OrderingValue::Boolean(false),
                1 => OrderingValue::Boolean(true),
                other => return Err(format!("boolean byte {other}")),
            },
            2 => OrderingValue::Int(self.int()?),
            3 => OrderingValue::Long(self.long()?),
            4 => OrderingValue::Float(f32::from_le_bytes(self.fixed()?)),
            5 => OrderingValue::Double(f64::from_le_bytes(self.fixed()?)),
            6 => OrderingValue::Bytes(self.bytes()?),
            7 => OrderingValue::String(self.string()?),
            8 => OrderingValue::Date(self.int()?),
            9 => OrderingValue::Decimal(i128_from_be_bytes(&self.bytes()?)?),
            10 => OrderingValue::TimeMicros(self.long()?),
            11 => OrderingValue::TimestampMicros(self.long()?),
            branch => return Err(format!("orderingVal union branch {branch}")),
        })
    }
}

/// Shortest big-endian two's complement, as Java's `BigInteger.toByteArray` writes decimals.
fn minimal_be_bytes(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let sign = if v < 0 { 0xff } else { 0x00 };
    // Drop a leading sign byte while the next byte still carries the sign bit.
    let start = (0..15)
        .find(|&i| bytes[i] != sign || (bytes[i + 1] & 0x80) != (sign & 0x80))
        .unwrap_or(15);
    bytes[start..].to_vec()
}

fn i128_from_be_bytes(bytes: &[u8]) -> Result<i128, String> {
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(format!(
            "decimal of {} bytes does not fit 128 bits",
            bytes.len()
        ));
    }
    let sign = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut full = [sign; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    Ok(i128::from_be_bytes(full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_use_the_shortest_twos_complement() -> Result<(), String> {
        for (v, expected) in [
            (0i128, vec![0x00]),
            (1, vec![0x01]),
            (127, vec![0x7f]),
            (128, vec![0x00, 0x80]),
            (-1, vec![0xff]),
            (-128, vec![0x80]),
            (-129, vec![0xff, 0x7f]),
        ] {
            assert_eq!(minimal_be_bytes(v), expected, "{v}");
            assert_eq!(i128_from_be_bytes(&expected)?, v);
        }
        for v in [i128::MAX, i128::MIN, 10i128.pow(30) - 1, -(10i128.pow(30))] {
            assert_eq!(i128_from_be_bytes(&minimal_be_bytes(v))?, v);
        }
        assert!(i128_from_be_bytes(&[0; 17]).is_err());
        Ok(())
    }

    #[test]
    fn generic_avro_decoding_agrees_with_ours() -> Result<(), String> {
        let records = vec![
            DeleteRecord {
                record_key: Some("k1".to_string()),
                partition_path: None,
                ordering_value: OrderingValue::Decimal(-5),
            },
            DeleteRecord {
                record_key: None,
                partition_path: Some("p".to_string()),
                ordering_value: OrderingValue::Decimal(10i128.pow(29)),
            },
        ];
        let datum = encode_delete_records(&records)?;
        let mut reader = &datum[..];
        let value = apache_avro::from_avro_datum(schema()?, &mut reader, None)
            .map_err(|e| e.to_string())?;
        assert!(reader.is_empty());
        let Value::Record(fields) = value else {
            return Err(format!("not a record: {value:?}"));
        };
        let Value::Array(items) = &fields[0].1 else {
            return Err(format!("not an array: {fields:?}"));
        };
        assert_eq!(items.len(), 2);
        assert_eq!(decode_delete_records(&datum)?, records);
        Ok(())
    }

    #[test]
    fn reads_blocks_with_byte_sizes_and_refuses_impossible_counts() -> Result<(), String> {
        // One block of count -1 (zig-zag 1) and byte size 4: key null, partition null,
        // IntWrapper 3; then the end of the array.
        let datum = [0x01, 0x08, 0x00, 0x00, 0x04, 0x06, 0x00];
        let records = decode_delete_records(&datum)?;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ordering_value, OrderingValue::Int(3));
        // A count of about 2^34 items in five bytes: an error, not an allocation.
        assert!(decode_delete_records(&[0xfe, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(decode_delete_records(&[0x02, 0x00, 0x00, 0x18, 0x00, 0x00]).is_err());
        Ok(())
    }
}
