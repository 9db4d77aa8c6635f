//! The service's Prometheus metrics: every name in one place, their descriptions, and the
//! commit hook that counts what each lake table completes.
//!
//! Metrics go through the `metrics` facade: without an installed recorder (tests, the CLI)
//! they cost nothing; `inlet run` installs the Prometheus exporter and serves `/metrics`.

use std::sync::Arc;

use async_trait::async_trait;
use inlet_table::Table;
use inlet_table::commit::transaction::{CommitHook, Completed};

use crate::status::PipelineStatus;

/// Changes received from the source (snapshot rows included), `{pipeline}`.
pub const SOURCE_CHANGES: &str = "inlet_source_changes_total";
/// Now minus the source commit time of the oldest change received and not yet durable; 0 when
/// every change received is durable, `{pipeline}`.
pub const SOURCE_LAG: &str = "inlet_source_lag_seconds";
/// WAL the PostgreSQL slot keeps on the server, `{pipeline}`.
pub const SLOT_RETAINED: &str = "inlet_slot_retained_bytes";
/// Completed actions of a lake table, `{table, action}` (commit, deltacommit, replacecommit,
/// compaction, clean, rollback, …).
pub const TABLE_COMMITS: &str = "inlet_table_commits_total";
/// Rows written by write commits, `{table, op}` with op insert, update or delete.
pub const TABLE_ROWS: &str = "inlet_table_rows_total";
/// From the start of a write commit (its instant time) to its completion, `{table}`.
pub const COMMIT_DURATION: &str = "inlet_commit_duration_seconds";
/// Compactions planned and not yet completed, `{table}`.
pub const PENDING_COMPACTIONS: &str = "inlet_table_pending_compactions";
/// Most log files in one file slice, `{table}` (merge-on-read).
pub const MAX_LOG_FILES: &str = "inlet_table_max_log_files_per_slice";
/// Times a table's ingest waited for compaction to catch up, `{table}`.
pub const INGEST_THROTTLED: &str = "inlet_ingest_throttled_total";
/// Rows sent to the dead-letter table, `{pipeline, table}`.
pub const DEAD_LETTERS: &str = "inlet_dead_letter_total";

/// Buckets of [`COMMIT_DURATION`] (seconds).
pub const COMMIT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(SOURCE_CHANGES, "Changes received from the source");
    describe_gauge!(
        SOURCE_LAG,
        Unit::Seconds,
        "Now minus the source commit time of the oldest change not yet durable (0 when caught up)"
    );
    describe_gauge!(
        SLOT_RETAINED,
        Unit::Bytes,
        "WAL retained on the server by the pipeline's replication slot"
    );
    describe_counter!(TABLE_COMMITS, "Completed actions of a lake table");
    describe_counter!(TABLE_ROWS, "Rows written to a lake table by operation");
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Duration of a write commit, from its instant time to its completion"
    );
    describe_gauge!(PENDING_COMPACTIONS, "Compactions planned and not completed");
    describe_gauge!(MAX_LOG_FILES, "Most log files in one file slice");
    describe_counter!(
        INGEST_THROTTLED,
        "Times ingest waited for compaction to catch up"
    );
    describe_counter!(DEAD_LETTERS, "Rows sent to the dead-letter table");
}

/// Counts a lake table's completed actions into the metrics and the pipeline's status.
#[derive(Debug)]
pub struct TableMetrics {
    /// The source table, `schema.table`: the `table` label.
    pub table: String,
    pub status: Arc<PipelineStatus>,
}

#[async_trait]
impl CommitHook for TableMetrics {
    fn name(&self) -> &str {
        "metrics"
    }

    async fn completed(
        &self,
        _table: &Table,
        completed: &Completed<'_>,
    ) -> inlet_table::Result<()> {
        let action = completed.instant.action;
        let label = self.table.clone();
        // A compaction completes as a `commit` on the timeline; it is counted as what it is.
        let name = if completed.commit.is_some_and(|c| c.compacted) {
            "compaction".to_string()
        } else {
            action.to_string()
        };
        metrics::counter!(TABLE_COMMITS, "table" => label.clone(), "action" => name).increment(1);
        let writes = action.writes_data() && !completed.commit.is_some_and(|c| c.compacted);
        let totals = completed.commit.filter(|_| writes).map(|c| c.totals());
        if let Some(totals) = &totals {
            for (op, n) in [
                ("insert", totals.inserts),
                ("update", totals.updates),
                ("delete", totals.deletes),
            ] {
                metrics::counter!(TABLE_ROWS, "table" => label.clone(), "op" => op)
                    .increment(n.max(0) as u64);
            }
            if let Some(started) = completed.instant.time.to_datetime() {
                let seconds = (chrono::Utc::now() - started)
                    .num_microseconds()
                    .unwrap_or(0);
                metrics::histogram!(COMMIT_DURATION, "table" => label.clone())
                    .record(seconds.max(0) as f64 / 1e6);
            }
        }
        self.status.update(|s| {
            let table = s.tables.entry(self.table.clone()).or_default();
            let time = completed.instant.time.to_string();
            if table.latest_instant.as_ref().is_none_or(|t| *t < time) {
                table.latest_instant = Some(time);
            }
            if let Some(totals) = totals {
                table.commits += 1;
                table.rows.insert += totals.inserts.max(0) as u64;
                table.rows.update += totals.updates.max(0) as u64;
                table.rows.delete += totals.deletes.max(0) as u64;
            }
        });
        Ok(())
    }
}
