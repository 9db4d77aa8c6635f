//! Write throughput on local disk, inlet against delta-rs. One run generates (seeded) a bulk
//! insert of ROWS rows and an upsert of ROWS/10 changes (80% updates, 10% inserts, 10% deletes
//! of distinct ids) and writes them as Parquet into a temporary directory; then, on that data:
//!
//! - inlet copy-on-write: bulk insert, upsert;
//! - inlet merge-on-read: bulk insert, upsert, compaction of the result;
//! - delta-rs (the `deltalake` Python package, `tests/interop/bench_delta.py`): `write_deltalake`
//!   of the bulk data, then a `MERGE` of the changes.
//!
//! Every step runs in a child process of its own (this binary with a hidden `--step` argument,
//! or the Python script), so its peak resident memory is its own; the inlet children read the
//! table back afterwards and check its row count, as does the script. Prints a table of rows/s,
//! seconds and memory per step and the upsert ratios against the delta-rs MERGE.
//!
//! `cargo run --release -p inlet-tests --bin bench_write -- [ROWS] [BUCKETS]` (default 1000000 4).
//! The Python is `INLET_PYTHON`, by default the repository's `.venv` (see `scripts/venv`). The
//! data and tables go to a temporary directory, removed at the end, or to `INLET_BENCH_DIR`
//! (empty or new), kept.

mod data;
mod inlet;
mod step;

use std::process::Command;

use anyhow::Context;
use inlet_table::TableType;

use data::Generated;
use inlet::Kind;
use step::Step;

/// Goals of the benchmark: upsert rate over the delta-rs MERGE rate.
const MOR_GOAL: f64 = 6.0;
const COW_GOAL: f64 = 1.5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(inlet::STEP_ARG) {
        return inlet::run_child(&args[1..]).await;
    }
    let rows: usize = args
        .first()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let buckets: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4);
    anyhow::ensure!(rows >= 10, "ROWS must be at least 10");
    let python = std::env::var("INLET_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/bench_delta.py");

    // INLET_BENCH_DIR keeps the data and tables for a look afterwards.
    let (_temp, dir) = inlet_tests::harness::bench_dir()?;
    let dir = dir.as_path();
    eprintln!("bench: generating {rows} rows in {}", dir.display());
    let data = data::generate(dir, rows)?;

    let mut results: Vec<(String, Step)> = Vec::new();
    for table_type in [TableType::CopyOnWrite, TableType::MergeOnRead] {
        let name = match table_type {
            TableType::CopyOnWrite => "COW",
            TableType::MergeOnRead => "MOR",
        };
        let mut kinds = vec![
            (Kind::Bulk, rows, "bulk insert"),
            (Kind::Upsert, data.rows_after_upsert(), "upsert"),
        ];
        if table_type == TableType::MergeOnRead {
            kinds.push((Kind::Compact, data.rows_after_upsert(), "compaction"));
        }
        for (kind, expect, label) in kinds {
            let label = format!("inlet {name} {label}");
            eprintln!("bench: {label}");
            let exe = std::env::current_exe()?;
            let args = inlet::child_args(kind, table_type, dir, buckets, expect);
            let step = run_child(Command::new(exe).args(args), &label)?;
            results.push((label, step));
        }
    }
    for (phase, expect, label) in [
        ("bulk", rows, "delta-rs bulk insert (write_deltalake)"),
        ("merge", data.rows_after_upsert(), "delta-rs upsert (MERGE)"),
    ] {
        eprintln!("bench: {label}");
        let mut command = Command::new(&python);
        command
            .arg(script)
            .arg(dir)
            .arg(phase)
            .arg(format!("--expect-rows={expect}"));
        results.push((label.to_string(), run_child(&mut command, label)?));
    }
    print_report(&data, buckets, &results);
    Ok(())
}

/// Runs a step's child process and parses the step it reports.
fn run_child(command: &mut Command, label: &str) -> anyhow::Result<Step> {
    let stdout = inlet_tests::harness::run_child(command, label)?;
    Step::from_output(&stdout).with_context(|| format!("{label}: reading the step's report"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_report(data: &Generated, buckets: u32, results: &[(String, Step)]) {
    println!(
        "Local disk, {} rows bulk, {} changes ({} updates, {} inserts, {} deletes), \
         inlet with {buckets} buckets, {} cores",
        data.rows,
        data.changes(),
        data.updates,
        data.inserts,
        data.deletes,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!(
        "| step | rows | seconds | rows/s | peak RSS MiB | RSS at start MiB | files | MiB written \
         | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (label, s) in results {
        println!(
            "| {label} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {} |",
            s.rows,
            s.secs,
            s.rows_per_sec(),
            mib(s.peak_rss_kib),
            mib(s.base_rss_kib),
            s.files,
            s.bytes as f64 / 1048576.0,
            s.note
        );
    }
    println!();
    for line in [
        "Timed: inlet's commit and delta-rs's write_deltalake / merge().execute() of the input \
         already in memory; compaction: schedule and execute (with their leases).",
        "Each step is a process of its own: peak RSS is its peak (VmHWM; ru_maxrss for Python), \
         including the input it read from Parquet before the clock started; \"RSS at start\" \
         is its resident memory when the clock started (for delta-rs, mostly Python and its \
         libraries).",
        "Notes are what each tool reports: inlet's commit metadata (a MOR log write counts \
         inserts as updates), the MERGE metrics of delta-rs. Compaction rows are the records \
         written to the new base files. Row counts are checked after every step.",
    ] {
        println!("{line}");
    }
    println!();
    let rate = |label: &str| {
        results
            .iter()
            .find(|(l, _)| l == label)
            .map_or(0.0, |(_, s)| s.rows_per_sec())
    };
    let merge = rate("delta-rs upsert (MERGE)");
    for (name, goal) in [("MOR", MOR_GOAL), ("COW", COW_GOAL)] {
        let ratio = rate(&format!("inlet {name} upsert")) / merge;
        println!(
            "inlet {name} upsert / delta-rs MERGE: {ratio:.2}x (goal >= {goal}x: {})",
            if ratio >= goal { "met" } else { "NOT met" }
        );
    }
    let bulk = rate("delta-rs bulk insert (write_deltalake)");
    for name in ["COW", "MOR"] {
        println!(
            "inlet {name} bulk insert / delta-rs write_deltalake: {:.2}x",
            rate(&format!("inlet {name} bulk insert")) / bulk
        );
    }
}
