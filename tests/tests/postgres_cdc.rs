//! PostgreSQL change capture into lake tables, against a throwaway server with
//! `wal_level=logical`: the snapshot and streaming of every mapped type, inserts, updates
//! (key changes, unchanged TOAST values under both replica identities) and deletes,
//! multi-table transactions, truncate, schema changes, restarts (every `sync` is a fresh
//! pipeline resuming from the lake tables' checkpoints), prerequisites, and a crash test that
//! SIGKILLs `inlet run` during a concurrent workload. Lake tables are compared with
//! `SELECT *` of their source tables, with our reader and with hudi-rs (PyPI `hudi`).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use arrow::array::{Array, AsArray};
use inlet_tests::canonical;
use inlet_tests::harness::cdc::{
    FENCE_DDL, config_text, expected_rows, fence, lake_batches, lake_rows, run_until,
    spawn_until_shutdown, wait_confirmed,
};
use inlet_tests::harness::postgres::PostgresServer;
use inlet_tests::harness::{inlet_bin, spawn_inlet};
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

/// Captures the source into the lake until everything committed so far is durable.
async fn sync(client: &Client, config: &str) -> anyhow::Result<inlet_ingest::RunSummary> {
    let target = fence(client).await?;
    run_until(config, target).await
}

/// The lake table of `schema.table` equals `SELECT *` of it (our reader and hudi-rs), with no
/// duplicate keys.
async fn assert_table_matches(
    client: &Client,
    lake: &Path,
    schema: &str,
    table: &str,
    key: &str,
) -> anyhow::Result<()> {
    let uri = lake
        .join(inlet_config::path_segment(schema))
        .join(inlet_config::path_segment(table))
        .display()
        .to_string();
    let (expected, columns) = expected_rows(client, schema, table).await?;
    common::assert_lake_equals(&uri, &columns, &expected, &format!("{schema}.{table}")).await?;
    // No key twice.
    let batches = lake_batches(&uri).await?;
    let mut seen = HashSet::new();
    for batch in &batches {
        let keys = batch.column_by_name(key).context("key column")?;
        let keys = arrow::compute::cast(keys, &arrow::datatypes::DataType::Utf8)?;
        for k in keys.as_string::<i32>().iter() {
            ensure!(
                seen.insert(k.map(str::to_string)),
                "{schema}.{table}: key {k:?} twice"
            );
        }
    }
    Ok(())
}

const TYPES_DDL: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
    CREATE DOMAIN code AS char(4);
    CREATE TYPE pair AS (a int, b text);
    CREATE TABLE types (
        id int8 PRIMARY KEY, b bool, i2 int2, i4 int4, f4 float4, f8 float8,
        n numeric(12,3), nu numeric, t text, vc varchar(10), c char(3), by bytea, d date,
        tm time, ts timestamp, tstz timestamptz, u uuid, j json, jb jsonb, m mood,
        ai int4[], at text[], an numeric(6,2)[], ad date[], ip inet,
        iv interval, ch \"char\", rg int4range, dp posint, dc code, pr pair, o oid, tt timetz);
";

/// Values at the edges of each type's range and format; binary (snapshot) and text (stream)
/// decoding must agree on all of them.
const TYPES_EDGE_ROW: &str = "INSERT INTO types (id, b, i2, i4, f4, f8, n, nu, t, vc, c, by, d,
    tm, ts, tstz, u, j, jb, m, ai, at, an, ad, ip, iv, ch, rg, dp, dc, pr, o, tt)
    VALUES ($1, false, -32768, -2147483648, '-Infinity', '4.9e-324', '-0.001', '1e-30', '',
    'Köln', 'a', '\\x', '300000-01-01', '24:00:00', '0044-03-15 12:00:00.000001 BC',
    '294000-06-30 23:59:59.5+00', '00000000-0000-0000-0000-000000000000', '[]',
    '{\"k\": \"ü\", \"n\": 1e400}', 'sad', '{}', '{\"\",NULL}', '{NULL}', '{4714-11-24 BC}', '::1',
    '-1 year 2 mons 3 days 04:05:06.7', (-23)::\"char\", '[1,5)', 7, 'ab', ROW(NULL, NULL),
    4294967295, '12:00:00+05:30')";

const TYPES_ROW: &str = "INSERT INTO types VALUES ($1, true, -2, 40000, 1.5, -2.25e100, 123456789.125,
    '3.14159265358979323846264338327950288', 'héllo\tworld\\', 'vc', 'ab', '\\x00ff10', '2024-02-29',
    '23:59:59.999999', '2001-02-03 04:05:06.789', '2001-02-03 04:05:06.789+02',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', '{\"b\": null}', 'happy',
    '{1,NULL,3}', '{\"x y\",\"q\\\"uote\",NULL}', '{1.50,-2.25}', '{2020-01-01}', '10.0.0.1/8')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_type_by_snapshot_and_stream() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client.batch_execute(TYPES_DDL).await?;
    client.batch_execute(FENCE_DDL).await?;
    client.execute(TYPES_ROW, &[&1i64]).await?;
    client
        .execute("INSERT INTO types (id) VALUES (2)", &[])
        .await?;
    client
        .execute(
            "INSERT INTO types (id, f8, d, n) VALUES (3, 'NaN', '1999-12-31', '-0.001')",
            &[],
        )
        .await?;
    client.execute(TYPES_EDGE_ROW, &[&5i64]).await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.*"], "");
    sync(&client, &config).await?;
    assert_table_matches(&client, lake.path(), "public", "types", "id").await?;

    // Streamed: the same values through pgoutput.
    client.execute(TYPES_ROW, &[&4i64]).await?;
    client.execute(TYPES_EDGE_ROW, &[&6i64]).await?;
    client
        .execute(
            "UPDATE types SET t = 'changed', ai = '{}' WHERE id = 1",
            &[],
        )
        .await?;
    client
        .execute("DELETE FROM types WHERE id = 2", &[])
        .await?;
    sync(&client, &config).await?;
    assert_table_matches(&client, lake.path(), "public", "types", "id").await?;

    // Spot checks of the Arrow values themselves.
    let uri = lake.path().join("public/types").display().to_string();
    let batches = lake_batches(&uri).await?;
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
    let schema = batch.schema();
    let ty = |c: &str| schema.field_with_name(c).map(|f| f.data_type().to_string());
    assert_eq!(ty("n")?, "Decimal128(12, 3)");
    assert_eq!(ty("nu")?, "Utf8");
    assert_eq!(ty("tstz")?, "Timestamp(µs, \"UTC\")");
    assert_eq!(ty("ts")?, "Timestamp(µs)");
    assert_eq!(ty("tm")?, "Int64");
    assert_eq!(ty("by")?, "Binary");
    assert!(ty("ai")?.starts_with("List("), "{}", ty("ai")?);
    assert!(ty("ai")?.contains("Int32"));
    assert_eq!(ty("ip")?, "Utf8");
    let ids = batch
        .column_by_name("id")
        .context("id")?
        .as_primitive::<arrow::datatypes::Int64Type>();
    let row = (0..batch.num_rows())
        .find(|&i| ids.value(i) == 4)
        .context("row 4")?;
    let tstz = batch.column_by_name("tstz").context("tstz")?;
    let tstz = tstz.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(tstz.value(row), 981_165_906_789_000);
    let op = batch
        .column_by_name("_cdc_op")
        .context("op")?
        .as_string::<i32>();
    assert_eq!(op.value(row), "c");
    Ok(())
}

