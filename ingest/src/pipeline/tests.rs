//! The pipeline against a scripted source and in-memory tables.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;
use inlet_table::{Table, TableConfig, TableProperties, TableType};
use tokio::sync::Mutex;

use super::*;
use crate::change::{SchemaChange, TableInfo};
use crate::postgres::rows::{Cell, ColumnSpec, RowBuilder, data_schema};
use crate::postgres::types::Conv;
use inlet_table::read::Query;

/// Plays a list of events, then reports `Idle`; records acknowledgements.
#[derive(Debug)]
struct Scripted {
    events: VecDeque<Event>,
    acks: Arc<Mutex<Vec<u64>>>,
    started_with: Arc<Mutex<BTreeMap<TableId, Checkpoint>>>,
}

impl Source for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>> {
        Ok(Vec::new())
    }

    async fn start(&mut self, checkpoints: BTreeMap<TableId, Checkpoint>) -> Result<()> {
        *self.started_with.lock().await = checkpoints;
        Ok(())
    }

    async fn next(&mut self, _wait: Duration) -> Result<Event> {
        Ok(self.events.pop_front().unwrap_or(Event::Idle))
    }

    fn acknowledge(&mut self, position: u64) {
        self.acks.try_lock().unwrap().push(position);
    }

    fn durable_inside(&mut self, _table: &TableId, _inside: crate::change::Inside) {}

    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

fn specs() -> Vec<ColumnSpec> {
    vec![
        ColumnSpec {
            name: "id".into(),
            conv: Conv::I32,
        },
        ColumnSpec {
            name: "body".into(),
            conv: Conv::Text,
        },
    ]
}

fn t() -> TableId {
    TableId::new("public", "t")
}

/// Rows of `public.t`: (op, position, id, body) where body `None` is an unchanged value and
/// op `d` is a delete.
fn rows(list: &[(&str, i64, &str, Option<&str>)]) -> Event {
    let mut b = RowBuilder::new(t(), specs());
    for (op, position, id, body) in list {
        let body = match body {
            Some(text) => Cell::Text(text),
            None if *op == "d" => Cell::Null,
            None => Cell::Unchanged,
        };
        b.append(
            op,
            Some(*position),
            None,
            *op == "d",
            [Cell::Text(id), body],
            None,
        )
        .unwrap();
    }
    Event::Rows(b.finish().unwrap().unwrap())
}

async fn table(uri: &str) -> Table {
    let mut props = TableProperties::new("t", TableType::CopyOnWrite, vec!["id".into()]);
    props.ordering_field = Some(crate::CDC_POSITION.into());
    props.buckets = Some(1);
    match Table::open(uri, TableConfig::default()).await {
        Ok(table) => table,
        Err(_) => Table::create(uri, TableConfig::default(), props)
            .await
            .unwrap(),
    }
}

#[derive(Debug)]
struct Run {
    summary: RunSummary,
    acks: Vec<u64>,
    started_with: BTreeMap<TableId, Checkpoint>,
}

async fn run(uri: &str, events: Vec<Event>, stop_at: u64) -> Result<Run> {
    let acks = Arc::new(Mutex::new(Vec::new()));
    let started_with = Arc::new(Mutex::new(BTreeMap::new()));
    let source = Scripted {
        events: events.into(),
        acks: acks.clone(),
        started_with: started_with.clone(),
    };
    let target = Target {
        table: table(uri).await,
        key: vec!["id".into()],
        schema: data_schema(&specs()),
        flow: super::flow::Flow::Identity,
    };
    let options = PipelineOptions {
        stop_at: Some(stop_at),
        ..PipelineOptions::new(1000, 1 << 30, Duration::from_millis(10))
    };
    let pipeline = Pipeline::open(source, BTreeMap::from([(t(), target)]), options).await?;
    let summary = pipeline.run(Arc::new(AtomicBool::new(false))).await?;
    let acks = acks.lock().await.clone();
    let started_with = started_with.lock().await.clone();
    Ok(Run {
        summary,
        acks,
        started_with,
    })
}

/// (id, body) of the table's rows, sorted by id.
async fn contents(uri: &str) -> Vec<(i32, Option<String>)> {
    let table = table(uri).await;
    let result = table.read(&Query::Snapshot).await.unwrap();
    let mut out = Vec::new();
    for batch in result.batches {
        let ids = batch
            .column_by_name("id")
            .unwrap()
            .as_primitive::<Int32Type>();
        let bodies = batch.column_by_name("body").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            let body = (!bodies.is_null(i)).then(|| bodies.value(i).to_string());
            out.push((ids.value(i), body));
        }
    }
    out.sort();
    out
}

fn snapshot_done(position: u64) -> Event {
    Event::SnapshotDone {
        table: t(),
        position,
        consistent_from: 0,
    }
}

#[tokio::test]
async fn commits_whole_transactions_and_acknowledges_after() {
    let uri = "memory://pipeline-commits";
    let events = vec![
        snapshot_done(10),
        rows(&[("c", 11, "1", Some("a")), ("c", 12, "2", Some("b"))]),
        Event::Commit {
            position: 20,
            commit_ts: 0,
        },
        // An open transaction, voided and delivered again.
        rows(&[("u", 21, "1", Some("x"))]),
        Event::Rollback,
        rows(&[("u", 21, "1", Some("x"))]),
        Event::Commit {
            position: 30,
            commit_ts: 0,
        },
        // Never committed: must not be written.
        rows(&[("c", 31, "3", Some("open"))]),
    ];
    let run1 = run(uri, events, 30).await.unwrap();
    assert_eq!(
        contents(uri).await,
        vec![(1, Some("x".into())), (2, Some("b".into()))]
    );
    assert_eq!(run1.acks.last(), Some(&30));
    assert!(run1.acks.iter().all(|&a| a <= 30));
    assert!(run1.started_with.is_empty());
    // A restart starts from the checkpoint in the table.
    let run2 = run(uri, vec![], 0).await.unwrap();
    assert_eq!(run2.started_with[&t()].position, 30);
    assert_eq!(run2.started_with[&t()].snapshot, SnapshotState::Done);
    assert_eq!(run2.summary.rows, 0);
}

