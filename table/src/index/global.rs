//! The global key index: a record key lives in at most one partition of a table (Hudi's global
//! index with `update.partition.path=true`). A delete that names only the key removes it wherever
//! it is stored; a change that moves a key to another partition deletes it from the partition it
//! leaves, in the same commit; a change that loses against the stored version of its key (an
//! older event) is dropped, wherever that version is.
//!
//! Finding where keys are stored reads no table data for keys that are not there. A key's bucket
//! is the same in every partition, so only that bucket's file group of each partition can hold
//! it; the bloom filter and min/max record keys in the footer of that file group's base file, and
//! the keys of its log files, rule out every file group but the ones that do (and rare false
//! positives, at Hudi's default rate of 1e-9). Only a file group that may hold a moving key is
//! read, to compare the stored version with the change. Filters are cached per file (a file never
//! changes once written), up to a byte budget, so a long-running writer reads each footer once.
//!
//! Cost of a commit on a partitioned table, with `p` partitions and the `b` buckets its keys fall
//! in: `p × b` footer reads (and the log files of those file groups) the first time, none once
//! cached; then one bloom probe per key and partition (the key is hashed once); then one read of
//! each file group that really holds a key moving out of it (a copy-on-write commit rewrites that
//! file group anyway). On a non-partitioned table only deletes are looked up (a delete of a key
//! that is stored nowhere does nothing, partitioned or not).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt};

use crate::bloom::{
    BLOOM_FILTER_KEY, BLOOM_FILTER_TYPE_KEY, BloomFilter, KeyHashes, MAX_RECORD_KEY, MIN_RECORD_KEY,
};
use crate::error::{Error, Result};
use crate::file_group::{
    BlockContent, FileGroup, FileSlice, FileSystemView, SliceRead, file_path, read_log_blocks,
};
use crate::merge::{Ordering, OrderingValues, Version, wins};
use crate::read::read_footer;
use crate::schema::{self, RECORD_KEY};
use crate::storage::Storage;
use crate::timeline::Timeline;
use crate::write::plan::{Plan, Relocation, incoming_ordering};

use super::bucket_of_file_id;

/// What finding where a commit's keys are stored cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// (key, file group) pairs checked against filters.
    pub probes: usize,
    /// Files whose filters were read (not in the cache).
    pub filters_read: usize,
    /// File groups read to compare stored versions of moving keys.
    pub groups_read: usize,
    pub elapsed: std::time::Duration,
}

/// Default byte budget of the filter cache.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Files whose filters are loaded at once.
const LOAD_PARALLELISM: usize = 8;

/// Which keys a file may hold.
#[derive(Debug)]
enum KeyFilter {
    /// A base file: its footer's bloom filter and min/max record keys.
    Bloom {
        bloom: BloomFilter,
        min: Option<String>,
        max: Option<String>,
    },
    /// A log file: the keys of its data blocks, exactly.
    Keys(HashSet<String>),
    /// No filter (a base file written without one): every key may be there.
    Any,
}

impl KeyFilter {
    fn may_contain(&self, key: &str, hashes: &mut Option<KeyHashes>) -> bool {
        match self {
            KeyFilter::Bloom { bloom, min, max } => {
                if min.as_deref().is_some_and(|m| key < m)
                    || max.as_deref().is_some_and(|m| key > m)
                {
                    return false;
                }
                if hashes.as_ref().is_none_or(|h| h.len() < bloom.hash_count()) {
                    *hashes = Some(KeyHashes::new(key, bloom.hash_count().max(32)));
                }
                hashes
                    .as_ref()
                    .is_none_or(|h| bloom.might_contain_hashes(h))
            }
            KeyFilter::Keys(keys) => keys.contains(key),
            KeyFilter::Any => true,
        }
    }

    fn size_bytes(&self) -> usize {
        match self {
            KeyFilter::Bloom { bloom, min, max } => {
                bloom.size_bytes()
                    + min.as_ref().map_or(0, String::len)
                    + max.as_ref().map_or(0, String::len)
            }
            KeyFilter::Keys(keys) => keys.iter().map(|k| k.len() + 32).sum(),
            KeyFilter::Any => 0,
        }
    }
}

