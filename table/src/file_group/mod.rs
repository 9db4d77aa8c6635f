//! File groups: all versions of one set of records, in one partition, under one file id. A file
//! slice is one version: a base file (plus, for merge-on-read, the log files that follow it).

mod base_file;
pub mod log_file;
mod partition;
mod view;

pub use base_file::{BaseFile, WriteToken};
pub use log_file::{
    BlockContent, BlockMetadata, BlockType, DeleteRecord, HeaderKey, LogBlock, LogFile,
    OrderingValue, encode_log_block, read_log_blocks,
};
pub use partition::{PARTITION_METAFILE, partition_metafile};
pub use view::FileSystemView;

use crate::timeline::InstantTime;

/// The versions of one file group, oldest first.
#[derive(Debug, Clone)]
pub struct FileGroup {
    pub partition: String,
    pub file_id: String,
    /// Base files of completed writes, ordered by instant.
    pub base_files: Vec<BaseFile>,
}

impl FileGroup {
    /// The latest slice at or before `as_of` (the latest of all when `None`).
    pub fn latest_slice(&self, as_of: Option<&InstantTime>) -> Option<FileSlice<'_>> {
        self.base_files
            .iter()
            .rev()
            .find(|b| as_of.is_none_or(|t| &b.instant <= t))
            .map(|base_file| FileSlice {
                partition: &self.partition,
                file_id: &self.file_id,
                base_file,
            })
    }
}

/// One version of a file group.
#[derive(Debug, Clone, Copy)]
pub struct FileSlice<'a> {
    pub partition: &'a str,
    pub file_id: &'a str,
    pub base_file: &'a BaseFile,
}

/// The table-relative path of a file in a partition.
pub fn file_path(partition: &str, file_name: &str) -> String {
    if partition.is_empty() {
        file_name.to_string()
    } else {
        format!("{partition}/{file_name}")
    }
}
