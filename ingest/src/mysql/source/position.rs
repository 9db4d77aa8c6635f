//! Binlog positions: a file number and offset (and the generation, see [`super`]) as one
//! `u64`, and where the server's binlog is: now, or where a snapshot starts.
use inlet_config::SnapshotLocking;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{GTIDS_KEPT, MysqlSource};
use crate::error::{Error, Result};
use crate::mysql::gtid::{GtidPosition, GtidState};

/// Bits of a position below its generation (file number and offset).
pub(in crate::mysql) const GENERATION_SHIFT: u32 = 52;

/// The binlog file number of a position.
pub(super) fn file_of(position: u64) -> u64 {
    (position >> 32) & ((1 << (GENERATION_SHIFT - 32)) - 1)
}

/// The offset in its file of a position.
pub(super) fn offset_of(position: u64) -> u64 {
    position & 0xFFFF_FFFF
}

/// How many servers came before the one a position was read from (see the module doc).
pub(super) fn generation_of(position: u64) -> u64 {
    position >> GENERATION_SHIFT
}

/// `binlog.000003` as its prefix and number.
pub(super) fn parse_file(name: &str) -> Option<(String, u64)> {
    // The artificial ROTATE before the format description carries 4 checksum bytes.
    let name: String = name.chars().take_while(|c| c.is_ascii_graphic()).collect();
    let (prefix, number) = name.rsplit_once('.')?;
    let digits: String = number
        .chars()
        .take_while(char::is_ascii_digit)
        .take(6)
        .collect();
    Some((prefix.to_string(), digits.parse().ok()?))
}

/// MariaDB's binlog position of a consistent-snapshot transaction.
async fn lock_free_position(conn: &mut Conn) -> Result<(String, u64)> {
    let err = MysqlSource::mysql_err;
    conn.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
         START TRANSACTION WITH CONSISTENT SNAPSHOT",
    )
    .await
    .map_err(err("starting the snapshot"))?;
    let status: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(err("reading the snapshot's binlog position"))?;
    conn.query_drop("COMMIT")
        .await
        .map_err(err("ending the snapshot transaction"))?;
    let value = |name: &str| {
        status
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    match (
        value("binlog_snapshot_file"),
        value("binlog_snapshot_position"),
    ) {
        (Some(file), Some(offset)) if !file.is_empty() => {
            Ok((file, offset.parse::<u64>().unwrap_or(4)))
        }
        _ => Err(Error::Config {
            field: "source.snapshot_locking".to_string(),
            reason: "the server gives no binlog_snapshot_file/position, the binlog position a \
                     lock-free snapshot starts from (MariaDB does; MySQL does not): set \
                     snapshot_locking = \"minimal\" (a global read lock while the position is \
                     read; needs the RELOAD privilege), or snapshot = \"never\" and load the \
                     existing rows another way"
                .to_string(),
        }),
    }
}

/// The binlog file, offset and (MySQL) executed GTID set under `FLUSH TABLES WITH READ LOCK`,
/// released at once. The lock waits
/// for statements under way, holding back every write meanwhile: `lock_wait_timeout` bounds
/// that wait to 10 s, after which the snapshot fails rather than stall the server's writers.
async fn locked_position(conn: &mut Conn) -> Result<(String, u64, Option<String>)> {
    let err = MysqlSource::mysql_err;
    conn.query_drop("SET SESSION lock_wait_timeout = 10")
        .await
        .map_err(err("setting lock_wait_timeout"))?;
    conn.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .map_err(|e| Error::Config {
            field: "source.snapshot_locking".to_string(),
            reason: format!(
                "FLUSH TABLES WITH READ LOCK failed ({e}): grant the RELOAD privilege, or wait \
                 for long statements to finish"
            ),
        })?;
    let started = std::time::Instant::now();
    let position = binlog_status(conn).await;
    let unlocked = conn
        .query_drop("UNLOCK TABLES")
        .await
        .map_err(err("releasing the global read lock"));
    tracing::info!(
        held_ms = started.elapsed().as_millis() as u64,
        "Snapshot position read under a global read lock."
    );
    let (file, position, executed) = position?;
    unlocked?;
    Ok((file, offset_of(position), executed))
}

/// The server's current binlog file and position (`file number << 32 | offset`).
pub(in crate::mysql) async fn binlog_position(conn: &mut Conn) -> Result<(String, u64)> {
    let (file, position, _) = binlog_status(conn).await?;
    Ok((file, position))
}

