//! The benchmark's data: a bulk insert of ids `0..rows` and an upsert of `rows / 10` changes
//! (in every ten: one insert of a new id, one delete and eight updates of distinct existing ids),
//! generated from a fixed seed and written as Parquet so that every tool reads the same rows.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchReader,
    StringArray, TimestampMicrosecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The bulk insert, in the bench directory.
pub const BULK_FILE: &str = "bulk.parquet";
/// The upsert: the data columns plus [`DELETED`].
pub const UPSERT_FILE: &str = "upsert.parquet";
/// The boolean column of [`UPSERT_FILE`] flagging deletes.
pub const DELETED: &str = "_deleted";

/// What was generated.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    pub rows: usize,
    pub updates: usize,
    pub inserts: usize,
    pub deletes: usize,
}

impl Generated {
    pub fn changes(&self) -> usize {
        self.updates + self.inserts + self.deletes
    }

    /// Rows in the table once the upsert is applied.
    pub fn rows_after_upsert(&self) -> usize {
        self.rows + self.inserts - self.deletes
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("_cdc_position", DataType::Int64, true),
    ]))
}

fn batch(ids: &[i64], rng: &mut StdRng, position: i64) -> RecordBatch {
    let n = ids.len();
    let statuses = ["new", "paid", "shipped", "returned"];
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("customer-{}", i % 50_000)),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|_| rng.random_range(0.0..10_000.0)),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|_| statuses[rng.random_range(0..4)]),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| 1_763_700_000_000_000 + i as i64),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| position + i),
            )),
        ],
    )
    .expect("bench batch")
}

/// Generates the data and writes [`BULK_FILE`] and [`UPSERT_FILE`] into `dir`. Changed ids are
/// distinct (a Delta MERGE rejects several source rows matching one target row).
pub fn generate(dir: &Path, rows: usize) -> anyhow::Result<Generated> {
    let mut rng = StdRng::seed_from_u64(42);
    let ids: Vec<i64> = (0..rows as i64).collect();
    write_parquet(&dir.join(BULK_FILE), &batch(&ids, &mut rng, 0))?;

    let changes = rows / 10;
    let new_ids = changes.div_ceil(10);
    let mut existing = rand::seq::index::sample(&mut rng, rows, changes - new_ids).into_iter();
    let mut generated = Generated {
        rows,
        updates: 0,
        inserts: 0,
        deletes: 0,
    };
    let mut upsert_ids = Vec::with_capacity(changes);
    let mut deleted = Vec::with_capacity(changes);
    for i in 0..changes {
        let (id, delete) = match i % 10 {
            0 => {
                generated.inserts += 1;
                ((rows + i) as i64, false)
            }
            1 => {
                generated.deletes += 1;
                (existing.next().expect("sampled id") as i64, true)
            }
            _ => {
                generated.updates += 1;
                (existing.next().expect("sampled id") as i64, false)
            }
        };
        upsert_ids.push(id);
        deleted.push(delete);
    }
    let upsert = batch(&upsert_ids, &mut rng, rows as i64);
    let mut fields = upsert.schema().fields().to_vec();
    fields.push(Arc::new(Field::new(DELETED, DataType::Boolean, false)));
    let mut columns = upsert.columns().to_vec();
    columns.push(Arc::new(BooleanArray::from(deleted)));
    let upsert = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    write_parquet(&dir.join(UPSERT_FILE), &upsert)?;
    Ok(generated)
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

/// Reads a Parquet file into one batch.
pub fn read_parquet(path: &Path) -> anyhow::Result<RecordBatch> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Splits the upsert read from [`UPSERT_FILE`] into its data columns and its delete flags.
pub fn split_deletes(upsert: RecordBatch) -> anyhow::Result<(RecordBatch, BooleanArray)> {
    let index = upsert.schema().index_of(DELETED)?;
    let deleted = upsert.column(index).as_boolean().clone();
    anyhow::ensure!(deleted.null_count() == 0, "{DELETED} has nulls");
    let mut batch = upsert;
    batch.remove_column(index);
    Ok((batch, deleted))
}
