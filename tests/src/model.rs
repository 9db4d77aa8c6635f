//! An in-memory model of a copy-on-write table with the semantics inlet promises: record keys,
//! event-time or commit-time ordering, deletes, time travel and incremental reads. Property and
//! interop tests apply the same changes to a table and to the model and compare.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::Rng;
use rand::rngs::StdRng;

/// One row of the model schema: `id` (key), `part` (partition; a key may move between
/// partitions), `ts` (ordering), `value` and `n` (under the names [`VALUE`] and [`N`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub part: Option<String>,
    pub ts: Option<i64>,
    pub value: Option<String>,
    pub n: Option<f64>,
}

/// A change: an upsert of `row`, or a delete of its key.
#[derive(Debug, Clone)]
pub struct Change {
    pub row: Row,
    pub delete: bool,
}

/// How the model's table is set up.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Merge-on-read (log files) instead of copy-on-write.
    pub merge_on_read: bool,
    pub event_time: bool,
    pub partitioned: bool,
    pub composite_key: bool,
    pub buckets: u32,
    /// Partition directories `part=value` instead of `value`.
    pub hive_style: bool,
}

/// Hudi's partition directory for a null or empty value.
const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

impl Shape {
    pub fn random(rng: &mut StdRng) -> Shape {
        Shape {
            merge_on_read: rng.random_bool(0.5),
            event_time: rng.random_bool(0.5),
            partitioned: rng.random_bool(0.5),
            composite_key: rng.random_bool(0.3),
            buckets: rng.random_range(1..=4),
            hive_style: rng.random_bool(0.5),
        }
    }

    pub fn record_key_fields(&self) -> Vec<String> {
        if self.composite_key {
            vec!["id".into(), "part".into()]
        } else {
            vec!["id".into()]
        }
    }

    pub fn partition_fields(&self) -> Vec<String> {
        if self.partitioned {
            vec!["part".into()]
        } else {
            Vec::new()
        }
    }

    pub fn ordering_field(&self) -> Option<String> {
        self.event_time.then(|| "ts".to_string())
    }

    /// The Hudi record key of a row.
    pub fn key(&self, row: &Row) -> String {
        if self.composite_key {
            let part = match row.part.as_deref() {
                None => "__null__",
                Some("") => "__empty__",
                Some(p) => p,
            };
            format!("id:{},part:{part}", row.id)
        } else {
            row.id.to_string()
        }
    }

    /// The partition a row's values name (`""` when not partitioned).
    fn partition(&self, row: &Row) -> String {
        if !self.partitioned {
            return String::new();
        }
        let value = row
            .part
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PARTITION);
        if self.hive_style {
            format!("part={value}")
        } else {
            value.to_string()
        }
    }
}

/// A stored record: its row and the instant that last changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub row: Row,
    pub commit_time: String,
}

/// A file group of a merge-on-read table: its base records and the fold of its log versions.
#[derive(Debug, Clone, Default)]
struct Group {
    base: BTreeMap<String, Record>,
    /// The fold of the log versions of each key: a record, or a delete with its ordering.
    logs: BTreeMap<String, LogState>,
    /// Keys written to the group's log data blocks since its base file (the keys its log files
    /// can be found to hold).
    log_keys: BTreeSet<String>,
}

/// The merge-on-read part of the model: the file groups, keyed by (partition, bucket).
#[derive(Debug, Clone, Default)]
struct Slices {
    groups: BTreeMap<(String, u32), Group>,
    /// What each commit wrote: (instant, [(file group, key, change, went to a new base file)]).
    writes: Vec<(String, Vec<Written>)>,
}

/// A change a commit wrote for a key to a file group, and whether it went to a new base file.
type Written = ((String, u32), String, Change, bool);

type LogState = Result<Record, Option<i64>>;

#[derive(Debug, Clone)]
pub struct Model {
    pub shape: Shape,
    /// The current state (what a snapshot read returns).
    pub records: BTreeMap<String, Record>,
    /// The state after each commit, by instant.
    pub history: Vec<(String, BTreeMap<String, Record>)>,
    slices: Slices,
}

