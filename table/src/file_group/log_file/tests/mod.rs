//! Tests of the log file format: golden files written by Spark, round trips of every block kind
//! through our writer and reader, and damaged files.

mod corrupt;
mod fixtures;
mod round_trip;

use arrow::array::{AsArray, RecordBatch};

use super::*;
use crate::error::{Error, Result};

const AVRO_DATA: &str =
    "valid_log_avro_data/.ff32ab89-5ad0-4968-83b4-89a34c95d32f-0_20250316025816068.log.1_0-54-122";
const PARQUET_DATA: &str = "valid_log_parquet_data/.ee2ace10-7667-40f5-9848-0a144b5ea064-0_20250113230302428.log.1_0-188-387";
const DELETE: &str =
    "valid_log_delete/.6d3d1d6e-2298-4080-a0c1-494877d6f40a-0_20250618054711154.log.1_0-26-85";
const ROLLBACK: &str =
    "valid_log_rollback/.0712b9f9-d2d5-4cae-bcf4-8fd7146af503-0_20250126040823628.log.2_1-0-1";
const ALL_FIXTURES: [&str; 4] = [AVRO_DATA, PARQUET_DATA, DELETE, ROLLBACK];

fn fixture(name: &str) -> Result<Vec<u8>> {
    // The crate's folder when the test runs (cargo sets it), not when it was built: the build
    // cache is shared between clones at other paths.
    let crate_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{crate_dir}/../../shared/fixtures/hudi-log-files/{name}");
    std::fs::read(&path).map_err(|source| Error::Io { path, source })
}

fn single_block(name: &str) -> Result<LogBlock> {
    let mut blocks = read_log_blocks(&fixture(name)?)?;
    assert_eq!(blocks.len(), 1, "{name}");
    Ok(blocks.remove(0))
}

fn instant(s: &str) -> Result<InstantTime> {
    s.parse()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    batch
        .column_by_name(column)
        .map(|c| {
            c.as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
