//! Operator configuration for inlet: the TOML file of `inlet run` — one or more pipelines (a
//! source, the tables it feeds, where they are written and how changes are batched), the
//! background table services and the admin endpoint — loaded, validated with errors that name
//! the offending field, and with secrets that come from the environment and never print.
//!
//! A file with top-level `[source]` and `[sink]` is one pipeline named `default`; several are
//! written `[pipelines.<name>.source]`, `[pipelines.<name>.sink]`, … (not both forms at once).
//!
//! ```toml
//! [source]
//! kind = "postgres"
//! connection = "host=db.internal port=5432 user=inlet dbname=shop sslmode=require"
//! password_env = "INLET_PG_PASSWORD"   # the password comes from this environment variable
//! slot = "inlet"
//! publication = "inlet"
//! snapshot = "initial"                  # or "never"
//! include = ["public.*"]
//! exclude = ["public.audit_*"]
//!
//! [sink]
//! base_uri = "/data/lake"               # table schema.t goes to <base_uri>/<schema>/<t>
//! table_type = "cow"                    # default for every table: cow or mor
//! buckets = 4
//!
//! [batch]
//! max_rows = 100000
//! max_bytes = 67108864
//! max_delay = "1s"
//!
//! [tables."public.orders"]
//! table_type = "mor"
//! buckets = 16
//! partition_by = ["region"]
//! compaction = "log-ratio:0.5"          # overrides [services] for this table
//!
//! [services]
//! compaction = "delta-commits:5"        # merge-on-read tables; "log-ratio:R" or "off"
//! clean = "keep-latest-commits:10"      # or "off"
//!
//! [admin]
//! listen = "127.0.0.1:8080"
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod duration;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use duration::parse_duration;
pub use secret::Secret;

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A field has a value that cannot be used.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl Error {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Rows per table batch when `batch.max_rows` is not given: large enough that a copy-on-write
/// commit (which rewrites every touched file group) is amortised over many changes.
pub const DEFAULT_MAX_ROWS: usize = 200_000;
/// Buffered bytes per table when `batch.max_bytes` is not given: bounds memory to a few hundred
/// MB with a handful of busy tables.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How long a change may wait in a batch when `batch.max_delay` is not given: a lake table is
/// rarely read more often than this, and fewer commits mean fewer small files.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Buckets (file groups per partition) when neither the table nor the sink sets them.
pub const DEFAULT_BUCKETS: u32 = 4;
/// Tables copied at once during the initial snapshot: one connection each.
pub const DEFAULT_SNAPSHOT_PARALLELISM: usize = 2;
/// Default replication slot and publication name.
pub const DEFAULT_SLOT: &str = "inlet";

/// The name of the pipeline of a file with top-level `[source]` and `[sink]`.
pub const DEFAULT_PIPELINE: &str = "default";

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pipelines by name (at least one).
    pub pipelines: BTreeMap<String, PipelineConfig>,
    pub services: ServicesConfig,
    pub admin: AdminConfig,
}

/// The file as written: either the single-pipeline form or `[pipelines.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: Option<SourceConfig>,
    sink: Option<SinkConfig>,
    batch: Option<BatchConfig>,
    #[serde(default)]
    tables: BTreeMap<String, TableOptions>,
    recovery: Option<RecoveryConfig>,
    #[serde(default)]
    pipelines: BTreeMap<String, PipelineConfig>,
    #[serde(default)]
    services: ServicesConfig,
    #[serde(default)]
    admin: AdminConfig,
}

/// One pipeline: a source, the lake tables it feeds and how changes are batched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub source: SourceConfig,
    pub sink: SinkConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    /// Per-table options, keyed by `schema.table` of the source table.
    #[serde(default)]
    pub tables: BTreeMap<String, TableOptions>,
    #[serde(default)]
    pub recovery: RecoveryConfig,
}

/// Largest value (bytes of one text or binary cell) written when `recovery.max_value_bytes` is
/// not given: far above what lake readers handle well, far below Arrow's 2 GiB array limit.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 128 * 1024 * 1024;

/// What happens to a row that cannot be written (`[recovery]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryConfig {
    #[serde(default)]
    pub kind: RecoveryKind,
    /// A text or binary value longer than this cannot be written.
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            kind: RecoveryKind::default(),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

