//! One timed step of the benchmark as the process that ran it reports it (a JSON line), and
//! that process's resident memory.

use anyhow::Context;
use serde_json::{Value, json};

/// A timed step: `rows` processed in `secs`, the files and bytes it wrote, the process's resident
/// memory when the clock started and its peak by the end of the step.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub rows: u64,
    pub secs: f64,
    pub files: u64,
    pub bytes: u64,
    pub base_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub note: String,
}

impl Step {
    pub fn rows_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.rows as f64 / self.secs
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> String {
        json!({
            "rows": self.rows,
            "secs": self.secs,
            "files": self.files,
            "bytes": self.bytes,
            "base_rss_kib": self.base_rss_kib,
            "peak_rss_kib": self.peak_rss_kib,
            "note": self.note,
        })
        .to_string()
    }

    /// Parses the last JSON line of a child's output (bench_write's or bench_delta.py's).
    pub fn from_output(output: &str) -> anyhow::Result<Step> {
        let line = output
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("no JSON line in {output:?}"))?;
        let value: Value = serde_json::from_str(line)?;
        let u = |key: &str| {
            value[key]
                .as_u64()
                .with_context(|| format!("{key} missing in {line}"))
        };
        let note = match value["note"].as_str() {
            Some(note) => note.to_string(),
            // bench_delta.py's merge reports the MERGE metrics.
            None if value.get("updated").is_some() => format!(
                "{} updates, {} inserts, {} deletes",
                value["updated"], value["inserted"], value["deleted"]
            ),
            None => String::new(),
        };
        Ok(Step {
            rows: u("rows")?,
            secs: value["secs"]
                .as_f64()
                .with_context(|| format!("secs missing in {line}"))?,
            files: u("files")?,
            bytes: u("bytes")?,
            base_rss_kib: u("base_rss_kib")?,
            peak_rss_kib: u("peak_rss_kib")?,
            note,
        })
    }
}

pub use inlet_tests::harness::process::Rss;
