//! Where a stream resumes from the tables' checkpoints: the same server's binlog when it still
//! holds their positions, another server's (a failover) by their GTIDs, or neither (a gap,
//! which `on_gap` decides).
use std::collections::BTreeMap;

use inlet_config::OnGap;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::MysqlSource;
use super::position::{file_of, generation_of, parse_file};
use crate::change::{Checkpoint, Event, Source, TableId};
use crate::error::{Error, Result};
use crate::mysql::gtid::{self, GtidSet, GtidState};

impl MysqlSource {
    pub(super) async fn check_gap(
        &mut self,
        conn: &mut Conn,
        checkpoints: &mut BTreeMap<TableId, Checkpoint>,
        current: u64,
        no_gtid: &str,
    ) -> Result<()> {
        let logs: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(Self::mysql_err("listing the binlog files"))?;
        let Some((first_name, first)) = logs
            .first()
            .and_then(|r| r.get::<String, _>(0))
            .and_then(|name| Some((name.clone(), parse_file(&name)?.1)))
        else {
            return Ok(());
        };
        // Positions read from another server (a failover, or the connection moved to another
        // database) mean nothing in this server's binlog.
        let foreign: Vec<(TableId, String)> = checkpoints
            .iter()
            .filter(|(t, _)| self.tables.contains_key(*t))
            .filter_map(|(t, c)| match (&c.origin, &self.identity) {
                (Some(theirs), Some(ours)) if theirs != ours => Some((t.clone(), theirs.clone())),
                _ => None,
            })
            .collect();
        let affected: Vec<TableId> = checkpoints
            .iter()
            .filter(|(t, c)| self.tables.contains_key(*t) && file_of(c.position) < first)
            .map(|(t, _)| t.clone())
            .chain(foreign.iter().map(|(t, _)| t.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if affected.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = affected
            .iter()
            .map(|t| format!("{t} (at {})", self.display(checkpoints[t].position)))
            .collect();
        if self.options.on_gap == OnGap::Fail || !self.options.snapshot {
            let advice = "Set source.on_gap = \"resnapshot\" (with snapshot = \"initial\") to \
                          copy those tables again, or remove their lake tables";
            if let Some((_, theirs)) = foreign.first() {
                return Err(Error::Protocol(format!(
                    "the lake tables {} hold binlog positions of the server with {theirs}, and \
                     this is the server with {} (a failover, or another database): binlog \
                     positions do not carry over between servers, and GTIDs cannot be used \
                     ({no_gtid}). {advice}",
                    names.join(", "),
                    self.identity.as_deref().unwrap_or("?")
                )));
            }
            return Err(Error::Protocol(format!(
                "the binlog positions that {} need are gone from the server (its binlogs \
                 start at {first_name}): changes since are lost. {advice}; and keep binlogs \
                 longer (binlog_expire_logs_seconds)",
                names.join(", ")
            )));
        }
        tracing::warn!(tables = %names.join(", "), first = %first_name, "The lake tables miss changes (their binlog is purged, or their positions are of another server): emptying and copying them again.");
        for table in &affected {
            checkpoints.remove(table);
        }
        self.queue.push_back(Event::Truncate(affected.clone()));
        // Until their copies are done these tables are snapshotting: the emptying commit
        // records a copy to redo.
        for table in affected {
            self.queue.push_back(Event::SnapshotProgress {
                table,
                after_key: Vec::new(),
                position: current,
            });
        }
        Ok(())
    }

    /// When the tables' checkpoints were read from another server (a failover) or by an
    /// earlier generation, and this server has the transactions of their GTID states (MariaDB:
    /// its binlog state reaches each position; MySQL: its `gtid_executed` holds each set):
    /// those states, by table. Otherwise why not.
    pub(super) async fn gtid_resume(
        &self,
        conn: &mut Conn,
        checkpoints: &BTreeMap<TableId, Checkpoint>,
    ) -> Result<std::result::Result<BTreeMap<TableId, GtidState>, String>> {
        let moved = checkpoints.values().any(|c| {
            generation_of(c.position) < self.generation
                || matches!((&c.origin, &self.identity), (Some(theirs), Some(ours)) if theirs != ours)
        });
        if !moved {
            return Ok(Err(String::new()));
        }
        if !self.mariadb && !self.mysql_gtids {
            return Ok(Err("this server has gtid_mode OFF".into()));
        }
        let mut gtids = BTreeMap::new();
        for (table, c) in checkpoints {
            let Some(g) = c
                .gtid
                .as_deref()
                .and_then(|text| GtidState::parse(text, self.mariadb))
            else {
                return Ok(Err(format!(
                    "{table} has no GTID position of this kind of server in its checkpoint \
                     (written by an earlier inlet, with GTIDs off, or by the other kind of server)"
                )));
            };
            gtids.insert(table.clone(), g);
        }
        if !self.mariadb {
            let (executed, purged): (Option<String>, Option<String>) = conn
                .query_first("SELECT @@GLOBAL.gtid_executed, @@GLOBAL.gtid_purged")
                .await
                .map_err(Self::mysql_err("reading the server's executed GTIDs"))?
                .unwrap_or_default();
            return Ok(mysql_resumable(
                &gtids,
                &executed.unwrap_or_default(),
                &purged.unwrap_or_default(),
            )
            .map(|()| gtids));
        }
        let state: Option<Option<String>> = conn
            .query_first("SELECT @@GLOBAL.gtid_binlog_state")
            .await
            .map_err(Self::mysql_err("reading the server's GTID state"))?;
        let state = state.flatten().unwrap_or_default();
        let parsed = gtid::parse_state(&state).unwrap_or_default();
        let unreached = gtids.iter().find(|(_, g)| match g {
            GtidState::Maria(g) => !g.reached_by(&parsed),
            GtidState::Mysql(_) => true,
        });
        if let Some((table, g)) = unreached {
            return Ok(Err(format!(
                "this server's binlog does not hold {table}'s GTID position {g} (its GTID state \
                 is {state:?}): another history, a replica that had not caught up, or one \
                 without log_slave_updates"
            )));
        }
        Ok(Ok(gtids))
    }
}

/// Whether a MySQL server whose `@@gtid_executed` and `@@gtid_purged` are `executed` and
/// `purged` can go on with tables that hold `tables`: it must have executed every transaction
/// of each, and still have in its binlog every one a table lacks (a stream by GTID set would
/// otherwise begin after the purged ones and skip them without a word).
fn mysql_resumable(
    tables: &BTreeMap<TableId, GtidState>,
    executed: &str,
    purged: &str,
) -> std::result::Result<(), String> {
    let (Some(executed_set), Some(purged_set)) = (GtidSet::parse(executed), GtidSet::parse(purged))
    else {
        return Err(format!(
            "this server's GTIDs ({executed:?}) hold ones inlet does not read (tagged ones)"
        ));
    };
    for (table, g) in tables {
        let GtidState::Mysql(g) = g else {
            return Err(format!("{table} holds a MariaDB GTID position"));
        };
        if !g.within(&executed_set) {
            return Err(format!(
                "this server has not executed every transaction {table} holds ({g}; it has \
                 {executed}): another history, or a replica that had not caught up"
            ));
        }
        if !purged_set.within(g) {
            return Err(format!(
                "this server has purged from its binlog transactions {table} does not hold \
                 ({table} has {g}; purged: {purged})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mysql_server_resumes_tables_only_with_their_transactions_and_the_missing_ones() {
        let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let table = |set: &str| {
            BTreeMap::from([(
                TableId::new("shop", "t"),
                GtidState::parse(set, false).expect("set"),
            )])
        };
        let executed = format!("{a}:1-100");
        // Caught up, nothing the table lacks purged.
        assert_eq!(
            mysql_resumable(
                &table(&format!("{a}:1-57")),
                &executed,
                &format!("{a}:1-40")
            ),
            Ok(())
        );
        // A replica that had not caught up.
        let err = mysql_resumable(&table(&format!("{a}:1-120")), &executed, "").unwrap_err();
        assert!(err.contains("not executed"), "{err}");
        // Transactions 58–60, which the table lacks, are gone from the binlog.
        let err = mysql_resumable(
            &table(&format!("{a}:1-57")),
            &executed,
            &format!("{a}:1-60"),
        )
        .unwrap_err();
        assert!(err.contains("purged"), "{err}");
        // A table with a gap (61 missing) and nothing purged past what it holds.
        assert_eq!(
            mysql_resumable(
                &table(&format!("{a}:1-60:62-70")),
                &executed,
                &format!("{a}:1-60")
            ),
            Ok(())
        );
        let maria = BTreeMap::from([(
            TableId::new("shop", "t"),
            GtidState::parse("0-1-5", true).expect("position"),
        )]);
        assert!(mysql_resumable(&maria, &executed, "").is_err());
        let err = mysql_resumable(&table(&format!("{a}:1")), &format!("{a}:tag:1"), "");
        assert!(err.unwrap_err().contains("tagged"));
    }
}
