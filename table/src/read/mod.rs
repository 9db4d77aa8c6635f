//! Reading a table: snapshot (latest slices), time travel (slices as of an instant) and
//! incremental (the latest state of records changed by commits in `(from, to]`). Every file's rows
//! are aligned to one schema, so files written before a schema change read back with nulls for
//! added columns and widened values.

mod base_file;
mod changes;

pub use base_file::{read_base_file, read_base_file_columns, read_base_file_schema, read_footer};
pub use changes::read_changes;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::file_group::{
    BlockContent, FileSlice, FileSystemView, GroupKey, SliceRead, read_log_blocks,
};
use crate::merge::Ordering;
use crate::schema::{self, COMMIT_TIME};
use crate::storage::Storage;
use crate::timeline::{InstantTime, Timeline};

/// What of a table a read covers.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// Base files only, log files ignored (read-optimized).
    pub read_optimized: bool,
    /// Only these file groups (`None`: all).
    pub only: Option<&'a HashSet<GroupKey>>,
    /// Only these columns decoded from base files (names in files; `None`: all), for tables
    /// whose commits record their schema; the others read as null.
    pub columns: Option<Arc<[String]>>,
    /// Only the records of these keys (`_hoodie_record_key` values; `None`: all).
    pub keys: Option<Arc<HashSet<String>>>,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub enum Query {
    /// The latest committed state.
    #[default]
    Snapshot,
    /// The state as of an instant (time travel).
    AsOf(InstantTime),
    /// Records changed by commits after `from`, up to and including `to` (or the latest).
    Incremental {
        from: InstantTime,
        to: Option<InstantTime>,
    },
}

/// Rows read from a table: meta columns then data columns.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl ReadResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// How many file slices are read at once: one per core (at least two, at most eight).
fn read_concurrency() -> usize {
    // Decoding and merging a slice is CPU work: more slices in flight than cores only holds
    // more of them in memory.
    std::thread::available_parallelism().map_or(4, |n| n.get().clamp(2, 8))
}

/// The rows of a query as a stream of batches, read file slice by file slice: at most
/// [`read_concurrency`] slices are held at once, whatever the table's size.
pub struct ReadStream<'a> {
    pub schema: SchemaRef,
    pub batches: BoxStream<'a, Result<RecordBatch>>,
}

impl std::fmt::Debug for ReadStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// What a query reads: the slices, the incremental window and the instant slices are read as of.
struct Planned<'a> {
    slices: Vec<FileSlice<'a>>,
    window: Option<(InstantTime, InstantTime)>,
    as_of: Option<InstantTime>,
}

/// The slices a query reads (`None`: an incremental read of a table without writes).
async fn plan<'a>(
    storage: &Storage,
    timeline: &Timeline,
    view: &'a FileSystemView,
    query: &Query,
    only: Option<&HashSet<GroupKey>>,
) -> Result<Option<Planned<'a>>> {
    let Some(mut planned) = plan_all(storage, timeline, view, query).await? else {
        return Ok(None);
    };
    if let Some(only) = only {
        planned
            .slices
            .retain(|s| only.contains(&(s.partition.clone(), s.file_id.clone())));
    }
    Ok(Some(planned))
}

/// The slices a query reads, of every file group.
async fn plan_all<'a>(
    storage: &Storage,
    timeline: &Timeline,
    view: &'a FileSystemView,
    query: &Query,
) -> Result<Option<Planned<'a>>> {
    // A query as of an instant whose file versions the cleaner removed would be silently
    // incomplete: refuse it instead.
    let at = match query {
        Query::Snapshot => None,
        Query::AsOf(t) => Some(t.clone()),
        Query::Incremental { to, .. } => to.clone(),
    };
    // A savepoint's instant stays readable: the cleaner keeps its files.
    if let Some(at) = at
        && !timeline.savepoints().any(|s| s.time == at)
        && let Some(earliest) = earliest_readable(storage, timeline).await?
        && at < earliest
    {
        return Err(Error::Cleaned { at, earliest });
    }
    Ok(Some(match query {
        Query::Snapshot => Planned {
            slices: view.latest_slices(None),
            window: None,
            as_of: None,
        },
        Query::AsOf(t) => Planned {
            slices: view.latest_slices(Some(t)),
            window: None,
            as_of: Some(t.clone()),
        },
        Query::Incremental { from, to } => {
            let Some(to) = to
                .clone()
                .or_else(|| timeline.latest_completed_write().map(|i| i.time.clone()))
            else {
                return Ok(None);
            };
            let mut touched = HashSet::new();
            for instant in timeline
                .completed_writes()
                .filter(|i| &i.time > from && i.time <= to)
            {
                let metadata = timeline.commit_metadata(storage, instant).await?;
                for (partition, stats) in &metadata.partition_to_write_stats {
                    for stat in stats {
                        touched.insert((partition.clone(), stat.file_id.clone()));
                    }
                }
            }
            let slices = view
                .latest_slices(Some(&to))
                .into_iter()
                .filter(|s| touched.contains(&(s.partition.to_string(), s.file_id.to_string())))
                .collect();
            Planned {
                slices,
                window: Some((from.clone(), to.clone())),
                as_of: Some(to),
            }
        }
    }))
}