const CHANGES_DDL: &str = "
    CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2));
    CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
    ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
    CREATE TABLE docs_full (id int PRIMARY KEY, title text, body text);
    ALTER TABLE docs_full ALTER COLUMN body SET STORAGE EXTERNAL;
    ALTER TABLE docs_full REPLICA IDENTITY FULL;
    CREATE TABLE ignored (id int PRIMARY KEY);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_toast_multi_table_truncate_and_restart() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client.batch_execute(CHANGES_DDL).await?;
    client.batch_execute(FENCE_DDL).await?;
    client
        .batch_execute(
            "INSERT INTO accounts SELECT g, 'owner' || g, g * 1.5 FROM generate_series(1, 50) g;
             INSERT INTO docs SELECT g, 'title' || g, repeat(md5(g::text), 400) FROM generate_series(1, 10) g;
             INSERT INTO docs_full SELECT id, title, body FROM docs;",
        )
        .await?;
    let lake = tempfile::tempdir()?;
    // docs and accounts are merge-on-read: unchanged values and truncates read through logs.
    let config = config_text(
        &pg,
        lake.path(),
        &["public.*"],
        "[tables.\"public.docs\"]\ntable_type = \"mor\"\n\n\
         [tables.\"public.accounts\"]\ntable_type = \"mor\"\nbuckets = 3\n",
    );
    let config = config.replace(
        "include = [\"public.*\"]",
        "include = [\"public.*\"]\nexclude = [\"public.ign*\"]",
    );
    sync(&client, &config).await?;
    ensure!(
        !lake.path().join("public/ignored").exists(),
        "excluded table was captured"
    );
    let props = std::fs::read_to_string(lake.path().join("public/docs/.hoodie/hoodie.properties"))?;
    ensure!(props.contains("MERGE_ON_READ"), "{props}");

    // Updates leaving the TOASTed body unchanged: alone, several times for one key in one
    // transaction, together with a key change, and under REPLICA IDENTITY FULL.
    client
        .batch_execute(
            "UPDATE docs SET title = 'once' WHERE id = 1;
             BEGIN;
               UPDATE docs SET title = 'twice-a' WHERE id = 2;
               UPDATE docs SET title = 'twice-b' WHERE id = 2;
               INSERT INTO docs VALUES (11, 'new', repeat('z', 9000));
               UPDATE docs SET title = 'new-renamed' WHERE id = 11;
               UPDATE docs SET id = 30, title = 'moved' WHERE id = 3;
               UPDATE docs SET title = 'moved-again' WHERE id = 30;
               UPDATE docs_full SET title = 'full' WHERE id = 1;
               UPDATE docs_full SET id = 31 WHERE id = 4;
               UPDATE accounts SET balance = balance + 1 WHERE id <= 10;
               DELETE FROM accounts WHERE id BETWEEN 11 AND 15;
               UPDATE accounts SET id = id + 1000 WHERE id = 16;
             COMMIT;
             DELETE FROM docs WHERE id = 5;
             DELETE FROM docs_full WHERE id = 5;
             INSERT INTO accounts VALUES (11, 'back', 0);",
        )
        .await?;
    sync(&client, &config).await?;
    for (table, key) in [("accounts", "id"), ("docs", "id"), ("docs_full", "id")] {
        assert_table_matches(&client, lake.path(), "public", table, key).await?;
    }
    // Nothing changed in between: a restart skips what the tables already have.
    let summary = sync(&client, &config).await?;
    ensure!(
        summary.rows <= 1,
        "restart re-applied {} rows",
        summary.rows
    );

    // Truncate: the table empties in one commit; rows inserted after it in the same
    // transaction stay.
    client
        .batch_execute(
            "BEGIN; UPDATE accounts SET owner = 'gone' WHERE id = 1; TRUNCATE accounts;
             INSERT INTO accounts VALUES (7, 'after', 7); COMMIT;
             UPDATE docs SET title = 'after-truncate' WHERE id = 6;",
        )
        .await?;
    sync(&client, &config).await?;
    for (table, key) in [("accounts", "id"), ("docs", "id"), ("docs_full", "id")] {
        assert_table_matches(&client, lake.path(), "public", table, key).await?;
    }
    Ok(())
}

/// Partitioned lake tables keep one row per key: deletes under the default replica identity carry
/// only the key, updates move rows between partitions, keys change (also together with the
/// partition), partition values are non-ASCII or special — copy-on-write and merge-on-read,
/// default and full replica identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_lake_tables_keep_one_row_per_key() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE orders (id int8 PRIMARY KEY, region text, amount int4);
             CREATE TABLE orders_mor (id int8 PRIMARY KEY, region text, amount int4);
             CREATE TABLE orders_full (id int8 PRIMARY KEY, region text, amount int4);
             ALTER TABLE orders_full REPLICA IDENTITY FULL;",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let tables = ["orders", "orders_mor", "orders_full"];
    for t in tables {
        client
            .batch_execute(&format!(
                "INSERT INTO {t} SELECT g, (ARRAY['Köln','Zürich','%2F','a b',NULL])[g % 5 + 1], g
                 FROM generate_series(1, 60) g;"
            ))
            .await?;
    }
    let lake = tempfile::tempdir()?;
    let mut extra = String::new();
    for (t, kind) in [
        ("orders", "cow"),
        ("orders_mor", "mor"),
        ("orders_full", "cow"),
    ] {
        extra.push_str(&format!(
            "[tables.\"public.{t}\"]\ntable_type = \"{kind}\"\npartition_by = [\"region\"]\n\n"
        ));
    }
    let config = config_text(&pg, lake.path(), &["public.*"], &extra);
    sync(&client, &config).await?;
    for t in tables {
        assert_table_matches(&client, lake.path(), "public", t, "id").await?;
        client
            .batch_execute(&format!(
                "DELETE FROM {t} WHERE id BETWEEN 1 AND 5;
                 UPDATE {t} SET region = 'Köln' WHERE id BETWEEN 6 AND 15;
                 UPDATE {t} SET region = NULL WHERE id = 16;
                 UPDATE {t} SET id = id + 100 WHERE id BETWEEN 17 AND 20;
                 UPDATE {t} SET id = id + 200, region = '#' WHERE id BETWEEN 21 AND 25;
                 BEGIN;
                   UPDATE {t} SET region = 'x' WHERE id = 26;
                   UPDATE {t} SET region = 'y' WHERE id = 26;
                   DELETE FROM {t} WHERE id = 27;
                   INSERT INTO {t} VALUES (27, 'z', 0);
                 COMMIT;"
            ))
            .await?;
    }
    sync(&client, &config).await?;
    for t in tables {
        assert_table_matches(&client, lake.path(), "public", t, "id").await?;
    }
    Ok(())
}