/// The filters of files, by table-relative path and size (a path reused after a rollback deleted
/// its file has another size, and [`KeyIndex::forget`] is called on rollbacks anyway).
#[derive(Debug, Default)]
struct FilterCache {
    filters: HashMap<(String, u64), Arc<KeyFilter>>,
    /// Insertion order, for eviction.
    order: VecDeque<(String, u64)>,
    bytes: usize,
}

/// The global key index of one writer (see the module documentation).
#[derive(Debug)]
pub struct KeyIndex {
    cache: FilterCache,
    budget: usize,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::new(DEFAULT_CACHE_BYTES)
    }
}

/// One key to find: the row it stands for, its record key and bucket, and a partition whose file
/// groups are left out (where a change goes: its own version there is no move).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    pub row: usize,
    pub key: &'a str,
    pub bucket: u32,
    pub skip_partition: Option<&'a str>,
}

/// Where probes' keys may be: (row, file group number) pairs into `groups` and `slices`.
#[derive(Debug)]
pub(crate) struct Located<'v> {
    pub groups: Vec<&'v FileGroup>,
    pub slices: Vec<Option<FileSlice<'v>>>,
    pub hits: Vec<(usize, usize)>,
    pub stats: LookupStats,
}

/// One file of a candidate file group.
#[derive(Debug, Clone)]
struct FileRef {
    path: String,
    size: u64,
    base: bool,
}

impl KeyIndex {
    pub fn new(budget: usize) -> Self {
        KeyIndex {
            cache: FilterCache::default(),
            budget,
        }
    }

    /// Drops every cached filter (after a rollback, when file names may be reused).
    pub fn forget(&mut self) {
        self.cache = FilterCache::default();
    }

