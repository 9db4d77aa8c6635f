//! An instant: a point on the timeline, named by its (requested) time, with the action taken at
//! that time and how far the action got. Each identifier parses from and prints to its on-disk
//! form in `.hoodie/` (timeline layout version 1, used by table version 6).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::error::{Error, Result};

/// `yyyyMMddHHmmssSSS` in UTC (the legacy 14-digit `yyyyMMddHHmmss` also parses).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstantTime(String);

const FORMAT_MILLIS: &str = "%Y%m%d%H%M%S%3f";

impl InstantTime {
    /// The instant time of a wall-clock time, truncated to milliseconds.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        InstantTime(at.format(FORMAT_MILLIS).to_string())
    }

    /// The wall-clock time this instant names, when it is a real date (metadata-table instants
    /// such as `00000000000000000` are not).
    pub fn to_datetime(&self) -> Option<DateTime<Utc>> {
        let padded = if self.0.len() == 14 {
            format!("{}000", self.0)
        } else {
            self.0.clone()
        };
        NaiveDateTime::parse_from_str(&padded, FORMAT_MILLIS)
            .ok()
            .map(|t| t.and_utc())
    }

    /// The next instant time one millisecond later.
    pub fn next(&self) -> Option<Self> {
        self.to_datetime()
            .map(|t| Self::from_datetime(t + TimeDelta::milliseconds(1)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstantTime {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if (s.len() == 17 || s.len() == 14) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(InstantTime(s.to_string()))
        } else {
            Err(Error::InvalidInstant(s.to_string()))
        }
    }
}

impl fmt::Display for InstantTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What was done at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Commit,
    DeltaCommit,
    Compaction,
    LogCompaction,
    Clean,
    Rollback,
    ReplaceCommit,
    Clustering,
    Savepoint,
    Restore,
    Indexing,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::Commit,
        Action::DeltaCommit,
        Action::Compaction,
        Action::LogCompaction,
        Action::Clean,
        Action::Rollback,
        Action::ReplaceCommit,
        Action::Clustering,
        Action::Savepoint,
        Action::Restore,
        Action::Indexing,
    ];

    /// The action's name in file names.
    pub fn name(self) -> &'static str {
        match self {
            Action::Commit => "commit",
            Action::DeltaCommit => "deltacommit",
            Action::Compaction => "compaction",
            Action::LogCompaction => "logcompaction",
            Action::Clean => "clean",
            Action::Rollback => "rollback",
            Action::ReplaceCommit => "replacecommit",
            Action::Clustering => "clustering",
            Action::Savepoint => "savepoint",
            Action::Restore => "restore",
            Action::Indexing => "indexing",
        }
    }

    /// The action a completed instant of this action is recorded as: compaction completes as a
    /// commit, log compaction as a delta commit, clustering as a replace commit.
    pub fn completed_as(self) -> Action {
        match self {
            Action::Compaction => Action::Commit,
            Action::LogCompaction => Action::DeltaCommit,
            Action::Clustering => Action::ReplaceCommit,
            other => other,
        }
    }

    /// Whether the action writes data files that readers see once it completes.
    pub fn writes_data(self) -> bool {
        matches!(
            self,
            Action::Commit | Action::DeltaCommit | Action::ReplaceCommit
        )
    }

    /// Whether completing the action can change which data files readers see: writes,
    /// compactions, rollbacks and restores (cleans only remove files no reader needs).
    pub fn changes_files(self) -> bool {
        self.writes_data()
            || matches!(
                self,
                Action::Compaction | Action::Rollback | Action::Restore
            )
    }
}

impl FromStr for Action {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Action::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::InvalidInstant(format!("unknown action {s:?}")))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How far an action got. Ordered: a later state supersedes an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Requested,
    Inflight,
    Completed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Requested => "REQUESTED",
            State::Inflight => "INFLIGHT",
            State::Completed => "COMPLETED",
        })
    }
}

/// One file of the timeline: an instant time, an action and a state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Instant {
    pub time: InstantTime,
    pub action: Action,
    pub state: State,
}

impl Instant {
    pub fn new(time: InstantTime, action: Action, state: State) -> Self {
        Instant {
            time,
            action,
            state,
        }
    }

    pub fn is_completed(&self) -> bool {
        self.state == State::Completed
    }

