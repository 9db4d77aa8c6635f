//! The file-system view: which base files of a table are visible, grouped into file groups. A file
//! is visible when the write named in its file name completed (or is older than the active
//! timeline, i.e. archived); file groups replaced by a completed replace commit drop out from that
//! commit on. Log files written while a compaction is pending are named with the compaction's
//! instant and are visible too (see [`FileGroup::latest_slice`]).

use std::collections::{BTreeMap, HashMap};

use super::{BaseFile, FileGroup, FileSlice, LogFile};
use crate::commit::compaction_plan::CompactionPlan;
use crate::error::Result;
use crate::ids::{FileId, PartitionPath};
use crate::storage::Storage;
use crate::timeline::{Action, InstantTime, TIMELINE_DIR, Timeline};

/// The visible file groups of a table, keyed by (partition, file id).
#[derive(Debug, Clone, Default)]
pub struct FileSystemView {
    groups: BTreeMap<GroupKey, FileGroup>,
    /// File groups replaced by a completed replace commit, and the replace commit's time.
    replaced: HashMap<GroupKey, InstantTime>,
    /// Which file groups changed since the view was loaded, in order: what lets a long-running
    /// writer's key index follow the view without looking at every file group (see
    /// [`FileSystemView::changes_since`]).
    changes: Changes,
}

/// A log of changed file groups, numbered by an epoch: a reader that saw position `n` of epoch
/// `e` reads on from there; when the log grows past the number of file groups, it restarts under
/// a new epoch and readers start over from the view itself.
#[derive(Debug, Clone, Default)]
struct Changes {
    epoch: u64,
    log: Vec<GroupKey>,
}

