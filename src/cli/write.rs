//! `inlet write`

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::Context;
use arrow::array::AsArray;
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
    if changes.batch.num_rows() == 0 {
        println!("Nothing to commit: {} holds no change events", args.input);
        return Ok(());
    }
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    let lines = changes.lines.clone();
    let commit = commit_changes(&table, changes).await.map_err(|e| {
        // Rows are numbered in the commit; the person who wrote the file counts lines.
        match e.downcast_ref::<inlet_table::Error>() {
            Some(inlet_table::Error::Record { row, reason }) => match lines.get(*row) {
                Some(line) => anyhow::anyhow!("{}: line {line}: {reason}", args.input),
                None => e,
            },
            _ => e,
        }
    })?;
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
    let mut writer = table.writer().await?;
    // A table's checkpoint never goes backwards: a file of only replayed (stale) events keeps
    // the checkpoint the table has.
    let previous = inlet_ingest::pipeline::table_checkpoint(table).await?;
    let mut extra = BTreeMap::new();
    if let Some(position) = max_position(&changes) {
        let checkpoint = match previous {
            Some(p) if p.position >= position => {
                let kind = p.source.clone().unwrap_or_default();
                p.to_json(&kind, &p.position.to_string())
            }
            _ => serde_json::json!({ "position": position }).to_string(),
        };
        extra.insert(CHECKPOINT_KEY.to_string(), checkpoint);
    }
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
    // The lease is released either way; failing to release it changes nothing about the data,
    // and must not hide what happened to it.
    let closed = writer.close().await;
    match (&result, closed) {
        (Ok(commit), Err(e)) => eprintln!(
            "Warning: commit {} completed, but releasing the writer lease failed: {e} \
             (the lease expires by itself; the next writer waits for it)",
            commit.instant
        ),
        (Err(_), Err(e)) => eprintln!("Warning: releasing the writer lease failed too: {e}"),
        _ => {}
    }
    Ok(result?)
}

fn max_position(changes: &ChangeBatch) -> Option<u64> {
    let column = changes.batch.column_by_name(CDC_POSITION)?;
    let positions = column.as_primitive_opt::<Int64Type>()?;
    positions
        .iter()
        .flatten()
        .max()
        .and_then(|p| u64::try_from(p).ok())
}
