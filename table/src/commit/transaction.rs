//! The one path by which anything reaches the timeline. Every action — commit, delta commit,
//! replace commit, compaction, clean, rollback, savepoint, restore — is a [`Transaction`]:
//!
//! ```text
//!  begin ──► T.<a>.requested ──► T.<a>.inflight ──► the action's work ──► complete
//!  (claims T: put-if-absent;     (put-if-absent;    (data files,           │ lease still held?
//!   the body is the plan:         the workload)      deletions)            │ requirements still true?
//!   compaction, clean,                                                     ▼
//!   rollback, restore)                                         T.<a> (one put-if-absent)
//!                                                                          │
//!                  └── error / crash ──► rollback (itself a transaction)   ▼
//!                                                              post-commit hooks
//! ```
//!
//! - A savepoint has no requested file and is named with the time of the commit it keeps.
//! - A compaction is begun by its schedule and [`resume`](Transaction::resume)d by its
//!   execution, maybe in another process; a clean interrupted by a crash is resumed likewise.
//! - Nothing of `T` is visible to readers before its completed file exists: readers only take
//!   files of completed instants.
//! - [`Requirement`]s are checked at completion, after the action's work, so that what the action
//!   assumed when it began still holds when it becomes visible. "The latest write is still B" is
//!   made atomic by claiming the successor of B: a put-if-absent of
//!   `.hoodie/.aux/inlet/commit-after-B` naming `T`. Of two writers that started from B (say a
//!   stalled writer whose lease expired and the writer that took over), exactly one claims it;
//!   the other fails with [`Error::CommitConflict`] and completes nothing.
//! - [`CommitHook`]s (the service's metrics, the Delta mirror, catalog sync) run after every
//!   completion. The action is durable by then: a failing hook is logged, never undoes it.
//!
//! Deleting instant files (a rollback dropping the instant it undid, archival) also happens here
//! only ([`delete_instant_files`]).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::lease::Lease;
use super::metadata::CommitMetadata;
use crate::error::{Error, Result};
use crate::storage::{Created, Storage};
use crate::table::Table;
use crate::timeline::{Action, Instant, InstantTime, State, TIMELINE_DIR, Timeline};

/// Where successor claims live (Hudi's auxiliary folder, which readers ignore).
const CLAIMS_DIR: &str = ".hoodie/.aux/inlet";
const CLAIM_PREFIX: &str = "commit-after-";

/// The table-relative path of an instant's file.
pub(crate) fn instant_path(instant: &Instant) -> Result<String> {
    let name = instant
        .file_name()
        .ok_or_else(|| Error::InstantNotFound(instant.to_string()))?;
    Ok(format!("{TIMELINE_DIR}/{name}"))
}

/// Reads the body of an instant file (a plan, a workload, metadata); `None` when it is absent.
pub async fn read_instant(storage: &Storage, instant: &Instant) -> Result<Option<Bytes>> {
    storage.get_opt(&instant_path(instant)?).await
}

/// Removes the files of `instant` in the given states, in that order.
pub async fn delete_instant_files(
    storage: &Storage,
    instant: &Instant,
    states: &[State],
) -> Result<()> {
    for state in states {
        if let Some(name) = instant.with_state(*state).file_name() {
            storage.delete(&format!("{TIMELINE_DIR}/{name}")).await?;
        }
    }
    Ok(())
}

/// What must still be true when a transaction completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The latest completed write that changed records is still this one (`None`: no write
    /// yet). Compactions completing meanwhile change no record and do not count.
    LatestWrite(Option<InstantTime>),
    /// This write is still completed (not rolled back meanwhile): a savepoint keeps it.
    Completed(InstantTime),
}

/// What a completed action is, for the hooks.
#[derive(Debug, Clone)]
pub struct Completed<'a> {
    pub instant: &'a Instant,
    /// The commit metadata of a commit, delta commit, replace commit or compaction.
    pub commit: Option<&'a CommitMetadata>,
}

