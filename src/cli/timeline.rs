//! `inlet timeline`

use clap::Args;
use inlet_table::Table;
use serde_json::json;

use super::StorageArgs;

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Table location.
    uri: String,
    /// Print one JSON object per instant instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: TimelineArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    if args.json {
        for row in rows(&table).await? {
            println!("{row}");
        }
        return Ok(());
    }
    print(&table).await
}

/// One JSON object per instant, with commit totals and checkpoint for completed writes.
pub(crate) async fn rows(table: &Table) -> anyhow::Result<Vec<serde_json::Value>> {
    let timeline = table.timeline().await?;
    let mut rows = Vec::new();
    // Savepoints share the time of the commit they keep: listed right after it.
    let mut instants: Vec<&inlet_table::Instant> = timeline
        .instants()
        .iter()
        .chain(timeline.savepoints())
        .chain(timeline.pending_savepoints())
        .collect();
    instants.sort_by(|a, b| {
        let savepoint = |i: &inlet_table::Instant| i.action == inlet_table::Action::Savepoint;
        (&a.time, savepoint(a)).cmp(&(&b.time, savepoint(b)))
    });
    for instant in instants {
        let mut row = json!({
            "instant": instant.time.to_string(),
            "action": instant.action.to_string(),
            "state": instant.state.to_string(),
        });
        if instant.is_completed() && instant.action.writes_data() {
            let metadata = timeline.commit_metadata(table.storage(), instant).await?;
            let totals = metadata.totals();
            row["operation"] = json!(metadata.operation_type);
            row["inserts"] = json!(totals.inserts);
            row["updates"] = json!(totals.updates);
            row["deletes"] = json!(totals.deletes);
            row["files"] = json!(totals.files);
            row["bytes"] = json!(totals.bytes);
            if let Some(checkpoint) = metadata.checkpoint() {
                row["checkpoint"] =
                    serde_json::from_str(checkpoint).unwrap_or_else(|_| json!(checkpoint));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Prints the timeline as a text table.
pub async fn print(table: &Table) -> anyhow::Result<()> {
    println!(
        "{:<17}  {:<13}  {:<9}  {:>8}  {:>8}  {:>8}  {:>5}  {:>10}  checkpoint",
        "instant", "action", "state", "inserts", "updates", "deletes", "files", "bytes"
    );
    for row in rows(table).await? {
        let num = |key: &str| row.get(key).map_or_else(String::new, |v| v.to_string());
        println!(
            "{:<17}  {:<13}  {:<9}  {:>8}  {:>8}  {:>8}  {:>5}  {:>10}  {}",
            row["instant"].as_str().unwrap_or_default(),
            row["action"].as_str().unwrap_or_default(),
            row["state"].as_str().unwrap_or_default(),
            num("inserts"),
            num("updates"),
            num("deletes"),
            num("files"),
            num("bytes"),
            row.get("checkpoint")
                .map_or_else(String::new, |v| v.to_string()),
        );
    }
    Ok(())
}
