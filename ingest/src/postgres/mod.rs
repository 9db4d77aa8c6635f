//! The PostgreSQL source: logical replication through the `pgoutput` plugin.
//!
//! So far this holds the groundwork: [`Lsn`], the WAL position that a source acknowledges,
//! and [`pgoutput`], a pure decoder of the messages a logical replication slot produces.

pub mod lsn;
pub mod pgoutput;

pub use lsn::Lsn;