#[tokio::test]
async fn unchanged_values_come_from_the_batch_or_the_lake() {
    let uri = "memory://pipeline-toast";
    let events = vec![
        snapshot_done(1),
        rows(&[("c", 2, "1", Some("big-1")), ("c", 3, "2", Some("big-2"))]),
        Event::Commit {
            position: 5,
            commit_ts: 0,
        },
    ];
    run(uri, events, 5).await.unwrap();
    let events = vec![
        // From the lake (1), from an earlier row of the batch (3), chained (3 again).
        rows(&[
            ("u", 6, "1", None),
            ("c", 7, "3", Some("big-3")),
            ("u", 8, "3", None),
            ("u", 9, "3", None),
        ]),
        Event::Commit {
            position: 10,
            commit_ts: 0,
        },
    ];
    run(uri, events, 10).await.unwrap();
    assert_eq!(
        contents(uri).await,
        vec![
            (1, Some("big-1".into())),
            (2, Some("big-2".into())),
            (3, Some("big-3".into()))
        ]
    );
    // A key the lake does not have is an error, not a null.
    let events = vec![
        rows(&[("u", 11, "9", None)]),
        Event::Commit {
            position: 12,
            commit_ts: 0,
        },
    ];
    let err = run(uri, events, 12).await.unwrap_err().to_string();
    assert!(
        err.contains("column body") && err.contains("key (9)"),
        "{err}"
    );
}

/// Replaying changes over a snapshot taken after them (a copy resumed after a crash): an update
/// of a row the snapshot no longer has (it was moved to another key before the copy) cannot
/// know its unchanged values. Written with nulls it would stay in the lake until the move is
/// replayed, and the move (in a later commit) would copy those nulls to the new key over the
/// snapshot's full row. It is not written at all: the move takes the new key's stored row.
#[tokio::test]
async fn a_replayed_update_of_a_row_the_later_snapshot_lacks_leaves_no_null_behind() {
    let uri = "memory://pipeline-toast-window";
    // The snapshot holds key 3 (moved from 1 before it was taken), consistent from 50.
    let events = vec![
        rows(&[("r", 5, "3", Some("big"))]),
        Event::SnapshotDone {
            table: t(),
            position: 10,
            consistent_from: 50,
        },
        // Replayed: an update of 1 with its body unchanged, committed on its own.
        rows(&[("u", 20, "1", None)]),
        Event::Commit {
            position: 21,
            commit_ts: 0,
        },
    ];
    run(uri, events, 21).await.unwrap();
    assert_eq!(contents(uri).await, vec![(3, Some("big".into()))]);
    // Then the move of 1 to 3: the old key's delete, the new key's row (body unchanged).
    let mut b = RowBuilder::new(t(), specs());
    let delete = b
        .append(
            "d",
            Some(30),
            None,
            true,
            [Cell::Text("1"), Cell::Null],
            None,
        )
        .unwrap();
    b.append(
        "u",
        Some(30),
        None,
        false,
        [Cell::Text("3"), Cell::Unchanged],
        Some(delete),
    )
    .unwrap();
    let events = vec![
        Event::Rows(b.finish().unwrap().unwrap()),
        Event::Commit {
            position: 31,
            commit_ts: 0,
        },
    ];
    run(uri, events, 31).await.unwrap();
    assert_eq!(contents(uri).await, vec![(3, Some("big".into()))]);
}

#[tokio::test]
async fn truncate_empties_the_table_and_keeps_later_rows() {
    let uri = "memory://pipeline-truncate";
    let events = vec![
        snapshot_done(1),
        rows(&[("c", 2, "1", Some("a")), ("c", 3, "2", Some("b"))]),
        Event::Commit {
            position: 5,
            commit_ts: 0,
        },
        rows(&[("c", 6, "3", Some("c"))]),
        Event::Truncate(vec![t()]),
        rows(&[("c", 8, "4", Some("d"))]),
        Event::Commit {
            position: 10,
            commit_ts: 0,
        },
    ];
    run(uri, events, 10).await.unwrap();
    assert_eq!(contents(uri).await, vec![(4, Some("d".into()))]);
}

#[tokio::test]
async fn a_type_change_that_is_not_a_widening_stops_the_table() {
    let uri = "memory://pipeline-schema";
    let events = vec![
        snapshot_done(1),
        rows(&[("c", 2, "1", Some("a"))]),
        Event::Commit {
            position: 5,
            commit_ts: 0,
        },
        Event::Schema(SchemaChange {
            table: t(),
            schema: Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int32, true),
                arrow::datatypes::Field::new("body", arrow::datatypes::DataType::Int64, true),
            ])),
        }),
        Event::Commit {
            position: 8,
            commit_ts: 0,
        },
    ];
    let run = run(uri, events, 8).await.unwrap();
    assert_eq!(run.summary.failed.len(), 1);
    assert!(
        run.summary.failed[0]
            .1
            .contains("column \"body\" changes type from Utf8 to Int64")
    );
    assert!(run.acks.iter().all(|&a| a <= 5), "{:?}", run.acks);
    assert_eq!(contents(uri).await, vec![(1, Some("a".into()))]);
}
