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