/// Runs after every completed action of a table (registered in
/// [`TableConfig::hooks`](crate::TableConfig)).
#[async_trait]
pub trait CommitHook: Send + Sync + fmt::Debug {
    /// A short name for logs.
    fn name(&self) -> &str;

    async fn completed(&self, table: &Table, completed: &Completed<'_>) -> Result<()>;
}

/// The completed file's body.
#[derive(Debug, Clone)]
pub struct Completion<'a> {
    body: Bytes,
    commit: Option<&'a CommitMetadata>,
}

impl<'a> Completion<'a> {
    /// A commit, delta commit, replace commit or compaction (JSON commit metadata).
    pub fn commit(metadata: &'a CommitMetadata) -> Self {
        Completion {
            body: Bytes::from(metadata.to_json()),
            commit: Some(metadata),
        }
    }

    /// Any other action: its Avro metadata (clean, rollback, savepoint, restore).
    pub fn avro(body: Bytes) -> Self {
        Completion { body, commit: None }
    }
}

/// One action in progress.
#[derive(Debug)]
pub struct Transaction {
    instant: Instant,
    requirements: Vec<Requirement>,
}

impl Transaction {
    /// Claims a new instant time, greater than every instant on `timeline`, and writes its
    /// requested file with `plan` as its body (empty for writes).
    pub async fn begin(
        table: &Table,
        timeline: &Timeline,
        action: Action,
        plan: Bytes,
    ) -> Result<Self> {
        let time = table.generator().next(timeline.latest_time());
        let instant = Instant::new(time.clone(), action, State::Requested);
        if table
            .storage()
            .put_if_absent(&instant_path(&instant)?, plan)
            .await?
            == Created::AlreadyExists
        {
            return Err(Error::CommitConflict {
                instant: time,
                reason: "the instant time is already taken".to_string(),
            });
        }
        Ok(Transaction {
            instant,
            requirements: Vec::new(),
        })
    }

    /// Begins a savepoint of the completed write at `time`: it has no requested file and goes
    /// inflight at once, named with the write's time.
    pub async fn savepoint(table: &Table, time: &InstantTime) -> Result<Self> {
        let instant = Instant::new(time.clone(), Action::Savepoint, State::Inflight);
        table
            .storage()
            .put(&instant_path(&instant)?, Bytes::new())
            .await?;
        Ok(Transaction {
            instant,
            requirements: vec![Requirement::Completed(time.clone())],
        })
    }

    /// Takes over a pending instant (a scheduled compaction, an interrupted clean).
    pub fn resume(instant: Instant) -> Self {
        Transaction {
            instant,
            requirements: Vec::new(),
        }
    }

    /// Adds a requirement checked at completion.
    pub fn require(&mut self, requirement: Requirement) {
        self.requirements.push(requirement);
    }

    pub fn instant(&self) -> &Instant {
        &self.instant
    }

    pub fn instant_time(&self) -> &InstantTime {
        &self.instant.time
    }

    /// Marks the action inflight with `workload` as the inflight file's body (a no-op when it
    /// already is: a resumed action).
    pub async fn inflight(&mut self, storage: &Storage, workload: Bytes) -> Result<()> {
        if self.instant.state != State::Requested {
            return Ok(());
        }
        let inflight = self.instant.with_state(State::Inflight);
        storage
            .put_if_absent(&instant_path(&inflight)?, workload)
            .await?;
        self.instant = inflight;
        Ok(())
    }

