//! Operator configuration for inlet: the TOML file of `inlet run` (sources, tables, sinks,
//! batching and recovery), loaded, validated and with secrets redacted. It arrives with the
//! long-running pipeline; today's commands take their settings from the command line.
