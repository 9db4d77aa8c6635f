//! Helpers for PostgreSQL change capture tests and benchmarks: an `inlet run` configuration
//! for a [`PostgresServer`], a fence that tells when every earlier transaction is durable in the
//! lake, and source and lake tables in one canonical row form.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::copy_text::CopyParser;
use anyhow::Context;
use arrow::array::RecordBatch;
use inlet_ingest::change::TableId;
use inlet_ingest::postgres::catalog;
use inlet_ingest::postgres::rows::{Cell, RowBuilder};
use inlet_ingest::postgres::{Lsn, connect::quote_ident};
use inlet_ingest::{CDC_COMMIT_TS, CDC_OP, CDC_POSITION, RunSummary};
use inlet_table::read::Query;
use inlet_table::{Table, TableConfig};
use tokio_postgres::Client;

use super::postgres::PostgresServer;

/// The table a [`fence`] writes to; tests create it and capture it.
pub const FENCE_TABLE: &str = "inlet_fence";

/// SQL creating the fence table.
pub const FENCE_DDL: &str =
    "CREATE TABLE IF NOT EXISTS public.inlet_fence (id int PRIMARY KEY, at timestamptz)";

/// A configuration for `inlet run` on `server`, writing under `lake`; `extra` is appended
/// (e.g. `[tables."public.t"]` sections). Small batch bounds keep tests fast; the admin
/// endpoint takes a free port (tests run side by side).
pub fn config_text(server: &PostgresServer, lake: &Path, include: &[&str], extra: &str) -> String {
    let include: Vec<String> = include.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [source]\nkind = \"postgres\"\nconnection = \"{}\"\ninclude = [{}]\n\n\
         [sink]\nbase_uri = {:?}\nbuckets = 2\n\n\
         [batch]\nmax_rows = 100000\nmax_delay = \"200ms\"\n\n{extra}",
        server.connection_string(),
        include.join(", "),
        lake.display().to_string(),
    )
}

/// Writes a position after every transaction committed so far: a non-transactional logical
/// message (its LSN is returned, plus one), then a transaction on [`FENCE_TABLE`] committing
/// after it. Once the slot has acknowledged the returned position, every earlier transaction
/// is durable in the lake.
pub async fn fence(client: &Client) -> anyhow::Result<u64> {
    let row = client
        .query_one(
            "SELECT pg_logical_emit_message(false, 'inlet.fence', '')::text",
            &[],
        )
        .await?;
    let lsn: Lsn = row.get::<_, String>(0).parse()?;
    client
        .execute(
            "INSERT INTO public.inlet_fence VALUES (1, now()) \
             ON CONFLICT (id) DO UPDATE SET at = now()",
            &[],
        )
        .await?;
    Ok(lsn.0 + 1)
}

/// Runs the pipeline of `config` in this process until everything up to `stop_at` is durable.
pub async fn run_until(config: &str, stop_at: u64) -> anyhow::Result<RunSummary> {
    run_until_within(config, stop_at, Duration::from_secs(60)).await
}

/// [`run_until`], giving up after `limit`.
pub async fn run_until_within(
    config: &str,
    stop_at: u64,
    limit: Duration,
) -> anyhow::Result<RunSummary> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INLET_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let config = inlet_config::Config::parse(config, "test config")?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let run = inlet_ingest::service::run(&config, shutdown, Some(stop_at));
    let summary = tokio::time::timeout(limit, run)
        .await
        .with_context(|| format!("the pipeline did not catch up within {limit:?}"))??;
    Ok(summary)
}

/// Runs the pipeline of `config` on a thread of its own until `shutdown` is set (then it
/// commits what is buffered and stops, as on SIGTERM).
pub fn spawn_until_shutdown(
    config: &str,
    shutdown: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<RunSummary>> {
    let config = config.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let config = inlet_config::Config::parse(&config, "test config")?;
            Ok(inlet_ingest::service::run(&config, shutdown, None).await?)
        })
    })
}

/// Waits until the slot's confirmed position reaches `position`.
pub async fn wait_confirmed(
    client: &Client,
    slot: &str,
    position: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let row = client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?;
        if let Some(row) = row
            && let Some(text) = row.get::<_, Option<String>>(0)
            && text.parse::<Lsn>()?.0 >= position
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "slot {slot} did not confirm {} within {timeout:?}",
            Lsn(position)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every row of a source table, converted like inlet converts them (COPY text format).
pub async fn source_rows(
    client: &Client,
    schema: &str,
    table: &str,
) -> anyhow::Result<RecordBatch> {
    let types = catalog::load_types(client).await?;
    let id = TableId::new(schema, table);
    let columns = client
        .query(
            "SELECT attname::text, atttypid, atttypmod FROM pg_attribute \
             WHERE attrelid = ($1 || '.' || $2)::regclass AND attnum > 0 AND NOT attisdropped \
             ORDER BY attnum",
            &[&quote_ident(schema), &quote_ident(table)],
        )
        .await?;
    let specs = catalog::column_specs(
        &types,
        false,
        &id,
        columns.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
    );
    let mut builder = RowBuilder::new(id, specs);
    let sql = format!(
        "COPY {}.{} TO STDOUT",
        quote_ident(schema),
        quote_ident(table)
    );
    let stream = client.copy_out(sql.as_str()).await?;
    futures::pin_mut!(stream);
    let mut parser = CopyParser::default();
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        parser.push(&chunk?, |fields| {
            let cells = fields
                .iter()
                .map(|f| match f {
                    None => Ok(Cell::Null),
                    Some(t) => std::str::from_utf8(t).map(Cell::Text),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::from)?;
            builder
                .append("r", None, None, false, cells, None)
                .map(|_| ())
                .map_err(anyhow::Error::from)
        })?;
    }
    match builder.finish()? {
        Some(rows) => Ok(rows.batch),
        None => Ok(RecordBatch::new_empty(
            inlet_ingest::postgres::rows::data_schema(builder.specs()),
        )),
    }
}

/// The data columns of a source table (no CDC columns).
pub fn data_columns(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| ![CDC_OP, CDC_POSITION, CDC_COMMIT_TS].contains(&n.as_str()))
        .collect()
}

/// A lake table read with our reader.
pub async fn lake_batches(uri: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let table = Table::open(uri, TableConfig::default()).await?;
    Ok(table.read(&Query::Snapshot).await?.batches)
}

/// Canonical rows of `columns` of the lake table at `uri` (our reader).
pub async fn lake_rows(uri: &str, columns: &[String]) -> anyhow::Result<Vec<String>> {
    let batches = lake_batches(uri).await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(Vec::new());
    }
    crate::canonical::rows(&batches, columns)
}

/// Canonical rows of the source table (all its current columns).
pub async fn expected_rows(
    client: &Client,
    schema: &str,
    table: &str,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let batch = source_rows(client, schema, table).await?;
    let columns = data_columns(&batch);
    let rows = if batch.num_rows() == 0 {
        Vec::new()
    } else {
        crate::canonical::rows(&[batch], &columns)?
    };
    Ok((rows, columns))
}
