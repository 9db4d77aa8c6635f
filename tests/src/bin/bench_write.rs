//! Write throughput on local disk: a bulk insert of N rows, then an upsert of N/10 changes into it
//! (80% updates, 10% inserts, 10% deletes), into a copy-on-write or merge-on-read table. Prints
//! rows/s and peak memory.
//!
//! `cargo run --release -p inlet-tests --bin bench_write -- [ROWS] [BUCKETS] [cow|mor]`
//! (default 1000000 4 cow).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use inlet_table::write::{Changes, Operation};
use inlet_table::{Table, TableConfig, TableProperties, TableType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("_cdc_position", DataType::Int64, true),
    ]))
}

fn batch(ids: &[i64], rng: &mut StdRng, position: i64) -> RecordBatch {
    let n = ids.len();
    let statuses = ["new", "paid", "shipped", "returned"];
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("customer-{}", i % 50_000)),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|_| rng.random_range(0.0..10_000.0)),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|_| statuses[rng.random_range(0..4)]),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| 1_763_700_000_000_000 + i as i64),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| position + i),
            )),
        ],
    )
    .expect("bench batch")
}

/// Peak resident set size of this process, from /proc.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let buckets: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let table_type = match args.next().as_deref() {
        None | Some("cow") => TableType::CopyOnWrite,
        Some("mor") => TableType::MergeOnRead,
        Some(other) => anyhow::bail!("table type {other:?}: use cow or mor"),
    };
    let changes = rows / 10;
    let dir = tempfile::tempdir()?;
    let mut props = TableProperties::new("bench", table_type, vec!["id".into()]);
    props.ordering_field = Some("_cdc_position".into());
    props.buckets = Some(buckets);
    let table = Table::create(
        &dir.path().display().to_string(),
        TableConfig::default(),
        props,
    )
    .await?;
    let mut rng = StdRng::seed_from_u64(42);

    let ids: Vec<i64> = (0..rows as i64).collect();
    let insert = batch(&ids, &mut rng, 0);
    let mut writer = table.writer().await?;
    let started = Instant::now();
    let c1 = writer
        .commit(
            Changes {
                batch: insert,
                deletes: None,
                operation: Operation::Insert,
            },
            BTreeMap::new(),
        )
        .await?;
    let insert_secs = started.elapsed().as_secs_f64();

    // 80% updates of existing ids, 10% new ids, 10% deletes of existing ids.
    let mut upsert_ids = Vec::with_capacity(changes);
    let mut deletes = Vec::with_capacity(changes);
    for i in 0..changes {
        match i % 10 {
            0 => {
                upsert_ids.push(rows as i64 + i as i64);
                deletes.push(false);
            }
            1 => {
                upsert_ids.push(rng.random_range(0..rows as i64));
                deletes.push(true);
            }
            _ => {
                upsert_ids.push(rng.random_range(0..rows as i64));
                deletes.push(false);
            }
        }
    }
    let upsert = batch(&upsert_ids, &mut rng, rows as i64);
    let started = Instant::now();
    let c2 = writer
        .commit(
            Changes {
                batch: upsert,
                deletes: Some(BooleanArray::from(deletes)),
                operation: Operation::Upsert,
            },
            BTreeMap::new(),
        )
        .await?;
    let upsert_secs = started.elapsed().as_secs_f64();
    writer.close().await?;

    let t1 = c1.metadata.totals();
    let t2 = c2.metadata.totals();
    println!(
        "inlet {} write, local disk, {buckets} buckets, {} cores",
        if table_type == TableType::MergeOnRead {
            "MOR"
        } else {
            "COW"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| step | rows | seconds | rows/s | files | MiB written |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| bulk insert | {rows} | {insert_secs:.2} | {:.0} | {} | {:.1} |",
        rows as f64 / insert_secs,
        t1.files,
        t1.bytes as f64 / 1048576.0
    );
    println!(
        "| upsert ({} updates, {} inserts, {} deletes) | {changes} | {upsert_secs:.2} | {:.0} | {} | {:.1} |",
        t2.updates,
        t2.inserts,
        t2.deletes,
        changes as f64 / upsert_secs,
        t2.files,
        t2.bytes as f64 / 1048576.0
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
