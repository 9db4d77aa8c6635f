//! SQL over lake tables with DataFusion (`inlet sql`). Each table is a [`LakeTable`] provider on
//! one snapshot pinned when it is registered, read through the read path of `inlet read` (base
//! and log files merged, files of older schemas aligned, meta columns hidden unless asked for),
//! so that a query sees exactly what `inlet read` prints. Two table functions read other states
//! of a registered table: `table_as_of('name', 'INSTANT')` (time travel) and
//! `table_changes('name', 'FROM'[, 'TO'])` (the latest state of the records changed by the
//! commits after FROM, up to TO), or with Hudi's mode argument `table_changes('name', 'cdc',
//! 'FROM'[, 'TO'])`: every change with `op`, `instant`, `before` and `after`.
//!
//! A scan of a table's latest state is planned by [`scan`]: file groups pruned by partition and
//! bucket, base-file slices through DataFusion's Parquet scan (projection, row-group and page
//! pruning), slices with log files through inlet's merge; the table functions read through
//! inlet's read path.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, Session, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use inlet_table::storage::Storage;
use inlet_table::{Snapshot, Table, TableConfig};

use crate::{Error, ReadRequest, Result};

mod scan;

/// The schema tables without a dot in their name are registered in.
pub const DEFAULT_SCHEMA: &str = "public";

/// A registered table: its pinned snapshot and the columns queries see.
#[derive(Debug)]
struct Registered {
    snapshot: Arc<Snapshot>,
    schema: SchemaRef,
    meta: bool,
    read_optimized: bool,
}

/// A DataFusion session over lake tables.
pub struct Lake {
    ctx: SessionContext,
    tables: Arc<BTreeMap<String, Arc<Registered>>>,
}

impl Lake {
    /// A session with `tables` registered by name (`schema.table`, or a bare name in
    /// [`DEFAULT_SCHEMA`]), each pinned at its latest completed commit; `meta` shows the
    /// `_hoodie_*` columns.
    pub async fn new(tables: Vec<(String, Table)>, meta: bool) -> Result<Lake> {
        Self::with_options(tables, meta, false).await
    }

    /// [`Lake::new`]; with `read_optimized`, every table is read from its base files only
    /// (merge-on-read tables: the state as of each file group's latest compaction, as Hudi's
    /// `_ro` tables).
    pub async fn with_options(
        tables: Vec<(String, Table)>,
        meta: bool,
        read_optimized: bool,
    ) -> Result<Lake> {
        let ctx = SessionContext::new();
        let mut registered = BTreeMap::new();
        for (name, table) in tables {
            let snapshot = Arc::new(table.snapshot().await?);
            let request = ReadRequest {
                meta,
                read_optimized,
                ..ReadRequest::default()
            };
            // The schema a read of the snapshot has (for a table another engine wrote, that
            // means reading it: its commits record no schema).
            let (schema, _) = crate::read_stream(&snapshot, &request).await?;
            let table = Arc::new(Registered {
                snapshot,
                schema,
                meta,
                read_optimized,
            });
            let (schema_name, table_name) = split_name(&name);
            if ctx
                .catalog("datafusion")
                .and_then(|c| c.schema(schema_name))
                .is_none()
                && let Some(catalog) = ctx.catalog("datafusion")
            {
                catalog
                    .register_schema(schema_name, Arc::new(MemorySchemaProvider::new()))
                    .map_err(sql_error)?;
            }
            let provider = LakeTable {
                schema: table.schema.clone(),
                table: table.clone(),
                request: ReadRequest {
                    meta,
                    read_optimized,
                    ..ReadRequest::default()
                },
            };
            ctx.register_table(
                datafusion::common::TableReference::partial(schema_name, table_name),
                Arc::new(provider),
            )
            .map_err(sql_error)?;
            if registered.insert(name.clone(), table).is_some() {
                return Err(Error::InvalidQuery(format!("table {name} is given twice")));
            }
        }
        let tables = Arc::new(registered);
        ctx.register_udtf(
            "table_as_of",
            Arc::new(ReadFunction {
                tables: tables.clone(),
                kind: FunctionKind::AsOf,
            }),
        );
        ctx.register_udtf(
            "table_changes",
            Arc::new(ReadFunction {
                tables: tables.clone(),
                kind: FunctionKind::Changes,
            }),
        );
        Ok(Lake { ctx, tables })
    }

    /// The registered table names.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// Runs a query: the result's schema and a stream of its batches.
    pub async fn sql(&self, query: &str) -> Result<SendableRecordBatchStream> {
        let frame = self.ctx.sql(query).await.map_err(sql_error)?;
        frame.execute_stream().await.map_err(sql_error)
    }
}