    /// Makes the action visible: checks that `lease` is still held and every requirement still
    /// holds, creates the completed instant file, then runs the table's hooks. When the
    /// completing put reports an error but the completed file exists, the action happened, and
    /// this says so.
    pub async fn complete(
        self,
        table: &Table,
        lease: &Lease,
        completion: Completion<'_>,
    ) -> Result<Instant> {
        let storage = table.storage();
        let completed = self.instant.with_state(State::Completed);
        if let Err(e) = self.publish(storage, lease, completion.body).await {
            let path = instant_path(&completed)?;
            // The put's answer may be lost although the put happened: then saying it failed
            // would be a lie. (A conflict means another process completed it: not ours.)
            if matches!(e, Error::CommitConflict { .. }) || storage.head(&path).await?.is_none() {
                return Err(e);
            }
            tracing::warn!(instant = %completed, error = %e, "Completing reported an error, but the completed instant is on the timeline: the action happened.");
        }
        let event = Completed {
            instant: &completed,
            commit: completion.commit,
        };
        for hook in &table.config().hooks {
            if let Err(e) = hook.completed(table, &event).await {
                tracing::warn!(hook = hook.name(), instant = %completed, error = %e, "A post-commit hook failed; the action itself is complete.");
            }
        }
        Ok(completed)
    }

    async fn publish(&self, storage: &Storage, lease: &Lease, body: Bytes) -> Result<()> {
        lease.check().await?;
        let base = self.requirements.iter().find_map(|r| match r {
            Requirement::LatestWrite(base) => Some(base),
            _ => None,
        });
        if let Some(base) = base {
            self.claim_successor(storage, base.as_ref()).await?;
        }
        if !self.requirements.is_empty() {
            let now = Timeline::load(storage).await?;
            for requirement in &self.requirements {
                self.check(&now, requirement)?;
            }
        }
        let completed = self.instant.with_state(State::Completed);
        match storage
            .put_if_absent(&instant_path(&completed)?, body)
            .await?
        {
            Created::Yes => {
                crate::fail_with_error!("commit.after-complete");
                if let Some(base) = base {
                    self.prune_claims(storage, base.as_ref()).await;
                }
                Ok(())
            }
            Created::AlreadyExists => {
                Err(self.conflict("another process completed this instant".to_string()))
            }
        }
    }

    fn check(&self, now: &Timeline, requirement: &Requirement) -> Result<()> {
        match requirement {
            Requirement::LatestWrite(base) => {
                let latest = now.latest_data_write().map(|i| &i.time);
                if latest != base.as_ref() {
                    return Err(self.conflict(format!(
                        "the table changed meanwhile: the latest completed write is {} (expected {})",
                        name_of(latest),
                        name_of(base.as_ref())
                    )));
                }
            }
            Requirement::Completed(time) => {
                if !now.is_completed_write(time) {
                    return Err(self.conflict(format!(
                        "write {time} is no longer a completed write (rolled back meanwhile)"
                    )));
                }
            }
        }
        Ok(())
    }

    fn conflict(&self, reason: String) -> Error {
        Error::CommitConflict {
            instant: self.instant.time.clone(),
            reason,
        }
    }

    fn claim_path(base: Option<&InstantTime>) -> String {
        format!("{CLAIMS_DIR}/{CLAIM_PREFIX}{}", name_of(base))
    }

    /// Claims the right to be the next completed write after the base write.
    async fn claim_successor(&self, storage: &Storage, base: Option<&InstantTime>) -> Result<()> {
        let path = Self::claim_path(base);
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
                    name_of(base)
                )));
            }
            // The holder was rolled back (a writer that died before completing): the claim is
            // stale. Only the lease holder gets here, so removing it races with nobody.
            storage.delete(&path).await?;
        }
        Err(self.conflict(format!(
            "could not claim the commit after {}",
            name_of(base)
        )))
    }

    /// Removes older claims: writers that started before them are fenced by the base check.
    async fn prune_claims(&self, storage: &Storage, base: Option<&InstantTime>) {
        let keep = Self::claim_path(base);
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

    /// Undoes a write: removes its data files and records a rollback instant.
    pub async fn abort(self, table: &Table, lease: &Lease) -> Result<()> {
        let timeline = Timeline::load(table.storage()).await?;
        super::rollback::rollback(table, lease, &timeline, &self.instant)
            .await
            .map(|_| ())
    }
}

fn name_of(time: Option<&InstantTime>) -> String {
    time.map_or_else(|| "none".to_string(), |t| t.to_string())
}

/// Hooks a table runs after each completed action.
pub type Hooks = Vec<Arc<dyn CommitHook>>;
