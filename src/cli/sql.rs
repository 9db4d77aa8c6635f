//! `inlet sql`

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use inlet_query::Format;
use inlet_query::sql::Lake;
use inlet_table::Table;

use super::{StorageArgs, parse_key_value};

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, in DataFusion's SQL. Tables are named schema.table; table_as_of('schema.table',
    /// 'INSTANT') and table_changes('schema.table', 'FROM'[, 'TO']) read other states of one.
    query: String,
    /// A table by name and location (NAME is schema.table, or a bare name in schema public);
    /// repeatable.
    #[arg(long = "table", value_name = "NAME=URI", value_parser = parse_key_value)]
    tables: Vec<(String, String)>,
    /// Every table under this base URI, as inlet run lays them out (<base>/<schema>/<table>);
    /// repeatable.
    #[arg(long, value_name = "BASE_URI")]
    lake: Vec<String>,
    /// The tables of a service configuration: those under each pipeline's base_uri.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Include the _hoodie_* meta columns.
    #[arg(long)]
    meta: bool,
    /// Read base files only: merge-on-read tables as of each file group's latest compaction
    /// (Hudi's `_ro` view; faster, staler).
    #[arg(long)]
    read_optimized: bool,
    /// Output format: table, jsonl, csv or parquet (parquet needs --output).
    #[arg(long, default_value = "table")]
    format: String,
    /// Write the result to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let config = args.storage.table_config();
    let mut tables = Vec::new();
    for (name, uri) in &args.tables {
        let table = Table::open(uri, config.clone())
            .await
            .with_context(|| format!("opening table {name} at {uri}"))?;
        tables.push((name.clone(), table));
    }
    let mut bases: Vec<(String, inlet_table::TableConfig)> = args
        .lake
        .iter()
        .map(|base| (base.clone(), config.clone()))
        .collect();
    if let Some(path) = &args.config {
        let service = inlet_config::Config::load(path)?;
        for pipeline in service.pipelines.values() {
            let mut config = config.clone();
            config.storage_options.extend(
                pipeline
                    .sink
                    .storage_options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            bases.push((pipeline.sink.base_uri.clone(), config));
        }
    }
    for (base, config) in &bases {
        let found = inlet_query::sql::discover(base, config)
            .await
            .with_context(|| format!("listing the tables under {base}"))?;
        anyhow::ensure!(!found.is_empty(), "no lake tables under {base}");
        tables.extend(found);
    }
    anyhow::ensure!(
        !tables.is_empty(),
        "no tables: give --table NAME=URI, --lake BASE_URI or --config FILE"
    );
    let lake = Lake::with_options(tables, args.meta, args.read_optimized).await?;
    let mut stream = lake.sql(&args.query).await?;
    let schema = stream.schema();
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    if args.format == "parquet" {
        anyhow::ensure!(
            args.output.is_some(),
            "--format parquet writes a file: give --output FILE"
        );
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None)?;
        while let Some(batch) = stream.next().await {
            writer.write(&batch?)?;
        }
        writer.close()?;
    } else {
        let format: Format = args
            .format
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--format: {e} (or parquet, with --output)"))?;
        let mut writer = inlet_query::BatchWriter::new(&mut out, format, &schema)?;
        while let Some(batch) = stream.next().await {
            writer.write(&batch?)?;
        }
        writer.finish()?;
    }
    out.flush()?;
    Ok(())
}
