//! Golden messages captured from PostgreSQL 15.18 with
//! `pg_logical_slot_peek_binary_changes(slot, NULL, NULL, 'proto_version', '1',
//! 'publication_names', 'pub', 'messages', 'true')` (and `'binary', 'true'` for the binary
//! insert), over these tables (OIDs in parentheses):
//!
//! ```sql
//! CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');                 -- 16385
//! CREATE DOMAIN posint AS integer CHECK (VALUE > 0);                -- 16392
//! CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, -- 16394
//!     mood mood, qty posint, price numeric(12,2));
//! CREATE TABLE docs (id int PRIMARY KEY, title text, body text);     -- 16401
//! CREATE TABLE docs_full (id int PRIMARY KEY, title text, body text) -- 16408
//!     ; ALTER TABLE docs_full REPLICA IDENTITY FULL;
//! ```

use super::*;
use crate::error::Error;

const BEGIN: &str = "42000000000153d7c0000303c292618f09000002dd";
const COMMIT: &str = "4300000000000153d7c0000000000153d7f0000303c292618f09";
const ORIGIN: &str = "4f0000000000abcdef6e6f64653100";
const TYPE_MOOD: &str = "59000040017075626c6963006d6f6f6400";
const TYPE_POSINT: &str = "590000400800696e743400";
const RELATION_ACCOUNTS: &str = "520000400a7075626c6963006163636f756e747300640005016964000000\
    0014ffffffff006e616d650000000019ffffffff006d6f6f640000004001ffffffff00717479000000400\
    8ffffffff00707269636500000006a4000c0006";
const RELATION_DOCS_FULL: &str = "52000040187075626c696300646f63735f66756c6c0066000301696400\
    00000017ffffffff017469746c650000000019ffffffff01626f64790000000019ffffffff";
/// `INSERT INTO accounts VALUES (1, 'ann', 'happy', 3, 12.50)`
const INSERT_ANN: &str = "490000400a4e00057400000001317400000003616e6e7400000005686170707974\
    0000000133740000000531322e3530";
/// `INSERT INTO accounts VALUES (2, 'bob', NULL, NULL, NULL)`
const INSERT_BOB: &str = "490000400a4e00057400000001327400000003626f626e6e6e";
/// `INSERT INTO accounts VALUES (7, 'org', 'ok', 1, 0.5)` with `binary 'true'`
const INSERT_BINARY: &str = "490000400a4e00056200000008000000000000000762000000036f72676200\
    0000026f6b620000000400000001620000000a0001ffff000000021388";
/// `UPDATE docs SET title = 'long2' WHERE id = 2` (body is TOASTed)
const UPDATE_TOAST: &str = "55000040114e000374000000013274000000056c6f6e673275";
/// `UPDATE accounts SET id = 10 WHERE id = 1`
const UPDATE_KEY: &str = "550000400a4b00057400000001316e6e6e6e4e00057400000002313074000000\
    03616e6e74000000056861707079740000000133740000000531322e3530";
/// `UPDATE accounts SET name = 'bobby' WHERE id = 2`
const UPDATE_PLAIN: &str = "550000400a4e00057400000001327400000005626f6262796e6e6e";
/// `UPDATE docs_full SET title = 'c' WHERE id = 3` (old row 3, 'a', 'b')
const UPDATE_FULL: &str = "55000040184f00037400000001337400000001617400000001624e00037400000\
    00133740000000163740000000162";
/// `DELETE FROM accounts WHERE id = 2`
const DELETE_KEY: &str = "440000400a4b00057400000001326e6e6e6e";
/// `DELETE FROM docs_full WHERE id = 3`
const DELETE_FULL: &str = "44000040184f0003740000000133740000000163740000000162";
/// `TRUNCATE accounts, docs RESTART IDENTITY`
const TRUNCATE_RESTART: &str = "5400000002020000400a00004011";
/// `TRUNCATE docs_full CASCADE`
const TRUNCATE_CASCADE: &str = "54000000010100004018";
/// `pg_logical_emit_message(true, 'inlet', 'hello')`
const MESSAGE_TX: &str = "4d01000000000153d7c0696e6c6574000000000568656c6c6f";
/// `pg_logical_emit_message(false, 'inlet', 'now')`
const MESSAGE_NON_TX: &str = "4d00000000000153d830696e6c657400000000036e6f77";