/// [`binlog_position`], with MySQL's `Executed_Gtid_Set` (MariaDB has none).
async fn binlog_status(conn: &mut Conn) -> Result<(String, u64, Option<String>)> {
    // MySQL 8.4 removed SHOW MASTER STATUS (8.2 added its new name, which MariaDB lacks).
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(row) => row,
        Err(mysql_async::Error::Server(_)) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .map_err(MysqlSource::mysql_err("reading the binlog position"))?,
        Err(e) => return Err(MysqlSource::mysql_err("reading the binlog position")(e)),
    };
    let row = row.ok_or_else(|| {
        Error::Protocol("SHOW MASTER STATUS returned nothing: is log_bin on?".into())
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let offset: u64 = row.get(1).unwrap_or(4);
    let executed: Option<String> = row.get_opt(4).and_then(|v| v.ok());
    let (_, number) = parse_file(&file)
        .ok_or_else(|| Error::Protocol(format!("an unexpected binlog file name {file:?}")))?;
    Ok((file, number << 32 | offset, executed))
}

impl MysqlSource {
    /// The binlog file holding position `position`.
    pub(super) fn file_name(&self, position: u64) -> String {
        format!("{}.{:06}", self.prefix, file_of(position))
    }

    /// The position of offset `offset` in the current file, in this session's generation.
    pub(super) fn at(&self, offset: u64) -> u64 {
        self.generation << GENERATION_SHIFT | self.file << 32 | offset
    }

    /// The GTID state at `position` (`file` and `offset`): MariaDB's `BINLOG_GTID_POS`. MySQL has
    /// no such function: the set recorded for that position (a checkpoint's, or the one read with
    /// it), if any; otherwise none until the next binlog file's `PREVIOUS_GTIDS`.
    pub(super) async fn gtid_at(
        &self,
        conn: &mut Conn,
        file: &str,
        offset: u64,
        position: u64,
    ) -> Result<Option<GtidState>> {
        if !self.mariadb {
            return Ok(self
                .gtids
                .get(&position)
                .filter(|_| self.mysql_gtids)
                .and_then(|text| GtidState::parse(text, false)));
        }
        let text: Option<Option<String>> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, offset))
            .await
            .map_err(Self::mysql_err(
                "reading the GTID position of a binlog position",
            ))?;
        Ok(text
            .flatten()
            .as_deref()
            .and_then(GtidPosition::parse)
            .map(GtidState::Maria))
    }

    /// Records `executed` (MySQL's `Executed_Gtid_Set`, read with the position under a global
    /// read lock) as the GTID state at `position`, when GTIDs are on.
    fn record_executed(&mut self, position: u64, executed: Option<String>) {
        if let Some(text) = executed.filter(|_| !self.mariadb && self.mysql_gtids) {
            self.gtids.insert(position, text);
        }
    }

    /// Records the GTID position at a delivered position, for checkpoints.
    pub(super) fn record_gtid(&mut self, position: u64) {
        if let Some(g) = &self.gtid {
            self.gtids.insert(position, g.to_string());
            while self.gtids.len() > GTIDS_KEPT {
                self.gtids.pop_first();
            }
        }
    }

    /// Reads `binlog.000003` into the prefix and number.
    pub(super) fn set_file(&mut self, name: &str) {
        if let Some((prefix, number)) = parse_file(name) {
            self.prefix = prefix;
            self.file = number;
        }
    }

    /// A binlog position that every later read sees whole: every transaction before it is
    /// committed, which `SHOW MASTER STATUS` alone does not promise (a transaction is in the
    /// binlog before it commits). Without locks, MariaDB's `binlog_snapshot_position` of a
    /// consistent-snapshot transaction; with `minimal` locking, the position under a global read
    /// lock, which waits for commits under way and holds back new ones.
    pub(super) async fn snapshot_position(&mut self, conn: &mut Conn) -> Result<u64> {
        let (file, offset, executed) = match self.options.locking {
            SnapshotLocking::None => {
                let (file, offset) = lock_free_position(conn).await?;
                (file, offset, None)
            }
            SnapshotLocking::Minimal => locked_position(conn).await?,
        };
        self.set_file(&file);
        let position = self.at(offset);
        self.record_executed(position, executed);
        self.gtid = self.gtid_at(conn, &file, offset, position).await?;
        self.record_gtid(position);
        Ok(position)
    }

    /// The server's current binlog position.
    pub(super) async fn master_position(&mut self, conn: &mut Conn) -> Result<u64> {
        // MySQL's executed set is not read here: outside a lock it can lack a transaction just
        // before the position (in the binlog, not yet committed), which a stream by that set
        // after a failover would send again, over later changes. The state stays unknown until
        // the next binlog file's `PREVIOUS_GTIDS`.
        let (file, position) = binlog_position(conn).await?;
        self.set_file(&file);
        let position = self.at(offset_of(position));
        self.gtid = self
            .gtid_at(conn, &file, offset_of(position), position)
            .await?;
        self.record_gtid(position);
        Ok(position)
    }
}
