//! What the server is and holds: its version and binlog settings, checked against what capture
//! needs (each problem names the statement or setting that fixes it), and the captured tables
//! with their columns and keys, from `information_schema`.

use std::collections::BTreeMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::change::TableId;
use crate::error::{Error, Result};

/// The server's identity and binlog settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `@@version`, e.g. `10.11.19-MariaDB-0+deb12u1-log` or `8.0.36`.
    pub version: String,
    pub mariadb: bool,
    pub log_bin: bool,
    pub binlog_format: String,
    pub binlog_row_image: String,
    /// `None` on servers without the setting (MySQL before 8.0.14, MariaDB before 10.5).
    pub binlog_row_metadata: Option<String>,
    /// Seconds binlogs are kept; 0 = forever.
    pub binlog_expire_seconds: u64,
    /// The account inlet connected as, `user@host`.
    pub current_user: String,
    /// Which server this is, for checkpoints (binlog positions of another server mean nothing
    /// here): MySQL's `server_uuid`, MariaDB's `server_id` (it has no uuid; replicas of one
    /// primary must differ in it).
    pub identity: String,
}

impl ServerInfo {
    /// `MariaDB 10.11.19` or `MySQL 8.0.36`, for messages.
    pub fn name(&self) -> String {
        let number = self.version.split('-').next().unwrap_or(&self.version);
        if self.mariadb {
            format!("MariaDB {number}")
        } else {
            format!("MySQL {number}")
        }
    }
}

fn query_err(context: &str) -> impl Fn(mysql_async::Error) -> Error + '_ {
    move |source| Error::Mysql {
        context: context.to_string(),
        source,
    }
}

/// A global variable, `None` when the server does not have it.
async fn variable(conn: &mut Conn, name: &str) -> Result<Option<String>> {
    let row: Option<(String, Option<String>)> = conn
        .exec_first(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES \
             WHERE VARIABLE_NAME = ?",
            (name.to_ascii_uppercase(),),
        )
        .await
        .map_err(query_err("reading the server's variables"))?;
    Ok(row.and_then(|(_, v)| v))
}

/// Reads the server's version and binlog settings.
pub async fn server(conn: &mut Conn) -> Result<ServerInfo> {
    let version = variable(conn, "version").await?.unwrap_or_default();
    let on = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    let log_bin = on(variable(conn, "log_bin").await?);
    let binlog_format = variable(conn, "binlog_format").await?.unwrap_or_default();
    let binlog_row_image = variable(conn, "binlog_row_image")
        .await?
        .unwrap_or_else(|| "FULL".to_string());
    let binlog_row_metadata = variable(conn, "binlog_row_metadata").await?;
    let expire_seconds = match variable(conn, "binlog_expire_logs_seconds").await? {
        Some(v) => v.parse().unwrap_or(0),
        None => variable(conn, "expire_logs_days")
            .await?
            .and_then(|d| d.parse::<f64>().ok())
            .map_or(0, |d| (d * 86_400.0) as u64),
    };
    let current_user: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .map_err(query_err("reading the current user"))?;
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    let identity = if mariadb {
        format!(
            "server_id {}",
            variable(conn, "server_id").await?.unwrap_or_default()
        )
    } else {
        format!(
            "server_uuid {}",
            variable(conn, "server_uuid").await?.unwrap_or_default()
        )
    };
    Ok(ServerInfo {
        mariadb,
        identity,
        version,
        log_bin,
        binlog_format,
        binlog_row_image,
        binlog_row_metadata,
        binlog_expire_seconds: expire_seconds,
        current_user: current_user.unwrap_or_default(),
    })
}

