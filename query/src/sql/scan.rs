//! How a query scans a lake table's latest state: file slices without log files (every slice
//! of a copy-on-write table, compacted merge-on-read slices) go through DataFusion's Parquet
//! scan — projection, row-group and page pruning by the query's filters, limit — and slices
//! with log files through inlet's merge (base and logs, by the table's ordering). Before
//! either, file groups that cannot hold a matching row are left out:
//!
//! - **partitions**: filters on partition columns are evaluated on each partition's values
//!   (read from its path, as Hudi's key generators wrote them);
//! - **buckets**: a filter fixing every record key column (`id = 7`) names one record key, and
//!   the bucket index puts a key in the file group of one bucket per partition.
//!
//! Pruning only leaves out what cannot match: DataFusion applies every filter again to what is
//! read. Anything this planner cannot prove (a value that does not read back as its path, a
//! key generator that transforms values, URL-encoded paths) prunes nothing.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use inlet_table::file_group::{FileSlice, GroupKey, file_path};
// Hudi's directory for null and empty partition values: both read back from it, so no filter
// can prune it.
use inlet_table::key::{DEFAULT_PARTITION, KeyGenerator};
use inlet_table::schema::{self, META_COLUMNS};
use inlet_table::{Snapshot, TableProperties};

/// What the planner splits a scan into.
pub(super) struct Split {
    /// Base files read by DataFusion's Parquet scan: (table-relative path, size).
    pub parquet: Vec<(String, u64)>,
    /// File groups read through inlet's merge.
    pub merged: HashSet<GroupKey>,
    /// The one record key the filters fix, if they fix one: the merge reads only its records.
    pub key: Option<String>,
}

/// The columns of a registered table: as the query sees them, as files name them.
pub(super) struct Columns {
    /// The provider's schema (meta columns first when shown).
    pub provided: SchemaRef,
    /// Files' schema: meta columns, then the data columns by their names in files.
    pub stored: SchemaRef,
    /// Index in `stored` of each provided column.
    pub stored_index: Vec<usize>,
}

impl Columns {
    /// `None` when the provider's columns are not the snapshot's (a table whose files alone
    /// tell its schema): such a table is read whole by inlet.
    pub fn of(snapshot: &Snapshot, provided: &SchemaRef) -> Option<Columns> {
        let logical = snapshot.schema()?;
        let physical = schema::physical(logical).ok()?;
        let stored = schema::with_meta_columns(&physical);
        let full = schema::with_meta_columns(logical);
        let offset = full.fields().len().checked_sub(provided.fields().len())?;
        if !(offset == 0 || offset == META_COLUMNS.len()) {
            return None;
        }
        for (i, field) in provided.fields().iter().enumerate() {
            let f = full.field(offset + i);
            if f.name() != field.name() || f.data_type() != field.data_type() {
                return None;
            }
        }
        Some(Columns {
            provided: provided.clone(),
            stored,
            stored_index: (offset..full.fields().len()).collect(),
        })
    }

    /// The name in files of a column the query names.
    fn stored_name(&self, provided: &str) -> Option<&str> {
        let i = self.provided.index_of(provided).ok()?;
        Some(self.stored.field(self.stored_index[i]).name().as_str())
    }

    /// `expr` with its columns named as in files (`None` when it names another).
    fn to_stored(&self, expr: &Expr) -> Option<Expr> {
        let mut unknown = false;
        let renamed = expr
            .clone()
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) => match self.stored_name(&c.name) {
                        Some(name) => Transformed::yes(Expr::Column(Column::from_name(name))),
                        None => {
                            unknown = true;
                            Transformed::no(Expr::Column(c))
                        }
                    },
                    other => Transformed::no(other),
                })
            })
            .ok()?
            .data;
        (!unknown).then_some(renamed)
    }
}

/// Splits the latest slices of the snapshot, after pruning by `filters`.
pub(super) fn split(
    state: &dyn Session,
    snapshot: &Snapshot,
    columns: &Columns,
    filters: &[Expr],
    read_optimized: bool,
) -> Split {
    let props = snapshot.table().properties();
    let slices = snapshot.view().latest_slices(None);
    let partitions: BTreeSet<&str> = slices.iter().map(|s| s.partition.as_str()).collect();
    let kept = kept_partitions(state, props, columns, filters, &partitions);
    let key = point_key(props, columns, filters);
    let bucket = key
        .as_deref()
        .zip(props.buckets)
        .map(|(k, n)| inlet_table::index::bucket_id(k, &props.record_key_fields, n))
        .filter(|_| hashed_on_record_key(props));
    let mut split = Split {
        parquet: Vec::new(),
        merged: HashSet::new(),
        key,
    };
    for slice in slices {
        if kept
            .as_ref()
            .is_some_and(|k| !k.contains(slice.partition.as_str()))
            || bucket.is_some_and(|b| {
                inlet_table::index::bucket_of_file_id(slice.file_id).is_some_and(|f| f != b)
            })
        {
            continue;
        }
        match base_only(&slice, read_optimized) {
            Some(file) => split.parquet.push(file),
            // Read-optimized: a slice without a base file holds nothing yet.
            None if read_optimized && slice.base_file.is_none() => {}
            None => {
                split
                    .merged
                    .insert((slice.partition.clone(), slice.file_id.clone()));
            }
        }
    }
    split
}

