//! Every block kind we write reads back as written, and the bytes match the format by hand.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, MapBuilder, StringArray, StringBuilder, StructArray,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};

use super::*;

fn round_trip(block: &LogBlock) -> Result<LogBlock> {
    let mut blocks = read_log_blocks(&encode_log_block(block)?)?;
    assert_eq!(blocks.len(), 1);
    Ok(blocks.remove(0))
}

const TABLE_SCHEMA: &str = r#"{"type":"record","name":"t_record","namespace":"hoodie.t","fields":[{"name":"_hoodie_record_key","type":["null","string"],"default":null}]}"#;

#[test]
fn rollback_blocks_round_trip() -> Result<()> {
    let block = LogBlock::rollback(
        &instant("20250101000000002")?,
        &instant("20250101000000001")?,
    );
    assert_eq!(round_trip(&block)?, block);
    let keys: Vec<HeaderKey> = block.header.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            HeaderKey::InstantTime,
            HeaderKey::TargetInstantTime,
            HeaderKey::CommandBlockType
        ]
    );
    // The command is the truth: a header that disagrees is corrected on write.
    let mut stale = block.clone();
    stale
        .header
        .insert(HeaderKey::TargetInstantTime, "20240101000000000");
    assert_eq!(round_trip(&stale)?, block);
    Ok(())
}

#[test]
fn every_ordering_value_round_trips() -> Result<()> {
    let values = [
        OrderingValue::Null,
        OrderingValue::Boolean(true),
        OrderingValue::Int(-7),
        OrderingValue::Long(i64::MAX),
        OrderingValue::Float(1.5),
        OrderingValue::Double(-2.25),
        OrderingValue::Bytes(vec![0, 1, 255]),
        OrderingValue::String("z".to_string()),
        OrderingValue::Date(19_000),
        OrderingValue::Decimal(-12_345_000_000_000_000_000),
        OrderingValue::TimeMicros(86_399_999_999),
        OrderingValue::TimestampMicros(1_700_000_000_000_000),
    ];
    for (i, value) in values.into_iter().enumerate() {
        let record = DeleteRecord {
            record_key: Some(format!("key-{i}")),
            partition_path: (i % 2 == 0).then(|| "p=1".to_string()),
            ordering_value: value,
        };
        let block = LogBlock::delete(&instant("20250101000000000")?, TABLE_SCHEMA, vec![record]);
        assert_eq!(round_trip(&block)?, block, "{block:?}");
    }
    let empty = LogBlock::delete(&instant("20250101000000000")?, TABLE_SCHEMA, Vec::new());
    assert_eq!(round_trip(&empty)?, empty);
    // One kind per block: hudi-rs refuses a block that mixes union branches.
    let record = |ordering_value| DeleteRecord {
        record_key: Some("k".to_string()),
        partition_path: None,
        ordering_value,
    };
    let mixed = LogBlock::delete(
        &instant("20250101000000000")?,
        TABLE_SCHEMA,
        vec![record(OrderingValue::Long(1)), record(OrderingValue::Null)],
    );
    assert!(matches!(
        encode_log_block(&mixed),
        Err(Error::LogBlockEncode {
            block_type: BlockType::Delete,
            ..
        })
    ));
    Ok(())
}

#[test]
fn delete_content_matches_the_avro_encoding() -> Result<()> {
    let record = DeleteRecord {
        record_key: Some("k".to_string()),
        partition_path: None,
        ordering_value: OrderingValue::Long(5),
    };
    let block = LogBlock::delete(&instant("20250101000000000")?, TABLE_SCHEMA, vec![record]);
    let bytes = encode_log_block(&block)?;
    // Content version 3, datum length 8, then: one array item; recordKey branch 1, "k";
    // partitionPath branch 0; orderingVal branch 3 (LongWrapper), 5; end of array.
    let content = [
        &3i32.to_be_bytes()[..],
        &8i32.to_be_bytes(),
        &[0x02, 0x02, 0x02, b'k', 0x00, 0x06, 0x0a, 0x00],
    ]
    .concat();
    let footer_and_total = 4 + 8;
    let at = bytes.len() - footer_and_total - content.len();
    assert_eq!(&bytes[at..at + content.len()], &content[..]);
    assert_eq!(&bytes[at - 8..at], &(content.len() as u64).to_be_bytes());
    Ok(())
}

