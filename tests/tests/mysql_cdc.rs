//! MySQL/MariaDB change capture against a throwaway MariaDB (`mariadb-install-db` +
//! `mariadbd --log-bin --binlog-format=ROW --binlog-row-metadata=FULL`): prerequisite checks,
//! discovery, every type, the snapshot in key ranges, the binlog stream, restarts and crashes.

mod common;

use std::collections::BTreeMap;

use anyhow::ensure;
use inlet_ingest::change::TableId;
use inlet_ingest::mysql::MysqlConnect;
use inlet_ingest::mysql::catalog;
use inlet_tests::harness::mariadb::{MariaDbServer, fence};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prerequisites_say_what_to_fix() -> anyhow::Result<()> {
    // A server as capture needs it, as root: ready.
    let good = MariaDbServer::start()?;
    let mut conn = MysqlConnect::parse(&good.url(), None)?.connect().await?;
    let info = catalog::check(&mut conn).await?;
    ensure!(
        info.mariadb && info.log_bin && info.binlog_format == "ROW",
        "{info:?}"
    );

    // An account without replication grants.
    conn.query_drop(
        "CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO 'plain'@'127.0.0.1'",
    )
    .await?;
    let url = good.url().replace("root@", "plain@");
    let mut plain = MysqlConnect::parse(&url, Some("pw"))?.connect().await?;
    let err = catalog::check(&mut plain)
        .await
        .expect_err("no grants")
        .to_string();
    ensure!(
        err.contains("MariaDB 10.")
            && err.contains("GRANT REPLICATION SLAVE ON *.* TO 'plain'@'127.0.0.1'")
            && err.contains("GRANT BINLOG MONITOR ON *.* TO 'plain'@'127.0.0.1'"),
        "{err}"
    );
    // A wrong password is an error naming the server.
    let err = MysqlConnect::parse(&url, Some("nope"))?
        .connect()
        .await
        .expect_err("wrong password")
        .to_string();
    ensure!(
        err.contains("connecting to 127.0.0.1:") && err.contains("Access denied"),
        "{err}"
    );

    // A server without the binlog, or with the wrong formats: each problem with its fix.
    let bad =
        MariaDbServer::start_with(&["--binlog-format=STATEMENT", "--binlog-row-metadata=NO_LOG"])?;
    let mut conn = MysqlConnect::parse(&bad.url(), None)?.connect().await?;
    let err = catalog::check(&mut conn)
        .await
        .expect_err("no binlog")
        .to_string();
    for needle in [
        "the binary log is off",
        "SET GLOBAL binlog_format = 'ROW'",
        "SET GLOBAL binlog_row_metadata = 'FULL'",
    ] {
        ensure!(err.contains(needle), "{needle:?} not in {err}");
    }
    let err = MysqlConnect::parse("postgres://x", None)
        .expect_err("not mysql")
        .to_string();
    ensure!(
        err.contains("source.connection") && err.contains("mysql://"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_discovered_with_their_keys() -> anyhow::Result<()> {
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop; CREATE DATABASE `Köln`;
         CREATE TABLE shop.orders (id INT UNSIGNED PRIMARY KEY, note VARCHAR(10) CHARACTER SET latin1, amount DECIMAL(10,2));
         CREATE TABLE shop.lines (o INT, n INT, PRIMARY KEY (o, n));
         CREATE TABLE shop.audit (at DATETIME(3), what TEXT);
         CREATE TABLE shop.nokey (a INT, b TEXT);
         CREATE VIEW shop.v AS SELECT id FROM shop.orders;
         CREATE TABLE `Köln`.`straße` (`ü` BIGINT PRIMARY KEY);",
    )
    .await?;
    let keys = BTreeMap::from([("shop.nokey".to_string(), vec!["a".to_string()])]);
    let (tables, skipped) = catalog::discover(
        &mut conn,
        |t| t.starts_with("shop.") || t.starts_with("Köln."),
        &keys,
    )
    .await?;
    let found: Vec<(String, Vec<String>)> = tables
        .iter()
        .map(|t| (t.id.to_string(), t.key.clone()))
        .collect();
    ensure!(
        found
            == vec![
                ("Köln.straße".to_string(), vec!["ü".to_string()]),
                (
                    "shop.lines".to_string(),
                    vec!["o".to_string(), "n".to_string()]
                ),
                ("shop.nokey".to_string(), vec!["a".to_string()]),
                ("shop.orders".to_string(), vec!["id".to_string()]),
            ],
        "{found:?}"
    );
    ensure!(
        skipped.len() == 1
            && skipped[0].0 == TableId::new("shop", "audit")
            && skipped[0].1.contains("ADD PRIMARY KEY")
            && skipped[0].1.contains("tables.\"shop.audit\".key"),
        "{skipped:?}"
    );
    let orders = tables
        .iter()
        .find(|t| t.id.name == "orders")
        .expect("orders");
    let columns: Vec<(&str, &str, Option<&str>)> = orders
        .columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.column_type.as_str(),
                c.charset.as_deref(),
            )
        })
        .collect();
    ensure!(
        columns
            == vec![
                ("id", "int(10) unsigned", None),
                ("note", "varchar(10)", Some("latin1")),
                ("amount", "decimal(10,2)", None),
            ],
        "{columns:?}"
    );
    // A configured key naming a column that does not exist is an error naming the field.
    let keys = BTreeMap::from([("shop.nokey".to_string(), vec!["zz".to_string()])]);
    let err = catalog::discover(&mut conn, |t| t == "shop.nokey", &keys)
        .await
        .expect_err("no such column")
        .to_string();
    ensure!(
        err.contains("tables.\"shop.nokey\".key") && err.contains("\"zz\""),
        "{err}"
    );
    Ok(())
}

