//! The timeline: every action taken on a table, as instant files in `.hoodie/`. An instant's state
//! is the most advanced of its files; data written by an action is visible only once the action's
//! completed file exists.

mod clock;
mod instant;

pub use clock::{Clock, InstantGenerator, SystemClock};
pub use instant::{Action, Instant, InstantTime, State};

use std::collections::{BTreeMap, BTreeSet};

use crate::commit::metadata::CommitMetadata;
use crate::error::Result;
use crate::storage::Storage;

/// The folder of the active timeline (table version 6, timeline layout 1).
pub const TIMELINE_DIR: &str = ".hoodie";

/// The active timeline as loaded from storage, ordered by instant time.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    instants: Vec<Instant>,
    /// Times of compactions, pending or completed (a completed one is listed as a commit).
    compactions: BTreeSet<InstantTime>,
    /// Savepoints, kept apart: a savepoint is named with the time of the commit it keeps.
    savepoints: Vec<Instant>,
}

impl Timeline {
    /// Lists `.hoodie/` and keeps, for each instant time, its most advanced state. Files that are
    /// not instants (properties, folders, temp files) are skipped.
    pub async fn load(storage: &Storage) -> Result<Timeline> {
        let names = storage
            .list_dir(TIMELINE_DIR)
            .await?
            .into_iter()
            .filter_map(|entry| entry.path.rsplit('/').next().map(str::to_string));
        Ok(Timeline::from_file_names(names))
    }

    /// Builds a timeline from instant file names (unparseable names are skipped).
    pub fn from_file_names(names: impl IntoIterator<Item = String>) -> Timeline {
        let mut latest: BTreeMap<InstantTime, Instant> = BTreeMap::new();
        let mut compactions = BTreeSet::new();
        let mut savepoints: BTreeMap<InstantTime, Instant> = BTreeMap::new();
        for name in names {
            let Ok(instant) = name.parse::<Instant>() else {
                if name.starts_with(|c: char| c.is_ascii_digit()) {
                    tracing::warn!(file = %name, "Skipping an unrecognised file in the timeline folder.");
                }
                continue;
            };
            if instant.action == Action::Compaction {
                compactions.insert(instant.time.clone());
            }
            let of_time = if instant.action == Action::Savepoint {
                &mut savepoints
            } else {
                &mut latest
            };
            match of_time.get(&instant.time) {
                Some(existing) if existing.state >= instant.state => {}
                _ => {
                    of_time.insert(instant.time.clone(), instant);
                }
            }
        }
        Timeline {
            instants: latest.into_values().collect(),
            compactions,
            savepoints: savepoints.into_values().collect(),
        }
    }

    /// Records an instant this process moved to a new state, without listing the timeline again.
    pub(crate) fn record(&mut self, instant: Instant) {
        if instant.action == Action::Compaction {
            self.compactions.insert(instant.time.clone());
        }
        let list = if instant.action == Action::Savepoint {
            &mut self.savepoints
        } else {
            &mut self.instants
        };
        match list.binary_search_by(|i| i.time.cmp(&instant.time)) {
            Ok(at) => list[at] = instant,
            Err(at) => list.insert(at, instant),
        }
    }

