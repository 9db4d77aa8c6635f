//! Base files: Parquet files named `<fileId>_<writeToken>_<instant>.parquet`, where the instant
//! is the requested time of the write that produced them.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::timeline::InstantTime;

/// `<task partition>-<stage>-<attempt>`, digits only, as Hudi's `FSUtils.makeWriteToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteToken {
    pub partition: u32,
    pub stage: u32,
    pub attempt: u64,
}

impl fmt::Display for WriteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.partition, self.stage, self.attempt)
    }
}

impl FromStr for WriteToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::CorruptFile {
            path: s.to_string(),
            reason: "invalid write token".to_string(),
        };
        let mut parts = s.split('-');
        let mut next = || {
            parts
                .next()
                .and_then(|p| p.parse::<u64>().ok())
                .ok_or_else(invalid)
        };
        let (partition, stage, attempt) = (next()?, next()?, next()?);
        Ok(WriteToken {
            partition: u32::try_from(partition).map_err(|_| invalid())?,
            stage: u32::try_from(stage).map_err(|_| invalid())?,
            attempt,
        })
    }
}

/// A base file, identified by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFile {
    pub file_id: FileId,
    pub write_token: String,
    pub instant: InstantTime,
    pub extension: String,
    /// Size in bytes, when known from a listing.
    pub size: u64,
}

impl BaseFile {
    pub fn new(file_id: &FileId, write_token: &WriteToken, instant: &InstantTime) -> Self {
        BaseFile {
            file_id: file_id.clone(),
            write_token: write_token.to_string(),
            instant: instant.clone(),
            extension: "parquet".to_string(),
            size: 0,
        }
    }

    pub fn file_name(&self) -> String {
        format!(
            "{}_{}_{}.{}",
            self.file_id, self.write_token, self.instant, self.extension
        )
    }

    /// Parses a base file name; `None` for anything else (log files, metafiles, temp files).
    pub fn parse(name: &str) -> Option<Self> {
        if name.starts_with('.') {
            return None;
        }
        let (stem, extension) = name.rsplit_once('.')?;
        if extension != "parquet" {
            return None;
        }
        let mut parts = stem.rsplitn(3, '_');
        let instant = parts.next()?.parse().ok()?;
        let write_token = parts.next()?.to_string();
        let file_id: FileId = parts.next()?.parse().ok()?;
        if write_token.is_empty() {
            return None;
        }
        Some(BaseFile {
            file_id,
            write_token,
            instant,
            extension: extension.to_string(),
            size: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = "a079bdb3-731c-4894-b855-abfcd6921007-0_0-203-274_20240418173551906.parquet";
        let file = BaseFile::parse(name).expect("a base file name");
        assert_eq!(file.file_id, "a079bdb3-731c-4894-b855-abfcd6921007-0");
        assert_eq!(file.write_token, "0-203-274");
        assert_eq!(file.instant.as_str(), "20240418173551906");
        assert_eq!(file.file_name(), name);
        let token: WriteToken = "0-203-274".parse().expect("valid token");
        assert_eq!(token.to_string(), "0-203-274");
        for other in [
            ".hoodie_partition_metadata",
            ".f1_20240418173551906.log.1_0-1-1",
            "x.parquet",
            "a_b_c.parquet.tmp",
        ] {
            assert!(BaseFile::parse(other).is_none(), "{other}");
        }
    }
}
