//! Change capture for inlet: the sources of changes, the change model, and the
//! pipeline that turns changes into table commits.
//! Today it holds only the Debezium event decoder, which turns Debezium JSON
//! change events into Arrow record batches.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod debezium;
pub mod error;

pub use debezium::{CDC_COMMIT_TS, CDC_OP, CDC_POSITION, ChangeBatch, decode};
pub use error::{Error, Result};
