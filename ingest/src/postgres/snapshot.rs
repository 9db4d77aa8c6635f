//! The initial snapshot: tables copied with `COPY … TO STDOUT (FORMAT binary)` inside the slot's
//! exported snapshot (or, when resuming, a fresh repeatable-read snapshot), several tables at
//! once, in key order so that an interrupted copy resumes after the last committed key.
//!
//! A table no larger than a batch (`batch.max_bytes`, by `pg_table_size`) is copied in the
//! server's own order instead: it is committed once, after its copy, so a resume key would never
//! be used, and reading in key order (an index scan) costs the server a fifth more, while the
//! server is what a copy waits on. Its progress carries no key: if it is committed in parts
//! after all (the estimate was low, or `max_delay` passed), an interrupted copy starts over,
//! which rewrites the same rows.
//!
//! Binary, because the text format costs more than the rest of the snapshot together: the
//! server formats every timestamp and number, and we parse them back.

use std::borrow::Cow;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::binary::{BinaryCopy, Tuple, Wire};
use super::catalog::CatalogTable;
use super::connect::{ConnectOptions, quote_ident, quote_literal};
use super::rows::{Cell, RowBuilder};
use crate::change::{Event, TableId};
use crate::error::{Error, Result};

/// Rows per snapshot chunk: each chunk is handed on with the key it ends at.
pub const CHUNK_ROWS: usize = 50_000;

/// The least room a row takes in a heap: a 23-byte tuple header, aligned to 24, and a 4-byte
/// line pointer.
const MIN_TUPLE_BYTES: usize = 28;