/// Whether a newer version (delete?, ordering) wins over the current one — Hudi's rules: ties go
/// to the newer, a delete without an ordering
/// value always wins, is not replaced by a later ordered delete, and any later record beats it.
fn wins(newer: (bool, Option<i64>), current: (bool, Option<i64>)) -> bool {
    let supersedes = |n: Option<i64>, c: Option<i64>| match (n, c) {
        (Some(n), Some(c)) => n >= c,
        (None, Some(_)) => false,
        _ => true,
    };
    if newer.0 {
        let natural_tombstone = current.0 && current.1.is_none();
        newer.1.is_none() || (!natural_tombstone && supersedes(newer.1, current.1))
    } else {
        (current.0 && current.1.is_none()) || supersedes(newer.1, current.1)
    }
}

impl Model {
    pub fn new(shape: Shape) -> Model {
        Model {
            shape,
            records: BTreeMap::new(),
            history: Vec::new(),
            slices: Slices::default(),
        }
    }

    /// A version's (delete?, ordering): a record without an ordering value orders as 0; a delete
    /// without one is in natural order.
    fn version(&self, delete: bool, row: &Row) -> (bool, Option<i64>) {
        match (self.shape.event_time, delete) {
            (false, _) => (delete, None),
            (true, true) => (true, row.ts),
            (true, false) => (false, Some(row.ts.unwrap_or(0))),
        }
    }

