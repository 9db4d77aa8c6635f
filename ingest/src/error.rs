//! Errors of change capture.
//!
//! Every error about Debezium input names the 1-based line it was found on,
//! and where it concerns one value, the column (a dotted path for nested
//! fields, `[]` for list items); pgoutput errors name the message and the byte
//! offset.

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error decoding change events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the input failed.
    #[error("line {line}: reading input: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },

    /// The line is not a JSON object of the expected shape.
    #[error("line {line}: malformed change event: {reason}")]
    Malformed { line: usize, reason: String },

    /// A required part of the event is absent or null.
    #[error("line {line}: `{field}` is missing or null{}", required_by(op.as_deref()))]
    MissingField {
        line: usize,
        /// `op`, `after` or `before`.
        field: String,
        /// The operation that needs the field, if that is why it is required.
        op: Option<String>,
    },

    /// The event's `op` is not one of c, r, u, d.
    #[error("line {line}: unsupported op {op:?}{}", op_hint(op))]
    UnsupportedOp { line: usize, op: String },

    /// The Kafka Connect schema of the envelope cannot be understood.
    #[error("line {line}: bad Debezium schema: {reason}")]
    BadSchema { line: usize, reason: String },

    /// A column's schema type has no Arrow mapping here.
    #[error("line {line}: column `{column}` has unsupported type {type_name}{}", hint_suffix(hint.as_deref()))]
    UnsupportedType {
        line: usize,
        column: String,
        type_name: String,
        hint: Option<String>,
    },

    /// A value does not fit its column (wrong JSON type, bad base64, out of range, ...).
    #[error("line {line}: column `{column}`: {reason}")]
    BadValue {
        line: usize,
        column: String,
        reason: String,
    },

    /// A column has one type up to some line and another type on this line.
    #[error("line {line}: column `{column}` is {second} here but was {first} in earlier lines")]
    TypeConflict {
        line: usize,
        column: String,
        /// The type seen first (in earlier lines).
        first: String,
        /// The conflicting type seen on `line`.
        second: String,
    },

    /// A data column has the name of one of the change metadata columns.
    #[error("line {line}: column `{column}` has the name of a change metadata column")]
    ReservedColumn { line: usize, column: String },

    /// Assembling the Arrow arrays failed (a bug in the decoder, or a size limit).
    #[error("building Arrow arrays: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// A pgoutput message is empty (it has no tag byte).
    #[error("empty pgoutput message")]
    PgOutputEmpty,

    /// A pgoutput message ends inside one of its fields.
    #[error("{}: truncated at byte {offset}: {field} is incomplete", pgoutput_label(*tag))]
    PgOutputTruncated {
        /// The message's first byte.
        tag: u8,
        /// Where the incomplete field starts (0-based, from the tag byte).
        offset: usize,
        /// The field being read, e.g. `relation OID`.
        field: &'static str,
    },

    /// A pgoutput message holds a value its format does not allow.
    #[error("{}: byte {offset}: {reason}", pgoutput_label(*tag))]
    PgOutputMalformed {
        tag: u8,
        /// Where the offending value starts (0-based, from the tag byte).
        offset: usize,
        reason: String,
    },

    /// A pgoutput message type the protocol version 1 decoder does not handle.
    #[error("{}: not supported (only pgoutput protocol version 1 is decoded)", pgoutput_label(*tag))]
    PgOutputUnsupported { tag: u8 },

    /// A PostgreSQL LSN that is not `X/Y` (two hexadecimal numbers of 1 to 8 digits).
    #[error(
        "invalid LSN {input:?}: expected two hexadecimal numbers of 1 to 8 digits separated by `/`"
    )]
    InvalidLsn { input: String },

    /// A PostgreSQL value that does not parse as its column's type.
    #[error("table {table}, column {column}: {reason}")]
    PgValue {
        table: String,
        column: String,
        reason: String,
    },

    /// A SQL request to PostgreSQL failed.
    #[error("PostgreSQL: {context}: {source}")]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The replication (walsender) session failed.
    #[error("PostgreSQL replication: {context}: {source}")]
    Replication {
        context: String,
        #[source]
        source: pgwire_replication::PgWireError,
    },

    /// The server is not set up for logical replication; each problem says what to fix.
    #[error("PostgreSQL is not ready for change capture:\n  - {}", problems.join("\n  - "))]
    Prerequisites { problems: Vec<String> },

    /// A request to MySQL/MariaDB failed.
    #[error("MySQL: {context}: {source}")]
    Mysql {
        context: String,
        #[source]
        source: mysql_async::Error,
    },

    /// The MySQL/MariaDB server is not set up for binlog capture; each problem says what to fix.
    #[error("{server} is not ready for change capture:\n  - {}", problems.join("\n  - "))]
    MysqlPrerequisites {
        server: String,
        problems: Vec<String>,
    },

    /// A setting that cannot be used.
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },

    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),

    /// The replication slot is gone or unusable: changes may be missing.
    #[error("replication slot {slot}: {detail}")]
    SlotGone { slot: String, detail: String },

    /// The server sent something the source cannot follow.
    #[error("replication protocol: {0}")]
    Protocol(String),

    /// A table's columns changed in a way the lake table cannot follow.
    #[error("table {table}: {reason}")]
    SchemaChange { table: String, reason: String },

    /// Copying a table for the initial snapshot failed.
    #[error("snapshot of {table}: {source}")]
    Snapshot {
        table: String,
        #[source]
        source: Box<Error>,
    },

    /// An unchanged TOAST value whose previous image is neither in the batch nor in the lake.
    #[error(
        "table {table}, column {column}: the update of key ({key}) left the value unchanged, \
         but the row is not in the lake table; set REPLICA IDENTITY FULL on the source table or \
         re-snapshot the lake table"
    )]
    ToastUnresolved {
        table: String,
        column: String,
        key: String,
    },

    /// Reading or writing a lake table failed.
    #[error("lake table {table}: {source}")]
    Lake {
        table: String,
        #[source]
        source: inlet_table::Error,
    },

    /// The configuration file is unusable.
    /// The built-in change generator cannot go on.
    #[error("datagen: {0}")]
    Datagen(String),

    #[error(transparent)]
    ConfigFile(#[from] inlet_config::Error),

    /// The source was stopped or closed.
    #[error("the source has stopped")]
    Stopped,
}

