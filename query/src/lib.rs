//! Read paths for users of inlet tables: snapshot, time travel and incremental queries with column
//! selection, and the output formats of `inlet read` (JSON lines, CSV, a text table).

#[cfg(feature = "glue")]
pub mod catalog;
#[cfg(feature = "delta")]
pub mod mirror;
mod output;
#[cfg(any(feature = "delta", feature = "glue"))]
mod spark;
#[cfg(feature = "sql")]
pub mod sql;

pub use output::{BatchWriter, Format, write_batches};

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use inlet_table::read::Query;
use inlet_table::schema::is_meta_column;
use inlet_table::{InstantTime, Snapshot, Table};

/// Errors of the query crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Table(#[from] inlet_table::Error),
    #[error("unknown column {column:?}; the table has: {available}")]
    UnknownColumn { column: String, available: String },
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("{0}")]
    Sql(String),
    #[error("{0}")]
    Mirror(String),
    #[error("{0}")]
    Catalog(String),
    #[error("cannot write {format}: {reason}")]
    Output {
        format: &'static str,
        reason: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A user's read request.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    pub as_of: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Columns to return, in this order (all data columns when `None`).
    pub columns: Option<Vec<String>>,
    /// Whether to include the `_hoodie_*` meta columns.
    pub meta: bool,
    /// Base files only (merge-on-read tables: the state as of each file group's latest base file).
    pub read_optimized: bool,
    /// A change query over `(from, to]`: every change with its before and after image.
    pub changes: bool,
    /// Only these file groups (`None`: all); a query engine reads the others another way.
    pub file_groups: Option<Arc<std::collections::HashSet<inlet_table::file_group::GroupKey>>>,
    /// Only the records of these record keys (`None`: all): a query that fixes the key.
    pub keys: Option<Arc<std::collections::HashSet<String>>>,
}

impl ReadRequest {
    fn query(&self) -> Result<Query> {
        let instant = |s: &str| -> Result<InstantTime> {
            // Hudi's name for "before every commit" (`hudi_table_changes(…, 'earliest')`).
            let s = if s.eq_ignore_ascii_case("earliest") {
                "00000000000000000"
            } else {
                s
            };
            let bad = || {
                Error::InvalidQuery(format!(
                    "{s:?} is not an instant time (yyyyMMddHHmmssSSS, a real UTC date and time)"
                ))
            };
            let time: InstantTime = s.parse().map_err(|_| bad())?;
            // Zero is "before every commit" (Hudi's own earliest instant); anything else must
            // be a date that exists, or a typo would silently select nothing.
            if !(time.as_str().bytes().all(|b| b == b'0') || time.to_datetime().is_some()) {
                return Err(bad());
            }
            Ok(time)
        };
        match (&self.as_of, &self.from, &self.to) {
            (None, None, None) => Ok(Query::Snapshot),
            (Some(t), None, None) => Ok(Query::AsOf(instant(t)?)),
            (None, Some(from), to) => {
                let from = instant(from)?;
                let to = to.as_deref().map(instant).transpose()?;
                if let Some(to) = to.as_ref().filter(|to| **to < from) {
                    return Err(Error::InvalidQuery(format!(
                        "--from {from} is later than --to {to}: the window (from, to] is empty"
                    )));
                }
                Ok(Query::Incremental { from, to })
            }
            (Some(_), Some(_), _) => Err(Error::InvalidQuery(
                "--as-of and --from cannot be combined".into(),
            )),
            (_, None, Some(_)) => Err(Error::InvalidQuery("--to needs --from".into())),
        }
    }
}

/// Runs a read and shapes the result: meta columns only when asked for, selected columns only.
pub async fn read(table: &Table, request: &ReadRequest) -> Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let snapshot = table.snapshot().await?;
    let (schema, batches) = read_stream(&snapshot, request).await?;
    Ok((schema, batches.try_collect().await?))
}

