//! Integration tests of the table crate: writes and reads through the public API, on local disk
//! and in memory, asserting on the data read back and the files on storage.

mod cow_writes;
mod failures;
mod global_index;
mod lookups;
mod schema_evolution;
mod spark_fixtures;
mod util;
