//! A record key lives in at most one partition: deletes that carry only the key remove it wherever
//! it is, changes that move it to another partition delete it from the old one in the same commit,
//! key changes leave nothing behind, and a stale change moves nothing — copy-on-write and
//! merge-on-read, event-time and commit-time ordered.

use arrow::array::RecordBatch;
use inlet_table::read::Query;
use inlet_table::{Result, TableType};

use crate::util::*;

/// `(id, part, ts, value)` rows where `part` may be null (a delete with only the key).
fn key_only_delete(id: i64) -> RecordBatch {
    let batch = rows(&[(id, "", None, None)]);
    // `part` null, as a delete under PostgreSQL's default replica identity carries it.
    let mut columns = batch.columns().to_vec();
    columns[1] = arrow::array::new_null_array(&arrow::datatypes::DataType::Utf8, 1);
    RecordBatch::try_new(batch.schema(), columns).expect("valid batch")
}

async fn state(table: &inlet_table::Table) -> Result<Vec<(String, String, String)>> {
    // read_map asserts that no key is read twice.
    Ok(read_map(table, &Query::Snapshot)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v["part"].clone(), v["value"].clone()))
        .collect())
}

fn expect(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[tokio::test]
async fn keys_are_unique_across_partitions() -> Result<()> {
    for table_type in [TableType::CopyOnWrite, TableType::MergeOnRead] {
        for ordering in [Some("ts"), None] {
            let context = format!("{table_type:?}, ordering {ordering:?}");
            let dir = tempfile::tempdir().expect("temp dir");
            let mut props = props(&["id"], ordering, &["part"], 2);
            props.table_type = table_type;
            let table = local_table(&dir, props).await?;
            upsert(
                &table,
                rows(&[
                    (1, "a", Some(10), Some("one")),
                    (2, "b", Some(10), Some("two")),
                    (3, "a", Some(10), Some("three")),
                    (4, "Köln", Some(10), Some("four")),
                ]),
                None,
            )
            .await?;

            // A delete with only the key, as Debezium sends it.
            let c = upsert(&table, key_only_delete(1), Some(vec![true])).await?;
            assert_eq!(c.metadata.totals().deletes, 1, "{context}");
            // An update that moves key 2 from b to c; one that moves 4 with a key-only before.
            upsert(
                &table,
                rows(&[
                    (2, "c", Some(11), Some("TWO")),
                    (4, "a", Some(11), Some("FOUR")),
                ]),
                None,
            )
            .await?;
            assert_eq!(
                state(&table).await?,
                expect(&[("2", "c", "TWO"), ("3", "a", "three"), ("4", "a", "FOUR")]),
                "{context}"
            );
            // A primary key change: the old key is deleted (key only), the new one written.
            upsert(
                &table,
                arrow::compute::concat_batches(
                    &rows(&[]).schema(),
                    &[
                        key_only_delete(3),
                        rows(&[(30, "b", Some(12), Some("thirty"))]),
                    ],
                )?,
                Some(vec![true, false]),
            )
            .await?;
            // Moves back and forth in one commit: the last one wins, one row.
            upsert(
                &table,
                rows(&[
                    (2, "a", Some(13), Some("x")),
                    (2, "b", Some(14), Some("y")),
                    (2, "c", Some(15), Some("z")),
                ]),
                None,
            )
            .await?;
            assert_eq!(
                state(&table).await?,
                expect(&[("2", "c", "z"), ("30", "b", "thirty"), ("4", "a", "FOUR")]),
                "{context}"
            );
            // A stale change (older ts) that would move a key moves nothing when event-time
            // ordered; commit-time ordered, the latest write wins and moves it.
            upsert(&table, rows(&[(2, "d", Some(1), Some("stale"))]), None).await?;
            let expected = if ordering.is_some() {
                expect(&[("2", "c", "z"), ("30", "b", "thirty"), ("4", "a", "FOUR")])
            } else {
                expect(&[
                    ("2", "d", "stale"),
                    ("30", "b", "thirty"),
                    ("4", "a", "FOUR"),
                ])
            };
            assert_eq!(state(&table).await?, expected, "{context}");
            // Deleting keys that are stored nowhere changes nothing.
            let c = upsert(&table, key_only_delete(99), Some(vec![true])).await?;
            assert_eq!(c.metadata.totals().deletes, 0, "{context}");
            assert_eq!(state(&table).await?, expected, "{context}");
        }
    }
    Ok(())
}
