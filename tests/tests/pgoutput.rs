//! pgoutput (protocol version 1) from a real PostgreSQL: a throwaway server makes a logical
//! slot see inserts, updates (TOAST left unchanged, key change, REPLICA IDENTITY FULL),
//! deletes, a schema change, truncates and logical messages; the raw messages are read with
//! `pg_logical_slot_peek_binary_changes` and every one is decoded by
//! `inlet_ingest::postgres::pgoutput`. Also checks the LSN semantics the source relies on:
//! the Commit row's `lsn` is the Commit's end LSN, and advancing the slot to it resumes with
//! the next transaction.

use std::collections::{BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use inlet_ingest::postgres::Lsn;
use inlet_ingest::postgres::pgoutput::{
    self, Begin, Commit, Message, OldTuple, Relation, ReplicaIdentity, TupleData, TupleValue,
};
use inlet_tests::harness::postgres::PostgresServer;
use tokio_postgres::Client;
use tokio_postgres::types::PgLsn;

const SCHEMA: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
    CREATE TABLE accounts (
        id bigint PRIMARY KEY, name text NOT NULL, mood mood, qty posint, price numeric(12,2));
    CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
    ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
    CREATE TABLE docs_full (id int PRIMARY KEY, title text, body text);
    ALTER TABLE docs_full ALTER COLUMN body SET STORAGE EXTERNAL;
    ALTER TABLE docs_full REPLICA IDENTITY FULL;
    CREATE TABLE unpublished (id int PRIMARY KEY);
    CREATE PUBLICATION pub FOR TABLE accounts, docs, docs_full;
";

const PEEK: &str =
    "SELECT lsn, lsn::text, xid::text, data FROM pg_logical_slot_peek_binary_changes(
    's', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub', 'messages', 'true')";

/// One row of the peek function, decoded.
#[derive(Debug)]
struct Row {
    /// The row's `lsn` column.
    lsn: Lsn,
    xid: u32,
    message: Message,
}

/// One decoded transaction: the rows between a Begin and its Commit.
#[derive(Debug)]
struct Txn {
    begin_row_lsn: Lsn,
    begin: Begin,
    commit_row_lsn: Lsn,
    commit: Commit,
    xid: u32,
    /// Everything between Begin and Commit, with the row's `lsn`.
    messages: Vec<(Lsn, Message)>,
}

impl Txn {
    /// The change messages (not Relation or Type).
    fn changes(&self) -> Vec<&Message> {
        self.messages
            .iter()
            .map(|(_, m)| m)
            .filter(|m| !matches!(m, Message::Relation(_) | Message::Type(_)))
            .collect()
    }

    fn relations(&self) -> Vec<&Relation> {
        self.messages
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Relation(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

/// What one slot peek returned: transactions (empty ones dropped) and the messages that came
/// outside any transaction (non-transactional logical messages), in order.
#[derive(Debug)]
struct Stream {
    txns: Vec<Txn>,
    standalone: Vec<(Lsn, u32, Message)>,
}

async fn peek(client: &Client, sql: &str) -> anyhow::Result<Stream> {
    let mut rows = Vec::new();
    for row in client.query(sql, &[]).await.context("peeking the slot")? {
        let lsn: PgLsn = row.try_get(0)?;
        let lsn_text: String = row.try_get(1)?;
        let xid: String = row.try_get(2)?;
        let data: Vec<u8> = row.try_get(3)?;
        let parsed: Lsn = lsn_text.parse()?;
        ensure!(
            parsed == Lsn(u64::from(lsn)),
            "{lsn_text} parsed as {parsed}"
        );
        ensure!(
            parsed.to_string() == lsn_text,
            "{parsed} printed differently"
        );
        let message = pgoutput::decode(Bytes::from(data.clone()))
            .with_context(|| format!("decoding the message at {lsn_text}: {data:02x?}"))?;
        rows.push(Row {
            lsn: parsed,
            xid: xid.parse()?,
            message,
        });
    }
    split(rows)
}

/// A transaction whose Commit has not been seen yet.
#[derive(Debug)]
struct Open {
    begin_row_lsn: Lsn,
    begin: Begin,
    xid: u32,
    messages: Vec<(Lsn, Message)>,
}

fn split(rows: Vec<Row>) -> anyhow::Result<Stream> {
    let mut stream = Stream {
        txns: Vec::new(),
        standalone: Vec::new(),
    };
    let mut open: Option<Open> = None;
    for row in rows {
        match (row.message, open.take()) {
            (Message::Begin(begin), None) => {
                open = Some(Open {
                    begin_row_lsn: row.lsn,
                    begin,
                    xid: row.xid,
                    messages: Vec::new(),
                });
            }
            (Message::Begin(_), Some(_)) => bail!("Begin at {} inside a transaction", row.lsn),
            (Message::Commit(commit), Some(txn)) => {
                ensure!(
                    row.xid == txn.xid,
                    "Commit of xid {} in xid {}",
                    row.xid,
                    txn.xid
                );
                if !txn.messages.is_empty() {
                    stream.txns.push(Txn {
                        begin_row_lsn: txn.begin_row_lsn,
                        begin: txn.begin,
                        commit_row_lsn: row.lsn,
                        commit,
                        xid: txn.xid,
                        messages: txn.messages,
                    });
                }
            }
            (Message::Commit(_), None) => bail!("Commit at {} outside a transaction", row.lsn),
            (message, Some(mut txn)) => {
                ensure!(
                    row.xid == txn.xid,
                    "message of xid {} in xid {}",
                    row.xid,
                    txn.xid
                );
                txn.messages.push((row.lsn, message));
                open = Some(txn);
            }
            (message, None) => stream.standalone.push((row.lsn, row.xid, message)),
        }
    }
    ensure!(open.is_none(), "the last transaction has no Commit");
    Ok(stream)
}

/// A tuple as strings: the text values, `NULL` and `UNCHANGED` (TOAST not sent).
fn texts(tuple: &TupleData) -> Vec<String> {
    tuple
        .columns
        .iter()
        .map(|v| match v {
            TupleValue::Null => "NULL".to_owned(),
            TupleValue::UnchangedToast => "UNCHANGED".to_owned(),
            TupleValue::Text(b) => String::from_utf8_lossy(b).into_owned(),
            TupleValue::Binary(b) => format!("{b:02x?}"),
        })
        .collect()
}

fn strs(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| (*s).to_owned()).collect()
}

async fn oid(client: &Client, expr: &str) -> anyhow::Result<u32> {
    let row = client
        .query_one(&format!("SELECT ({expr})::oid"), &[])
        .await?;
    Ok(row.try_get(0)?)
}

/// A ~16 kB text that PostgreSQL stores out of line (the column has STORAGE EXTERNAL).
fn big_text() -> String {
    (0..4000u32)
        .map(|i| format!("{:04x}", i * 7919 % 65521))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_a_real_slot() -> anyhow::Result<()> {
    let server = PostgresServer::start()?;
    let mut client = server.connect().await?;
    client.batch_execute(SCHEMA).await?;
    let accounts = oid(&client, "'accounts'::regclass").await?;
    let docs = oid(&client, "'docs'::regclass").await?;
    let docs_full = oid(&client, "'docs_full'::regclass").await?;
    let mood = oid(&client, "'mood'::regtype").await?;
    let posint = oid(&client, "'posint'::regtype").await?;
    client
        .execute(
            "SELECT pg_create_logical_replication_slot('s', 'pgoutput')",
            &[],
        )
        .await?;
    let big = big_text();

    // T1: inserts into every table, and a transactional logical message.
    let tx = client.transaction().await?;
    tx.batch_execute(
        "INSERT INTO accounts VALUES (1, 'ann', 'happy', 3, 12.50), (2, 'bob', NULL, NULL, NULL);
         INSERT INTO docs VALUES (1, 'short', 'x');
         INSERT INTO unpublished VALUES (1);",
    )
    .await?;
    tx.execute("INSERT INTO docs VALUES (2, 'long', $1)", &[&big])
        .await?;
    tx.execute("INSERT INTO docs_full VALUES (2, 'long', $1)", &[&big])
        .await?;
    let hello_lsn: PgLsn = tx
        .query_one(
            "SELECT pg_logical_emit_message(true, 'inlet', 'hello')",
            &[],
        )
        .await?
        .try_get(0)?;
    tx.commit().await?;
    let toast_bytes: i64 = client
        .query_one(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'docs'",
            &[],
        )
        .await?
        .try_get(0)?;
    ensure!(toast_bytes > 0, "docs.body was not TOASTed");

    // Outside any transaction: a non-transactional message.
    let now_lsn: PgLsn = client
        .query_one("SELECT pg_logical_emit_message(false, 'inlet', 'now')", &[])
        .await?
        .try_get(0)?;

    // T2: updates and deletes.
    client
        .batch_execute(
            "BEGIN;
             UPDATE docs SET title = 'long2' WHERE id = 2;
             UPDATE docs_full SET title = 'long2' WHERE id = 2;
             UPDATE accounts SET id = 10 WHERE id = 1;
             UPDATE accounts SET name = 'bobby' WHERE id = 2;
             DELETE FROM accounts WHERE id = 2;
             DELETE FROM docs_full WHERE id = 2;
             COMMIT;",
        )
        .await?;
    // A transaction that touches only an unpublished table.
    client
        .batch_execute("INSERT INTO unpublished VALUES (2)")
        .await?;
    // T3: a schema change, then a row with the new column.
    client
        .batch_execute(
            "BEGIN;
             ALTER TABLE accounts ADD COLUMN note text;
             INSERT INTO accounts (id, name, note) VALUES (3, 'cy', 'hi');
             COMMIT;",
        )
        .await?;
    // T4, T5: truncates.
    client
        .batch_execute("TRUNCATE accounts, docs RESTART IDENTITY")
        .await?;
    client.batch_execute("TRUNCATE docs_full CASCADE").await?;

    let stream = peek(&client, PEEK).await?;
    let txns = &stream.txns;
    assert_eq!(
        txns.len(),
        5,
        "transactions with published changes: {txns:#?}"
    );

    // --- LSNs and timestamps of every transaction.
    let now_us = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as i64;
    for (i, t) in txns.iter().enumerate() {
        assert_eq!(t.begin.final_lsn, t.commit.commit_lsn, "txn {i}");
        assert!(t.commit.commit_lsn < t.commit.end_lsn, "txn {i}");
        // The `lsn` column of the Commit row is the Commit's end LSN.
        assert_eq!(t.commit_row_lsn, t.commit.end_lsn, "txn {i}");
        assert_eq!(t.begin.xid, t.xid, "txn {i}");
        assert_eq!(t.begin.commit_ts, t.commit.commit_ts, "txn {i}");
        assert!(
            (t.commit.commit_ts - now_us).abs() < 600_000_000,
            "txn {i}: commit time {} µs is not near now ({now_us} µs)",
            t.commit.commit_ts
        );
        // Changes are at the start of their WAL record, logical messages at its end (which
        // can be where the commit record starts).
        for (lsn, m) in &t.messages {
            assert!(
                t.begin_row_lsn <= *lsn && *lsn <= t.commit.commit_lsn,
                "txn {i}: {m:?} at {lsn}"
            );
        }
        if let Some(prev) = i.checked_sub(1).map(|p| &txns[p]) {
            assert!(prev.commit.end_lsn < t.begin.final_lsn, "txn {i}");
            assert!(prev.commit.end_lsn < t.commit.end_lsn, "txn {i}");
            assert!(prev.commit.commit_ts <= t.commit.commit_ts, "txn {i}");
        }
    }

    // Relations as a cache by OID: every change refers to a relation sent before it, and the
    // unpublished table never appears.
    let mut cache: HashMap<u32, Relation> = HashMap::new();
    let mut types = HashMap::new();
    for t in txns {
        for (_, m) in &t.messages {
            let oid = match m {
                Message::Type(ty) => {
                    types.insert(ty.oid, ty.clone());
                    continue;
                }
                Message::Relation(r) => {
                    for c in &r.columns {
                        if c.type_oid >= 16384 {
                            assert!(types.contains_key(&c.type_oid), "no Type for {c:?}");
                        }
                    }
                    cache.insert(r.oid, r.clone());
                    continue;
                }
                Message::Insert(m) => m.relation_oid,
                Message::Update(m) => m.relation_oid,
                Message::Delete(m) => m.relation_oid,
                Message::Truncate(m) => {
                    for oid in &m.relation_oids {
                        assert!(cache.contains_key(oid), "{m:?}");
                    }
                    continue;
                }
                _ => continue,
            };
            assert!(
                cache.contains_key(&oid),
                "change before its Relation: {m:?}"
            );
        }
    }
    assert!(!cache.values().any(|r| r.name == "unpublished"));

    // --- T1: Types, Relations, inserts, the transactional message.
    let t1 = &txns[0];
    let kinds: String = t1.messages.iter().map(|(_, m)| m.tag() as char).collect();
    assert_eq!(kinds, "YYRIIRIIRIM");
    let Message::Type(ty) = &t1.messages[0].1 else {
        bail!("not a Type: {:?}", t1.messages[0]);
    };
    assert_eq!(
        (ty.oid, ty.namespace.as_str(), ty.name.as_str()),
        (mood, "public", "mood")
    );
    let Message::Type(ty) = &t1.messages[1].1 else {
        bail!("not a Type: {:?}", t1.messages[1]);
    };
    // A domain's Type message: the domain's OID, the base type's name ("" = pg_catalog).
    assert_eq!(
        (ty.oid, ty.namespace.as_str(), ty.name.as_str()),
        (posint, "", "int4")
    );

    let relations = t1.relations();
    let rel = relations[0];
    assert_eq!(
        (rel.oid, rel.namespace.as_str(), rel.name.as_str()),
        (accounts, "public", "accounts")
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
            ("mood", false, mood, -1),
            ("qty", false, posint, -1),
            ("price", false, 1700, (12 << 16 | 2) + 4),
        ]
    );
    assert_eq!(
        (relations[1].oid, relations[1].name.as_str()),
        (docs, "docs")
    );
    assert_eq!(relations[1].replica_identity, ReplicaIdentity::Default);
    let key_names: Vec<_> = relations[1]
        .key_columns()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(key_names, ["id"]);
    assert_eq!(
        (relations[2].oid, relations[2].name.as_str()),
        (docs_full, "docs_full")
    );
    assert_eq!(relations[2].replica_identity, ReplicaIdentity::Full);

    let inserts: Vec<_> = t1
        .changes()
        .into_iter()
        .filter_map(|m| match m {
            Message::Insert(i) => Some((i.relation_oid, texts(&i.new))),
            _ => None,
        })
        .collect();
    assert_eq!(
        inserts,
        [
            (accounts, strs(&["1", "ann", "happy", "3", "12.50"])),
            (accounts, strs(&["2", "bob", "NULL", "NULL", "NULL"])),
            (docs, strs(&["1", "short", "x"])),
            (docs, strs(&["2", "long", &big])),
            (docs_full, strs(&["2", "long", &big])),
        ]
    );
    let Some((_, Message::Logical(hello))) = t1.messages.last() else {
        bail!("T1 does not end with a logical message");
    };
    assert!(hello.transactional);
    assert_eq!(hello.prefix, "inlet");
    assert_eq!(&hello.content[..], b"hello");
    assert_eq!(hello.lsn, Lsn(u64::from(hello_lsn)));

    // --- The non-transactional message, between T1 and T2, with xid 0.
    let [(row_lsn, xid, Message::Logical(now))] = &stream.standalone[..] else {
        bail!("expected one standalone message: {:?}", stream.standalone);
    };
    assert!(!now.transactional);
    assert_eq!(
        (now.prefix.as_str(), &now.content[..]),
        ("inlet", &b"now"[..])
    );
    assert_eq!(now.lsn, Lsn(u64::from(now_lsn)));
    assert_eq!(*row_lsn, now.lsn);
    assert_eq!(*xid, 0);
    assert!(txns[0].commit.end_lsn <= now.lsn && now.lsn < txns[1].begin.final_lsn);

    // --- T2: updates and deletes.
    let changes = txns[1].changes();
    assert_eq!(changes.len(), 6, "{changes:#?}");
    let Message::Update(u) = changes[0] else {
        bail!("not an update: {:?}", changes[0]);
    };
    // Default identity, key unchanged: no old tuple; the TOASTed body is not sent.
    assert_eq!(u.relation_oid, docs);
    assert_eq!(u.old, None);
    assert_eq!(texts(&u.new), strs(&["2", "long2", "UNCHANGED"]));
    let Message::Update(u) = changes[1] else {
        bail!("not an update: {:?}", changes[1]);
    };
    // FULL identity: the whole old row, TOASTed value included; still `u` in the new tuple.
    assert_eq!(u.relation_oid, docs_full);
    let Some(OldTuple::Full(old)) = &u.old else {
        bail!("no full old row: {u:?}");
    };
    assert_eq!(texts(old), strs(&["2", "long", &big]));
    assert_eq!(texts(&u.new), strs(&["2", "long2", "UNCHANGED"]));
    let Message::Update(u) = changes[2] else {
        bail!("not an update: {:?}", changes[2]);
    };
    // Key change: the old key in a K tuple, the other columns null.
    assert_eq!(u.relation_oid, accounts);
    let Some(OldTuple::Key(key)) = &u.old else {
        bail!("no old key: {u:?}");
    };
    assert_eq!(texts(key), strs(&["1", "NULL", "NULL", "NULL", "NULL"]));
    assert_eq!(texts(&u.new), strs(&["10", "ann", "happy", "3", "12.50"]));
    let Message::Update(u) = changes[3] else {
        bail!("not an update: {:?}", changes[3]);
    };
    assert_eq!(u.old, None);
    assert_eq!(texts(&u.new), strs(&["2", "bobby", "NULL", "NULL", "NULL"]));
    let Message::Delete(d) = changes[4] else {
        bail!("not a delete: {:?}", changes[4]);
    };
    assert_eq!(d.relation_oid, accounts);
    assert!(matches!(d.old, OldTuple::Key(_)));
    assert_eq!(
        texts(d.old.tuple()),
        strs(&["2", "NULL", "NULL", "NULL", "NULL"])
    );
    let Message::Delete(d) = changes[5] else {
        bail!("not a delete: {:?}", changes[5]);
    };
    assert_eq!(d.relation_oid, docs_full);
    assert!(matches!(d.old, OldTuple::Full(_)));
    assert_eq!(texts(d.old.tuple()), strs(&["2", "long2", &big]));

    // --- T3: the schema change sends a new Relation before the insert.
    let t3 = &txns[2];
    let rel = t3
        .relations()
        .into_iter()
        .rfind(|r| r.oid == accounts)
        .context("no new Relation for accounts after ALTER TABLE")?;
    let names: Vec<_> = rel.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "mood", "qty", "price", "note"]);
    let changes = t3.changes();
    let [Message::Insert(i)] = &changes[..] else {
        bail!("expected one insert: {changes:?}");
    };
    assert_eq!(
        texts(&i.new),
        strs(&["3", "cy", "NULL", "NULL", "NULL", "hi"])
    );

    // --- T4, T5: truncates.
    let changes = txns[3].changes();
    let [Message::Truncate(t)] = &changes[..] else {
        bail!("expected one truncate: {changes:?}");
    };
    assert!(t.restart_identity() && !t.cascade());
    assert_eq!(
        t.relation_oids.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([accounts, docs])
    );
    let changes = txns[4].changes();
    let [Message::Truncate(t)] = &changes[..] else {
        bail!("expected one truncate: {changes:?}");
    };
    assert!(t.cascade() && !t.restart_identity());
    assert_eq!(t.relation_oids, [docs_full]);

    // --- Acknowledging T2's end LSN: the slot resumes with T3, nothing earlier again.
    let t2_end = PgLsn::from(txns[1].commit.end_lsn.0);
    client
        .execute("SELECT pg_replication_slot_advance('s', $1)", &[&t2_end])
        .await?;
    let confirmed: String = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 's'",
            &[],
        )
        .await?
        .try_get(0)?;
    assert_eq!(confirmed, txns[1].commit.end_lsn.to_string());
    let rest = peek(&client, PEEK).await?;
    assert!(rest.standalone.is_empty(), "{:?}", rest.standalone);
    let ends: Vec<Lsn> = rest.txns.iter().map(|t| t.commit.end_lsn).collect();
    let expected: Vec<Lsn> = txns[2..].iter().map(|t| t.commit.end_lsn).collect();
    assert_eq!(ends, expected);

    // --- The same insert with `binary 'true'`: values in the types' send format.
    let binary = peek(
        &client,
        &PEEK.replace("'messages', 'true'", "'messages', 'true', 'binary', 'true'"),
    )
    .await?;
    let changes = binary.txns[0].changes();
    let [Message::Insert(i)] = &changes[..] else {
        bail!("expected one insert: {changes:?}");
    };
    let bin = |b: &[u8]| TupleValue::Binary(Bytes::copy_from_slice(b));
    assert_eq!(i.new.columns[0], bin(&3i64.to_be_bytes()));
    assert_eq!(i.new.columns[1], bin(b"cy"));
    assert_eq!(i.new.columns[2], TupleValue::Null);
    assert_eq!(i.new.columns[5], bin(b"hi"));

    drop(client);
    drop(server);
    Ok(())
}
