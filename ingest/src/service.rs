//! Wiring a configuration into a running pipeline: the PostgreSQL source, a lake table per
//! source table (created on first use at `<base>/<schema>/<table>` unless configured
//! otherwise), and the [`Pipeline`] between them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use inlet_config::{Config, SnapshotMode, SourceKind, TableKind};
use inlet_table::{Table, TableConfig, TableProperties, TableType};

use crate::CDC_POSITION;
use crate::change::{TableId, TableInfo};
use crate::error::{Error, Result};
use crate::pipeline::{Pipeline, PipelineOptions, RunSummary, Target};
use crate::postgres::{ConfiguredKey, ConnectOptions, PostgresOptions, PostgresSource};

/// Runs the configured pipeline until `shutdown` is set (or, with `stop_at`, until every change
/// up to that source position is durable).
pub async fn run(
    config: &Config,
    shutdown: Arc<AtomicBool>,
    stop_at: Option<u64>,
) -> Result<RunSummary> {
    let (source, infos) = postgres_source(config).await?;
    let skipped = source.skipped().to_vec();
    let tables = lake_tables(config, &infos).await?;
    let options = PipelineOptions {
        max_rows: config.batch.max_rows,
        max_bytes: config.batch.max_bytes,
        max_delay: config.batch.max_delay,
        stop_at,
    };
    let mut summary = Pipeline::open(source, tables, options)
        .await?
        .run(shutdown)
        .await?;
    summary.skipped = skipped;
    Ok(summary)
}

/// The source of the configuration, with its tables discovered and prerequisites checked.
pub async fn postgres_source(config: &Config) -> Result<(PostgresSource, Vec<TableInfo>)> {
    let SourceKind::Postgres = config.source.kind;
    let password = config.source.resolved_password()?;
    let connect = ConnectOptions::parse(
        config.source.connection.expose(),
        password.as_ref().map(|p| p.expose()),
        config.source.ssl_root_cert.as_deref(),
    )?;
    let mut source = PostgresSource::new(PostgresOptions {
        connect,
        slot: config.source.slot.clone(),
        publication: config.source.publication.clone(),
        snapshot: config.source.snapshot == SnapshotMode::Initial,
        snapshot_parallelism: config.source.snapshot_parallelism,
        keys: config
            .tables
            .iter()
            .filter_map(|(name, t)| {
                let columns = t.key.clone()?;
                Some((
                    name.clone(),
                    ConfiguredKey {
                        columns,
                        assume_unique: t.assume_unique_key,
                    },
                ))
            })
            .collect(),
    });
    let infos = source.discover(|name| config.source.selects(name)).await?;
    Ok((source, infos))
}

/// Opens (or creates) the lake table of every source table.
pub async fn lake_tables(
    config: &Config,
    infos: &[TableInfo],
) -> Result<BTreeMap<TableId, Target>> {
    let table_config = TableConfig {
        storage_options: config
            .sink
            .storage_options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Default::default()
    };
    let mut tables = BTreeMap::new();
    for info in infos {
        let table = open_or_create(config, &table_config, &info.id, &info.key_columns).await?;
        tables.insert(
            info.id.clone(),
            Target {
                table,
                key: info.key_columns.clone(),
                schema: info.schema.clone(),
            },
        );
    }
    Ok(tables)
}

async fn open_or_create(
    config: &Config,
    table_config: &TableConfig,
    id: &TableId,
    key: &[String],
) -> Result<Table> {
    let uri = config.table_uri(&id.schema, &id.name);
    let lake = |source| Error::Lake {
        table: uri.clone(),
        source,
    };
    match Table::open(&uri, table_config.clone()).await {
        Ok(table) => {
            let physical_key: Vec<String> = key
                .iter()
                .map(|k| inlet_table::schema::physical_name(k).into_owned())
                .collect();
            if table.properties().record_key_fields != physical_key {
                return Err(Error::Config {
                    field: format!("tables.\"{id}\""),
                    reason: format!(
                        "lake table {uri} has record key {:?} but the source table's key is \
                         {key:?}: recreate the lake table or set tables.\"{id}\".uri elsewhere",
                        table.properties().record_key_fields
                    ),
                });
            }
            Ok(table)
        }
        Err(inlet_table::Error::TableNotFound(_)) => {
            let options = config.table(&id.schema, &id.name);
            let table_type = match options.table_type.unwrap_or(config.sink.table_type) {
                TableKind::Cow => TableType::CopyOnWrite,
                TableKind::Mor => TableType::MergeOnRead,
            };
            let name: String = format!("{}_{}", id.schema, id.name)
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let mut props = TableProperties::new(&name, table_type, key.to_vec());
            props.ordering_field = Some(CDC_POSITION.to_string());
            props.partition_fields = options.partition_by.clone();
            props.hive_style_partitioning = !options.partition_by.is_empty();
            props.buckets = Some(options.buckets.unwrap_or(config.sink.buckets));
            let table = Table::create(&uri, table_config.clone(), props)
                .await
                .map_err(lake)?;
            tracing::info!(table = %id, uri, "Created lake table.");
            Ok(table)
        }
        Err(e) => Err(lake(e)),
    }
}
