//! Wiring a pipeline's configuration into a running [`Pipeline`]: its source (PostgreSQL or the
//! generator), a lake table per source table (created on first use at `<base>/<schema>/<table>`
//! unless configured otherwise, with the metrics hook), and the pipeline between them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use inlet_config::{
    Config, PipelineConfig, PostgresConfig, RecoveryKind, SnapshotMode, SourceConfig, TableKind,
};
use inlet_table::properties::{CDC_ENABLED, CDC_MODE, DELTA_MIRROR};
use inlet_table::storage::Storage;
use inlet_table::{Table, TableConfig, TableProperties, TableType};

use crate::CDC_POSITION;
use crate::change::{Checkpoint, Event, Inside, Source, TableId, TableInfo};
use crate::datagen::DatagenSource;
use crate::error::{Error, Result};
use crate::metrics::TableMetrics;
use crate::mysql::{MysqlConnect, MysqlOptions, MysqlSource};
use crate::pipeline::flow::Flow;
use crate::pipeline::record::AckRecord;
use crate::pipeline::{Pipeline, PipelineOptions, RunSummary, TableServiceHooks, Target};
use crate::postgres::{ConfiguredKey, ConnectOptions, PostgresOptions, PostgresSource, SlotSafety};
use crate::status::PipelineStatus;

/// Runs the pipeline of a single-pipeline configuration until `shutdown` is set (or, with
/// `stop_at`, until every change up to that position is durable).
pub async fn run(
    config: &Config,
    shutdown: Arc<AtomicBool>,
    stop_at: Option<u64>,
) -> Result<RunSummary> {
    let (name, pipeline) = config
        .pipelines
        .iter()
        .next()
        .ok_or_else(|| Error::Config {
            field: "pipelines".to_string(),
            reason: "no pipeline configured".to_string(),
        })?;
    let prepared = prepare(name, pipeline, TableConfig::default(), Arc::default()).await?;
    prepared.run(shutdown, stop_at, None).await
}

/// A pipeline ready to run: its source connected with prerequisites checked and tables
/// discovered, and every lake table opened (or created).
#[derive(Debug)]
pub struct Prepared {
    name: String,
    config: PipelineConfig,
    source: AnySource,
    targets: BTreeMap<TableId, Target>,
    skipped: Vec<(TableId, String)>,
    status: Arc<PipelineStatus>,
    dead_letter: Option<Table>,
    ack_record: Option<(AckRecord, u64)>,
}

/// Prepares pipeline `name`: `table_config` is the base configuration of its lake tables (the
/// metrics hook is added to its hooks); `status` receives what the pipeline reports.
pub async fn prepare(
    name: &str,
    config: &PipelineConfig,
    table_config: TableConfig,
    status: Arc<PipelineStatus>,
) -> Result<Prepared> {
    let mut ack_record = None;
    let (source, infos, skipped) = match &config.source {
        SourceConfig::Postgres(pg) => {
            let record = AckRecord::new(
                Storage::create(&config.sink.base_uri, &storage_options(config)).map_err(|e| {
                    Error::Lake {
                        table: config.sink.base_uri.clone(),
                        source: e,
                    }
                })?,
                format!("_inlet/postgres/{}.json", pg.slot),
            );
            let recorded = record.read().await?;
            let (source, infos) = postgres_source(name, config, pg, recorded).await?;
            ack_record = Some((record, recorded.unwrap_or(0)));
            let skipped = source.skipped().to_vec();
            (AnySource::Postgres(Box::new(source)), infos, skipped)
        }
        SourceConfig::Mysql(my) => {
            let password = my.resolved_password()?;
            let mut source = MysqlSource::new(MysqlOptions {
                connect: MysqlConnect::parse(
                    my.connection.expose(),
                    password.as_ref().map(|p| p.expose()),
                )?,
                server_id: my.server_id_for(name),
                snapshot: my.snapshot == SnapshotMode::Initial,
                on_gap: my.on_gap,
                snapshot_parallelism: my.snapshot_parallelism,
                chunk_rows: my.chunk_size,
                locking: my.snapshot_locking,
                keys: config
                    .tables
                    .iter()
                    .filter_map(|(name, t)| Some((name.clone(), t.key.clone()?)))
                    .collect(),
            });
            let infos = source.discover(|t| config.source.selects(t)).await?;
            let skipped = source.skipped().to_vec();
            (AnySource::Mysql(Box::new(source)), infos, skipped)
        }
        SourceConfig::Datagen(generator) => {
            let mut source = DatagenSource::new(generator.clone())?;
            let infos = source.tables().await?;
            (AnySource::Datagen(source), infos, Vec::new())
        }
    };
    let targets = lake_tables(config, &infos, &table_config, &status).await?;
    let dead_letter = match config.recovery.kind {
        RecoveryKind::Stop => None,
        RecoveryKind::DeadLetter => Some(dead_letter_table(config, &table_config, &status).await?),
    };
    Ok(Prepared {
        dead_letter,
        ack_record,
        name: name.to_string(),
        config: config.clone(),
        source,
        targets,
        skipped,
        status,
    })
}