const GOLDEN: &[&str] = &[
    BEGIN,
    COMMIT,
    ORIGIN,
    TYPE_MOOD,
    TYPE_POSINT,
    RELATION_ACCOUNTS,
    RELATION_DOCS_FULL,
    INSERT_ANN,
    INSERT_BOB,
    INSERT_BINARY,
    UPDATE_TOAST,
    UPDATE_KEY,
    UPDATE_PLAIN,
    UPDATE_FULL,
    DELETE_KEY,
    DELETE_FULL,
    TRUNCATE_RESTART,
    TRUNCATE_CASCADE,
    MESSAGE_TX,
    MESSAGE_NON_TX,
];

const ACCOUNTS: u32 = 16394;
const DOCS: u32 = 16401;
const DOCS_FULL: u32 = 16408;

fn bytes(hex: &str) -> Bytes {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let nibble = |d: u8| match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => panic!("bad hex digit {d}"),
    };
    assert!(digits.len().is_multiple_of(2), "odd hex length");
    digits
        .chunks(2)
        .map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1]))
        .collect::<Vec<u8>>()
        .into()
}

fn msg(hex: &str) -> Message {
    decode(bytes(hex)).unwrap_or_else(|e| panic!("{hex}: {e}"))
}

fn text(s: &str) -> TupleValue {
    TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn tuple(values: Vec<TupleValue>) -> TupleData {
    TupleData { columns: values }
}

/// 2026-11-21 06:52:24.537865 UTC, the commit time of the captured transaction.
const COMMIT_TS: i64 = 1_795_243_944_537_865;

#[test]
fn begin_and_commit() {
    assert_eq!(
        msg(BEGIN),
        Message::Begin(Begin {
            final_lsn: "0/153D7C0".parse().unwrap(),
            commit_ts: COMMIT_TS,
            xid: 733,
        })
    );
    assert_eq!(
        msg(COMMIT),
        Message::Commit(Commit {
            flags: 0,
            commit_lsn: "0/153D7C0".parse().unwrap(),
            end_lsn: "0/153D7F0".parse().unwrap(),
            commit_ts: COMMIT_TS,
        })
    );
}

#[test]
fn origin() {
    assert_eq!(
        msg(ORIGIN),
        Message::Origin(Origin {
            commit_lsn: Lsn(0xABCDEF),
            name: "node1".into(),
        })
    );
}

#[test]
fn types_of_enum_and_domain() {
    let ty = |oid, namespace: &str, name: &str| {
        Message::Type(Type {
            oid,
            namespace: namespace.into(),
            name: name.into(),
        })
    };
    assert_eq!(msg(TYPE_MOOD), ty(16385, "public", "mood"));
    // A domain: its own OID, its base type's name, "" for pg_catalog.
    assert_eq!(msg(TYPE_POSINT), ty(16392, "", "int4"));
}

#[test]
fn relations() {
    let Message::Relation(rel) = msg(RELATION_ACCOUNTS) else {
        panic!("not a relation");
    };
    assert_eq!(
        (rel.oid, rel.namespace.as_str(), rel.name.as_str()),
        (ACCOUNTS, "public", "accounts")
    );
    assert_eq!(rel.replica_identity, ReplicaIdentity::Default);
    let columns: Vec<_> = rel
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.is_key(), c.type_oid, c.type_modifier))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", true, 20, -1),
            ("name", false, 25, -1),
            ("mood", false, 16385, -1),
            ("qty", false, 16392, -1),
            ("price", false, 1700, (12 << 16 | 2) + 4),
        ]
    );
    assert_eq!(rel.key_columns().count(), 1);

    let Message::Relation(rel) = msg(RELATION_DOCS_FULL) else {
        panic!("not a relation");
    };
    assert_eq!(rel.name, "docs_full");
    assert_eq!(rel.replica_identity, ReplicaIdentity::Full);
    // With FULL identity every column is flagged as key.
    assert!(rel.columns.iter().all(RelationColumn::is_key));
}

