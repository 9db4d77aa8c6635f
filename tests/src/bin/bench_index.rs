//! The cost of the global key index: a commit of DELETES deletes that carry only the key, into a
//! table of ROWS rows in PARTITIONS partitions (the index must find each key's partition), against
//! the same deletes into the same rows without partitions (where the question does not arise).
//! Copy-on-write and merge-on-read; the first delete commit of a new writer reads the footers
//! (cold), a second one in the same writer uses its cache (warm; copy-on-write rewrote the file
//! groups, so their new footers are read again). Row counts are checked after each commit.
//! Prints seconds per commit, the part spent finding the keys' partitions, and the filters read.
//!
//! `cargo run --release -p inlet-tests --bin bench_index -- [ROWS] [PARTITIONS] [DELETES] [BUCKETS]`
//! (default 1000000 100 10000 4).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use inlet_table::read::Query;
use inlet_table::write::{Changes, Operation};
use inlet_table::{Table, TableConfig, TableProperties, TableType};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("part", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("value", DataType::Utf8, true),
    ]))
}

fn rows(ids: &[i64], partitions: usize) -> anyhow::Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("p{}", *i as usize % partitions)),
            )),
            Arc::new(Int64Array::from(vec![1; ids.len()])),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("value {i}")),
            )),
        ],
    )?)
}

/// Deletes carrying only the key: every other column null.
fn key_only_deletes(ids: &[i64]) -> anyhow::Result<RecordBatch> {
    let n = ids.len();
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(Int64Array::from(vec![None; n])),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
        ],
    )?)
}

async fn count(table: &Table) -> anyhow::Result<usize> {
    Ok(table.read(&Query::Snapshot).await?.num_rows())
}

/// One delete commit: its seconds, and the part of them spent finding where the keys are.
#[derive(Debug, Clone, Copy)]
struct Timed {
    commit: f64,
    lookup: f64,
    filters_read: usize,
}

/// The (cold, warm) delete commits.
async fn run(
    table_type: TableType,
    rows_n: usize,
    partitions: usize,
    deletes: usize,
    buckets: u32,
) -> anyhow::Result<(Timed, Timed)> {
    let dir = tempfile::tempdir()?;
    let mut props = TableProperties::new("bench", table_type, vec!["id".into()]);
    props.ordering_field = Some("ts".into());
    if partitions > 1 {
        props.partition_fields = vec!["part".into()];
    }
    props.buckets = Some(buckets);
    let table = Table::create(
        &dir.path().display().to_string(),
        TableConfig::default(),
        props,
    )
    .await?;
    let ids: Vec<i64> = (0..rows_n as i64).collect();
    let mut writer = table.writer().await?;
    writer
        .commit(
            Changes::upsert(rows(&ids, partitions.max(1))?),
            BTreeMap::new(),
        )
        .await?;
    writer.close().await?;

    let mut shuffled = ids;
    shuffled.shuffle(&mut StdRng::seed_from_u64(3));
    let mut seconds = Vec::new();
    let mut writer = table.writer().await?;
    for round in 0..2 {
        let victims = &shuffled[round * deletes..(round + 1) * deletes];
        let started = Instant::now();
        let commit = writer
            .commit(
                Changes {
                    batch: key_only_deletes(victims)?,
                    deletes: None,
                    operation: Operation::Delete,
                },
                BTreeMap::new(),
            )
            .await?;
        seconds.push(Timed {
            commit: started.elapsed().as_secs_f64(),
            lookup: commit.lookup.elapsed.as_secs_f64(),
            filters_read: commit.lookup.filters_read,
        });
        let deleted = commit.metadata.totals().deletes;
        anyhow::ensure!(
            deleted as usize == deletes,
            "{table_type:?}: {deleted} of {deletes} keys deleted"
        );
    }
    writer.close().await?;
    let left = count(&table).await?;
    anyhow::ensure!(
        left == rows_n - 2 * deletes,
        "{table_type:?}: {left} rows left, expected {}",
        rows_n - 2 * deletes
    );
    Ok((seconds[0], seconds[1]))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let rows = args.first().copied().unwrap_or(1_000_000);
    let partitions = args.get(1).copied().unwrap_or(100);
    let deletes = args.get(2).copied().unwrap_or(10_000);
    let buckets = args.get(3).copied().unwrap_or(4) as u32;
    anyhow::ensure!(2 * deletes <= rows, "DELETES must be at most ROWS / 2");
    println!(
        "delete-by-key commits of {deletes} keys (key only), table of {rows} rows, {buckets} buckets"
    );
    println!(
        "| table | partitions | commit, new writer | of which lookup | filters read | commit, same writer | of which lookup | filters read |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for table_type in [TableType::CopyOnWrite, TableType::MergeOnRead] {
        for parts in [partitions, 1] {
            let (cold, warm) = run(table_type, rows, parts, deletes, buckets).await?;
            println!(
                "| {table_type:?} | {parts} | {:.3} s | {:.3} s | {} | {:.3} s | {:.3} s | {} |",
                cold.commit,
                cold.lookup,
                cold.filters_read,
                warm.commit,
                warm.lookup,
                warm.filters_read
            );
        }
    }
    Ok(())
}
