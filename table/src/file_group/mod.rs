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
pub use view::FileSystemView;

use crate::timeline::InstantTime;

/// The versions of one file group, oldest first.
#[derive(Debug, Clone)]
pub struct FileGroup {
    pub partition: String,
    pub file_id: String,
    /// Base files of completed writes, ordered by instant.
    pub base_files: Vec<BaseFile>,
    /// Log files whose base instant is a completed write, in slice order.
    pub log_files: Vec<LogFile>,
}

impl FileGroup {
    /// The latest slice at or before `as_of` (the latest of all when `None`): the greatest base
    /// instant among base files and log files, with that instant's base file (if any) and logs.
    pub fn latest_slice(&self, as_of: Option<&InstantTime>) -> Option<FileSlice<'_>> {
        let visible = |t: &InstantTime| as_of.is_none_or(|a| t <= a);
        let base_instant = self
            .base_files
            .iter()
            .map(|b| &b.instant)
            .chain(self.log_files.iter().map(|l| &l.base_instant))
            .filter(|t| visible(t))
            .max()?;
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
}

/// One version of a file group: a base file and/or the log files written on top of it.
#[derive(Debug, Clone)]
pub struct FileSlice<'a> {
    pub partition: &'a str,
    pub file_id: &'a str,
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
