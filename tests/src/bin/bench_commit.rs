//! What a small commit costs as the table grows: merge-on-read tables of 4 buckets in 1, 25, 250
//! and 2,500 partitions (4 to 10,000 file groups), written once (1,000 rows in the first
//! partition, 40 in each other), then COMMITS commits of 10 and of 1,000 upserts. The upserts
//! change keys of the first partition, so every commit writes the same 4 file groups at every
//! table size: what grows is only the rest of the table, which a commit should not pay for.
//!
//! Two writers: one long-running writer (its snapshot advanced commit by commit), and a fresh
//! writer per commit (what `inlet write` is: open the table, list it, commit). Prints
//! milliseconds per commit (median) and object-store requests per commit (counted by a wrapping
//! object store; a listing counts one request per 1,000 keys, as S3's), on local disk and, when
//! `INLET_MOTO_SERVER` names a moto_server, on S3 (moto).
//!
//! `cargo run --release -p inlet-tests --bin bench_commit -- [MAX_PARTITIONS] [COMMITS] [WRITERS]`
//! (default 2500 5 both; WRITERS is `both`, `long` or `fresh`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use inlet_table::requests::{RequestCounts, Requests};
use inlet_table::write::Changes;
use inlet_table::{Table, TableConfig, TableProperties, TableType};
use inlet_tests::harness::moto::MotoServer;

const BUCKETS: u32 = 4;
const ROWS_PER_PARTITION: i64 = 40;
/// Rows of the first partition, which the measured commits change.
const HOT_ROWS: i64 = 1000;

/// The partition of a key: the first HOT_ROWS keys in `p0`, then ROWS_PER_PARTITION per partition.
fn partition_of(id: i64) -> String {
    if id < HOT_ROWS {
        "p0".to_string()
    } else {
        format!("p{}", 1 + (id - HOT_ROWS) / ROWS_PER_PARTITION)
    }
}

/// The keys of a table of `partitions` partitions.
fn all_keys(partitions: i64) -> std::ops::Range<i64> {
    0..HOT_ROWS + (partitions - 1) * ROWS_PER_PARTITION
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("part", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("value", DataType::Utf8, true),
    ]))
}

/// Rows `ids`, each in its partition (see [`partition_of`]), with version `ts`.
fn rows(ids: impl Iterator<Item = i64>, ts: i64) -> anyhow::Result<RecordBatch> {
    let ids: Vec<i64> = ids.collect();
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| partition_of(*i)),
            )),
            Arc::new(Int64Array::from(vec![ts; ids.len()])),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("value {i} at {ts}")),
            )),
        ],
    )?)
}

/// `n` upserts of distinct keys of the first partition.
fn changes(n: usize, ts: i64) -> anyhow::Result<RecordBatch> {
    rows((0..n as i64).map(|i| i % HOT_ROWS), ts)
}

struct Where {
    name: &'static str,
    base: String,
    options: Vec<(String, String)>,
}

fn config(place: &Where, counts: &Arc<RequestCounts>) -> TableConfig {
    TableConfig {
        storage_options: place.options.clone(),
        request_counts: Some(counts.clone()),
        ..TableConfig::default()
    }
}

/// Median milliseconds and median requests per commit.
fn medians(samples: &mut [(f64, Requests)]) -> (f64, Requests) {
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ms = samples[samples.len() / 2].0;
    samples.sort_by_key(|s| s.1.total());
    (ms, samples[samples.len() / 2].1)
}

