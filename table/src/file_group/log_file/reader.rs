//! Reading a log file: walking its blocks by their framing and decoding each one. A block is
//! framed when it opens with the magic, its trailing total length agrees with its leading block
//! length, and the magic or the end of the file follows it (Java
//! `HoodieLogFileReader.isBlockCorrupt`).
//!
//! Bytes that do not frame a block become a `Corrupt` block and the walk resumes at the next
//! magic: that is how Java treats a writer that died mid-block. A framed block whose inside does
//! not decode is an error instead: it was written whole, so skipping it would silently lose data.

use std::panic::{self, AssertUnwindSafe};

use super::block::{
    BlockContent, BlockMetadata, BlockType, HeaderKey, LogBlock, MAGIC, ROLLBACK_COMMAND,
};
use super::data::{CONTENT_VERSION, decode_avro_records, decode_parquet_records};
use super::delete::decode_delete_records;
use crate::error::{Error, Result};

/// The only log format version table version 6 writes (version 0 had no type, header or footer).
pub(super) const LOG_FORMAT_VERSION: i32 = 1;

/// Magic and block length.
const PREFIX_LEN: usize = MAGIC.len() + 8;
/// Format version, type, empty header, content length, empty footer, total length.
const MIN_BLOCK_LEN: u64 = 4 + 4 + 4 + 8 + 4 + 8;

/// Parses every block of a log file, in order.
pub fn read_log_blocks(bytes: &[u8]) -> Result<Vec<LogBlock>> {
    let mut blocks = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match frame_at(bytes, pos) {
            Ok(end) => {
                blocks.push(decode_block(&bytes[pos..end], pos as u64)?);
                pos = end;
            }
            Err(reason) => {
                blocks.push(LogBlock {
                    header: BlockMetadata::new(),
                    content: BlockContent::Corrupt {
                        offset: pos as u64,
                        reason,
                    },
                    footer: BlockMetadata::new(),
                });
                pos = next_magic(bytes, pos + 1).unwrap_or(bytes.len());
            }
        }
    }
    Ok(blocks)
}

/// The end of the block starting at `pos`, or why the bytes there do not frame one.
fn frame_at(bytes: &[u8], pos: usize) -> Result<usize, String> {
    let rest = &bytes[pos..];
    if !rest.starts_with(MAGIC) {
        return Err(if MAGIC.starts_with(rest) {
            format!("torn block: {} bytes of the magic", rest.len())
        } else {
            "no block magic".to_string()
        });
    }
    let mut cursor = Cursor::new(&rest[MAGIC.len()..]);
    let block_len = cursor
        .u64()
        .map_err(|_| format!("torn block: {} bytes", rest.len()))?;
    if block_len < MIN_BLOCK_LEN {
        return Err(format!("block length {block_len} is too short"));
    }
    let whole = block_len
        .checked_add(PREFIX_LEN as u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= rest.len())
        .ok_or_else(|| {
            format!(
                "torn block: {} bytes where the block length says {}",
                rest.len(),
                block_len.saturating_add(PREFIX_LEN as u64)
            )
        })?;
    let total = Cursor::new(&rest[whole - 8..whole]).u64()?;
    if total != whole as u64 - 8 {
        return Err(format!(
            "block length {block_len} and total block length {total} disagree"
        ));
    }
    let after = &rest[whole..];
    if after.len() >= MAGIC.len() && !after.starts_with(MAGIC) {
        return Err("the block is not followed by a block magic".to_string());
    }
    Ok(pos + whole)
}

fn next_magic(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
        .map(|i| from + i)
}