/// The schema inlet recorded with the latest write (exact column types; log blocks carry
/// zone-less timestamps as UTC for hudi-rs), if it did.
async fn recorded_schema(storage: &Storage, timeline: &Timeline) -> Result<Option<Schema>> {
    Ok(match timeline.latest_completed_write() {
        Some(latest) => timeline
            .commit_metadata(storage, latest)
            .await?
            .arrow_schema(),
        None => None,
    })
}

/// Runs a query as a stream of batches (see [`ReadStream`]). Tables written by other engines,
/// whose commits record no Arrow schema, are read whole first: their schema is the widening of
/// every file's.
///
pub async fn read_stream<'a>(
    storage: &'a Storage,
    timeline: &'a Timeline,
    view: &'a FileSystemView,
    ordering: &'a Ordering,
    query: &Query,
    scope: Scope<'_>,
) -> Result<ReadStream<'a>> {
    let recorded = recorded_schema(storage, timeline).await?;
    let planned = plan(storage, timeline, view, query, scope.only).await?;
    // Each slice is read as of the query's instant, within its window.
    let reader = SliceRead {
        read_optimized: scope.read_optimized,
        keys: scope.keys,
        ..SliceRead::latest(storage, timeline, ordering)
    };
    match recorded {
        Some(recorded) => {
            let columns = scope.columns;
            stream_recorded(planned, recorded, SliceRead { columns, ..reader })
        }
        None => {
            let read = read_unrecorded(planned, reader).await?;
            Ok(ReadStream {
                schema: read.schema,
                batches: futures::stream::iter(read.batches.into_iter().map(Ok)).boxed(),
            })
        }
    }
}

/// [`read_stream`] of a table whose latest write recorded its Arrow schema.
fn stream_recorded<'a>(
    planned: Option<Planned<'a>>,
    recorded: Schema,
    reader: SliceRead<'a>,
) -> Result<ReadStream<'a>> {
    // Files name columns physically (Avro-valid); the result has the names they were written
    // with.
    let physical = schema::with_meta_columns(schema::physical(&recorded)?.as_ref());
    let logical = schema::with_meta_columns(&recorded);
    let Some(planned) = planned else {
        return Ok(ReadStream {
            schema: logical,
            batches: futures::stream::empty().boxed(),
        });
    };
    let Planned {
        slices,
        window,
        as_of,
    } = planned;
    let bounds = Arc::new((window, as_of));
    let out = logical.clone();
    let batches = futures::stream::iter(slices)
        .map(move |slice| {
            let bounds = bounds.clone();
            let (physical, logical) = (physical.clone(), logical.clone());
            let reader = reader.clone();
            async move {
                let (window, as_of) = bounds.as_ref();
                let reader = SliceRead {
                    as_of: as_of.as_ref(),
                    window: window.as_ref().map(|(from, to)| (from, to)),
                    ..reader
                };
                let mut out = Vec::new();
                for batch in reader.read(&slice).await? {
                    let batch = schema::align(&batch, &physical)?;
                    let batch = match window {
                        Some((from, to)) => filter_commit_time(&batch, from, to)?,
                        None => batch,
                    };
                    if batch.num_rows() > 0 {
                        out.push(schema::rename(&batch, &logical)?);
                    }
                }
                Ok::<_, Error>(futures::stream::iter(out.into_iter().map(Ok)))
            }
        })
        .buffered(read_concurrency())
        .try_flatten()
        .boxed();
    Ok(ReadStream {
        schema: out,
        batches,
    })
}

/// A query on a table written by another engine: every file's schema counts, the newest first.
async fn read_unrecorded(
    planned: Option<Planned<'_>>,
    reader: SliceRead<'_>,
) -> Result<ReadResult> {
    let Some(Planned {
        slices,
        window,
        as_of,
    }) = planned
    else {
        return Ok(ReadResult {
            schema: Arc::new(Schema::empty()),
            batches: Vec::new(),
        });
    };
    let window = window.as_ref().map(|(from, to)| (from, to));
    let reader = SliceRead {
        as_of: as_of.as_ref(),
        window,
        ..reader
    };
    // By index: a closure taking `&FileSlice` makes rustc ask the future to be `Send` for every
    // lifetime, which it cannot prove (SQL reads run on spawned tasks).
    let slices = &slices;
    let mut read: Vec<(InstantTime, Vec<RecordBatch>)> = futures::stream::iter(0..slices.len())
        .map(|i| read_slice(reader.clone(), &slices[i]))
        .buffered(read_concurrency())
        .try_collect()
        .await?;
    // The newest file's schema, widened by older ones, is the schema of the result.
    read.sort_by(|a, b| b.0.cmp(&a.0));
    let schema = result_schema(
        read.iter()
            .flat_map(|(_, batches)| batches.first().map(|b| b.schema())),
    );
    let mut batches = Vec::new();
    for (_, file_batches) in read {
        for batch in file_batches {
            let batch = schema::align(&batch, &schema)?;
            let batch = match &window {
                Some((from, to)) => filter_commit_time(&batch, from, to)?,
                None => batch,
            };
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
        }
    }
    Ok(ReadResult { schema, batches })
}