fn default_max_value_bytes() -> usize {
    DEFAULT_MAX_VALUE_BYTES
}

/// Where a row that cannot be written goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryKind {
    /// Its table stops (with an error naming the row); the other tables go on.
    #[default]
    Stop,
    /// It is written to the dead-letter table `<base_uri>/_dead_letter` with the reason, and its
    /// table goes on.
    DeadLetter,
}

/// Which system changes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Postgres,
    Mysql,
    Datagen,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::Mysql => "mysql",
            SourceKind::Datagen => "datagen",
        }
    }
}

/// Where a pipeline's changes come from, by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    Postgres(PostgresConfig),
    /// MySQL 8.0+ or MariaDB 10.6+ (binlog).
    Mysql(MysqlConfig),
    /// Generated changes, for demos and load tests.
    Datagen(DatagenConfig),
}

impl SourceConfig {
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::Postgres(_) => SourceKind::Postgres,
            SourceConfig::Mysql(_) => SourceKind::Mysql,
            SourceConfig::Datagen(_) => SourceKind::Datagen,
        }
    }

    /// Whether source table `schema.table` is captured.
    pub fn selects(&self, qualified: &str) -> bool {
        match self {
            SourceConfig::Postgres(p) => p.selects(qualified),
            SourceConfig::Mysql(m) => {
                m.include.iter().any(|p| glob_match(p, qualified))
                    && !m.exclude.iter().any(|p| glob_match(p, qualified))
            }
            SourceConfig::Datagen(d) => d.tables.iter().any(|t| t == qualified),
        }
    }
}

/// A MySQL/MariaDB source (binlog).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `mysql://user@host:port`.
    pub connection: Secret,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The replica id inlet registers with (unique among the server's replicas); derived from
    /// the pipeline name when not given.
    #[serde(default)]
    pub server_id: Option<u32>,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Key ranges of the initial snapshot copied at once: one connection each.
    #[serde(default = "default_snapshot_parallelism")]
    pub snapshot_parallelism: usize,
    /// Rows per key range of the initial snapshot (what one range holds in memory).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
    /// How the snapshot's binlog start position is taken: `none` (no lock) or `minimal` (a
    /// global read lock held while the position is read).
    #[serde(default)]
    pub snapshot_locking: SnapshotLocking,
    /// What to do when the binlog a table's checkpoint needs has been purged: `fail` or
    /// `resnapshot` (empty those tables and copy them again).
    #[serde(default)]
    pub on_gap: OnGap,
    /// `database.table` patterns (`*` and `?` wildcards) of the tables to capture.
    #[serde(default = "default_mysql_include")]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// How a MySQL/MariaDB snapshot takes the binlog position it streams from (Debezium's
/// `snapshot.locking.mode`). Every transaction before that position must be committed, or the
/// copy could miss it and the stream would skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotLocking {
    /// No lock: MariaDB's `binlog_snapshot_position` of a consistent-snapshot transaction.
    /// MySQL has no such position, so there a snapshot is refused.
    #[default]
    None,
    /// `FLUSH TABLES WITH READ LOCK` (the `RELOAD` privilege) while the binlog position is
    /// read: writes wait for a few milliseconds, or until statements already running finish
    /// (at most `lock_wait_timeout`, set to 10 s). Needed for a snapshot on MySQL.
    Minimal,
}

/// Rows per key range of a MySQL snapshot.
pub const DEFAULT_CHUNK_SIZE: usize = 10_000;

fn default_chunk_size() -> usize {
    DEFAULT_CHUNK_SIZE
}

fn default_mysql_include() -> Vec<String> {
    vec!["*.*".to_string()]
}

impl MysqlConfig {
    /// The password: `password`, else the variable named by `password_env`.
    pub fn resolved_password(&self) -> Result<Option<Secret>> {
        resolve_password(&self.password, &self.password_env)
    }

    /// `server_id`, else one derived from the pipeline name (stable across restarts).
    pub fn server_id_for(&self, pipeline: &str) -> u32 {
        self.server_id.unwrap_or_else(|| {
            let hash = pipeline.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            // Away from the small ids servers are usually given.
            1_000_000 + (hash % 1_000_000_000) as u32
        })
    }

