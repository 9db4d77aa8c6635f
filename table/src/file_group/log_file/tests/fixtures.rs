//! Golden tests: the single-block log files Spark wrote with Hudi 0.14 that hudi-rs ships in
//! `crates/core/tests/data/log_files` decode to their known content and re-encode to their bytes.

use std::cmp::Ordering;

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};

use super::*;

#[test]
fn fixture_names_round_trip() -> Result<()> {
    for path in ALL_FIXTURES {
        let name = path.rsplit('/').next().unwrap_or_default();
        let file = LogFile::parse(name).ok_or_else(|| Error::InvalidInstant(name.to_string()))?;
        assert_eq!(file.file_name(), name);
        assert!(!file.cdc);
    }
    let file = LogFile::parse(ROLLBACK.rsplit('/').next().unwrap_or_default());
    assert_eq!(
        file,
        Some(LogFile {
            file_id: "0712b9f9-d2d5-4cae-bcf4-8fd7146af503-0".parse()?,
            base_instant: instant("20250126040823628")?,
            version: 2,
            write_token: "1-0-1".to_string(),
            cdc: false,
            size: 0,
        })
    );
    let cdc = ".f1-0_20250126040823628.log.10_0-1-2.cdc";
    let parsed = LogFile::parse(cdc);
    assert_eq!(
        parsed.as_ref().map(|f| (f.version, f.cdc)),
        Some((10, true))
    );
    assert_eq!(parsed.map(|f| f.file_name()).as_deref(), Some(cdc));
    let token: WriteToken = "3-14-15".parse()?;
    let new = LogFile::new(&"f1-0".parse()?, &instant("20250126040823628")?, 1, &token);
    assert_eq!(new.file_name(), ".f1-0_20250126040823628.log.1_3-14-15");
    for other in [
        "f1-0_20250126040823628.log.1_0-1-1",   // no leading dot
        ".f1-0_20250126040823628.log.1",        // no write token
        ".f1-0_20250126040823628.log.x_0-1-1",  // version not a number
        ".f1-0_20250126040823628.log.+1_0-1-1", // sign
        ".f1-0_20250126040823628.log.1_0-1",    // short token
        ".f1-0_2025.log.1_0-1-1",               // not an instant
        ".f_1-0_20250126040823628.log.1_0-1-1", // underscore in the file id
        "._20250126040823628.log.1_0-1-1",      // empty file id
        ".f1-0_20250126040823628.archive.1_0-1-1",
        ".hoodie_partition_metadata",
        "f1-0_0-1-1_20250126040823628.parquet",
    ] {
        assert_eq!(LogFile::parse(other), None, "{other}");
    }
    Ok(())
}

#[test]
fn log_files_order_by_version_then_write_token() -> Result<()> {
    let base = instant("20250126040823628")?;
    let later = instant("20250126040823629")?;
    let file = |instant: &InstantTime, version, token: &str, cdc| LogFile {
        file_id: crate::FileId::from_storage("f1-0"),
        base_instant: instant.clone(),
        version,
        write_token: token.to_string(),
        cdc,
        size: 0,
    };
    let mut files = [
        file(&later, 1, "0-1-1", false),
        file(&base, 10, "0-1-1", false),
        file(&base, 2, "1-0-1", false),
        file(&base, 2, "0-9-9", true),
        file(&base, 2, "0-9-9", false),
        file(&base, 1, "0-1-1", false),
    ];
    files.sort_by(LogFile::cmp_in_slice);
    let order: Vec<(u32, &str, bool)> = files
        .iter()
        .map(|f| (f.version, f.write_token.as_str(), f.cdc))
        .collect();
    assert_eq!(
        order,
        [
            (1, "0-1-1", false),
            (2, "0-9-9", false),
            (2, "0-9-9", true),
            (2, "1-0-1", false),
            (10, "0-1-1", false),
            (1, "0-1-1", false),
        ]
    );
    assert_eq!(files[0].cmp_in_slice(&files[0]), Ordering::Equal);
    assert_eq!(files[5].base_instant, later);
    Ok(())
}

#[test]
fn decodes_and_reencodes_the_avro_data_fixture() -> Result<()> {
    let bytes = fixture(AVRO_DATA)?;
    let block = single_block(AVRO_DATA)?;
    assert_eq!(block.block_type(), BlockType::AvroData);
    assert_eq!(block.instant_time(), Some(instant("20250316025828811")?));
    assert!(
        block
            .schema()
            .is_some_and(|s| s.contains("_hoodie_record_key"))
    );
    assert!(block.footer.is_empty());
    let BlockContent::AvroData(batch) = &block.content else {
        panic!("not an Avro data block: {block:?}");
    };
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.num_columns(), 11);
    let key = Some("334e26e9-8355-45cc-97c6-c31daf0df330".to_string());
    assert_eq!(strings(batch, "_hoodie_record_key"), strings(batch, "uuid"));
    assert_eq!(strings(batch, "uuid"), [key]);
    assert_eq!(
        strings(batch, "_hoodie_commit_seqno"),
        [Some("20250316025828811_0_2".to_string())]
    );
    assert_eq!(
        strings(batch, "_hoodie_partition_path"),
        [Some("city=san_francisco".to_string())]
    );
    assert_eq!(strings(batch, "rider"), [Some("rider-A".to_string())]);
    assert_eq!(strings(batch, "driver"), [Some("driver-K".to_string())]);
    let ts = batch
        .column_by_name("ts")
        .map(|c| c.as_primitive::<Int64Type>().value(0));
    assert_eq!(ts, Some(1695159649088));
    let fare = batch
        .column_by_name("fare")
        .map(|c| c.as_primitive::<Float64Type>().value(0));
    assert_eq!(fare, Some(29.1));
    assert_eq!(encode_log_block(&block)?, bytes);
    Ok(())
}

