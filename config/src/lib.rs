//! Operator configuration for inlet: the TOML file of `inlet run` (a source, the tables it feeds,
//! where they are written and how changes are batched), loaded, validated with errors that name
//! the offending field, and with secrets that come from the environment and never print.
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
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod duration;
mod secret;

use std::collections::BTreeMap;
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

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub sink: SinkConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    /// Per-table options, keyed by `schema.table` of the source table.
    #[serde(default)]
    pub tables: BTreeMap<String, TableOptions>,
}

/// Which database changes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
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

/// The source database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
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

impl SourceConfig {
    /// The password: `password`, else the variable named by `password_env`.
    pub fn resolved_password(&self) -> Result<Option<Secret>> {
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        match &self.password_env {
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
}

/// When a table's buffered changes are committed: whichever bound is reached first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
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
        let config: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: names, ranges, patterns.
    pub fn validate(&self) -> Result<()> {
        let s = &self.source;
        if s.connection.expose().trim().is_empty() {
            return Err(Error::invalid("source.connection", "must not be empty"));
        }
        if s.password.is_some() && s.password_env.is_some() {
            return Err(Error::invalid(
                "source.password",
                "give either password or password_env, not both",
            ));
        }
        check_identifier("source.slot", &s.slot)?;
        check_identifier("source.publication", &s.publication)?;
        if s.snapshot_parallelism == 0 {
            return Err(Error::invalid(
                "source.snapshot_parallelism",
                "must be at least 1",
            ));
        }
        if s.include.is_empty() {
            return Err(Error::invalid(
                "source.include",
                "must name at least one table pattern",
            ));
        }
        for (field, patterns) in [
            ("source.include", &s.include),
            ("source.exclude", &s.exclude),
        ] {
            for (i, p) in patterns.iter().enumerate() {
                check_pattern(&format!("{field}[{i}]"), p)?;
            }
        }
        if self.sink.base_uri.trim().is_empty() {
            return Err(Error::invalid("sink.base_uri", "must not be empty"));
        }
        if self.sink.buckets == 0 {
            return Err(Error::invalid("sink.buckets", "must be at least 1"));
        }
        if self.batch.max_rows == 0 {
            return Err(Error::invalid("batch.max_rows", "must be at least 1"));
        }
        if self.batch.max_bytes == 0 {
            return Err(Error::invalid("batch.max_bytes", "must be at least 1"));
        }
        for (name, options) in &self.tables {
            let field = format!("tables.\"{name}\"");
            if name.split('.').count() != 2 || name.contains('*') || name.contains('?') {
                return Err(Error::invalid(
                    field,
                    "the key must be a source table as schema.table",
                ));
            }
            if options.buckets == Some(0) {
                return Err(Error::invalid(
                    format!("{field}.buckets"),
                    "must be at least 1",
                ));
            }
            if options.partition_by.iter().any(|c| c.trim().is_empty()) {
                return Err(Error::invalid(
                    format!("{field}.partition_by"),
                    "column names must not be empty",
                ));
            }
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
