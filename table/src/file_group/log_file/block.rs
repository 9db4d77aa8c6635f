//! Log blocks: the unit a writer appends to a log file, framed by the `#HUDI#` magic and lengths
//! that let readers detect torn writes. A block carries a header (instant, schema, command), its
//! content (records, deletes or nothing) and a footer, which Hudi leaves empty.

use std::fmt;

use arrow::array::RecordBatch;

use super::delete::DeleteRecord;
use crate::timeline::InstantTime;

/// The six bytes that open every block.
pub const MAGIC: &[u8; 6] = b"#HUDI#";

/// Value of `COMMAND_BLOCK_TYPE` for a rollback, the only command Hudi defines.
pub(super) const ROLLBACK_COMMAND: &str = "0";

/// Block types, serialised as their ordinal (Java `HoodieLogBlock.HoodieLogBlockType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockType {
    Command,
    Delete,
    /// Never written: what a reader reports for bytes that do not frame a block.
    Corrupt,
    AvroData,
    /// Metadata-table blocks only.
    HFileData,
    ParquetData,
    CdcData,
}

impl BlockType {
    const ALL: [BlockType; 7] = [
        BlockType::Command,
        BlockType::Delete,
        BlockType::Corrupt,
        BlockType::AvroData,
        BlockType::HFileData,
        BlockType::ParquetData,
        BlockType::CdcData,
    ];

    pub fn id(self) -> i32 {
        self as i32
    }

    pub fn from_id(id: i32) -> Option<Self> {
        usize::try_from(id)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }
}

impl fmt::Display for BlockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockType::Command => "COMMAND_BLOCK",
            BlockType::Delete => "DELETE_BLOCK",
            BlockType::Corrupt => "CORRUPT_BLOCK",
            BlockType::AvroData => "AVRO_DATA_BLOCK",
            BlockType::HFileData => "HFILE_DATA_BLOCK",
            BlockType::ParquetData => "PARQUET_DATA_BLOCK",
            BlockType::CdcData => "CDC_DATA_BLOCK",
        })
    }
}

/// Header (and footer) keys, serialised as their ordinal; Java only ever appends to the list
/// (`HoodieLogBlock.HeaderMetadataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeaderKey {
    /// Requested time of the write that appended the block.
    InstantTime,
    /// The instant a rollback command rolls back.
    TargetInstantTime,
    /// Avro writer schema JSON, meta fields included.
    Schema,
    /// `"0"`: rollback.
    CommandBlockType,
    CompactedBlockTimes,
    RecordPositions,
    BlockIdentifier,
    IsPartial,
    BaseFileInstantTimeOfRecordPositions,
}

impl HeaderKey {
    const ALL: [HeaderKey; 9] = [
        HeaderKey::InstantTime,
        HeaderKey::TargetInstantTime,
        HeaderKey::Schema,
        HeaderKey::CommandBlockType,
        HeaderKey::CompactedBlockTimes,
        HeaderKey::RecordPositions,
        HeaderKey::BlockIdentifier,
        HeaderKey::IsPartial,
        HeaderKey::BaseFileInstantTimeOfRecordPositions,
    ];

    pub fn id(self) -> i32 {
        self as i32
    }

    pub fn from_id(id: i32) -> Option<Self> {
        usize::try_from(id)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }
}

/// A block's header or footer. Entries keep their order because Java writes them in `HashMap`
/// order, which differs between blocks; keeping it is what makes a decoded block re-encode to the
/// same bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockMetadata(Vec<(HeaderKey, String)>);