#[test]
fn decodes_the_parquet_data_fixture() -> Result<()> {
    let block = single_block(PARQUET_DATA)?;
    assert_eq!(block.block_type(), BlockType::ParquetData);
    assert_eq!(block.instant_time(), Some(instant("20250113230424191")?));
    assert!(
        block
            .schema()
            .is_some_and(|s| s.contains("_hoodie_record_key"))
    );
    let BlockContent::ParquetData(batch) = &block.content else {
        panic!("not a Parquet data block: {block:?}");
    };
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(
        strings(batch, "_hoodie_record_key"),
        [Some("334e26e9-8355-45cc-97c6-c31daf0df330".to_string())]
    );
    assert_eq!(
        strings(batch, "_hoodie_file_name"),
        [Some("ee2ace10-7667-40f5-9848-0a144b5ea064-0".to_string())]
    );
    assert_eq!(strings(batch, "driver"), [Some("driver-K".to_string())]);
    assert_eq!(strings(batch, "city"), [Some("san_francisco".to_string())]);
    // Our Parquet bytes differ from parquet-mr's; the records must not.
    let again = read_log_blocks(&encode_log_block(&block)?)?;
    assert_eq!(again, [block]);
    Ok(())
}

#[test]
fn decodes_and_reencodes_the_delete_fixture() -> Result<()> {
    let bytes = fixture(DELETE)?;
    let block = single_block(DELETE)?;
    assert_eq!(block.block_type(), BlockType::Delete);
    assert_eq!(block.instant_time(), Some(instant("20250618054714114")?));
    assert!(
        block
            .schema()
            .is_some_and(|s| s.contains("_hoodie_record_key"))
    );
    // Spark wrote the SCHEMA header before INSTANT_TIME here; the order must survive.
    let keys: Vec<HeaderKey> = block.header.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [HeaderKey::Schema, HeaderKey::InstantTime]);
    let BlockContent::Delete(records) = &block.content else {
        panic!("not a delete block: {block:?}");
    };
    let expected: Vec<DeleteRecord> = [
        "e96c4396-3fad-413a-a942-4cb36106d721",
        "9909a8b1-2d15-4d3d-8ec9-efc48c536a00",
        "334e26e9-8355-45cc-97c6-c31daf0df330",
    ]
    .into_iter()
    .map(|key| DeleteRecord {
        record_key: Some(key.to_string()),
        partition_path: Some("city=san_francisco".to_string()),
        ordering_value: OrderingValue::NATURAL,
    })
    .collect();
    assert_eq!(records, &expected);
    assert_eq!(encode_log_block(&block)?, bytes);
    Ok(())
}

#[test]
fn decodes_and_reencodes_the_rollback_fixture() -> Result<()> {
    let bytes = fixture(ROLLBACK)?;
    let block = single_block(ROLLBACK)?;
    assert_eq!(block.block_type(), BlockType::Command);
    assert_eq!(block.instant_time(), Some(instant("20250126040936578")?));
    assert_eq!(
        block.content,
        BlockContent::Command {
            target_instant: instant("20250126040826878")?
        }
    );
    assert_eq!(block.header.get(HeaderKey::CommandBlockType), Some("0"));
    assert_eq!(encode_log_block(&block)?, bytes);
    // A fresh rollback block differs only in header order (Java's is `HashMap` order).
    let fresh = LogBlock::rollback(
        &instant("20250126040936578")?,
        &instant("20250126040826878")?,
    );
    let encoded = encode_log_block(&fresh)?;
    assert_eq!(encoded.len(), bytes.len());
    assert_eq!(read_log_blocks(&encoded)?, [fresh]);
    Ok(())
}

#[test]
fn reads_blocks_back_to_back() -> Result<()> {
    let mut file = Vec::new();
    let mut expected = Vec::new();
    for name in [ROLLBACK, AVRO_DATA, DELETE, PARQUET_DATA, ROLLBACK] {
        file.extend(fixture(name)?);
        expected.push(single_block(name)?);
    }
    assert_eq!(read_log_blocks(&file)?, expected);
    assert_eq!(read_log_blocks(&[])?, []);
    Ok(())
}
