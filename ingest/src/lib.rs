//! Change capture for inlet: the sources of changes, the change model, and the
//! pipeline that turns changes into table commits.
//! Today it holds the Debezium event decoder (Debezium JSON change events into
//! Arrow record batches) and the PostgreSQL groundwork: LSNs and a decoder of
//! pgoutput (logical replication protocol 1) messages.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod debezium;
pub mod error;
pub mod postgres;

pub use debezium::{CDC_COMMIT_TS, CDC_OP, CDC_POSITION, ChangeBatch, decode};
pub use error::{Error, Result};
