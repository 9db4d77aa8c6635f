//! placeholder

pub mod harness;