    /// Applies one commit's changes at `instant`. A key lives in at most one partition (Hudi's
    /// global index): a delete removes it wherever it is; a change that moves it to another
    /// partition deletes it there, unless the stored version wins, when nothing happens.
    pub fn apply(&mut self, instant: &str, changes: &[Change]) {
        // Changes to one key within the commit fold to one winner.
        let mut winners: BTreeMap<String, &Change> = BTreeMap::new();
        for change in changes {
            let key = self.shape.key(&change.row);
            let replace = winners.get(&key).is_none_or(|c| {
                wins(
                    self.version(change.delete, &change.row),
                    self.version(c.delete, &c.row),
                )
            });
            if replace {
                winners.insert(key, change);
            }
        }
        let record = |c: &Change| Record {
            row: c.row.clone(),
            commit_time: instant.to_string(),
        };
        if !self.shape.merge_on_read {
            for (key, change) in winners {
                if let Some(existing) = self.records.get(&key)
                    && !wins(
                        self.version(change.delete, &change.row),
                        self.version(false, &existing.row),
                    )
                {
                    continue;
                }
                if change.delete {
                    self.records.remove(&key);
                } else {
                    self.records.insert(key, record(change));
                }
            }
        } else {
            let mut written = Vec::new();
            // File groups this commit creates: all its records for them go to the base file.
            let mut created = BTreeSet::new();
            for (key, change) in winners {
                let target = self.group(&key, &change.row);
                // The other file groups of the key's bucket that may hold it.
                let holders: Vec<(String, u32)> = self
                    .slices
                    .groups
                    .iter()
                    .filter(|((partition, bucket), g)| {
                        *bucket == target.1
                            && (change.delete || *partition != target.0)
                            && (g.base.contains_key(&key) || g.log_keys.contains(&key))
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let delete = Change {
                    row: change.row.clone(),
                    delete: true,
                };
                if change.delete {
                    for group in holders {
                        self.append(&group, &key, &delete, instant);
                        written.push((group, key.clone(), delete.clone(), false));
                    }
                    continue;
                }
                let mut moves = Vec::new();
                let mut stale = false;
                for group in holders {
                    if !self.shape.event_time {
                        moves.push(group);
                        continue;
                    }
                    // The stored version is read: it decides whether the change moves the key.
                    let g = &self.slices.groups[&group];
                    if let Some(stored) = self.merged(&g.base, &g.logs).get(&key) {
                        if wins(
                            self.version(false, &change.row),
                            self.version(false, &stored.row),
                        ) {
                            moves.push(group);
                        } else {
                            stale = true;
                        }
                    }
                }
                if stale {
                    continue;
                }
                for group in moves {
                    self.append(&group, &key, &delete, instant);
                    written.push((group, key.clone(), delete.clone(), false));
                }
                // The first write of a file group creates its base file; later ones append logs.
                let to_base =
                    created.contains(&target) || !self.slices.groups.contains_key(&target);
                if to_base {
                    created.insert(target.clone());
                    let group = self.slices.groups.entry(target.clone()).or_default();
                    group.base.insert(key.clone(), record(change));
                } else {
                    self.append(&target, &key, change, instant);
                }
                written.push((target, key, change.clone(), to_base));
            }
            self.slices.writes.push((instant.to_string(), written));
            self.records = self.current();
        }
        self.history
            .push((instant.to_string(), self.records.clone()));
    }

    /// A replace commit at `instant` of every file group (a truncate): no record is left, and
    /// the next write of each (partition, bucket) starts a new file group.
    pub fn truncate(&mut self, instant: &str) {
        self.slices.groups.clear();
        self.slices.writes.push((instant.to_string(), Vec::new()));
        self.records.clear();
        self.history.push((instant.to_string(), BTreeMap::new()));
    }

    /// Appends a log version of `key` to an existing file group.
    fn append(&mut self, group: &(String, u32), key: &str, change: &Change, instant: &str) {
        let mut g = self.slices.groups.remove(group).unwrap_or_default();
        self.fold(&mut g.logs, key, change, instant);
        if !change.delete {
            g.log_keys.insert(key.to_string());
        }
        self.slices.groups.insert(group.clone(), g);
    }

    /// Every file group's records, merged.
    fn current(&self) -> BTreeMap<String, Record> {
        let mut out = BTreeMap::new();
        for g in self.slices.groups.values() {
            out.extend(self.merged(&g.base, &g.logs));
        }
        out
    }

    /// The file group (partition, bucket) of a record.
    fn group(&self, key: &str, row: &Row) -> (String, u32) {
        (
            self.shape.partition(row),
            inlet_table::index::bucket_id(key, &self.shape.record_key_fields(), self.shape.buckets),
        )
    }

    /// Folds one more log version of `key` into `logs`.
    fn fold(
        &self,
        logs: &mut BTreeMap<String, LogState>,
        key: &str,
        change: &Change,
        instant: &str,
    ) {
        let newer = self.version(change.delete, &change.row);
        let replace = match logs.get(key) {
            None => true,
            Some(Ok(r)) => wins(newer, self.version(false, &r.row)),
            Some(Err(ordering)) => wins(newer, (true, *ordering)),
        };
        if replace {
            let state = if change.delete {
                Err(newer.1)
            } else {
                Ok(Record {
                    row: change.row.clone(),
                    commit_time: instant.to_string(),
                })
            };
            logs.insert(key.to_string(), state);
        }
    }

    /// Base records with the log folds merged on top.
    fn merged(
        &self,
        base: &BTreeMap<String, Record>,
        logs: &BTreeMap<String, LogState>,
    ) -> BTreeMap<String, Record> {
        let mut out = BTreeMap::new();
        for (key, base) in base {
            let base_version = self.version(false, &base.row);
            match logs.get(key) {
                Some(Ok(r)) if wins(self.version(false, &r.row), base_version) => {
                    out.insert(key.clone(), r.clone());
                }
                Some(Err(ordering)) if wins((true, *ordering), base_version) => {}
                _ => {
                    out.insert(key.clone(), base.clone());
                }
            }
        }
        for (key, state) in logs {
            if let (false, Ok(r)) = (base.contains_key(key), state) {
                out.insert(key.clone(), r.clone());
            }
        }
        out
    }

    /// A compaction of every file slice, scheduled and completed with no write in between: base
    /// files now hold their groups' current records (tombstones are gone), with their commit
    /// times.
    pub fn compact(&mut self) {
        let groups = std::mem::take(&mut self.slices.groups);
        self.slices.groups = groups
            .into_iter()
            .map(|(k, g)| {
                let base = self.merged(&g.base, &g.logs);
                (
                    k,
                    Group {
                        base,
                        ..Group::default()
                    },
                )
            })
            .collect();
    }

    /// The state as of an instant.
    pub fn as_of(&self, instant: &str) -> BTreeMap<String, Record> {
        self.history
            .iter()
            .rev()
            .find(|(t, _)| t.as_str() <= instant)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    /// Records changed by commits in `(from, to]`. Copy-on-write: their state as of `to`.
    /// Merge-on-read (as hudi-rs reads it): what the window's commits wrote to each file group —
    /// base files created in the window and log versions written in it — merged among themselves
    /// (a key that moved between partitions in the window can be in two file groups).
    pub fn incremental(&self, from: &str, to: &str) -> Vec<(String, Record)> {
        if self.shape.merge_on_read {
            let mut groups: BTreeMap<(String, u32), Group> = BTreeMap::new();
            for (instant, written) in self
                .slices
                .writes
                .iter()
                .filter(|(t, _)| t.as_str() > from && t.as_str() <= to)
            {
                for (group, key, change, to_base) in written {
                    let g = groups.entry(group.clone()).or_default();
                    match (to_base, change.delete) {
                        (true, false) => {
                            g.base.insert(
                                key.clone(),
                                Record {
                                    row: change.row.clone(),
                                    commit_time: instant.clone(),
                                },
                            );
                        }
                        (true, true) => {}
                        (false, _) => self.fold(&mut g.logs, key, change, instant),
                    }
                }
            }
            return groups
                .values()
                .flat_map(|g| self.merged(&g.base, &g.logs))
                .collect();
        }
        self.as_of(to)
            .into_iter()
            .filter(|(_, r)| r.commit_time.as_str() > from && r.commit_time.as_str() <= to)
            .collect()
    }
}

impl Model {
    /// The changes the commit at `history[i]` made, as a change query returns them (see
    /// `inlet_table::read::read_changes`), in the canonical form of
    /// [`crate::canonical::change_rows`]: per key, `i` (new), `u` (rewritten in its partition),
    /// `d` (gone), and a `d` plus an `i` for a key that moved to another partition.
    pub fn changes(&self, i: usize) -> Vec<String> {
        let (instant, after) = &self.history[i];
        let empty = BTreeMap::new();
        let before = i.checked_sub(1).map_or(&empty, |p| &self.history[p].1);
        let mut out: Vec<(&str, Option<&Row>, Option<&Row>)> = Vec::new();
        for (key, old) in before {
            match after.get(key) {
                None => out.push(("d", Some(&old.row), None)),
                Some(new) if &new.commit_time == instant => {
                    if self.shape.partition(&old.row) == self.shape.partition(&new.row) {
                        out.push(("u", Some(&old.row), Some(&new.row)));
                    } else {
                        out.push(("d", Some(&old.row), None));
                        out.push(("i", None, Some(&new.row)));
                    }
                }
                Some(_) => {}
            }
        }
        for (key, new) in after {
            if &new.commit_time == instant && !before.contains_key(key) {
                out.push(("i", None, Some(&new.row)));
            }
        }
        let images = |rows: Vec<Option<&Row>>| rows_batch(&rows);
        let (old, new) = (
            images(out.iter().map(|c| c.1).collect()),
            images(out.iter().map(|c| c.2).collect()),
        );
        let mut fields = vec![
            Field::new("op", DataType::Utf8, true),
            Field::new("instant", DataType::Utf8, true),
        ];
        let mut columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from(
                out.iter().map(|c| c.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec![instant.as_str(); out.len()])),
        ];
        for (image, batch) in [("before", &old), ("after", &new)] {
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                fields.push(Field::new(
                    format!("{image}.{}", field.name()),
                    field.data_type().clone(),
                    true,
                ));
                columns.push(column.clone());
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .expect("model change batch");
        crate::canonical::rows(&[batch], &[]).expect("canonical change rows")
    }
}

/// Rows of the model schema as a batch, all nulls where a row is missing.
fn rows_batch(rows: &[Option<&Row>]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.map(|r| r.id)).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.and_then(|r| r.part.clone()))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| r.and_then(|r| r.ts))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.and_then(|r| r.value.clone()))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.and_then(|r| r.n)).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("model rows batch")
}