/// A slice read as one base file of known size (read-optimized reads ignore log files).
fn base_only(slice: &FileSlice<'_>, read_optimized: bool) -> Option<(String, u64)> {
    let base = slice.base_file?;
    ((read_optimized || slice.log_files.is_empty()) && base.size > 0)
        .then(|| (file_path(slice.partition, &base.file_name()), base.size))
}

/// The Parquet scan of base files: projected, limited; columns named as the query names them.
pub(super) fn parquet_exec(
    state: &dyn Session,
    snapshot: &Snapshot,
    columns: &Columns,
    files: &[(String, u64)],
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let storage = snapshot.table().storage();
    // One URL per store: the object store the table's storage reads from.
    let url = ObjectStoreUrl::parse(format!(
        "inlet{}://store/",
        Arc::as_ptr(storage.object_store()) as *const () as usize
    ))?;
    state
        .runtime_env()
        .register_object_store(url.as_ref(), storage.object_store().clone());
    let stored = columns.stored.clone();
    // DataFusion pushes the query's filters into the scan itself (through the renaming
    // projection): row groups and pages are pruned by them.
    let source = ParquetSource::new(stored);
    let mut partitioned = Vec::with_capacity(files.len());
    for (path, size) in files {
        let location = storage
            .path(path)
            .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
        partitioned.push(PartitionedFile::new_from_meta(
            datafusion::object_store::ObjectMeta {
                location,
                last_modified: Default::default(),
                size: *size,
                e_tag: None,
                version: None,
            },
        ));
    }
    // As many file groups as the session has target partitions, files dealt round-robin.
    let groups = state
        .config()
        .target_partitions()
        .max(1)
        .min(partitioned.len().max(1));
    let mut file_groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); groups];
    for (i, file) in partitioned.into_iter().enumerate() {
        file_groups[i % groups].push(file);
    }
    let provided: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..columns.provided.fields().len()).collect(),
    };
    let stored_indices: Vec<usize> = provided.iter().map(|&i| columns.stored_index[i]).collect();
    let config = FileScanConfigBuilder::new(url, Arc::new(source))
        .with_file_groups(file_groups.into_iter().map(FileGroup::new).collect())
        .with_projection_indices(Some(stored_indices.clone()))?
        .with_limit(limit)
        .build();
    let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    // Columns as the query names them.
    let scanned = scan.schema();
    let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = provided
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let expr: Arc<dyn PhysicalExpr> =
                Arc::new(PhysicalColumn::new(scanned.field(k).name(), k));
            (expr, columns.provided.field(i).name().clone())
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
}

/// The union of the scans (an empty scan of `schema` when there is none).
pub(super) fn union(
    plans: Vec<Arc<dyn ExecutionPlan>>,
    schema: SchemaRef,
) -> Result<Arc<dyn ExecutionPlan>> {
    if plans.is_empty() {
        return Ok(Arc::new(EmptyExec::new(schema)));
    }
    UnionExec::try_new(plans)
}

/// Whether partition paths hold the partition columns' values as they are: inlet's key
/// generators (simple, complex, none) without URL encoding.
fn plain_partition_paths(props: &TableProperties) -> bool {
    let class = props
        .other
        .get("hoodie.table.keygenerator.class")
        .map_or(props.key_generator_class(), String::as_str);
    let plain = [
        "SimpleKeyGenerator",
        "ComplexKeyGenerator",
        "NonpartitionedKeyGenerator",
    ]
    .iter()
    .any(|k| class.ends_with(k));
    let encoded = props
        .other
        .get("hoodie.datasource.write.partitionpath.urlencode")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    plain && !encoded
}

/// A partition path's values, one per partition field (`None` for the default partition, or
/// a path that does not have the table's layout).
fn partition_values(path: &str, props: &TableProperties) -> Option<Vec<String>> {
    let fields = &props.partition_fields;
    if path == DEFAULT_PARTITION || path.split('/').any(|s| s.ends_with(DEFAULT_PARTITION)) {
        return None;
    }
    let values: Vec<String> = if props.hive_style_partitioning {
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() != fields.len() {
            return None;
        }
        segments
            .iter()
            .zip(fields)
            .map(|(s, f)| {
                s.strip_prefix(f.as_str())?
                    .strip_prefix('=')
                    .map(str::to_string)
            })
            .collect::<Option<_>>()?
    } else if fields.len() == 1 {
        vec![path.to_string()]
    } else {
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() != fields.len() {
            return None;
        }
        segments.iter().map(|s| s.to_string()).collect()
    };
    Some(values)
}

