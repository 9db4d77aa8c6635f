//! `HoodieCommitMetadata`: what a completed commit wrote, per partition and file, as the JSON
//! document Hudi 0.x keeps in `T.commit` / `T.deltacommit` / `T.replacecommit` (table version 6).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `extraMetadata` key of the table's Avro schema (without meta fields) as of the commit.
pub const SCHEMA_KEY: &str = "schema";
/// `extraMetadata` key of the table's Arrow schema (JSON) as of the commit: the exact column types,
/// which the Avro `schema` cannot always carry (hudi-rs needs timestamps without a zone spelled
/// `timestamp-micros`). Hudi readers ignore it.
pub const ARROW_SCHEMA_KEY: &str = "inlet.arrow.schema";
/// `extraMetadata` key of the key range of every file the commit wrote (JSON: path → `[min, max]`
/// in Java's string order, or `null` for a file holding no key): a writer that has not read a
/// file's footer learns from it whether the file can hold a key. Hudi readers ignore it.
pub const KEY_RANGES_KEY: &str = "inlet.key.ranges";
/// The least and greatest record key of a file, in Java's string order.
pub type KeyRange = (String, String);
/// Files' key ranges, by table-relative path (`None`: the file holds no key).
pub type KeyRanges = BTreeMap<String, Option<KeyRange>>;
/// `extraMetadata` key of a source checkpoint committed atomically with the data.
pub const CHECKPOINT_KEY: &str = "inlet.checkpoint";

/// The metadata of one completed write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CommitMetadata {
    pub partition_to_write_stats: BTreeMap<String, Vec<WriteStat>>,
    /// Replace commits only: file groups this commit replaced, per partition.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_to_replace_file_ids: BTreeMap<String, Vec<String>>,
    pub compacted: bool,
    pub extra_metadata: BTreeMap<String, String>,
    pub operation_type: Option<String>,
}

/// What one write did to one file group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WriteStat {
    pub file_id: String,
    /// The written file, relative to the table's base path.
    pub path: Option<String>,
    pub cdc_stats: Option<BTreeMap<String, i64>>,
    /// Instant of the file slice this write replaced; the string `"null"` for a new file group.
    pub prev_commit: Option<String>,
    pub num_writes: i64,
    pub num_deletes: i64,
    pub num_update_writes: i64,
    pub num_inserts: i64,
    pub total_write_bytes: i64,
    pub total_write_errors: i64,
    pub temp_path: Option<String>,
    pub partition_path: Option<String>,
    pub total_log_records: i64,
    pub total_log_files_compacted: i64,
    pub total_log_size_compacted: i64,
    pub total_updated_records_compacted: i64,
    pub total_log_blocks: i64,
    pub total_corrupt_log_block: i64,
    pub total_rollback_blocks: i64,
    pub file_size_in_bytes: i64,
    pub min_event_time: Option<i64>,
    pub max_event_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_files: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_offset: Option<i64>,
    pub runtime_stats: Option<RuntimeStats>,
}

/// Timings Hudi records per write stat (milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeStats {
    pub total_scan_time: i64,
    pub total_upsert_time: i64,
    pub total_create_time: i64,
}

impl WriteStat {
    /// The stat of a new file (a base file, or a log file version) of file group `file_id` in
    /// `partition`, replacing the slice based at `prev_commit` (`None`: a new file group). The
    /// caller adds what the write did (record counts, log or compaction details).
    pub fn new_file(
        partition: &str,
        file_id: &str,
        path: String,
        prev_commit: Option<&crate::InstantTime>,
        size: u64,
    ) -> WriteStat {
        WriteStat {
            file_id: file_id.to_string(),
            path: Some(path),
            prev_commit: Some(prev_commit.map_or_else(|| "null".to_string(), |t| t.to_string())),
            total_write_bytes: size as i64,
            file_size_in_bytes: size as i64,
            partition_path: Some(partition.to_string()),
            ..Default::default()
        }
    }
}

