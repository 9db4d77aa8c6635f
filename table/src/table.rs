//! A table handle: its storage, its properties and how instant times are made. Creating a table
//! writes `hoodie.properties` with put-if-absent, so two concurrent creates cannot both succeed.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;

use crate::commit::Hooks;
use crate::commit::lease::DEFAULT_LEASE_TTL;
use crate::error::{Error, Result};
use crate::properties::{PROPERTIES_FILE, TableProperties};
use crate::read::{self, Query, ReadResult};
use crate::requests::RequestCounts;
use crate::schema;
use crate::snapshot::Snapshot;
use crate::storage::{Created, Storage};
use crate::timeline::{Clock, InstantGenerator, SystemClock, Timeline};
use crate::write::Writer;

/// How a table is opened.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Object-store options (`aws_endpoint`, `aws_region`, …).
    pub storage_options: Vec<(String, String)>,
    pub clock: Arc<dyn Clock>,
    /// Lifetime of an object-store writer lease between heartbeats.
    pub lease_ttl: Duration,
    /// File groups rewritten at once; bounds write memory to this many file groups.
    pub write_parallelism: usize,
    /// Bytes a writer may keep of the key filters (bloom filters, log keys) it reads to find
    /// which partition a key is stored in.
    pub index_cache_bytes: usize,
    /// Run after every completed action (metrics, mirrors, catalog sync).
    pub hooks: Hooks,
    /// Counts every object-store request the table makes (benchmarks), when set.
    pub request_counts: Option<Arc<RequestCounts>>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            storage_options: Vec::new(),
            clock: Arc::new(SystemClock),
            lease_ttl: DEFAULT_LEASE_TTL,
            write_parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            index_cache_bytes: crate::index::global::DEFAULT_CACHE_BYTES,
            hooks: Hooks::new(),
            request_counts: None,
        }
    }
}

/// An open Hudi table.
#[derive(Debug, Clone)]
pub struct Table {
    storage: Storage,
    properties: TableProperties,
    generator: Arc<InstantGenerator>,
    config: TableConfig,
}

impl Table {
    /// Creates a table. Fails if a table already exists at `uri`.
    pub async fn create(
        uri: &str,
        config: TableConfig,
        mut properties: TableProperties,
    ) -> Result<Table> {
        validate_new(&properties)?;
        // Key, partition and ordering columns by the names they have in files.
        let physical = |names: &mut Vec<String>| {
            for name in names.iter_mut() {
                *name = schema::physical_name(name).into_owned();
            }
        };
        physical(&mut properties.record_key_fields);
        physical(&mut properties.partition_fields);
        if let Some(field) = properties.ordering_field.as_mut() {
            *field = schema::physical_name(field).into_owned();
        }
        let storage = counted(Storage::create(uri, &config.storage_options)?, &config);
        let file = Bytes::from(properties.to_file());
        if storage.put_if_absent(PROPERTIES_FILE, file).await? == Created::AlreadyExists {
            return Err(Error::TableExists(uri.to_string()));
        }
        Ok(Table::new(storage, properties, config))
    }

    /// Opens an existing table.
    pub async fn open(uri: &str, config: TableConfig) -> Result<Table> {
        let storage = counted(Storage::open(uri, &config.storage_options)?, &config);
        let bytes = storage
            .get_opt(PROPERTIES_FILE)
            .await?
            .ok_or_else(|| Error::TableNotFound(uri.to_string()))?;
        let text =
            std::str::from_utf8(&bytes).map_err(|e| Error::InvalidProperties(e.to_string()))?;
        let properties = TableProperties::parse(text)?;
        properties.check_supported()?;
        Ok(Table::new(storage, properties, config))
    }

    fn new(storage: Storage, properties: TableProperties, config: TableConfig) -> Table {
        let generator = Arc::new(InstantGenerator::new(config.clock.clone()));
        Table {
            storage,
            properties,
            generator,
            config,
        }
    }

    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// Sets (or with `None` removes) one of the keys of `hoodie.properties` that inlet does not
    /// model, rewriting the file in one put. Processes that opened the table before see the
    /// change when they open it again.
    pub async fn set_property(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let mut properties = self.properties.clone();
        match value {
            Some(value) => properties.other.insert(key.to_string(), value.to_string()),
            None => properties.other.remove(key),
        };
        self.storage
            .put(PROPERTIES_FILE, Bytes::from(properties.to_file()))
            .await?;
        self.properties = properties;
        Ok(())
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Makes instant times for this table (monotonic, above every instant on the timeline).
    pub fn generator(&self) -> &InstantGenerator {
        &self.generator
    }

    pub async fn timeline(&self) -> Result<Timeline> {
        Timeline::load(&self.storage).await
    }

    /// The current data schema (no meta columns), with the names its columns were written with;
    /// `None` before the first write.
    pub async fn schema(&self) -> Result<Option<SchemaRef>> {
        read::table_schema(&self.storage, &self.timeline().await?).await
    }

    /// The earliest instant that time travel reads exactly, once the cleaner removed older file
    /// versions (`None` when nothing was cleaned); earlier ones are refused.
    pub async fn earliest_readable(&self) -> Result<Option<crate::InstantTime>> {
        read::earliest_readable(&self.storage, &self.timeline().await?).await
    }

    pub async fn read(&self, query: &Query) -> Result<ReadResult> {
        self.read_with(query, false).await
    }

    /// Like [`Table::read`], but from base files only: for merge-on-read tables, the state as of
    /// the latest compaction of each file group (log files are ignored).
    pub async fn read_optimized(&self, query: &Query) -> Result<ReadResult> {
        self.read_with(query, true).await
    }

    /// Every record the commits in `(from, to]` changed: `op` (`i`, `u`, `d`), `instant`,
    /// `before` and `after` (see [`read::read_changes`]).
    pub async fn read_changes(
        &self,
        from: &crate::InstantTime,
        to: Option<&crate::InstantTime>,
    ) -> Result<ReadResult> {
        self.snapshot().await?.read_changes(from, to).await
    }

    async fn read_with(&self, query: &Query, read_optimized: bool) -> Result<ReadResult> {
        self.snapshot().await?.read(query, read_optimized).await
    }

    /// Loads the table's current state once: timeline, file-system view and schema.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::load(self).await
    }

    /// Becomes the table's single writer: takes the lease and rolls back writes a dead writer
    /// left pending.
    pub async fn writer(&self) -> Result<Writer> {
        Writer::open(self.clone()).await
    }
}

fn counted(storage: Storage, config: &TableConfig) -> Storage {
    match &config.request_counts {
        Some(counts) => storage.counted(counts.clone()),
        None => storage,
    }
}

fn validate_new(properties: &TableProperties) -> Result<()> {
    let invalid = |reason: String| Err(Error::InvalidConfig(reason));
    properties.avro_data_blocks()?;
    if properties.name.is_empty()
        || !properties
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return invalid(format!(
            "table name {:?} must be letters, digits and underscores",
            properties.name
        ));
    }
    if properties.record_key_fields.is_empty() {
        return invalid("at least one record key column is required".to_string());
    }
    match properties.buckets {
        Some(0) | None => return invalid("the bucket count must be at least 1".to_string()),
        Some(_) => {}
    }
    for field in properties
        .record_key_fields
        .iter()
        .chain(&properties.partition_fields)
    {
        if field.is_empty() || field.contains([',', ':', '/', '=']) {
            return invalid(format!(
                "column name {field:?} cannot be a key or partition column"
            ));
        }
    }
    Ok(())
}