impl Prepared {
    /// The captured source tables and their lake tables.
    pub fn targets(&self) -> &BTreeMap<TableId, Target> {
        &self.targets
    }

    /// Selected source tables that are not captured, with the reason.
    pub fn skipped(&self) -> &[(TableId, String)] {
        &self.skipped
    }

    /// The dead-letter table, with dead-letter recovery.
    pub fn dead_letter(&self) -> Option<&Table> {
        self.dead_letter.as_ref()
    }

    /// Runs until `shutdown` is set, `stop_at` is durable, or an error.
    pub async fn run(
        self,
        shutdown: Arc<AtomicBool>,
        stop_at: Option<u64>,
        services: Option<Arc<dyn TableServiceHooks>>,
    ) -> Result<RunSummary> {
        let batch = &self.config.batch;
        let options = PipelineOptions {
            max_rows: batch.max_rows,
            max_bytes: batch.max_bytes,
            max_delay: batch.max_delay,
            stop_at,
            name: self.name,
            status: self.status,
            services,
            recovery: self.config.recovery.kind,
            max_value_bytes: self.config.recovery.max_value_bytes,
            dead_letter: self.dead_letter,
            ack_record: self.ack_record,
        };
        let mut summary = Pipeline::open(self.source, self.targets, options)
            .await?
            .run(shutdown)
            .await?;
        summary.skipped = self.skipped;
        Ok(summary)
    }
}

/// The source of the configuration, with its tables discovered and prerequisites checked.
pub async fn postgres_source(
    name: &str,
    config: &PipelineConfig,
    pg: &PostgresConfig,
    acknowledged: Option<u64>,
) -> Result<(PostgresSource, Vec<TableInfo>)> {
    let password = pg.resolved_password()?;
    let connect = ConnectOptions::parse(
        pg.connection.expose(),
        password.as_ref().map(|p| p.expose()),
        pg.ssl_root_cert.as_deref(),
    )?;
    let mut source = PostgresSource::new(PostgresOptions {
        connect,
        slot: pg.slot.clone(),
        publication: pg.publication.clone(),
        snapshot: pg.snapshot == SnapshotMode::Initial,
        snapshot_parallelism: pg.snapshot_parallelism,
        batch_bytes: config.batch.max_bytes,
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
        slot_safety: SlotSafety {
            pipeline: name.to_string(),
            max_lag_bytes: pg.max_slot_lag_bytes,
            stop_at_lag: pg.stop_at_slot_lag,
            heartbeat_interval: pg.heartbeat_interval,
            on_gap: pg.on_gap,
        },
        acknowledged,
    });
    let infos = source.discover(|name| pg.selects(name)).await?;
    Ok((source, infos))
}

/// The sources a configuration can name, as one [`Source`].
#[derive(Debug)]
pub enum AnySource {
    Postgres(Box<PostgresSource>),
    Mysql(Box<MysqlSource>),
    Datagen(DatagenSource),
}

