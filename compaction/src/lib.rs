//! Table services of inlet: compaction of merge-on-read tables ([`compact`]), cleaning of file
//! versions no retained instant needs ([`clean`]) and archival of old instants ([`archive`]).
//! Rollback lives with the commit protocol in `inlet-table` (`Writer::rollback`). The merge of a
//! slice's base and log records is the table crate's, shared with every reader.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod archive;
pub mod clean;
pub mod compact;
mod services;

pub use services::TableServices;