/// A table without a key is skipped (and reported), the others run; a keyless table with
/// REPLICA IDENTITY FULL and a configured key is captured by it (refused while no unique index
/// or `assume_unique_key` vouches for the key); hostile table names stay one directory inside
/// the lake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_tables_are_skipped_and_hostile_names_stay_inside_the_lake() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    let hostile = [
        "../../../x",
        "a/b",
        "zz/../customers",
        "Köln",
        ".hoodie",
        "100%",
    ];
    let mut ddl = String::from(
        "CREATE TABLE accounts (id int8 PRIMARY KEY, v text);
         CREATE TABLE \"odd columns\" (\"order id\" int8 PRIMARY KEY, \"a-b\" text,
             \"Köln\" float8, \"say \"\"hi\"\"\" bool, \"1st\" int4);
         INSERT INTO \"odd columns\" VALUES (1, 'x', 1.5, true, 10), (2, 'y', -0.0, NULL, 20);
         CREATE TABLE history (a int4, b text);
         CREATE TABLE pairs (a int4 NOT NULL, b text NOT NULL, v text);
         ALTER TABLE pairs REPLICA IDENTITY FULL;",
    );
    for (i, name) in hostile.iter().enumerate() {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        ddl.push_str(&format!(
            "CREATE TABLE {quoted} (id int8 PRIMARY KEY, v text);
             INSERT INTO {quoted} VALUES ({i}, 'first');"
        ));
    }
    client.batch_execute(&ddl).await?;
    client.batch_execute(FENCE_DDL).await?;
    client
        .batch_execute(
            "INSERT INTO accounts VALUES (1, 'a'), (2, 'b');
             INSERT INTO history VALUES (1, 'x');
             INSERT INTO pairs VALUES (1, 'x', 'one'), (1, 'y', 'two');",
        )
        .await?;
    let outside = tempfile::tempdir()?;
    let lake_dir = outside.path().join("deep/down/lake");
    std::fs::create_dir_all(&lake_dir)?;
    // A configured key that no unique index backs would merge rows with equal keys: refused,
    // before any slot exists, unless the operator vouches for it.
    let bare = "[tables.\"public.pairs\"]\nkey = [\"a\", \"b\"]\n";
    let refused = sync(&client, &config_text(&pg, &lake_dir, &["public.*"], bare))
        .await
        .expect_err("a key no unique index backs");
    let message = format!("{refused:#}");
    ensure!(
        message.contains("no unique index") && message.contains("assume_unique_key = true"),
        "{message}"
    );
    let slots: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await?
        .get(0);
    ensure!(slots == 0, "a slot was created before the refusal");
    let extra = format!("{bare}assume_unique_key = true\n");
    let config = config_text(&pg, &lake_dir, &["public.*"], &extra);
    let summary = sync(&client, &config).await?;
    ensure!(
        summary.skipped.len() == 1 && summary.skipped[0].0.name == "history",
        "{:?}",
        summary.skipped
    );
    ensure!(
        summary.skipped[0].1.contains("no primary key"),
        "{:?}",
        summary.skipped
    );
    client
        .batch_execute(
            "UPDATE accounts SET v = 'B' WHERE id = 2;
             INSERT INTO history VALUES (2, 'y');
             UPDATE pairs SET v = 'TWO' WHERE b = 'y';
             DELETE FROM pairs WHERE b = 'x';
             UPDATE pairs SET b = 'z' WHERE b = 'y';
             UPDATE \"odd columns\" SET \"a-b\" = 'Y' WHERE \"order id\" = 2;
             DELETE FROM \"odd columns\" WHERE \"order id\" = 1;
             INSERT INTO \"odd columns\" VALUES (3, 'z', 5e-324, false, 30);",
        )
        .await?;
    for name in hostile {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("UPDATE {quoted} SET v = 'second'"))
            .await?;
    }
    sync(&client, &config).await?;
    assert_table_matches(&client, &lake_dir, "public", "accounts", "id").await?;
    assert_table_matches(&client, &lake_dir, "public", "odd columns", "order id").await?;
    assert_table_matches(&client, &lake_dir, "public", "pairs", "a").await?;
    for name in hostile {
        assert_table_matches(&client, &lake_dir, "public", name, "id").await?;
    }
    ensure!(
        !lake_dir.join("public/history").exists(),
        "the skipped table was written"
    );
    // Nothing was written outside the lake: only deep/down/lake exists under the temp dir.
    let mut found = Vec::new();
    let mut stack = vec![outside.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if !path.starts_with(&lake_dir) && !lake_dir.starts_with(&path) {
                found.push(path.display().to_string());
            }
            if path.is_dir() && !path.starts_with(&lake_dir) {
                stack.push(path);
            }
        }
    }
    ensure!(found.is_empty(), "written outside the lake: {found:?}");
    let public: Vec<String> = std::fs::read_dir(lake_dir.join("public"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // accounts, pairs, odd columns, the fence table and the hostile ones; not history.
    ensure!(public.len() == 4 + hostile.len(), "{public:?}");
    Ok(())
}

/// Changes of tables that are not captured do not make the slot retain WAL: between
/// transactions the server's end of WAL is acknowledged (the fence table itself is not captured
/// here, so the pipeline only catches up through that), and a fast shutdown of the server while
/// such changes stream is not held up; inlet then stops when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncaptured_changes_neither_retain_wal_nor_block_a_fast_shutdown() -> anyhow::Result<()> {
    let mut pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE captured (id int8 PRIMARY KEY, v text);
             CREATE TABLE churn (id int8, v text);
             INSERT INTO captured VALUES (1, 'a');",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.captured"], "");
    // First run: the snapshot, and the slot.
    sync(&client, &config).await?;
    for _ in 0..20 {
        client
            .batch_execute(
                "INSERT INTO churn SELECT g, md5(g::text) FROM generate_series(1, 5000) g",
            )
            .await?;
    }
    let target = fence(&client).await?;
    run_until(&config, target).await?;
    wait_confirmed(&client, "inlet", target, Duration::from_secs(10)).await?;
    assert_table_matches(&client, lake.path(), "public", "captured", "id").await?;

    // Streaming while uncaptured changes keep coming, then a fast shutdown of the server.
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pipeline = spawn_until_shutdown(&config, shutdown.clone());
    let churn = pg.connect().await?;
    let writer = tokio::spawn(async move {
        for _ in 0..10_000 {
            if churn
                .batch_execute(
                    "INSERT INTO churn SELECT g, md5(g::text) FROM generate_series(1, 2000) g",
                )
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let took = pg.fast_stop(Duration::from_secs(20))?;
    writer.abort();
    println!("fast shutdown took {took:?}");
    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !pipeline.is_finished() {
        ensure!(
            std::time::Instant::now() < deadline,
            "the pipeline did not stop within 20 s of being asked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = pipeline.join();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_mid_stream() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, qty int4, note text, gone text);
             CREATE TABLE other (id int PRIMARY KEY, v text);
             INSERT INTO items VALUES (1, 1, 'a', 'x'), (2, 2, 'b', 'y');",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.*"], "");
    sync(&client, &config).await?;
    client
        .batch_execute(
            "INSERT INTO items VALUES (3, 3, 'c', 'z');
             ALTER TABLE items ADD COLUMN price numeric(8,2);
             INSERT INTO items VALUES (4, 4, 'd', 'w', 9.99);
             ALTER TABLE items DROP COLUMN gone;
             ALTER TABLE items ALTER COLUMN qty TYPE int8;
             INSERT INTO items VALUES (5, 5000000000, 'e', 1.25);
             UPDATE items SET note = 'aa' WHERE id = 1;",
        )
        .await?;
    sync(&client, &config).await?;
    assert_table_matches(&client, lake.path(), "public", "items", "id").await?;
    let uri = lake.path().join("public/items").display().to_string();
    let batches = lake_batches(&uri).await?;
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
    let gone = batch
        .column_by_name("gone")
        .context("dropped column stays")?;
    ensure!(
        gone.null_count() == 2,
        "dropped column is null from then on: {gone:?}"
    );
    let schema = batch.schema();
    assert_eq!(
        schema.field_with_name("qty")?.data_type().to_string(),
        "Int64"
    );

    // A change that is not a widening stops that table; the other goes on.
    client
        .batch_execute(
            "ALTER TABLE items ALTER COLUMN note TYPE int USING length(note);
             INSERT INTO items VALUES (6, 6, 6, 6);
             INSERT INTO other VALUES (1, 'still captured');",
        )
        .await?;
    let target = fence(&client).await?;
    let summary = run_until(&config, target).await?;
    ensure!(
        summary
            .failed
            .iter()
            .any(|(t, reason)| t.to_string() == "public.items"
                && reason.contains("column \"note\" changes type from Utf8 to Int32")),
        "{:?}",
        summary.failed
    );
    assert_table_matches(&client, lake.path(), "public", "other", "id").await?;
    let ids: Vec<String> = lake_rows(&uri, &["id".to_string()]).await?;
    ensure!(
        ids.len() == 5,
        "rows after the bad change were written: {ids:?}"
    );
    // Nothing after it was acknowledged: the slot still holds the change.
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('inlet', NULL, NULL, \
             'proto_version', '1', 'publication_names', 'inlet') WHERE get_byte(data, 0) = 73",
            &[],
        )
        .await;
    // The slot may be busy for a moment after the pipeline stopped; only check when readable.
    if let Ok(row) = row {
        ensure!(
            row.get::<_, i64>(0) >= 1,
            "the insert after the bad change was acknowledged"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prerequisites_say_what_to_fix() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE nokey (a int, b text);
             CREATE ROLE plain LOGIN;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain;",
        )
        .await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.*"], "");
    let err = format!(
        "{:#}",
        run_until(&config, u64::MAX).await.expect_err("no key")
    );
    // The only selected table cannot be captured: nothing to run, said before anything starts.
    ensure!(
        err.contains("cannot be captured")
            && err.contains("public.nokey: no primary key")
            && err.contains("ADD PRIMARY KEY"),
        "{err}"
    );
    // Patterns that match nothing fail at start instead of holding a slot for nothing.
    let none = config_text(&pg, lake.path(), &["public.nothing*"], "");
    let err = format!(
        "{:#}",
        run_until(&none, u64::MAX).await.expect_err("no table")
    );
    ensure!(err.contains("source.include: matches no table"), "{err}");
    let slots: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await?
        .get(0);
    ensure!(slots == 0, "a slot was created for nothing");
    let as_plain = config.replace("user=postgres", "user=plain");
    let err = format!(
        "{:#}",
        run_until(&as_plain, u64::MAX)
            .await
            .expect_err("no privilege")
    );
    ensure!(
        err.contains("role plain has no REPLICATION privilege")
            && err.contains("ALTER ROLE \"plain\" WITH REPLICATION"),
        "{err}"
    );
    Ok(())
}

/// Rows of a dead-letter table read with hudi-rs: (source_table, op, reason, row) sorted.
fn dead_letters(lake: &Path) -> anyhow::Result<Vec<(String, String, String, serde_json::Value)>> {
    let uri = lake.join("_dead_letter").display().to_string();
    let read = common::run_hudi_rs(
        &uri,
        &[("snapshot".to_string(), serde_json::json!({}))],
        &[],
    )?;
    let mut out = Vec::new();
    for batch in &read["snapshot"] {
        let text = |name: &str| -> anyhow::Result<Vec<String>> {
            let column = batch
                .column_by_name(name)
                .with_context(|| name.to_string())?;
            let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)?;
            Ok(column
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect())
        };
        let (tables, ops, reasons, rows) = (
            text("source_table")?,
            text("op")?,
            text("reason")?,
            text("row")?,
        );
        for i in 0..batch.num_rows() {
            out.push((
                tables[i].clone(),
                ops[i].clone(),
                reasons[i].clone(),
                serde_json::from_str(&rows[i])?,
            ));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_cannot_be_written_go_to_the_dead_letter_table_or_stop_their_table()
-> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE bad (id int PRIMARY KEY, n numeric(10,2), d date, ts timestamptz, t text,
                               ds date[]);
             CREATE TABLE good (id int PRIMARY KEY, v text);
             CREATE TABLE nokey (a int, b text);
             ALTER TABLE nokey REPLICA IDENTITY FULL;
             INSERT INTO bad VALUES (1, 1.5, '2020-01-01', '2020-01-01 00:00:00+00', 'fine', NULL),
               (2, 'NaN', '2020-01-02', NULL, 'nan', NULL),
               (3, 2.5, 'infinity', NULL, 'infinite date', NULL),
               (4, 3.5, NULL, '-infinity', 'infinite timestamp', NULL),
               (5, 4.5, NULL, NULL, repeat('x', 2000), NULL),
               (8, 1, NULL, '294270-01-01 00:00:00+00', 'past Arrow''s timestamps', NULL),
               (9, 1, NULL, NULL, 'an infinite element', '{2020-01-01,infinity}');
             INSERT INTO good VALUES (1, 'one');
             INSERT INTO nokey VALUES (1, 'keyed'), (NULL, 'no key');",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(
        &pg,
        lake.path(),
        &["public.*"],
        "[recovery]\nkind = \"dead-letter\"\nmax_value_bytes = 1000\n\n\
         [tables.\"public.nokey\"]\nkey = [\"a\"]\nassume_unique_key = true\n",
    );
    let summary = sync(&client, &config).await?;
    ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
    let ids = |table: &str| {
        let uri = lake.path().join("public").join(table).display().to_string();
        async move { lake_rows(&uri, &["id".to_string()]).await }
    };
    ensure!(
        ids("bad").await? == vec![r#"{"id":1}"#],
        "{:?}",
        ids("bad").await?
    );
    let letters = dead_letters(lake.path())?;
    let reasons: Vec<(&str, &str)> = letters
        .iter()
        .map(|(t, _, r, _)| (t.as_str(), r.as_str()))
        .collect();
    ensure!(letters.len() == 7, "{reasons:#?}");
    for (table, needle, row_id) in [
        (
            "public.bad",
            "column n: \"NaN\" has no representation",
            Some(2),
        ),
        (
            "public.bad",
            "column d: \"infinity\" has no representation",
            Some(3),
        ),
        (
            "public.bad",
            "column ts: \"-infinity\" has no representation",
            Some(4),
        ),
        (
            "public.bad",
            "column t: a value of 2000 bytes is over recovery.max_value_bytes (1000)",
            Some(5),
        ),
        ("public.nokey", "record key column a is null", None),
        (
            "public.bad",
            "column ts: \"294270-01-01 00:00:00+00\" has no representation",
            Some(8),
        ),
        (
            "public.bad",
            "column ds: \"{2020-01-01,infinity}\" has no representation",
            Some(9),
        ),
    ] {
        let found = letters
            .iter()
            .find(|(t, _, r, _)| t == table && r.contains(needle));
        let (_, op, _, row) = found.with_context(|| format!("{needle} not in {reasons:#?}"))?;
        ensure!(op == "r", "{op}");
        match row_id {
            Some(id) => ensure!(row["id"] == id, "{row}"),
            None => ensure!(row["a"].is_null() && row["b"] == "no key", "{row}"),
        }
    }
    // The row as the source sent it: the raw value, not the null the lake column would hold.
    ensure!(
        letters.iter().any(|(_, _, _, row)| row["n"] == "NaN"),
        "{letters:?}"
    );

    // Streamed: a bad update goes to the dead letters (the lake keeps the last good row), a
    // column change the lake table cannot follow sends that table's rows there, and the
    // pipeline goes on with good rows.
    client
        .batch_execute(
            "UPDATE bad SET n = 'NaN' WHERE id = 1;
             INSERT INTO bad VALUES (6, 6.5, '2021-01-01', NULL, 'six'),
               (10, 1, NULL, '294270-01-01 00:00:00+00', 'past Arrow''s timestamps, streamed');
             ALTER TABLE good ALTER COLUMN v TYPE int USING length(v);
             INSERT INTO good VALUES (2, 2);",
        )
        .await?;
    let summary = sync(&client, &config).await?;
    ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
    ensure!(
        ids("bad").await? == vec![r#"{"id":1}"#, r#"{"id":6}"#],
        "{:?}",
        ids("bad").await?
    );
    let uri = lake.path().join("public/bad").display().to_string();
    ensure!(
        lake_rows(&uri, &["id".to_string(), "n".to_string()]).await?[0].contains("1.50"),
        "the bad update changed the lake row"
    );
    let letters = dead_letters(lake.path())?;
    ensure!(letters.len() == 10, "{letters:#?}");
    ensure!(
        letters.iter().any(|(t, op, r, row)| t == "public.bad"
            && op == "c"
            && r.contains("\"294270-01-01 00:00:00+00\" has no representation")
            && row["id"] == 10),
        "{letters:#?}"
    );
    ensure!(
        letters.iter().any(|(t, op, r, row)| t == "public.bad"
            && op == "u"
            && r.contains("NaN")
            && row["id"] == 1),
        "{letters:#?}"
    );
    ensure!(
        letters.iter().any(|(t, op, r, row)| t == "public.good"
            && op == "c"
            && r.contains("changes type")
            && row["id"] == 2),
        "{letters:#?}"
    );
    // A restart resumes without writing any dead letter twice.
    sync(&client, &config).await?;
    ensure!(dead_letters(lake.path())?.len() == 10);

    // With the default recovery (stop), the same row stops its table, with the row in the error;
    // the other tables go on and nothing is nulled silently.
    let stop_lake = tempfile::tempdir()?;
    client
        .batch_execute("SELECT pg_drop_replication_slot('inlet'); DROP PUBLICATION inlet;")
        .await?;
    let config = config_text(
        &pg,
        stop_lake.path(),
        &["public.bad", "public.inlet_fence"],
        "",
    );
    let summary = sync(&client, &config).await?;
    let failed = summary
        .failed
        .iter()
        .find(|(t, _)| t.to_string() == "public.bad")
        .with_context(|| format!("{:?}", summary.failed))?;
    ensure!(
        failed.1.contains("\"NaN\" has no representation") && failed.1.contains("dead-letter"),
        "{}",
        failed.1
    );
    let uri = stop_lake.path().join("public/bad").display().to_string();
    let rows = lake_rows(&uri, &["id".to_string()]).await?;
    ensure!(
        rows.is_empty(),
        "rows written before the bad one's copy was stopped: {rows:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_sigkill_during_a_concurrent_workload() -> anyhow::Result<()> {
    let seed: u64 = std::env::var("INLET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (replay with INLET_CRASH_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, v int, body text);
             ALTER TABLE a ALTER COLUMN body SET STORAGE EXTERNAL;
             CREATE TABLE b (k text PRIMARY KEY, n numeric(10,2));
             INSERT INTO a SELECT g, g, CASE WHEN g % 50 = 0 THEN repeat('t', 5000) END
               FROM generate_series(1, 100000) g;",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let config_path = lake.path().join("inlet.toml");
    // Small batches, also while copying (bounded by bytes then): many commits to crash between.
    let config = config_text(&pg, &lake.path().join("lake"), &["public.*"], "")
        .replace("max_rows = 100000", "max_rows = 5000\nmax_bytes = 1000000");
    std::fs::write(&config_path, &config)?;
    let log = lake.path().join("inlet.log");

    // The workload: many small transactions over both tables, in the background.
    let workload_client = pg.connect().await?;
    let workload_seed: u64 = rng.random();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_workload = stop.clone();
    let workload = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(workload_seed);
        let mut i = 0;
        // Runs for as long as inlet is being killed (and at least 1500 statements).
        while i < 1500 || !stop_workload.load(std::sync::atomic::Ordering::SeqCst) {
            i += 1;
            let id = rng.random_range(1..=100_200);
            let sql = match rng.random_range(0..6) {
                0 => format!("DELETE FROM a WHERE id = {id}"),
                1 => format!(
                    "INSERT INTO a VALUES ({id}, {i}, NULL) ON CONFLICT (id) DO UPDATE SET v = {i}"
                ),
                2 => format!(
                    "BEGIN; UPDATE a SET v = v + 1 WHERE id BETWEEN {id} AND {id} + 20; \
                     INSERT INTO b VALUES ('k{}', {i}) ON CONFLICT (k) DO UPDATE SET n = b.n + 1; COMMIT",
                    id % 300
                ),
                3 => format!("DELETE FROM b WHERE k = 'k{}'", id % 300),
                4 => format!(
                    "UPDATE a SET id = id + 200000 WHERE id = {id} \
                     AND NOT EXISTS (SELECT 1 FROM a WHERE id = {id} + 200000)"
                ),
                _ => format!("UPDATE a SET v = {i} WHERE id = {}", (id / 50) * 50),
            };
            workload_client.batch_execute(&sql).await?;
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        anyhow::Ok(i)
    });

    let kills = 5;
    for k in 0..kills {
        let mut child = spawn_inlet(&config_path, &log)?;
        let ms = rng.random_range(300..2500);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.kill()?; // SIGKILL
        child.wait()?;
        eprintln!("kill {k} after {ms} ms");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statements = workload.await??;
    eprintln!("workload: {statements} statements");

    // Catch up with a last run, stopped gracefully with SIGTERM once everything is durable.
    let target = fence(&client).await?;
    let mut child = spawn_inlet(&config_path, &log)?;
    let waited = wait_confirmed(&client, "inlet", target, Duration::from_secs(240)).await;
    Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    waited.with_context(|| format!("inlet log:\n{log_text}"))?;
    ensure!(
        status.success(),
        "inlet run exited with {status}:\n{log_text}"
    );
    // A log that is not a terminal gets no colour codes.
    ensure!(
        log_text.contains("Committed") && !log_text.contains('\x1b'),
        "inlet log:\n{log_text}"
    );
    let lake_dir = lake.path().join("lake");
    assert_table_matches(&client, &lake_dir, "public", "a", "id").await?;
    assert_table_matches(&client, &lake_dir, "public", "b", "k").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_reports_a_dropped_slot() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.*"], "");
    sync(&client, &config).await?;

    // The walsender is terminated while the pipeline streams: it reconnects and goes on.
    client.execute("INSERT INTO t VALUES (2, 'b')", &[]).await?;
    let target = fence(&client).await?;
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run = spawn_until_shutdown(&config, shutdown.clone());
    wait_confirmed(&client, "inlet", target, Duration::from_secs(30)).await?;
    client
        .execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'inlet'",
            &[],
        )
        .await?;
    client
        .batch_execute("INSERT INTO t VALUES (3, 'c'); UPDATE t SET v = 'aa' WHERE id = 1;")
        .await?;
    let target = fence(&client).await?;
    wait_confirmed(&client, "inlet", target, Duration::from_secs(60)).await?;
    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
    let summary = run
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))??;
    ensure!(
        summary.acknowledged >= target,
        "stopped without acknowledging everything"
    );
    // Wait for the stopped pipeline's walsender to go away.
    for _ in 0..100 {
        let row = client
            .query_one(
                "SELECT active FROM pg_replication_slots WHERE slot_name = 'inlet'",
                &[],
            )
            .await?;
        if !row.get::<_, bool>(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_table_matches(&client, lake.path(), "public", "t", "id").await?;

    // A dropped slot: the lake tables cannot be continued without a gap; inlet says so.
    client
        .execute("SELECT pg_drop_replication_slot('inlet')", &[])
        .await?;
    let err = format!(
        "{:#}",
        run_until(&config, u64::MAX).await.expect_err("slot gone")
    );
    ensure!(
        err.contains("replication slot inlet") && err.contains("does not exist"),
        "{err}"
    );
    Ok(())
}

/// Runs `inlet` (one table copied at a time, `max_bytes` per batch) and kills it once the
/// first commit of `public.<table>` is on its timeline. Returns the configuration (its log is
/// `inlet.log` beside `lake`), the table's checkpoint then, and how many rows it held.
async fn kill_after_first_commit(
    pg: &PostgresServer,
    lake: &Path,
    max_bytes: i64,
    table: &str,
) -> anyhow::Result<(String, inlet_ingest::change::Checkpoint, usize)> {
    let config = config_text(pg, lake, &["public.*"], "")
        .replace("max_rows = 100000", &format!("max_bytes = {max_bytes}"))
        .replace("include = [", "snapshot_parallelism = 1\ninclude = [");
    let config_path = lake.with_file_name("inlet.toml");
    std::fs::write(&config_path, &config)?;
    let mut child = spawn_inlet(&config_path, &lake.with_file_name("inlet.log"))?;
    let timeline = lake.join("public").join(table).join(".hoodie");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let committed = std::fs::read_dir(&timeline)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".commit"))
            })
            .unwrap_or(false);
        if committed {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no snapshot commit within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill()?;
    child.wait()?;
    let uri = lake.join("public").join(table).display().to_string();
    let opened = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await?;
    let checkpoint = inlet_ingest::pipeline::table_checkpoint(&opened)
        .await?
        .context("a checkpoint")?;
    let copied = lake_rows(&uri, &["id".to_string()]).await?.len();
    eprintln!("killed with {copied} rows copied, checkpoint {checkpoint:?}");
    Ok((config, checkpoint, copied))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_snapshot_resumes_after_the_last_copied_key() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    let rows = 300_000;
    client
        .batch_execute(&format!(
            "CREATE TABLE big (id int PRIMARY KEY, v text);
             INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, {rows}) g;"
        ))
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let (config, checkpoint, copied) =
        kill_after_first_commit(&pg, &lake, 2_000_000, "big").await?;

    // The restart copies the rest only.
    client
        .execute("UPDATE big SET v = 'changed' WHERE id IN (1, 299999)", &[])
        .await?;
    let summary = sync(&client, &config).await?;
    if let inlet_ingest::change::SnapshotState::After(key) = &checkpoint.snapshot {
        ensure!(!key.is_empty(), "the first chunk has a key");
        ensure!(
            (summary.rows as usize) < rows - copied + 1000,
            "the restart copied {} rows again after {copied} were copied",
            summary.rows
        );
    }
    assert_table_matches(&client, &lake, "public", "big", "id").await?;
    Ok(())
}

/// A table no larger than a batch on the server is copied without key order, so its checkpoint
/// has no key to resume after. Compressed values make the estimate low: 400 rows of ~1 KB on
/// disk are 96 KB each once read, so the copy outgrows `max_bytes` and is committed in parts,
/// each saying "from the start". Killed after the first part, the restart copies every row
/// again (the same rows, rewritten), and the lake ends up as the source, no key twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_without_key_order_that_outgrows_a_batch_starts_over() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    let rows = 400;
    client
        .batch_execute(&format!(
            "CREATE TABLE squeezed (id int PRIMARY KEY, body text);
             INSERT INTO squeezed SELECT g, repeat(md5(g::text), 3000)
               FROM generate_series(1, {rows}) g;"
        ))
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let max_bytes = 8_000_000;
    let size: i64 = client
        .query_one("SELECT pg_table_size('squeezed')", &[])
        .await?
        .get(0);
    ensure!(
        size < max_bytes,
        "the table takes {size} bytes on the server"
    );
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let (config, checkpoint, copied) =
        kill_after_first_commit(&pg, &lake, max_bytes, "squeezed").await?;
    ensure!(
        checkpoint.snapshot == inlet_ingest::change::SnapshotState::After(Vec::new()),
        "a part of a copy without key order has no key: {checkpoint:?}"
    );
    ensure!(
        0 < copied && copied < rows,
        "{copied} rows in the first part"
    );

    client
        .execute(
            "UPDATE squeezed SET body = 'changed' WHERE id IN (1, 400)",
            &[],
        )
        .await?;
    let summary = sync(&client, &config).await?;
    ensure!(
        summary.rows as usize >= rows,
        "the restart wrote {} rows: it did not start over",
        summary.rows
    );
    let log = std::fs::read_to_string(lake.with_file_name("inlet.log"))?;
    ensure!(!log.contains("Resuming the snapshot after"), "{log}");
    assert_table_matches(&client, &lake, "public", "squeezed", "id").await?;
    Ok(())
}

