//! An in-memory model of a copy-on-write table with the semantics inlet promises: record keys,
//! event-time or commit-time ordering, deletes, time travel and incremental reads. Property and
//! interop tests apply the same changes to a table and to the model and compare.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::Rng;
use rand::rngs::StdRng;

/// One row of the model schema: `id` (key), `part` (partition, fixed per id), `ts` (ordering),
/// `value`, `n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub part: String,
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
    pub event_time: bool,
    pub partitioned: bool,
    pub composite_key: bool,
    pub buckets: u32,
}

impl Shape {
    pub fn random(rng: &mut StdRng) -> Shape {
        Shape {
            event_time: rng.random_bool(0.5),
            partitioned: rng.random_bool(0.5),
            composite_key: rng.random_bool(0.3),
            buckets: rng.random_range(1..=4),
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
            format!("id:{},part:{}", row.id, row.part)
        } else {
            row.id.to_string()
        }
    }
}

/// A stored record: its row and the instant that last changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub row: Row,
    pub commit_time: String,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub shape: Shape,
    pub records: BTreeMap<String, Record>,
    /// The state after each commit, by instant.
    pub history: Vec<(String, BTreeMap<String, Record>)>,
}

impl Model {
    pub fn new(shape: Shape) -> Model {
        Model {
            shape,
            records: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    /// Whether `newer` replaces `older` under the table's ordering.
    fn supersedes(&self, newer: &Row, older: &Row) -> bool {
        match (self.shape.event_time, newer.ts, older.ts) {
            (true, Some(n), Some(o)) => n >= o,
            _ => true,
        }
    }

    /// Applies one commit's changes at `instant`.
    pub fn apply(&mut self, instant: &str, changes: &[Change]) {
        let mut winners: BTreeMap<String, &Change> = BTreeMap::new();
        for change in changes {
            let key = self.shape.key(&change.row);
            match winners.get(&key) {
                Some(current) if !self.supersedes(&change.row, &current.row) => {}
                _ => {
                    winners.insert(key, change);
                }
            }
        }
        for (key, change) in winners {
            if let Some(existing) = self.records.get(&key)
                && !self.supersedes(&change.row, &existing.row)
            {
                continue;
            }
            if change.delete {
                self.records.remove(&key);
            } else {
                self.records.insert(
                    key,
                    Record {
                        row: change.row.clone(),
                        commit_time: instant.to_string(),
                    },
                );
            }
        }
        self.history
            .push((instant.to_string(), self.records.clone()));
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

    /// Records changed by commits in `(from, to]`, in their state as of `to`.
    pub fn incremental(&self, from: &str, to: &str) -> BTreeMap<String, Record> {
        self.as_of(to)
            .into_iter()
            .filter(|(_, r)| r.commit_time.as_str() > from && r.commit_time.as_str() <= to)
            .collect()
    }
}

/// Random changes over a small key space, so that updates, deletes, stale writes and repeated
/// keys within a commit all happen.
pub fn random_changes(rng: &mut StdRng, keys: i64, max_rows: usize) -> Vec<Change> {
    let rows = rng.random_range(1..=max_rows);
    (0..rows)
        .map(|_| {
            let id = rng.random_range(0..keys);
            let row = Row {
                id,
                part: format!("p{}", id % 3),
                ts: rng.random_bool(0.9).then(|| rng.random_range(0..50)),
                value: rng
                    .random_bool(0.8)
                    .then(|| format!("v{}", rng.random_range(0..1000))),
                n: rng
                    .random_bool(0.8)
                    .then(|| rng.random_range(-1000..1000) as f64 / 8.0),
            };
            Change {
                row,
                delete: rng.random_bool(0.2),
            }
        })
        .collect()
}

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("part", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("value", DataType::Utf8, true),
        Field::new("n", DataType::Float64, true),
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
                    .collect::<Vec<_>>(),
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
pub fn canonical(records: &BTreeMap<String, Record>) -> Vec<String> {
    let mut rows: Vec<String> = records
        .iter()
        .map(|(key, r)| {
            serde_json::json!({
                "_hoodie_commit_time": r.commit_time,
                "_hoodie_record_key": key,
                "id": r.row.id,
                "part": r.row.part,
                "ts": r.row.ts,
                "value": r.row.value,
                "n": r.row.n,
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
        "value",
        "n",
    ]
    .map(String::from)
    .to_vec()
}
