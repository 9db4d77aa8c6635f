//! Decoding base files. Decoding runs off the async executor.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Error, Result};
use crate::storage::Storage;

/// Rows per decoded batch.
const BATCH_SIZE: usize = 8192;

/// All rows of a base file.
pub async fn read_base_file(storage: &Storage, path: &str) -> Result<Vec<RecordBatch>> {
    let bytes = storage.get(path).await?;
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(BATCH_SIZE).build())
            .map_err(|e| Error::parquet(&path, e))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::parquet(&path, parquet::errors::ParquetError::from(e)))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// The Arrow schema of a base file, from its footer only.
pub async fn read_base_file_schema(storage: &Storage, path: &str) -> Result<SchemaRef> {
    let size = storage
        .head(path)
        .await?
        .ok_or_else(|| Error::CorruptFile {
            path: path.to_string(),
            reason: "file not found".to_string(),
        })?
        .size;
    let metadata = read_footer(storage, path, size).await?;
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| Error::parquet(path, e))?;
    Ok(std::sync::Arc::new(schema))
}

/// The footer metadata of a Parquet file of `size` bytes (two range reads).
pub async fn read_footer(storage: &Storage, path: &str, size: u64) -> Result<ParquetMetaData> {
    let corrupt = |reason: &str| Error::CorruptFile {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if size < 12 {
        return Err(corrupt("too small to be a Parquet file"));
    }
    // The file ends with the footer length (4 bytes, little endian) and the magic `PAR1`.
    let tail = storage.get_range(path, size - 8..size).await?;
    if &tail[4..] != b"PAR1" {
        return Err(corrupt("no Parquet magic at the end"));
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len + 8 > size {
        return Err(corrupt("footer length exceeds the file"));
    }
    let footer = storage
        .get_range(path, size - 8 - footer_len..size - 8)
        .await?;
    ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| Error::parquet(path, e))
}