/// What stands in the way of capture, each with its fix (empty: nothing). `grants` are the
/// lines of `SHOW GRANTS`.
pub fn problems(info: &ServerInfo, grants: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let config = if info.mariadb {
        "my.cnf [mariadbd]"
    } else {
        "my.cnf [mysqld]"
    };
    if !info.log_bin {
        problems.push(format!(
            "the binary log is off: start the server with log_bin (in {config}: log_bin = \
             mysql-bin) and a server_id"
        ));
    }
    if !info.binlog_format.eq_ignore_ascii_case("ROW") {
        problems.push(format!(
            "binlog_format is {} (ROW is needed, so that every changed row is in the binlog): \
             SET GLOBAL binlog_format = 'ROW' and set it in {config}",
            info.binlog_format
        ));
    }
    if !info.binlog_row_image.eq_ignore_ascii_case("FULL") {
        problems.push(format!(
            "binlog_row_image is {} (FULL is needed, so that updates carry every column): \
             SET GLOBAL binlog_row_image = 'FULL' and set it in {config}",
            info.binlog_row_image
        ));
    }
    match &info.binlog_row_metadata {
        Some(m) if m.eq_ignore_ascii_case("FULL") => {}
        Some(m) => problems.push(format!(
            "binlog_row_metadata is {m} (FULL is needed: without it the binlog has no column \
             names and unsigned integers read as signed): SET GLOBAL binlog_row_metadata = \
             'FULL' and set it in {config}"
        )),
        None => problems.push(format!(
            "{} has no binlog_row_metadata (it came with MySQL 8.0.14 and MariaDB 10.5): \
             upgrade to MySQL 8.0+ or MariaDB 10.6+",
            info.name()
        )),
    }
    let all = grants.iter().any(|g| g.contains("ALL PRIVILEGES ON *.*"));
    let has = |privilege: &str| {
        all || grants
            .iter()
            .any(|g| g.contains(" ON *.*") && g.contains(privilege))
    };
    let user = &info.current_user;
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        problems.push(format!(
            "{user} may not read the binlog: GRANT REPLICATION SLAVE ON *.* TO {}",
            quoted_account(user)
        ));
    }
    if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") {
        problems.push(format!(
            "{user} may not read the binlog position: GRANT {} ON *.* TO {}",
            if info.mariadb {
                "BINLOG MONITOR"
            } else {
                "REPLICATION CLIENT"
            },
            quoted_account(user)
        ));
    }
    problems
}

/// `user@host` as `'user'@'host'`.
fn quoted_account(user: &str) -> String {
    match user.rsplit_once('@') {
        Some((name, host)) => format!("'{name}'@'{host}'"),
        None => format!("'{user}'"),
    }
}

/// A short binlog retention, worth a warning (the position may be purged while inlet is down).
pub fn retention_warning(info: &ServerInfo) -> Option<String> {
    let days = info.binlog_expire_seconds as f64 / 86_400.0;
    (info.binlog_expire_seconds > 0 && days < 1.0).then(|| {
        format!(
            "binlogs are kept {days:.2} days only (binlog_expire_logs_seconds = {}): a pipeline \
             stopped longer than that cannot resume",
            info.binlog_expire_seconds
        )
    })
}

/// Checks the server; an error lists every problem with its fix.
pub async fn check(conn: &mut Conn) -> Result<ServerInfo> {
    let info = server(conn).await?;
    let grants: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(query_err("reading the grants"))?;
    let problems = problems(&info, &grants);
    if !problems.is_empty() {
        return Err(Error::MysqlPrerequisites {
            server: info.name(),
            problems,
        });
    }
    if let Some(warning) = retention_warning(&info) {
        tracing::warn!("{warning}");
    }
    Ok(info)
}

/// A column of a captured table, as `information_schema.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `DATA_TYPE`: `int`, `varchar`, `decimal`, …
    pub data_type: String,
    /// `COLUMN_TYPE`: `int(10) unsigned`, `enum('a','b')`, `decimal(10,2)`, …
    pub column_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
}

/// A row of `information_schema.COLUMNS`: schema, table, column, data type, column type,
/// nullable, character set.
type ColumnRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

/// A table to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlTable {
    /// `database.table`.
    pub id: TableId,
    pub columns: Vec<Column>,
    /// The primary key (or the configured key) columns.
    pub key: Vec<String>,
}