/// A slice's rows, with the instant of its base file.
async fn read_slice(
    reader: SliceRead<'_>,
    slice: &FileSlice<'_>,
) -> Result<(InstantTime, Vec<RecordBatch>)> {
    Ok((slice.base_instant.clone(), reader.read(slice).await?))
}

/// Keeps rows whose `_hoodie_commit_time` lies in `(from, to]`.
fn filter_commit_time(
    batch: &RecordBatch,
    from: &InstantTime,
    to: &InstantTime,
) -> Result<RecordBatch> {
    let Some(times) = batch.column_by_name(COMMIT_TIME) else {
        return Ok(batch.clone());
    };
    let keep: BooleanArray = times
        .as_string::<i32>()
        .iter()
        .map(|t| Some(t.is_some_and(|t| t > from.as_str() && t <= to.as_str())))
        .collect();
    Ok(filter_record_batch(batch, &keep)?)
}

fn result_schema(schemas: impl Iterator<Item = SchemaRef>) -> SchemaRef {
    let mut result: Option<SchemaRef> = None;
    for schema in schemas {
        result = Some(match result {
            None => schema,
            Some(current) => schema::evolve(&current, &schema).unwrap_or(current),
        });
    }
    result.unwrap_or_else(|| Arc::new(Schema::empty()))
}

/// The table's current data schema, with the names its columns were written with (see
/// [`schema::physical`] for their names in files): the one the latest completed write recorded,
/// else that of the files it wrote (a base file's footer, or a log file's first data block),
/// without meta columns. `None` for a table without data files.
pub async fn table_schema(storage: &Storage, timeline: &Timeline) -> Result<Option<SchemaRef>> {
    for instant in timeline.completed_writes().rev() {
        let metadata = timeline.commit_metadata(storage, instant).await?;
        if let Some(schema) = metadata.arrow_schema() {
            return Ok(Some(Arc::new(schema)));
        }
        for path in metadata.write_stats().filter_map(|s| s.path.as_deref()) {
            if path.ends_with(".parquet") {
                let schema = read_base_file_schema(storage, path).await?;
                return Ok(Some(schema::without_meta_columns(&schema)));
            }
            let bytes = storage.get(path).await?;
            let blocks = tokio::task::spawn_blocking(move || read_log_blocks(&bytes))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            let data = blocks.iter().find_map(|b| match &b.content {
                BlockContent::AvroData(batch) | BlockContent::ParquetData(batch) => {
                    Some(batch.schema())
                }
                _ => None,
            });
            if let Some(schema) = data {
                return Ok(Some(schema::without_meta_columns(&schema)));
            }
        }
    }
    Ok(None)
}

/// The earliest instant a time-travel query still reads exactly, after cleaning: the latest
/// clean's earliest commit to retain (`earliestCommitToRetain` of its Avro `HoodieCleanMetadata`);
/// for a clean that keeps file versions rather than commits (no such instant), the latest
/// write before it. `None` when nothing was ever cleaned.
pub async fn earliest_readable(
    storage: &Storage,
    timeline: &Timeline,
) -> Result<Option<InstantTime>> {
    let mut earliest: Option<InstantTime> = None;
    for clean in timeline
        .instants()
        .iter()
        .filter(|i| i.action == crate::timeline::Action::Clean && i.is_completed())
    {
        let path = crate::commit::instant_path(clean)?;
        let bytes = storage.get(&path).await?;
        let avro = |e: apache_avro::Error| Error::Avro(format!("{path}: {e}"));
        let mut retain = None;
        for record in apache_avro::Reader::new(&bytes[..]).map_err(avro)? {
            if let apache_avro::types::Value::Record(fields) = record.map_err(avro)? {
                retain = fields.into_iter().find_map(|(name, value)| {
                    (name == "earliestCommitToRetain").then_some(match value {
                        apache_avro::types::Value::String(s) => Some(s),
                        apache_avro::types::Value::Union(_, v) => match *v {
                            apache_avro::types::Value::String(s) => Some(s),
                            _ => None,
                        },
                        _ => None,
                    })?
                });
            }
        }
        let floor = match retain.filter(|s| !s.is_empty()).map(|s| s.parse()) {
            Some(Ok(t)) => Some(t),
            _ => timeline
                .completed_writes()
                .rfind(|w| w.time < clean.time)
                .map(|w| w.time.clone()),
        };
        earliest = earliest.max(floor);
    }
    Ok(earliest)
}
