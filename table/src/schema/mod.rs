//! Table schemas: the Arrow schema of a table's data columns, the five `_hoodie_*` meta columns
//! that precede them in every file, the rules for evolving a schema on write, its Avro form for
//! Hudi readers, and the Avro-valid (physical) names columns have in files.

mod avro;
mod evolution;
mod names;
mod normalize;

pub use avro::{avro_reader_type, avro_schema_json};
pub use evolution::{align, evolve};
pub use names::{physical, physical_name, rename};
pub use normalize::normalize;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

pub const COMMIT_TIME: &str = "_hoodie_commit_time";
pub const COMMIT_SEQNO: &str = "_hoodie_commit_seqno";
pub const RECORD_KEY: &str = "_hoodie_record_key";
pub const PARTITION_PATH: &str = "_hoodie_partition_path";
pub const FILE_NAME: &str = "_hoodie_file_name";

/// The meta columns, in the order Hudi writes them before the data columns.
pub const META_COLUMNS: [&str; 5] = [
    COMMIT_TIME,
    COMMIT_SEQNO,
    RECORD_KEY,
    PARTITION_PATH,
    FILE_NAME,
];

pub fn is_meta_column(name: &str) -> bool {
    META_COLUMNS.contains(&name)
}

/// The schema of a base file: meta columns, then the data columns.
pub fn with_meta_columns(data: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = META_COLUMNS
        .iter()
        .map(|name| Arc::new(Field::new(*name, DataType::Utf8, true)))
        .collect();
    fields.extend(
        data.fields()
            .iter()
            .filter(|f| !is_meta_column(f.name()))
            .cloned(),
    );
    Arc::new(Schema::new(fields))
}

/// The data columns of a schema that may hold meta columns.
pub fn without_meta_columns(schema: &Schema) -> SchemaRef {
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .filter(|f| !is_meta_column(f.name()))
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// Snappy, as Hudi writes. The per-record meta columns (sequence number, record key) are unique
/// per row: dictionaries and min/max statistics only cost time there (Hudi looks records up by
/// the footer's bloom filter and key range, not by column statistics), and they share long
/// prefixes (`<instant>_<task>_…`, keys of one file group), which `DELTA_BYTE_ARRAY` stores once.
/// The constant ones need no statistics either: the file name dictionary-encodes to nothing, and
/// the partition path is `DELTA_BYTE_ARRAY` too (each value the previous one: nothing to store),
/// because a dictionary of the empty path of a table without partitions cost ~90 ns a row (the
/// dictionary's lookups call `memcmp` on empty slices, slow in glibc's AVX-512 variant).
/// Integer, date, timestamp and 18-digit decimal columns are `DELTA_BINARY_PACKED`: ids and
/// times that grow along the file pack into a few bits, few distinct values into few bits too,
/// and random ones cost what plain encoding does. A dictionary of amounts (a `numeric(12,2)`
/// of 100,000 values) was a twentieth of a snapshot's commit: every value is looked up in a
/// hash table that outgrows the cache.
/// Spark (3.3+), Trino, Hive, hudi-rs, DuckDB and pyarrow read these standard encodings.
/// Other columns are dictionary-encoded (the writer falls back to plain when the dictionary page
/// fills), but the `plain` ones.
pub fn parquet_properties(schema: &Schema, plain: &[ColumnPath]) -> WriterProperties {
    let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for column in plain {
        builder = builder.set_column_dictionary_enabled(column.clone(), false);
    }
    for name in [COMMIT_SEQNO, RECORD_KEY, PARTITION_PATH, FILE_NAME] {
        if schema.field_with_name(name).is_err() {
            continue;
        }
        let column = ColumnPath::from(name);
        builder = builder.set_column_statistics_enabled(column.clone(), EnabledStatistics::None);
        if matches!(name, COMMIT_SEQNO | RECORD_KEY | PARTITION_PATH) {
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::DELTA_BYTE_ARRAY);
        }
    }
    for field in schema.fields() {
        // Decimals of up to 18 digits are stored as INT32 or INT64 (as Spark writes them).
        let packs = match field.data_type() {
            DataType::Int32
            | DataType::Int64
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Time64(_) => true,
            DataType::Decimal128(precision, _) => *precision <= 18,
            _ => false,
        };
        if packs {
            let column = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::DELTA_BINARY_PACKED);
        }
    }
    builder.build()
}