    /// Which file groups may hold each probe's key: every live file group of the key's bucket
    /// (but those in the probe's `skip_partition`) whose filters do not rule the key out.
    pub(crate) async fn locate<'v>(
        &mut self,
        storage: &Storage,
        view: &'v FileSystemView,
        probes: &[Probe<'_>],
    ) -> Result<Located<'v>> {
        let mut stats = LookupStats::default();
        // The (bucket) file groups, numbered, with their partitions numbered too (compared as
        // numbers in the probe loop).
        let mut partition_ids: HashMap<&str, u32> = HashMap::new();
        let mut groups: Vec<&FileGroup> = Vec::new();
        let mut partition_of: Vec<u32> = Vec::new();
        let mut by_bucket: HashMap<u32, Vec<usize>> = HashMap::new();
        for group in view.live_file_groups() {
            let Some(bucket) = bucket_of_file_id(&group.file_id) else {
                continue;
            };
            let next = partition_ids.len() as u32;
            let pid = *partition_ids
                .entry(group.partition.as_str())
                .or_insert(next);
            by_bucket.entry(bucket).or_default().push(groups.len());
            groups.push(group);
            partition_of.push(pid);
        }
        // Only the file groups some probe may find its key in are loaded: those of the buckets
        // probed, but for the partition every probe of a bucket skips (an upsert into a table
        // without partitions reads no filter at all).
        let skip_id = |p: &Probe<'_>| {
            p.skip_partition
                .map(|name| partition_ids.get(name).copied().unwrap_or(u32::MAX))
        };
        let mut skipped: HashMap<u32, Option<u32>> = HashMap::new();
        for probe in probes {
            let skip = skip_id(probe);
            skipped
                .entry(probe.bucket)
                .and_modify(|s| {
                    if *s != skip {
                        *s = None;
                    }
                })
                .or_insert(skip);
        }
        let mut slices: Vec<Option<FileSlice<'v>>> = vec![None; groups.len()];
        for (bucket, skip) in &skipped {
            for &gid in by_bucket.get(bucket).map_or(&[][..], Vec::as_slice) {
                if Some(partition_of[gid]) != *skip {
                    slices[gid] = groups[gid].latest_slice(None);
                }
            }
        }
        let wanted: Vec<FileRef> = slices.iter().flatten().flat_map(slice_files).collect();
        let (filters, read) = self.filters(storage, wanted).await?;
        stats.filters_read = read;
        let any = Arc::new(KeyFilter::Any);
        let group_filters: Vec<Vec<Arc<KeyFilter>>> = slices
            .iter()
            .map(|slice| {
                slice
                    .iter()
                    .flat_map(slice_files)
                    .map(|f| filters.get(&(f.path, f.size)).unwrap_or(&any).clone())
                    .collect()
            })
            .collect();
        // Probe (each key hashed once, lazily).
        let mut hits = Vec::new();
        for probe in probes {
            let Some(gids) = by_bucket.get(&probe.bucket) else {
                continue;
            };
            let skip = skip_id(probe);
            let mut hashes = None;
            for &gid in gids {
                if Some(partition_of[gid]) == skip {
                    continue;
                }
                stats.probes += 1;
                if group_filters[gid]
                    .iter()
                    .any(|f| f.may_contain(probe.key, &mut hashes))
                {
                    hits.push((probe.row, gid));
                }
            }
        }
        Ok(Located {
            groups,
            slices,
            hits,
            stats,
        })
    }

    /// Where the plan's keys are stored, as a [`Relocation`] of the plan: deletes go to the
    /// partitions that hold their keys; a change whose key is stored in another partition deletes
    /// it there, unless the stored version wins, in which case the change is dropped.
    pub async fn relocation(
        &mut self,
        storage: &Storage,
        timeline: &Timeline,
        view: &FileSystemView,
        plan: &Plan,
        ordering: &Ordering,
        data_schema: &SchemaRef,
    ) -> Result<(Relocation, LookupStats)> {
        let started = std::time::Instant::now();
        let mut relocation = Relocation::default();
        // Deletes are placed where their keys are found below, or nowhere.
        relocation.dropped = plan
            .winners
            .iter()
            .copied()
            .filter(|&r| plan.deletes.value(r))
            .collect();
        // A delete is looked for everywhere; a change in the partitions it does not go to.
        let probes: Vec<Probe<'_>> = plan
            .winners
            .iter()
            .map(|&row| Probe {
                row,
                key: plan.keys.value(row),
                bucket: plan.bucket(row),
                skip_partition: (!plan.deletes.value(row)).then(|| plan.partitions.value(row)),
            })
            .collect();
        let located = self.locate(storage, view, &probes).await?;
        let mut stats = located.stats;
        let mut to_confirm: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(row, gid) in &located.hits {
            let partition = &located.groups[gid].partition;
            match ordering {
                // A delete goes wherever its key may be; a change wins over any stored version
                // when the latest write wins: no need to read it.
                _ if plan.deletes.value(row) => {
                    relocation.deletes_at.push((row, partition.to_string()))
                }
                Ordering::CommitTime => relocation.deletes_at.push((row, partition.to_string())),
                Ordering::EventTime(_) => to_confirm.entry(gid).or_default().push(row),
            }
        }
        // Read the file groups that may hold moving keys and compare the stored versions.
        let read = SliceRead::latest(storage, timeline, ordering);
        let mut stale = HashSet::new();
        for (gid, rows) in to_confirm {
            let Some(slice) = &located.slices[gid] else {
                continue;
            };
            let partition = &located.groups[gid].partition;
            let batches = read.read(slice).await?;
            stats.groups_read += 1;
            let stored = stored_versions(&batches, plan, &rows, data_schema, ordering)?;
            for (row, outcome) in stored {
                match outcome {
                    Stored::Absent => {}
                    Stored::Loses => relocation.deletes_at.push((row, partition.to_string())),
                    Stored::Wins => {
                        stale.insert(row);
                    }
                }
            }
        }
        if !stale.is_empty() {
            // A stale change moves nothing: neither the delete nor the write happen.
            relocation
                .deletes_at
                .retain(|(row, _)| !stale.contains(row));
            relocation.dropped.extend(stale);
        }
        relocation.dropped.sort_unstable();
        relocation.deletes_at.sort();
        stats.elapsed = started.elapsed();
        Ok((relocation, stats))
    }

    /// The stored records of `keys` (record keys), read from the file groups that may hold them
    /// only: meta and data columns, as the files name them.
    pub async fn lookup(
        &mut self,
        storage: &Storage,
        timeline: &Timeline,
        view: &FileSystemView,
        ordering: &Ordering,
        buckets: u32,
        hash_fields: &[String],
        keys: &HashSet<crate::RecordKey>,
    ) -> Result<(Vec<RecordBatch>, LookupStats)> {
        let started = std::time::Instant::now();
        let keys: Vec<&crate::RecordKey> = keys.iter().collect();
        let probes: Vec<Probe<'_>> = keys
            .iter()
            .enumerate()
            .map(|(row, key)| Probe {
                row,
                key,
                bucket: super::bucket_id(key, hash_fields, buckets),
                skip_partition: None,
            })
            .collect();
        let located = self.locate(storage, view, &probes).await?;
        let mut stats = located.stats;
        let mut rows_of: HashMap<usize, HashSet<&str>> = HashMap::new();
        for &(row, gid) in &located.hits {
            rows_of.entry(gid).or_default().insert(keys[row].as_str());
        }
        let read = SliceRead::latest(storage, timeline, ordering);
        let mut out = Vec::new();
        for (gid, wanted) in rows_of {
            let Some(slice) = &located.slices[gid] else {
                continue;
            };
            stats.groups_read += 1;
            for batch in read.read(slice).await? {
                let Some(column) = batch.column_by_name(RECORD_KEY) else {
                    continue;
                };
                let column = column.as_string::<i32>();
                let keep: arrow::array::BooleanArray = column
                    .iter()
                    .map(|k| Some(k.is_some_and(|k| wanted.contains(k))))
                    .collect();
                let found = arrow::compute::filter_record_batch(&batch, &keep)?;
                if found.num_rows() > 0 {
                    out.push(found);
                }
            }
        }
        stats.elapsed = started.elapsed();
        Ok((out, stats))
    }

    /// The filters of `files`, from the cache or loaded, and how many were loaded.
    async fn filters(
        &mut self,
        storage: &Storage,
        files: Vec<FileRef>,
    ) -> Result<(HashMap<(String, u64), Arc<KeyFilter>>, usize)> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for file in files {
            let key = (file.path.clone(), file.size);
            match self.cache.filters.get(&key) {
                Some(filter) => {
                    found.insert(key, filter.clone());
                }
                None => missing.push(file),
            }
        }
        let loaded: Vec<(FileRef, KeyFilter)> = futures::stream::iter(missing)
            .map(|file| async move {
                let filter = if file.base {
                    base_file_filter(storage, &file).await?
                } else {
                    log_file_filter(storage, &file).await?
                };
                Ok::<_, Error>((file, filter))
            })
            .buffer_unordered(LOAD_PARALLELISM)
            .try_collect()
            .await?;
        let read = loaded.len();
        for (file, filter) in loaded {
            let key = (file.path, file.size);
            let filter = Arc::new(filter);
            self.insert(key.clone(), filter.clone());
            found.insert(key, filter);
        }
        Ok((found, read))
    }

    fn insert(&mut self, key: (String, u64), filter: Arc<KeyFilter>) {
        let size = filter.size_bytes() + key.0.len();
        if size > self.budget {
            return;
        }
        while self.cache.bytes + size > self.budget {
            let Some(oldest) = self.cache.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.cache.filters.remove(&oldest) {
                self.cache.bytes -= evicted.size_bytes() + oldest.0.len();
            }
        }
        if self.cache.filters.insert(key.clone(), filter).is_none() {
            self.cache.order.push_back(key);
            self.cache.bytes += size;
        }
    }
}

