//! The process the crash tests kill: runs one table operation with the failpoint named by
//! `INLET_FAILPOINT` armed (the `failpoints` feature is on in this crate's dependencies), so it
//! aborts midway.
//!
//! `crash_child <TABLE> write <SEED>` — one commit of random changes
//! `crash_child <TABLE> compact`      — schedule and execute a compaction of every slice
//! `crash_child <TABLE> clean`        — clean, keeping the latest file version
//! `crash_child <TABLE> restore <T>`  — restore to the savepoint at T

use std::collections::BTreeMap;

use anyhow::Context;
use inlet_compaction::TableServices;
use inlet_compaction::clean::{self, Policy};
use inlet_compaction::compact::{self, Strategy};
use inlet_table::write::{Changes, Operation};
use inlet_table::{Table, TableConfig};
use inlet_tests::model;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (uri, op) = match args.as_slice() {
        [uri, op, ..] => (uri.as_str(), op.as_str()),
        _ => anyhow::bail!("usage: crash_child TABLE write SEED | compact | clean | restore T"),
    };
    let table = Table::open(uri, TableConfig::default()).await?;
    match op {
        "write" => {
            let seed: u64 = args.get(2).context("a seed")?.parse()?;
            let changes = model::random_changes(&mut StdRng::seed_from_u64(seed), 30, 40);
            let (batch, deletes) = model::to_batch(&changes);
            let mut writer = table.writer().await?;
            let changes = Changes {
                batch,
                deletes: Some(deletes),
                operation: Operation::Upsert,
            };
            writer.commit(changes, BTreeMap::new()).await?;
            writer.close().await?;
        }
        "compact" => {
            let writer = table.writer().await?;
            let scheduled = compact::schedule(&writer, &Strategy::All).await?;
            writer.close().await?;
            let services = TableServices::open(table.clone()).await?;
            if let Some(scheduled) = scheduled {
                compact::execute(&services, &scheduled.instant).await?;
            }
            services.close().await?;
        }
        "clean" => {
            let services = TableServices::open(table.clone()).await?;
            clean::clean(&services, Policy::KeepLatestFileVersions(1)).await?;
            services.close().await?;
        }
        "restore" => {
            let savepoint = args.get(2).context("a savepoint instant")?.parse()?;
            let mut writer = table.writer().await?;
            let services = TableServices::open(table.clone()).await?;
            writer.restore(&savepoint).await?;
            services.close().await?;
            writer.close().await?;
        }
        other => anyhow::bail!("unknown operation {other}"),
    }
    Ok(())
}
