//! `inlet write`

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::Context;
use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use clap::Args;
use inlet_ingest::{CDC_POSITION, ChangeBatch};
use inlet_table::Table;
use inlet_table::commit::metadata::CHECKPOINT_KEY;
use inlet_table::write::{Changes, Operation};

use super::StorageArgs;

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Table location.
    uri: String,
    /// File of Debezium change events, one JSON object per line (with or without the
    /// {"schema":…,"payload":…} envelope); `-` reads standard input.
    input: String,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: WriteArgs) -> anyhow::Result<()> {
    let input: Box<dyn BufRead> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input))?;
        Box::new(std::io::BufReader::new(file))
    };
    let changes = inlet_ingest::decode(input)
        .with_context(|| format!("reading change events from {}", args.input))?;
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    let commit = commit_changes(&table, changes).await?;
    let totals = commit.metadata.totals();
    println!(
        "Committed {} ({} inserts, {} updates, {} deletes in {} files)",
        commit.instant, totals.inserts, totals.updates, totals.deletes, totals.files
    );
    Ok(())
}

/// Writes decoded change events in one commit, recording the greatest source position written as
/// the commit's checkpoint.
pub async fn commit_changes(
    table: &Table,
    changes: ChangeBatch,
) -> anyhow::Result<inlet_table::write::Commit> {
    let mut extra = BTreeMap::new();
    if let Some(position) = max_position(&changes) {
        extra.insert(
            CHECKPOINT_KEY.to_string(),
            serde_json::json!({ "position": position }).to_string(),
        );
    }
    let mut writer = table.writer().await?;
    for rolled_back in writer.rolled_back() {
        eprintln!(
            "Rolled back unfinished write {} ({} files removed)",
            rolled_back.rolled_back.time,
            rolled_back.deleted_files.len()
        );
    }
    let result = writer
        .commit(
            Changes {
                batch: changes.batch,
                deletes: Some(changes.deletes),
                operation: Operation::Upsert,
            },
            extra,
        )
        .await;
    writer.close().await?;
    Ok(result?)
}

fn max_position(changes: &ChangeBatch) -> Option<i64> {
    let column = changes.batch.column_by_name(CDC_POSITION)?;
    let positions = column.as_primitive_opt::<Int64Type>()?;
    positions
        .iter()
        .flatten()
        .max()
        .filter(|_| positions.null_count() < positions.len())
}
