//! The initial snapshot: tables copied with `COPY … TO STDOUT` (text format) inside the slot's
//! exported snapshot (or, when resuming, a fresh repeatable-read snapshot), several tables at
//! once, in key order so that an interrupted copy resumes after the last committed key.

use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::catalog::CatalogTable;
use super::connect::{ConnectOptions, quote_ident, quote_literal};
use super::copy::CopyParser;
use super::rows::{Cell, RowBuilder};
use crate::change::{Event, TableId};
use crate::error::{Error, Result};

/// Rows per snapshot chunk: each chunk is handed on with the key it ends at.
pub const CHUNK_ROWS: usize = 50_000;

/// One table to copy.
#[derive(Debug, Clone)]
pub struct CopyJob {
    pub table: CatalogTable,
    /// Resume after this key (from the table's checkpoint).
    pub after: Option<Vec<String>>,
    /// The stream position the copy is consistent with.
    pub position: u64,
}

/// Copies every job, `parallelism` at a time, sending rows, progress and completion to `tx`.
pub async fn run(
    options: ConnectOptions,
    snapshot: Option<String>,
    jobs: Vec<CopyJob>,
    parallelism: usize,
    tx: mpsc::Sender<Result<Event>>,
) {
    let results = futures::stream::iter(jobs)
        .map(|job| {
            let options = options.clone();
            let snapshot = snapshot.clone();
            let tx = tx.clone();
            async move {
                let table = job.table.id.clone();
                if let Err(e) = copy_table(&options, snapshot.as_deref(), job, &tx).await {
                    let _ = tx
                        .send(Err(Error::Snapshot {
                            table: table.to_string(),
                            source: Box::new(e),
                        }))
                        .await;
                }
            }
        })
        .buffer_unordered(parallelism.max(1));
    results.collect::<Vec<()>>().await;
}

async fn copy_table(
    options: &ConnectOptions,
    snapshot: Option<&str>,
    job: CopyJob,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<()> {
    let started = Instant::now();
    let client = options.connect().await?;
    let err = |what: &'static str| move |e| Error::postgres(what.to_string(), e);
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(err("starting the snapshot transaction"))?;
    let consistent_from = match snapshot {
        Some(name) => {
            client
                .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(name)))
                .await
                .map_err(err("importing the exported snapshot"))?;
            0
        }
        None => {
            // A fresh snapshot, later than the slot's position: the first statement takes it,
            // and every transaction it sees committed below the LSN read here.
            let row = client
                .query_one("SELECT pg_current_wal_lsn()::text", &[])
                .await
                .map_err(err("taking the snapshot"))?;
            row.get::<_, String>(0).parse::<super::Lsn>()?.0
        }
    };
    let table = &job.table;
    let id: &TableId = &table.id;
    let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let keys: Vec<String> = table.key.iter().map(|k| quote_ident(k)).collect();
    let key_index: Vec<usize> = table
        .key
        .iter()
        .filter_map(|k| table.columns.iter().position(|c| &c.name == k))
        .collect();
    let mut sql = format!(
        "COPY (SELECT {} FROM {}.{}",
        columns.join(", "),
        quote_ident(&id.schema),
        quote_ident(&id.name)
    );
    if let Some(after) = &job.after {
        let literals: Vec<String> = after.iter().map(|v| quote_literal(v)).collect();
        sql.push_str(&format!(
            " WHERE ({}) > ({})",
            keys.join(", "),
            literals.join(", ")
        ));
        tracing::info!(table = %id, after = ?after, "Resuming the snapshot after the last copied key.");
    }
    sql.push_str(&format!(" ORDER BY {}) TO STDOUT", keys.join(", ")));
    let stream = client
        .copy_out(sql.as_str())
        .await
        .map_err(err("starting COPY"))?;
    futures::pin_mut!(stream);
    // Marks the table as being copied (an empty key: from the start).
    tx.send(Ok(Event::SnapshotProgress {
        table: id.clone(),
        after_key: job.after.clone().unwrap_or_default(),
        position: job.position,
    }))
    .await
    .map_err(|_| Error::Stopped)?;
    let mut builder = RowBuilder::new(id.clone(), table.columns.clone());
    let mut parser = CopyParser::default();
    // The last row's key values (their buffers reused from row to row).
    let mut last_key: Vec<String> = vec![String::new(); key_index.len()];
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(err("reading COPY data"))?;
        parser.push(&chunk, |fields| {
            // The first column whose value is not UTF-8 (appended as null, then refused).
            let mut not_utf8 = None;
            let cells = fields.iter().zip(&table.columns).map(|(field, column)| {
                let Some(bytes) = field else {
                    return Cell::Null;
                };
                std::str::from_utf8(bytes).map_or_else(
                    |_| {
                        not_utf8.get_or_insert((column, bytes));
                        Cell::Null
                    },
                    Cell::Text,
                )
            });
            builder.append("r", Some(0), None, false, cells, None)?;
            if let Some((column, bytes)) = not_utf8 {
                return Err(Error::PgValue {
                    table: id.to_string(),
                    column: column.name.clone(),
                    reason: format!(
                        "\"{}\" is not UTF-8: the database's encoding must be UTF8, as for \
                         streamed changes",
                        String::from_utf8_lossy(bytes).escape_debug()
                    ),
                });
            }
            for (key, &i) in last_key.iter_mut().zip(&key_index) {
                key.clear();
                if let Some(Some(bytes)) = fields.get(i) {
                    key.push_str(&String::from_utf8_lossy(bytes));
                }
            }
            Ok::<_, Error>(())
        })?;
        if builder.len() >= CHUNK_ROWS {
            total += builder.len() as u64;
            send_chunk(&mut builder, &last_key, job.position, tx).await?;
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                table = %id,
                rows = total,
                rows_per_sec = (total as f64 / secs) as u64,
                "Snapshot progress."
            );
        }
    }
    total += builder.len() as u64;
    send_chunk(&mut builder, &last_key, job.position, tx).await?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(err("ending the snapshot transaction"))?;
    tracing::info!(
        table = %id,
        rows = total,
        seconds = started.elapsed().as_secs_f64(),
        "Snapshot copied."
    );
    tx.send(Ok(Event::SnapshotDone {
        table: id.clone(),
        position: job.position,
        consistent_from,
    }))
    .await
    .map_err(|_| Error::Stopped)?;
    Ok(())
}

async fn send_chunk(
    builder: &mut RowBuilder,
    last_key: &[String],
    position: u64,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<()> {
    if let Some(rows) = builder.finish()? {
        let table = rows.table.clone();
        tx.send(Ok(Event::Rows(rows)))
            .await
            .map_err(|_| Error::Stopped)?;
        tx.send(Ok(Event::SnapshotProgress {
            table,
            after_key: last_key.to_vec(),
            position,
        }))
        .await
        .map_err(|_| Error::Stopped)?;
    }
    Ok(())
}