/// The most rows a copy's builders make room for up front (beyond, they grow as rows come): a
/// generous `max_bytes` of narrow rows must not ask for allocations of gigabytes, which Linux's
/// overcommit heuristic may refuse even though most of them would never be written.
const MAX_RESERVED_ROWS: usize = 1 << 22;

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
    batch_bytes: usize,
    tx: mpsc::Sender<Result<Event>>,
) {
    let results = futures::stream::iter(jobs)
        .map(|job| {
            let options = options.clone();
            let snapshot = snapshot.clone();
            let tx = tx.clone();
            async move {
                let table = job.table.id.clone();
                if let Err(e) =
                    copy_table(&options, snapshot.as_deref(), job, batch_bytes, &tx).await
                {
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
    batch_bytes: usize,
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
    let columns: Vec<String> = table
        .columns
        .iter()
        .zip(&table.wires)
        .map(|(c, wire)| wire.select(&quote_ident(&c.name)))
        .collect();
    // Qualified, so that a key never names a select-list expression of the same name.
    let keys: Vec<String> = table
        .key
        .iter()
        .map(|k| format!("source.{}", quote_ident(k)))
        .collect();
    let mut sql = format!(
        "COPY (SELECT {} FROM {}.{} AS source",
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
    // `None`: in key order, in chunks of `CHUNK_ROWS`; `Some(rows)`: in the server's order, in
    // one chunk (the pipeline then has nothing to concatenate) of at most `rows` rows.
    let unordered = match &job.after {
        Some(_) => None,
        None => {
            let name = format!("{}.{}", quote_ident(&id.schema), quote_ident(&id.name));
            let row = client
                .query_one("SELECT pg_table_size($1::text::regclass)", &[&name])
                .await
                .map_err(err("reading the table's size"))?;
            let size = usize::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            // A heap tuple takes at least `MIN_TUPLE_BYTES`, so the table has at most this many
            // rows: room reserved but never written costs address space only.
            (size <= batch_bytes).then_some((size / MIN_TUPLE_BYTES + 1).min(MAX_RESERVED_ROWS))
        }
    };
    let ordered = unordered.is_none();
    if ordered {
        sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
    }
    sql.push_str(") TO STDOUT (FORMAT binary)");
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
    let capacity = unordered.unwrap_or(CHUNK_ROWS);
    let mut builder = RowBuilder::with_capacity(id.clone(), table.columns.clone(), capacity);
    let mut parser = BinaryCopy::default();
    // The last row's key values as sent (their buffers reused from row to row).
    let mut last_key = LastKey::new(table);
    let (mut total, mut logged) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(err("reading COPY data"))?;
        parser.push(&chunk, |tuple| {
            if tuple.len() != table.columns.len() {
                return Err(Error::Protocol(format!(
                    "COPY of {id} sent {} fields for {} columns",
                    tuple.len(),
                    table.columns.len()
                )));
            }
            let cells = tuple
                .iter()
                .zip(&table.wires)
                .map(|(field, &wire)| match field {
                    None => Cell::Null,
                    Some(bytes) => Cell::Binary(wire, bytes),
                });
            builder.append("r", Some(0), None, false, cells, None)?;
            if ordered {
                last_key.keep(&tuple);
            }
            Ok(())
        })?;
        // A copy without key order goes on in one chunk unless it outgrows a batch after all
        // (the size was an estimate): memory stays bounded either way.
        let full = match unordered {
            None => builder.len() >= CHUNK_ROWS,
            Some(_) => builder.bytes() >= batch_bytes,
        };
        if full {
            total += builder.len() as u64;
            send_chunk(&mut builder, ordered.then_some(&last_key), job.position, tx).await?;
        }
        let copied = total + builder.len() as u64;
        if copied >= logged + CHUNK_ROWS as u64 {
            logged = copied;
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                table = %id,
                rows = copied,
                rows_per_sec = (copied as f64 / secs) as u64,
                "Snapshot progress."
            );
        }
    }
    parser.finish()?;
    total += builder.len() as u64;
    send_chunk(&mut builder, ordered.then_some(&last_key), job.position, tx).await?;
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

/// The key of the last row copied, where a resumed copy starts after.
struct LastKey {
    /// Each key column's name, index and wire format.
    columns: Vec<(String, usize, Wire)>,
    values: Vec<Option<Vec<u8>>>,
}

impl LastKey {
    fn new(table: &CatalogTable) -> LastKey {
        let columns: Vec<(String, usize, Wire)> = table
            .key
            .iter()
            .filter_map(|k| {
                let i = table.columns.iter().position(|c| &c.name == k)?;
                Some((k.clone(), i, table.wires[i]))
            })
            .collect();
        LastKey {
            values: vec![None; columns.len()],
            columns,
        }
    }

    fn keep(&mut self, tuple: &Tuple<'_>) {
        for (value, &(_, i, _)) in self.values.iter_mut().zip(&self.columns) {
            match tuple.get(i) {
                Some(bytes) => {
                    let buffer = value.get_or_insert_with(Vec::new);
                    buffer.clear();
                    buffer.extend_from_slice(bytes);
                }
                None => *value = None,
            }
        }
    }

    /// The key as SQL literals' text (a null key column as the empty string).
    fn literals(&self, table: &TableId) -> Result<Vec<String>> {
        self.values
            .iter()
            .zip(&self.columns)
            .map(|(value, (name, _, wire))| match value {
                None => Ok(String::new()),
                Some(bytes) => wire
                    .text(bytes)
                    .map(Cow::into_owned)
                    .map_err(|e| Error::PgValue {
                        table: table.to_string(),
                        column: name.clone(),
                        reason: e.0,
                    }),
            })
            .collect()
    }
}

/// Hands on the rows built so far, then the key a resumed copy would start after (`None`, a copy
/// without key order: the empty key, from the start).
async fn send_chunk(
    builder: &mut RowBuilder,
    last_key: Option<&LastKey>,
    position: u64,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<()> {
    if let Some(rows) = builder.finish()? {
        let table = rows.table.clone();
        let after_key = match last_key {
            Some(last_key) => last_key.literals(&table)?,
            None => Vec::new(),
        };
        tx.send(Ok(Event::Rows(rows)))
            .await
            .map_err(|_| Error::Stopped)?;
        tx.send(Ok(Event::SnapshotProgress {
            table,
            after_key,
            position,
        }))
        .await
        .map_err(|_| Error::Stopped)?;
    }
    Ok(())
}
