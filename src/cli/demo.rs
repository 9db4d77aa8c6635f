//! `inlet demo`: creates a table from built-in Debezium events (a PostgreSQL `customers` table:
//! an initial snapshot, then updates, a delete and an insert) and shows every kind of read.

use std::path::PathBuf;

use clap::Args;
use inlet_query::{Format, ReadRequest};
use inlet_table::{Table, TableConfig};

use super::{table, write};

const FIRST: &str = include_str!("demo/events-1.jsonl");
const SECOND: &str = include_str!("demo/events-2.jsonl");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory to create the demo table in (must not exist yet).
    #[arg(default_value = "inlet-demo")]
    dir: PathBuf,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.dir.exists() {
        anyhow::bail!(
            "{} already exists; remove it or name another directory",
            args.dir.display()
        );
    }
    let uri = std::path::absolute(&args.dir)?.display().to_string();
    let props = table::properties(
        inlet_table::TableType::CopyOnWrite,
        "customers",
        vec!["id".into()],
        Some(inlet_ingest::CDC_POSITION.into()),
        vec!["country".into()],
        true,
        2,
    );
    let table = Table::create(&uri, TableConfig::default(), props).await?;
    println!(
        "Created table customers at {uri} (record key id, partitioned by country, ordered by _cdc_position)\n"
    );

    let first = write::commit_changes(&table, inlet_ingest::decode(FIRST.as_bytes())?).await?;
    println!("Commit {}: initial snapshot of 5 customers", first.instant);
    let second = write::commit_changes(&table, inlet_ingest::decode(SECOND.as_bytes())?).await?;
    println!(
        "Commit {}: 2 updates of customer 2, customer 3 deleted, customer 6 added\n",
        second.instant
    );

    let columns = Some(vec![
        "id".into(),
        "name".into(),
        "country".into(),
        "balance".into(),
        "_cdc_op".into(),
    ]);
    let show = |title: String, request: ReadRequest| {
        let table = table.clone();
        async move {
            println!("{title}");
            let (schema, batches) = inlet_query::read(&table, &request).await?;
            inlet_query::write_batches(&mut std::io::stdout(), Format::Table, &schema, &batches)?;
            println!();
            anyhow::Ok(())
        }
    };
    show(
        "Snapshot (inlet read DIR):".into(),
        ReadRequest {
            columns: columns.clone(),
            ..Default::default()
        },
    )
    .await?;
    show(
        format!("Time travel (inlet read DIR --as-of {}):", first.instant),
        ReadRequest {
            as_of: Some(first.instant.to_string()),
            columns: columns.clone(),
            ..Default::default()
        },
    )
    .await?;
    show(
        format!("Incremental (inlet read DIR --from {}):", first.instant),
        ReadRequest {
            from: Some(first.instant.to_string()),
            columns,
            ..Default::default()
        },
    )
    .await?;
    println!("Timeline (inlet timeline DIR):");
    super::timeline::print(&table).await?;
    println!(
        "\nRead it with any Hudi reader, e.g. Python: hudi.HudiTableBuilder.from_base_uri({uri:?}).build().read()"
    );
    Ok(())
}