/// The base tables `selects` picks (it gets `database.table`), with their columns and primary
/// keys; tables without one are returned apart, with the reason, unless `keys` names theirs.
pub async fn discover(
    conn: &mut Conn,
    selects: impl Fn(&str) -> bool,
    keys: &BTreeMap<String, Vec<String>>,
) -> Result<(Vec<MysqlTable>, Vec<(TableId, String)>)> {
    let rows: Vec<ColumnRow> = conn
        .query(
            "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, \
                    c.IS_NULLABLE, c.CHARACTER_SET_NAME \
             FROM information_schema.COLUMNS c \
             JOIN information_schema.TABLES t \
               ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE t.TABLE_TYPE = 'BASE TABLE' \
               AND c.TABLE_SCHEMA NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema') \
             ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION",
        )
        .await
        .map_err(query_err("listing tables"))?;
    let primary: Vec<(String, String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        )
        .await
        .map_err(query_err("reading primary keys"))?;
    let mut pk: BTreeMap<TableId, Vec<String>> = BTreeMap::new();
    for (schema, table, column) in primary {
        pk.entry(TableId::new(schema, table))
            .or_default()
            .push(column);
    }
    let mut tables: BTreeMap<TableId, Vec<Column>> = BTreeMap::new();
    for (schema, table, name, data_type, column_type, nullable, charset) in rows {
        let id = TableId::new(schema, table);
        if !selects(&id.to_string()) {
            continue;
        }
        tables.entry(id).or_default().push(Column {
            name,
            data_type: data_type.to_ascii_lowercase(),
            column_type: column_type.to_ascii_lowercase(),
            nullable: nullable == "YES",
            charset,
        });
    }
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (id, columns) in tables {
        let key = match (keys.get(&id.to_string()), pk.get(&id)) {
            (Some(configured), _) => {
                if let Some(missing) = configured
                    .iter()
                    .find(|k| !columns.iter().any(|c| &c.name == *k))
                {
                    return Err(Error::Config {
                        field: format!("tables.\"{id}\".key"),
                        reason: format!("{id} has no column {missing:?}"),
                    });
                }
                configured.clone()
            }
            (None, Some(key)) => key.clone(),
            (None, None) => {
                let reason = format!(
                    "no primary key: ALTER TABLE {} ADD PRIMARY KEY (…), or name its key columns \
                     in tables.\"{id}\".key",
                    quote(&id)
                );
                tracing::warn!(table = %id, "Skipping the table: {reason}.");
                skipped.push((id, reason));
                continue;
            }
        };
        found.push(MysqlTable { id, columns, key });
    }
    Ok((found, skipped))
}

/// `` `db`.`table` ``.
pub fn quote(id: &TableId) -> String {
    format!(
        "`{}`.`{}`",
        id.schema.replace('`', "``"),
        id.name.replace('`', "``")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ServerInfo {
        ServerInfo {
            version: "10.11.19-MariaDB-0+deb12u1-log".into(),
            mariadb: true,
            log_bin: true,
            binlog_format: "ROW".into(),
            binlog_row_image: "FULL".into(),
            binlog_row_metadata: Some("FULL".into()),
            binlog_expire_seconds: 0,
            current_user: "inlet@%".into(),
            identity: "server_id 1".into(),
        }
    }

    #[test]
    fn each_problem_names_its_fix() {
        let grants =
            vec!["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `inlet`@`%`".to_string()];
        assert!(problems(&info(), &grants).is_empty());
        let bad = ServerInfo {
            log_bin: false,
            binlog_format: "MIXED".into(),
            binlog_row_image: "MINIMAL".into(),
            binlog_row_metadata: Some("NO_LOG".into()),
            ..info()
        };
        let found = problems(&bad, &["GRANT USAGE ON *.* TO `inlet`@`%`".to_string()]);
        let text = found.join("\n");
        for needle in [
            "log_bin",
            "SET GLOBAL binlog_format = 'ROW'",
            "SET GLOBAL binlog_row_image = 'FULL'",
            "SET GLOBAL binlog_row_metadata = 'FULL'",
            "GRANT REPLICATION SLAVE ON *.* TO 'inlet'@'%'",
            "GRANT BINLOG MONITOR ON *.* TO 'inlet'@'%'",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
        let mysql = ServerInfo {
            version: "8.0.36".into(),
            mariadb: false,
            binlog_row_metadata: None,
            ..info()
        };
        let text = problems(&mysql, &[]).join("\n");
        assert!(
            text.contains("MySQL 8.0.36 has no binlog_row_metadata"),
            "{text}"
        );
        assert!(text.contains("GRANT REPLICATION CLIENT"), "{text}");
        assert!(
            problems(
                &info(),
                &["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`".into()]
            )
            .is_empty()
        );
    }

    #[test]
    fn short_retention_is_worth_a_warning() {
        assert!(retention_warning(&info()).is_none());
        let short = ServerInfo {
            binlog_expire_seconds: 3600,
            ..info()
        };
        assert!(retention_warning(&short).is_some_and(|w| w.contains("0.04 days")));
    }
}
