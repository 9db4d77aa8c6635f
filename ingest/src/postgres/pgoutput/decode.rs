//! Decoding one pgoutput protocol version 1 message from its bytes.

use bytes::Bytes;

use super::reader::Reader;
use super::{
    Begin, Commit, Delete, Insert, LogicalMessage, Message, OldTuple, Origin, Relation,
    RelationColumn, ReplicaIdentity, Truncate, TupleData, TupleValue, Type, Update,
    pg_timestamp_to_unix_micros,
};
use crate::error::{Error, Result};

/// Decodes one pgoutput message (protocol version 1): the payload of one XLogData frame, or
/// the `data` of one row of `pg_logical_slot_{peek,get}_binary_changes`.
///
/// The whole input must be one message: trailing bytes are an error. Values of tuples are
/// slices of `data`, not copies.
pub fn decode(data: Bytes) -> Result<Message> {
    let Some(&tag) = data.first() else {
        return Err(Error::PgOutputEmpty);
    };
    let mut r = Reader::new(&data, tag);
    let message = match tag {
        b'B' => Message::Begin(Begin {
            final_lsn: r.lsn("final LSN")?,
            commit_ts: timestamp(&mut r, "commit timestamp")?,
            xid: r.u32("xid")?,
        }),
        b'C' => Message::Commit(Commit {
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_ts: timestamp(&mut r, "commit timestamp")?,
        }),
        b'O' => Message::Origin(Origin {
            commit_lsn: r.lsn("origin commit LSN")?,
            name: r.cstr("origin name")?,
        }),
        b'R' => Message::Relation(relation(&mut r)?),
        b'Y' => Message::Type(Type {
            oid: r.u32("type OID")?,
            namespace: r.cstr("namespace")?,
            name: r.cstr("type name")?,
        }),
        b'I' => {
            let relation_oid = r.u32("relation OID")?;
            expect_marker(&mut r, b'N')?;
            Message::Insert(Insert {
                relation_oid,
                new: tuple(&mut r)?,
            })
        }
        b'U' => {
            let relation_oid = r.u32("relation OID")?;
            let offset = r.offset();
            let old = match r.u8("tuple marker")? {
                b'K' => Some(OldTuple::Key(tuple(&mut r)?)),
                b'O' => Some(OldTuple::Full(tuple(&mut r)?)),
                b'N' => None,
                other => return Err(bad_marker(&r, offset, other, "'K', 'O' or 'N'")),
            };
            if old.is_some() {
                expect_marker(&mut r, b'N')?;
            }
            Message::Update(Update {
                relation_oid,
                old,
                new: tuple(&mut r)?,
            })
        }
        b'D' => {
            let relation_oid = r.u32("relation OID")?;
            let offset = r.offset();
            let old = match r.u8("tuple marker")? {
                b'K' => OldTuple::Key(tuple(&mut r)?),
                b'O' => OldTuple::Full(tuple(&mut r)?),
                other => return Err(bad_marker(&r, offset, other, "'K' or 'O'")),
            };
            Message::Delete(Delete { relation_oid, old })
        }
        b'T' => Message::Truncate(truncate(&mut r)?),
        b'M' => {
            let flags = r.u8("flags")?;
            let lsn = r.lsn("message LSN")?;
            let prefix = r.cstr("prefix")?;
            let len = length(&mut r, "content length")?;
            Message::Logical(LogicalMessage {
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content: r.bytes(len, "content")?,
            })
        }
        _ => return Err(Error::PgOutputUnsupported { tag }),
    };
    r.finish()?;
    Ok(message)
}

/// A `TimestampTz` (µs since 2000-01-01) as µs since the Unix epoch.
fn timestamp(r: &mut Reader<'_>, field: &'static str) -> Result<i64> {
    let offset = r.offset();
    let pg = r.i64(field)?;
    pg_timestamp_to_unix_micros(pg)
        .ok_or_else(|| r.malformed(offset, format!("{field} {pg} is out of range")))
}

fn relation(r: &mut Reader<'_>) -> Result<Relation> {
    let oid = r.u32("relation OID")?;
    let namespace = r.cstr("namespace")?;
    let name = r.cstr("relation name")?;
    let offset = r.offset();
    let identity = r.u8("replica identity")?;
    let replica_identity = ReplicaIdentity::from_byte(identity).ok_or_else(|| {
        r.malformed(
            offset,
            format!(
                "unknown replica identity {:?} (expected 'd', 'n', 'f' or 'i')",
                char::from(identity)
            ),
        )
    })?;
    let count = count(r, "column count")?;
    // Each column takes at least 10 bytes: do not trust the count for the allocation.
    let mut columns = Vec::with_capacity(count.min(r.remaining() / 10));
    for _ in 0..count {
        columns.push(RelationColumn {
            flags: r.u8("column flags")?,
            name: r.cstr("column name")?,
            type_oid: r.u32("column type OID")?,
            type_modifier: r.i32("column type modifier")?,
        });
    }
    Ok(Relation {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

fn truncate(r: &mut Reader<'_>) -> Result<Truncate> {
    let offset = r.offset();
    let count = r.i32("relation count")?;
    let count = usize::try_from(count)
        .map_err(|_| r.malformed(offset, format!("negative relation count {count}")))?;
    let options = r.u8("options")?;
    let mut relation_oids = Vec::with_capacity(count.min(r.remaining() / 4));
    for _ in 0..count {
        relation_oids.push(r.u32("relation OID")?);
    }
    Ok(Truncate {
        options,
        relation_oids,
    })
}

/// TupleData: Int16 column count, then per column a kind byte and maybe a value.
fn tuple(r: &mut Reader<'_>) -> Result<TupleData> {
    let count = count(r, "tuple column count")?;
    // Each column takes at least 1 byte.
    let mut columns = Vec::with_capacity(count.min(r.remaining()));
    for _ in 0..count {
        let offset = r.offset();
        let value = match r.u8("column kind")? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::UnchangedToast,
            b't' => {
                let len = length(r, "text value length")?;
                TupleValue::Text(r.bytes(len, "text value")?)
            }
            b'b' => {
                let len = length(r, "binary value length")?;
                TupleValue::Binary(r.bytes(len, "binary value")?)
            }
            other => return Err(bad_marker(r, offset, other, "'n', 'u', 't' or 'b'")),
        };
        columns.push(value);
    }
    Ok(TupleData { columns })
}

/// An Int16 count that must not be negative.
fn count(r: &mut Reader<'_>, field: &'static str) -> Result<usize> {
    let offset = r.offset();
    let n = r.i16(field)?;
    usize::try_from(n).map_err(|_| r.malformed(offset, format!("negative {field} {n}")))
}

/// An Int32 byte length that must not be negative.
fn length(r: &mut Reader<'_>, field: &'static str) -> Result<usize> {
    let offset = r.offset();
    let n = r.i32(field)?;
    usize::try_from(n).map_err(|_| r.malformed(offset, format!("negative {field} {n}")))
}

fn expect_marker(r: &mut Reader<'_>, expected: u8) -> Result<()> {
    let offset = r.offset();
    match r.u8("tuple marker")? {
        b if b == expected => Ok(()),
        other => Err(bad_marker(
            r,
            offset,
            other,
            &format!("{:?}", char::from(expected)),
        )),
    }
}

fn bad_marker(r: &Reader<'_>, offset: usize, found: u8, expected: &str) -> Error {
    r.malformed(
        offset,
        format!(
            "unexpected byte {:?} (0x{found:02x}), expected {expected}",
            char::from(found)
        ),
    )
}
