//! Our reader returns what hudi-rs returns for every version-6 table Spark wrote, copy-on-write
//! and merge-on-read (Avro and Parquet data blocks, delete blocks, rollback command blocks):
//! snapshot, read-optimized, time travel to each commit, and incremental reads from each commit.

use inlet_table::{Table, TableConfig};
use inlet_tests::harness::fixtures::unzip_fixture;

mod common;

const FIXTURES: [&str; 16] = [
    "sample_table/cow/v6_nonpartitioned.zip",
    "sample_table/cow/v6_complexkeygen_hivestyle.zip",
    "sample_table/cow/v6_simplekeygen_nonhivestyle.zip",
    "sample_table/cow/v6_simplekeygen_hivestyle_no_metafields.zip",
    "sample_table/cow/v6_timebasedkeygen_nonhivestyle.zip",
    "sample_table/cow/v6_simplekeygen_nonhivestyle_overwritetable.zip",
    "sample_table/cow/v6_empty.zip",
    "sample_table/mor/parquet/v6_nonpartitioned.zip",
    "sample_table/mor/parquet/v6_nonpartitioned_rollback.zip",
    "sample_table/mor/parquet/v6_complexkeygen_hivestyle.zip",
    "sample_table/mor/parquet/v6_simplekeygen_nonhivestyle.zip",
    "sample_table/mor/parquet/v6_simplekeygen_hivestyle_no_metafields.zip",
    "sample_table/mor/parquet/v6_simplekeygen_nonhivestyle_overwritetable.zip",
    "sample_table/mor/parquet/v6_empty.zip",
    "quickstart_trips_table/mor/avro/v6_trips_8i1u.zip",
    "quickstart_trips_table/mor/avro/v6_trips_8i3d.zip",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_reader_matches_hudi_rs_on_spark_tables() -> anyhow::Result<()> {
    for fixture in FIXTURES {
        let dir = tempfile::tempdir()?;
        let uri = unzip_fixture(fixture, dir.path())?.display().to_string();
        let table = Table::open(&uri, TableConfig::default()).await?;
        let compared = common::compare_with_hudi_rs(&table, &uri, &[]).await?;
        assert!(compared >= 1, "{fixture}");
    }
    Ok(())
}