/// [`read`] as a stream of batches, file slice by file slice: memory stays bounded by a few file
/// groups whatever the table's size.
pub async fn read_stream<'a>(
    snapshot: &'a Snapshot,
    request: &ReadRequest,
) -> Result<(Arc<Schema>, BoxStream<'a, Result<RecordBatch>>)> {
    let query = request.query()?;
    if request.changes {
        let (schema, batches) = read_changes(snapshot, request, &query).await?;
        return Ok((
            schema,
            futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
        ));
    }
    // Base files decode only the selected columns (names in files).
    let decoded: Option<Arc<[String]>> = request.columns.as_ref().map(|columns| {
        let meta = inlet_table::schema::META_COLUMNS
            .iter()
            .filter(|_| request.meta)
            .map(|c| c.to_string());
        columns
            .iter()
            .map(|c| inlet_table::schema::physical_name(c).into_owned())
            .chain(meta)
            .collect()
    });
    let scope = inlet_table::read::Scope {
        read_optimized: request.read_optimized,
        only: request.file_groups.as_deref(),
        columns: decoded,
        keys: request.keys.clone(),
    };
    let stream = snapshot.read_stream_of(&query, scope).await?;
    let indices = projection(&stream.schema, request)?;
    let projected = Arc::new(
        stream
            .schema
            .project(&indices)
            .map_err(inlet_table::Error::from)?,
    );
    let batches = stream
        .batches
        .map(move |batch| {
            batch
                .map_err(Error::Table)?
                .project(&indices)
                .map_err(|e| Error::Table(e.into()))
        })
        .boxed();
    Ok((projected, batches))
}

/// A change query: `op`, `instant`, `before` and `after`, the images narrowed to the selected
/// columns.
async fn read_changes(
    snapshot: &Snapshot,
    request: &ReadRequest,
    query: &Query,
) -> Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let Query::Incremental { from, to } = query else {
        return Err(Error::InvalidQuery(
            "--changes needs --from (and takes --to): the changes of the commits in (from, to]"
                .into(),
        ));
    };
    if request.meta || request.read_optimized {
        return Err(Error::InvalidQuery(
            "--changes returns op, instant, before and after (data columns): it takes neither \
             --meta nor --read-optimized"
                .into(),
        ));
    }
    let result = snapshot.read_changes(from, to.as_ref()).await?;
    let Some(columns) = &request.columns else {
        return Ok((result.schema, result.batches));
    };
    let image = match result
        .schema
        .field_with_name(inlet_table::cdc::AFTER)
        .map(|f| f.data_type())
    {
        Ok(arrow::datatypes::DataType::Struct(fields)) => fields.clone(),
        _ => Default::default(),
    };
    let indices = columns
        .iter()
        .map(|c| {
            image
                .find(c)
                .map(|(i, _)| i)
                .ok_or_else(|| Error::UnknownColumn {
                    column: c.clone(),
                    available: image
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let narrow = |batch: &RecordBatch| -> Result<RecordBatch> {
        let columns = batch
            .columns()
            .iter()
            .map(
                |c| match c.as_any().downcast_ref::<arrow::array::StructArray>() {
                    Some(image) => {
                        let fields: arrow::datatypes::Fields =
                            indices.iter().map(|&i| image.fields()[i].clone()).collect();
                        let children = indices.iter().map(|&i| image.column(i).clone()).collect();
                        let nulls = arrow::array::Array::nulls(image).cloned();
                        arrow::array::StructArray::try_new(fields, children, nulls)
                            .map(|a| Arc::new(a) as arrow::array::ArrayRef)
                    }
                    None => Ok(c.clone()),
                },
            )
            .collect::<Result<Vec<_>, _>>()
            .map_err(inlet_table::Error::from)?;
        let schema = Arc::new(Schema::new(
            batch
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
                .collect::<Vec<_>>(),
        ));
        Ok(RecordBatch::try_new(schema, columns).map_err(inlet_table::Error::from)?)
    };
    let empty = narrow(&RecordBatch::new_empty(result.schema.clone()))?;
    let batches = result
        .batches
        .iter()
        .map(narrow)
        .collect::<Result<Vec<_>>>()?;
    Ok((empty.schema(), batches))
}

/// The columns a request selects: meta columns only when asked for, selected columns only.
fn projection(schema: &Schema, request: &ReadRequest) -> Result<Vec<usize>> {
    let mut indices: Vec<usize> = Vec::new();
    match &request.columns {
        Some(columns) => {
            if request.meta {
                indices.extend(
                    schema
                        .fields()
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| is_meta_column(f.name()))
                        .map(|(i, _)| i),
                );
            }
            for column in columns {
                let index = schema.index_of(column).map_err(|_| Error::UnknownColumn {
                    column: column.clone(),
                    available: data_columns(schema).join(", "),
                })?;
                if !indices.contains(&index) {
                    indices.push(index);
                }
            }
        }
        None => indices.extend(
            schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| request.meta || !is_meta_column(f.name()))
                .map(|(i, _)| i),
        ),
    }
    Ok(indices)
}

fn data_columns(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter(|f| !is_meta_column(f.name()))
        .map(|f| f.name().clone())
        .collect()
}