    /// Completed savepoints, oldest first. Each is named with the time of the commit it keeps.
    pub fn savepoints(&self) -> impl DoubleEndedIterator<Item = &Instant> + '_ {
        self.savepoints.iter().filter(|i| i.is_completed())
    }

    /// Savepoints started and never completed (a savepoint writes no data; it is simply redone).
    pub fn pending_savepoints(&self) -> impl Iterator<Item = &Instant> + '_ {
        self.savepoints.iter().filter(|i| !i.is_completed())
    }

    /// Every instant but savepoints (see [`Timeline::savepoints`]), oldest first.
    pub fn instants(&self) -> &[Instant] {
        &self.instants
    }

    /// Completed actions that made data visible (commit, delta commit, replace commit).
    pub fn completed_writes(&self) -> impl DoubleEndedIterator<Item = &Instant> + '_ {
        self.instants
            .iter()
            .filter(|i| i.is_completed() && i.action.writes_data())
    }

    /// Instants that were started and never completed.
    pub fn pending(&self) -> impl Iterator<Item = &Instant> + '_ {
        self.instants.iter().filter(|i| !i.is_completed())
    }

    pub fn latest_completed_write(&self) -> Option<&Instant> {
        self.completed_writes().next_back()
    }

    /// The latest completed write that changed records: compactions only rewrite them, so a
    /// writer's view stays valid when one completes beside it.
    pub fn latest_data_write(&self) -> Option<&Instant> {
        self.completed_writes()
            .rfind(|i| !self.compactions.contains(&i.time))
    }

    /// Compactions scheduled or running, oldest first.
    pub fn pending_compactions(&self) -> impl Iterator<Item = &Instant> + '_ {
        self.pending().filter(|i| i.action == Action::Compaction)
    }

    /// Whether the instant is (or was, once completed) a compaction.
    pub fn is_compaction(&self, time: &InstantTime) -> bool {
        self.compactions.contains(time)
    }

    /// Whether data named with `time` is committed: written by a completed write, or older than
    /// every write on the active timeline and not on it (archived). Failed writes are rolled
    /// back before archival, so nothing uncommitted can hide below the active timeline.
    pub fn is_committed(&self, time: &InstantTime) -> bool {
        if self.is_completed_write(time) {
            return true;
        }
        let earliest = self
            .instants
            .iter()
            .find(|i| i.action.writes_data() || i.action == Action::Compaction);
        earliest.is_some_and(|e| time < &e.time) && self.get(time).is_none()
    }

    /// The greatest instant time on the timeline, in any state: new instants must exceed it.
    pub fn latest_time(&self) -> Option<&InstantTime> {
        self.instants.last().map(|i| &i.time)
    }

    pub fn get(&self, time: &InstantTime) -> Option<&Instant> {
        self.instants.iter().find(|i| &i.time == time)
    }

    /// Whether data files named with `time` belong to a completed write.
    pub fn is_completed_write(&self, time: &InstantTime) -> bool {
        self.get(time)
            .is_some_and(|i| i.is_completed() && i.action.writes_data())
    }

    /// The timeline as it was at `time`: instants up to and including it.
    pub fn as_of(&self, time: &InstantTime) -> Timeline {
        Timeline {
            instants: self
                .instants
                .iter()
                .filter(|i| &i.time <= time)
                .cloned()
                .collect(),
            compactions: self.compactions.clone(),
            savepoints: self
                .savepoints
                .iter()
                .filter(|i| &i.time <= time)
                .cloned()
                .collect(),
        }
    }

    /// Reads the metadata of a completed commit, delta commit or replace commit.
    pub async fn commit_metadata(
        &self,
        storage: &Storage,
        instant: &Instant,
    ) -> Result<CommitMetadata> {
        let Some(name) = instant.file_name() else {
            return Err(crate::Error::InstantNotFound(instant.to_string()));
        };
        let path = format!("{TIMELINE_DIR}/{name}");
        let bytes = storage.get(&path).await?;
        CommitMetadata::from_json(&bytes)
            .map_err(|reason| crate::Error::CommitMetadata { path, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_advanced_state_and_orders_by_time() {
        let names = [
            "20240418173551906.commit",
            "20240418173551906.commit.requested",
            "20240418173551906.inflight",
            "20240418173550988.commit.requested",
            "20240418173550988.inflight",
            "20240418173552000.compaction.requested",
            "20240418173552000.commit",
            "20240418173553000.commit.requested",
            "hoodie.properties",
            ".aux",
        ];
        let timeline = Timeline::from_file_names(names.iter().map(|s| s.to_string()));
        let got: Vec<String> = timeline.instants().iter().map(|i| i.to_string()).collect();
        assert_eq!(
            got,
            [
                "[20240418173550988__commit__INFLIGHT]",
                "[20240418173551906__commit__COMPLETED]",
                "[20240418173552000__commit__COMPLETED]",
                "[20240418173553000__commit__REQUESTED]",
            ]
        );
        assert_eq!(timeline.completed_writes().count(), 2);
        assert_eq!(timeline.pending().count(), 2);
        assert_eq!(
            timeline.latest_time().map(|t| t.as_str()),
            Some("20240418173553000")
        );
        let earlier: InstantTime = "20240418173551906".parse().expect("valid");
        assert_eq!(timeline.as_of(&earlier).completed_writes().count(), 1);
    }

    /// A savepoint is named with the time of the commit it keeps (Hudi's
    /// `SavepointActionExecutor`): it must neither hide nor stand for that commit.
    #[test]
    fn a_savepoint_shares_its_commits_time_without_replacing_it() {
        for order in [
            ["20240101000001000.commit", "20240101000001000.savepoint"],
            ["20240101000001000.savepoint", "20240101000001000.commit"],
        ] {
            let mut names: Vec<String> = order.iter().map(|s| s.to_string()).collect();
            names.push("20240101000001000.savepoint.inflight".to_string());
            names.push("20240101000002000.deltacommit".to_string());
            names.push("20240101000002000.savepoint.inflight".to_string());
            let timeline = Timeline::from_file_names(names);
            let writes: Vec<String> = timeline.completed_writes().map(|i| i.to_string()).collect();
            assert_eq!(
                writes,
                [
                    "[20240101000001000__commit__COMPLETED]",
                    "[20240101000002000__deltacommit__COMPLETED]"
                ]
            );
            let savepoints: Vec<String> =
                timeline.savepoints().map(|i| i.time.to_string()).collect();
            assert_eq!(savepoints, ["20240101000001000"]);
            assert_eq!(
                timeline.pending().count(),
                0,
                "an inflight savepoint is no pending write"
            );
            assert!(timeline.is_completed_write(&"20240101000001000".parse().expect("valid")));
        }
    }
}
