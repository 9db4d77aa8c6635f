//! The compaction plan: which file slices a compaction folds into new base files. Stored as an
//! Avro `HoodieCompactionPlan` (version 2: file names, not paths) in `T.compaction.requested`;
//! the plan pins those slices, so writes that arrive while it is pending go to the slice the
//! compaction will create (see [`crate::file_group::FileSystemView`]).

use std::collections::BTreeMap;

use apache_avro::types::Value;
use bytes::Bytes;

use super::avro_value::{
    container, field, field_str, field_strings, first, map, null, plain, read_container, record,
    some, string, strings,
};
use super::transaction::instant_path;
use crate::error::{Error, Result};
use crate::ids::{FileId, PartitionPath};
use crate::storage::Storage;
use crate::timeline::{Action, Instant, InstantTime, State};

const SCHEMA: &str = include_str!("avro/HoodieCompactionPlan.avsc");
/// `CompactionUtils.LATEST_COMPACTION_METADATA_VERSION` of Hudi 0.14/0.15.
const PLAN_VERSION: i32 = 2;

/// One file slice to compact.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionOperation {
    pub partition: PartitionPath,
    pub file_id: FileId,
    /// The slice's base instant (its base file's instant, or its log files' base instant).
    pub base_instant: InstantTime,
    /// The base file's name, if the slice has one.
    pub base_file: Option<String>,
    /// The log files' names, in slice order.
    pub log_files: Vec<String>,
    /// Hudi's plan metrics (`TOTAL_LOG_FILES`, `TOTAL_LOG_FILES_SIZE`, `TOTAL_IO_MB`, …).
    pub metrics: BTreeMap<String, f64>,
}

/// A compaction's plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactionPlan {
    pub operations: Vec<CompactionOperation>,
    /// The strategy that chose the slices and its parameters, for the record.
    pub strategy: BTreeMap<String, String>,
}

impl CompactionOperation {
    /// The (partition, file id) of the file group it compacts.
    pub fn group_key(&self) -> (PartitionPath, FileId) {
        (self.partition.clone(), self.file_id.clone())
    }
}

impl CompactionPlan {
    pub fn encode(&self) -> Result<Bytes> {
        let operations = self
            .operations
            .iter()
            .map(|op| {
                record(vec![
                    ("baseInstantTime", some(string(op.base_instant.to_string()))),
                    ("deltaFilePaths", some(strings(op.log_files.clone()))),
                    (
                        "dataFilePath",
                        op.base_file.clone().map_or_else(null, |f| some(string(f))),
                    ),
                    ("fileId", some(string(op.file_id.to_string()))),
                    ("partitionPath", some(string(op.partition.to_string()))),
                    (
                        "metrics",
                        some(map(op
                            .metrics
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::Double(*v))))),
                    ),
                    ("bootstrapFilePath", null()),
                ])
            })
            .collect();
        let strategy = record(vec![
            ("compactorClassName", null()),
            (
                "strategyParams",
                some(map(self
                    .strategy
                    .iter()
                    .map(|(k, v)| (k.clone(), string(v.clone()))))),
            ),
            ("version", first(Value::Int(1))),
        ]);
        let plan = record(vec![
            ("operations", some(Value::Array(operations))),
            ("extraMetadata", null()),
            ("version", first(Value::Int(PLAN_VERSION))),
            ("strategy", some(strategy)),
            ("preserveHoodieMetadata", first(Value::Boolean(true))),
        ]);
        container(SCHEMA, plan)
    }

    pub fn decode(bytes: &[u8]) -> Result<CompactionPlan> {
        let plan = read_container(bytes, SCHEMA)?;
        let invalid = |reason: &str| Error::Avro(format!("compaction plan: {reason}"));
        let mut operations = Vec::new();
        if let Some(Value::Array(items)) = field(&plan, "operations") {
            for op in items {
                let name_of = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
                let metrics = match field(op, "metrics") {
                    Some(Value::Map(m)) => m
                        .iter()
                        .filter_map(|(k, v)| match plain(v) {
                            Value::Double(d) => Some((k.clone(), *d)),
                            _ => None,
                        })
                        .collect(),
                    _ => BTreeMap::new(),
                };
                operations.push(CompactionOperation {
                    partition: field_str(op, "partitionPath").unwrap_or_default().parse()?,
                    file_id: field_str(op, "fileId")
                        .ok_or_else(|| invalid("an operation without fileId"))?
                        .parse()?,
                    base_instant: field_str(op, "baseInstantTime")
                        .ok_or_else(|| invalid("an operation without baseInstantTime"))?
                        .parse()?,
                    // Version 1 plans hold full paths; version 2 file names.
                    base_file: field_str(op, "dataFilePath")
                        .filter(|p| !p.is_empty())
                        .map(name_of),
                    log_files: field_strings(op, "deltaFilePaths")
                        .iter()
                        .map(|p| name_of(p))
                        .collect(),
                    metrics,
                });
            }
        }
        let strategy = match field(&plan, "strategy").and_then(|s| field(s, "strategyParams")) {
            Some(Value::Map(m)) => m
                .iter()
                .filter_map(|(k, v)| match plain(v) {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    _ => None,
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(CompactionPlan {
            operations,
            strategy,
        })
    }

    /// The plan of the compaction at `time`.
    pub async fn load(storage: &Storage, time: &InstantTime) -> Result<CompactionPlan> {
        let requested = Instant::new(time.clone(), Action::Compaction, State::Requested);
        let path = instant_path(&requested)?;
        let bytes = storage.get(&path).await?;
        CompactionPlan::decode(&bytes).map_err(|e| Error::Avro(format!("{path}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_round_trips() -> Result<()> {
        let plan = CompactionPlan {
            operations: vec![
                CompactionOperation {
                    partition: "city=sf".parse()?,
                    file_id: "00000001-0000-0000-0000-000000000000-0".parse()?,
                    base_instant: "20240418173213674".parse()?,
                    base_file: Some(
                        "00000001-0000-0000-0000-000000000000-0_0-0-0_20240418173213674.parquet"
                            .to_string(),
                    ),
                    log_files: vec![
                        ".00000001-0000-0000-0000-000000000000-0_20240418173213674.log.1_0-0-0"
                            .to_string(),
                    ],
                    metrics: BTreeMap::from([("TOTAL_LOG_FILES".to_string(), 1.0)]),
                },
                CompactionOperation {
                    partition: PartitionPath::default(),
                    file_id: "f2-0".parse()?,
                    base_instant: "20240418173213675".parse()?,
                    base_file: None,
                    log_files: Vec::new(),
                    metrics: BTreeMap::new(),
                },
            ],
            strategy: BTreeMap::from([("strategy".to_string(), "all".to_string())]),
        };
        let bytes = plan.encode()?;
        assert_eq!(&bytes[..4], b"Obj\x01");
        assert_eq!(CompactionPlan::decode(&bytes)?, plan);
        Ok(())
    }
}