#[test]
fn inserts() {
    assert_eq!(
        msg(INSERT_ANN),
        Message::Insert(Insert {
            relation_oid: ACCOUNTS,
            new: tuple(vec![
                text("1"),
                text("ann"),
                text("happy"),
                text("3"),
                text("12.50")
            ]),
        })
    );
    let Message::Insert(insert) = msg(INSERT_BOB) else {
        panic!("not an insert");
    };
    assert_eq!(insert.new.columns[1].as_text(), Some("bob"));
    assert_eq!(insert.new.columns[2..], [const { TupleValue::Null }; 3]);

    let Message::Insert(insert) = msg(INSERT_BINARY) else {
        panic!("not an insert");
    };
    let bin = |b: &[u8]| TupleValue::Binary(Bytes::copy_from_slice(b));
    assert_eq!(insert.new.columns[0], bin(&7i64.to_be_bytes()));
    assert_eq!(insert.new.columns[1], bin(b"org"));
    assert_eq!(insert.new.columns[3], bin(&1i32.to_be_bytes()));
    assert_eq!(insert.new.columns[1].as_text(), None);
}

#[test]
fn updates() {
    assert_eq!(
        msg(UPDATE_TOAST),
        Message::Update(Update {
            relation_oid: DOCS,
            old: None,
            new: tuple(vec![text("2"), text("long2"), TupleValue::UnchangedToast]),
        })
    );
    let Message::Update(update) = msg(UPDATE_KEY) else {
        panic!("not an update");
    };
    let mut key = vec![text("1")];
    key.extend([const { TupleValue::Null }; 4]);
    assert_eq!(update.old, Some(OldTuple::Key(tuple(key))));
    assert_eq!(update.new.columns[0].as_text(), Some("10"));

    let Message::Update(update) = msg(UPDATE_PLAIN) else {
        panic!("not an update");
    };
    assert_eq!(update.old, None);
    assert_eq!(update.new.columns[1].as_text(), Some("bobby"));

    assert_eq!(
        msg(UPDATE_FULL),
        Message::Update(Update {
            relation_oid: DOCS_FULL,
            old: Some(OldTuple::Full(tuple(vec![text("3"), text("a"), text("b")]))),
            new: tuple(vec![text("3"), text("c"), text("b")]),
        })
    );
}

#[test]
fn deletes() {
    let mut key = vec![text("2")];
    key.extend([const { TupleValue::Null }; 4]);
    assert_eq!(
        msg(DELETE_KEY),
        Message::Delete(Delete {
            relation_oid: ACCOUNTS,
            old: OldTuple::Key(tuple(key)),
        })
    );
    let Message::Delete(delete) = msg(DELETE_FULL) else {
        panic!("not a delete");
    };
    assert!(matches!(delete.old, OldTuple::Full(_)));
    assert_eq!(delete.old.tuple().columns[1].as_text(), Some("c"));
}

#[test]
fn truncates() {
    let Message::Truncate(t) = msg(TRUNCATE_RESTART) else {
        panic!("not a truncate");
    };
    assert_eq!(t.relation_oids, [ACCOUNTS, DOCS]);
    assert!(t.restart_identity() && !t.cascade());
    let Message::Truncate(t) = msg(TRUNCATE_CASCADE) else {
        panic!("not a truncate");
    };
    assert_eq!(t.relation_oids, [DOCS_FULL]);
    assert!(t.cascade() && !t.restart_identity());
}

#[test]
fn logical_messages() {
    assert_eq!(
        msg(MESSAGE_TX),
        Message::Logical(LogicalMessage {
            transactional: true,
            lsn: Lsn(0x153_D7C0),
            prefix: "inlet".into(),
            content: Bytes::from_static(b"hello"),
        })
    );
    let Message::Logical(m) = msg(MESSAGE_NON_TX) else {
        panic!("not a message");
    };
    assert!(!m.transactional);
    assert_eq!(&m.content[..], b"now");
}

#[test]
fn tag_matches_first_byte() {
    for hex in GOLDEN {
        let data = bytes(hex);
        assert_eq!(msg(hex).tag(), data[0], "{hex}");
        assert!(message_name(data[0]).is_some());
    }
}

