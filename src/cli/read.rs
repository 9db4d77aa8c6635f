//! `inlet read`

use std::io::Write;

use clap::Args;
use futures::StreamExt;
use inlet_query::{Format, ReadRequest};
use inlet_table::Table;

use super::StorageArgs;

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Table location.
    uri: String,
    /// Time travel: the table as of this instant (yyyyMMddHHmmssSSS).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    as_of: Option<String>,
    /// Incremental: records changed by commits after this instant…
    #[arg(long)]
    from: Option<String>,
    /// …up to and including this instant (default: the latest commit).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Columns to print, comma-separated (default: all data columns).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Include the _hoodie_* meta columns.
    #[arg(long)]
    meta: bool,
    /// Read base files only: for merge-on-read tables, skip the log files (faster, staler).
    #[arg(long)]
    read_optimized: bool,
    /// Change query: every change the commits after --from (up to --to) made, as op (i/u/d),
    /// instant, before and after; --columns narrows the images.
    #[arg(long, requires = "from")]
    changes: bool,
    /// Output format: jsonl, csv or table.
    #[arg(long, default_value = "jsonl")]
    format: Format,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: ReadArgs) -> anyhow::Result<()> {
    let table = Table::open(&args.uri, args.storage.table_config()).await?;
    let request = ReadRequest {
        as_of: args.as_of,
        from: args.from,
        to: args.to,
        columns: args.columns,
        meta: args.meta,
        read_optimized: args.read_optimized,
        changes: args.changes,
        file_groups: None,
        keys: None,
    };
    // Rows are printed as file slices are read: memory stays bounded by a few file groups.
    let snapshot = table.snapshot().await?;
    let (schema, mut batches) = inlet_query::read_stream(&snapshot, &request).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut writer = inlet_query::BatchWriter::new(&mut out, args.format, &schema)?;
    while let Some(batch) = batches.next().await {
        writer.write(&batch?)?;
    }
    writer.finish()?;
    out.flush()?;
    Ok(())
}
