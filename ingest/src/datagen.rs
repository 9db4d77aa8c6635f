//! The built-in change generator (`[source] kind = "datagen"`): inserts, updates and deletes of
//! rows keyed by `id`, in source transactions, at a steady rate — for demos and load tests.
//!
//! The stream is a pure function of the seed: transaction `n` draws its changes from a
//! generator seeded with `(seed, n)`, so a restarted source produces the same changes again.
//! Updates and deletes pick rows that exist (an insert takes the next unused id until the key
//! space is full), so the stream is one a real database could have produced. On start the
//! transactions already durable are generated again without emitting them, which rebuilds the
//! set of live keys (memory: one entry per live key).
//!
//! Positions: transaction `n` commits at `n << 16 | 0xFFFF`, its `i`-th change is at
//! `n << 16 | i`, so positions increase per key in commit order, across restarts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    BooleanArray, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use inlet_config::{DatagenConfig, Mix};

use crate::change::{
    Checkpoint, Event, Inside, RowBatch, SchemaChange, Source, TableId, TableInfo,
};
use crate::error::{Error, Result};

/// Transactions generated per call at most (bounds one batch when the rate is unlimited).
const MAX_TRANSACTIONS_PER_BATCH: u64 = 1_000;

/// Names with the characters that break naive writers: quotes, separators, non-ASCII.
const NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "O'Brien",
    "Zoë",
    "Łukasz",
    "Björk",
    "İnci",
    "José, Jr.",
    "李雷",
    "Søren",
    "Amélie",
    "Nguyễn",
    "Ωmega",
    "\"Quoted\"",
    "tab\there",
    "",
];
const REGIONS: &[&str] = &["Köln", "São Paulo", "東京", "New York", "x=y", "50%"];

/// The generator's position of the commit of transaction `n`.
fn commit_position(n: u64) -> u64 {
    n << 16 | 0xFFFF
}

/// The transaction whose commit is at or below `position`, the latest.
fn transaction_at(position: u64) -> u64 {
    position >> 16
}

