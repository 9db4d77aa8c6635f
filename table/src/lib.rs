//! The Apache Hudi table format (table version 6): storage, `hoodie.properties`, the timeline and
//! its commit protocol, file groups and base files, copy-on-write writes and snapshot, time-travel
//! and incremental reads. It knows nothing of change-capture sources or of the service.

pub mod bloom;
pub mod cdc;
pub mod commit;
pub mod error;
pub mod failpoint;
pub mod file_group;
pub mod ids;
pub mod index;
pub mod key;
pub mod merge;
pub mod parallel;
pub mod properties;
pub mod read;
pub mod requests;
pub mod schema;
pub mod snapshot;
pub mod storage;
pub mod table;
pub mod timeline;
pub mod write;

pub use error::{Error, Result};
pub use ids::{FileId, PartitionPath, RecordKey};
pub use properties::{TableProperties, TableType};
pub use snapshot::Snapshot;
pub use table::{Table, TableConfig};
pub use timeline::{Action, Instant, InstantTime, State, Timeline};