async fn run(
    place: &Where,
    partitions: i64,
    commits: usize,
    writers: &str,
) -> anyhow::Result<Vec<(usize, &'static str, f64, Requests)>> {
    let uri = format!("{}/t{partitions}", place.base);
    let counts = Arc::new(RequestCounts::default());
    let mut props = TableProperties::new("bench", TableType::MergeOnRead, vec!["id".into()]);
    props.ordering_field = Some("ts".into());
    props.partition_fields = vec!["part".into()];
    props.buckets = Some(BUCKETS);
    let table = Table::create(&uri, config(place, &counts), props).await?;
    let mut writer = table.writer().await?;
    writer
        .commit(
            Changes::upsert(rows(all_keys(partitions), 0)?),
            BTreeMap::new(),
        )
        .await?;
    let mut ts = 1;
    let mut out = Vec::new();
    let long = if writers == "fresh" {
        &[][..]
    } else {
        &[10, 1000][..]
    };
    let fresh = if writers == "long" {
        &[][..]
    } else {
        &[10, 1000][..]
    };
    for &size in long {
        // The long-running writer: one warm-up commit, then the measured ones.
        writer
            .commit(Changes::upsert(changes(size, ts)?), BTreeMap::new())
            .await?;
        ts += 1;
        let mut samples = Vec::new();
        let mut lookups = Vec::new();
        let mut probes = 0;
        for _ in 0..commits {
            let before = counts.now();
            let started = Instant::now();
            let commit = writer
                .commit(Changes::upsert(changes(size, ts)?), BTreeMap::new())
                .await?;
            samples.push((
                started.elapsed().as_secs_f64() * 1e3,
                counts.now().since(&before),
            ));
            lookups.push(commit.lookup.elapsed.as_secs_f64() * 1e3);
            probes = commit.lookup.probes;
            ts += 1;
        }
        let (ms, requests) = medians(&mut samples);
        lookups.sort_by(f64::total_cmp);
        eprintln!(
            "{} {partitions} partitions, {size} changes: key lookup {:.1} ms of {ms:.1} ms ({probes} filter probes)",
            place.name,
            lookups[lookups.len() / 2]
        );
        out.push((size, "long-running writer", ms, requests));
    }
    writer.close().await?;
    for &size in fresh {
        let mut samples = Vec::new();
        for _ in 0..commits {
            let before = counts.now();
            let started = Instant::now();
            let table = Table::open(&uri, config(place, &counts)).await?;
            let mut writer = table.writer().await?;
            writer
                .commit(Changes::upsert(changes(size, ts)?), BTreeMap::new())
                .await?;
            writer.close().await?;
            samples.push((
                started.elapsed().as_secs_f64() * 1e3,
                counts.now().since(&before),
            ));
            ts += 1;
        }
        let (ms, requests) = medians(&mut samples);
        out.push((size, "fresh writer (CLI)", ms, requests));
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .take(2)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let max_partitions = args.first().copied().unwrap_or(2500) as i64;
    let commits = args.get(1).copied().unwrap_or(5).max(1);
    let writers = std::env::args()
        .nth(3)
        .unwrap_or_else(|| "both".to_string());
    let dir = tempfile::tempdir()?;
    let mut places = vec![Where {
        name: "local",
        base: dir.path().display().to_string(),
        options: Vec::new(),
    }];
    let moto = match std::env::var("INLET_MOTO_SERVER") {
        Ok(_) => {
            let moto = MotoServer::start()?;
            moto.create_bucket("bench")?;
            places.push(Where {
                name: "s3 (moto)",
                base: "s3://bench".to_string(),
                options: moto.storage_options(),
            });
            Some(moto)
        }
        Err(_) => {
            eprintln!("INLET_MOTO_SERVER is not set: local disk only");
            None
        }
    };
    println!(
        "merge-on-read, {BUCKETS} buckets per partition, {ROWS_PER_PARTITION} rows per partition; median of {commits} commits"
    );
    println!(
        "| storage | writer | changes | file groups | ms / commit | requests / commit | GET | PUT | DELETE | LIST |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: Vec<i64> = [1, 25, 250, 2500]
        .into_iter()
        .filter(|p| *p <= max_partitions)
        .collect();
    for place in &places {
        let mut rows = Vec::new();
        for &partitions in &sizes {
            for (size, writer, ms, r) in run(place, partitions, commits, &writers).await? {
                rows.push((writer, size, partitions, ms, r));
            }
        }
        rows.sort_by_key(|r| (r.0, r.1, r.2));
        for (writer, size, partitions, ms, r) in rows {
            println!(
                "| {} | {writer} | {size} | {} | {ms:.1} | {} | {} | {} | {} | {} |",
                place.name,
                partitions * i64::from(BUCKETS),
                r.total(),
                r.gets,
                r.puts,
                r.deletes,
                r.lists
            );
        }
    }
    drop(moto);
    Ok(())
}