    fn validate(&self, prefix: &str) -> Result<()> {
        let field = |name: &str| format!("{prefix}source.{name}");
        if !self.connection.expose().starts_with("mysql://") {
            return Err(Error::invalid(
                field("connection"),
                "must be a mysql:// URL (mysql://user@host:port)",
            ));
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err(Error::invalid(
                field("password"),
                "give either password or password_env, not both",
            ));
        }
        if self.server_id == Some(0) {
            return Err(Error::invalid(field("server_id"), "must be at least 1"));
        }
        for (name, value) in [
            ("snapshot_parallelism", self.snapshot_parallelism),
            ("chunk_size", self.chunk_size),
        ] {
            if value == 0 {
                return Err(Error::invalid(field(name), "must be at least 1"));
            }
        }
        for (name, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, p) in patterns.iter().enumerate() {
                check_pattern(&format!("{}[{i}]", field(name)), p)?;
            }
        }
        Ok(())
    }
}

/// The built-in change generator: random inserts, updates and deletes of rows with an `id`
/// key, at a steady rate, the same for the same seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatagenConfig {
    /// Generated tables, as `schema.table`.
    pub tables: Vec<String>,
    /// Distinct keys per table: inserts stop (becoming updates) once it is full.
    #[serde(default = "default_key_space")]
    pub key_space: u64,
    /// Changes per second over all tables; 0 generates as fast as the pipeline takes them.
    #[serde(default = "default_rate")]
    pub rate: u64,
    /// Changes per source transaction.
    #[serde(default = "default_transaction_size")]
    pub transaction_size: u32,
    /// Relative weights of inserts, updates and deletes.
    #[serde(default)]
    pub mix: Mix,
    #[serde(default)]
    pub seed: u64,
}

/// Relative weights of the operations a generator draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub insert: u32,
    pub update: u32,
    pub delete: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            insert: 50,
            update: 40,
            delete: 10,
        }
    }
}

fn default_key_space() -> u64 {
    100_000
}

fn default_rate() -> u64 {
    1_000
}

fn default_transaction_size() -> u32 {
    10
}

/// How the initial state of the tables is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Copy every table inside the slot's exported snapshot, then stream (resuming an
    /// interrupted copy table by table).
    #[default]
    Initial,
    /// Only stream changes from the slot's position; existing rows are not copied.
    Never,
}

/// A PostgreSQL source database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// libpq-style `key=value` string or `postgres://` URL (`sslmode=require` for TLS).
    pub connection: Secret,
    /// Password, if not in `connection` (prefer `password_env`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// PEM file of the CA that signs the server certificate (`sslmode=verify-ca`/`verify-full`).
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
    #[serde(default = "default_slot")]
    pub slot: String,
    #[serde(default = "default_slot")]
    pub publication: String,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    #[serde(default = "default_snapshot_parallelism")]
    pub snapshot_parallelism: usize,
    /// `schema.table` patterns (`*` and `?` wildcards) of the tables to capture.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Patterns of tables to leave out, applied after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Retained WAL of the slot above which inlet warns (and with `stop_at_slot_lag`, stops):
    /// set it below the server's `max_slot_wal_keep_size`, which invalidates the slot.
    #[serde(default)]
    pub max_slot_lag_bytes: Option<u64>,
    /// Stop the pipeline (with an error) when the slot retains more than `max_slot_lag_bytes`.
    #[serde(default)]
    pub stop_at_slot_lag: bool,
    /// Write a logical message this often (`pg_logical_emit_message`), so that a quiet database
    /// still lets the slot advance. Off when not given.
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    pub heartbeat_interval: Option<Duration>,
    /// What to do when the slot lost changes a table's checkpoint needs (it was dropped and
    /// recreated, or advanced by someone else): `fail` or `resnapshot` (copy those tables again).
    #[serde(default)]
    pub on_gap: OnGap,
}

/// What happens when the source cannot deliver every change after a table's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnGap {
    /// An error naming the tables and the lost range.
    #[default]
    Fail,
    /// The affected tables are emptied and copied again, then streamed; they converge.
    Resnapshot,
}

fn default_slot() -> String {
    DEFAULT_SLOT.to_string()
}

fn default_snapshot_parallelism() -> usize {
    DEFAULT_SNAPSHOT_PARALLELISM
}

