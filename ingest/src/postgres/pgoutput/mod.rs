//! The messages of PostgreSQL's `pgoutput` logical decoding plugin, protocol version 1, and
//! a pure decoder for them: [`decode`] turns the payload of one XLogData frame (or the `data`
//! column of one `pg_logical_slot_peek_binary_changes` row) into a [`Message`].
//!
//! Format: <https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html>.
//! Integers are big-endian, strings NUL-terminated. The decoder never panics: truncated or
//! malformed input is an [`Error`](crate::Error) naming the message tag and the byte offset.
//!
//! # One transaction on the wire
//!
//! ```text
//! B Begin(final_lsn, commit_ts, xid)
//!   [O Origin]                 only for changes replayed from another node
//!   [Y Type]* [R Relation]     before the first change of a relation in a session, and again
//!                              after its schema changes: cache by OID, treat as a barrier
//!   I Insert | U Update | D Delete | T Truncate | M Message(transactional)
//! C Commit(commit_lsn, end_lsn, commit_ts)
//! ```
//!
//! A non-transactional [`LogicalMessage`] arrives on its own, outside Begin/Commit.
//!
//! # LSNs
//!
//! [`Begin::final_lsn`] equals [`Commit::commit_lsn`]: the start of the commit record.
//! [`Commit::end_lsn`] is the end of that record; it is the position to store as a checkpoint
//! and to acknowledge once the transaction is durable downstream (a slot restarted from it
//! resumes with the next transaction). The SQL slot functions report that same end LSN in the
//! `lsn` column of the Commit row.
//!
//! # Old and new tuples
//!
//! With `REPLICA IDENTITY DEFAULT` (primary key) an Update carries an old tuple only when the
//! key changed ([`OldTuple::Key`]: every column, the non-key ones as [`TupleValue::Null`]),
//! and a Delete carries only that key tuple. With `REPLICA IDENTITY FULL` both carry the whole
//! old row ([`OldTuple::Full`]). A TOASTed value the update did not touch is not sent:
//! [`TupleValue::UnchangedToast`] (in the new tuple of both identities).

mod decode;
mod reader;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use self::decode::decode;
use super::Lsn;

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// One pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `B`: a transaction starts.
    Begin(Begin),
    /// `C`: the transaction ends.
    Commit(Commit),
    /// `O`: the transaction was replayed from another node.
    Origin(Origin),
    /// `R`: the schema of a relation (table).
    Relation(Relation),
    /// `Y`: a non-built-in type used by the next Relation.
    Type(Type),
    /// `I`: a row was inserted.
    Insert(Insert),
    /// `U`: a row was updated.
    Update(Update),
    /// `D`: a row was deleted.
    Delete(Delete),
    /// `T`: relations were truncated.
    Truncate(Truncate),
    /// `M`: a message from `pg_logical_emit_message` (with the `messages 'true'` option).
    Logical(LogicalMessage),
}

impl Message {
    /// The message's tag byte (`b'B'`, `b'I'`, ...).
    pub fn tag(&self) -> u8 {
        match self {
            Message::Begin(_) => b'B',
            Message::Commit(_) => b'C',
            Message::Origin(_) => b'O',
            Message::Relation(_) => b'R',
            Message::Type(_) => b'Y',
            Message::Insert(_) => b'I',
            Message::Update(_) => b'U',
            Message::Delete(_) => b'D',
            Message::Truncate(_) => b'T',
            Message::Logical(_) => b'M',
        }
    }
}

/// The name of the pgoutput message with this tag, for any protocol version: `Insert` for
/// `b'I'`, `Stream Start` for `b'S'`; `None` for an unknown tag.
pub fn message_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        // Protocol version 2 (streamed transactions).
        b'S' => "Stream Start",
        b'E' => "Stream Stop",
        b'c' => "Stream Commit",
        b'A' => "Stream Abort",
        // Protocol version 3 (two-phase commit).
        b'b' => "Begin Prepare",
        b'P' => "Prepare",
        b'K' => "Commit Prepared",
        b'r' => "Rollback Prepared",
        b'p' => "Stream Prepare",
        _ => return None,
    })
}

/// `B`: the start of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// The start of the transaction's commit record (equals [`Commit::commit_lsn`]).
    pub final_lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch (UTC).
    pub commit_ts: i64,
    /// The transaction id.
    pub xid: u32,
}

/// `C`: the end of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Unused by PostgreSQL so far (0).
    pub flags: u8,
    /// The start of the commit record.
    pub commit_lsn: Lsn,
    /// The end of the commit record: the position to acknowledge.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch (UTC).
    pub commit_ts: i64,
}