#[test]
fn avro_content_matches_the_avro_encoding() -> Result<()> {
    let schema = r#"{"type":"record","name":"r","fields":[{"name":"a","type":["null","long"]},{"name":"s","type":"string"}]}"#;
    let arrow_schema = Schema::new(vec![
        Field::new("s", DataType::Utf8, false),
        Field::new("a", DataType::Int32, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(arrow_schema),
        vec![
            Arc::new(StringArray::from(vec!["x", "yz"])),
            Arc::new(Int32Array::from(vec![Some(1), None])),
        ],
    )?;
    let block = LogBlock::avro_data(&instant("20250101000000000")?, schema, batch);
    let bytes = encode_log_block(&block)?;
    // Version 3, two records; a = branch 1 then zigzag 1, s = "x"; a = branch 0, s = "yz".
    let content = [
        &3i32.to_be_bytes()[..],
        &2i32.to_be_bytes(),
        &4i32.to_be_bytes(),
        &[0x02, 0x02, 0x02, b'x'],
        &4i32.to_be_bytes(),
        &[0x00, 0x04, b'y', b'z'],
    ]
    .concat();
    let at = bytes.len() - 12 - content.len();
    assert_eq!(&bytes[at..at + content.len()], &content[..]);
    // Columns come back in schema order, with the schema's types.
    let BlockContent::AvroData(decoded) = round_trip(&block)?.content else {
        panic!("not an Avro data block");
    };
    assert_eq!(decoded.schema().field(0).name(), "a");
    let a: Vec<Option<i64>> = decoded
        .column(0)
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(a, [Some(1), None]);
    assert_eq!(
        strings(&decoded, "s"),
        [Some("x".to_string()), Some("yz".to_string())]
    );
    Ok(())
}

const TYPES_SCHEMA: &str = r#"{"type":"record","name":"t_record","namespace":"hoodie.t","fields":[
{"name":"_hoodie_record_key","type":["null","string"],"default":null},
{"name":"i","type":["null","int"],"default":null},
{"name":"l","type":["null","long"],"default":null},
{"name":"f","type":["null","float"],"default":null},
{"name":"d","type":["null","double"],"default":null},
{"name":"b","type":["null","boolean"],"default":null},
{"name":"bin","type":["null","bytes"],"default":null},
{"name":"dec_fixed","type":["null",{"type":"fixed","name":"fixed","namespace":"hoodie.t.t_record.dec_fixed","size":5,"logicalType":"decimal","precision":10,"scale":2}],"default":null},
{"name":"dec_bytes","type":["null",{"type":"bytes","logicalType":"decimal","precision":20,"scale":3}],"default":null},
{"name":"day","type":["null",{"type":"int","logicalType":"date"}],"default":null},
{"name":"ts_us","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},
{"name":"ts_ms","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
{"name":"rec","type":["null",{"type":"record","name":"rec","namespace":"hoodie.t.t_record","fields":[{"name":"a","type":["null","string"],"default":null},{"name":"n","type":"int"}]}],"default":null},
{"name":"arr","type":["null",{"type":"array","items":["null","long"]}],"default":null},
{"name":"m","type":["null",{"type":"map","values":["null","string"]}],"default":null},
{"name":"req","type":"string"}
]}"#;

fn typed_batch() -> Result<RecordBatch> {
    let rec_fields = vec![
        Field::new("a", DataType::Utf8, true),
        Field::new("n", DataType::Int32, false),
    ];
    let rec = StructArray::try_new(
        rec_fields.clone().into(),
        vec![
            Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])) as ArrayRef,
            Arc::new(Int32Array::from(vec![1, 0, 3])),
        ],
        Some(vec![true, false, true].into()),
    )?;
    let arr = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
        Some(vec![]),
    ]);
    let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    map.keys().append_value("k1");
    map.values().append_value("v1");
    map.keys().append_value("k2");
    map.values().append_null();
    map.append(true)?;
    map.append(false)?;
    map.append(true)?;
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "_hoodie_record_key",
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
        ),
        (
            "i",
            Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(7)])),
        ),
        (
            "l",
            Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(-1)])),
        ),
        (
            "f",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        ),
        (
            "d",
            Arc::new(Float64Array::from(vec![Some(29.1), None, Some(1e300)])),
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        (
            "bin",
            Arc::new(BinaryArray::from_opt_vec(vec![
                Some(b"\x00\xff"),
                None,
                Some(b""),
            ])),
        ),
        (
            "dec_fixed",
            Arc::new(
                Decimal128Array::from(vec![Some(12_345_678), None, Some(-9_999_999_999)])
                    .with_precision_and_scale(10, 2)?,
            ),
        ),
        (
            "dec_bytes",
            Arc::new(
                Decimal128Array::from(vec![Some(-1), None, Some(10i128.pow(19))])
                    .with_precision_and_scale(20, 3)?,
            ),
        ),
        (
            "day",
            Arc::new(Date32Array::from(vec![Some(19_000), None, Some(-1)])),
        ),
        (
            "ts_us",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), None, Some(0)])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "ts_ms",
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_700_000_000_123), None, Some(-1)])
                    .with_timezone("UTC"),
            ),
        ),
        ("rec", Arc::new(rec)),
        ("arr", Arc::new(arr)),
        ("m", Arc::new(map.finish())),
        ("req", Arc::new(StringArray::from(vec!["r1", "r2", "r3"]))),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), *name != "req"))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// Decoded columns may carry other type parameters (time zone spelling, map entry names); cast
