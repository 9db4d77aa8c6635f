//! The file-system view: which base files of a table are visible, grouped into file groups. A file
//! is visible when the write named in its file name completed (or is older than the active
//! timeline, i.e. archived); file groups replaced by a completed replace commit drop out from that
//! commit on.

use std::collections::{BTreeMap, HashMap};

use super::{BaseFile, FileGroup, FileSlice};
use crate::error::Result;
use crate::storage::Storage;
use crate::timeline::{Action, InstantTime, TIMELINE_DIR, Timeline};

/// The visible file groups of a table, keyed by (partition, file id).
#[derive(Debug, Clone, Default)]
pub struct FileSystemView {
    groups: BTreeMap<(String, String), FileGroup>,
    /// File groups replaced by a completed replace commit, and the replace commit's time.
    replaced: HashMap<(String, String), InstantTime>,
}

impl FileSystemView {
    /// Lists the table and keeps the base files of completed writes.
    pub async fn load(storage: &Storage, timeline: &Timeline) -> Result<Self> {
        let earliest = timeline.instants().first().map(|i| i.time.clone());
        let mut groups: BTreeMap<(String, String), FileGroup> = BTreeMap::new();
        for entry in storage.list("").await? {
            if entry.path.starts_with(TIMELINE_DIR) {
                continue;
            }
            let (partition, name) = match entry.path.rsplit_once('/') {
                Some((partition, name)) => (partition, name),
                None => ("", entry.path.as_str()),
            };
            let Some(mut base_file) = BaseFile::parse(name) else {
                continue;
            };
            let archived = earliest.as_ref().is_some_and(|t| &base_file.instant < t)
                && timeline.get(&base_file.instant).is_none();
            if !(timeline.is_completed_write(&base_file.instant) || archived) {
                continue;
            }
            base_file.size = entry.size;
            let key = (partition.to_string(), base_file.file_id.clone());
            groups
                .entry(key)
                .or_insert_with(|| FileGroup {
                    partition: partition.to_string(),
                    file_id: base_file.file_id.clone(),
                    base_files: Vec::new(),
                })
                .base_files
                .push(base_file);
        }
        for group in groups.values_mut() {
            group.base_files.sort_by(|a, b| a.instant.cmp(&b.instant));
        }
        let mut replaced = HashMap::new();
        for instant in timeline
            .completed_writes()
            .filter(|i| i.action == Action::ReplaceCommit)
        {
            let metadata = timeline.commit_metadata(storage, instant).await?;
            for (partition, file_ids) in metadata.partition_to_replace_file_ids {
                for file_id in file_ids {
                    replaced.insert((partition.clone(), file_id), instant.time.clone());
                }
            }
        }
        Ok(FileSystemView { groups, replaced })
    }

    /// Every file group with at least one visible base file.
    pub fn file_groups(&self) -> impl Iterator<Item = &FileGroup> {
        self.groups.values()
    }

    pub fn file_group(&self, partition: &str, file_id: &str) -> Option<&FileGroup> {
        self.groups
            .get(&(partition.to_string(), file_id.to_string()))
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