/// Every mapped type at the edges of its range: the values a text-protocol `SELECT` returns and
/// the values the binlog carries (ROW events with full metadata) convert to the same Arrow
/// arrays, and to the expected values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_converts_the_same_from_select_and_from_the_binlog() -> anyhow::Result<()> {
    use arrow::array::Array;
    use futures::StreamExt;
    use inlet_ingest::mysql::types::{ColumnBuilder, Conv};
    use mysql_async::binlog::events::EventData;
    use mysql_async::binlog::value::BinlogValue;

    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE t;
         CREATE TABLE t.types (
           id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
           mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
           d DECIMAL(38,10), d2 DECIMAL(5,2), f FLOAT, db DOUBLE, b1 BIT(1), b9 BIT(9),
           dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6), y YEAR,
           c CHAR(3), vc VARCHAR(20), l1 VARCHAR(10) CHARACTER SET latin1, tx TEXT,
           bn BINARY(2), vb VARBINARY(5), bl BLOB, e ENUM('x','it''s','a,b'), st SET('a','b','c'),
           j JSON, g GEOMETRY)",
    )
    .await?;
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await?
        .expect("status");
    let file: String = row.get(0).expect("file");
    let pos: u64 = row.get(1).expect("position");
    conn.query_drop(
        "INSERT INTO t.types VALUES
          (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
           -9223372036854775808, 18446744073709551615, -1234567890123456789012345678.1234567891, 999.99,
           3.40282e38, 1.7976931348623157e308, b'1', b'100000001',
           '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '-838:59:59.000000', 2155,
           'ab', 'Köln 東京 ✓', 'Straße €', REPEAT('t', 3000),
           x'00ff', x'0102', x'deadbeef', 'it''s', 'a,c', '{\"k\": [1, null]}', ST_GeomFromText('POINT(1 2)')),
          (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, 0, -999.99,
           -1.5, -0.0, b'0', b'0', '2024-02-29', '1970-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00.5', 1901,
           '', '', '', '', x'0000', x'', x'', 'x', '', '[]', NULL),
          (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await?;
    let (tables, _) = catalog::discover(&mut conn, |t| t == "t.types", &BTreeMap::new()).await?;
    let convs: Vec<Conv> = tables[0].columns.iter().map(Conv::of).collect();
    ensure!(!convs.contains(&Conv::Other), "{convs:?}");

    // The text protocol.
    let rows: Vec<mysql_async::Row> = conn.query("SELECT * FROM t.types ORDER BY id").await?;
    let mut from_select: Vec<ColumnBuilder> = convs
        .iter()
        .map(|c| ColumnBuilder::new(c.for_select()))
        .collect();
    for row in rows {
        for (i, builder) in from_select.iter_mut().enumerate() {
            let value: mysql_async::Value = row.get(i).expect("value");
            builder
                .append(&value)
                .map_err(|e| anyhow::anyhow!("select, column {i}: {e:?}"))?;
        }
    }

    // The binlog, from before the insert.
    let stream_conn = server.connect().await?;
    let mut stream = stream_conn
        .get_binlog_stream(
            mysql_async::BinlogStreamRequest::new(77)
                .with_filename(file.as_bytes())
                .with_pos(pos)
                .with_non_blocking(),
        )
        .await?;
    let mut from_binlog: Vec<ColumnBuilder> =
        convs.iter().cloned().map(ColumnBuilder::new).collect();
    let mut seen = 0;
    while let Some(event) = stream.next().await {
        let event = event?;
        let Some(EventData::RowsEvent(rows)) = event.read_data()? else {
            continue;
        };
        let tme = stream.get_tme(rows.table_id()).expect("table map").clone();
        for row in rows.rows(&tme) {
            let (_, after) = row?;
            let after = after.expect("an insert has an after image");
            ensure!(
                after.columns_ref()[0].name_str() == "id",
                "no column names: binlog_row_metadata"
            );
            for (i, builder) in from_binlog.iter_mut().enumerate() {
                let value = match after.as_ref(i) {
                    Some(BinlogValue::Value(v)) => v.clone(),
                    Some(other) => anyhow::bail!("column {i}: {other:?}"),
                    None => mysql_async::Value::NULL,
                };
                builder
                    .append(&value)
                    .map_err(|e| anyhow::anyhow!("binlog, column {i}: {e:?}"))?;
            }
            seen += 1;
        }
    }
    ensure!(seen == 3, "{seen} rows in the binlog");
    let mut arrays = BTreeMap::new();
    for (i, (a, b)) in from_select
        .iter_mut()
        .zip(from_binlog.iter_mut())
        .enumerate()
    {
        let (a, b) = (a.finish(), b.finish());
        let name = tables[0].columns[i].name.clone();
        ensure!(
            a.to_data() == b.to_data(),
            "column {name} differs:\nselect {a:?}\nbinlog {b:?}"
        );
        ensure!(
            name == "id" || b.is_null(2),
            "column {name}: NULL did not stay null"
        );
        arrays.insert(name, b);
    }
    // And they are the values the server holds, at the edges of each range.
    let text = |c: &str, row: usize| {
        arrow::util::display::array_value_to_string(&arrays[c], row).unwrap_or_default()
    };
    for (column, row, expected) in [
        ("tiu", 0, "255"),
        ("mi", 0, "-8388608"),
        ("iu", 0, "4294967295"),
        ("bi", 0, "-9223372036854775808"),
        ("biu", 0, "18446744073709551615"),
        ("d", 0, "-1234567890123456789012345678.1234567891"),
        ("d2", 1, "-999.99"),
        ("db", 0, "1.7976931348623157e308"),
        ("b1", 0, "true"),
        ("b9", 0, "0101"),
        ("dt", 0, "1000-01-01"),
        ("dtm", 0, "9999-12-31T23:59:59.999999"),
        ("ts", 0, "2038-01-19T03:14:07.999Z"),
        ("tm", 0, "-3020399000000"),
        ("y", 0, "2155"),
        ("vc", 0, "Köln 東京 ✓"),
        ("l1", 0, "Straße €"),
        ("bn", 1, "0000"),
        ("e", 0, "it's"),
        ("st", 0, "a,c"),
        ("g", 0, "0101000000000000000000f03f0000000000000040"),
    ] {
        ensure!(
            text(column, row) == expected,
            "{column}[{row}] = {} (expected {expected})",
            text(column, row)
        );
    }
    ensure!(text("j", 0).contains("\"k\"") && text("tx", 0).len() == 3000);
    Ok(())
}

/// The configuration of a pipeline reading `server` into `lake`.
fn mysql_config(server: &MariaDbServer, lake: &std::path::Path, extra: &str) -> String {
    format!(
        "[admin]\nlisten = \"off\"\n\n[source]\nkind = \"mysql\"\nconnection = \"{}\"\n\
         include = [\"shop.*\"]\n\n[sink]\nbase_uri = {:?}\nbuckets = 2\n\n\
         [batch]\nmax_delay = \"200ms\"\n\n{extra}",
        server.url(),
        lake.display().to_string()
    )
}

/// A pipeline running on a thread of its own until [`Running::stop`].
struct Running {
    shutdown: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<inlet_ingest::RunSummary>>,
}

impl Running {
    fn start(config: &str) -> Self {
        let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = inlet_tests::harness::cdc::spawn_until_shutdown(config, shutdown.clone());
        Running { shutdown, thread }
    }

    /// Stops it (as SIGTERM does); an error when a table failed.
    fn stop(self) -> anyhow::Result<()> {
        self.shutdown
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let summary = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("pipeline thread"))??;
        ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
        Ok(())
    }
}

/// Fences, then waits until a running pipeline has everything committed so far.
/// Fences the source, then runs a pipeline until the lake has the fence.
async fn caught_up(
    conn: &mut mysql_async::Conn,
    config: &str,
) -> anyhow::Result<inlet_ingest::RunSummary> {
    let target = fence(conn).await?;
    inlet_tests::harness::cdc::run_until(config, target).await
}

async fn synced(conn: &mut mysql_async::Conn, lake: &std::path::Path) -> anyhow::Result<()> {
    let target = fence(conn).await?;
    wait_for(lake, target).await
}

/// Waits until the lake's fence table holds position `target` (the pipeline runs elsewhere).
async fn wait_for(lake: &std::path::Path, target: u64) -> anyhow::Result<()> {
    wait_within(lake, target, std::time::Duration::from_secs(60)).await
}

