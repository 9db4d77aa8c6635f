//! Errors of the table crate: one enum with structured variants, so callers can tell a conflict
//! (retry or report) from bad input (fix the input) from a storage failure (retry).

use crate::timeline::InstantTime;

/// Result alias of the table crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage error at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("I/O error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid table URI {uri}: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error("{path:?} cannot be a path in object storage: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error(
        "the table as of {at} cannot be read exactly: the cleaner removed file versions it needs; \
         the earliest instant still readable is {earliest}"
    )]
    Cleaned {
        at: InstantTime,
        earliest: InstantTime,
    },
    #[error("no Hudi table at {0} (missing .hoodie/hoodie.properties)")]
    TableNotFound(String),
    #[error("a table already exists at {0}")]
    TableExists(String),
    #[error("invalid hoodie.properties: {0}")]
    InvalidProperties(String),
    #[error("unsupported table: {0}")]
    Unsupported(String),
    #[error("cannot roll back {instant}: {reason}")]
    RollbackRefused {
        instant: InstantTime,
        reason: String,
    },
    #[error("cannot savepoint {instant}: {reason}")]
    SavepointRefused {
        instant: InstantTime,
        reason: String,
    },
    #[error("cannot restore to {instant}: {reason}")]
    RestoreRefused {
        instant: InstantTime,
        reason: String,
    },
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidIdentifier {
        kind: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid instant file name {0:?}")]
    InvalidInstant(String),
    #[error("invalid table configuration: {0}")]
    InvalidConfig(String),
    #[error(
        "another writer holds the lease on table {table} (owner {owner}, expires {expires}); \
         only one writer may write a table at a time"
    )]
    WriterLeaseHeld {
        table: String,
        owner: String,
        expires: String,
    },
    #[error("writer lease on table {table} was lost: {reason}")]
    WriterLeaseLost { table: String, reason: String },
    #[error("commit conflict on instant {instant}: {reason}")]
    CommitConflict {
        instant: InstantTime,
        reason: String,
    },
    #[error("instant {0} not found on the timeline")]
    InstantNotFound(String),
    #[error("column {column:?}: {reason}")]
    Schema { column: String, reason: String },
    #[error(
        "column {column:?} changes type from {from} to {to}; only adding nullable columns and \
         widening integers (int8 → int16 → int32 → int64) or float32 to float64 are allowed"
    )]
    SchemaConflict {
        column: String,
        from: String,
        to: String,
    },
    /// A row that cannot be written as it is; `row` counts from 0 in the rows of the commit.
    #[error("row {} of the commit: {reason}", row + 1)]
    Record { row: usize, reason: String },
    #[error("invalid commit metadata in {path}: {reason}")]
    CommitMetadata { path: String, reason: String },
    #[error("corrupt data file {path}: {reason}")]
    CorruptFile { path: String, reason: String },
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("Parquet error in {path}: {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("Avro error: {0}")]
    Avro(String),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("log block at byte {offset}: {reason}")]
    LogBlockDecode { offset: u64, reason: String },
    #[error("cannot encode {block_type} log block: {reason}")]
    LogBlockEncode {
        block_type: crate::file_group::BlockType,
        reason: String,
    },
}

impl Error {
    /// Whether retrying the same operation later may succeed (transient storage trouble, a lost
    /// race), as opposed to bad input or a broken table that needs an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
            Error::Io { .. } | Error::CommitConflict { .. } | Error::WriterLeaseHeld { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn storage(path: impl std::fmt::Display, source: object_store::Error) -> Self {
        Error::Storage {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn parquet(
        path: impl std::fmt::Display,
        source: parquet::errors::ParquetError,
    ) -> Self {
        Error::Parquet {
            path: path.to_string(),
            source,
        }
    }
}
