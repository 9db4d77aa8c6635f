//! The commit protocol: how an action becomes visible atomically, or not at all. Every action
//! goes through one [`Transaction`] (see [`transaction`] for the state diagram, requirements and
//! hooks); every state is persisted by a process holding the table's writer or services lease
//! ([`lease`]). A writer that finds pending writes on open (a dead writer's) rolls them back
//! before it writes ([`rollback`]).

pub mod avro_value;
pub mod compaction_plan;
pub mod lease;
pub mod metadata;
pub mod replace;
pub mod restore;
pub mod rollback;
pub mod savepoint;
pub mod transaction;

pub(crate) use transaction::instant_path;
pub use transaction::{
    CommitHook, Completed, Completion, Hooks, Requirement, Transaction, delete_instant_files,
    read_instant,
};
