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

use crate::bloom::{BloomFilter, KeyHashes, MAX_RECORD_KEY, MIN_RECORD_KEY, java_order};
use crate::commit::metadata::KeyRanges;
use crate::error::{Error, Result};
use crate::file_group::{
    BlockContent, FileGroup, FileSlice, FileSystemView, GroupKey, SliceRead, file_path,
    read_log_blocks,
};
use crate::merge::{Ordering, OrderingValues, Version, wins};
use crate::read::read_footer;
use crate::schema::{self, RECORD_KEY};
use crate::snapshot::Snapshot;
use crate::storage::Storage;
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

/// Files whose filters are loaded at once: small range reads, so many in flight hide an object
/// store's latency (a fresh writer of a partitioned table reads one footer per file group of its
/// keys' buckets).
const LOAD_PARALLELISM: usize = 32;

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
                if min.as_deref().is_some_and(|m| java_order(key, m).is_lt())
                    || max.as_deref().is_some_and(|m| java_order(key, m).is_gt())
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

    /// The least and greatest key the file may hold; `None` when unbounded.
    fn bounds(&self) -> Option<(&str, &str)> {
        match self {
            KeyFilter::Bloom {
                min: Some(min),
                max: Some(max),
                ..
            } => Some((min, max)),
            KeyFilter::Keys(keys) => {
                let min = keys.iter().min_by(|a, b| java_order(a, b))?;
                let max = keys.iter().max_by(|a, b| java_order(a, b))?;
                Some((min, max))
            }
            _ => None,
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
    /// The position in the view's change log this index follows: (epoch, position).
    synced: Option<(u64, usize)>,
    /// Per bucket, the live file groups with their filters.
    buckets: HashMap<u32, Bucket>,
    /// Bytes of the filters members hold (besides the file cache's).
    member_bytes: usize,
}

/// The live file groups of one bucket (across partitions) and the key ranges of their files.
/// Members live in numbered slots, so the probe loop touches no hash map.
#[derive(Debug, Default)]
struct Bucket {
    slots: Vec<Slot>,
    /// The slot of each member.
    index: HashMap<GroupKey, usize>,
    /// Slots of members that left, to reuse.
    free: Vec<usize>,
    /// Members whose filters are not loaded: new or changed since they were.
    unloaded: HashSet<usize>,
    /// Key ranges of the members loaded when it was built, as (slot, generation).
    intervals: Option<Intervals<(usize, u64)>>,
    /// Members loaded since `intervals` was built: checked one by one until it is rebuilt.
    fresh: Vec<usize>,
}

/// One member's slot: a generation tells an interval entry of an earlier member of the slot
/// from the current one.
#[derive(Debug)]
struct Slot {
    key: GroupKey,
    generation: u64,
    live: bool,
    fresh: bool,
    member: Member,
}

impl Bucket {
    /// Takes `key` out (its filters' bytes are returned); the slot is free to reuse.
    fn remove(&mut self, key: &GroupKey) -> usize {
        let Some(slot) = self.index.remove(key) else {
            return 0;
        };
        let s = &mut self.slots[slot];
        s.live = false;
        s.fresh = false;
        s.generation += 1;
        let bytes = std::mem::take(&mut s.member).bytes;
        self.unloaded.remove(&slot);
        self.free.push(slot);
        bytes
    }

    /// Adds `key`, its filters to be loaded.
    fn add(&mut self, key: GroupKey) {
        let slot = match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot];
                s.key = key.clone();
                s.generation += 1;
                s.live = true;
                slot
            }
            None => {
                self.slots.push(Slot {
                    key: key.clone(),
                    generation: 0,
                    live: true,
                    fresh: false,
                    member: Member::default(),
                });
                self.slots.len() - 1
            }
        };
        self.index.insert(key, slot);
        self.unloaded.insert(slot);
    }
}

