//! The initial snapshot, without a lock and without a long transaction (DBLog's idea, without
//! writing watermarks into the source): each table is split into primary-key ranges by walking
//! its key, the ranges are copied by `parallelism` connections at once, each an ordinary
//! consistent read, and handed on in key order, so that an interrupted copy resumes after the
//! last range committed.
//!
//! The binlog is then read from a position taken before the first range, one that every range
//! sees whole (MariaDB's `binlog_snapshot_position`: the transactions before it are committed).
//! A change between that position and the read of a range replays over a row that already has
//! it; the lake applies each key's changes in binlog order, so the replay converges to the
//! source. After each range the server's binlog position is read again: until the stream has
//! passed the highest of these (`consistent_from`), a row may show an older state.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};
use tokio::sync::mpsc;

use super::catalog;
use super::rows::{Captured, Rows};
use super::source::{GENERATION_SHIFT, binlog_position};
use super::types::{Conv, key_param, key_text};
use crate::change::{Event, RowBatch, TableId};
use crate::error::{Error, Result};

/// One table to copy.
#[derive(Debug)]
pub struct Job {
    pub table: Captured,
    /// Resume after this key (from the table's checkpoint), as [`key_text`] keeps it.
    pub after: Option<Vec<String>>,
    /// The binlog position the stream replays from for this table.
    pub position: u64,
    /// The generation of this session's positions (the source's module doc).
    pub generation: u64,
}

/// A key range of one table: above `lo`, up to and with `hi` (`None`: no bound).
#[derive(Debug)]
struct Range {
    job: Arc<Job>,
    lo: Option<Vec<String>>,
    hi: Option<Vec<String>>,
}

/// A copied range.
#[derive(Debug)]
struct Copied {
    range: Range,
    batches: Vec<RowBatch>,
    /// The server's binlog position after the read.
    high: u64,
}

