//! Integration tests of the Debezium decoder.
