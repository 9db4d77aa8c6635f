//! Planning a commit: every incoming row gets its record key, partition path and bucket; rows of
//! the same key are reduced to the one that wins (see [`Ordering`]) — across partitions, since a
//! key lives in at most one partition; the winners are grouped by the file group they go to. A
//! [`Relocation`] found by the global key index then moves deletes to where their keys are stored
//! and deletes keys that moved to another partition from the one they leave. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{concat, concat_batches, take, take_record_batch};
use arrow::row::{Row, RowConverter, SortField};

use crate::error::{Error, Result};
use crate::index;
use crate::key::KeyGenerator;
pub use crate::merge::{Ordering, OrderingValues, Version, wins};
use crate::parallel;

/// The incoming rows that go to one file group: (partition, bucket) → row indices.
#[derive(Debug)]
pub struct Plan {
    pub keys: StringArray,
    /// The partition path each row's values name.
    pub partitions: StringArray,
    pub deletes: BooleanArray,
    /// Comparable ordering values of incoming rows, when event-time ordered.
    pub ordering: Option<OrderingValues>,
    /// The converter that made them; stored values must be encoded with the same one.
    pub ordering_converter: Option<Arc<RowConverter>>,
    /// The winning row of each key, in input order.
    pub winners: Vec<usize>,
    pub groups: BTreeMap<(String, u32), Vec<usize>>,
    /// The table's ordering column.
    ordering_field: Option<String>,
    /// The bucket of each winner's key (hashed once), by row.
    row_buckets: Vec<u32>,
}

/// Where the global key index found the keys of a plan stored, as changes to the plan.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Relocation {
    /// Winners not to apply where they were planned: deletes (re-placed where their keys are,
    /// by `deletes_at`) and changes that lose against the stored version of their key.
    pub dropped: Vec<usize>,
    /// (row, partition): delete the row's key from that partition, with the row's ordering value.
    pub deletes_at: Vec<(usize, String)>,
}

impl Relocation {
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.deletes_at.is_empty()
    }
}

