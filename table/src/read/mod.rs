//! Reading a table: snapshot (latest slices), time travel (slices as of an instant) and
//! incremental (the latest state of records changed by commits in `(from, to]`). Every file's rows
//! are aligned to one schema, so files written before a schema change read back with nulls for
//! added columns and widened values.

mod base_file;

pub use base_file::{read_base_file, read_base_file_schema, read_footer};

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::file_group::{BlockContent, FileSlice, FileSystemView, SliceRead, read_log_blocks};
use crate::merge::Ordering;
use crate::schema::{self, COMMIT_TIME};
use crate::storage::Storage;
use crate::timeline::{InstantTime, Timeline};

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

/// How many file slices are read at once.
const READ_CONCURRENCY: usize = 8;

/// Runs a query on the file-system view of `timeline`. `ordering` merges merge-on-read slices;
/// `read_optimized` reads base files only.
pub async fn read_view(
    storage: &Storage,
    timeline: &Timeline,
    view: &FileSystemView,
    ordering: &Ordering,
    query: &Query,
    read_optimized: bool,
) -> Result<ReadResult> {
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
    let (slices, window): (Vec<FileSlice<'_>>, Option<(InstantTime, InstantTime)>) = match query {
        Query::Snapshot => (view.latest_slices(None), None),
        Query::AsOf(t) => (view.latest_slices(Some(t)), None),
        Query::Incremental { from, to } => {
            let Some(to) = to
                .clone()
                .or_else(|| timeline.latest_completed_write().map(|i| i.time.clone()))
            else {
                return Ok(ReadResult {
                    schema: Arc::new(Schema::empty()),
                    batches: Vec::new(),
                });
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
            (slices, Some((from.clone(), to)))
        }
    };
    let as_of = match (query, &window) {
        (Query::AsOf(t), _) => Some(t),
        (_, Some((_, to))) => Some(to),
        _ => None,
    };
    let window = window.as_ref().map(|(from, to)| (from, to));
    let reader = SliceRead {
        storage,
        timeline,
        ordering,
        as_of,
        window,
        read_optimized,
    };
    let mut read: Vec<(InstantTime, Vec<RecordBatch>)> = futures::stream::iter(&slices)
        .map(|slice| async move {
            Ok::<_, Error>((slice.base_instant.clone(), reader.read(slice).await?))
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    // The newest file's schema, widened by older ones, is the schema of the result.
    read.sort_by(|a, b| b.0.cmp(&a.0));
    // The schema inlet recorded, when there is one, gives the exact column types (log blocks
    // carry zone-less timestamps as UTC for hudi-rs).
    let recorded = match timeline.latest_completed_write() {
        Some(latest) => timeline
            .commit_metadata(storage, latest)
            .await?
            .arrow_schema(),
        None => None,
    };
    // Files name columns physically (Avro-valid); the result has the names they were written
    // with.
    let (schema, logical) = match recorded {
        Some(recorded) => (
            schema::with_meta_columns(schema::physical(&recorded)?.as_ref()),
            Some(schema::with_meta_columns(&recorded)),
        ),
        None => (
            result_schema(
                read.iter()
                    .flat_map(|(_, batches)| batches.first().map(|b| b.schema())),
            ),
            None,
        ),
    };
    let mut batches = Vec::new();
    for (_, file_batches) in read {
        for batch in file_batches {
            let batch = schema::align(&batch, &schema)?;
            let batch = match &window {
                Some((from, to)) => filter_commit_time(&batch, from, to)?,
                None => batch,
            };
            if batch.num_rows() > 0 {
                batches.push(match &logical {
                    Some(logical) => schema::rename(&batch, logical)?,
                    None => batch,
                });
            }
        }
    }
    Ok(ReadResult {
        schema: logical.unwrap_or(schema),
        batches,
    })
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
                    (name == "earliestCommitToRetain").then(|| match value {
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
                .filter(|w| w.time < clean.time)
                .next_back()
                .map(|w| w.time.clone()),
        };
        earliest = earliest.max(floor);
    }
    Ok(earliest)
}
