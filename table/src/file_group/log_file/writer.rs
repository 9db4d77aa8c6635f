//! Writing a log block: the exact bytes Java's `HoodieLogFormatWriter` appends, all integers
//! big-endian. A log file is the concatenation of its blocks.
//!
//! ```text
//! #HUDI# | block length: i64 | format version 1: i32 | block type: i32 | header
//!        | content length: i64 | content | footer | total block length: i64
//! ```
//! The block length counts the bytes after itself; the total block length counts everything
//! before itself, so a reader can walk backwards and detect a torn block.

use super::block::{
    BlockContent, BlockMetadata, BlockType, HeaderKey, LogBlock, MAGIC, ROLLBACK_COMMAND,
};
use super::data::{CONTENT_VERSION, encode_avro_records, encode_parquet_records};
use super::delete::encode_delete_records;
use super::reader::LOG_FORMAT_VERSION;
use crate::error::{Error, Result};

/// The bytes of one block.
pub fn encode_log_block(block: &LogBlock) -> Result<Vec<u8>> {
    let block_type = block.block_type();
    let error = |reason: String| Error::LogBlockEncode { block_type, reason };
    let mut header = block.header.clone();
    let content = match &block.content {
        BlockContent::Command { target_instant } => {
            // The header is what readers act on: make it agree with the command.
            header.insert(HeaderKey::TargetInstantTime, target_instant.to_string());
            header.insert(HeaderKey::CommandBlockType, ROLLBACK_COMMAND);
            Vec::new()
        }
        BlockContent::Delete(records) => {
            let datum = encode_delete_records(records).map_err(error)?;
            let mut content = Vec::with_capacity(8 + datum.len());
            content.extend_from_slice(&CONTENT_VERSION.to_be_bytes());
            content.extend_from_slice(&length_i32(datum.len()).map_err(error)?.to_be_bytes());
            content.extend_from_slice(&datum);
            content
        }
        BlockContent::AvroData(batch) | BlockContent::CdcData(batch) => {
            let schema = header
                .get(HeaderKey::Schema)
                .ok_or_else(|| error("no SCHEMA header to encode the records with".to_string()))?;
            encode_avro_records(batch, schema).map_err(error)?
        }
        BlockContent::ParquetData(batch) => encode_parquet_records(batch).map_err(error)?,
        BlockContent::Undecoded { content, .. } => content.clone(),
        BlockContent::Corrupt { .. } => {
            return Err(error("corrupt blocks are never written".to_string()));
        }
    };
    // `Undecoded` could claim the corrupt type too.
    if block_type == BlockType::Corrupt {
        return Err(error("corrupt blocks are never written".to_string()));
    }

    let mut out = Vec::with_capacity(64 + content.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&0u64.to_be_bytes()); // block length, set below
    out.extend_from_slice(&LOG_FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&block_type.id().to_be_bytes());
    write_metadata(&mut out, &header).map_err(error)?;
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    out.extend_from_slice(&content);
    write_metadata(&mut out, &block.footer).map_err(error)?;
    // With the trailing total length appended the block is `out.len() + 8` bytes: the block
    // length excludes the magic and itself (14 bytes), the total length only itself.
    let block_len = (out.len() + 8 - MAGIC.len() - 8) as u64;
    out[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&block_len.to_be_bytes());
    let total_len = out.len() as u64;
    out.extend_from_slice(&total_len.to_be_bytes());
    Ok(out)
}

fn write_metadata(out: &mut Vec<u8>, metadata: &BlockMetadata) -> Result<(), String> {
    out.extend_from_slice(&length_i32(metadata.len())?.to_be_bytes());
    for (key, value) in metadata.iter() {
        out.extend_from_slice(&key.id().to_be_bytes());
        out.extend_from_slice(&length_i32(value.len())?.to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    Ok(())
}

fn length_i32(len: usize) -> Result<i32, String> {
    i32::try_from(len).map_err(|_| format!("length {len} does not fit an int32"))
}