fn default_include() -> Vec<String> {
    vec!["public.*".to_string()]
}

/// A password: `password`, else the variable named by `password_env`.
fn resolve_password(password: &Option<Secret>, env: &Option<String>) -> Result<Option<Secret>> {
    if let Some(password) = password {
        return Ok(Some(password.clone()));
    }
    match env {
        Some(name) => std::env::var(name)
            .map(|v| Some(Secret::new(v)))
            .map_err(|_| {
                Error::invalid(
                    "source.password_env",
                    format!("environment variable {name} is not set"),
                )
            }),
        None => Ok(None),
    }
}

impl PostgresConfig {
    /// The password: `password`, else the variable named by `password_env`.
    pub fn resolved_password(&self) -> Result<Option<Secret>> {
        resolve_password(&self.password, &self.password_env)
    }

    /// Whether `schema.table` is selected by `include` and not by `exclude`.
    pub fn selects(&self, qualified: &str) -> bool {
        self.include.iter().any(|p| glob_match(p, qualified))
            && !self.exclude.iter().any(|p| glob_match(p, qualified))
    }
}

/// Table type of a lake table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// Copy-on-write.
    #[default]
    Cow,
    /// Merge-on-read.
    Mor,
}

/// Where lake tables are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Base location: a directory, `file:///…` or `s3://bucket/prefix`.
    pub base_uri: String,
    /// Object-store options (`aws_endpoint`, `aws_region`, …).
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    #[serde(default)]
    pub table_type: TableKind,
    #[serde(default = "default_buckets")]
    pub buckets: u32,
    /// Where the pipeline registers its tables for Athena, Presto, Trino and Spark.
    #[serde(default)]
    pub catalog: Option<CatalogConfig>,
}

/// A catalog the service keeps current after commits (`[sink.catalog]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    pub kind: CatalogKind,
    /// The Glue database (created when missing).
    pub database: String,
    /// AWS region; `AWS_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Another Glue endpoint (an AWS-compatible stack); AWS's otherwise.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// Catalogs the service can sync to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// The AWS Glue Data Catalog, as Hudi's Glue sync registers tables.
    Glue,
}

fn default_buckets() -> u32 {
    DEFAULT_BUCKETS
}

/// Options of one lake table (overriding the sink's defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableOptions {
    /// Location of the lake table; default `<sink.base_uri>/<schema>/<table>`.
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub table_type: Option<TableKind>,
    #[serde(default)]
    pub buckets: Option<u32>,
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Record key columns, for a source table without a primary key or replica identity index
    /// (it must then have REPLICA IDENTITY FULL, so that deletes carry these columns).
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// The configured `key` is unique in the source although no unique index says so (the
    /// operator's promise). Without it, such a key is refused: rows with equal keys would become
    /// one lake row.
    #[serde(default)]
    pub assume_unique_key: bool,
    /// Compaction strategy of this table, overriding `services.compaction`.
    #[serde(default)]
    pub compaction: Option<String>,
    /// Cleaning policy of this table, overriding `services.clean`.
    #[serde(default)]
    pub clean: Option<String>,
    /// Keep a Delta Lake log (`_delta_log/`) beside the table's `.hoodie/`: every commit,
    /// compaction, rollback and restore becomes a Delta version (merge-on-read tables: their
    /// read-optimized view). Turned on in the table itself; `inlet mirror --disable` turns it off.
    #[serde(default)]
    pub delta_mirror: bool,
    /// Change data capture in the table itself (Hudi's `hoodie.table.cdc.enabled`, mode
    /// `DATA_BEFORE_AFTER`): copy-on-write commits write `.cdc` files with each change's before
    /// and after image, which `inlet read --changes` and Spark's CDC query read.
    #[serde(default)]
    pub cdc: bool,
    /// Only these source columns are written (the key columns always are).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// These source columns are not written.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// Lake names of source columns (`{ source = "lake" }`).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// `"outbox"`: the table is a transactional outbox; each inserted row becomes one event
    /// record of an append-only event table (deletes and updates are not events).
    #[serde(default)]
    pub flow: Option<FlowKind>,
    /// The outbox column holding the event's payload.
    #[serde(default)]
    pub payload_column: Option<String>,
    /// The outbox column holding the event's type, if any.
    #[serde(default)]
    pub event_type_column: Option<String>,
}