pub fn plan(
    batch: &RecordBatch,
    deletes: BooleanArray,
    keygen: &KeyGenerator,
    buckets: u32,
    ordering: &Ordering,
) -> Result<Plan> {
    let keys = record_keys(keygen, batch)?;
    let partitions = keygen.partition_paths(batch)?;
    let (ordering_field, ordering_converter, ordering_rows) = match ordering {
        Ordering::CommitTime => (None, None, None),
        Ordering::EventTime(field) => {
            let column = batch.column_by_name(field).ok_or_else(|| Error::Schema {
                column: field.clone(),
                reason: "the table's ordering field is missing from the written rows".to_string(),
            })?;
            let converter = Arc::new(RowConverter::new(vec![SortField::new(
                column.data_type().clone(),
            )])?);
            let rows = OrderingValues::new(&converter, column)?;
            (Some(field.clone()), Some(converter), Some(rows))
        }
    };
    let n = batch.num_rows();
    if u32::try_from(n).is_err() {
        return Err(Error::Task(format!(
            "{n} rows in one commit (at most 2^32)"
        )));
    }
    // Each row's key hash and bucket, range by range on every core; each range also shares out
    // its rows by key hash (every row of a key in one share).
    let hasher = RandomState::default();
    let fields = keygen.record_key_fields();
    let ranges = parallel::ranges(n);
    let shares = ranges.len();
    let parts = parallel::each(ranges.len(), |i| {
        let range = ranges[i].clone();
        let mut share_rows: Vec<Vec<u32>> =
            vec![Vec::with_capacity(range.len() / shares + 1); shares];
        let (mut hashes, mut row_buckets) = (
            Vec::with_capacity(range.len()),
            Vec::with_capacity(range.len()),
        );
        for row in range {
            let key = keys.value(row);
            let hash = hasher.hash_one(key);
            // Bits the hash table does not use for its slots or tags.
            share_rows[(hash >> 32) as usize % shares].push(row as u32);
            hashes.push(hash);
            row_buckets.push(index::bucket_id(key, fields, buckets));
        }
        (hashes, row_buckets, share_rows)
    });
    let (mut hashes, mut row_buckets) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut share_rows: Vec<Vec<Vec<u32>>> = Vec::with_capacity(parts.len());
    for (h, b, s) in parts {
        hashes.extend(h);
        row_buckets.extend(b);
        share_rows.push(s);
    }
    // The winning row of each key, each share reduced on a core of its own, its rows in input
    // order (range after range). The tables hold row numbers only (the key is the row's): at a
    // million rows, a table of (key, row) pairs spent most of the plan on cache misses.
    let winners: Vec<Vec<u32>> = parallel::each(shares, |share| {
        let rows = share_rows.iter().flat_map(|range| &range[share]);
        let count = share_rows.iter().map(|range| range[share].len()).sum();
        let mut winners: HashTable<u32> = HashTable::with_capacity(count);
        for &row in rows {
            let key = keys.value(row as usize);
            let same = |&r: &u32| keys.value(r as usize) == key;
            match winners.entry(hashes[row as usize], same, |&r| hashes[r as usize]) {
                Entry::Occupied(mut current) => {
                    let version = |r: usize| Version {
                        delete: deletes.value(r),
                        ordering: incoming_ordering(ordering_rows.as_ref(), &deletes, r),
                    };
                    if wins(version(row as usize), version(*current.get() as usize)) {
                        *current.get_mut() = row;
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(row);
                }
            }
        }
        winners.into_iter().collect()
    });
    drop(share_rows);
    // Distinct keys (the common case) all win; otherwise the winners are marked, then listed
    // in input order.
    let chosen: Vec<usize> = if winners.iter().map(Vec::len).sum::<usize>() == n {
        (0..n).collect()
    } else {
        let mut won = vec![false; n];
        winners
            .iter()
            .flatten()
            .for_each(|&r| won[r as usize] = true);
        (0..n).filter(|&r| won[r]).collect()
    };
    let mut plan = Plan {
        keys,
        partitions,
        deletes,
        ordering: ordering_rows,
        ordering_converter,
        winners: Vec::new(),
        groups: BTreeMap::new(),
        ordering_field,
        row_buckets,
    };
    // Rows by (partition, bucket), range by range of the winners on every core, then joined in
    // range order (rows stay in input order). Partitions are numbered as they come, and a run of
    // rows of one partition (all of them, without partitions) is numbered once.
    let (row_buckets, partition_paths) = (&plan.row_buckets, &plan.partitions);
    let ranges = parallel::ranges(chosen.len());
    let parts = parallel::each(ranges.len(), |i| {
        let mut numbers: HashMap<&str, usize, RandomState> = HashMap::default();
        let mut partitions: Vec<&str> = Vec::new();
        let mut last: Option<(&str, usize)> = None;
        let mut by_group: HashMap<(usize, u32), Vec<usize>, RandomState> = HashMap::default();
        for &row in &chosen[ranges[i].clone()] {
            let partition = partition_paths.value(row);
            let number = match last {
                Some((previous, number)) if same_partition(previous, partition) => number,
                _ => {
                    let number = *numbers.entry(partition).or_insert_with(|| {
                        partitions.push(partition);
                        partitions.len() - 1
                    });
                    last = Some((partition, number));
                    number
                }
            };
            by_group
                .entry((number, row_buckets[row]))
                .or_default()
                .push(row);
        }
        (partitions, by_group)
    });
    let mut groups: BTreeMap<(String, u32), Vec<usize>> = BTreeMap::new();
    for (partitions, by_group) in parts {
        for ((number, bucket), rows) in by_group {
            groups
                .entry((partitions[number].to_string(), bucket))
                .or_default()
                .extend(rows);
        }
    }
    plan.groups = groups;
    plan.winners = chosen;
    Ok(plan)
}

/// The record keys of `batch`, range by range on every core (a record error names its row in
/// the whole batch).
fn record_keys(keygen: &KeyGenerator, batch: &RecordBatch) -> Result<StringArray> {
    let ranges = parallel::ranges(batch.num_rows());
    if ranges.len() == 1 {
        return keygen.record_keys(batch);
    }
    let parts = parallel::each(ranges.len(), |i| {
        let range = &ranges[i];
        keygen
            .record_keys(&batch.slice(range.start, range.len()))
            .map_err(|e| match e {
                Error::Record { row, reason } => Error::Record {
                    row: row + range.start,
                    reason,
                },
                e => e,
            })
    });
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    let arrays: Vec<&dyn Array> = parts.iter().map(|p| p as &dyn Array).collect();
    downcast_strings(concat(&arrays)?)
}

impl Plan {
    /// The bucket of a winning row's key.
    pub fn bucket(&self, row: usize) -> u32 {
        self.row_buckets[row]
    }

    /// Applies a relocation: dropped rows leave their groups; a delete it places in the
    /// partition its row names stays in its group, and each one it places elsewhere becomes a
    /// new row (a copy of its source row, appended to `batch`) in the group of that partition.
    /// Returns the batch the plan's rows now index.
    pub fn relocate(&mut self, batch: RecordBatch, relocation: &Relocation) -> Result<RecordBatch> {
        if relocation.is_empty() {
            return Ok(batch);
        }
        // A delete found in the partition its own row names stays in its group (all of them in
        // a table without partitions); only those found elsewhere are copied there.
        let mut kept: std::collections::HashSet<usize, RandomState> = Default::default();
        let elsewhere: Vec<&(usize, String)> = relocation
            .deletes_at
            .iter()
            .filter(|(row, partition)| {
                !(self.deletes.value(*row)
                    && same_partition(self.partitions.value(*row), partition)
                    && kept.insert(*row))
            })
            .collect();
        let dropped: std::collections::HashSet<usize, RandomState> = relocation
            .dropped
            .iter()
            .copied()
            .filter(|r| !kept.contains(r))
            .collect();
        if !dropped.is_empty() {
            for rows in self.groups.values_mut() {
                rows.retain(|r| !dropped.contains(r));
            }
            self.groups.retain(|_, rows| !rows.is_empty());
            self.winners.retain(|r| !dropped.contains(r));
        }
        if elsewhere.is_empty() {
            return Ok(batch);
        }
        let first = batch.num_rows();
        let sources = UInt32Array::from_iter_values(elsewhere.iter().map(|(row, _)| *row as u32));
        let copies = take_record_batch(&batch, &sources)?;
        let batch = concat_batches(&batch.schema(), [&batch, &copies])?;
        let keys = concat(&[&self.keys, take(&self.keys, &sources, None)?.as_ref()])?;
        self.keys = downcast_strings(keys)?;
        let moved = StringArray::from_iter_values(elsewhere.iter().map(|(_, p)| p));
        self.partitions = downcast_strings(concat(&[&self.partitions, &moved])?)?;
        let mut flags: Vec<bool> = self.deletes.iter().map(|d| d.unwrap_or(false)).collect();
        flags.resize(batch.num_rows(), true);
        self.deletes = BooleanArray::from(flags);
        if let (Some(converter), Some(field)) = (&self.ordering_converter, &self.ordering_field) {
            let column = batch.column_by_name(field).ok_or_else(|| Error::Schema {
                column: field.clone(),
                reason: "the table's ordering field is missing from the written rows".to_string(),
            })?;
            self.ordering = Some(OrderingValues::new(converter, column)?);
        }
        for (i, (source, partition)) in elsewhere.into_iter().enumerate() {
            let bucket = self.row_buckets[*source];
            self.row_buckets.push(bucket);
            self.groups
                .entry((partition.clone(), bucket))
                .or_default()
                .push(first + i);
        }
        Ok(batch)
    }
}

fn downcast_strings(array: ArrayRef) -> Result<StringArray> {
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| Error::Task("record keys are not strings".to_string()))
}