/// The tables under `base` as `inlet run` lays them out: `<base>/<schema>/<table>` named
/// `schema.table`, and tables directly in `<base>` (the dead-letter table) by their name.
pub async fn discover(base: &str, config: &TableConfig) -> Result<Vec<(String, Table)>> {
    let storage = match Storage::open(base, &config.storage_options) {
        Ok(storage) => storage,
        // A local directory that does not exist holds no tables.
        Err(inlet_table::Error::TableNotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let is_table = |dir: String| {
        let storage = &storage;
        async move {
            Ok::<_, Error>(
                storage
                    .head(&format!("{dir}/.hoodie/hoodie.properties"))
                    .await?
                    .is_some(),
            )
        }
    };
    let mut found = Vec::new();
    for first in storage.subdirs("").await? {
        if is_table(first.clone()).await? {
            found.push((first.clone(), first));
            continue;
        }
        for second in storage.subdirs(&first).await? {
            if is_table(format!("{first}/{second}")).await? {
                found.push((format!("{first}.{second}"), format!("{first}/{second}")));
            }
        }
    }
    let base = base.trim_end_matches('/');
    let mut tables = Vec::new();
    for (name, dir) in found {
        tables.push((
            name,
            Table::open(&format!("{base}/{dir}"), config.clone()).await?,
        ));
    }
    Ok(tables)
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `schema.table` as its two parts (a bare name is in [`DEFAULT_SCHEMA`]).
fn split_name(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or((DEFAULT_SCHEMA, name))
}

fn sql_error(e: DataFusionError) -> Error {
    Error::Sql(e.to_string())
}

/// A lake table as DataFusion sees it: one read of the pinned snapshot.
#[derive(Debug)]
struct LakeTable {
    table: Arc<Registered>,
    request: ReadRequest,
    /// The columns of the read: the table's, or a change query's.
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters prune what is read (partitions, buckets, Parquet row groups and pages) and are
    /// applied again to what is read.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let snapshot = &self.table.snapshot;
        // The latest state of a table whose schema its commits record: base-file slices
        // through DataFusion's Parquet scan, the others through inlet's merge (see `scan`).
        let latest = self.request.as_of.is_none() && self.request.from.is_none();
        let columns = latest
            .then(|| scan::Columns::of(snapshot, &self.schema))
            .flatten();
        let Some(columns) = columns else {
            return self.merge_exec(None, None, projection, limit);
        };
        let split = scan::split(
            state,
            snapshot,
            &columns,
            filters,
            self.request.read_optimized,
        );
        let mut plans = Vec::new();
        if !split.parquet.is_empty() {
            plans.push(scan::parquet_exec(
                state,
                snapshot,
                &columns,
                &split.parquet,
                projection,
                limit,
            )?);
        }
        if !split.merged.is_empty() {
            plans.push(self.merge_exec(Some(split.merged), split.key, projection, limit)?);
        }
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        scan::union(plans, schema)
    }
}

impl LakeTable {
    /// A read through inlet's read path, of some file groups only when `only` says so, and of
    /// one record key's records only when `key` names it.
    fn merge_exec(
        &self,
        only: Option<std::collections::HashSet<inlet_table::file_group::GroupKey>>,
        key: Option<String>,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let mut request = self.request.clone();
        request.file_groups = only.map(Arc::new);
        request.keys = key.map(|k| Arc::new(std::collections::HashSet::from([k])));
        // Only the columns the query uses are decoded (the others read as null, then go).
        if let Some(projection) = projection.filter(|_| !request.changes) {
            request.columns = Some(
                projection
                    .iter()
                    .map(|&i| self.schema.field(i).name().clone())
                    .filter(|name| !inlet_table::schema::is_meta_column(name))
                    .collect(),
            );
        }
        let partition = Arc::new(ReadPartition {
            table: self.table.clone(),
            request,
            schema: self.schema.clone(),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema.clone(),
            vec![partition],
            projection,
            [],
            false,
            limit,
        )?))
    }
}

/// The rows of one read, streamed file slice by file slice.
#[derive(Debug)]
struct ReadPartition {
    table: Arc<Registered>,
    request: ReadRequest,
    schema: SchemaRef,
}

impl PartitionStream for ReadPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // The read borrows the snapshot: it runs on a task of its own that owns it, two batches
        // ahead of the query at most.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let (table, request) = (self.table.clone(), self.request.clone());
        let schema = self.schema.clone();
        tokio::spawn(async move {
            let read = async {
                let (_, mut batches) = crate::read_stream(&table.snapshot, &request).await?;
                while let Some(batch) = batches.next().await {
                    let batch = conform(&batch?, &schema)?;
                    if tx.send(Ok(batch)).await.is_err() {
                        break;
                    }
                }
                Ok::<_, Error>(())
            };
            if let Err(e) = read.await {
                let _ = tx.send(Err(DataFusionError::External(Box::new(e)))).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|batch| (batch, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// `batch` with the columns of `schema`, by name: a read that has no rows at all (an
/// incremental read of a table another engine wrote) has no schema of its own, and a column it
/// lacks reads as null.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(
            RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(inlet_table::Error::from)?,
        );
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch
                .column_by_name(field.name())
                .cloned()
                .unwrap_or_else(|| new_null_array(field.data_type(), batch.num_rows()));
            if column.data_type() == field.data_type() {
                Ok(column)
            } else {
                // A value the column's type cannot hold is an error, never a null.
                let options = arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                arrow::compute::cast_with_options(&column, field.data_type(), &options)
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(inlet_table::Error::from)?;
    Ok(RecordBatch::try_new(schema.clone(), columns).map_err(inlet_table::Error::from)?)
}

#[derive(Debug, Clone, Copy)]
enum FunctionKind {
    AsOf,
    Changes,
}

/// `table_as_of` and `table_changes`.
#[derive(Debug)]
struct ReadFunction {
    tables: Arc<BTreeMap<String, Arc<Registered>>>,
    kind: FunctionKind,
}

impl ReadFunction {
    fn name(&self) -> &'static str {
        match self.kind {
            FunctionKind::AsOf => "table_as_of",
            FunctionKind::Changes => "table_changes",
        }
    }

    fn usage(&self) -> &'static str {
        match self.kind {
            FunctionKind::AsOf => "table_as_of('schema.table', 'INSTANT')",
            FunctionKind::Changes => {
                "table_changes('schema.table', ['latest_state' | 'cdc',] 'FROM'[, 'TO'])"
            }
        }
    }
}

impl TableFunctionImpl for ReadFunction {
    fn call_with_args(
        &self,
        args: datafusion::catalog::TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let texts: Vec<String> = args
            .exprs()
            .iter()
            .map(|e| match e {
                Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Ok(s.clone()),
                other => Err(DataFusionError::Plan(format!(
                    "{}: arguments are string literals, not {other}; usage: {}",
                    self.name(),
                    self.usage()
                ))),
            })
            .collect::<datafusion::common::Result<_>>()?;
        // Hudi's `hudi_table_changes('t', 'cdc' | 'latest_state', FROM[, TO])` form: the mode
        // comes second; without it the records' latest state is read.
        let mut texts = texts;
        let cdc = matches!(self.kind, FunctionKind::Changes)
            && texts.len() > 1
            && match texts[1].to_ascii_lowercase().as_str() {
                "cdc" => {
                    texts.remove(1);
                    true
                }
                "latest_state" => {
                    texts.remove(1);
                    false
                }
                _ => false,
            };
        let arity = match self.kind {
            FunctionKind::AsOf => 2..=2,
            FunctionKind::Changes => 2..=3,
        };
        if !arity.contains(&texts.len()) {
            return Err(DataFusionError::Plan(format!(
                "{} takes {} arguments; usage: {}",
                self.name(),
                if texts.len() < *arity.start() {
                    "more"
                } else {
                    "fewer"
                },
                self.usage()
            )));
        }
        let Some(table) = self.tables.get(&texts[0]) else {
            return Err(DataFusionError::Plan(format!(
                "{}: no table {:?}; the tables are: {}",
                self.name(),
                texts[0],
                self.tables.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        let mut request = ReadRequest {
            meta: table.meta,
            read_optimized: table.read_optimized,
            ..ReadRequest::default()
        };
        match self.kind {
            FunctionKind::AsOf => request.as_of = Some(texts[1].clone()),
            FunctionKind::Changes => {
                request.from = Some(texts[1].clone());
                request.to = texts.get(2).cloned();
                request.changes = cdc;
                request.meta &= !cdc;
                request.read_optimized &= !cdc;
            }
        }
        // A bad instant is an error now, naming it, not an empty result.
        request
            .query()
            .map_err(|e| DataFusionError::Plan(format!("{}: {e}", self.name())))?;
        let schema = if cdc {
            let data = table
                .snapshot
                .schema()
                .cloned()
                .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
            inlet_table::cdc::record_schema(&data, inlet_table::cdc::INSTANT)
        } else {
            table.schema.clone()
        };
        Ok(Arc::new(LakeTable {
            table: table.clone(),
            request,
            schema,
        }))
    }
}