/// Partition values: plain, non-ASCII, characters that URLs, shells and object stores treat
/// specially, a leading dot or underscore, the empty string (Hudi's default partition).
const PARTITION_VALUES: [&str; 14] = [
    "p0", "Köln", "Zürich", "%2F", "a%", "#", "?", "*", "~", "x\\y", "a b", "_x", ".x", "",
];

/// A double from the whole bit space: any sign, subnormals, ±0, infinities, NaNs, the extremes,
/// and values whose shortest decimal form is long.
fn random_double(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..6) {
        0 => f64::from_bits(rng.random()),
        1 => f64::from_bits(rng.random_range(0..(1u64 << 52))), // subnormal or zero
        2 => [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            208.84799999999998,
        ][rng.random_range(0..7)],
        _ => rng.random_range(-1e6..1e6),
    }
}

/// Random changes over a small key space, so that updates, deletes, stale writes, repeated keys
/// within a commit and keys moving between partitions all happen; a fifth of the deletes carry
/// only the key (as Debezium and PostgreSQL's default replica identity send them).
pub fn random_changes(rng: &mut StdRng, keys: i64, max_rows: usize) -> Vec<Change> {
    let rows = rng.random_range(1..=max_rows);
    (0..rows)
        .map(|_| {
            let id = rng.random_range(0..keys);
            // Mostly the key's usual partition, sometimes another one.
            let part = if rng.random_bool(0.7) {
                PARTITION_VALUES[(id % 3) as usize]
            } else {
                PARTITION_VALUES[rng.random_range(0..PARTITION_VALUES.len())]
            };
            let delete = rng.random_bool(0.2);
            let mut row = Row {
                id,
                part: rng.random_bool(0.95).then(|| part.to_string()),
                ts: rng.random_bool(0.9).then(|| rng.random_range(0..50)),
                value: rng
                    .random_bool(0.8)
                    .then(|| format!("v{}", rng.random_range(0..1000))),
                n: rng.random_bool(0.8).then(|| random_double(rng)),
            };
            if delete && rng.random_bool(0.2) {
                // Key only (the key columns and, for the ordering, nothing else).
                row.value = None;
                row.n = None;
                row.part = None;
            }
            Change { row, delete }
        })
        .collect()
}