/// [`wait_for`], for at most `limit`.
async fn wait_within(
    lake: &std::path::Path,
    target: u64,
    limit: std::time::Duration,
) -> anyhow::Result<()> {
    let uri = lake.join("shop/inlet_fence").display().to_string();
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(table) = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await
            && let Some(c) = inlet_ingest::pipeline::table_checkpoint(&table).await?
            && c.position >= target
        {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the lake did not reach {target}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The error of a pipeline that must fail at start (within 20 s), with its causes.
async fn start_fails(config: &str, what: &str) -> anyhow::Result<String> {
    let run = inlet_tests::harness::cdc::run_until(config, u64::MAX);
    match tokio::time::timeout(std::time::Duration::from_secs(20), run).await {
        Ok(Err(e)) => Ok(format!("{e:#}")),
        Ok(Ok(_)) => anyhow::bail!("{what}: it ran"),
        Err(_) => anyhow::bail!("{what}: no error within 20 s"),
    }
}

/// Canonical rows of `SELECT *` of a source table, converted as inlet converts them.
async fn source_rows(
    conn: &mut mysql_async::Conn,
    table: &str,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    use inlet_ingest::mysql::types::{ColumnBuilder, Conv};
    let (tables, _) = catalog::discover(conn, |t| t == table, &BTreeMap::new()).await?;
    let columns = &tables[0].columns;
    let mut builders: Vec<ColumnBuilder> = columns
        .iter()
        .map(|c| ColumnBuilder::new(Conv::of(c).for_select()))
        .collect();
    // The binary protocol, as the snapshot reads: the text protocol prints a FLOAT with six
    // significant digits, not the value stored.
    let rows: Vec<mysql_async::Row> = conn.exec(format!("SELECT * FROM {table}"), ()).await?;
    for row in rows {
        for (i, b) in builders.iter_mut().enumerate() {
            let v: mysql_async::Value = row.get(i).expect("value");
            b.append(&v).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
    }
    let fields: Vec<arrow::datatypes::Field> = columns
        .iter()
        .zip(&builders)
        .map(|(c, _)| arrow::datatypes::Field::new(&c.name, Conv::of(c).data_type(), true))
        .collect();
    let arrays = builders.iter_mut().map(|b| b.finish()).collect();
    let batch = arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        arrays,
    )?;
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let rows = if batch.num_rows() == 0 {
        Vec::new()
    } else {
        inlet_tests::canonical::rows(&[batch], &names)?
    };
    Ok((rows, names))
}

/// The lake table of `shop.<name>` equals the source, with our reader and with hudi-rs.
async fn assert_matches(
    conn: &mut mysql_async::Conn,
    lake: &std::path::Path,
    name: &str,
) -> anyhow::Result<()> {
    let (expected, columns) = source_rows(conn, &format!("shop.{name}")).await?;
    let uri = lake.join("shop").join(name).display().to_string();
    common::assert_lake_equals(&uri, &columns, &expected, &format!("shop.{name}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_binlog_exactly_once_across_rotation_and_restarts() -> anyhow::Result<()> {
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.orders (id INT UNSIGNED PRIMARY KEY, note VARCHAR(20), amount DECIMAL(10,2),
                                   at DATETIME(6), k TINYINT, big BIGINT UNSIGNED);
         CREATE TABLE shop.lines (o INT, n INT, v TEXT, PRIMARY KEY (o, n));
         INSERT INTO shop.lines VALUES (1, 1, 'a'), (1, 2, 'Köln'), (2, 1, NULL);",
    )
    .await?;
    // More rows than one snapshot chunk (MariaDB's sequence engine needs a current database).
    conn.query_drop("USE shop").await?;
    for start in (0..25_000).step_by(5_000) {
        conn.query_drop(format!(
            "INSERT INTO shop.orders SELECT seq, CONCAT('n', seq), seq / 100, \
             '2024-01-01 00:00:00' + INTERVAL seq SECOND, CAST(seq % 100 AS SIGNED) - 50, 18446744073709551615 - seq \
             FROM seq_{}_to_{}",
            start + 1,
            start + 5_000
        ))
        .await?;
    }
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = mysql_config(&server, &lake, "");
    let summary = caught_up(&mut conn, &config).await?;
    ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
    for table in ["orders", "lines"] {
        assert_matches(&mut conn, &lake, table).await?;
    }

    // Streamed: updates, deletes, a key change, a multi-table transaction, across a rotation.
    conn.query_drop(
        "UPDATE shop.orders SET note = 'updated', amount = amount + 1 WHERE id % 7 = 0;
         DELETE FROM shop.orders WHERE id % 11 = 0;
         FLUSH BINARY LOGS;
         UPDATE shop.lines SET n = n + 100 WHERE o = 1;
         BEGIN; INSERT INTO shop.orders (id, note) VALUES (100000, 'new'); DELETE FROM shop.lines WHERE o = 2; COMMIT;
         INSERT INTO shop.lines VALUES (3, 1, REPEAT('x', 60000));",
    )
    .await?;
    caught_up(&mut conn, &config).await?;
    for table in ["orders", "lines"] {
        assert_matches(&mut conn, &lake, table).await?;
    }
    // They came from the binlog (not from a second copy): operations and positions say so.
    let uri = lake.join("shop/orders").display().to_string();
    let ops = inlet_tests::harness::cdc::lake_rows(&uri, &["id".into(), "_cdc_op".into()]).await?;
    for (id, op) in [(7, "u"), (1, "r"), (100000, "c")] {
        let row = format!("{{\"id\":{id},\"_cdc_op\":\"{op}\"}}");
        ensure!(ops.contains(&row), "{row} not in the lake");
    }

    // Column changes mid-stream (the pipeline running): an added column evolves the lake
    // table, a widened integer widens it, a dropped column stays (null from then on).
    let running = Running::start(&config);
    for step in [
        "ALTER TABLE shop.orders ADD COLUMN extra VARCHAR(10);
         UPDATE shop.orders SET extra = 'x' WHERE id <= 3;",
        "ALTER TABLE shop.lines MODIFY n BIGINT;
         INSERT INTO shop.lines VALUES (5, 5000000000, 'wide');",
        "ALTER TABLE shop.orders DROP COLUMN big;
         INSERT INTO shop.orders (id, note, extra) VALUES (100002, 'no big', 'y');",
    ] {
        conn.query_drop(step).await?;
        synced(&mut conn, &lake).await?;
    }
    running.stop()?;
    for table in ["orders", "lines"] {
        assert_matches(&mut conn, &lake, table).await?;
    }

    // A restart with more changes: each table resumes after its checkpoint, nothing twice.
    conn.query_drop(
        "UPDATE shop.orders SET k = 0 WHERE id < 100; DELETE FROM shop.lines WHERE o = 3;
         FLUSH BINARY LOGS; INSERT INTO shop.orders (id, note) VALUES (100001, 'after restart');",
    )
    .await?;
    caught_up(&mut conn, &config).await?;
    for table in ["orders", "lines"] {
        assert_matches(&mut conn, &lake, table).await?;
    }
    Ok(())
}

/// A restart reads the binlog again from the oldest table checkpoint: a `TRUNCATE` of a table
/// that is already past it must not empty that table again (its later rows are not replayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncate_replayed_by_a_restart_spares_the_rows_written_after_it() -> anyhow::Result<()> {
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.a (id INT PRIMARY KEY, v VARCHAR(10));
         CREATE TABLE shop.b (id INT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO shop.a VALUES (1, 'a'), (2, 'b'); INSERT INTO shop.b VALUES (1, 'x');",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = mysql_config(&server, &lake, "");
    caught_up(&mut conn, &config).await?;
    // b's checkpoint stays here: nothing changes it after.
    conn.query_drop("INSERT INTO shop.b VALUES (2, 'y')")
        .await?;
    caught_up(&mut conn, &config).await?;
    conn.query_drop("TRUNCATE shop.a; INSERT INTO shop.a VALUES (3, 'after')")
        .await?;
    caught_up(&mut conn, &config).await?;
    for table in ["a", "b"] {
        assert_matches(&mut conn, &lake, table).await?;
    }
    // The restart reads again from b's checkpoint, before the truncate.
    conn.query_drop("INSERT INTO shop.b VALUES (3, 'z')")
        .await?;
    caught_up(&mut conn, &config).await?;
    for table in ["a", "b"] {
        assert_matches(&mut conn, &lake, table).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_reestablished_and_a_purged_position_fails_or_resnapshots()
-> anyhow::Result<()> {
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO shop.t VALUES (1, 'a');",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = mysql_config(&server, &lake, "");
    let running = Running::start(&config);
    conn.query_drop("INSERT INTO shop.t VALUES (2, 'b')")
        .await?;
    synced(&mut conn, &lake).await?;
    // The server drops the binlog connection (as a restart or a network cut would). The
    // fence may have come with the snapshot: wait for the stream to be there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let dumps = loop {
        let dumps: Vec<u64> = conn
            .query(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
            )
            .await?;
        if !dumps.is_empty() {
            break dumps;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no binlog dump thread"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for id in dumps {
        conn.query_drop(format!("KILL {id}")).await?;
    }
    conn.query_drop("INSERT INTO shop.t VALUES (3, 'c'); UPDATE shop.t SET v = 'A' WHERE id = 1")
        .await?;
    synced(&mut conn, &lake).await?;
    running.stop()?;
    assert_matches(&mut conn, &lake, "t").await?;

    // While inlet is stopped, the binlogs it needs are purged: the restart says so.
    conn.query_drop(
        "INSERT INTO shop.t VALUES (4, 'd'); DELETE FROM shop.t WHERE id = 2; FLUSH BINARY LOGS",
    )
    .await?;
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await?
        .expect("status");
    let current: String = row.get(0).expect("file");
    // A dump thread of the stopped pipeline lingers until the server next writes to it; it
    // would keep its file from being purged.
    let dumps: Vec<u64> = conn
        .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
        .await?;
    for id in dumps {
        let _ = conn.query_drop(format!("KILL {id}")).await;
    }
    // MariaDB keeps a file until its transactions are flushed (its binlog checkpoint): retry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        conn.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
            .await?;
        let left: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
        let left: Vec<String> = left.iter().filter_map(|r| r.get(0)).collect();
        if left == vec![current.clone()] {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "not purged: {left:?}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let err = start_fails(&config, "the restart after the purge").await?;
    ensure!(
        err.contains("gone from the server") && err.contains("on_gap") && err.contains("shop.t"),
        "{err}"
    );
    // With on_gap = "resnapshot" the tables are emptied and copied again: the row deleted in
    // the lost binlog is gone from the lake too.
    let config = config.replace(
        "include = [\"shop.*\"]\n",
        "include = [\"shop.*\"]\non_gap = \"resnapshot\"\n",
    );
    let summary = caught_up(&mut conn, &config).await?;
    ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_matches(&mut conn, &lake, "t").await?;
    conn.query_drop("UPDATE shop.t SET v = 'after' WHERE id = 4")
        .await?;
    caught_up(&mut conn, &config).await?;
    assert_matches(&mut conn, &lake, "t").await?;
    Ok(())
}

/// Binlog positions of one server mean nothing in another's binlog (a failover to a replica,
/// or the connection moved to another database): the lake tables' checkpoints name the server
/// they were read from, and a restart on another one fails saying so, or with
/// `on_gap = "resnapshot"` copies the tables again from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_of_another_server_are_refused_or_copied_again() -> anyhow::Result<()> {
    use inlet_tests::harness::mariadb::BINLOG_ARGS;
    let schema = "CREATE DATABASE shop;
                  CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
                  CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10));";
    let first = MariaDbServer::start()?;
    let mut a = first.connect().await?;
    a.query_drop(format!(
        "{schema} INSERT INTO shop.t VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    ))
    .await?;
    let second = MariaDbServer::start_with(&[BINLOG_ARGS, &["--server-id=2"]].concat())?;
    let mut b = second.connect().await?;
    b.query_drop(format!(
        "{schema} INSERT INTO shop.t VALUES (2, 'B'), (5, 'e');"
    ))
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let on_a = mysql_config(&first, &lake, "");
    caught_up(&mut a, &on_a).await?;
    assert_matches(&mut a, &lake, "t").await?;

    // A server that tells no difference (MariaDB's server_id is all it has, and 1 is the
    // default) but cannot serve the position: an error, not reconnecting forever.
    let third = MariaDbServer::start()?;
    let mut c = third.connect().await?;
    c.query_drop(format!(
        "{schema} INSERT INTO shop.t VALUES (9, REPEAT('x', 10));"
    ))
    .await?;
    let err = start_fails(
        &mysql_config(&third, &lake, ""),
        "the start at a position the server lacks",
    )
    .await?;
    ensure!(
        err.contains("cannot send its binlog from binlog.000001:"),
        "{err}"
    );

    let on_b = mysql_config(&second, &lake, "");
    let err = start_fails(&on_b, "the start on another server").await?;
    ensure!(
        err.contains("server_id 1") && err.contains("server_id 2") && err.contains("on_gap"),
        "{err}"
    );
    let on_b = on_b.replace(
        "include = [\"shop.*\"]\n",
        "include = [\"shop.*\"]\non_gap = \"resnapshot\"\n",
    );
    let summary = caught_up(&mut b, &on_b).await?;
    ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_matches(&mut b, &lake, "t").await?;
    b.query_drop("UPDATE shop.t SET v = 'after' WHERE id = 5; DELETE FROM shop.t WHERE id = 2")
        .await?;
    caught_up(&mut b, &on_b).await?;
    assert_matches(&mut b, &lake, "t").await?;
    Ok(())
}

/// A failover: the lake follows a primary, the primary is lost, and inlet goes on reading its
/// replica. Binlog positions differ between the two servers (the primary's are further on), so
/// only the GTID positions in the checkpoints say where to continue, and the replica's positions
/// must sort after the primary's or its changes would lose to rows already in the lake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_replica_continues_from_the_gtid_positions() -> anyhow::Result<()> {
    use inlet_tests::harness::cdc::run_until;
    use inlet_tests::harness::mariadb::BINLOG_ARGS;
    let primary = MariaDbServer::start()?;
    let replica = MariaDbServer::start_with(
        &[BINLOG_ARGS, &["--server-id=2", "--log-slave-updates"]].concat(),
    )?;
    let mut a = primary.connect().await?;
    let mut b = replica.connect().await?;
    a.query_drop("FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS")
        .await?;
    b.query_drop(format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
         MASTER_USE_GTID = slave_pos; START SLAVE",
        primary.port()
    ))
    .await?;
    a.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20));
         CREATE TABLE shop.u (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO shop.t VALUES (1, 'a'), (2, 'b'), (3, 'c');
         INSERT INTO shop.u VALUES (1, 'x'), (2, 'y');",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let on_primary = mysql_config(&primary, &lake, "");
    caught_up(&mut a, &on_primary).await?;
    // t moves on; u's checkpoint stays behind.
    a.query_drop("UPDATE shop.t SET v = 'a2' WHERE id = 1; DELETE FROM shop.t WHERE id = 3")
        .await?;
    caught_up(&mut a, &on_primary).await?;
    for table in ["t", "u"] {
        assert_matches(&mut a, &lake, table).await?;
    }
    // Changes inlet has not read when the primary is lost; the replica has them.
    a.query_drop(
        "UPDATE shop.t SET v = 'late' WHERE id = 2; INSERT INTO shop.u VALUES (3, 'z');
         DELETE FROM shop.u WHERE id = 2;",
    )
    .await?;
    let at: String = a
        .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
        .await?
        .expect("gtid");
    let waited: Option<i64> = b
        .exec_first("SELECT MASTER_GTID_WAIT(?, 30)", (at,))
        .await?;
    ensure!(waited == Some(0), "the replica did not catch up");
    drop(a);
    drop(primary);
    b.query_drop("STOP SLAVE; RESET SLAVE ALL").await?;
    // The replica is the primary now: changes to keys the lake already holds.
    b.query_drop(
        "UPDATE shop.t SET v = 'on replica' WHERE id IN (1, 2); DELETE FROM shop.u WHERE id = 1;
         INSERT INTO shop.t VALUES (4, 'd');",
    )
    .await?;
    let on_replica = mysql_config(&replica, &lake, "");
    // The replica's positions are of the next generation.
    let generation = 1u64 << 52;
    let target = fence(&mut b).await? | generation;
    let summary = run_until(&on_replica, target).await?;
    ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
    for table in ["t", "u"] {
        assert_matches(&mut b, &lake, table).await?;
    }
    let uri = lake.join("shop/t").display().to_string();
    let table = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await?;
    let checkpoint = inlet_ingest::pipeline::table_checkpoint(&table)
        .await?
        .expect("checkpoint");
    ensure!(
        checkpoint.origin.as_deref() == Some("server_id 2")
            && checkpoint
                .gtid
                .as_deref()
                .is_some_and(|g| g.starts_with("0-2-")),
        "{checkpoint:?}"
    );
    // A restart on the replica goes on by position, in the new generation.
    b.query_drop("UPDATE shop.u SET v = 'again' WHERE id = 3; DELETE FROM shop.t WHERE id = 4")
        .await?;
    let target = fence(&mut b).await? | generation;
    run_until(&on_replica, target).await?;
    for table in ["t", "u"] {
        assert_matches(&mut b, &lake, table).await?;
    }
    Ok(())
}

/// `inlet run` SIGKILLed at random moments (during the snapshot and while streaming) under a
/// concurrent workload of small transactions, key moves and multi-table transactions; after a
/// last run catches up, every lake table equals its source (our reader and hudi-rs), no key twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_sigkill_during_a_concurrent_workload() -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("INLET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (replay with INLET_CRASH_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.a (id INT PRIMARY KEY, v INT, body TEXT);
         CREATE TABLE shop.b (k VARCHAR(10) PRIMARY KEY, n DECIMAL(10,2));
         USE shop;
         INSERT INTO shop.a SELECT seq, seq, IF(seq % 50 = 0, REPEAT('t', 5000), NULL)
           FROM seq_1_to_100000;",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config_path = dir.path().join("inlet.toml");
    std::fs::write(&config_path, mysql_config(&server, &lake, ""))?;
    let log = dir.path().join("inlet.log");

    let mut workload_conn = server.connect().await?;
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
                0 => format!("DELETE FROM shop.a WHERE id = {id}"),
                1 => format!(
                    "INSERT INTO shop.a VALUES ({id}, {i}, NULL) ON DUPLICATE KEY UPDATE v = {i}"
                ),
                2 => format!(
                    "BEGIN; UPDATE shop.a SET v = v + 1 WHERE id BETWEEN {id} AND {id} + 20; \
                     INSERT INTO shop.b VALUES ('k{}', {i}) ON DUPLICATE KEY UPDATE n = n + 1; COMMIT",
                    id % 300
                ),
                3 => format!("DELETE FROM shop.b WHERE k = 'k{}'", id % 300),
                // A key change (skipped when the new key is taken).
                4 => format!("UPDATE IGNORE shop.a SET id = id + 200000 WHERE id = {id}"),
                _ => format!("UPDATE shop.a SET v = {i} WHERE id = {}", (id / 50) * 50),
            };
            workload_conn.query_drop(&sql).await?;
            if i % 50 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        anyhow::Ok(i)
    });

    for k in 0..5 {
        let mut child = inlet_tests::harness::spawn_inlet(&config_path, &log)?;
        let ms = rng.random_range(300..2500);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        child.kill()?; // SIGKILL
        child.wait()?;
        eprintln!("kill {k} after {ms} ms");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statements = workload.await??;
    eprintln!("workload: {statements} statements");

    // Catch up with a last run, stopped with SIGTERM once everything is in the lake.
    let target = fence(&mut conn).await?;
    let mut child = inlet_tests::harness::spawn_inlet(&config_path, &log)?;
    let waited = wait_within(&lake, target, std::time::Duration::from_secs(240)).await;
    std::process::Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    waited.map_err(|e| anyhow::anyhow!("{e:#}; inlet log:\n{log_text}"))?;
    ensure!(
        status.success(),
        "inlet run exited with {status}:\n{log_text}"
    );
    eprintln!(
        "runs that streamed: {}, snapshot resumes: {}",
        log_text.matches("Streaming the binlog").count(),
        log_text.matches("Resuming the snapshot").count()
    );
    for table in ["a", "b"] {
        assert_matches(&mut conn, &lake, table).await?;
    }
    Ok(())
}