/// `O`: the origin of a transaction replayed from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The commit LSN on the origin server.
    pub commit_lsn: Lsn,
    /// The replication origin's name.
    pub name: String,
}

/// The replica identity of a relation: what the old tuple of Update and Delete holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `d`: the primary key columns.
    Default,
    /// `n`: nothing (updates and deletes fail on the source when published).
    Nothing,
    /// `f`: the whole row.
    Full,
    /// `i`: the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From `pg_class.relreplident`.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            _ => return None,
        })
    }
}

/// `R`: the schema of a relation, by OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    /// The schema name; empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    /// The published columns, in tuple order.
    pub columns: Vec<RelationColumn>,
}

impl Relation {
    /// The columns that are part of the replica identity key.
    pub fn key_columns(&self) -> impl Iterator<Item = &RelationColumn> {
        self.columns.iter().filter(|c| c.is_key())
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Bit 1 ([`RelationColumn::FLAG_KEY`]): part of the key.
    pub flags: u8,
    pub name: String,
    /// `pg_type.oid` of the column (a domain's own OID for a domain column).
    pub type_oid: u32,
    /// `atttypmod`, e.g. `(precision << 16 | scale) + 4` for `numeric`; -1 when none.
    pub type_modifier: i32,
}

impl RelationColumn {
    /// The flag bit of key columns.
    pub const FLAG_KEY: u8 = 1;

    /// Whether the column is part of the replica identity key.
    pub fn is_key(&self) -> bool {
        self.flags & Self::FLAG_KEY != 0
    }
}

/// `Y`: a non-built-in type. For a domain, PostgreSQL sends the domain's OID with the
/// namespace and name of its base type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type {
    pub oid: u32,
    /// The schema name; empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
}

/// `I`: an inserted row.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub relation_oid: u32,
    pub new: TupleData,
}

/// `U`: an updated row.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub relation_oid: u32,
    /// The key before the update (if it changed) or the whole old row (replica identity full).
    pub old: Option<OldTuple>,
    pub new: TupleData,
}

/// `D`: a deleted row.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub relation_oid: u32,
    pub old: OldTuple,
}

/// The old image of an updated or deleted row.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// `K`: the replica identity key columns; the other columns are [`TupleValue::Null`].
    Key(TupleData),
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full(TupleData),
}

impl OldTuple {
    pub fn tuple(&self) -> &TupleData {
        match self {
            OldTuple::Key(tuple) | OldTuple::Full(tuple) => tuple,
        }
    }
}

/// `T`: truncated relations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// Bits [`Truncate::CASCADE`] and [`Truncate::RESTART_IDENTITY`].
    pub options: u8,
    pub relation_oids: Vec<u32>,
}

impl Truncate {
    /// `TRUNCATE ... CASCADE`.
    pub const CASCADE: u8 = 1;
    /// `TRUNCATE ... RESTART IDENTITY`.
    pub const RESTART_IDENTITY: u8 = 2;

    pub fn cascade(&self) -> bool {
        self.options & Self::CASCADE != 0
    }

    pub fn restart_identity(&self) -> bool {
        self.options & Self::RESTART_IDENTITY != 0
    }
}

/// `M`: a logical decoding message from `pg_logical_emit_message(transactional, prefix,
/// content)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage {
    /// Sent inside its transaction (and only if it commits), or immediately on its own.
    pub transactional: bool,
    /// The LSN `pg_logical_emit_message` returned.
    pub lsn: Lsn,
    pub prefix: String,
    pub content: Bytes,
}

/// The column values of one row, in the order of the [`Relation`]'s columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TupleData {
    pub columns: Vec<TupleValue>,
}

/// One column value of a [`TupleData`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// `n`: NULL.
    Null,
    /// `u`: an unchanged TOASTed value, which is not sent.
    UnchangedToast,
    /// `t`: the value in the type's text output format (server encoding).
    Text(Bytes),
    /// `b`: the value in the type's binary send format (option `binary 'true'`).
    Binary(Bytes),
}

impl TupleValue {
    /// The text of a [`TupleValue::Text`] value, if it is valid UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            TupleValue::Text(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }
}

/// Microseconds since 2000-01-01 (PostgreSQL's `TimestampTz`) as microseconds since the Unix
/// epoch; `None` if that does not fit an `i64`.
pub fn pg_timestamp_to_unix_micros(pg_micros: i64) -> Option<i64> {
    pg_micros.checked_add(PG_EPOCH_UNIX_MICROS)
}