impl Source for AnySource {
    fn kind(&self) -> &'static str {
        match self {
            AnySource::Postgres(s) => s.kind(),
            AnySource::Mysql(s) => s.kind(),
            AnySource::Datagen(s) => s.kind(),
        }
    }

    fn origin(&self) -> Option<String> {
        match self {
            AnySource::Mysql(s) => s.origin(),
            AnySource::Postgres(s) => s.origin(),
            AnySource::Datagen(s) => s.origin(),
        }
    }

    fn display(&self, position: u64) -> String {
        match self {
            AnySource::Postgres(s) => s.display(position),
            AnySource::Mysql(s) => s.display(position),
            AnySource::Datagen(s) => s.display(position),
        }
    }

    fn gtid(&self, position: u64) -> Option<String> {
        match self {
            AnySource::Postgres(s) => s.gtid(position),
            AnySource::Mysql(s) => s.gtid(position),
            AnySource::Datagen(s) => s.gtid(position),
        }
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>> {
        match self {
            AnySource::Postgres(s) => s.tables().await,
            AnySource::Mysql(s) => s.tables().await,
            AnySource::Datagen(s) => s.tables().await,
        }
    }

    async fn start(&mut self, checkpoints: BTreeMap<TableId, Checkpoint>) -> Result<()> {
        match self {
            AnySource::Postgres(s) => s.start(checkpoints).await,
            AnySource::Mysql(s) => s.start(checkpoints).await,
            AnySource::Datagen(s) => s.start(checkpoints).await,
        }
    }

    async fn next(&mut self, wait: Duration) -> Result<Event> {
        match self {
            AnySource::Postgres(s) => s.next(wait).await,
            AnySource::Mysql(s) => s.next(wait).await,
            AnySource::Datagen(s) => s.next(wait).await,
        }
    }

    fn acknowledge(&mut self, position: u64) {
        match self {
            AnySource::Postgres(s) => s.acknowledge(position),
            AnySource::Mysql(s) => s.acknowledge(position),
            AnySource::Datagen(s) => s.acknowledge(position),
        }
    }

    fn durable_inside(&mut self, table: &TableId, inside: Inside) {
        match self {
            AnySource::Postgres(s) => s.durable_inside(table, inside),
            AnySource::Mysql(s) => s.durable_inside(table, inside),
            AnySource::Datagen(s) => s.durable_inside(table, inside),
        }
    }

    async fn close(&mut self) -> Result<()> {
        match self {
            AnySource::Postgres(s) => s.close().await,
            AnySource::Mysql(s) => s.close().await,
            AnySource::Datagen(s) => s.close().await,
        }
    }
}

