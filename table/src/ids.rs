//! Identifiers of the format, as newtypes that parse from and print to their on-disk form, so
//! that a file id is never mistaken for a partition path or a record key:
//!
//! - [`FileId`]: a file group's id, the part of a data file's name before the first `_`
//!   (`00000003-e8e7-4028-a0a1-305efbdad986-0`);
//! - [`PartitionPath`]: a partition's path relative to the table (`city=Köln/day=1`; empty for a
//!   table without partitions);
//! - [`RecordKey`]: a record's key as `_hoodie_record_key` holds it (`42`, or `id:1,region:eu`
//!   for composite keys).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use crate::error::{Error, Result};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value taken from storage (a listed or recorded name), which is its
            /// on-disk form already.
            pub(crate) fn from_storage(s: impl Into<String>) -> Self {
                $name(s.into())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                $check(s).map_err(|reason| Error::InvalidIdentifier {
                    kind: stringify!($name),
                    value: s.to_string(),
                    reason,
                })?;
                Ok($name(s.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(s: String) -> Result<Self> {
                $check(&s).map_err(|reason| Error::InvalidIdentifier {
                    kind: stringify!($name),
                    value: s.clone(),
                    reason,
                })?;
                Ok($name(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

string_id!(
    /// A file group's id (see the module documentation).
    FileId,
    check_file_id
);
string_id!(
    /// A partition's path relative to the table; empty for a table without partitions.
    PartitionPath,
    check_partition_path
);
string_id!(
    /// A record's key, as `_hoodie_record_key` holds it.
    RecordKey,
    check_record_key
);

fn check_file_id(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("empty".to_string());
    }
    // Data file names split on `_` and `.`; a log file's name starts with `.`.
    match s
        .chars()
        .find(|c| matches!(c, '_' | '/' | '\\') || c.is_control())
    {
        Some(c) => Err(format!("contains {c:?}")),
        None if s.starts_with('.') => Err("starts with '.'".to_string()),
        None => Ok(()),
    }
}

fn check_partition_path(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    for segment in s.split('/') {
        match segment {
            "" => {
                return Err("has an empty segment (a leading, trailing or double '/')".to_string());
            }
            "." | ".." => return Err(format!("has the segment {segment:?}")),
            _ if segment.chars().any(char::is_control) => {
                return Err("contains a control character".to_string());
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_record_key(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        Err("empty".to_string())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_round_trip_through_their_on_disk_form() -> Result<()> {
        for s in [
            "00000003-e8e7-4028-a0a1-305efbdad986-0",
            "a079bdb3-731c-4894-b855-abfcd6921007-0",
        ] {
            let id: FileId = s.parse()?;
            assert_eq!(id.to_string(), s);
            assert_eq!(id.to_string().parse::<FileId>()?, id);
        }
        for s in [
            "",
            "city=Köln",
            "2024/01/02",
            "a b/%2F",
            "region=__HIVE_DEFAULT_PARTITION__",
        ] {
            let path: PartitionPath = s.parse()?;
            assert_eq!(path.to_string(), s);
            assert_eq!(path.as_str(), s);
        }
        for s in ["42", "id:1,region:eu", "Köln", " spaced "] {
            let key: RecordKey = s.parse()?;
            assert_eq!(key.to_string().parse::<RecordKey>()?, key);
        }
        Ok(())
    }

    #[test]
    fn malformed_identifiers_are_refused_with_the_reason() {
        for bad in ["", "a_b", ".hidden", "a/b", "x\n"] {
            let error = bad.parse::<FileId>().expect_err(bad).to_string();
            assert!(error.contains("FileId"), "{error}");
        }
        for bad in ["/a", "a/", "a//b", "a/../b", ".", "a\u{0}"] {
            assert!(bad.parse::<PartitionPath>().is_err(), "{bad:?}");
        }
        assert!("".parse::<RecordKey>().is_err());
    }
}