/// Decodes one framed block (magic through total length) that starts at `offset` in its file.
fn decode_block(block: &[u8], offset: u64) -> Result<LogBlock> {
    let error = |reason: String| Error::LogBlockDecode { offset, reason };
    let mut cursor = Cursor::new(&block[PREFIX_LEN..block.len() - 8]);
    let version = cursor.i32().map_err(error)?;
    if version != LOG_FORMAT_VERSION {
        return Err(error(format!("unsupported log format version {version}")));
    }
    let type_id = cursor.i32().map_err(error)?;
    let block_type = BlockType::from_id(type_id)
        .ok_or_else(|| error(format!("unknown block type {type_id}")))?;
    let header = read_metadata(&mut cursor).map_err(error)?;
    let content_len = usize::try_from(cursor.u64().map_err(error)?)
        .map_err(|_| error("content length out of range".to_string()))?;
    let content = cursor.take(content_len).map_err(error)?;
    let footer = read_metadata(&mut cursor).map_err(error)?;
    if !cursor.is_empty() {
        return Err(error(format!(
            "{} bytes between the footer and the total block length",
            cursor.remaining()
        )));
    }
    // The Parquet and Avro decoders are not hardened against malformed input (the parquet
    // crate asserts on negative column offsets): a panic there is this block's decode error.
    let decoded = panic::catch_unwind(AssertUnwindSafe(|| {
        decode_content(block_type, &header, content)
    }))
    .unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("the decoder panicked: {message}"))
    });
    let content = decoded.map_err(|reason| error(format!("{block_type}: {reason}")))?;
    Ok(LogBlock {
        header,
        content,
        footer,
    })
}

fn decode_content(
    block_type: BlockType,
    header: &BlockMetadata,
    content: &[u8],
) -> Result<BlockContent, String> {
    Ok(match block_type {
        BlockType::Command => {
            let command = header.get(HeaderKey::CommandBlockType);
            if command != Some(ROLLBACK_COMMAND) {
                return Err(format!("unknown command {command:?}"));
            }
            let target = header
                .get(HeaderKey::TargetInstantTime)
                .ok_or("no TARGET_INSTANT_TIME header")?;
            BlockContent::Command {
                target_instant: target.parse().map_err(|e| format!("{e}"))?,
            }
        }
        BlockType::Delete => {
            let mut cursor = Cursor::new(content);
            let version = cursor.i32()?;
            if version != CONTENT_VERSION {
                return Err(format!(
                    "unsupported delete block content version {version}"
                ));
            }
            let datum = cursor.sized()?;
            if !cursor.is_empty() {
                return Err(format!("{} bytes after the deletes", cursor.remaining()));
            }
            BlockContent::Delete(decode_delete_records(datum)?)
        }
        BlockType::AvroData => {
            let schema = header.get(HeaderKey::Schema).ok_or("no SCHEMA header")?;
            BlockContent::AvroData(decode_avro_records(content, schema)?)
        }
        BlockType::ParquetData => BlockContent::ParquetData(decode_parquet_records(content)?),
        BlockType::CdcData => {
            let schema = header.get(HeaderKey::Schema).ok_or("no SCHEMA header")?;
            BlockContent::CdcData(decode_avro_records(content, schema)?)
        }
        BlockType::HFileData => BlockContent::Undecoded {
            block_type,
            content: content.to_vec(),
        },
        BlockType::Corrupt => return Err("a corrupt block is never written".to_string()),
    })
}

/// Header or footer: entry count, then per entry key id, value length, UTF-8 value.
fn read_metadata(cursor: &mut Cursor<'_>) -> Result<BlockMetadata, String> {
    let count = cursor.i32()?;
    let mut metadata = BlockMetadata::new();
    for _ in 0..count {
        let id = cursor.i32()?;
        let key = HeaderKey::from_id(id).ok_or_else(|| format!("unknown header key {id}"))?;
        let value = std::str::from_utf8(cursor.sized()?)
            .map_err(|e| format!("header {key:?} is not UTF-8: {e}"))?;
        if metadata.get(key).is_some() {
            return Err(format!("header {key:?} appears twice"));
        }
        metadata.insert(key, value);
    }
    Ok(metadata)
}

/// Big-endian reads over a byte slice that fail, instead of panicking, past its end.
#[derive(Debug)]
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "{n} bytes wanted at byte {} of {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(super) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// An int32 length, then that many bytes.
    pub(super) fn sized(&mut self) -> Result<&'a [u8], String> {
        let len = self.i32()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.take(len)
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
}