/// The sink's object-store options.
fn storage_options(config: &PipelineConfig) -> Vec<(String, String)> {
    config
        .sink
        .storage_options
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The name the dead-letter table goes by in metrics, status and the API.
pub const DEAD_LETTER_TABLE: &str = "_inlet.dead_letter";

/// Opens (or creates) the dead-letter table `<base_uri>/_dead_letter`: merge-on-read (a batch
/// of dead letters appends a log file instead of rewriting the table; the service compacts and
/// cleans it like the others), keyed by `id`, the latest write of a record winning.
async fn dead_letter_table(
    config: &PipelineConfig,
    base: &TableConfig,
    status: &Arc<PipelineStatus>,
) -> Result<Table> {
    let uri = format!(
        "{}/{}",
        config.sink.base_uri.trim_end_matches('/'),
        crate::pipeline::dead_letter::DIRECTORY
    );
    let mut table_config = TableConfig {
        storage_options: storage_options(config),
        ..base.clone()
    };
    table_config.hooks.push(Arc::new(TableMetrics {
        table: DEAD_LETTER_TABLE.to_string(),
        status: status.clone(),
    }));
    let lake = |source| Error::Lake {
        table: uri.clone(),
        source,
    };
    let table = match Table::open(&uri, table_config.clone()).await {
        Ok(table) => table,
        Err(inlet_table::Error::TableNotFound(_)) => {
            let mut props =
                TableProperties::new("dead_letter", TableType::MergeOnRead, vec!["id".into()]);
            props.buckets = Some(2);
            let table = Table::create(&uri, table_config, props)
                .await
                .map_err(lake)?;
            tracing::info!(uri, "Created the dead-letter table.");
            table
        }
        Err(e) => return Err(lake(e)),
    };
    status.update(|s| {
        let entry = s.tables.entry(DEAD_LETTER_TABLE.to_string()).or_default();
        entry.uri = table.storage().uri().to_string();
        entry.table_type = table.properties().table_type.as_str().to_string();
    });
    Ok(table)
}

/// Opens (or creates) the lake table of every source table.
pub async fn lake_tables(
    config: &PipelineConfig,
    infos: &[TableInfo],
    base: &TableConfig,
    status: &Arc<PipelineStatus>,
) -> Result<BTreeMap<TableId, Target>> {
    let mut tables = BTreeMap::new();
    for info in infos {
        let mut table_config = TableConfig {
            storage_options: storage_options(config),
            ..base.clone()
        };
        table_config.hooks.push(Arc::new(TableMetrics {
            table: info.id.to_string(),
            status: status.clone(),
        }));
        let flow = Flow::of(
            &config.table(&info.id.schema, &info.id.name),
            &info.key_columns,
        );
        let (schema, key) = flow.table(&info.id, &info.schema, &info.key_columns)?;
        let table = open_or_create(config, &table_config, &info.id, &key).await?;
        status.update(|s| {
            let entry = s.tables.entry(info.id.to_string()).or_default();
            entry.uri = table.storage().uri().to_string();
            entry.table_type = table.properties().table_type.as_str().to_string();
        });
        tables.insert(
            info.id.clone(),
            Target {
                table,
                key,
                schema,
                flow,
            },
        );
    }
    Ok(tables)
}

async fn open_or_create(
    config: &PipelineConfig,
    table_config: &TableConfig,
    id: &TableId,
    key: &[String],
) -> Result<Table> {
    let uri = config.table_uri(&id.schema, &id.name);
    let lake = |source| Error::Lake {
        table: uri.clone(),
        source,
    };
    let mut table = open_or_create_table(config, table_config, id, key, &uri).await?;
    // `delta_mirror = true` turns the mirror on in the table itself, so that every inlet
    // process writing it (the service, `inlet compact`, …) keeps the mirror current. Turning
    // it off is `inlet mirror --disable`: leaving it out of the configuration changes nothing.
    if config.table(&id.schema, &id.name).delta_mirror
        && table
            .properties()
            .other
            .get(DELTA_MIRROR)
            .map(String::as_str)
            != Some("true")
    {
        table
            .set_property(DELTA_MIRROR, Some("true"))
            .await
            .map_err(lake)?;
        tracing::info!(table = %id, uri, "Delta mirror turned on.");
    }
    // `cdc = true` likewise: from the next commit on, copy-on-write commits write `.cdc` files.
    if config.table(&id.schema, &id.name).cdc && !table.properties().cdc().map_err(lake)? {
        table
            .set_property(CDC_ENABLED, Some("true"))
            .await
            .map_err(lake)?;
        table
            .set_property(CDC_MODE, Some("DATA_BEFORE_AFTER"))
            .await
            .map_err(lake)?;
        tracing::info!(table = %id, uri, "Change data capture (.cdc files) turned on.");
    }
    Ok(table)
}

async fn open_or_create_table(
    config: &PipelineConfig,
    table_config: &TableConfig,
    id: &TableId,
    key: &[String],
    uri: &str,
) -> Result<Table> {
    let lake = |source| Error::Lake {
        table: uri.to_string(),
        source,
    };
    match Table::open(uri, table_config.clone()).await {
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
            let table = Table::create(uri, table_config.clone(), props)
                .await
                .map_err(lake)?;
            tracing::info!(table = %id, uri, "Created lake table.");
            Ok(table)
        }
        Err(e) => Err(lake(e)),
    }
}
