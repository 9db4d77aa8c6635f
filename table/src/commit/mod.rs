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
//!
//! The commit's requirement, "the latest completed write is still the one I started from (B)", is
//! made atomic by claiming the successor of B: a put-if-absent of `.hoodie/.aux/inlet/commit-after-B`
//! naming `T`, just before completion. Of two writers that started from B (say a stalled writer
//! whose lease expired and the writer that took over), exactly one claims it; the other fails
//! with [`Error::CommitConflict`] and completes nothing.

pub mod avro_value;
pub mod compaction_plan;
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

/// Where successor claims live (Hudi's auxiliary folder, which readers ignore).
const CLAIMS_DIR: &str = ".hoodie/.aux/inlet";
const CLAIM_PREFIX: &str = "commit-after-";

/// One write in progress.
#[derive(Debug)]
pub struct Transaction {
    instant: Instant,
    /// The latest completed data write when the transaction began: the commit requires it to
    /// still be the latest when it completes (a compaction completing meanwhile changes no record).
    base: Option<InstantTime>,
}

/// The table-relative path of an instant's file.
pub fn instant_path(instant: &Instant) -> Result<String> {
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
        let base = timeline.latest_data_write().map(|i| i.time.clone());
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

    /// Publishes the write: checks that the lease is still held, claims the successor of the base
    /// write, checks that no other write completed since the transaction began, then creates the
    /// completed instant file.
    pub async fn complete(
        self,
        storage: &Storage,
        lease: &Lease,
        metadata: &CommitMetadata,
    ) -> Result<Instant> {
        lease.check().await?;
        self.claim_successor(storage).await?;
        let now = Timeline::load(storage).await?;
        let latest = now.latest_data_write().map(|i| i.time.clone());
        if latest != self.base {
            let latest = latest.map_or_else(|| "none".to_string(), |t| t.to_string());
            return Err(self.conflict(format!(
                "the table changed while writing: latest completed write is {latest} (expected {})",
                self.base_name()
            )));
        }
        let completed = self.instant.with_state(State::Completed);
        let body = Bytes::from(metadata.to_json());
        match storage
            .put_if_absent(&instant_path(&completed)?, body)
            .await?
        {
            Created::Yes => {
                // The put's answer may be lost although the put happened.
                crate::fail_with_error!("commit.after-complete");
                self.prune_claims(storage).await;
                Ok(completed)
            }
            Created::AlreadyExists => {
                Err(self.conflict("another writer completed this instant".to_string()))
            }
        }
    }

    fn conflict(&self, reason: String) -> Error {
        Error::CommitConflict {
            instant: self.instant.time.clone(),
            reason,
        }
    }

    fn base_name(&self) -> String {
        self.base
            .as_ref()
            .map_or_else(|| "none".to_string(), |t| t.to_string())
    }

    fn claim_path(&self) -> String {
        format!("{CLAIMS_DIR}/{CLAIM_PREFIX}{}", self.base_name())
    }

    /// Claims the right to be the next completed write after the base write.
    async fn claim_successor(&self, storage: &Storage) -> Result<()> {
        let path = self.claim_path();
        let me = Bytes::from(self.instant.time.to_string());
        for _ in 0..2 {
            if storage.put_if_absent(&path, me.clone()).await? == Created::Yes {
                return Ok(());
            }
            let holder = storage.get_opt(&path).await?.unwrap_or_default();
            let holder = String::from_utf8_lossy(&holder).trim().to_string();
            if holder == self.instant.time.as_str() {
                return Ok(());
            }
            let timeline = Timeline::load(storage).await?;
            if holder
                .parse::<InstantTime>()
                .ok()
                .and_then(|t| timeline.get(&t).cloned())
                .is_some()
            {
                // Completed, or pending (a live competitor): either way it came first.
                return Err(self.conflict(format!(
                    "write {holder} already claimed the commit after {}",
                    self.base_name()
                )));
            }
            // The holder was rolled back (a writer that died before completing): the claim is
            // stale. Only the lease holder gets here, so removing it races with nobody.
            storage.delete(&path).await?;
        }
        Err(self.conflict(format!(
            "could not claim the commit after {}",
            self.base_name()
        )))
    }

    /// Removes older claims: writers that started before them are fenced by the base check.
    async fn prune_claims(&self, storage: &Storage) {
        let keep = self.claim_path();
        let Ok(entries) = storage.list_dir(CLAIMS_DIR).await else {
            return;
        };
        // Only claims: a competitor's claim being written on local disk is a temp file here.
        let claim_prefix = format!("{CLAIMS_DIR}/{CLAIM_PREFIX}");
        let old = entries
            .into_iter()
            .filter(|e| e.path != keep && e.path.starts_with(&claim_prefix));
        for entry in old {
            if let Err(e) = storage.delete(&entry.path).await {
                tracing::warn!(path = %entry.path, error = %e, "Could not remove an old commit claim.");
            }
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