impl Error {
    pub(crate) fn postgres(context: String, source: tokio_postgres::Error) -> Self {
        Error::Postgres { context, source }
    }

    pub(crate) fn replication(context: &str, source: pgwire_replication::PgWireError) -> Self {
        Error::Replication {
            context: context.to_string(),
            source,
        }
    }

    pub(crate) fn lake(table: &inlet_table::Table, source: inlet_table::Error) -> Self {
        Error::Lake {
            table: table.storage().uri().to_string(),
            source,
        }
    }
}

/// `Insert message ('I')`, or `message with unknown tag 0x7a`.
fn pgoutput_label(tag: u8) -> String {
    match crate::postgres::pgoutput::message_name(tag) {
        Some(name) => format!("pgoutput {name} message ({:?})", char::from(tag)),
        None => format!("pgoutput message with unknown tag 0x{tag:02x}"),
    }
}

fn required_by(op: Option<&str>) -> String {
    op.map(|op| format!(" (required by op {op:?})"))
        .unwrap_or_default()
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|hint| format!("; {hint}")).unwrap_or_default()
}

fn op_hint(op: &str) -> &'static str {
    match op {
        "t" => " (truncate events are not supported yet)",
        "m" => " (logical decoding messages are not change events)",
        _ => " (expected c, r, u or d)",
    }
}

impl Error {
    /// The 1-based input line the error is about, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Io { line, .. }
            | Error::Malformed { line, .. }
            | Error::MissingField { line, .. }
            | Error::UnsupportedOp { line, .. }
            | Error::BadSchema { line, .. }
            | Error::UnsupportedType { line, .. }
            | Error::BadValue { line, .. }
            | Error::TypeConflict { line, .. }
            | Error::ReservedColumn { line, .. } => Some(*line),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_line_and_column() {
        let e = Error::TypeConflict {
            line: 7,
            column: "a".into(),
            first: "integer".into(),
            second: "string".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 7: column `a` is string here but was integer in earlier lines"
        );
        assert_eq!(e.line(), Some(7));

        let e = Error::MissingField {
            line: 3,
            field: "after".into(),
            op: Some("c".into()),
        };
        assert_eq!(
            e.to_string(),
            "line 3: `after` is missing or null (required by op \"c\")"
        );

        let e = Error::UnsupportedOp {
            line: 2,
            op: "t".into(),
        };
        assert!(e.to_string().contains("truncate"), "{e}");

        let e = Error::UnsupportedType {
            line: 1,
            column: "x".into(),
            type_name: "io.debezium.data.VariableScaleDecimal".into(),
            hint: Some("set decimal.handling.mode".into()),
        };
        assert_eq!(
            e.to_string(),
            "line 1: column `x` has unsupported type io.debezium.data.VariableScaleDecimal; set decimal.handling.mode"
        );
    }
}
