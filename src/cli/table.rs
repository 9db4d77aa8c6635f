//! `inlet table …`

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use inlet_table::properties::{DELTA_MIRROR, LOG_BLOCK_FORMAT};
use inlet_table::{Table, TableProperties, TableType};

use super::StorageArgs;

/// Buckets per partition when `--buckets` is not given: enough file groups to rewrite in parallel
/// on a small machine, few enough that a small table is not scattered over many tiny files.
pub const DEFAULT_BUCKETS: u32 = 4;

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create a table (writes .hoodie/hoodie.properties).
    Create(CreateArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TypeArg {
    /// Copy-on-write: every commit rewrites the touched file groups.
    Cow,
    /// Merge-on-read: commits append log files to file groups; reads merge them.
    Mor,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Table location: a directory, file:///dir, s3://bucket/prefix or memory://name.
    uri: String,
    /// Table name (letters, digits, underscores).
    #[arg(long)]
    name: String,
    /// Table type.
    #[arg(long = "type", value_enum, default_value = "cow")]
    table_type: TypeArg,
    /// Record key column(s), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    record_key: Vec<String>,
    /// Ordering (precombine) column: of two versions of a record, the greater value wins.
    /// Without it the latest commit wins.
    #[arg(long)]
    ordering_field: Option<String>,
    /// Partition column(s), comma-separated.
    #[arg(long, value_delimiter = ',')]
    partition_by: Vec<String>,
    /// Name partition directories column=value.
    #[arg(long)]
    hive_style: bool,
    /// File groups (buckets) per partition of the bucket index.
    #[arg(long, default_value_t = DEFAULT_BUCKETS)]
    buckets: u32,
    /// Data block format of merge-on-read log files (hoodie.logfile.data.block.format).
    #[arg(long, value_enum, default_value = "parquet")]
    log_block_format: BlockFormatArg,
    /// Keep a Delta Lake log (_delta_log) beside .hoodie: each commit, compaction, rollback and
    /// restore becomes a Delta version (merge-on-read tables: the read-optimized view).
    #[arg(long)]
    delta_mirror: bool,
    /// Change data capture (hoodie.table.cdc.enabled, DATA_BEFORE_AFTER): copy-on-write commits
    /// write .cdc files with each change's before and after image (inlet read --changes).
    #[arg(long)]
    cdc: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BlockFormatArg {
    /// Parquet data blocks: columnar, compressed (Hudi's choice for Spark writers).
    Parquet,
    /// Avro data blocks: row-oriented, what Flink and older Spark writers produce.
    Avro,
}

pub async fn run(command: TableCommand) -> anyhow::Result<()> {
    match command {
        TableCommand::Create(args) => create(args).await,
    }
}

pub fn properties(
    table_type: TableType,
    name: &str,
    record_key: Vec<String>,
    ordering_field: Option<String>,
    partition_by: Vec<String>,
    hive_style: bool,
    buckets: u32,
) -> TableProperties {
    let mut props = TableProperties::new(name, table_type, record_key);
    props.ordering_field = ordering_field;
    props.partition_fields = partition_by;
    props.hive_style_partitioning = hive_style;
    props.buckets = Some(buckets);
    props
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let (table_type, kind) = match args.table_type {
        TypeArg::Cow => (TableType::CopyOnWrite, "copy-on-write"),
        TypeArg::Mor => (TableType::MergeOnRead, "merge-on-read"),
    };
    let props = properties(
        table_type,
        &args.name,
        args.record_key,
        args.ordering_field,
        args.partition_by,
        args.hive_style,
        args.buckets,
    );
    let mut props = props;
    if let BlockFormatArg::Avro = args.log_block_format {
        props
            .other
            .insert(LOG_BLOCK_FORMAT.to_string(), "avro".to_string());
    }
    if args.delta_mirror {
        props
            .other
            .insert(DELTA_MIRROR.to_string(), "true".to_string());
    }
    if args.cdc {
        props.enable_cdc();
    }
    Table::create(&args.uri, args.storage.table_config(), props)
        .await
        .with_context(|| format!("creating table at {}", args.uri))?;
    println!("Created {kind} table {} at {}", args.name, args.uri);
    Ok(())
}