fn new_epoch() -> u64 {
    static EPOCHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    EPOCHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A file group's (partition, file id).
pub type GroupKey = (PartitionPath, FileId);

fn key_of(partition: &str, file_id: &FileId) -> GroupKey {
    (PartitionPath::from_storage(partition), file_id.clone())
}

fn new_group(groups: &mut BTreeMap<GroupKey, FileGroup>, key: GroupKey) -> &mut FileGroup {
    groups.entry(key.clone()).or_insert_with(|| FileGroup {
        partition: key.0,
        file_id: key.1,
        base_files: Vec::new(),
        log_files: Vec::new(),
        cdc_files: Vec::new(),
        pending_compaction: None,
    })
}

impl FileSystemView {
    /// Lists the table and keeps the base files of completed writes.
    pub async fn load(storage: &Storage, timeline: &Timeline) -> Result<Self> {
        // File groups pinned by a pending compaction, and its instant: logs written meanwhile
        // are named with it and count although it has not completed.
        let mut pending: HashMap<GroupKey, InstantTime> = HashMap::new();
        for compaction in timeline.pending_compactions() {
            let plan = CompactionPlan::load(storage, &compaction.time).await?;
            for op in plan.operations {
                pending.insert(op.group_key(), compaction.time.clone());
            }
        }
        let mut entries: Vec<(String, String, u64)> = Vec::new();
        for entry in storage.list("").await? {
            if entry.path.starts_with(TIMELINE_DIR) {
                continue;
            }
            let (partition, name) = entry
                .path
                .rsplit_once('/')
                .unwrap_or(("", entry.path.as_str()));
            entries.push((partition.to_string(), name.to_string(), entry.size));
        }
        let mut groups: BTreeMap<GroupKey, FileGroup> = BTreeMap::new();
        let mut cdc_files = Vec::new();
        for (partition, name, size) in entries {
            let key_of = |file_id: &FileId| key_of(&partition, file_id);
            if let Some(mut base_file) = BaseFile::parse(&name) {
                if !timeline.is_committed(&base_file.instant) {
                    continue;
                }
                base_file.size = size;
                new_group(&mut groups, key_of(&base_file.file_id))
                    .base_files
                    .push(base_file);
            } else if let Some(mut log_file) = LogFile::parse(&name) {
                log_file.size = size;
                // Blocks inside are filtered by their own instants when read.
                let pinned =
                    pending.get(&key_of(&log_file.file_id)) == Some(&log_file.base_instant);
                if !(timeline.is_committed(&log_file.base_instant) || pinned) {
                    continue;
                }
                if log_file.cdc {
                    cdc_files.push((key_of(&log_file.file_id), log_file));
                    continue;
                }
                new_group(&mut groups, key_of(&log_file.file_id))
                    .log_files
                    .push(log_file);
            }
        }
        // A `.cdc` file belongs to the file group of its base file; alone it makes none.
        for (key, cdc) in cdc_files {
            if let Some(group) = groups.get_mut(&key) {
                group.cdc_files.push(cdc);
            }
        }
        for (key, group) in groups.iter_mut() {
            group.pending_compaction = pending.remove(key);
            group.base_files.sort_by(|a, b| a.instant.cmp(&b.instant));
            group.log_files.sort_by(|a, b| a.cmp_in_slice(b));
        }
        let mut replaced = HashMap::new();
        for instant in timeline
            .completed_writes()
            .filter(|i| i.action == Action::ReplaceCommit)
        {
            let metadata = timeline.commit_metadata(storage, instant).await?;
            for (partition, file_ids) in metadata.partition_to_replace_file_ids {
                for file_id in file_ids {
                    replaced.insert(
                        (
                            PartitionPath::from_storage(partition.as_str()),
                            FileId::from_storage(file_id),
                        ),
                        instant.time.clone(),
                    );
                }
            }
        }
        Ok(FileSystemView {
            groups,
            replaced,
            changes: Changes {
                epoch: new_epoch(),
                log: Vec::new(),
            },
        })
    }

    /// The file groups changed since position `since` of the change log of `epoch` (added,
    /// written, cleaned, pinned, replaced), and the position to read on from; `None` when that
    /// log is gone (another epoch): then every file group is to be looked at again.
    pub fn changes_since(&self, epoch: u64, since: usize) -> Option<(&[GroupKey], usize)> {
        (epoch == self.changes.epoch && since <= self.changes.log.len())
            .then(|| (&self.changes.log[since..], self.changes.log.len()))
    }

    /// The epoch of the change log (see [`FileSystemView::changes_since`]).
    pub fn epoch(&self) -> u64 {
        self.changes.epoch
    }

    fn changed(&mut self, key: GroupKey) {
        if self.changes.log.len() > self.groups.len() + 1024 {
            self.changes = Changes {
                epoch: new_epoch(),
                log: Vec::new(),
            };
        }
        self.changes.log.push(key);
    }

    /// Whether the file group is live: stored and not replaced.
    pub fn live_file_group(&self, key: &GroupKey) -> Option<&FileGroup> {
        if self.replaced.contains_key(key) {
            return None;
        }
        self.groups.get(key)
    }

    /// Adds a data file a completed write created (a base file or a log file; others are
    /// ignored).
    pub(crate) fn add_file(&mut self, partition: &str, name: &str, size: u64) {
        let key_of = |file_id: &FileId| key_of(partition, file_id);
        if let Some(mut base_file) = BaseFile::parse(name) {
            base_file.size = size;
            let key = key_of(&base_file.file_id);
            let group = new_group(&mut self.groups, key.clone());
            group.base_files.retain(|b| b.file_name() != name);
            group.base_files.push(base_file);
            group.base_files.sort_by(|a, b| a.instant.cmp(&b.instant));
            self.changed(key);
        } else if let Some(mut log_file) = LogFile::parse(name) {
            log_file.size = size;
            let key = key_of(&log_file.file_id);
            if log_file.cdc {
                if let Some(group) = self.groups.get_mut(&key) {
                    group.cdc_files.retain(|l| l.file_name() != name);
                    group.cdc_files.push(log_file);
                }
                return;
            }
            let group = new_group(&mut self.groups, key.clone());
            group.log_files.retain(|l| l.file_name() != name);
            group.log_files.push(log_file);
            group.log_files.sort_by(|a, b| a.cmp_in_slice(b));
            self.changed(key);
        }
    }

    /// Removes a data file (deleted by a clean); a file group left without files goes too.
    pub(crate) fn remove_file(&mut self, partition: &str, name: &str) {
        let file_id = match (BaseFile::parse(name), LogFile::parse(name)) {
            (Some(base), _) => base.file_id,
            (None, Some(log)) => log.file_id,
            (None, None) => return,
        };
        let key = key_of(partition, &file_id);
        if let Some(group) = self.groups.get_mut(&key) {
            group.base_files.retain(|b| b.file_name() != name);
            group.log_files.retain(|l| l.file_name() != name);
            group.cdc_files.retain(|l| l.file_name() != name);
            if group.base_files.is_empty() && group.log_files.is_empty() {
                self.groups.remove(&key);
            }
            self.changed(key);
        }
    }

    /// Marks file groups a newly scheduled compaction pins.
    pub(crate) fn pin(&mut self, plan: &CompactionPlan, compaction: &InstantTime) {
        for op in &plan.operations {
            if let Some(group) = self.groups.get_mut(&op.group_key()) {
                group.pending_compaction = Some(compaction.clone());
                self.changed(op.group_key());
            }
        }
    }

    /// The compaction at `compaction` completed (or was rolled back): its file groups are free.
    pub(crate) fn unpin(&mut self, compaction: &InstantTime) {
        let mut freed = Vec::new();
        for (key, group) in self.groups.iter_mut() {
            if group.pending_compaction.as_ref() == Some(compaction) {
                group.pending_compaction = None;
                freed.push(key.clone());
            }
        }
        for key in freed {
            self.changed(key);
        }
    }

    /// Records file groups a completed replace commit replaced.
    pub(crate) fn replace(&mut self, partition: &str, file_id: &str, at: &InstantTime) {
        let key = (
            PartitionPath::from_storage(partition),
            FileId::from_storage(file_id),
        );
        self.replaced.insert(key.clone(), at.clone());
        self.changed(key);
    }

    /// The completed replace commit that replaced the file group, if one did.
    pub fn replaced_at(&self, partition: &str, file_id: &str) -> Option<&InstantTime> {
        self.replaced.get(&(
            PartitionPath::from_storage(partition),
            FileId::from_storage(file_id),
        ))
    }

    /// Every file group with at least one visible base file.
    pub fn file_groups(&self) -> impl Iterator<Item = &FileGroup> {
        self.groups.values()
    }

    /// The live file groups of one partition (without looking at any other).
    pub fn live_file_groups_in(&self, partition: &str) -> impl Iterator<Item = &FileGroup> {
        let start = (PartitionPath::from_storage(partition), FileId::default());
        self.groups
            .range(start..)
            .take_while(move |((p, _), _)| p.as_str() == partition)
            .filter(|(key, _)| !self.replaced.contains_key(*key))
            .map(|(_, group)| group)
    }

    /// The file groups no completed replace commit replaced: where writes go.
    pub fn live_file_groups(&self) -> impl Iterator<Item = &FileGroup> {
        self.groups
            .iter()
            .filter(|(key, _)| !self.replaced.contains_key(*key))
            .map(|(_, group)| group)
    }

    pub fn file_group(&self, partition: &str, file_id: &str) -> Option<&FileGroup> {
        self.groups.get(&(
            PartitionPath::from_storage(partition),
            FileId::from_storage(file_id),
        ))
    }

    /// The latest slice of every live file group as of an instant (the latest state when `None`).
    pub fn latest_slices(&self, as_of: Option<&InstantTime>) -> Vec<FileSlice<'_>> {
        self.groups
            .iter()
            .filter(|(key, _)| match self.replaced.get(*key) {
                Some(replaced_at) => as_of.is_some_and(|t| t < replaced_at),
                None => true,
            })
            .filter_map(|(_, group)| group.latest_slice(as_of))
            .collect()
    }
}
