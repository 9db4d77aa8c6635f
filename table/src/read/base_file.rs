//! Decoding base files. Decoding runs off the async executor.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ProjectionMask, parquet_to_arrow_schema};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Error, Result};
use crate::storage::Storage;

/// Rows per decoded batch.
const BATCH_SIZE: usize = 8192;

/// All rows of a base file.
pub async fn read_base_file(storage: &Storage, path: &str) -> Result<Vec<RecordBatch>> {
    read_base_file_columns(storage, path, None).await
}

/// All rows of a base file, with only the columns named in `columns` (all when `None`; names
/// the file lacks are skipped).
pub async fn read_base_file_columns(
    storage: &Storage,
    path: &str,
    columns: Option<&[String]>,
) -> Result<Vec<RecordBatch>> {
    let bytes = storage.get(path).await?;
    let path = path.to_string();
    let columns: Option<Vec<String>> = columns.map(<[String]>::to_vec);
    tokio::task::spawn_blocking(move || {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| {
                let b = b.with_batch_size(BATCH_SIZE);
                let b = match &columns {
                    Some(columns) => {
                        let roots: Vec<usize> = b
                            .schema()
                            .fields()
                            .iter()
                            .enumerate()
                            .filter(|(_, f)| columns.contains(f.name()))
                            .map(|(i, _)| i)
                            .collect();
                        let mask = ProjectionMask::roots(b.parquet_schema(), roots);
                        b.with_projection(mask)
                    }
                    None => b,
                };
                b.build()
            })
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

/// Bytes read from the end of a Parquet file in the first request: most footers (inlet's bloom
/// filters are sized by the file's keys) fit, so one request reads them.
const FOOTER_GUESS: u64 = 64 << 10;

/// The footer metadata of a Parquet file of `size` bytes: one range read of its last 64 KiB, and
/// a second one only for a footer larger than that.
pub async fn read_footer(storage: &Storage, path: &str, size: u64) -> Result<ParquetMetaData> {
    let corrupt = |reason: &str| Error::CorruptFile {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if size < 12 {
        return Err(corrupt("too small to be a Parquet file"));
    }
    // The file ends with the footer length (4 bytes, little endian) and the magic `PAR1`.
    let start = size.saturating_sub(FOOTER_GUESS);
    let tail = storage.get_range(path, start..size).await?;
    let end = tail.len();
    if end < 8 || &tail[end - 4..] != b"PAR1" {
        return Err(corrupt("no Parquet magic at the end"));
    }
    let length = &tail[end - 8..end - 4];
    let footer_len = u64::from(u32::from_le_bytes([
        length[0], length[1], length[2], length[3],
    ]));
    if footer_len + 8 > size {
        return Err(corrupt("footer length exceeds the file"));
    }
    let footer = if footer_len + 8 <= end as u64 {
        tail.slice(end - 8 - footer_len as usize..end - 8)
    } else {
        storage
            .get_range(path, size - 8 - footer_len..size - 8)
            .await?
    };
    ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| Error::parquet(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;

    /// Footers smaller and larger than the first read (Hudi's default bloom filter makes a
    /// footer of ~430 KB) decode alike.
    #[tokio::test]
    async fn footers_of_any_size_are_read() -> Result<()> {
        let storage = Storage::open("memory://footer-sizes", &[])?;
        for (i, padding) in [10usize, 60 << 10, 500 << 10].into_iter().enumerate() {
            let schema =
                std::sync::Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![std::sync::Arc::new(Int64Array::from(vec![1, 2, 3]))],
            )
            .map_err(|e| Error::Task(e.to_string()))?;
            let mut writer = ArrowWriter::try_new(Vec::new(), schema, None)
                .map_err(|e| Error::parquet("t", e))?;
            writer.write(&batch).map_err(|e| Error::parquet("t", e))?;
            writer.append_key_value_metadata(KeyValue::new("pad".to_string(), "x".repeat(padding)));
            let bytes = writer.into_inner().map_err(|e| Error::parquet("t", e))?;
            let path = format!("f{i}.parquet");
            let size = bytes.len() as u64;
            storage.put(&path, bytes::Bytes::from(bytes)).await?;
            let metadata = read_footer(&storage, &path, size).await?;
            assert_eq!(metadata.file_metadata().num_rows(), 3);
            let pad = metadata
                .file_metadata()
                .key_value_metadata()
                .and_then(|kv| kv.iter().find(|k| k.key == "pad"))
                .and_then(|k| k.value.clone());
            assert_eq!(pad.map(|p| p.len()), Some(padding));
        }
        Ok(())
    }
}