/// A file group's filters (those of its latest slice's files), when loaded.
#[derive(Debug, Default)]
struct Member {
    filters: Option<Vec<Arc<KeyFilter>>>,
    /// The least and greatest key over its files; `None` when some file is unbounded.
    bounds: Option<(String, String)>,
    /// Its key range is known from commit metadata, its filters are not loaded yet: they are
    /// when a probed key falls in the range.
    deferred: bool,
    bytes: usize,
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

/// Where probes' keys may be: (row, file group) pairs.
#[derive(Debug)]
pub(crate) struct Located<'v> {
    pub hits: Vec<(usize, &'v FileGroup)>,
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
            synced: None,
            buckets: HashMap::new(),
            member_bytes: 0,
        }
    }

    /// Drops every cached filter (after a rollback, when file names may be reused).
    pub fn forget(&mut self) {
        self.cache = FilterCache::default();
        self.synced = None;
        self.buckets.clear();
        self.member_bytes = 0;
    }

    /// Follows the view: file groups changed since the last call are marked to be loaded again,
    /// those gone or replaced leave. A view of another epoch (a reload) is taken whole.
    fn sync(&mut self, view: &FileSystemView) {
        let changed = self
            .synced
            .and_then(|(epoch, position)| view.changes_since(epoch, position));
        let keys: Vec<GroupKey> = match changed {
            Some((changed, end)) => {
                self.synced = Some((view.epoch(), end));
                changed.to_vec()
            }
            None => {
                self.buckets.clear();
                self.member_bytes = 0;
                let end = view
                    .changes_since(view.epoch(), 0)
                    .map_or(0, |(_, end)| end);
                self.synced = Some((view.epoch(), end));
                view.live_file_groups()
                    .map(|g| (g.partition.clone(), g.file_id.clone()))
                    .collect()
            }
        };
        for key in keys {
            let Some(bucket) = bucket_of_file_id(&key.1) else {
                continue;
            };
            let entry = self.buckets.entry(bucket).or_default();
            self.member_bytes -= entry.remove(&key);
            if view.live_file_group(&key).is_some() {
                entry.add(key);
            }
        }
    }

    /// Drops members' filters (to be loaded again when needed) until they fit the budget.
    fn shed(&mut self) {
        if self.member_bytes <= self.budget {
            return;
        }
        for bucket in self.buckets.values_mut() {
            for (slot, s) in bucket.slots.iter_mut().enumerate() {
                if s.member.filters.take().is_some() {
                    self.member_bytes -= s.member.bytes;
                    s.member.bytes = 0;
                    s.fresh = false;
                    bucket.unloaded.insert(slot);
                }
            }
            bucket.fresh.clear();
            bucket.intervals = None;
            if self.member_bytes <= self.budget / 2 {
                break;
            }
        }
    }

    /// Which file groups may hold each probe's key: every live file group of the key's bucket
    /// (but those in the probe's `skip_partition`) whose key range and filters do not rule the
    /// key out. The index follows the view's change log, so a commit costs what changed since
    /// the last one (new or changed file groups' filters are loaded when a probe needs them),
    /// not a pass over every file group; a bucket's key ranges are searched as intervals, so
    /// keys that fall in few file groups' ranges (increasing keys, time partitions) are checked
    /// against few filters.
    ///
    /// `ranges` (the key ranges commits recorded for the files they wrote) spares reading the
    /// filters of a file group until a probed key falls in its range.
    pub(crate) async fn locate<'v>(
        &mut self,
        storage: &Storage,
        view: &'v FileSystemView,
        probes: &[Probe<'_>],
        ranges: Option<&KeyRanges>,
    ) -> Result<Located<'v>> {
        let mut stats = LookupStats::default();
        self.sync(view);
        // Which members a probe may need, per bucket: those outside the partition every probe
        // of the bucket skips (an upsert into a table without partitions needs none).
        let mut skipped: HashMap<u32, Option<&str>> = HashMap::new();
        for probe in probes {
            skipped
                .entry(probe.bucket)
                .and_modify(|s| {
                    if *s != probe.skip_partition {
                        *s = None;
                    }
                })
                .or_insert(probe.skip_partition);
        }
        let mut load: Vec<(u32, usize, GroupKey)> = Vec::new();
        for (bucket, skip) in &skipped {
            if let Some(entry) = self.buckets.get(bucket) {
                for &slot in &entry.unloaded {
                    let key = &entry.slots[slot].key;
                    if Some(key.0.as_str()) != *skip {
                        load.push((*bucket, slot, key.clone()));
                    }
                }
            }
        }
        // Members whose files all have a recorded key range wait for a key in that range.
        if let Some(ranges) = ranges {
            let mut waiting = Vec::new();
            load.retain(|(bucket, slot, key)| {
                match view
                    .live_file_group(key)
                    .and_then(|g| recorded_bounds(g, ranges))
                {
                    Some(bounds) => {
                        waiting.push((*bucket, *slot, bounds));
                        false
                    }
                    None => true,
                }
            });
            for (bucket, slot, bounds) in waiting {
                let Some(entry) = self.buckets.get_mut(&bucket) else {
                    continue;
                };
                let s = &mut entry.slots[slot];
                s.member = Member {
                    bounds,
                    deferred: true,
                    ..Member::default()
                };
                s.fresh = true;
                entry.unloaded.remove(&slot);
                entry.fresh.push(slot);
            }
        }
        if !load.is_empty() {
            stats.filters_read += self.load_members(storage, view, load, true).await?;
        }
        // Rebuild a bucket's intervals once enough of its members are fresh.
        for bucket in skipped.keys() {
            let Some(entry) = self.buckets.get_mut(bucket) else {
                continue;
            };
            if entry.intervals.is_none() || entry.fresh.len() > 32.max(entry.index.len() / 16) {
                let ranges = entry.slots.iter_mut().enumerate().filter_map(|(slot, s)| {
                    s.fresh = false;
                    (s.live && (s.member.filters.is_some() || s.member.deferred))
                        .then(|| ((slot, s.generation), s.member.bounds.clone()))
                });
                entry.intervals = Some(Intervals::new(ranges));
                entry.fresh.clear();
            }
        }
        // Which members each probe's key may be in (by key range), and which of them must be
        // loaded first.
        let mut candidates: Vec<(usize, u32, usize)> = Vec::new();
        let mut waiting: Vec<(u32, usize, GroupKey)> = Vec::new();
        let mut found: Vec<usize> = Vec::new();
        let mut ranged: Vec<&(usize, u64)> = Vec::new();
        for (p, probe) in probes.iter().enumerate() {
            let Some(entry) = self.buckets.get(&probe.bucket) else {
                continue;
            };
            found.clear();
            if let Some(intervals) = &entry.intervals {
                ranged.clear();
                intervals.containing(probe.key, &mut ranged);
                // An entry of a member changed (or loaded again) since is stale: fresh members
                // are checked below.
                found.extend(ranged.iter().filter_map(|&&(slot, generation)| {
                    let s = &entry.slots[slot];
                    (s.generation == generation && s.live && !s.fresh).then_some(slot)
                }));
            }
            found.extend(entry.fresh.iter().filter(|&&slot| {
                let s = &entry.slots[slot];
                s.live
                    && s.fresh
                    && s.member.bounds.as_ref().is_none_or(|(min, max)| {
                        java_order(min, probe.key).is_le() && java_order(probe.key, max).is_le()
                    })
            }));
            // A member loaded twice since the intervals were built is listed twice.
            found.sort_unstable();
            found.dedup();
            for &slot in &found {
                let s = &entry.slots[slot];
                if Some(s.key.0.as_str()) == probe.skip_partition {
                    continue;
                }
                if s.member.deferred {
                    waiting.push((probe.bucket, slot, s.key.clone()));
                }
                candidates.push((p, probe.bucket, slot));
            }
        }
        if !waiting.is_empty() {
            waiting.sort_unstable_by_key(|(bucket, slot, _)| (*bucket, *slot));
            waiting.dedup_by_key(|(bucket, slot, _)| (*bucket, *slot));
            stats.filters_read += self.load_members(storage, view, waiting, false).await?;
        }
        // Probe the filters (each key hashed once, lazily).
        let mut hits = Vec::new();
        let mut hashes: (usize, Option<KeyHashes>) = (usize::MAX, None);
        for (p, bucket, slot) in candidates {
            let probe = &probes[p];
            let Some(s) = self.buckets.get(&bucket).map(|e| &e.slots[slot]) else {
                continue;
            };
            let Some(filters) = s.member.filters.as_ref() else {
                continue; // unloaded: in a partition no probe of the bucket needs
            };
            if hashes.0 != p {
                hashes = (p, None);
            }
            stats.probes += 1;
            if filters
                .iter()
                .any(|f| f.may_contain(probe.key, &mut hashes.1))
                && let Some(group) = view.live_file_group(&s.key)
            {
                hits.push((probe.row, group));
            }
        }
        self.shed();
        Ok(Located { hits, stats })
    }

    /// Loads the filters of members; `fresh`: they are new to the key ranges (not yet in the
    /// bucket's intervals). Returns how many files were read.
    async fn load_members(
        &mut self,
        storage: &Storage,
        view: &FileSystemView,
        members: Vec<(u32, usize, GroupKey)>,
        fresh: bool,
    ) -> Result<usize> {
        let files: Vec<FileRef> = members
            .iter()
            .filter_map(|(_, _, key)| view.live_file_group(key)?.latest_slice(None))
            .flat_map(|slice| slice_files(&slice).collect::<Vec<_>>())
            .collect();
        let (loaded, read) = self.filters(storage, files).await?;
        let any = Arc::new(KeyFilter::Any);
        for (bucket, slot, key) in members {
            let Some(group) = view.live_file_group(&key) else {
                continue;
            };
            let filters: Vec<Arc<KeyFilter>> = group
                .latest_slice(None)
                .iter()
                .flat_map(slice_files)
                .map(|f| loaded.get(&(f.path, f.size)).unwrap_or(&any).clone())
                .collect();
            let bytes = filters.iter().map(|f| f.size_bytes()).sum::<usize>();
            let Some(entry) = self.buckets.get_mut(&bucket) else {
                continue;
            };
            let s = &mut entry.slots[slot];
            if fresh {
                s.member.bounds = group_bounds(&filters);
                s.fresh = true;
                entry.fresh.push(slot);
            }
            s.member.filters = Some(filters);
            s.member.deferred = false;
            s.member.bytes = bytes;
            self.member_bytes += bytes;
            entry.unloaded.remove(&slot);
        }
        Ok(read)
    }

    /// Where the plan's keys are stored, as a [`Relocation`] of the plan: deletes go to the
    /// partitions that hold their keys; a change whose key is stored in another partition deletes
    /// it there, unless the stored version wins, in which case the change is dropped.
    pub async fn relocation(
        &mut self,
        snapshot: &Snapshot,
        plan: &Plan,
        data_schema: &SchemaRef,
    ) -> Result<(Relocation, LookupStats)> {
        let started = std::time::Instant::now();
        let (storage, timeline, view) = (
            snapshot.table().storage(),
            snapshot.timeline(),
            snapshot.view(),
        );
        let ordering = snapshot.ordering();
        // Deletes are placed where their keys are found below, or nowhere.
        let mut relocation = Relocation {
            dropped: plan
                .winners
                .iter()
                .copied()
                .filter(|&r| plan.deletes.value(r))
                .collect(),
            ..Relocation::default()
        };
        if view.live_file_groups().next().is_none() {
            let stats = LookupStats {
                elapsed: started.elapsed(),
                ..LookupStats::default()
            };
            return Ok((relocation, stats));
        }
        // A delete is looked for everywhere; a change in the partitions it does not go to: none
        // in a table without partitions, where a key's only place is its bucket's file group.
        let unpartitioned = snapshot.table().properties().partition_fields.is_empty();
        let probes: Vec<Probe<'_>> = plan
            .winners
            .iter()
            .filter(|&&row| plan.deletes.value(row) || !unpartitioned)
            .map(|&row| Probe {
                row,
                key: plan.keys.value(row),
                bucket: plan.bucket(row),
                skip_partition: (!plan.deletes.value(row)).then(|| plan.partitions.value(row)),
            })
            .collect();
        let located = self
            .locate(storage, view, &probes, snapshot.key_ranges())
            .await?;
        let mut stats = located.stats;
        // File groups that may hold moving keys, numbered, with the rows to confirm.
        let mut to_confirm: Vec<(&FileGroup, Vec<usize>)> = Vec::new();
        let mut numbered: HashMap<(&str, &str), usize> = HashMap::new();
        for &(row, group) in &located.hits {
            let partition = &group.partition;
            match ordering {
                // A delete goes wherever its key may be; a change wins over any stored version
                // when the latest write wins: no need to read it.
                _ if plan.deletes.value(row) => {
                    relocation.deletes_at.push((row, partition.to_string()))
                }
                Ordering::CommitTime => relocation.deletes_at.push((row, partition.to_string())),
                Ordering::EventTime(_) => {
                    let n = *numbered
                        .entry((group.partition.as_str(), group.file_id.as_str()))
                        .or_insert_with(|| {
                            to_confirm.push((group, Vec::new()));
                            to_confirm.len() - 1
                        });
                    to_confirm[n].1.push(row);
                }
            }
        }
        // Read the file groups that may hold moving keys and compare the stored versions.
        let read = SliceRead::latest(storage, timeline, ordering);
        let mut stale = HashSet::new();
        for (group, rows) in to_confirm {
            let Some(slice) = group.latest_slice(None) else {
                continue;
            };
            let partition = &group.partition;
            let batches = read.read(&slice).await?;
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
        snapshot: &Snapshot,
        keys: &HashSet<crate::RecordKey>,
    ) -> Result<(Vec<RecordBatch>, LookupStats)> {
        let started = std::time::Instant::now();
        let (storage, timeline, view) = (
            snapshot.table().storage(),
            snapshot.timeline(),
            snapshot.view(),
        );
        let ordering = snapshot.ordering();
        let props = snapshot.table().properties();
        let (buckets, hash_fields) = (props.buckets.unwrap_or(1), &props.record_key_fields);
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
        let located = self
            .locate(storage, view, &probes, snapshot.key_ranges())
            .await?;
        let mut stats = located.stats;
        let mut rows_of: HashMap<(&str, &str), (&FileGroup, HashSet<&str>)> = HashMap::new();
        for &(row, group) in &located.hits {
            rows_of
                .entry((group.partition.as_str(), group.file_id.as_str()))
                .or_insert_with(|| (group, HashSet::new()))
                .1
                .insert(keys[row].as_str());
        }
        let read = SliceRead::latest(storage, timeline, ordering);
        let mut out = Vec::new();
        for (group, wanted) in rows_of.into_values() {
            let Some(slice) = group.latest_slice(None) else {
                continue;
            };
            stats.groups_read += 1;
            for batch in read.read(&slice).await? {
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

/// The key range of a file group's latest slice from the ranges commits recorded (`Some(None)`:
/// its files hold no key, and it is treated as unbounded, which costs a load, never a miss);
/// `None` when some file has no recorded range: its filters must be read.
fn recorded_bounds(group: &FileGroup, ranges: &KeyRanges) -> Option<Option<(String, String)>> {
    let slice = group.latest_slice(None)?;
    let mut out: Option<(&str, &str)> = None;
    for file in slice_files(&slice) {
        let Some((min, max)) = ranges.get(&file.path)?.as_ref() else {
            continue; // holds no key
        };
        out = Some(match out {
            None => (min, max),
            Some((a, b)) => (
                std::cmp::min_by(a, min.as_str(), |x, y| java_order(x, y)),
                std::cmp::max_by(b, max.as_str(), |x, y| java_order(x, y)),
            ),
        });
    }
    Some(out.map(|(a, b)| (a.to_string(), b.to_string())))
}

/// The least and greatest key over a file group's filters; `None` when one is unbounded.
fn group_bounds(filters: &[Arc<KeyFilter>]) -> Option<(String, String)> {
    let mut out: Option<(&str, &str)> = None;
    for filter in filters {
        if matches!(filter.as_ref(), KeyFilter::Keys(keys) if keys.is_empty()) {
            continue; // a log file of deletes only holds no key
        }
        let (min, max) = filter.bounds()?;
        out = Some(match out {
            None => (min, max),
            Some((a, b)) => (
                std::cmp::min_by(a, min, |x, y| java_order(x, y)),
                std::cmp::max_by(b, max, |x, y| java_order(x, y)),
            ),
        });
    }
    out.map(|(a, b)| (a.to_string(), b.to_string()))
}

/// Key ranges `[min, max]` of items (file groups), searched for the ones containing a key:
/// sorted by `min`, with a tree of the greatest `max` over each span, so a search costs the items
/// found plus a logarithm. Items without a range are always returned. Strings compare in Java's
/// order, the order of the footers' bounds.
#[derive(Debug)]
struct Intervals<T> {
    unbounded: Vec<T>,
    /// (min, item), sorted.
    mins: Vec<(String, T)>,
    /// Segment tree over `mins`' order of each span's greatest max (leaves from `size`).
    maxs: Vec<Option<String>>,
    size: usize,
}

impl<T> Intervals<T> {
    fn new(entries: impl Iterator<Item = (T, Option<(String, String)>)>) -> Self {
        let mut unbounded = Vec::new();
        let mut bounded = Vec::new();
        for (item, bounds) in entries {
            match bounds {
                Some((min, max)) => bounded.push((min, max, item)),
                None => unbounded.push(item),
            }
        }
        bounded.sort_unstable_by(|a, b| java_order(&a.0, &b.0));
        let size = bounded.len().next_power_of_two().max(1);
        let mut maxs: Vec<Option<String>> = vec![None; 2 * size];
        let mut mins = Vec::with_capacity(bounded.len());
        for (i, (min, max, item)) in bounded.into_iter().enumerate() {
            maxs[size + i] = Some(max);
            mins.push((min, item));
        }
        for node in (1..size).rev() {
            maxs[node] = match (&maxs[2 * node], &maxs[2 * node + 1]) {
                (Some(a), Some(b)) if java_order(b, a).is_gt() => Some(b.clone()),
                (Some(a), _) => Some(a.clone()),
                (None, b) => b.clone(),
            };
        }
        Intervals {
            unbounded,
            mins,
            maxs,
            size,
        }
    }

    /// Appends the items whose range contains `key` to `out`.
    fn containing<'a>(&'a self, key: &str, out: &mut Vec<&'a T>) {
        out.extend(self.unbounded.iter());
        // Candidates have min <= key: a prefix of the sorted order.
        let end = self
            .mins
            .partition_point(|(min, _)| java_order(min, key).is_le());
        if end == 0 {
            return;
        }
        // Descend into spans of that prefix whose greatest max reaches the key.
        let mut stack = vec![(1usize, 0usize, self.size)];
        while let Some((node, lo, hi)) = stack.pop() {
            if lo >= end
                || self.maxs[node]
                    .as_deref()
                    .is_none_or(|m| java_order(m, key).is_lt())
            {
                continue;
            }
            if hi - lo == 1 {
                out.push(&self.mins[lo].1);
                continue;
            }
            let mid = (lo + hi) / 2;
            stack.push((2 * node + 1, mid, hi));
            stack.push((2 * node, lo, mid));
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
    let path = file.path.clone();
    // Decoding a filter (a few MB of base64 for a large file) is CPU work: the files of one
    // lookup are decoded in parallel.
    tokio::task::spawn_blocking(move || {
        let kv: HashMap<&str, &str> = metadata
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?)))
            .collect();
        let bloom =
            BloomFilter::from_footer(|k| kv.get(k).copied()).map_err(|e| Error::CorruptFile {
                path,
                reason: e.to_string(),
            })?;
        let Some(bloom) = bloom else {
            return Ok(KeyFilter::Any);
        };
        Ok(KeyFilter::Bloom {
            bloom,
            min: kv.get(MIN_RECORD_KEY).map(|s| s.to_string()),
            max: kv.get(MAX_RECORD_KEY).map(|s| s.to_string()),
        })
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Java orders strings by UTF-16 code unit: a key above U+FFFF sorts before U+FFFD there.
    /// Footers written by Java hold bounds in that order; a key between them must not be ruled
    /// out.
    #[test]
    fn bounds_are_compared_in_javas_order() {
        let (emoji, replacement) = ("\u{1F600}", "\u{FFFD}");
        assert!(java_order(emoji, replacement).is_lt());
        assert!(emoji > replacement, "Rust's order differs");
        let mut bloom = BloomFilter::for_keys(2);
        bloom.add(emoji);
        bloom.add(replacement);
        let filter = KeyFilter::Bloom {
            bloom,
            min: Some(emoji.to_string()),
            max: Some(replacement.to_string()),
        };
        for key in [emoji, replacement] {
            assert!(filter.may_contain(key, &mut None), "{key:?} ruled out");
        }
        let own = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        let intervals = Intervals::new(
            [(0, own(emoji, replacement)), (1, own("a", "b")), (2, None)].into_iter(),
        );
        let search = |key: &str| {
            let mut found = Vec::new();
            intervals.containing(key, &mut found);
            let mut found: Vec<usize> = found.into_iter().copied().collect();
            found.sort_unstable();
            found
        };
        assert_eq!(search(emoji), [0, 2]);
        assert_eq!(search("ab"), [1, 2]);
        assert_eq!(search("c"), [2]);
    }

    #[test]
    fn intervals_find_exactly_the_ranges_holding_a_key() {
        // Ranges of every width and overlap, checked against a scan.
        let ranges: Vec<(String, String)> = (0..200)
            .map(|i: u32| {
                let a = (i * 7919) % 1000;
                let b = a + (i * 31) % 120;
                (format!("{a:04}"), format!("{b:04}"))
            })
            .collect();
        let intervals = Intervals::new(ranges.iter().cloned().map(Some).enumerate());
        for k in (0..1200).step_by(7) {
            let key = format!("{k:04}");
            let mut found = Vec::new();
            intervals.containing(&key, &mut found);
            let mut found: Vec<usize> = found.into_iter().copied().collect();
            found.sort_unstable();
            let expected: Vec<usize> = ranges
                .iter()
                .enumerate()
                .filter(|(_, (a, b))| a.as_str() <= key.as_str() && key.as_str() <= b.as_str())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(found, expected, "{key}");
        }
    }
}