/// What a table's rows become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// Inserted rows become events (`payload_column`, `event_type_column`).
    Outbox,
}

impl TableOptions {
    fn validate_flow(&self, table: &str) -> Result<()> {
        if self.columns.is_some() && !self.exclude_columns.is_empty() {
            return Err(Error::invalid(
                format!("{table}.exclude_columns"),
                "give either columns or exclude_columns, not both",
            ));
        }
        let mut targets = std::collections::BTreeSet::new();
        for (from, to) in &self.rename {
            let reserved = to.starts_with("_hoodie_") || to.starts_with("_cdc_");
            if to.trim().is_empty() || reserved || !targets.insert(to) {
                return Err(Error::invalid(
                    format!("{table}.rename.{from}"),
                    format!(
                        "{to:?} must be a non-empty name used once, not starting with _hoodie_ or _cdc_"
                    ),
                ));
            }
        }
        match self.flow {
            Some(FlowKind::Outbox) => {
                if self.payload_column.is_none() {
                    return Err(Error::invalid(
                        format!("{table}.payload_column"),
                        "an outbox needs the column holding the event payload",
                    ));
                }
                if self.columns.is_some()
                    || !self.exclude_columns.is_empty()
                    || !self.rename.is_empty()
                {
                    return Err(Error::invalid(
                        format!("{table}.flow"),
                        "an outbox table's columns are the event's (key, event_type, payload): \
                         columns, exclude_columns and rename do not apply",
                    ));
                }
            }
            None => {
                if self.payload_column.is_some() || self.event_type_column.is_some() {
                    return Err(Error::invalid(
                        format!("{table}.payload_column"),
                        "only for flow = \"outbox\"",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Compaction of merge-on-read tables when `services.compaction` is not given: a slice is
/// compacted after five delta commits, which keeps reads of the latest state cheap.
pub const DEFAULT_COMPACTION: &str = "delta-commits:5";
/// Cleaning when `services.clean` is not given (Hudi's default retention).
pub const DEFAULT_CLEAN: &str = "keep-latest-commits:10";
/// Archival bounds when not given (Hudi's `hoodie.keep.min.commits` / `max.commits`).
pub const DEFAULT_ARCHIVE_MIN_COMMITS: usize = 20;
pub const DEFAULT_ARCHIVE_MAX_COMMITS: usize = 30;
/// Pending compactions of a table above which its ingest waits for compaction to catch up.
pub const DEFAULT_MAX_PENDING_COMPACTIONS: usize = 4;
/// Log files in one file slice above which ingest waits for compaction to catch up.
pub const DEFAULT_MAX_LOG_FILES_PER_SLICE: usize = 50;

/// Background table services of the tables the service writes (`[services]`); the strategy
/// strings are those of `inlet compact --strategy` and `inlet clean --policy`, or `"off"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesConfig {
    /// Merge-on-read tables: `delta-commits:N`, `log-ratio:R` or `off`.
    #[serde(default = "default_compaction")]
    pub compaction: String,
    /// `keep-latest-commits:N`, `keep-latest-file-versions:N`, `keep-latest-by-hours:H` or `off`.
    #[serde(default = "default_clean")]
    pub clean: String,
    #[serde(default = "default_archive_min")]
    pub archive_min_commits: usize,
    #[serde(default = "default_archive_max")]
    pub archive_max_commits: usize,
    /// Ingest of a table waits while more compactions than this are pending…
    #[serde(default = "default_max_pending_compactions")]
    pub max_pending_compactions: usize,
    /// …or while a file slice has more log files than this (with compaction on).
    #[serde(default = "default_max_log_files")]
    pub max_log_files_per_slice: usize,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        ServicesConfig {
            compaction: default_compaction(),
            clean: default_clean(),
            archive_min_commits: DEFAULT_ARCHIVE_MIN_COMMITS,
            archive_max_commits: DEFAULT_ARCHIVE_MAX_COMMITS,
            max_pending_compactions: DEFAULT_MAX_PENDING_COMPACTIONS,
            max_log_files_per_slice: DEFAULT_MAX_LOG_FILES_PER_SLICE,
        }
    }
}

fn default_compaction() -> String {
    DEFAULT_COMPACTION.to_string()
}

fn default_clean() -> String {
    DEFAULT_CLEAN.to_string()
}

fn default_archive_min() -> usize {
    DEFAULT_ARCHIVE_MIN_COMMITS
}

fn default_archive_max() -> usize {
    DEFAULT_ARCHIVE_MAX_COMMITS
}

fn default_max_pending_compactions() -> usize {
    DEFAULT_MAX_PENDING_COMPACTIONS
}

fn default_max_log_files() -> usize {
    DEFAULT_MAX_LOG_FILES_PER_SLICE
}

/// Where the admin endpoint listens when `admin.listen` is not given.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8080";

/// The admin HTTP endpoint (`[admin]`): health, metrics, the API and the web page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `host:port`; `"off"` serves nothing.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Environment variable holding a bearer token that `/api/*` requires; needed when
    /// `listen` is not a loopback address.
    #[serde(default)]
    pub token_env: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            token_env: None,
        }
    }
}

fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.to_string()
}

impl AdminConfig {
    /// The socket address to bind, `None` when the endpoint is off.
    pub fn address(&self) -> Result<Option<SocketAddr>> {
        if self.listen == "off" {
            return Ok(None);
        }
        let address: SocketAddr = self.listen.parse().map_err(|_| {
            Error::invalid(
                "admin.listen",
                format!(
                    "{:?} must be ip:port (e.g. 127.0.0.1:8080) or \"off\"",
                    self.listen
                ),
            )
        })?;
        Ok(Some(address))
    }