impl CommitMetadata {
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err("empty commit metadata".to_string());
        }
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// Files a write stat under its partition.
    pub fn add_write_stat(&mut self, stat: WriteStat) {
        let partition = stat.partition_path.clone().unwrap_or_default();
        self.partition_to_write_stats
            .entry(partition)
            .or_default()
            .push(stat);
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Every write stat, across partitions.
    pub fn write_stats(&self) -> impl Iterator<Item = &WriteStat> {
        self.partition_to_write_stats.values().flatten()
    }

    /// Totals over all write stats.
    pub fn totals(&self) -> CommitTotals {
        let mut totals = CommitTotals::default();
        for stat in self.write_stats() {
            totals.inserts += stat.num_inserts;
            totals.updates += stat.num_update_writes;
            totals.deletes += stat.num_deletes;
            totals.files += 1;
            totals.bytes += stat.total_write_bytes;
        }
        totals
    }

    pub fn schema(&self) -> Option<&str> {
        self.extra_metadata.get(SCHEMA_KEY).map(String::as_str)
    }

    /// The Arrow schema recorded by inlet, when present and readable.
    pub fn arrow_schema(&self) -> Option<arrow_schema::Schema> {
        serde_json::from_str(self.extra_metadata.get(ARROW_SCHEMA_KEY)?).ok()
    }

    /// The key ranges of the files the commit wrote, when inlet recorded them.
    pub fn key_ranges(&self) -> Option<KeyRanges> {
        serde_json::from_str(self.extra_metadata.get(KEY_RANGES_KEY)?).ok()
    }

    /// Records the key ranges of the files the commit wrote.
    pub fn set_key_ranges(&mut self, ranges: &KeyRanges) {
        if let Ok(json) = serde_json::to_string(ranges) {
            self.extra_metadata.insert(KEY_RANGES_KEY.to_string(), json);
        }
    }

    pub fn checkpoint(&self) -> Option<&str> {
        self.extra_metadata.get(CHECKPOINT_KEY).map(String::as_str)
    }
}

/// Counts of a commit, summed over its write stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitTotals {
    pub inserts: i64,
    pub updates: i64,
    pub deletes: i64,
    pub files: i64,
    pub bytes: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPARK_COMMIT: &str = r#"{
      "partitionToWriteStats" : { "" : [ {
          "fileId" : "a079bdb3-731c-4894-b855-abfcd6921007-0",
          "path" : "a079bdb3-731c-4894-b855-abfcd6921007-0_0-203-274_20240418173551906.parquet",
          "cdcStats" : null, "prevCommit" : "20240418173550988", "numWrites" : 4, "numDeletes" : 0,
          "numUpdateWrites" : 1, "numInserts" : 1, "totalWriteBytes" : 441520, "totalWriteErrors" : 0,
          "tempPath" : null, "partitionPath" : "", "fileSizeInBytes" : 441520,
          "runtimeStats" : { "totalScanTime" : 0, "totalUpsertTime" : 105, "totalCreateTime" : 0 } } ] },
      "compacted" : false, "extraMetadata" : { "schema" : "{}" }, "operationType" : "UPSERT" }"#;

    #[test]
    fn reads_spark_commits_and_round_trips() -> Result<(), String> {
        let metadata = CommitMetadata::from_json(SPARK_COMMIT.as_bytes())?;
        let totals = metadata.totals();
        assert_eq!(
            (totals.inserts, totals.updates, totals.files, totals.bytes),
            (1, 1, 1, 441520)
        );
        assert_eq!(metadata.schema(), Some("{}"));
        let again = CommitMetadata::from_json(&metadata.to_json())?;
        assert_eq!(again, metadata);
        let json: serde_json::Value =
            serde_json::from_slice(&metadata.to_json()).map_err(|e| e.to_string())?;
        assert_eq!(
            json["partitionToWriteStats"][""][0]["prevCommit"],
            "20240418173550988"
        );
        assert!(CommitMetadata::from_json(b"").is_err());
        Ok(())
    }
}
