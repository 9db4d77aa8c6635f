//! The commit protocol: how one write becomes visible atomically, or not at all.
//!
//! ```text
//!  begin ──► T.<a>.requested ──► T.<a>.inflight ──► data files ──► T.<a> (completed)
//!   (put-if-absent:            (put-if-absent)     (unique        (one put-if-absent, after the
//!    claims T)                                      names)         lease and base checks)
//!                                        └── error / crash ──► rollback: delete T's files,
//!                                                              record R.rollback, drop T's files
//! ```
//!
//! Every state is persisted by the writer that holds the table's lease ([`lease`]); nothing of `T`
//! is visible to readers before the completed file exists, because readers only take files of
//! completed instants. A writer that finds pending instants on open (a dead writer's) rolls them
//! back before it writes ([`rollback`]).

pub mod lease;
pub mod metadata;
pub mod rollback;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::storage::{Created, Storage};
use crate::timeline::{
    Action, Instant, InstantGenerator, InstantTime, State, TIMELINE_DIR, Timeline,
};
use lease::Lease;
use metadata::CommitMetadata;

/// One write in progress.
#[derive(Debug)]
pub struct Transaction {
    instant: Instant,
    /// The latest completed write when the transaction began: the commit requires it to still be
    /// the latest when it completes.
    base: Option<InstantTime>,
}

fn instant_path(instant: &Instant) -> Result<String> {
    let name = instant
        .file_name()
        .ok_or_else(|| Error::InstantNotFound(instant.to_string()))?;
    Ok(format!("{TIMELINE_DIR}/{name}"))
}

impl Transaction {
    /// Claims a new instant time and writes its requested file.
    pub async fn begin(
        storage: &Storage,
        timeline: &Timeline,
        generator: &InstantGenerator,
        action: Action,
    ) -> Result<Self> {
        let time = generator.next(timeline.latest_time());
        let instant = Instant::new(time.clone(), action, State::Requested);
        if storage
            .put_if_absent(&instant_path(&instant)?, Bytes::new())
            .await?
            == Created::AlreadyExists
        {
            return Err(Error::CommitConflict {
                instant: time,
                reason: "the instant time is already taken".to_string(),
            });
        }
        let base = timeline.latest_completed_write().map(|i| i.time.clone());
        Ok(Transaction { instant, base })
    }

    pub fn instant_time(&self) -> &InstantTime {
        &self.instant.time
    }

    /// Marks the write inflight, with the planned workload (Hudi's inflight metadata).
    pub async fn inflight(&mut self, storage: &Storage, workload: &CommitMetadata) -> Result<()> {
        let inflight = self.instant.with_state(State::Inflight);
        storage
            .put_if_absent(&instant_path(&inflight)?, Bytes::from(workload.to_json()))
            .await?;
        self.instant = inflight;
        Ok(())
    }

    /// Publishes the write: checks that the lease is still held and that no other write completed
    /// since the transaction began, then creates the completed instant file.
    pub async fn complete(
        self,
        storage: &Storage,
        lease: &Lease,
        metadata: &CommitMetadata,
    ) -> Result<Instant> {
        let conflict = |reason: String| Error::CommitConflict {
            instant: self.instant.time.clone(),
            reason,
        };
        lease.check().await?;
        let now = Timeline::load(storage).await?;
        let latest = now.latest_completed_write().map(|i| i.time.clone());
        if latest != self.base {
            return Err(conflict(format!(
                "the table changed while writing: latest completed write is {} (expected {})",
                latest
                    .as_ref()
                    .map_or("none".to_string(), |t| t.to_string()),
                self.base
                    .as_ref()
                    .map_or("none".to_string(), |t| t.to_string()),
            )));
        }
        let completed = self.instant.with_state(State::Completed);
        match storage
            .put_if_absent(&instant_path(&completed)?, Bytes::from(metadata.to_json()))
            .await?
        {
            Created::Yes => Ok(completed),
            Created::AlreadyExists => Err(conflict(
                "another writer completed this instant".to_string(),
            )),
        }
    }

    /// Undoes the write: removes its data files and records a rollback instant.
    pub async fn abort(self, storage: &Storage, generator: &InstantGenerator) -> Result<()> {
        let timeline = Timeline::load(storage).await?;
        rollback::rollback(storage, &timeline, generator, &self.instant)
            .await
            .map(|_| ())
    }
}