    /// The bearer token, read from `token_env`.
    pub fn token(&self) -> Result<Option<Secret>> {
        let Some(name) = &self.token_env else {
            return Ok(None);
        };
        match std::env::var(name) {
            // RFC 6750 tokens are visible ASCII: an HTTP header could not carry anything else.
            Ok(value) if !value.is_empty() && !value.bytes().all(|b| b.is_ascii_graphic()) => {
                Err(Error::invalid(
                    "admin.token_env",
                    format!("the token in {name} must be visible ASCII characters (no spaces)"),
                ))
            }
            Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
            _ => Err(Error::invalid(
                "admin.token_env",
                format!("environment variable {name} is not set or empty"),
            )),
        }
    }

    fn validate(&self) -> Result<()> {
        if let Some(address) = self.address()?
            && !address.ip().is_loopback()
            && self.token_env.is_none()
        {
            return Err(Error::invalid(
                "admin.listen",
                format!(
                    "{address} is reachable from other machines: set admin.token_env to the \
                     environment variable of a bearer token (or listen on 127.0.0.1)"
                ),
            ));
        }
        Ok(())
    }
}

/// When a table's buffered changes are committed: whichever bound is reached first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Not for a table being copied (its initial snapshot), which `max_bytes` and `max_delay`
    /// bound: each copy-on-write commit rewrites the growing file groups.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Duration such as `"500ms"`, `"5s"`, `"1m"`.
    #[serde(
        default = "default_max_delay",
        deserialize_with = "duration::deserialize"
    )]
    pub max_delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

fn default_max_rows() -> usize {
    DEFAULT_MAX_ROWS
}

fn default_max_bytes() -> usize {
    DEFAULT_MAX_BYTES
}

