//! The PostgreSQL source: logical replication through the `pgoutput` plugin.
//!
//! [`PostgresSource`] checks the server, creates the publication and the slot, copies the
//! tables inside the slot's exported snapshot (COPY's [`binary`] format) and then streams pgoutput messages, decoded by
//! [`pgoutput`] and converted by [`types`] straight into Arrow builders. [`Lsn`] is the WAL
//! position it acknowledges.

pub mod binary;
pub mod catalog;
pub mod connect;
pub mod lsn;
pub mod pgoutput;
pub mod rows;
pub mod snapshot;
pub mod source;
pub mod types;

pub use connect::{ConnectOptions, TlsMode};
pub use lsn::Lsn;
pub use source::{ConfiguredKey, PostgresOptions, PostgresSource, SlotSafety};
