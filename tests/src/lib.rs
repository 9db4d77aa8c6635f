//! Cross-crate end-to-end tests of inlet and their harness: throwaway S3 servers, fixtures,
//! independent readers (PyPI `hudi`, pyarrow, duckdb), and an in-memory model of table semantics.

pub mod canonical;
pub mod harness;
pub mod model;