fn default_max_delay() -> Duration {
    DEFAULT_MAX_DELAY
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let file: File = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let single = file.source.is_some()
            || file.sink.is_some()
            || file.recovery.is_some()
            || file.batch.is_some()
            || !file.tables.is_empty();
        let pipelines = match (single, file.pipelines.is_empty()) {
            (true, false) => {
                return Err(Error::invalid(
                    "pipelines",
                    "give either top-level [source] and [sink] (one pipeline named default) or \
                     [pipelines.<name>] sections, not both",
                ));
            }
            (false, true) => {
                return Err(Error::invalid(
                    "source",
                    "missing: give [source] and [sink], or [pipelines.<name>] sections",
                ));
            }
            (false, false) => file.pipelines,
            (true, true) => {
                let missing = |field: &str| Error::invalid(field, "missing");
                let pipeline = PipelineConfig {
                    source: file.source.ok_or_else(|| missing("source"))?,
                    sink: file.sink.ok_or_else(|| missing("sink"))?,
                    batch: file.batch.unwrap_or_default(),
                    tables: file.tables,
                    recovery: file.recovery.unwrap_or_default(),
                };
                BTreeMap::from([(DEFAULT_PIPELINE.to_string(), pipeline)])
            }
        };
        let config = Config {
            pipelines,
            services: file.services,
            admin: file.admin,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: names, ranges, patterns.
    pub fn validate(&self) -> Result<()> {
        let mut slots = BTreeMap::new();
        let mut bases: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, pipeline) in &self.pipelines {
            let base = pipeline.sink.base_uri.trim_end_matches('/');
            if let Some(other) = bases.insert(base, name) {
                return Err(Error::invalid(
                    format!("pipelines.{name}.sink.base_uri"),
                    format!(
                        "pipelines {other} and {name} write under the same base URI {base:?}: give \
                         each its own (their dead-letter tables and acknowledgement records would \
                         collide)"
                    ),
                ));
            }
            let prefix = if self.pipelines.len() == 1 && name == DEFAULT_PIPELINE {
                String::new()
            } else {
                check_pipeline_name(name)?;
                format!("pipelines.{name}.")
            };
            pipeline.validate(&prefix)?;
            if let SourceConfig::Postgres(p) = &pipeline.source
                && let Some(other) = slots.insert(
                    (p.connection.expose().to_string(), p.slot.clone()),
                    name.clone(),
                )
            {
                return Err(Error::invalid(
                    format!("{prefix}source.slot"),
                    format!(
                        "pipelines {other} and {name} read the same database through slot {:?}: \
                         give each its own slot",
                        p.slot
                    ),
                ));
            }
        }
        let s = &self.services;
        if s.archive_min_commits == 0 || s.archive_min_commits >= s.archive_max_commits {
            return Err(Error::invalid(
                "services.archive_min_commits",
                format!(
                    "must be at least 1 and below archive_max_commits ({})",
                    s.archive_max_commits
                ),
            ));
        }
        if s.max_pending_compactions == 0 {
            return Err(Error::invalid(
                "services.max_pending_compactions",
                "must be at least 1",
            ));
        }
        self.admin.validate()
    }

    /// The only pipeline of a single-pipeline file (tests, tools).
    pub fn single(&self) -> Option<&PipelineConfig> {
        match self.pipelines.len() {
            1 => self.pipelines.values().next(),
            _ => None,
        }
    }
}

impl PipelineConfig {
    fn validate(&self, prefix: &str) -> Result<()> {
        let field = |name: &str| format!("{prefix}{name}");
        match &self.source {
            SourceConfig::Postgres(s) => s.validate(prefix)?,
            SourceConfig::Mysql(m) => m.validate(prefix)?,
            SourceConfig::Datagen(d) => d.validate(prefix)?,
        }
        if self.sink.base_uri.trim().is_empty() {
            return Err(Error::invalid(field("sink.base_uri"), "must not be empty"));
        }
        if let Some(catalog) = &self.sink.catalog
            && catalog.database.trim().is_empty()
        {
            return Err(Error::invalid(
                field("sink.catalog.database"),
                "must name the Glue database",
            ));
        }
        if self.sink.buckets == 0 {
            return Err(Error::invalid(field("sink.buckets"), "must be at least 1"));
        }
        if self.batch.max_rows == 0 {
            return Err(Error::invalid(
                field("batch.max_rows"),
                "must be at least 1",
            ));
        }
        if self.batch.max_bytes == 0 {
            return Err(Error::invalid(
                field("batch.max_bytes"),
                "must be at least 1",
            ));
        }
        for (name, options) in &self.tables {
            let table = field(&format!("tables.\"{name}\""));
            if name.split('.').count() != 2 || name.contains('*') || name.contains('?') {
                return Err(Error::invalid(
                    table,
                    "the key must be a source table as schema.table",
                ));
            }
            if options.buckets == Some(0) {
                return Err(Error::invalid(
                    format!("{table}.buckets"),
                    "must be at least 1",
                ));
            }
            if options.partition_by.iter().any(|c| c.trim().is_empty()) {
                return Err(Error::invalid(
                    format!("{table}.partition_by"),
                    "column names must not be empty",
                ));
            }
            options.validate_flow(&table)?;
        }
        Ok(())
    }