#[test]
fn every_truncation_is_an_error_at_or_before_the_cut() {
    for hex in GOLDEN {
        let data = bytes(hex);
        for len in 0..data.len() {
            match decode(data.slice(..len)) {
                Err(Error::PgOutputEmpty) => assert_eq!(len, 0),
                Err(Error::PgOutputTruncated { tag, offset, .. }) => {
                    assert_eq!(tag, data[0]);
                    assert!(offset <= len, "{hex}[..{len}]: offset {offset}");
                }
                other => panic!("{hex}[..{len}]: expected a truncation error, got {other:?}"),
            }
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut data = bytes(COMMIT).to_vec();
    data.push(0);
    let err = decode(data.into()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput Commit message ('C'): byte 26: 1 unexpected trailing byte(s)"
    );
}

#[test]
fn errors_name_tag_and_offset() {
    let err = decode(bytes(&INSERT_ANN[..20])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput Insert message ('I'): truncated at byte 9: text value length is incomplete"
    );
    // A bad column kind in the second column of the new tuple.
    let mut data = bytes(INSERT_BOB).to_vec();
    data[14] = b'x';
    let err = decode(data.into()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput Insert message ('I'): byte 14: unexpected byte 'x' (0x78), expected 'n', 'u', 't' or 'b'"
    );
    let err = decode(Bytes::from_static(b"S\0\0\0\x01\x01")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput Stream Start message ('S'): not supported (only pgoutput protocol version 1 is decoded)"
    );
    let err = decode(Bytes::from_static(b"z")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput message with unknown tag 0x7a: not supported (only pgoutput protocol version 1 is decoded)"
    );
    assert_eq!(
        decode(Bytes::new()).unwrap_err().to_string(),
        "empty pgoutput message"
    );
    // A negative length must not be taken as a huge one.
    let err = decode(Bytes::from_static(b"I\0\0\0\x01N\0\x01t\xff\xff\xff\xff")).unwrap_err();
    assert!(
        matches!(err, Error::PgOutputMalformed { offset: 9, .. }),
        "{err}"
    );
    // A huge column count on a short message: an error, not a huge allocation.
    let err = decode(Bytes::from_static(b"I\0\0\0\x01N\x7f\xff")).unwrap_err();
    assert!(
        matches!(err, Error::PgOutputTruncated { offset: 8, .. }),
        "{err}"
    );
    let err = decode(Bytes::from_static(b"Y\0\0\0\x01\xff\0int\0")).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn timestamps_convert_to_unix_micros() {
    assert_eq!(pg_timestamp_to_unix_micros(0), Some(PG_EPOCH_UNIX_MICROS));
    assert_eq!(pg_timestamp_to_unix_micros(i64::MAX), None);
    let mut data = bytes(BEGIN).to_vec();
    data[9..17].copy_from_slice(&i64::MAX.to_be_bytes());
    let err = decode(data.into()).unwrap_err();
    assert!(
        matches!(err, Error::PgOutputMalformed { offset: 9, .. }),
        "{err}"
    );
}

/// xorshift64*: a small deterministic generator, so this test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_damage_never_panics() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("random_damage_never_panics seed: {seed}");
    let mut rng = Rng(seed);
    let golden: Vec<Bytes> = GOLDEN.iter().map(|hex| bytes(hex)).collect();
    for _ in 0..20_000 {
        let mut data = golden[rng.below(golden.len())].to_vec();
        for _ in 0..=rng.below(3) {
            match rng.below(4) {
                0 => {
                    let i = rng.below(data.len());
                    data[i] = rng.next() as u8;
                }
                1 => {
                    let i = rng.below(data.len());
                    data[i] ^= 0x80;
                }
                2 => data.truncate(rng.below(data.len() + 1)),
                _ => {
                    let i = rng.below(data.len() + 1);
                    data.insert(i, rng.next() as u8);
                }
            }
            if data.is_empty() {
                break;
            }
        }
        // Either outcome is fine; a panic or a huge allocation is not.
        let _ = decode(data.into());
    }
    for _ in 0..5_000 {
        let len = rng.below(40);
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(first) = data.first_mut() {
            *first = b"BCORYIUDTM"[rng.below(10)];
        }
        let _ = decode(data.into());
    }
}