/// back to the written types and compare values.
fn assert_same_values(written: &RecordBatch, read: &RecordBatch) -> Result<()> {
    assert_eq!(read.num_rows(), written.num_rows());
    for field in written.schema().fields() {
        let read_column = read
            .column_by_name(field.name())
            .ok_or_else(|| Error::InvalidConfig(format!("no column {}", field.name())))?;
        let read_column = cast(read_column, field.data_type())?;
        let written_column = written
            .column_by_name(field.name())
            .ok_or_else(|| Error::InvalidConfig(format!("no column {}", field.name())))?;
        assert_eq!(&read_column, written_column, "column {}", field.name());
    }
    Ok(())
}

#[test]
fn avro_data_blocks_round_trip_every_supported_type() -> Result<()> {
    let batch = typed_batch()?;
    let block = LogBlock::avro_data(&instant("20250101000000000")?, TYPES_SCHEMA, batch.clone());
    let read = round_trip(&block)?;
    assert_eq!(read.header, block.header);
    let BlockContent::AvroData(decoded) = &read.content else {
        panic!("not an Avro data block: {read:?}");
    };
    assert_same_values(&batch, decoded)?;
    // What we read re-encodes to the same bytes.
    assert_eq!(encode_log_block(&read)?, encode_log_block(&block)?);
    Ok(())
}

#[test]
fn avro_data_blocks_fill_missing_nullable_columns_with_nulls() -> Result<()> {
    let batch = typed_batch()?;
    let subset = batch.project(&[0, 15])?;
    let block = LogBlock::avro_data(&instant("20250101000000000")?, TYPES_SCHEMA, subset);
    let BlockContent::AvroData(decoded) = round_trip(&block)?.content else {
        panic!("not an Avro data block");
    };
    assert_eq!(decoded.num_columns(), 16);
    assert_eq!(decoded.column_by_name("l").map(|c| c.null_count()), Some(3));
    assert_eq!(strings(&decoded, "req")[2].as_deref(), Some("r3"));
    // A required field cannot be left out.
    let no_req = LogBlock::avro_data(
        &instant("20250101000000000")?,
        TYPES_SCHEMA,
        batch.project(&[0])?,
    );
    assert!(matches!(
        encode_log_block(&no_req),
        Err(Error::LogBlockEncode {
            block_type: BlockType::AvroData,
            ..
        })
    ));
    Ok(())
}

#[test]
fn parquet_data_blocks_round_trip() -> Result<()> {
    let batch = typed_batch()?;
    let block = LogBlock::parquet_data(&instant("20250101000000000")?, TYPES_SCHEMA, batch.clone());
    let read = round_trip(&block)?;
    let BlockContent::ParquetData(decoded) = &read.content else {
        panic!("not a Parquet data block: {read:?}");
    };
    assert_same_values(&batch, decoded)?;
    // The content is a whole Parquet file, magic at both ends.
    let bytes = encode_log_block(&block)?;
    assert_eq!(bytes.windows(4).filter(|w| w == b"PAR1").count(), 2);
    Ok(())
}

#[test]
fn undecoded_blocks_keep_their_bytes() -> Result<()> {
    let block = LogBlock {
        header: BlockMetadata::from_iter([(
            HeaderKey::InstantTime,
            "20250101000000000".to_string(),
        )]),
        content: BlockContent::Undecoded {
            block_type: BlockType::HFileData,
            content: vec![1, 2, 3],
        },
        footer: BlockMetadata::from_iter([(HeaderKey::BlockIdentifier, "7".to_string())]),
    };
    assert_eq!(round_trip(&block)?, block);
    Ok(())
}

#[test]
fn refuses_blocks_it_cannot_write() -> Result<()> {
    let corrupt = LogBlock {
        header: BlockMetadata::new(),
        content: BlockContent::Corrupt {
            offset: 0,
            reason: "torn".to_string(),
        },
        footer: BlockMetadata::new(),
    };
    assert!(matches!(
        encode_log_block(&corrupt),
        Err(Error::LogBlockEncode {
            block_type: BlockType::Corrupt,
            ..
        })
    ));
    let mut no_schema =
        LogBlock::avro_data(&instant("20250101000000000")?, TYPES_SCHEMA, typed_batch()?);
    no_schema.header =
        BlockMetadata::from_iter([(HeaderKey::InstantTime, "20250101000000000".to_string())]);
    assert!(matches!(
        encode_log_block(&no_schema),
        Err(Error::LogBlockEncode {
            block_type: BlockType::AvroData,
            ..
        })
    ));
    Ok(())
}