    /// The options of source table `schema.table` (defaults if not configured).
    pub fn table(&self, schema: &str, table: &str) -> TableOptions {
        self.tables
            .get(&format!("{schema}.{table}"))
            .cloned()
            .unwrap_or_default()
    }

    /// Where the lake table of `schema.table` lives: `<base_uri>/<schema>/<table>`, each name
    /// one directory inside the base whatever it holds (see [`path_segment`]).
    pub fn table_uri(&self, schema: &str, table: &str) -> String {
        match self.table(schema, table).uri {
            Some(uri) => uri,
            None => format!(
                "{}/{}/{}",
                self.sink.base_uri.trim_end_matches('/'),
                path_segment(schema),
                path_segment(table)
            ),
        }
    }
}

impl PostgresConfig {
    fn validate(&self, prefix: &str) -> Result<()> {
        let field = |name: &str| format!("{prefix}source.{name}");
        if self.connection.expose().trim().is_empty() {
            return Err(Error::invalid(field("connection"), "must not be empty"));
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err(Error::invalid(
                field("password"),
                "give either password or password_env, not both",
            ));
        }
        check_identifier(&field("slot"), &self.slot)?;
        if self.stop_at_slot_lag && self.max_slot_lag_bytes.is_none() {
            return Err(Error::invalid(
                field("stop_at_slot_lag"),
                "needs max_slot_lag_bytes",
            ));
        }
        if self
            .heartbeat_interval
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            return Err(Error::invalid(
                field("heartbeat_interval"),
                "must be at least 1s",
            ));
        }
        check_identifier(&field("publication"), &self.publication)?;
        if self.snapshot_parallelism == 0 {
            return Err(Error::invalid(
                field("snapshot_parallelism"),
                "must be at least 1",
            ));
        }
        if self.include.is_empty() {
            return Err(Error::invalid(
                field("include"),
                "must name at least one table pattern",
            ));
        }
        for (name, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, p) in patterns.iter().enumerate() {
                check_pattern(&format!("{}[{i}]", field(name)), p)?;
            }
        }
        Ok(())
    }
}

impl DatagenConfig {
    fn validate(&self, prefix: &str) -> Result<()> {
        let field = |name: &str| format!("{prefix}source.{name}");
        if self.tables.is_empty() {
            return Err(Error::invalid(
                field("tables"),
                "must name at least one table",
            ));
        }
        for (i, t) in self.tables.iter().enumerate() {
            if t.split('.').count() != 2 || t.split('.').any(str::is_empty) {
                return Err(Error::invalid(
                    format!("{}[{i}]", field("tables")),
                    format!("{t:?} must be schema.table"),
                ));
            }
        }
        if self.key_space == 0 {
            return Err(Error::invalid(field("key_space"), "must be at least 1"));
        }
        if self.transaction_size == 0 || self.transaction_size > 10_000 {
            return Err(Error::invalid(
                field("transaction_size"),
                "must be between 1 and 10000",
            ));
        }
        if self.mix.insert == 0 {
            return Err(Error::invalid(
                field("mix.insert"),
                "must be above 0 (updates and deletes need rows to change)",
            ));
        }
        Ok(())
    }
}

fn check_pipeline_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("pipelines.{name}"),
            "a pipeline name is 1 to 63 letters, digits, _ or -",
        ))
    }
}

/// A source name as one directory name that stays where it is put: `%`, `/`, `\` and control
/// characters are percent-encoded (`a/b` → `a%2Fb`, so `../../x` cannot climb out of the base),
/// as is a leading `.` (no `.`, `..` or hidden directories). Other names, non-ASCII included, are
/// kept as they are.
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        if matches!(c, '%' | '/' | '\\') || c.is_control() || (i == 0 && c == '.') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

fn check_identifier(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !value.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{value:?} must be a valid identifier (lower-case letters, digits, _; at most 63)"
            ),
        ))
    }
}

fn check_pattern(field: &str, pattern: &str) -> Result<()> {
    if pattern.split('.').count() != 2 || pattern.split('.').any(str::is_empty) {
        return Err(Error::invalid(
            field,
            format!("{pattern:?} must be schema.table (wildcards * and ? allowed)"),
        ));
    }
    Ok(())
}

/// Matches `*` (any run of characters) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests;