/// Column names Avro does not allow (stored as `v__lue__name` and `n__1`).
pub const VALUE: &str = "välue name";
pub const N: &str = "n-1";

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("part", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
        Field::new(VALUE, DataType::Utf8, true),
        Field::new(N, DataType::Float64, true),
    ]))
}

/// Changes as a record batch plus delete flags.
pub fn to_batch(changes: &[Change]) -> (RecordBatch, BooleanArray) {
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(
                changes.iter().map(|c| c.row.id).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                changes
                    .iter()
                    .map(|c| c.row.part.clone())
                    .collect::<Vec<Option<String>>>(),
            )),
            Arc::new(Int64Array::from(
                changes.iter().map(|c| c.row.ts).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                changes
                    .iter()
                    .map(|c| c.row.value.clone())
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                changes.iter().map(|c| c.row.n).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("model batch");
    (batch, changes.iter().map(|c| c.delete).collect())
}

/// Model records in the canonical form of [`crate::canonical::rows`] over the columns
/// `_hoodie_commit_time, _hoodie_record_key, id, part, ts, value, n`.
pub fn canonical<'a>(records: impl IntoIterator<Item = (&'a String, &'a Record)>) -> Vec<String> {
    let mut rows: Vec<String> = records
        .into_iter()
        .map(|(key, r)| {
            serde_json::json!({
                "_hoodie_commit_time": r.commit_time,
                "_hoodie_record_key": key,
                "id": r.row.id,
                "part": r.row.part,
                "ts": r.row.ts,
                VALUE: r.row.value,
                N: r.row.n.map(crate::canonical::float_text),
            })
            .to_string()
        })
        .collect();
    rows.sort();
    rows
}

/// The columns [`canonical`] covers.
pub fn canonical_columns() -> Vec<String> {
    [
        "_hoodie_commit_time",
        "_hoodie_record_key",
        "id",
        "part",
        "ts",
        VALUE,
        N,
    ]
    .map(String::from)
    .to_vec()
}
