//! File groups: all versions of one set of records, in one partition, under one file id. A file
//! slice is one version: a base file (plus, for merge-on-read, the log files that follow it).

mod base_file;
pub mod log_file;
mod partition;
mod reader;
mod view;

pub use base_file::{BaseFile, WriteToken};
pub use log_file::{
    BlockContent, BlockMetadata, BlockType, DeleteRecord, HeaderKey, LogBlock, LogFile,
    OrderingValue, encode_log_block, read_log_blocks,
};
pub use partition::{PARTITION_METAFILE, partition_metafile};
pub use reader::SliceRead;
pub use view::{FileSystemView, GroupKey};

use crate::ids::{FileId, PartitionPath};
use crate::timeline::InstantTime;

/// The versions of one file group, oldest first.
#[derive(Debug, Clone)]
pub struct FileGroup {
    pub partition: PartitionPath,
    pub file_id: FileId,
    /// Base files of completed writes, ordered by instant.
    pub base_files: Vec<BaseFile>,
    /// Log files whose base instant is a completed write or the pending compaction, in slice
    /// order.
    pub log_files: Vec<LogFile>,
    /// Change-data-capture logs (`.cdc`) of completed writes: never read as part of a slice,
    /// cleaned with the slice whose base instant they carry.
    pub cdc_files: Vec<LogFile>,
    /// A compaction scheduled for this file group and not completed yet: writes go to the slice
    /// it will create, and reads merge that slice's logs on top of the slice being compacted.
    pub pending_compaction: Option<InstantTime>,
}

impl FileGroup {
    /// The base instants of the group's slices, oldest first.
    pub fn slice_instants(&self) -> Vec<&InstantTime> {
        let mut instants: Vec<&InstantTime> = self
            .base_files
            .iter()
            .map(|b| &b.instant)
            .chain(self.log_files.iter().map(|l| &l.base_instant))
            .collect();
        instants.sort();
        instants.dedup();
        instants
    }

    /// The slice with exactly this base instant, as stored (no merging across slices).
    pub fn slice(&self, base_instant: &InstantTime) -> Option<FileSlice<'_>> {
        let base_instant = self
            .slice_instants()
            .into_iter()
            .find(|t| *t == base_instant)?;
        Some(FileSlice {
            partition: &self.partition,
            file_id: &self.file_id,
            base_instant,
            base_file: self.base_files.iter().find(|b| &b.instant == base_instant),
            log_files: self
                .log_files
                .iter()
                .filter(|l| &l.base_instant == base_instant)
                .collect(),
        })
    }

    /// The latest slice at or before `as_of` (the latest of all when `None`). While a compaction
    /// is pending, the logs written to the slice it will create follow the slice it compacts,
    /// whose state they continue (as Java's file-system view merges them).
    pub fn latest_slice(&self, as_of: Option<&InstantTime>) -> Option<FileSlice<'_>> {
        let visible: Vec<&InstantTime> = self
            .slice_instants()
            .into_iter()
            .filter(|t| as_of.is_none_or(|a| *t <= a))
            .collect();
        let latest = *visible.last()?;
        let mut slice = self.slice(latest)?;
        if self.pending_compaction.as_ref() == Some(latest)
            && slice.base_file.is_none()
            && let Some(previous) = visible.iter().rev().nth(1).and_then(|t| self.slice(t))
        {
            let mut log_files = previous.log_files;
            log_files.extend(slice.log_files);
            slice = FileSlice {
                log_files,
                ..previous
            };
        }
        Some(slice)
    }

    /// Where a write appends: the slice a pending compaction will create, else the latest slice.
    pub fn append_slice(&self) -> Option<FileSlice<'_>> {
        match &self.pending_compaction {
            Some(compaction) => Some(FileSlice {
                partition: &self.partition,
                file_id: &self.file_id,
                base_instant: compaction,
                base_file: None,
                log_files: self
                    .log_files
                    .iter()
                    .filter(|l| &l.base_instant == compaction)
                    .collect(),
            }),
            None => self.latest_slice(None),
        }
    }
}

/// One version of a file group: a base file and/or the log files written on top of it.
#[derive(Debug, Clone)]
pub struct FileSlice<'a> {
    pub partition: &'a PartitionPath,
    pub file_id: &'a FileId,
    pub base_instant: &'a InstantTime,
    pub base_file: Option<&'a BaseFile>,
    /// Log files of the slice, in the order their blocks apply.
    pub log_files: Vec<&'a LogFile>,
}

/// The table-relative path of a file in a partition.
pub fn file_path(partition: &str, file_name: &str) -> String {
    if partition.is_empty() {
        file_name.to_string()
    } else {
        format!("{partition}/{file_name}")
    }
}
