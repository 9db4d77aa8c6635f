//! Log files: the files of a merge-on-read file slice that follow its base file, named
//! `.<fileId>_<baseInstant>.log.<version>_<writeToken>` after that base file's instant. Each is a
//! concatenation of log blocks (data, deletes, rollback commands) that readers merge onto the base
//! file in file and block order.
//!
//! Everything here is pure and synchronous: [`read_log_blocks`] parses a whole file's bytes and
//! [`encode_log_block`] produces one block's bytes; storage and the scan over a slice live
//! elsewhere.

mod block;
mod data;
mod delete;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use block::{BlockContent, BlockMetadata, BlockType, HeaderKey, LogBlock, MAGIC};
pub use delete::{DECIMAL_SCALE, DeleteRecord, OrderingValue};
pub use reader::read_log_blocks;
pub use writer::encode_log_block;

use std::cmp::Ordering;

use super::WriteToken;
use crate::ids::FileId;
use crate::timeline::InstantTime;

/// Suffix of the log files that hold change-data-capture blocks.
const CDC_SUFFIX: &str = ".cdc";

/// A log file, identified by its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogFile {
    pub file_id: FileId,
    /// Instant of the base file this log file follows (table version 6).
    pub base_instant: InstantTime,
    /// 1 for the first log file of a slice, then one more for each new file.
    pub version: u32,
    pub write_token: String,
    /// A change-data-capture log (`.cdc` suffix).
    pub cdc: bool,
    /// Size in bytes when found by a listing (0 when only named).
    pub size: u64,
}

impl LogFile {
    /// The version of the first log file of a slice (Java `HoodieLogFile.LOGFILE_BASE_VERSION`).
    pub const FIRST_VERSION: u32 = 1;

    pub fn new(
        file_id: &FileId,
        base_instant: &InstantTime,
        version: u32,
        write_token: &WriteToken,
    ) -> Self {
        LogFile {
            file_id: file_id.clone(),
            base_instant: base_instant.clone(),
            version,
            write_token: write_token.to_string(),
            cdc: false,
            size: 0,
        }
    }

    pub fn file_name(&self) -> String {
        format!(
            ".{}_{}.log.{}_{}{}",
            self.file_id,
            self.base_instant,
            self.version,
            self.write_token,
            if self.cdc { CDC_SUFFIX } else { "" }
        )
    }

    /// Parses a log file name; `None` for anything else. Stricter than Java's pattern
    /// (`^\.(.+)_(.*)\.(log|archive)\.(\d+)(_((\d+)-(\d+)-(\d+))(.cdc)?)?`): the write token is
    /// required and the file id may not contain `_`, because Java and hudi-rs split such a name
    /// at different underscores.
    pub fn parse(name: &str) -> Option<Self> {
        let (stem, tail) = name.strip_prefix('.')?.split_once(".log.")?;
        let (file_id, base_instant) = stem.rsplit_once('_')?;
        let file_id: FileId = file_id.parse().ok()?;
        let base_instant = base_instant.parse().ok()?;
        let (tail, cdc) = match tail.strip_suffix(CDC_SUFFIX) {
            Some(tail) => (tail, true),
            None => (tail, false),
        };
        let (version, write_token) = tail.split_once('_')?;
        if !is_digits(version) || !is_write_token(write_token) {
            return None;
        }
        Some(LogFile {
            file_id,
            base_instant,
            version: version.parse().ok()?,
            write_token: write_token.to_string(),
            cdc,
            size: 0,
        })
    }

    /// The order in which a reader applies the log files of one file group: by base instant, then
    /// version, then write token (compared as text), then plain before `.cdc` — Java's
    /// `HoodieLogFile.LogFileComparator`.
    pub fn cmp_in_slice(&self, other: &Self) -> Ordering {
        self.base_instant
            .cmp(&other.base_instant)
            .then(self.version.cmp(&other.version))
            .then_with(|| self.write_token.cmp(&other.write_token))
            .then(self.cdc.cmp(&other.cdc))
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `<digits>-<digits>-<digits>`, as `FSUtils.makeWriteToken` writes it.
fn is_write_token(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3 && parts.iter().all(|p| is_digits(p))
}
