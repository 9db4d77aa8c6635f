//! Keyed lookups and truncates never read the whole table: a lookup reads the one file group that
//! can hold each key (bucket, then key filters), a truncate (a replace commit of every file group)
//! reads no data at all. Proven by making every other data file unreadable.

use std::collections::BTreeMap;

use inlet_table::read::Query;
use inlet_table::{Action, Result, TableType};

use crate::util::*;

/// Overwrites every data file whose path passes `which` with garbage.
fn corrupt(dir: &std::path::Path, which: &dyn Fn(&str) -> bool) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("dir").flatten() {
            let path = entry.path();
            let text = path.display().to_string();
            if path.is_dir() {
                if !text.contains(".hoodie") {
                    stack.push(path);
                }
            } else if (text.ends_with(".parquet") || text.contains(".log.")) && which(&text) {
                std::fs::write(&path, b"not a data file").expect("overwrite");
                n += 1;
            }
        }
    }
    n
}

/// Writes `(id, partition)` rows (ts 1, value `value`) in one commit; the writer stays open.
async fn write_rows(
    table: &inlet_table::Table,
    data: &[(i64, String)],
    value: &str,
) -> Result<inlet_table::write::Writer> {
    let batch = rows(
        &data
            .iter()
            .map(|(i, part)| (*i, part.as_str(), Some(1), Some(value)))
            .collect::<Vec<_>>(),
    );
    let mut writer = table.writer().await?;
    writer
        .commit(inlet_table::write::Changes::upsert(batch), BTreeMap::new())
        .await?;
    Ok(writer)
}

#[tokio::test]
async fn a_lookup_reads_only_the_file_groups_that_can_hold_the_keys() -> Result<()> {
    for table_type in [TableType::CopyOnWrite, TableType::MergeOnRead] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut p = props(&["id"], Some("ts"), &["part"], 4);
        p.table_type = table_type;
        let table = local_table(&dir, p).await?;
        let data: Vec<(i64, String)> = (0..200).map(|i| (i, format!("p{}", i % 10))).collect();
        let mut writer = write_rows(&table, &data, "stored").await?;
        // Key 37 is stored in p7. The first lookup reads the key filters of its bucket in every
        // partition; then every file outside p7 is made unreadable, and the writer (its filters
        // cached) finds the key again reading p7 only.
        let stored = writer
            .lookup(&rows(&[(37, "elsewhere", None, None)]), &[0])
            .await?;
        let (found, stats) = stored;
        assert_eq!(stats.groups_read, 1, "{table_type:?}: {stats:?}");
        assert_eq!(found.num_rows(), 1);
        let files = corrupt(dir.path(), &|path| !path.contains("part=p7"));
        assert!(files > 30, "{files}");
        let (found, stats) = writer
            .lookup(
                &rows(&[(37, "elsewhere", None, None), (9999, "x", None, None)]),
                &[0, 1],
            )
            .await?;
        assert_eq!(stats.groups_read, 1, "{table_type:?}: {stats:?}");
        let values = found.batches[0].column_by_name("value").map(|c| {
            arrow::array::AsArray::as_string::<i32>(c.as_ref())
                .value(0)
                .to_string()
        });
        assert_eq!(values.as_deref(), Some("stored"));
        assert_eq!(found.num_rows(), 1, "key 9999 is stored nowhere");
        writer.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_truncate_replaces_every_file_group_without_reading_data() -> Result<()> {
    for table_type in [TableType::CopyOnWrite, TableType::MergeOnRead] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut p = props(&["id"], Some("ts"), &["part"], 2);
        p.table_type = table_type;
        let table = local_table(&dir, p).await?;
        let batch = rows(&[(1, "a", Some(1), Some("x")), (2, "b", Some(1), Some("y"))]);
        let mut writer = table.writer().await?;
        writer
            .commit(inlet_table::write::Changes::upsert(batch), BTreeMap::new())
            .await?;
        writer.close().await?;
        assert!(corrupt(dir.path(), &|_| true) >= 2);

        let mut writer = table.writer().await?;
        let checkpoint = BTreeMap::from([("inlet.checkpoint".to_string(), "{}".to_string())]);
        let commit = writer.truncate(checkpoint).await?;
        let replaced: usize = commit
            .metadata
            .partition_to_replace_file_ids
            .values()
            .map(Vec::len)
            .sum();
        assert_eq!(replaced, 2, "{table_type:?}");
        assert_eq!(commit.metadata.write_stats().count(), 0);
        assert!(
            commit.metadata.schema().is_some(),
            "hudi-rs needs the schema"
        );
        assert_eq!(table.read(&Query::Snapshot).await?.num_rows(), 0);
        let timeline = table.timeline().await?;
        assert_eq!(
            timeline.latest_completed_write().map(|i| i.action),
            Some(Action::ReplaceCommit)
        );
        // Writes go to new file groups; the replaced (unreadable) ones are never read again.
        writer
            .commit(
                inlet_table::write::Changes::upsert(rows(&[(1, "a", Some(2), Some("again"))])),
                BTreeMap::new(),
            )
            .await?;
        writer.close().await?;
        let read = read_map(&table, &Query::Snapshot).await?;
        assert_eq!(read.len(), 1);
        assert_eq!(read["1"]["value"], "again");
    }
    Ok(())
}