/// SplitMix64: small, fast and the same on every platform and version (the stream must be
/// reproducible from the seed).
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64, n: u64) -> Self {
        SplitMix(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The columns of every generated table.
pub fn data_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

fn row_schema() -> SchemaRef {
    crate::change::with_cdc_columns(&data_schema())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Insert,
    Update,
    Delete,
}

/// The live keys of one table: a vector for uniform picks, a map for removal.
#[derive(Debug, Default)]
struct Keys {
    live: Vec<i64>,
    index: HashMap<i64, usize>,
    next_id: i64,
}

impl Keys {
    fn insert(&mut self, id: i64) {
        self.index.insert(id, self.live.len());
        self.live.push(id);
    }

    fn remove(&mut self, id: i64) {
        if let Some(at) = self.index.remove(&id) {
            self.live.swap_remove(at);
            if let Some(moved) = self.live.get(at) {
                self.index.insert(*moved, at);
            }
        }
    }
}

/// One generated change.
#[derive(Debug)]
struct Change {
    table: usize,
    op: Op,
    id: i64,
    /// Drawn values of the row (unused for deletes).
    values: u64,
}

/// Rows of one table being built for the next batch.
#[derive(Debug)]
struct Rows {
    id: Int64Builder,
    name: StringBuilder,
    region: StringBuilder,
    amount: Float64Builder,
    quantity: Int32Builder,
    updated_at: TimestampMicrosecondBuilder,
    op: StringBuilder,
    position: Int64Builder,
    commit_ts: TimestampMicrosecondBuilder,
    deletes: Vec<bool>,
}

impl Rows {
    fn new() -> Self {
        Rows {
            id: Int64Builder::new(),
            name: StringBuilder::new(),
            region: StringBuilder::new(),
            amount: Float64Builder::new(),
            quantity: Int32Builder::new(),
            updated_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            op: StringBuilder::new(),
            position: Int64Builder::new(),
            commit_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            deletes: Vec::new(),
        }
    }

    fn append(&mut self, change: &Change, position: u64, commit_ts: i64) {
        self.id.append_value(change.id);
        if change.op == Op::Delete {
            self.name.append_null();
            self.region.append_null();
            self.amount.append_null();
            self.quantity.append_null();
            self.updated_at.append_null();
        } else {
            let v = change.values;
            self.name
                .append_value(NAMES[(v % NAMES.len() as u64) as usize]);
            self.region
                .append_value(REGIONS[((v >> 8) % REGIONS.len() as u64) as usize]);
            self.amount
                .append_value(((v >> 16) % 10_000_000) as f64 / 100.0);
            self.quantity.append_value(((v >> 40) % 1_000) as i32);
            self.updated_at.append_value(commit_ts);
        }
        self.op.append_value(match change.op {
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
        });
        self.position.append_value(position as i64);
        self.commit_ts.append_value(commit_ts);
        self.deletes.push(change.op == Op::Delete);
    }

    fn finish(mut self, table: TableId) -> Result<RowBatch> {
        let batch = RecordBatch::try_new(
            row_schema(),
            vec![
                Arc::new(self.id.finish()),
                Arc::new(self.name.finish()),
                Arc::new(self.region.finish()),
                Arc::new(self.amount.finish()),
                Arc::new(self.quantity.finish()),
                Arc::new(self.updated_at.finish()),
                Arc::new(self.op.finish()),
                Arc::new(self.position.finish()),
                Arc::new(self.commit_ts.finish()),
            ],
        )
        .map_err(|e| Error::Datagen(format!("building rows of {table}: {e}")))?;
        Ok(RowBatch {
            table,
            batch,
            deletes: BooleanArray::from(self.deletes),
            unresolved: Vec::new(),
            rejected: Vec::new(),
            inside: None,
        })
    }
}

/// The generator as a [`Source`].
#[derive(Debug)]
pub struct DatagenSource {
    config: DatagenConfig,
    tables: Vec<TableId>,
    keys: Vec<Keys>,
    /// Per table, the last transaction already in it (not emitted again).
    skip: Vec<u64>,
    /// The next transaction to generate.
    next: u64,
    /// Rate accounting from the start of streaming.
    started: Instant,
    first: u64,
    queue: VecDeque<Event>,
}

impl DatagenSource {
    pub fn new(config: DatagenConfig) -> Result<Self> {
        let tables = config
            .tables
            .iter()
            .map(|t| {
                let (schema, name) = t
                    .split_once('.')
                    .ok_or_else(|| Error::Datagen(format!("table {t:?} is not schema.table")))?;
                Ok(TableId::new(schema, name))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = tables.len();
        Ok(DatagenSource {
            config,
            tables,
            keys: (0..n).map(|_| Keys::default()).collect(),
            skip: vec![0; n],
            next: 1,
            started: Instant::now(),
            first: 1,
            queue: VecDeque::new(),
        })
    }

    /// The changes of transaction `n`, applied to the key sets.
    fn transaction(&mut self, n: u64) -> Vec<Change> {
        let mut rng = SplitMix::new(self.config.seed, n);
        let Mix {
            insert,
            update,
            delete,
        } = self.config.mix;
        let total = u64::from(insert) + u64::from(update) + u64::from(delete);
        let mut changes = Vec::with_capacity(self.config.transaction_size as usize);
        for _ in 0..self.config.transaction_size {
            let table = rng.below(self.tables.len() as u64) as usize;
            let keys = &mut self.keys[table];
            let draw = rng.below(total);
            let full = keys.live.len() as u64 >= self.config.key_space;
            let mut op = if draw < u64::from(insert) {
                Op::Insert
            } else if draw < u64::from(insert) + u64::from(update) {
                Op::Update
            } else {
                Op::Delete
            };
            if op == Op::Insert && full {
                op = Op::Update;
            }
            if keys.live.is_empty() {
                op = Op::Insert;
            }
            let id = match op {
                Op::Insert => {
                    // The next unused id (ids of deleted rows come back once all were used).
                    let mut id = keys.next_id;
                    while keys.index.contains_key(&id) {
                        id = (id + 1) % self.config.key_space as i64;
                    }
                    keys.next_id = (id + 1) % self.config.key_space as i64;
                    keys.insert(id);
                    id
                }
                Op::Update => keys.live[rng.below(keys.live.len() as u64) as usize],
                Op::Delete => {
                    let id = keys.live[rng.below(keys.live.len() as u64) as usize];
                    keys.remove(id);
                    id
                }
            };
            changes.push(Change {
                table,
                op,
                id,
                values: rng.next(),
            });
        }
        changes
    }

    /// Generates the transactions that are due into the queue: rows per table, then one commit.
    fn generate(&mut self, count: u64) -> Result<()> {
        let mut rows: BTreeMap<usize, Rows> = BTreeMap::new();
        let mut last = None;
        for _ in 0..count {
            let n = self.next;
            self.next += 1;
            let commit_ts = now_micros();
            for (i, change) in self.transaction(n).into_iter().enumerate() {
                if n <= self.skip[change.table] {
                    continue;
                }
                rows.entry(change.table).or_insert_with(Rows::new).append(
                    &change,
                    n << 16 | i as u64,
                    commit_ts,
                );
            }
            last = Some((commit_position(n), commit_ts));
        }
        for (table, rows) in rows {
            let id = self.tables[table].clone();
            self.queue.push_back(Event::Rows(rows.finish(id)?));
        }
        if let Some((position, commit_ts)) = last {
            self.queue.push_back(Event::Commit {
                position,
                commit_ts,
            });
        }
        Ok(())
    }

    /// Transactions due by now at the configured rate.
    fn due(&self) -> u64 {
        if self.config.rate == 0 {
            return MAX_TRANSACTIONS_PER_BATCH;
        }
        let per_second = self.config.rate as f64 / f64::from(self.config.transaction_size);
        let should = (self.started.elapsed().as_secs_f64() * per_second) as u64;
        (self.first + should)
            .saturating_sub(self.next)
            .min(MAX_TRANSACTIONS_PER_BATCH)
    }

    /// How long until the next transaction is due.
    fn until_due(&self) -> Duration {
        let per_second = self.config.rate as f64 / f64::from(self.config.transaction_size);
        let at = (self.next + 1 - self.first) as f64 / per_second;
        Duration::from_secs_f64(at).saturating_sub(self.started.elapsed())
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Source for DatagenSource {
    fn kind(&self) -> &'static str {
        "datagen"
    }

    fn display(&self, position: u64) -> String {
        format!("transaction {}", transaction_at(position))
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>> {
        Ok(self
            .tables
            .iter()
            .map(|id| TableInfo {
                id: id.clone(),
                schema: data_schema(),
                key_columns: vec!["id".to_string()],
            })
            .collect())
    }

    async fn start(&mut self, checkpoints: BTreeMap<TableId, Checkpoint>) -> Result<()> {
        for (i, id) in self.tables.iter().enumerate() {
            self.queue.push_back(Event::Schema(SchemaChange {
                table: id.clone(),
                schema: data_schema(),
            }));
            match checkpoints.get(id) {
                Some(c) => self.skip[i] = transaction_at(c.position),
                // Nothing to copy: the table starts with the first transaction.
                None => self.queue.push_back(Event::SnapshotDone {
                    table: id.clone(),
                    position: 0,
                    consistent_from: 0,
                }),
            }
        }
        // Replay what every table already has, to rebuild the live keys.
        let done = self.skip.iter().copied().min().unwrap_or(0);
        while self.next <= done {
            let n = self.next;
            self.transaction(n);
            self.next += 1;
        }
        self.first = self.next;
        self.started = Instant::now();
        Ok(())
    }

    async fn next(&mut self, wait: Duration) -> Result<Event> {
        if let Some(event) = self.queue.pop_front() {
            return Ok(event);
        }
        let due = self.due();
        if due == 0 {
            let sleep = self.until_due();
            if sleep > wait {
                tokio::time::sleep(wait).await;
                return Ok(Event::Idle);
            }
            tokio::time::sleep(sleep).await;
        }
        self.generate(self.due().max(1))?;
        Ok(self.queue.pop_front().unwrap_or(Event::Idle))
    }

    fn acknowledge(&mut self, _position: u64) {}

    /// Never called: generated transactions are small and carry no `inside`.
    fn durable_inside(&mut self, _table: &TableId, _inside: Inside) {}

    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CDC_OP, CDC_POSITION};

    fn config(tables: &[&str]) -> DatagenConfig {
        DatagenConfig {
            tables: tables.iter().map(|t| t.to_string()).collect(),
            key_space: 50,
            rate: 0,
            transaction_size: 7,
            mix: Mix::default(),
            seed: 3,
        }
    }

    /// Drains `count` commits of events, returning (table, op, id, position) per row.
    async fn drain(source: &mut DatagenSource, commits: usize) -> Vec<(String, String, i64, i64)> {
        let mut out = Vec::new();
        let mut seen = 0;
        while seen < commits {
            match source.next(Duration::from_millis(10)).await.unwrap() {
                Event::Rows(rows) => {
                    let op = rows.batch.column_by_name(CDC_OP).unwrap();
                    let op = op
                        .as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .unwrap();
                    let id = rows
                        .batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .unwrap();
                    let pos = rows.batch.column_by_name(CDC_POSITION).unwrap();
                    let pos = pos
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .unwrap();
                    for i in 0..rows.batch.num_rows() {
                        assert_eq!(rows.deletes.value(i), op.value(i) == "d");
                        out.push((
                            rows.table.to_string(),
                            op.value(i).to_string(),
                            id.value(i),
                            pos.value(i),
                        ));
                    }
                }
                Event::Commit { .. } => seen += 1,
                _ => {}
            }
        }
        out
    }

    #[tokio::test]
    async fn the_stream_is_valid_and_resumes_where_each_table_stopped() {
        let mut source = DatagenSource::new(config(&["s.a", "s.b"])).unwrap();
        source.start(BTreeMap::new()).await.unwrap();
        let all = drain(&mut source, 1).await;
        assert!(all.len() > 100, "{}", all.len());
        // A valid history: inserts of absent keys, updates and deletes of present ones.
        let mut live: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
        for (table, op, id, _) in &all {
            let keys = live.entry(table.clone()).or_default();
            match op.as_str() {
                "c" => assert!(keys.insert(*id), "insert of live {table} {id}"),
                "u" => assert!(keys.contains(id), "update of absent {table} {id}"),
                "d" => assert!(keys.remove(id), "delete of absent {table} {id}"),
                _ => unreachable!(),
            }
            assert!(keys.len() <= 50);
        }
        assert!(all.iter().any(|c| c.1 == "d") && all.iter().any(|c| c.1 == "u"));
        // Positions strictly increase per table in stream order.
        for table in ["s.a", "s.b"] {
            let positions: Vec<i64> = all.iter().filter(|c| c.0 == table).map(|c| c.3).collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{table}");
        }

        // Table a durable up to some transaction, b up to an earlier one: each resumes after
        // its own checkpoint, with the same changes as the first run.
        let cut_a = all[all.len() / 2].3 as u64 | 0xFFFF;
        let cut_b = all[all.len() / 4].3 as u64 | 0xFFFF;
        let checkpoint = |position| Checkpoint {
            position,
            snapshot: crate::change::SnapshotState::Done,
            consistent_from: 0,
            source: Some("datagen".into()),
            origin: None,
            gtid: None,
            inside: None,
        };
        let mut again = DatagenSource::new(config(&["s.a", "s.b"])).unwrap();
        again
            .start(BTreeMap::from([
                (TableId::new("s", "a"), checkpoint(cut_a)),
                (TableId::new("s", "b"), checkpoint(cut_b)),
            ]))
            .await
            .unwrap();
        let resumed = drain(&mut again, 1).await;
        for (table, cut) in [("s.a", cut_a), ("s.b", cut_b)] {
            let expected: Vec<_> = all
                .iter()
                .filter(|c| c.0 == table && c.3 as u64 > cut)
                .collect();
            let got: Vec<_> = resumed.iter().filter(|c| c.0 == table).collect();
            assert!(
                !expected.is_empty() && got.len() >= expected.len(),
                "{table}"
            );
            assert_eq!(got[..expected.len()], expected[..], "{table}");
        }
    }
}