/// `a == b`, with no library call for the empty strings of a table without partitions: glibc's
/// `memcmp` on two empty slices took ~90 ns a call here, most of the plan of a million rows.
fn same_partition(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// The ordering value of incoming row `r`: a delete without one is in natural order (`None`); a
/// record without one orders as zero (see [`OrderingValues`]).
pub fn incoming_ordering<'a>(
    ordering: Option<&'a OrderingValues>,
    deletes: &BooleanArray,
    r: usize,
) -> Option<Row<'a>> {
    let ordering = ordering?;
    if deletes.value(r) && ordering.is_null(r) {
        None
    } else {
        ordering.get(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::{TableProperties, TableType};
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    /// A plan large enough to be shared out over the cores keeps the winner a key-by-key fold
    /// in input order keeps: keys repeated far apart, deletes, ties and missing ordering values,
    /// keys that move between partitions.
    #[test]
    fn a_plan_over_the_cores_keeps_the_sequential_winners() -> Result<()> {
        use rand::{Rng, SeedableRng};
        let n = 3 * parallel::MIN_ROWS * parallel::threads().max(2) + 17;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let ids: Vec<String> = (0..n)
            .map(|_| format!("k{}", rng.random_range(0..n / 3)))
            .collect();
        let ts: Vec<Option<i64>> = (0..n)
            .map(|_| rng.random_bool(0.9).then(|| rng.random_range(0..50)))
            .collect();
        let regions: Vec<&str> = (0..n)
            .map(|_| ["eu", "us", "Köln"][rng.random_range(0..3)])
            .collect();
        let deletes = BooleanArray::from((0..n).map(|_| rng.random_bool(0.2)).collect::<Vec<_>>());
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("ts", DataType::Int64, true),
            Field::new("region", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids.clone())),
                Arc::new(Int64Array::from(ts)),
                Arc::new(StringArray::from(regions.clone())),
            ],
        )?;
        let mut props = TableProperties::new("t", TableType::CopyOnWrite, vec!["id".into()]);
        props.partition_fields = vec!["region".into()];
        let keygen = KeyGenerator::new(&props);
        let planned = plan(
            &batch,
            deletes.clone(),
            &keygen,
            8,
            &Ordering::EventTime("ts".into()),
        )?;
        // The model: a fold over each key's rows in input order.
        let version = |r: usize| Version {
            delete: deletes.value(r),
            ordering: incoming_ordering(planned.ordering.as_ref(), &deletes, r),
        };
        let mut winner: HashMap<&str, usize> = HashMap::new();
        for (row, id) in ids.iter().enumerate() {
            match winner.get(id.as_str()) {
                Some(&current) if !wins(version(row), version(current)) => {}
                _ => {
                    winner.insert(id, row);
                }
            }
        }
        let mut expected: BTreeMap<(String, u32), Vec<usize>> = BTreeMap::new();
        for (id, &row) in &winner {
            let bucket = index::bucket_id(id, keygen.record_key_fields(), 8);
            let partition = planned.partitions.value(row).to_string();
            expected.entry((partition, bucket)).or_default().push(row);
        }
        expected.values_mut().for_each(|rows| rows.sort_unstable());
        assert_eq!(planned.groups, expected);
        let mut all: Vec<usize> = winner.values().copied().collect();
        all.sort_unstable();
        assert_eq!(planned.winners, all);
        assert!(all.len() < n, "the keys repeat");
        Ok(())
    }

    /// Keys worked out range by range name a bad row by its place in the whole batch.
    #[test]
    fn a_null_key_far_into_a_large_batch_is_named_by_its_row() -> Result<()> {
        let n = 3 * parallel::MIN_ROWS * parallel::threads().max(2);
        let bad = n - 7;
        let ids: Vec<Option<i64>> = (0..n as i64)
            .map(|i| (i != bad as i64).then_some(i))
            .collect();
        let batch =
            RecordBatch::try_from_iter(vec![("id", Arc::new(Int64Array::from(ids)) as ArrayRef)])?;
        let props = TableProperties::new("t", TableType::CopyOnWrite, vec!["id".into()]);
        let keygen = KeyGenerator::new(&props);
        match record_keys(&keygen, &batch) {
            Err(Error::Record { row, .. }) => assert_eq!(row, bad),
            other => panic!("expected a record error, got {other:?}"),
        }
        let good = batch.slice(0, bad);
        let keys = record_keys(&keygen, &good)?;
        assert_eq!(keys.len(), bad);
        assert_eq!(keys.value(bad - 1), (bad - 1).to_string());
        Ok(())
    }

    #[test]
    fn keeps_one_winner_per_key_by_event_time() -> Result<()> {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("ts", DataType::Int64, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b", "a", "b"])),
                Arc::new(Int64Array::from(vec![
                    Some(5),
                    Some(3),
                    Some(1),
                    Some(5),
                    None,
                ])),
            ],
        )?;
        let props = TableProperties::new("t", TableType::CopyOnWrite, vec!["id".into()]);
        let keygen = KeyGenerator::new(&props);
        let deletes = BooleanArray::from(vec![false; 5]);
        let event = plan(
            &batch,
            deletes.clone(),
            &keygen,
            1,
            &Ordering::EventTime("ts".into()),
        )?;
        // "a": row 1 (ts 3) is stale against row 0 (ts 5); row 3 (ts 5) ties and is later.
        // "b": row 4 has no ordering value, which orders as 0, so row 2 (ts 1) stays.
        assert_eq!(
            event.groups.values().flatten().copied().collect::<Vec<_>>(),
            vec![2, 3]
        );
        let commit = plan(&batch, deletes, &keygen, 1, &Ordering::CommitTime)?;
        assert_eq!(
            commit
                .groups
                .values()
                .flatten()
                .copied()
                .collect::<Vec<_>>(),
            vec![3, 4]
        );
        Ok(())
    }
}