/// The snapshot reads COPY's binary format and writes the last copied key into its checkpoint
/// as text, for a resumed copy's `WHERE (key) > (literal)`. For each key type, at the edges of
/// its range, that text must select exactly the value it came from; and it must be the text
/// PostgreSQL itself gives (dead letters show it), floats aside (any text of the same value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_as_text_name_the_values_they_came_from() -> anyhow::Result<()> {
    use inlet_ingest::postgres::binary::{BinaryCopy, Wire};
    use inlet_ingest::postgres::connect::quote_literal;
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute("CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE DOMAIN code AS char(4);")
        .await?;
    let cases: &[(&str, &[&str])] = &[
        ("bool", &["true", "false"]),
        ("int2", &["-32768", "0", "32767"]),
        ("int4", &["-2147483648", "2147483647"]),
        ("int8", &["-9223372036854775808", "9223372036854775807"]),
        ("oid", &["0", "4294967295"]),
        (
            "float4",
            &[
                "'-Infinity'",
                "'-0'",
                "'1.17549435e-38'",
                "'1e-45'",
                "'3.4028235e38'",
                "'NaN'",
                "'0.1'",
            ],
        ),
        (
            "float8",
            &[
                "'4.9e-324'",
                "'1.7976931348623157e308'",
                "'0.1'",
                "'NaN'",
                "'-Infinity'",
                "'-1e-300'",
            ],
        ),
        (
            "numeric(38,5)",
            &[
                "'-0.00001'",
                "'123456789012345678901234567890123.12345'",
                "'0'",
                "'10000'",
                "'-9999.9999'",
            ],
        ),
        (
            "text",
            &["''", "'Köln'", "'a''b'", "E'tab\\there'", "'ünï\\N'"],
        ),
        ("varchar(5)", &["'x y'"]),
        ("char(4)", &["'ab'", "''"]),
        ("code", &["'c'"]),
        ("name", &["'a name'"]),
        ("mood", &["'sad'", "'ok'"]),
        (
            "uuid",
            &[
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                "'00000000-0000-0000-0000-000000000000'",
            ],
        ),
        ("bytea", &["'\\x'", "'\\x00ff0a5c'"]),
        (
            "date",
            &[
                "'infinity'",
                "'-infinity'",
                "'4714-11-24 BC'",
                "'0001-01-01 BC'",
                "'5874897-12-31'",
                "'2000-02-29'",
                "'1999-12-31'",
            ],
        ),
        (
            "time",
            &[
                "'00:00:00'",
                "'24:00:00'",
                "'12:34:56.000001'",
                "'23:59:59.5'",
            ],
        ),
        (
            "timestamp",
            &[
                "'infinity'",
                "'-infinity'",
                "'4713-01-01 00:00:00 BC'",
                "'0044-03-15 12:00:00.25 BC'",
                "'294276-12-31 23:59:59.999999'",
                "'2000-01-01 00:00:00'",
                "'1969-12-31 23:59:59.999999'",
            ],
        ),
        (
            "timestamptz",
            &[
                "'infinity'",
                "'4713-01-01 00:00:00+00 BC'",
                "'294276-12-31 23:59:59.999999+00'",
                "'2001-02-03 04:05:06.789+02'",
            ],
        ),
        ("jsonb", &["'{\"a\": [1, \"ü\"]}'", "'null'"]),
        ("inet", &["'::1'", "'10.0.0.1/8'"]),
        ("interval", &["'-1 year 2 mons 3 days 04:05:06.7'"]),
        ("int4[]", &["'{1,NULL}'"]),
    ];
    let types = inlet_ingest::postgres::catalog::load_types(&client).await?;
    for &(ty, values) in cases {
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS k; CREATE TABLE k (v {ty}); INSERT INTO k VALUES ({});",
                values.join("), (")
            ))
            .await?;
        let row = client
            .query_one(
                "SELECT atttypid, atttypmod FROM pg_attribute WHERE attrelid = 'k'::regclass \
                 AND attname = 'v'",
                &[],
            )
            .await?;
        let (oid, typmod): (u32, i32) = (row.get(0), row.get(1));
        let conv = match inlet_ingest::postgres::types::conversion(&types, oid, typmod) {
            Ok(conv) | Err((conv, _)) => conv,
        };
        let wire = Wire::of(&types, oid, &conv);
        let sql = format!(
            "COPY (SELECT {}, format('%s', v) FROM k) TO STDOUT (FORMAT binary)",
            wire.select("v")
        );
        let stream = client.copy_out(sql.as_str()).await?;
        futures::pin_mut!(stream);
        let mut parser = BinaryCopy::default();
        let mut texts: Vec<(String, String)> = Vec::new();
        use futures::StreamExt;
        while let Some(chunk) = stream.next().await {
            parser.push(&chunk?, |tuple| {
                let ours = wire.text(tuple.get(0).unwrap_or_default());
                let theirs = String::from_utf8_lossy(tuple.get(1).unwrap_or_default());
                texts.push((
                    ours.map_err(|e| inlet_ingest::Error::Protocol(e.0))?
                        .into_owned(),
                    theirs.into_owned(),
                ));
                Ok(())
            })?;
        }
        parser.finish()?;
        ensure!(texts.len() == values.len(), "{ty}: {texts:?}");
        for (ours, theirs) in &texts {
            if !ty.starts_with("float") {
                ensure!(
                    ours == theirs,
                    "{ty} ({wire:?}): {ours:?}, PostgreSQL says {theirs:?}"
                );
            }
            let found: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM k WHERE v = {}", quote_literal(ours)),
                    &[],
                )
                .await?
                .get(0);
            ensure!(
                found == 1,
                "{ty}: {ours:?} selects {found} rows ({theirs:?})"
            );
        }
    }
    Ok(())
}

