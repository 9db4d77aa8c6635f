//! Replace commits: a write that replaces whole file groups (Hudi's `insert_overwrite_table`),
//! which truncating a table is. `T.replacecommit.requested` holds an Avro
//! `HoodieRequestedReplaceMetadata` (no clustering plan: not a clustering), the inflight file the
//! JSON workload, and the completed `T.replacecommit` the JSON commit metadata with
//! `partitionToReplaceFileIds`: every file group it replaced, which readers (hudi-rs, Spark,
//! ours) leave out from then on. The replaced files stay until the cleaner removes them.

use apache_avro::types::Value;
use bytes::Bytes;

use super::avro_value::{container, first, null, record, some, string};
use crate::error::Result;

/// `HoodieRequestedReplaceMetadata` as Hudi's generated class declares it.
const REQUESTED_SCHEMA: &str = r#"{"type":"record","name":"HoodieRequestedReplaceMetadata","namespace":"org.apache.hudi.avro.model","fields":[{"name":"operationType","type":["null",{"type":"string","avro.java.string":"String"}],"default":null},{"name":"clusteringPlan","type":["null",{"type":"record","name":"HoodieClusteringPlan","fields":[{"name":"inputGroups","type":["null",{"type":"array","items":{"type":"record","name":"HoodieClusteringGroup","fields":[{"name":"slices","type":["null",{"type":"array","items":{"type":"record","name":"HoodieSliceInfo","fields":[{"name":"dataFilePath","type":["null",{"type":"string","avro.java.string":"String"}],"default":null},{"name":"deltaFilePaths","type":["null",{"type":"array","items":{"type":"string","avro.java.string":"String"}}],"default":null},{"name":"fileId","type":["null",{"type":"string","avro.java.string":"String"}]},{"name":"partitionPath","type":["null",{"type":"string","avro.java.string":"String"}],"default":null},{"name":"bootstrapFilePath","type":["null",{"type":"string","avro.java.string":"String"}],"default":null},{"name":"version","type":["int","null"],"default":1}]}}],"default":null},{"name":"metrics","type":["null",{"type":"map","values":"double","avro.java.string":"String"}],"default":null},{"name":"numOutputFileGroups","type":["int","null"],"default":1},{"name":"extraMetadata","type":["null",{"type":"map","values":{"type":"string","avro.java.string":"String"},"avro.java.string":"String"}],"default":null},{"name":"version","type":["int","null"],"default":1}]}}],"default":null},{"name":"strategy","type":["null",{"type":"record","name":"HoodieClusteringStrategy","fields":[{"name":"strategyClassName","type":["null",{"type":"string","avro.java.string":"String"}],"default":null},{"name":"strategyParams","type":["null",{"type":"map","values":{"type":"string","avro.java.string":"String"},"avro.java.string":"String"}],"default":null},{"name":"version","type":["int","null"],"default":1}]}],"default":null},{"name":"extraMetadata","type":["null",{"type":"map","values":{"type":"string","avro.java.string":"String"},"avro.java.string":"String"}],"default":null},{"name":"version","type":["int","null"],"default":1},{"name":"preserveHoodieMetadata","type":["null","boolean"],"default":null}]}],"default":null},{"name":"extraMetadata","type":["null",{"type":"map","values":{"type":"string","avro.java.string":"String"},"avro.java.string":"String"}],"default":null},{"name":"version","type":["int","null"],"default":1}]}"#;

/// Hudi's operation type of a replace of every file group of the table.
pub const INSERT_OVERWRITE_TABLE: &str = "INSERT_OVERWRITE_TABLE";

/// The requested file of a replace commit doing `operation`.
pub fn requested(operation: &str) -> Result<Bytes> {
    container(
        REQUESTED_SCHEMA,
        record(vec![
            ("operationType", some(string(operation))),
            ("clusteringPlan", null()),
            ("extraMetadata", null()),
            ("version", first(Value::Int(1))),
        ]),
    )
}