/// Tables copied in many small key ranges, three at once, while a writer updates, deletes,
/// inserts and moves keys in them: once the binlog has caught up, the lake equals the source.
/// The keys are those a range would skip if the server compared them other than it orders them:
/// bigints past 2^53 (equal as doubles), bytes that are not UTF-8, an enum (ordered by its
/// number, not its label), decimals that differ in the 30th digit, microseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_in_key_ranges_under_concurrent_writes_converges() -> anyhow::Result<()> {
    let flushes = snapshot_under_concurrent_writes("none").await?;
    ensure!(
        flushes == 0,
        "the lock-free snapshot ran {flushes} FLUSH statements"
    );
    Ok(())
}

/// The same with the start position read under a global read lock (what MySQL needs, as it
/// has no lock-free snapshot position): the lock is taken, and the lake converges as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_minimal_locking_under_concurrent_writes_converges() -> anyhow::Result<()> {
    let flushes = snapshot_under_concurrent_writes("minimal").await?;
    ensure!(
        flushes == 1,
        "{flushes} FLUSH statements, expected the one of the lock"
    );
    Ok(())
}

/// [`a_snapshot_in_key_ranges_under_concurrent_writes_converges`] with `snapshot_locking`;
/// returns the FLUSH statements the server ran meanwhile.
async fn snapshot_under_concurrent_writes(locking: &str) -> anyhow::Result<u64> {
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.pairs (a BIGINT, b VARBINARY(8), v VARCHAR(40), PRIMARY KEY (a, b));
         INSERT INTO shop.pairs SELECT 9007199254740000 + seq DIV 3, UNHEX(CONCAT(HEX(seq % 3), 'FF00')),
           MD5(seq) FROM seq_1_to_3000;
         CREATE TABLE shop.tags (t ENUM('z','a','m'), n DECIMAL(30,10), d DATETIME(6), w INT,
           PRIMARY KEY (t, n, d));
         INSERT INTO shop.tags SELECT ELT(1 + seq % 3, 'z', 'a', 'm'),
           12345678901234567890 + seq * 0.0000000001, '2024-01-01' + INTERVAL seq MICROSECOND, seq
           FROM seq_1_to_2000;",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = mysql_config(&server, &lake, "").replace(
        "include = [\"shop.*\"]\n",
        &format!(
            "include = [\"shop.*\"]\nchunk_size = 16\nsnapshot_parallelism = 3\n\
             snapshot_locking = {locking:?}\n"
        ),
    );
    let flushes = || async {
        let mut conn = server.connect().await?;
        let count: Option<(String, u64)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Com_flush'")
            .await?;
        anyhow::Ok(count.map_or(0, |(_, n)| n))
    };
    let flushes_before = flushes().await?;
    // The writer starts before the pipeline and goes on until both copies are done and a while
    // after, so that it writes before, during and after the snapshot.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = server.connect().await?;
    let writing = tokio::spawn({
        let done = done.clone();
        async move {
            let mut i = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let mut sql = format!(
                    "UPDATE shop.pairs SET v = 'u{i}' WHERE a = 9007199254740000 + {} AND b = x'00ff00';
                     UPDATE shop.tags SET w = w + 1000000, t = IF(t = 'z', 'm', t)
                       WHERE w % 50 = {} AND w < 300;
                     INSERT INTO shop.tags VALUES ('a', 0.5 + {i}, NOW(6), -{i});",
                    i * 3 % 1000,
                    i % 50
                );
                if i.is_multiple_of(3) {
                    sql.push_str(&format!(
                        "DELETE FROM shop.pairs WHERE a = 9007199254740000 + {} AND b <> x'02ff00';
                         DELETE FROM shop.tags WHERE w = {};",
                        i * 7 % 1000,
                        i * 6 + 1
                    ));
                }
                if i.is_multiple_of(5) {
                    sql.push_str(&format!(
                        "UPDATE shop.pairs SET a = a + 5000
                         WHERE a = 9007199254740000 + {} AND b = x'01ff00';",
                        i * 11 % 1000
                    ));
                }
                writer.query_drop(sql).await?;
                i += 1;
            }
            anyhow::Ok(i)
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let running = Running::start(&config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for table in ["pairs", "tags"] {
        let uri = lake.join("shop").join(table).display().to_string();
        loop {
            if let Ok(t) = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await
                && let Some(c) = inlet_ingest::pipeline::table_checkpoint(&t).await?
                && c.snapshot == inlet_ingest::change::SnapshotState::Done
            {
                break;
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "{table} was not copied"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let statements = writing.await??;
    ensure!(statements > 10, "the writer wrote only {statements} times");
    synced(&mut conn, &lake).await?;
    synced(&mut conn, &lake).await?;
    running.stop()?;
    for table in ["pairs", "tags"] {
        assert_matches(&mut conn, &lake, table).await?;
    }
    // The rows the writer never touches came from the copy alone.
    for (table, untouched) in [("pairs", 1000), ("tags", 1500)] {
        let uri = lake.join("shop").join(table).display().to_string();
        let ops = inlet_tests::harness::cdc::lake_rows(&uri, &["_cdc_op".into()]).await?;
        let copied = ops.iter().filter(|r| r.contains("\"r\"")).count();
        ensure!(
            copied >= untouched,
            "only {copied} rows of {table} came from the snapshot"
        );
    }
    Ok(flushes().await? - flushes_before)
}

/// A copy killed midway resumes after the last key committed. The key begins with bytes that
/// are not UTF-8: kept in the checkpoint as lossy text, the resumed range would start above the
/// rest of the table and copy nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_snapshot_resumes_after_the_last_copied_key() -> anyhow::Result<()> {
    use std::process::{Command, Stdio};
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.big (b VARBINARY(4), id INT, v VARCHAR(40), PRIMARY KEY (b, id));
         INSERT INTO shop.big SELECT CONCAT(x'80', CHAR(seq DIV 1000)), seq, MD5(seq)
           FROM seq_1_to_60000;",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config =
        mysql_config(&server, &lake, "").replace("[batch]\n", "[batch]\nmax_bytes = 400000\n");
    let config_path = dir.path().join("inlet.toml");
    std::fs::write(&config_path, &config)?;
    // Killed once the first chunks are committed.
    let mut child = Command::new(inlet_tests::harness::inlet_bin())
        .args(["run", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let timeline = lake.join("shop/big/.hoodie");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let commits = std::fs::read_dir(&timeline)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".commit"))
                    .count()
            })
            .unwrap_or(0);
        if commits >= 2 {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "no snapshot commits");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill()?;
    child.wait()?;
    let uri = lake.join("shop/big").display().to_string();
    let table = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await?;
    let checkpoint = inlet_ingest::pipeline::table_checkpoint(&table)
        .await?
        .expect("checkpoint");
    ensure!(
        matches!(&checkpoint.snapshot, inlet_ingest::change::SnapshotState::After(k) if !k.is_empty()),
        "the copy was not interrupted midway: {checkpoint:?}"
    );
    // Changes while inlet is down, in the copied and in the uncopied range.
    conn.query_drop(
        "UPDATE shop.big SET v = 'changed' WHERE id IN (1, 5000, 59999);
         DELETE FROM shop.big WHERE id IN (2, 59998);
         INSERT INTO shop.big VALUES (x'80ff', 200000, 'new');",
    )
    .await?;
    // The restart copies the rest, then replays the binlog from where the first rows were
    // copied. The first fence may arrive with the copy; the second only through the binlog,
    // after everything it replays before it.
    let running = Running::start(&config);
    synced(&mut conn, &lake).await?;
    synced(&mut conn, &lake).await?;
    running.stop()?;
    assert_matches(&mut conn, &lake, "big").await?;
    Ok(())
}

/// Every mapped type through `inlet run` into the lake, by snapshot and by binlog, read back by
/// hudi-rs and by our reader equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_reaches_the_lake_exactly() -> anyhow::Result<()> {
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.types (
           id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, mi MEDIUMINT, iu INT UNSIGNED,
           bi BIGINT, biu BIGINT UNSIGNED, d DECIMAL(38,10), f FLOAT, db DOUBLE, b1 BIT(1), b9 BIT(9),
           dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6), y YEAR, vc VARCHAR(20),
           l1 VARCHAR(10) CHARACTER SET latin1, tx TEXT, bn BINARY(2), bl BLOB,
           e ENUM('x','it''s','a,b'), st SET('a','b','c'), j JSON, g GEOMETRY)",
    )
    .await?;
    let row = |id: i32| {
        format!(
            "({id}, -128, 255, -8388608, 4294967295, -9223372036854775808, 18446744073709551615,
              -1234567890123456789012345678.1234567891, 3.40282e38, -1.7976931348623157e308, b'1',
              b'100000001', '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999',
              '-838:59:59.000000', 2155, 'Köln 東京 ✓', 'Straße €', REPEAT('t', 3000), x'00ff',
              x'deadbeef', 'it''s', 'a,c', '{{\"k\": [1, null]}}', ST_GeomFromText('POINT(1 2)'))"
        )
    };
    conn.query_drop(format!(
        "INSERT INTO shop.types VALUES {}, (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', '', '', x'0000', x'', 'x', '', '[]', NULL)",
        row(1)
    ))
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = mysql_config(&server, &lake, "");
    caught_up(&mut conn, &config).await?;
    assert_matches(&mut conn, &lake, "types").await?;
    // The same values through the binlog, and an update of every column.
    conn.query_drop(format!(
        "INSERT INTO shop.types VALUES {};
         UPDATE shop.types SET ti = 127, d = 0.0000000001, dtm = '1970-01-01 00:00:00', e = 'a,b',
           st = '', vc = NULL WHERE id = 1;",
        row(3)
    ))
    .await?;
    caught_up(&mut conn, &config).await?;
    assert_matches(&mut conn, &lake, "types").await?;
    Ok(())
}