    /// This instant in another state (a completed compaction becomes a commit, and so on).
    pub fn with_state(&self, state: State) -> Self {
        let action = if state == State::Completed {
            self.action.completed_as()
        } else {
            self.action
        };
        Instant {
            time: self.time.clone(),
            action,
            state,
        }
    }

    /// The file name in `.hoodie/` (timeline layout 1). `None` for a requested savepoint, which
    /// has no file of its own.
    pub fn file_name(&self) -> Option<String> {
        let t = &self.time;
        Some(match (self.action, self.state) {
            (Action::Savepoint, State::Requested) => return None,
            // A commit's inflight file carries no action name, for backwards compatibility.
            (Action::Commit, State::Inflight) => format!("{t}.inflight"),
            (action, State::Requested) => format!("{t}.{action}.requested"),
            (action, State::Inflight) => format!("{t}.{action}.inflight"),
            (action, State::Completed) => format!("{t}.{}", action.completed_as()),
        })
    }
}

impl FromStr for Instant {
    type Err = Error;

    /// Parses a timeline file name (`20240418173213674.commit.requested`, `….inflight`, …).
    fn from_str(name: &str) -> Result<Self> {
        let invalid = || Error::InvalidInstant(name.to_string());
        let (time, rest) = name.split_once('.').ok_or_else(invalid)?;
        let time: InstantTime = time.parse().map_err(|_| invalid())?;
        let (action, state) = match rest {
            "inflight" => (Action::Commit, State::Inflight),
            _ => match rest.rsplit_once('.') {
                Some((action, "requested")) => (action.parse()?, State::Requested),
                Some((action, "inflight")) => (action.parse()?, State::Inflight),
                Some(_) => return Err(invalid()),
                None => (rest.parse::<Action>()?, State::Completed),
            },
        };
        if state == State::Completed && action.completed_as() != action {
            return Err(invalid());
        }
        Ok(Instant {
            time,
            action,
            state,
        })
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}__{}__{}]", self.time, self.action, self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> InstantTime {
        s.parse().expect("valid instant time")
    }

    #[test]
    fn file_names_round_trip_for_every_action_and_state() -> Result<()> {
        for action in Action::ALL {
            for state in [State::Requested, State::Inflight, State::Completed] {
                let instant = Instant::new(t("20240418173213674"), action, state);
                let Some(name) = instant.file_name() else {
                    assert_eq!((action, state), (Action::Savepoint, State::Requested));
                    continue;
                };
                let parsed: Instant = name.parse()?;
                assert_eq!(parsed, instant.with_state(state), "{name}");
            }
        }
        Ok(())
    }

    #[test]
    fn parses_the_names_hudi_writes() -> Result<()> {
        let cases = [
            ("20240418173213674.commit", Action::Commit, State::Completed),
            (
                "20240418173213674.inflight",
                Action::Commit,
                State::Inflight,
            ),
            (
                "20240418173213674.commit.requested",
                Action::Commit,
                State::Requested,
            ),
            (
                "20240418173213674.deltacommit.inflight",
                Action::DeltaCommit,
                State::Inflight,
            ),
            (
                "20240418173213674.compaction.requested",
                Action::Compaction,
                State::Requested,
            ),
            (
                "20240418173213674.replacecommit",
                Action::ReplaceCommit,
                State::Completed,
            ),
            (
                "20240418173213674.rollback",
                Action::Rollback,
                State::Completed,
            ),
            (
                "20240418173213674.savepoint.inflight",
                Action::Savepoint,
                State::Inflight,
            ),
            ("20240418173213.clean", Action::Clean, State::Completed),
        ];
        for (name, action, state) in cases {
            let instant: Instant = name.parse()?;
            assert_eq!((instant.action, instant.state), (action, state), "{name}");
            assert_eq!(instant.file_name().as_deref(), Some(name));
        }
        for bad in [
            "hoodie.properties",
            "2024.commit",
            "20240418173213674.compaction",
            "20240418173213674.bogus",
        ] {
            assert!(bad.parse::<Instant>().is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn instant_time_arithmetic_carries_across_fields() {
        assert_eq!(t("20241231235959999").next(), Some(t("20250101000000000")));
        assert_eq!(t("20240418173213").next(), Some(t("20240418173213001")));
        assert_eq!(t("00000000000000000").next(), None);
        assert!(t("20240418173213674") < t("20240418173213675"));
    }
}