/// The files of a slice whose keys it may hold.
fn slice_files<'a>(slice: &'a FileSlice<'_>) -> impl Iterator<Item = FileRef> + 'a {
    let base = slice.base_file.map(|b| FileRef {
        path: file_path(slice.partition, &b.file_name()),
        size: b.size,
        base: true,
    });
    let logs = slice.log_files.iter().map(|l| FileRef {
        path: file_path(slice.partition, &l.file_name()),
        size: l.size,
        base: false,
    });
    base.into_iter().chain(logs)
}

/// A base file's bloom filter and min/max keys, from its footer (two range reads).
async fn base_file_filter(storage: &Storage, file: &FileRef) -> Result<KeyFilter> {
    let metadata = read_footer(storage, &file.path, file.size).await?;
    let kv: HashMap<&str, &str> = metadata
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?)))
        .collect();
    let (Some(encoded), Some(Ok(kind))) = (
        kv.get(BLOOM_FILTER_KEY),
        kv.get(BLOOM_FILTER_TYPE_KEY).map(|k| k.parse()),
    ) else {
        return Ok(KeyFilter::Any);
    };
    let bloom = BloomFilter::from_footer_string(kind, encoded).map_err(|e| Error::CorruptFile {
        path: file.path.clone(),
        reason: e.to_string(),
    })?;
    Ok(KeyFilter::Bloom {
        bloom,
        min: kv.get(MIN_RECORD_KEY).map(|s| s.to_string()),
        max: kv.get(MAX_RECORD_KEY).map(|s| s.to_string()),
    })
}