/// Copies every job, ranges of `chunk_rows` rows, `parallelism` at a time, sending rows,
/// progress and completion to `tx` in key order.
pub async fn run(
    pool: Pool,
    jobs: Vec<Job>,
    parallelism: usize,
    chunk_rows: usize,
    tx: mpsc::Sender<Result<Event>>,
) {
    let result = copy(&pool, jobs, parallelism, chunk_rows, &tx).await;
    let _ = pool.disconnect().await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

async fn copy(
    pool: &Pool,
    jobs: Vec<Job>,
    parallelism: usize,
    chunk_rows: usize,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<()> {
    let splitter = Splitter {
        conn: pool
            .get_conn()
            .await
            .map_err(mysql("connecting for the snapshot"))?,
        jobs: jobs.into_iter().map(Arc::new).collect(),
        next: None,
        chunk_rows,
    };
    let ranges = futures::stream::unfold(splitter, |mut splitter| async move {
        splitter.next_range().await.map(|range| (range, splitter))
    });
    let mut copied = std::pin::pin!(
        ranges
            .map(|range| async move { copy_range(pool, range?, chunk_rows).await })
            .buffered(parallelism.max(1))
    );
    let mut highest: HashMap<TableId, u64> = HashMap::new();
    while let Some(copied) = copied.next().await {
        let Copied {
            range,
            batches,
            high,
        } = copied?;
        let table = range.job.table.table.id.clone();
        for batch in batches {
            if tx.send(Ok(Event::Rows(batch))).await.is_err() {
                return Ok(());
            }
        }
        let highest = highest.entry(table.clone()).or_default();
        *highest = (*highest).max(high);
        let event = match range.hi {
            Some(after_key) => Event::SnapshotProgress {
                table,
                after_key,
                position: range.job.position,
            },
            None => {
                tracing::info!(table = %table, "Snapshot copied.");
                Event::SnapshotDone {
                    table,
                    position: range.job.position,
                    consistent_from: *highest,
                }
            }
        };
        if tx.send(Ok(event)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn mysql(context: &'static str) -> impl Fn(mysql_async::Error) -> Error {
    move |source| Error::Mysql {
        context: context.to_string(),
        source,
    }
}

/// Cuts the tables into ranges of about `chunk_rows` rows, one after the other.
struct Splitter {
    conn: Conn,
    jobs: std::collections::VecDeque<Arc<Job>>,
    /// The lower bound of the next range of the first job (`None`: the job has not started).
    next: Option<Option<Vec<String>>>,
    chunk_rows: usize,
}

impl Splitter {
    async fn next_range(&mut self) -> Option<Result<Range>> {
        let job = self.jobs.front()?.clone();
        let lo = match self.next.take() {
            Some(lo) => lo,
            None => job.after.clone(),
        };
        let hi = match self.boundary(&job, lo.as_deref()).await {
            Ok(hi) => hi,
            Err(e) => {
                self.jobs.clear();
                return Some(Err(e));
            }
        };
        match &hi {
            Some(hi) => self.next = Some(Some(hi.clone())),
            None => {
                self.jobs.pop_front();
            }
        }
        Some(Ok(Range { job, lo, hi }))
    }

    /// The key `chunk_rows` rows above `lo`, or `None` when fewer rows are left.
    async fn boundary(&mut self, job: &Job, lo: Option<&[String]>) -> Result<Option<Vec<String>>> {
        let keys = Keys::of(&job.table);
        let (filter, params) = keys.filter(lo, None);
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT 1 OFFSET {}",
            keys.list(),
            catalog::quote(&job.table.table.id),
            keys.list(),
            self.chunk_rows.saturating_sub(1)
        );
        let row: Option<mysql_async::Row> = self
            .conn
            .exec_first(sql, params)
            .await
            .map_err(|e| snapshot_error(&job.table.table.id, "splitting the table", e))?;
        row.map(|row| keys.texts(&job.table.table.id, row.unwrap()))
            .transpose()
    }
}

/// Copies the rows of `range`, `chunk_rows` at a time (rows inserted into the range since it was
/// cut make more), then reads the binlog position.
async fn copy_range(pool: &Pool, range: Range, chunk_rows: usize) -> Result<Copied> {
    let id = &range.job.table.table.id;
    let captured = &range.job.table;
    let mut conn = pool
        .get_conn()
        .await
        .map_err(|e| snapshot_error(id, "connecting", e))?;
    let keys = Keys::of(captured);
    let columns: Vec<String> = captured
        .table
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    // A SELECT returns text in utf8mb4 and enums and sets as labels.
    let select = Captured {
        convs: captured.convs.iter().map(Conv::for_select).collect(),
        ..captured.clone()
    };
    let mut batches = Vec::new();
    let mut lo = range.lo.clone();
    loop {
        let (filter, params) = keys.filter(lo.as_deref(), range.hi.as_deref());
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT {chunk_rows}",
            columns.join(", "),
            catalog::quote(id),
            keys.list()
        );
        let rows: Vec<mysql_async::Row> = conn
            .exec(sql, params)
            .await
            .map_err(|e| snapshot_error(id, "copying a range", e))?;
        let count = rows.len();
        let mut out = Rows::new(&select.convs);
        let mut last = None;
        for row in rows {
            let values: Vec<Value> = row.unwrap();
            out.append(&select, &values, "r", 0, None)?;
            last = Some(values);
        }
        if count > 0 {
            batches.push(out.finish(&select)?);
        }
        let last = match last {
            Some(values) => Some(keys.texts(id, keys.pick(values))?),
            None => None,
        };
        // Fewer rows than asked, or the range's own upper key: the range is done.
        if count < chunk_rows || (last.is_some() && last == range.hi) {
            break;
        }
        lo = last;
    }
    let high = range.job.generation << GENERATION_SHIFT | binlog_position(&mut conn).await?.1;
    Ok(Copied {
        range,
        batches,
        high,
    })
}

fn snapshot_error(table: &TableId, what: &str, source: mysql_async::Error) -> Error {
    Error::Snapshot {
        table: table.to_string(),
        source: Box::new(Error::Mysql {
            context: what.to_string(),
            source,
        }),
    }
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A table's key columns: their names and conversions, and where they are in its rows.
struct Keys<'a> {
    names: Vec<String>,
    convs: Vec<&'a Conv>,
    index: Vec<usize>,
}

impl<'a> Keys<'a> {
    fn of(captured: &'a Captured) -> Self {
        let index: Vec<usize> = captured
            .table
            .key
            .iter()
            .filter_map(|k| captured.table.columns.iter().position(|c| &c.name == k))
            .collect();
        Keys {
            names: index
                .iter()
                .map(|&i| quote_ident(&captured.table.columns[i].name))
                .collect(),
            convs: index.iter().map(|&i| &captured.convs[i]).collect(),
            index,
        }
    }

    fn list(&self) -> String {
        self.names.join(", ")
    }

    /// The key values of a whole row.
    fn pick(&self, mut values: Vec<Value>) -> Vec<Value> {
        self.index
            .iter()
            .map(|&i| std::mem::replace(&mut values[i], Value::NULL))
            .collect()
    }

    /// Key values (the key columns only) as text; a null is an error, as paging past it
    /// would skip the rest of the table.
    fn texts(&self, table: &TableId, values: Vec<Value>) -> Result<Vec<String>> {
        values
            .iter()
            .zip(&self.convs)
            .zip(&self.names)
            .map(|((value, conv), name)| {
                key_text(conv, value).ok_or_else(|| Error::Snapshot {
                    table: table.to_string(),
                    source: Box::new(Error::Protocol(format!(
                        "key column {name} holds NULL: a key that is not the primary key must \
                         be NOT NULL to copy the table in ranges"
                    ))),
                })
            })
            .collect()
    }

    /// ` WHERE key > lo AND key <= hi` (either may be absent), the row comparisons spelled out
    /// so that the range optimizer uses the key: `(a, b) > (1, 2)` is
    /// `a >= 1 AND (a > 1 OR (a = 1 AND b > 2))`.
    fn filter(&self, lo: Option<&[String]>, hi: Option<&[String]>) -> (String, Vec<Value>) {
        let last = self.names.len() - 1;
        let mut clauses = Vec::new();
        let mut params = Vec::new();
        for (bound, upper) in [(lo, false), (hi, true)] {
            let Some(bound) = bound else { continue };
            let mut term = |j: usize, op: &str| {
                let (placeholder, param) = key_param(self.convs[j], &bound[j]);
                params.push(param);
                format!("{} {op} {placeholder}", self.names[j])
            };
            let lead = (last > 0).then(|| term(0, if upper { "<=" } else { ">=" }));
            let mut alternatives = Vec::new();
            for i in 0..=last {
                let mut terms = Vec::new();
                for j in 0..=i {
                    let op = match (j == i, upper) {
                        (false, _) => "=",
                        (true, false) => ">",
                        (true, true) if i == last => "<=",
                        (true, true) => "<",
                    };
                    terms.push(term(j, op));
                }
                alternatives.push(terms.join(" AND "));
            }
            clauses.push(match lead {
                None => alternatives.remove(0),
                Some(lead) => {
                    let alternatives: Vec<String> =
                        alternatives.iter().map(|a| format!("({a})")).collect();
                    format!("{lead} AND ({})", alternatives.join(" OR "))
                }
            });
        }
        if clauses.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", clauses.join(" AND ")), params)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_spelled_out_for_the_range_optimizer() {
        let convs = [Conv::Int64, Conv::Binary];
        let keys = Keys {
            names: vec!["`a`".into(), "`b`".into()],
            convs: convs.iter().collect(),
            index: vec![0, 1],
        };
        let (sql, params) = keys.filter(
            Some(&["1".into(), "ff".into()]),
            Some(&["9007199254740993".into(), "00".into()]),
        );
        assert_eq!(
            sql,
            " WHERE `a` >= ? AND ((`a` > ?) OR (`a` = ? AND `b` > UNHEX(?))) \
             AND `a` <= ? AND ((`a` < ?) OR (`a` = ? AND `b` <= UNHEX(?)))"
        );
        let big = Value::Int(9_007_199_254_740_993);
        let hex = |h: &str| Value::Bytes(h.as_bytes().to_vec());
        assert_eq!(
            params,
            vec![
                Value::Int(1),
                Value::Int(1),
                Value::Int(1),
                hex("ff"),
                big.clone(),
                big.clone(),
                big,
                hex("00")
            ]
        );
        let single = Keys {
            names: vec!["`a`".into()],
            convs: convs[..1].iter().collect(),
            index: vec![0],
        };
        assert_eq!(single.filter(Some(&["7".into()]), None).0, " WHERE `a` > ?");
        assert_eq!(
            single.filter(None, Some(&["7".into()])).0,
            " WHERE `a` <= ?"
        );
        assert_eq!(single.filter(None, None).0, "");
    }
}