impl BlockMetadata {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: HeaderKey) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`, in place when present, else at the end.
    pub fn insert(&mut self, key: HeaderKey, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (HeaderKey, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(HeaderKey, String)> for BlockMetadata {
    fn from_iter<I: IntoIterator<Item = (HeaderKey, String)>>(iter: I) -> Self {
        let mut metadata = BlockMetadata::new();
        for (key, value) in iter {
            metadata.insert(key, value);
        }
        metadata
    }
}

/// What a block holds.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockContent {
    /// Rollback of every earlier block written at `target_instant` (header
    /// `TARGET_INSTANT_TIME`, `COMMAND_BLOCK_TYPE` = `"0"`, empty content).
    Command {
        target_instant: InstantTime,
    },
    Delete(Vec<DeleteRecord>),
    /// Records encoded with the Avro schema of the `SCHEMA` header.
    AvroData(RecordBatch),
    /// Records stored as a complete Parquet file.
    ParquetData(RecordBatch),
    /// Change-data-capture records of a `.cdc` log (`op`, `ts_ms`, `before`, `after`), encoded
    /// like an Avro data block with the `SCHEMA` header.
    CdcData(RecordBatch),
    /// HFile blocks (metadata table only), kept as raw content: a read of a data table never
    /// needs them, and the bytes re-encode unchanged.
    Undecoded {
        block_type: BlockType,
        content: Vec<u8>,
    },
    /// Bytes at `offset` that do not frame a block (a torn write, a damaged file). Readers skip
    /// it; it is never written.
    Corrupt {
        offset: u64,
        reason: String,
    },
}

/// One block of a log file.
#[derive(Debug, Clone, PartialEq)]
pub struct LogBlock {
    pub header: BlockMetadata,
    pub content: BlockContent,
    pub footer: BlockMetadata,
}

impl LogBlock {
    /// A rollback command for the blocks written at `target` (the block is written at `instant`,
    /// the rollback's own instant).
    pub fn rollback(instant: &InstantTime, target: &InstantTime) -> Self {
        let header = BlockMetadata::from_iter([
            (HeaderKey::InstantTime, instant.to_string()),
            (HeaderKey::TargetInstantTime, target.to_string()),
            (HeaderKey::CommandBlockType, ROLLBACK_COMMAND.to_string()),
        ]);
        Self::with_header(
            header,
            BlockContent::Command {
                target_instant: target.clone(),
            },
        )
    }

    /// Deletes written at `instant`; `schema` is the table's Avro schema, which Spark records on
    /// delete blocks too although their content does not use it.
    pub fn delete(instant: &InstantTime, schema: &str, records: Vec<DeleteRecord>) -> Self {
        Self::with_header(data_header(instant, schema), BlockContent::Delete(records))
    }

    /// Records written at `instant`, Avro-encoded with `schema` (the table's Avro schema, meta
    /// fields included; columns are matched to its fields by name).
    pub fn avro_data(instant: &InstantTime, schema: &str, records: RecordBatch) -> Self {
        Self::with_header(
            data_header(instant, schema),
            BlockContent::AvroData(records),
        )
    }

    /// Records written at `instant` as a Parquet file; `schema` is recorded in the header.
    pub fn parquet_data(instant: &InstantTime, schema: &str, records: RecordBatch) -> Self {
        Self::with_header(
            data_header(instant, schema),
            BlockContent::ParquetData(records),
        )
    }

    /// Change records written at `instant`, Avro-encoded with `schema` (the CDC record schema).
    pub fn cdc_data(instant: &InstantTime, schema: &str, records: RecordBatch) -> Self {
        Self::with_header(data_header(instant, schema), BlockContent::CdcData(records))
    }

    fn with_header(header: BlockMetadata, content: BlockContent) -> Self {
        LogBlock {
            header,
            content,
            footer: BlockMetadata::new(),
        }
    }

    pub fn block_type(&self) -> BlockType {
        match &self.content {
            BlockContent::Command { .. } => BlockType::Command,
            BlockContent::Delete(_) => BlockType::Delete,
            BlockContent::AvroData(_) => BlockType::AvroData,
            BlockContent::ParquetData(_) => BlockType::ParquetData,
            BlockContent::CdcData(_) => BlockType::CdcData,
            BlockContent::Undecoded { block_type, .. } => *block_type,
            BlockContent::Corrupt { .. } => BlockType::Corrupt,
        }
    }

    /// The `INSTANT_TIME` header, when present and well formed.
    pub fn instant_time(&self) -> Option<InstantTime> {
        self.header.get(HeaderKey::InstantTime)?.parse().ok()
    }

    /// The `SCHEMA` header.
    pub fn schema(&self) -> Option<&str> {
        self.header.get(HeaderKey::Schema)
    }

    pub fn is_corrupt(&self) -> bool {
        matches!(self.content, BlockContent::Corrupt { .. })
    }
}

fn data_header(instant: &InstantTime, schema: &str) -> BlockMetadata {
    BlockMetadata::from_iter([
        (HeaderKey::InstantTime, instant.to_string()),
        (HeaderKey::Schema, schema.to_string()),
    ])
}