/// The keys of a log file's data blocks (deleted keys are not stored).
async fn log_file_filter(storage: &Storage, file: &FileRef) -> Result<KeyFilter> {
    let bytes = storage.get(&file.path).await?;
    tokio::task::spawn_blocking(move || {
        let mut keys = HashSet::new();
        for block in read_log_blocks(&bytes)? {
            if let BlockContent::AvroData(batch) | BlockContent::ParquetData(batch) = &block.content
                && let Some(column) = batch.column_by_name(RECORD_KEY)
                && let Some(column) = column.as_string_opt::<i32>()
            {
                keys.extend(column.iter().flatten().map(str::to_string));
            }
        }
        Ok(KeyFilter::Keys(keys))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// What a file group holds of a changed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Absent,
    /// Stored, and the change wins over it.
    Loses,
    /// Stored, and the change is older: it must not be applied.
    Wins,
}

/// Finds the stored versions of `rows`' keys in a slice's records.
fn stored_versions(
    batches: &[RecordBatch],
    plan: &Plan,
    rows: &[usize],
    data_schema: &SchemaRef,
    ordering: &Ordering,
) -> Result<Vec<(usize, Stored)>> {
    let mut outcome: HashMap<&str, (usize, Stored)> = rows
        .iter()
        .map(|&r| (plan.keys.value(r), (r, Stored::Absent)))
        .collect();
    let full_schema = schema::with_meta_columns(data_schema);
    for batch in batches {
        let batch = schema::align(batch, &full_schema)?;
        let Some(keys) = batch.column_by_name(RECORD_KEY) else {
            continue;
        };
        let keys = keys.as_string::<i32>();
        let stored_ordering = match (&plan.ordering_converter, ordering) {
            (Some(converter), Ordering::EventTime(field)) => match batch.column_by_name(field) {
                Some(column) => Some(OrderingValues::new(converter, column)?),
                None => None,
            },
            _ => None,
        };
        for i in 0..batch.num_rows() {
            if !keys.is_valid(i) {
                continue;
            }
            let Some((row, state)) = outcome.get_mut(keys.value(i)) else {
                continue;
            };
            let newer = Version {
                delete: false,
                ordering: incoming_ordering(plan.ordering.as_ref(), &plan.deletes, *row),
            };
            let current = Version {
                delete: false,
                ordering: stored_ordering.as_ref().and_then(|o| o.get(i)),
            };
            *state = if wins(newer, current) {
                Stored::Loses
            } else {
                Stored::Wins
            };
        }
    }
    Ok(outcome.into_values().collect())
}
