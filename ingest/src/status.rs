//! What a running pipeline reports about itself, for the admin API and `/readyz`: its state,
//! how far it is durable, and per table the writes and failures. Updated by the pipeline and
//! the table hooks, read by the service at any time.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

/// Where a pipeline is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Connecting, checking prerequisites, opening tables.
    #[default]
    Starting,
    /// Copying the initial snapshot of at least one table.
    Snapshotting,
    /// Every table streams.
    Streaming,
    /// Stopped by an error (the reason says which).
    Failed,
    /// Stopped on request.
    Stopped,
}

/// Rows written to a table by operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
}

/// One lake table of the pipeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableStatus {
    pub uri: String,
    /// `COPY_ON_WRITE` or `MERGE_ON_READ`.
    #[serde(rename = "type")]
    pub table_type: String,
    /// Why the table stopped taking changes, when it did.
    pub failed: Option<String>,
    pub rows: RowCounts,
    /// Completed write commits (commits, delta commits, replace commits) in this process.
    pub commits: u64,
    /// The newest completed instant of any action seen in this process.
    pub latest_instant: Option<String>,
    /// Compactions planned and not completed, as the table services last saw them.
    pub pending_compactions: usize,
    /// Rows of this table written to the dead-letter table in this process.
    pub dead_letters: u64,
    /// The initial copy of the table in this process, when there is one.
    pub copy: Option<Copy>,
}

/// How far the initial copy of a table got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Rows received from the copy so far.
    pub rows: u64,
    pub done: bool,
}

/// A pipeline's state as reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub state: State,
    pub reason: Option<String>,
    /// The last source position acknowledged (everything up to it is durable in every table).
    pub acknowledged: Option<u64>,
    /// The same, as people read it (an LSN, a binlog file and offset, …).
    pub position: Option<String>,
    /// Source commit time (µs) of the oldest change received and not yet durable (`None`: every
    /// change received is durable).
    pub oldest_pending_commit_ts: Option<i64>,
    /// Changes received from the source (snapshot rows included).
    pub changes: u64,
    pub tables: BTreeMap<String, TableStatus>,
}

/// Shared, updatable [`Status`].
#[derive(Debug, Default)]
pub struct PipelineStatus(Mutex<Status>);

impl PipelineStatus {
    /// A copy of the current status.
    pub fn get(&self) -> Status {
        self.lock().clone()
    }

    /// Changes the status in place.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.lock());
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        // A panic while holding the lock leaves a status that is still worth showing.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