/// Column types whose values Hudi's key generators write into paths as their plain text.
fn plain_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Date32
            | DataType::Boolean
    )
}

/// The partitions that may hold a row matching `filters` (`None`: all of them).
fn kept_partitions(
    state: &dyn Session,
    props: &TableProperties,
    columns: &Columns,
    filters: &[Expr],
    partitions: &BTreeSet<&str>,
) -> Option<HashSet<String>> {
    let fields = &props.partition_fields;
    if fields.is_empty() || !plain_partition_paths(props) {
        return None;
    }
    let stored_fields: Vec<Field> = fields
        .iter()
        .map(|f| columns.stored.field_with_name(f).ok().cloned())
        .collect::<Option<_>>()?;
    if !stored_fields.iter().all(|f| plain_type(f.data_type())) {
        return None;
    }
    // Filters on partition columns only, named as in files.
    let on_partitions: Vec<Expr> = filters
        .iter()
        .filter_map(|f| columns.to_stored(f))
        .filter(|f| {
            let refs = f.column_refs();
            !refs.is_empty() && refs.iter().all(|c| fields.contains(&c.name))
        })
        .collect();
    if on_partitions.is_empty() {
        return None;
    }
    let mut kept: HashSet<String> = HashSet::new();
    let mut candidates: Vec<(&str, Vec<String>)> = Vec::new();
    for &path in partitions {
        match partition_values(path, props) {
            Some(values) => candidates.push((path, values)),
            None => {
                kept.insert(path.to_string());
            }
        }
    }
    if candidates.is_empty() {
        return Some(kept);
    }
    // One row per partition: its values in the columns' types; a value that does not read
    // back as the text of its path keeps its partition.
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut exact = vec![true; candidates.len()];
    for (i, field) in stored_fields.iter().enumerate() {
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            candidates.iter().map(|(_, v)| v[i].as_str()),
        ));
        let typed = cast_with_options(&text, field.data_type(), &strict).ok()?;
        let back = cast(&typed, &DataType::Utf8).ok()?;
        for (row, ok) in exact.iter_mut().enumerate() {
            *ok &= back.as_string::<i32>().value(row) == candidates[row].1[i];
        }
        arrays.push(typed);
    }
    let schema = Arc::new(Schema::new(
        stored_fields
            .iter()
            .map(|f| f.clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), arrays).ok()?;
    let df_schema = DFSchema::try_from(schema).ok()?;
    let mut matches = vec![true; candidates.len()];
    for filter in on_partitions {
        let Ok(expr) = state.create_physical_expr(filter, &df_schema) else {
            continue;
        };
        let Ok(result) = expr
            .evaluate(&batch)
            .and_then(|v| v.into_array(candidates.len()))
        else {
            continue;
        };
        let Some(result) = result.as_boolean_opt() else {
            continue;
        };
        for (row, m) in matches.iter_mut().enumerate() {
            *m &= result.is_valid(row) && result.value(row);
        }
    }
    for (row, (path, _)) in candidates.iter().enumerate() {
        if matches[row] || !exact[row] {
            kept.insert(path.to_string());
        }
    }
    Some(kept)
}

/// Whether the bucket index hashes the record key fields (unless the table says otherwise).
fn hashed_on_record_key(props: &TableProperties) -> bool {
    !props
        .other
        .get("hoodie.bucket.index.hash.field")
        .is_some_and(|h| {
            h.split(',')
                .map(str::trim)
                .ne(props.record_key_fields.iter().map(String::as_str))
        })
}

/// The one record key that `filters` fix (`col = value` for every record key column), as the
/// writer spells it, if they fix one.
fn point_key(props: &TableProperties, columns: &Columns, filters: &[Expr]) -> Option<String> {
    let fields = &props.record_key_fields;
    let mut values: Vec<Option<ScalarValue>> = vec![None; fields.len()];
    for filter in filters.iter().filter_map(|f| columns.to_stored(f)) {
        for conjunct in split_conjunction(&filter) {
            let Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) = conjunct
            else {
                continue;
            };
            let (column, value) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                    (c, v)
                }
                _ => continue,
            };
            if let Some(i) = fields.iter().position(|f| *f == column.name) {
                values[i] = Some(value.clone());
            }
        }
    }
    // A one-row batch of the key columns, keyed as the writer keys rows.
    let mut key_fields = Vec::new();
    let mut arrays = Vec::new();
    for (field, value) in fields.iter().zip(values) {
        let stored = columns.stored.field_with_name(field).ok()?;
        if !matches!(
            stored.data_type(),
            DataType::Utf8 | DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        ) {
            return None;
        }
        let value = value?.cast_to(stored.data_type()).ok()?;
        if value.is_null() {
            return None;
        }
        arrays.push(value.to_array().ok()?);
        key_fields.push(stored.clone());
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(key_fields)), arrays).ok()?;
    let keys = KeyGenerator::new(props).record_keys(&batch).ok()?;
    keys.is_valid(0).then(|| keys.value(0).to_string())
}
