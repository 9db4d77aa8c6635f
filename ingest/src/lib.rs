//! Change capture for inlet: the sources of changes, the change model, and the
//! pipeline that turns changes into table commits.
//!
//! - [`change`]: the change model ([`change::Event`]) and the [`change::Source`] trait.
//! - [`postgres`]: logical replication from PostgreSQL (snapshot + pgoutput stream).
//! - [`mysql`]: MySQL/MariaDB binlog capture (so far: connection, prerequisites, discovery).
//! - [`pipeline`]: batching per table, commits with checkpoints, acknowledgements.
//! - [`datagen`]: the built-in change generator (demos, load tests).
//! - [`debezium`]: Debezium JSON change events into Arrow record batches.
//! - [`service`]: a pipeline's configuration wired into a running pipeline; [`status`] and
//!   [`metrics`]: what it reports.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod change;
pub mod datagen;
pub mod debezium;
pub mod error;
pub mod metrics;
pub mod mysql;
pub mod pipeline;
pub mod postgres;
pub mod service;
pub mod status;

pub use change::{Checkpoint, Event, Source, TableId};
pub use debezium::{CDC_COMMIT_TS, CDC_OP, CDC_POSITION, ChangeBatch, decode};
pub use error::{Error, Result};
pub use pipeline::{Pipeline, PipelineOptions, RunSummary};