/// inlet's row-image decoder against the server, with generated values: every length prefix
/// (CHAR of more than 255 bytes, whose length MySQL splits across its metadata bytes, VARCHAR
/// of two-byte lengths, TINY/MEDIUM/LONG text and blobs), decimals of every group layout,
/// datetimes and timestamps of every fraction width, integers of every width at random and at
/// their edges, floats from the whole bit space (but NaN and infinities, which MariaDB refuses),
/// text of one- to four-byte characters. Inserted, updated (keys moved too) and deleted
/// while inlet streams; the lake equals the source by both readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_values_of_every_row_image_layout_reach_the_lake() -> anyhow::Result<()> {
    use mysql_async::Value;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.images (
           id INT PRIMARY KEY, c100 CHAR(100), c10 CHAR(10) CHARACTER SET latin1, v300 VARCHAR(300),
           tt TINYTEXT, mt MEDIUMTEXT, lb LONGBLOB, vb VARBINARY(300), bn BINARY(4),
           d1 DECIMAL(1,0), d9 DECIMAL(9,9), d18 DECIMAL(18,4), d30 DECIMAL(30,0), d38 DECIMAL(38,19),
           dt0 DATETIME, dt1 DATETIME(1), dt3 DATETIME(3), dt6 DATETIME(6), dd DATE,
           ts0 TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL, ts6 TIMESTAMP(6) NULL,
           ti TINYINT, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
           i INT, bi BIGINT, biu BIGINT UNSIGNED, f FLOAT, db DOUBLE, y YEAR)",
    )
    .await?;
    // The types mysql_common decodes for inlet: times of every fraction width and sign, bits,
    // an enum of more than 255 labels (a two-byte index), a set of more than 8 (two bytes).
    let labels: Vec<String> = (0..300).map(|i| format!("'l{i}'")).collect();
    let members: Vec<String> = (0..12).map(|i| format!("'m{i}'")).collect();
    conn.query_drop(format!(
        "ALTER TABLE shop.images ADD COLUMN t0 TIME, ADD COLUMN t3 TIME(3), ADD COLUMN t6 TIME(6),
           ADD COLUMN b1 BIT(1), ADD COLUMN b64 BIT(64), ADD COLUMN e ENUM({}), ADD COLUMN st SET({})",
        labels.join(","),
        members.join(",")
    ))
    .await?;
    let seed: u64 = std::env::var("INLET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("seed {seed} (replay with INLET_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = mysql_config(&server, &lake, "");
    // Streaming once the fence reaches the lake: every row below comes through the binlog.
    let running = Running::start(&config);
    synced(&mut conn, &lake).await?;

    fn text(rng: &mut StdRng, max_chars: usize, latin1: bool) -> String {
        let n = [0, 1, max_chars, rng.random_range(0..=max_chars)][rng.random_range(0..4)];
        (0..n)
            .map(|_| {
                let pool: &[char] = if latin1 {
                    &['a', 'Z', ' ', 'ö', '€', '\'', ',', 'ß']
                } else {
                    &['a', 'Z', ' ', 'ö', '€', '東', '😀', '\'', '\\', '\u{0}']
                };
                pool[rng.random_range(0..pool.len())]
            })
            .collect::<String>()
            // CHAR drops trailing spaces on the way in, as SELECT shows.
            .trim_end_matches(' ')
            .to_string()
    }
    fn bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
        let n = [0, max, rng.random_range(0..=max)][rng.random_range(0..3)];
        (0..n).map(|_| rng.random()).collect()
    }
    fn decimal(rng: &mut StdRng, precision: u32, scale: u32) -> String {
        let digits = |rng: &mut StdRng, n: u32| -> String {
            (0..n)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect()
        };
        let sign = if rng.random_bool(0.5) { "-" } else { "" };
        let integral = digits(rng, precision - scale);
        let fraction = digits(rng, scale);
        let integral = if integral.is_empty() { "0" } else { &integral };
        if fraction.is_empty() {
            format!("{sign}{integral}")
        } else {
            format!("{sign}{integral}.{fraction}")
        }
    }
    fn datetime(rng: &mut StdRng, from_year: i32, to_year: i32, fsp: u32) -> String {
        let micros = rng.random_range(0..1_000_000u32) / 10u32.pow(6 - fsp) * 10u32.pow(6 - fsp);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{micros:06}",
            rng.random_range(from_year..=to_year),
            rng.random_range(1..=12),
            rng.random_range(1..=28),
            rng.random_range(0..24),
            rng.random_range(0..60),
            rng.random_range(0..60),
        )
    }
    fn time(rng: &mut StdRng, fsp: u32) -> String {
        let micros = rng.random_range(0..1_000_000u32) / 10u32.pow(6 - fsp) * 10u32.pow(6 - fsp);
        let hours = [0, 838, rng.random_range(0..839)][rng.random_range(0..3)];
        let (minutes, seconds) = if hours == 838 {
            (59, 59)
        } else {
            (rng.random_range(0..60), rng.random_range(0..60))
        };
        let micros = if hours == 838 { 0 } else { micros };
        let sign = if rng.random_bool(0.5) { "-" } else { "" };
        format!("{sign}{hours}:{minutes:02}:{seconds:02}.{micros:06}")
    }
    fn int(rng: &mut StdRng, low: i128, high: i128) -> Value {
        let v = match rng.random_range(0..4) {
            0 => low,
            1 => high,
            _ => rng.random_range(low..=high),
        };
        if v < 0 {
            Value::Int(v as i64)
        } else {
            Value::UInt(v as u64)
        }
    }
    fn finite(rng: &mut StdRng) -> f64 {
        loop {
            let v = f64::from_bits(rng.random());
            if v.is_finite() {
                return v;
            }
        }
    }
    fn finite32(rng: &mut StdRng) -> f32 {
        loop {
            let v = f32::from_bits(rng.random());
            if v.is_finite() {
                return v;
            }
        }
    }
    let row = |rng: &mut StdRng, id: i64| -> Vec<Value> {
        let mut values: Vec<Value> = vec![
            Value::Int(id),
            Value::from(text(rng, 100, false)),
            Value::from(text(rng, 10, true)),
            Value::from(text(rng, 300, false)),
            Value::from(text(rng, 63, false)),
            Value::from(text(rng, 5000, false)),
            Value::Bytes(bytes(rng, 70_000)),
            Value::Bytes(bytes(rng, 300)),
            Value::Bytes(bytes(rng, 4)),
            Value::from(decimal(rng, 1, 0)),
            Value::from(decimal(rng, 9, 9)),
            Value::from(decimal(rng, 18, 4)),
            Value::from(decimal(rng, 30, 0)),
            Value::from(decimal(rng, 38, 19)),
            Value::from(datetime(rng, 1000, 9999, 0)),
            Value::from(datetime(rng, 1000, 9999, 1)),
            Value::from(datetime(rng, 1000, 9999, 3)),
            Value::from(datetime(rng, 1000, 9999, 6)),
            Value::from(datetime(rng, 1000, 9999, 0)[..10].to_string()),
            Value::from(datetime(rng, 1971, 2037, 0)),
            Value::from(datetime(rng, 1971, 2037, 2)),
            Value::from(datetime(rng, 1971, 2037, 6)),
            int(rng, -128, 127),
            int(rng, -32768, 32767),
            int(rng, 0, 65535),
            int(rng, -8388608, 8388607),
            int(rng, 0, 16777215),
            int(rng, i32::MIN.into(), i32::MAX.into()),
            int(rng, i64::MIN.into(), i64::MAX.into()),
            int(rng, 0, u64::MAX.into()),
            Value::Float(finite32(rng)),
            Value::Double(finite(rng)),
            // 0 is the year 0000, stored as 0 beside 1901–2155 as 1–255.
            [Value::Int(0), Value::Int(1901), Value::Int(2155)][rng.random_range(0..3)].clone(),
            Value::from(time(rng, 0)),
            Value::from(time(rng, 3)),
            Value::from(time(rng, 6)),
            Value::Bytes(vec![rng.random_range(0..2u8)]),
            Value::Bytes(rng.random::<u64>().to_be_bytes().to_vec()),
            Value::from(format!("l{}", rng.random_range(0..300))),
            Value::from(
                (0..12)
                    .filter(|_| rng.random_bool(0.4))
                    .map(|i| format!("m{i}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        // Any column but the key may be null.
        for value in values.iter_mut().skip(1) {
            if rng.random_bool(0.08) {
                *value = Value::NULL;
            }
        }
        values
    };
    let insert = format!(
        "INSERT INTO shop.images VALUES ({})",
        vec!["?"; 40].join(", ")
    );
    let mut ids: Vec<i64> = Vec::new();
    for round in 0..6 {
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await?;
        for _ in 0..40 {
            let id = rng.random_range(0..1_000_000);
            if ids.contains(&id) {
                continue;
            }
            tx.exec_drop(&insert, row(&mut rng, id)).await?;
            ids.push(id);
        }
        for _ in 0..10 {
            let id = ids[rng.random_range(0..ids.len())];
            let mut values = row(&mut rng, id);
            // Every column but the key, or the key moved.
            if rng.random_bool(0.3) {
                let to = 1_000_000 + round * 1000 + rng.random_range(0..1000);
                if !ids.contains(&to) {
                    tx.exec_drop("UPDATE shop.images SET id = ? WHERE id = ?", (to, id))
                        .await?;
                    ids.retain(|&i| i != id);
                    ids.push(to);
                }
                continue;
            }
            values.remove(0);
            values.push(Value::Int(id));
            tx.exec_drop(
                "UPDATE shop.images SET c100 = ?, c10 = ?, v300 = ?, tt = ?, mt = ?, lb = ?, vb = ?,
                   bn = ?, d1 = ?, d9 = ?, d18 = ?, d30 = ?, d38 = ?, dt0 = ?, dt1 = ?, dt3 = ?,
                   dt6 = ?, dd = ?, ts0 = ?, ts2 = ?, ts6 = ?, ti = ?, si = ?, siu = ?, mi = ?,
                   miu = ?, i = ?, bi = ?, biu = ?, f = ?, db = ?, y = ?, t0 = ?, t3 = ?,
                   t6 = ?, b1 = ?, b64 = ?, e = ?, st = ? WHERE id = ?",
                values,
            )
            .await?;
        }
        for _ in 0..5 {
            let id = ids.swap_remove(rng.random_range(0..ids.len()));
            tx.exec_drop("DELETE FROM shop.images WHERE id = ?", (id,))
                .await?;
        }
        tx.commit().await?;
    }
    let count: Option<u64> = conn.query_first("SELECT COUNT(*) FROM shop.images").await?;
    ensure!(
        count == Some(ids.len() as u64) && ids.len() > 150,
        "{count:?} rows"
    );
    synced(&mut conn, &lake).await?;
    running.stop()?;
    assert_matches(&mut conn, &lake, "images").await?;
    Ok(())
}

/// A session may log changes with `binlog_row_image = MINIMAL` whatever the server's setting:
/// its inserts and updates then lack columns, whose values the binlog does not hold. Such a
/// row goes to the pipeline's recovery (here: the table stops, naming the setting) rather than
/// into the lake with nulls; a delete, which needs only the key, is captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_logged_without_every_column_are_refused_not_nulled() -> anyhow::Result<()> {
    let server = MariaDbServer::start()?;
    let mut conn = server.connect().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6));
         CREATE TABLE shop.t (id INT PRIMARY KEY, a VARCHAR(10), b INT DEFAULT 7);
         INSERT INTO shop.t VALUES (1, 'one', 1), (2, 'two', 2);
         CREATE TABLE shop.u (id INT PRIMARY KEY, a VARCHAR(10), b INT DEFAULT 7);",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = mysql_config(&server, &lake, "");
    caught_up(&mut conn, &config).await?;

    // A minimal delete is whole: only its key is needed.
    conn.query_drop("SET SESSION binlog_row_image = 'MINIMAL'; DELETE FROM shop.t WHERE id = 2")
        .await?;
    caught_up(&mut conn, &config).await?;
    assert_matches(&mut conn, &lake, "t").await?;

    // A minimal update holds `a` only (and the key in its before image), not `b`, and a minimal
    // insert leaves out the column it did not name: both tables stop, naming the setting.
    conn.query_drop(
        "UPDATE shop.t SET a = 'uno' WHERE id = 1; INSERT INTO shop.u (id, a) VALUES (1, 'x')",
    )
    .await?;
    let summary = caught_up(&mut conn, &config).await?;
    for table in ["shop.t", "shop.u"] {
        let failed: Vec<&(TableId, String)> = summary
            .failed
            .iter()
            .filter(|(t, _)| t.to_string() == table)
            .collect();
        ensure!(
            failed.len() == 1 && failed[0].1.contains("binlog_row_image"),
            "{table}: {:?}",
            summary.failed
        );
    }
    // The lake still holds the row as it was, not `b` as null.
    let uri = lake.join("shop/t").display().to_string();
    let rows =
        inlet_tests::harness::cdc::lake_rows(&uri, &["id".into(), "a".into(), "b".into()]).await?;
    ensure!(rows == [r#"{"id":1,"a":"one","b":1}"#], "{rows:?}");
    Ok(())
}