/// A stop that cannot finish (a commit whose storage never answers) ends after `--stop-grace`
/// with status 3, and a second signal ends it at once. Nothing undurable was acknowledged: the
/// next run rolls the unfinished commit back and catches up exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_cannot_finish_ends_after_the_grace_period_or_a_second_signal()
-> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE t (id int8 PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g;",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = config_text(&pg, &lake, &["public.*"], "");
    let config_path = dir.path().join("inlet.toml");
    std::fs::write(&config_path, &config)?;
    for second_signal in [false, true] {
        let log_path = dir.path().join(format!("inlet-{second_signal}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(inlet_bin())
            .args(["run", "--stop-grace", "2s", "--config"])
            .arg(&config_path)
            .env("INLET_FAILPOINT", "hang:commit.before-complete")
            .env("INLET_LOG", "warn,inlet_ingest=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
        // Wait until the first commit hangs.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !log_text().contains("failpoint hang:commit.before-complete reached") {
            ensure!(
                std::time::Instant::now() < deadline,
                "the commit never reached the hang:\n{}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let term = || {
            Command::new("kill")
                .args(["-s", "TERM", &child.id().to_string()])
                .status()
        };
        term()?;
        if second_signal {
            tokio::time::sleep(Duration::from_millis(300)).await;
            term()?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill()?;
                anyhow::bail!("inlet run did not exit:\n{}", log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let text = log_text();
        ensure!(status.code() == Some(3), "exit {status}:\n{text}");
        let expected = if second_signal {
            "Second signal: exiting now"
        } else {
            "Not stopped within 2s: exiting now"
        };
        ensure!(text.contains(expected), "{text}");
    }
    // Nothing was acknowledged; the next run catches up exactly.
    client
        .batch_execute("UPDATE t SET v = 'y' WHERE id <= 10; DELETE FROM t WHERE id > 90;")
        .await?;
    sync(&client, &config).await?;
    assert_table_matches(&client, &lake, "public", "t", "id").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_recreated_behind_the_tables_is_a_gap_reported_or_copied_again() -> anyhow::Result<()>
{
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.*"], "");
    sync(&client, &config).await?;
    assert_table_matches(&client, lake.path(), "public", "t", "id").await?;

    // The slot is dropped; changes happen that no slot keeps; a new slot of the same name is
    // created (by someone else), and more changes follow.
    for sql in [
        "SELECT pg_drop_replication_slot('inlet')",
        "UPDATE t SET v = 'lost' WHERE id <= 10",
        "DELETE FROM t WHERE id = 50",
        "SELECT pg_create_logical_replication_slot('inlet', 'pgoutput')",
        "UPDATE t SET v = 'after' WHERE id = 20",
    ] {
        client.batch_execute(sql).await?;
    }
    let err = format!("{:#}", sync(&client, &config).await.expect_err("a gap"));
    ensure!(
        err.contains("the slot starts at LSN")
            && err.contains("public.t")
            && err.contains("on_gap = \"resnapshot\""),
        "{err}"
    );
    // Nothing was written meanwhile: the lake table still holds the old rows.
    let uri = lake.path().join("public/t").display().to_string();
    ensure!(lake_rows(&uri, &["id".to_string()]).await?.len() == 100);

    // With on_gap = "resnapshot" the table is emptied and copied again, then streamed.
    let resnapshot = config.replace("include = [", "on_gap = \"resnapshot\"\ninclude = [");
    sync(&client, &resnapshot).await?;
    assert_table_matches(&client, lake.path(), "public", "t", "id").await?;
    client
        .batch_execute("UPDATE t SET v = 'streamed' WHERE id = 30; DELETE FROM t WHERE id = 31;")
        .await?;
    sync(&client, &resnapshot).await?;
    assert_table_matches(&client, lake.path(), "public", "t", "id").await?;
    // And the plain configuration is happy again: no gap since.
    sync(&client, &config).await?;

    // Another kind of source on the same lake tables is refused: positions do not compare.
    let datagen = format!(
        "[admin]\nlisten = \"off\"\n[source]\nkind = \"datagen\"\ntables = [\"public.t\"]\n\
         [sink]\nbase_uri = {:?}\n",
        lake.path().display().to_string()
    );
    let err = format!(
        "{:#}",
        run_until(&datagen, u64::MAX)
            .await
            .expect_err("another source")
    );
    ensure!(
        err.contains("holds positions of a postgres source") && err.contains("a datagen source"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_guardrails_heartbeat_and_retained_wal() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let config = config_text(&pg, lake.path(), &["public.*"], "")
        .replace("include = [", "heartbeat_interval = \"1s\"\ninclude = [");
    sync(&client, &config).await?;

    // A quiet database: only the heartbeat writes WAL, and the slot follows it.
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run = spawn_until_shutdown(&config, shutdown.clone());
    let confirmed = || async {
        let row = client
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'inlet'",
                &[],
            )
            .await?;
        anyhow::Ok(
            row.get::<_, String>(0)
                .parse::<inlet_ingest::postgres::Lsn>()?
                .0,
        )
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = confirmed().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = confirmed().await?;
    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
    run.join().expect("pipeline thread")?;
    ensure!(
        after > before,
        "the slot did not advance on a quiet database: {before} → {after}"
    );

    // Retained WAL over max_slot_lag_bytes with stop_at_slot_lag stops, saying why.
    let strict = config.replace(
        "include = [",
        "max_slot_lag_bytes = 1\nstop_at_slot_lag = true\ninclude = [",
    );
    client.batch_execute("INSERT INTO t VALUES (2)").await?;
    let err = format!(
        "{:#}",
        sync(&client, &strict).await.expect_err("over the lag")
    );
    ensure!(err.contains("over max_slot_lag_bytes (1)"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_flows_and_the_transactional_outbox() -> anyhow::Result<()> {
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text, email text);
             CREATE TABLE outbox (id int PRIMARY KEY, type text, payload jsonb, note text);
             INSERT INTO customers VALUES (1, 'Ann', '123', 'ann@x'), (2, 'Bo', '456', 'bo@x');
             INSERT INTO outbox VALUES (1, 'CustomerCreated', '{\"id\": 1}', 'before start');",
        )
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let lake = tempfile::tempdir()?;
    let flows = "[tables.\"public.customers\"]\nexclude_columns = [\"ssn\"]\n\
                 rename = { email = \"contact\" }\n\n\
                 [tables.\"public.outbox\"]\nflow = \"outbox\"\npayload_column = \"payload\"\n\
                 event_type_column = \"type\"\n";
    let config = config_text(&pg, lake.path(), &["public.*"], flows);
    sync(&client, &config).await?;
    // The application writes events and deletes them in the same transaction (the usual
    // outbox pattern); updates and deletes of outbox rows are no events.
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO outbox VALUES (2, 'OrderPlaced', '{\"order\": 7, \"name\": \"Köln\"}', 'x');
             DELETE FROM outbox WHERE id = 2;
             COMMIT;
             INSERT INTO outbox VALUES (3, 'OrderShipped', '{\"order\": 7}', 'y');
             UPDATE outbox SET payload = '{\"changed\": true}' WHERE id = 3;
             DELETE FROM outbox WHERE id IN (1, 3);
             UPDATE customers SET ssn = '999', email = 'ann@y' WHERE id = 1;
             INSERT INTO customers VALUES (3, 'Cy', '789', NULL);
             DELETE FROM customers WHERE id = 2;",
        )
        .await?;
    sync(&client, &config).await?;

    // customers: no ssn, email as contact — with our reader and hudi-rs.
    let uri = lake.path().join("public/customers").display().to_string();
    let columns: Vec<String> = ["id", "name", "contact"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let expected = vec![
        r#"{"id":1,"name":"Ann","contact":"ann@y"}"#.to_string(),
        r#"{"id":3,"name":"Cy","contact":null}"#.to_string(),
    ];
    let ours = lake_rows(&uri, &columns).await?;
    canonical::assert_same_rows(&ours, &expected, "customers (our reader)");
    let theirs = common::hudi_rs(
        &uri,
        &[("s".to_string(), serde_json::json!({}))],
        &columns,
        &[],
    )?;
    canonical::assert_same_rows(&theirs["s"], &expected, "customers (hudi-rs)");
    let batches = lake_batches(&uri).await?;
    ensure!(
        batches[0].schema().field_with_name("ssn").is_err(),
        "ssn was written: {:?}",
        batches[0].schema()
    );

    // outbox: one event per inserted row, with the payload as inserted.
    let uri = lake.path().join("public/outbox").display().to_string();
    let columns: Vec<String> = ["id", "event_type", "payload"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let expected = vec![
        r#"{"id":1,"event_type":"CustomerCreated","payload":"{\"id\": 1}"}"#.to_string(),
        r#"{"id":2,"event_type":"OrderPlaced","payload":"{\"name\": \"Köln\", \"order\": 7}"}"#
            .to_string(),
        r#"{"id":3,"event_type":"OrderShipped","payload":"{\"order\": 7}"}"#.to_string(),
    ];
    let ours = lake_rows(&uri, &columns).await?;
    canonical::assert_same_rows(&ours, &expected, "outbox (our reader)");
    let theirs = common::hudi_rs(
        &uri,
        &[("s".to_string(), serde_json::json!({}))],
        &columns,
        &[],
    )?;
    canonical::assert_same_rows(&theirs["s"], &expected, "outbox (hudi-rs)");
    let batches = lake_batches(&uri).await?;
    let schema = batches[0].schema();
    ensure!(
        schema.field_with_name("note").is_err() && schema.field_with_name("_cdc_position").is_ok(),
        "{schema:?}"
    );

    // Emptying the outbox (a routine clean-up) deletes no published event.
    client
        .batch_execute("TRUNCATE outbox; INSERT INTO outbox VALUES (4, 'Later', '{}', 'z');")
        .await?;
    sync(&client, &config).await?;
    let ours = lake_rows(&uri, &["id".to_string()]).await?;
    ensure!(ours.len() == 4, "events after a truncate: {ours:?}");

    // Options that cannot apply are errors naming the field.
    for (extra, field) in [
        (
            "[tables.\"public.customers\"]\nexclude_columns = [\"id\"]\n",
            "tables.\"public.customers\".exclude_columns",
        ),
        (
            "[tables.\"public.customers\"]\ncolumns = [\"name\", \"nope\"]\n",
            "tables.\"public.customers\".columns",
        ),
        (
            "[tables.\"public.outbox\"]\nflow = \"outbox\"\npayload_column = \"body\"\n",
            "tables.\"public.outbox\".payload_column",
        ),
    ] {
        let other = tempfile::tempdir()?;
        let config = config_text(&pg, other.path(), &["public.*"], extra);
        let err = format!("{:#}", run_until(&config, u64::MAX).await.expect_err(field));
        ensure!(err.contains(field), "{field} not in {err}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_not_doubled_by_a_crash_before_their_table_commits() -> anyhow::Result<()>
{
    let pg = PostgresServer::start()?;
    let client = pg.connect().await?;
    client
        .batch_execute("CREATE TABLE bad (id int PRIMARY KEY, n numeric(10,2));")
        .await?;
    client.batch_execute(FENCE_DDL).await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = config_text(
        &pg,
        &lake,
        &["public.*"],
        "[recovery]\nkind = \"dead-letter\"\n",
    );
    sync(&client, &config).await?;
    client
        .batch_execute("INSERT INTO bad VALUES (1, 1), (2, 'NaN'), (3, 'NaN'), (4, 4)")
        .await?;
    // Killed right after the dead letters are committed, before the table's commit.
    let config_path = dir.path().join("inlet.toml");
    std::fs::write(&config_path, &config)?;
    let log = dir.path().join("inlet.log");
    let mut child =
        inlet_run_with_failpoint(&config_path, &log, "pipeline.after-dead-letters")?.spawn()?;
    let status = child.wait()?;
    let text = std::fs::read_to_string(&log)?;
    ensure!(
        !status.success() && text.contains("failpoint pipeline.after-dead-letters reached"),
        "{status}: {text}"
    );
    ensure!(
        dead_letters(&lake)?.len() == 2,
        "{:?}",
        dead_letters(&lake)?
    );
    // The restart replays the transaction: the same two dead letters, not four.
    sync(&client, &config).await?;
    let letters = dead_letters(&lake)?;
    ensure!(letters.len() == 2, "{letters:#?}");
    let uri = lake.join("public/bad").display().to_string();
    ensure!(
        lake_rows(&uri, &["id".to_string()]).await? == vec![r#"{"id":1}"#, r#"{"id":4}"#],
        "{:?}",
        lake_rows(&uri, &["id".to_string()]).await?
    );
    Ok(())
}

/// A server with `ddl` and the fence table, and a lake synced with it, with `max_bytes` = 1 MiB
/// (a transaction of ~200k rows is ~20 times larger); the configuration is also written to
/// `config_path`.
struct SmallBatches {
    pg: PostgresServer,
    client: Client,
    dir: tempfile::TempDir,
    lake: std::path::PathBuf,
    config: String,
    config_path: std::path::PathBuf,
}

impl SmallBatches {
    async fn start(ddl: &str) -> anyhow::Result<SmallBatches> {
        let pg = PostgresServer::start()?;
        let client = pg.connect().await?;
        client.batch_execute(ddl).await?;
        client.batch_execute(FENCE_DDL).await?;
        let dir = tempfile::tempdir()?;
        let lake = dir.path().join("lake");
        let config = config_text(&pg, &lake, &["public.*"], "")
            .replace("[batch]\n", "[batch]\nmax_bytes = 1048576\n");
        sync(&client, &config).await?;
        let config_path = dir.path().join("inlet.toml");
        std::fs::write(&config_path, &config)?;
        Ok(SmallBatches {
            pg,
            client,
            dir,
            lake,
            config,
            config_path,
        })
    }
}

/// `inlet run` of the configuration at `config` with `INLET_FAILPOINT` = `failpoint`, its
/// standard error to `log`.
fn inlet_run_with_failpoint(config: &Path, log: &Path, failpoint: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(inlet_bin());
    command
        .args(["run", "--config"])
        .arg(config)
        .env("INLET_FAILPOINT", failpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    Ok(command)
}

/// The lake's rows of `uri` as (key, `_hoodie_commit_time`, [`inlet_ingest::CDC_POSITION`]).
async fn rows_with_commit_times(uri: &str, key: &str) -> anyhow::Result<Vec<(i64, String, i64)>> {
    let mut out = Vec::new();
    for batch in lake_batches(uri).await? {
        let column = |name: &str| batch.column_by_name(name).context(name.to_string());
        let keys = arrow::compute::cast(column(key)?, &arrow::datatypes::DataType::Int64)?;
        let times = column("_hoodie_commit_time")?.as_string::<i32>().clone();
        let positions = column(inlet_ingest::CDC_POSITION)?
            .as_primitive::<arrow::datatypes::Int64Type>()
            .clone();
        for (i, k) in keys
            .as_primitive::<arrow::datatypes::Int64Type>()
            .iter()
            .enumerate()
        {
            out.push((
                k.context("null key")?,
                times.value(i).to_string(),
                positions.value(i),
            ));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_larger_than_max_bytes_is_committed_in_parts_and_resumes_inside_it()
-> anyhow::Result<()> {
    let SmallBatches {
        pg: _pg,
        client,
        dir,
        lake,
        config,
        config_path,
    } = SmallBatches::start(
        "CREATE TABLE big (id int PRIMARY KEY, v text, n int);
         CREATE TABLE side (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, 'old-' || g, g FROM generate_series(1, 1000) g;",
    )
    .await?;
    // One transaction of ~230k changes: updates of rows stored before it, a row of another
    // table, inserts, then changes of rows it inserted (after the first part is committed),
    // deletes of old and new rows, and a key change.
    client
        .batch_execute(
            "BEGIN;
             UPDATE big SET v = 'early' WHERE id <= 500;
             INSERT INTO side VALUES (1, 'in the big transaction');
             INSERT INTO big SELECT g, 'new-' || g, g FROM generate_series(1001, 230000) g;
             UPDATE big SET v = 'late' WHERE id % 1000 = 7;
             DELETE FROM big WHERE id % 1000 = 3;
             UPDATE big SET id = id + 1000000 WHERE id IN (5, 150005);
             COMMIT;
             INSERT INTO big VALUES (999999, 'after', 0);",
        )
        .await?;
    // Killed right after the first commit inside the transaction is durable.
    let log = dir.path().join("inlet.log");
    let status = inlet_run_with_failpoint(
        &config_path,
        &log,
        "pipeline.after-commit-inside-transaction",
    )?
    .status()?;
    let text = std::fs::read_to_string(&log)?;
    ensure!(
        !status.success()
            && text.contains("failpoint pipeline.after-commit-inside-transaction reached"),
        "{status}: {text}"
    );
    let uri = lake.join("public/big").display().to_string();
    let table = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await?;
    let first = inlet_ingest::pipeline::table_checkpoint(&table)
        .await?
        .context("a checkpoint")?;
    ensure!(
        first.inside.is_some(),
        "the checkpoint is not inside the transaction"
    );
    let partial = rows_with_commit_times(&uri, "id").await?;
    ensure!(
        partial.len() > 1000 && partial.len() < 230_000,
        "the first part holds {} rows",
        partial.len()
    );
    // The restart resumes inside the transaction: everything arrives, once.
    sync(&client, &config).await?;
    assert_table_matches(&client, &lake, "public", "big", "id").await?;
    assert_table_matches(&client, &lake, "public", "side", "id").await?;
    assert_written_once(&table, &uri).await
}

/// Every change of a transaction written in parts was applied once: a row whose last change is
/// in the part a commit checkpointed inside the transaction (after the previous part's
/// `inside.change`, up to its own) has that commit's `_hoodie_commit_time`, and a row changed
/// after the last part has a later one. A change applied again (after a restart or a
/// reconnection) would give its row a later commit time.
async fn assert_written_once(table: &inlet_table::Table, uri: &str) -> anyhow::Result<()> {
    let timeline = table.timeline().await?;
    let mut parts: Vec<(String, u64, inlet_ingest::change::Inside)> = Vec::new();
    for instant in timeline.completed_writes() {
        let metadata = timeline.commit_metadata(table.storage(), instant).await?;
        let checkpoint = metadata
            .checkpoint()
            .and_then(inlet_ingest::Checkpoint::from_json);
        if let Some(c) = checkpoint
            && let Some(inside) = c.inside
        {
            parts.push((instant.time.to_string(), c.position, inside));
        }
    }
    ensure!(!parts.is_empty(), "no commit inside the transaction");
    let mut kept = 0;
    for (id, time, position) in rows_with_commit_times(uri, "id").await? {
        let position = position as u64;
        if position <= parts[0].1 {
            continue; // from before the transaction
        }
        match parts.iter().find(|p| position <= p.2.change) {
            Some((part_time, _, _)) => {
                ensure!(
                    time == *part_time,
                    "row {id} (position {position}) was written again at {time}, after {part_time}"
                );
                kept += 1;
            }
            None => {
                let last = &parts[parts.len() - 1].0;
                ensure!(time > *last, "row {id} at {time}, before {last}");
            }
        }
    }
    ensure!(
        kept > 50_000,
        "only {kept} rows kept their part's commit time"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_inside_a_transaction_written_in_parts_skips_what_is_written()
-> anyhow::Result<()> {
    let SmallBatches {
        pg: _pg,
        client,
        dir,
        lake,
        config_path,
        ..
    } = SmallBatches::start("CREATE TABLE big (id int PRIMARY KEY, v text, n int);").await?;
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO big SELECT g, 'new-' || g, g FROM generate_series(1, 250000) g;
             UPDATE big SET v = 'late' WHERE id % 1000 = 7;
             DELETE FROM big WHERE id % 1000 = 3;
             COMMIT;",
        )
        .await?;
    let target = fence(&client).await?;
    // The replication connection is dropped each time a part is committed: the transaction is
    // read again from its start after each part.
    let log = dir.path().join("inlet.log");
    let mut child = inlet_run_with_failpoint(
        &config_path,
        &log,
        "error:postgres.after-commit-inside-transaction",
    )?
    .env("INLET_LOG", "warn,inlet_ingest=info")
    .spawn()?;
    let waited = wait_confirmed(&client, "inlet", target, Duration::from_secs(240)).await;
    Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    let text = std::fs::read_to_string(&log)?;
    waited.with_context(|| format!("inlet log:\n{text}"))?;
    ensure!(status.success(), "inlet run exited with {status}:\n{text}");
    let reconnects = text
        .matches("Replication connection re-established")
        .count();
    ensure!(reconnects >= 2, "{reconnects} reconnections:\n{text}");
    assert_table_matches(&client, &lake, "public", "big", "id").await?;
    let uri = lake.join("public/big").display().to_string();
    let table = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await?;
    assert_written_once(&table, &uri).await
}