/// A read can be consumed as a stream of batches, file slice by file slice, with the same rows
/// as the collected read.
#[tokio::test]
async fn reads_stream_file_slice_by_file_slice() -> Result<()> {
    use futures::TryStreamExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], Some("ts"), &["part"], 4)).await?;
    let data: Vec<(i64, String)> = (0..400).map(|i| (i, format!("p{}", i % 8))).collect();
    let writer = write_rows(&table, &data, "v").await?;
    writer.close().await?;
    let snapshot = table.snapshot().await?;
    let stream = snapshot.read_stream(&Query::Snapshot, false).await?;
    let batches: Vec<arrow::array::RecordBatch> = stream.batches.try_collect().await?;
    assert_eq!(
        batches.len(),
        32,
        "one batch per file group (8 partitions x 4 buckets)"
    );
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 400);
    assert_eq!(table.read(&Query::Snapshot).await?.num_rows(), 400);
    Ok(())
}

/// A fresh writer of a partitioned table takes the key ranges the writes recorded from the
/// timeline and reads the filters of only the file groups whose range holds a key; deletes that
/// carry only the key and moves between partitions still find every stored key.
#[tokio::test]
async fn a_fresh_writer_reads_only_the_filters_whose_key_range_holds_a_key() -> Result<()> {
    for table_type in [TableType::CopyOnWrite, TableType::MergeOnRead] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut p = props(&["id"], Some("ts"), &["part"], 2);
        p.table_type = table_type;
        let table = local_table(&dir, p).await?;
        // 50 partitions of increasing keys (10000 + 40 per partition): narrow key ranges.
        let data: Vec<(i64, String)> = (0..2000)
            .map(|i| (10_000 + i, format!("p{:02}", i / 40)))
            .collect();
        let writer = write_rows(&table, &data, "v").await?;
        writer.close().await?;

        // A fresh writer: key 11234 (in p30) deleted by key only, key 10055 (p01) moved to p49.
        let mut writer = table.writer().await?;
        let mut changes = rows(&[
            (11_234, "", Some(2), None),
            (10_055, "p49", Some(2), Some("moved")),
        ]);
        let mut columns = changes.columns().to_vec();
        columns[1] = std::sync::Arc::new(arrow::array::StringArray::from(vec![None, Some("p49")]));
        changes = arrow::array::RecordBatch::try_new(changes.schema(), columns).expect("batch");
        let commit = writer
            .commit(
                inlet_table::write::Changes {
                    batch: changes,
                    deletes: Some(arrow::array::BooleanArray::from(vec![true, false])),
                    operation: inlet_table::write::Operation::Upsert,
                },
                BTreeMap::new(),
            )
            .await?;
        writer.close().await?;
        // 100 file groups, of which the two holding the keys' ranges are read.
        assert!(
            commit.lookup.filters_read <= 4,
            "{table_type:?}: {:?}",
            commit.lookup
        );
        let read = read_map(&table, &Query::Snapshot).await?;
        assert_eq!(read.len(), 1999, "{table_type:?}");
        assert!(!read.contains_key("11234"));
        assert_eq!(read["10055"]["part"], "p49");
        assert_eq!(read["10055"]["value"], "moved");
    }
    Ok(())
}
