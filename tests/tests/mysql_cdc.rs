//! MySQL/MariaDB change capture against a throwaway MariaDB (`mariadb-install-db` +
//! `mariadbd --log-bin --binlog-format=ROW --binlog-row-metadata=FULL`): so far the prerequisite
//! checks and the discovery of tables.

use std::collections::BTreeMap;

use anyhow::ensure;
use inlet_ingest::change::TableId;
use inlet_ingest::mysql::MysqlConnect;
use inlet_ingest::mysql::catalog;
use inlet_tests::harness::mariadb::MariaDbServer;
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
        ensure!(name == "id" || b.is_null(2), "column {name}: NULL did not stay null");
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
