//! Copy-on-write upserts, deletes, ordering, time travel and incremental reads.

use arrow::array::AsArray;
use inlet_table::bloom::BloomFilter;
use inlet_table::read::Query;
use inlet_table::{InstantTime, Result};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::util::*;

fn before_everything() -> InstantTime {
    "00000000000000000".parse().expect("valid")
}

#[tokio::test]
async fn upserts_deletes_time_travel_and_incremental() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], Some("ts"), &["part"], 2)).await?;
    let c1 = upsert(
        &table,
        rows(&[
            (1, "a", Some(10), Some("one")),
            (2, "a", Some(10), Some("two")),
            (3, "b", Some(10), Some("three")),
            (4, "b", Some(10), Some("four")),
        ]),
        None,
    )
    .await?;
    let totals = c1.metadata.totals();
    assert_eq!((totals.inserts, totals.updates, totals.deletes), (4, 0, 0));
    let before = read_map(&table, &Query::Snapshot).await?;

    // Update 2, delete 3, insert 5; the update of 4 carries an older ts and is stale.
    let c2 = upsert(
        &table,
        rows(&[
            (2, "a", Some(11), Some("TWO")),
            (3, "b", Some(11), None),
            (5, "b", Some(1), Some("five")),
            (4, "b", Some(9), Some("stale")),
        ]),
        Some(vec![false, true, false, false]),
    )
    .await?;
    let totals = c2.metadata.totals();
    assert_eq!((totals.inserts, totals.updates, totals.deletes), (1, 1, 1));

    let now = read_map(&table, &Query::Snapshot).await?;
    let values: Vec<(&str, &str)> = now
        .iter()
        .map(|(k, v)| (k.as_str(), v["value"].as_str()))
        .collect();
    assert_eq!(
        values,
        [("1", "one"), ("2", "TWO"), ("4", "four"), ("5", "five")]
    );
    // Untouched rows keep their commit time and sequence number; changed rows get the new ones.
    assert_eq!(now["1"]["_hoodie_commit_time"], c1.instant.to_string());
    assert_eq!(
        now["1"]["_hoodie_commit_seqno"],
        before["1"]["_hoodie_commit_seqno"]
    );
    assert_eq!(now["4"]["_hoodie_commit_time"], c1.instant.to_string());
    assert_eq!(now["2"]["_hoodie_commit_time"], c2.instant.to_string());
    assert!(now["2"]["_hoodie_commit_seqno"].starts_with(&format!("{}_", c2.instant)));
    assert_eq!(now["5"]["_hoodie_partition_path"], "part=b");
    assert!(now["5"]["_hoodie_file_name"].ends_with(&format!("_{}.parquet", c2.instant)));

    assert_eq!(
        read_map(&table, &Query::AsOf(c1.instant.clone())).await?,
        before
    );
    let changed = column(
        &table,
        &Query::Incremental {
            from: c1.instant.clone(),
            to: None,
        },
        "value",
    )
    .await?;
    assert_eq!(changed, map(&[("2", "TWO"), ("5", "five")]));
    let first = column(
        &table,
        &Query::Incremental {
            from: before_everything(),
            to: Some(c1.instant.clone()),
        },
        "value",
    )
    .await?;
    assert_eq!(
        first,
        map(&[("1", "one"), ("2", "two"), ("3", "three"), ("4", "four")])
    );

    // The on-disk layout Hudi readers need.
    let files = files(&dir);
    for expected in [
        ".hoodie/hoodie.properties",
        "part=a/.hoodie_partition_metadata",
        "part=b/.hoodie_partition_metadata",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} missing from {files:?}"
        );
    }
    for instant in [&c1.instant, &c2.instant] {
        for suffix in ["commit.requested", "inflight", "commit"] {
            let name = format!(".hoodie/{instant}.{suffix}");
            assert!(files.contains(&name), "{name} missing");
        }
    }
    let metafile = std::fs::read_to_string(dir.path().join("part=a/.hoodie_partition_metadata"))
        .expect("metafile");
    assert!(
        metafile.contains(&format!("commitTime={}\npartitionDepth=1", c1.instant)),
        "{metafile}"
    );
    Ok(())
}

#[tokio::test]
async fn commit_time_ordering_lets_the_latest_write_win() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], None, &[], 1)).await?;
    upsert(&table, rows(&[(1, "a", Some(10), Some("first"))]), None).await?;
    upsert(&table, rows(&[(1, "a", Some(1), Some("second"))]), None).await?;
    assert_eq!(
        column(&table, &Query::Snapshot, "value").await?,
        map(&[("1", "second")])
    );
    Ok(())
}

#[tokio::test]
async fn changes_to_one_key_within_a_commit_reduce_to_the_winner() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], Some("ts"), &[], 3)).await?;
    upsert(&table, rows(&[(9, "a", Some(1), Some("kept"))]), None).await?;
    let batch = rows(&[
        (1, "a", Some(1), Some("insert")),
        (1, "a", Some(2), Some("update")),
        (2, "a", Some(1), Some("insert")),
        (2, "a", Some(2), None),
        (3, "a", Some(1), None),
        (3, "a", Some(2), Some("re-insert")),
        (9, "a", Some(5), None),
        (9, "a", Some(4), Some("stale")),
    ]);
    let deletes = vec![false, false, false, true, true, false, true, false];
    let commit = upsert(&table, batch, Some(deletes)).await?;
    assert_eq!(
        column(&table, &Query::Snapshot, "value").await?,
        map(&[("1", "update"), ("3", "re-insert")])
    );
    let totals = commit.metadata.totals();
    assert_eq!((totals.inserts, totals.deletes), (2, 1));
    Ok(())
}

#[tokio::test]
async fn composite_keys_plain_partitions_and_null_partition_values() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut props = props(&["id", "part"], None, &["part"], 2);
    props.hive_style_partitioning = false;
    let table = local_table(&dir, props).await?;
    let batch = rows(&[
        (1, "a", None, Some("x")),
        (1, "b", None, Some("y")),
        (2, "", None, Some("z")),
    ]);
    upsert(&table, batch, None).await?;
    let read = read_map(&table, &Query::Snapshot).await?;
    let keys: Vec<(&str, &str)> = read
        .iter()
        .map(|(k, v)| (k.as_str(), v["_hoodie_partition_path"].as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("id:1,part:a", "a"),
            ("id:1,part:b", "b"),
            ("id:2,part:__empty__", "__HIVE_DEFAULT_PARTITION__")
        ]
    );
    let props_text =
        std::fs::read_to_string(dir.path().join(".hoodie/hoodie.properties")).expect("properties");
    assert!(
        props_text
            .contains("hoodie.table.keygenerator.class=org.apache.hudi.keygen.ComplexKeyGenerator")
    );
    assert!(props_text.contains("hoodie.table.recordkey.fields=id,part"));
    Ok(())
}

#[tokio::test]
async fn a_bucket_keeps_its_file_group_across_commits() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], None, &[], 2)).await?;
    let c1 = upsert(
        &table,
        rows(
            &(0..20)
                .map(|i| (i, "a", None, Some("v1")))
                .collect::<Vec<_>>(),
        ),
        None,
    )
    .await?;
    let c2 = upsert(
        &table,
        rows(
            &(0..20)
                .map(|i| (i, "a", None, Some("v2")))
                .collect::<Vec<_>>(),
        ),
        None,
    )
    .await?;
    let groups = |c: &inlet_table::write::Commit| {
        let mut ids: Vec<String> = c
            .metadata
            .write_stats()
            .map(|s| s.file_id.clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(groups(&c1).len(), 2, "20 keys spread over both buckets");
    assert_eq!(groups(&c1), groups(&c2));
    for stat in c2.metadata.write_stats() {
        assert_eq!(stat.prev_commit.as_deref(), Some(c1.instant.as_str()));
        assert!(stat.file_id.starts_with("0000000"), "{}", stat.file_id);
    }
    Ok(())
}

#[tokio::test]
async fn file_groups_larger_than_a_batch_merge_correctly() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], Some("ts"), &[], 1)).await?;
    let n = 20_000i64;
    let first: Vec<(i64, &str, Option<i64>, Option<&str>)> =
        (0..n).map(|i| (i, "a", Some(1), Some("old"))).collect();
    let c1 = upsert(&table, rows(&first), None).await?;
    // Changes spread over every stored batch: updates, deletes, a stale update and inserts.
    let mut changes = Vec::new();
    let mut deletes = Vec::new();
    for i in (0..n).step_by(997) {
        changes.push((i, "a", Some(2), Some("new")));
        deletes.push(false);
    }
    for i in (500..n).step_by(1499) {
        changes.push((i, "a", Some(2), None));
        deletes.push(true);
    }
    changes.push((19_999, "a", Some(0), Some("stale")));
    deletes.push(false);
    for i in n..n + 10 {
        changes.push((i, "a", Some(2), Some("inserted")));
        deletes.push(false);
    }
    let c2 = upsert(&table, rows(&changes), Some(deletes)).await?;
    let updated = (0..n)
        .step_by(997)
        .filter(|i| *i < 500 || (i - 500) % 1499 != 0)
        .count() as i64;
    let deleted = (500..n).step_by(1499).count() as i64;
    let totals = c2.metadata.totals();
    assert_eq!(
        (totals.updates, totals.deletes, totals.inserts),
        (updated, deleted, 10)
    );

    let read = read_map(&table, &Query::Snapshot).await?;
    assert_eq!(read.len() as i64, n - deleted + 10);
    assert_eq!(read["997"]["value"], "new");
    assert_eq!(read["997"]["_hoodie_commit_time"], c2.instant.to_string());
    assert_eq!(read["998"]["value"], "old");
    assert_eq!(read["998"]["_hoodie_commit_time"], c1.instant.to_string());
    assert!(!read.contains_key("500") && !read.contains_key("1999"));
    assert_eq!(read["19999"]["value"], "old", "the stale update is dropped");
    assert_eq!(read["20005"]["value"], "inserted");
    // New records get distinct sequence numbers.
    let seqnos: std::collections::BTreeSet<&String> = read
        .values()
        .filter(|r| r["_hoodie_commit_time"] == c2.instant.to_string())
        .map(|r| &r["_hoodie_commit_seqno"])
        .collect();
    assert_eq!(seqnos.len() as i64, updated + 10);
    Ok(())
}

/// The bloom filter in a base file's footer and the record keys the file holds.
fn footer_filter_and_keys(path: &std::path::Path) -> (BloomFilter, Vec<String>) {
    let file = std::fs::File::open(path).expect("a base file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet file");
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let get = |key: &str| {
        kv.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_deref())
    };
    let filter = BloomFilter::from_footer(get)
        .expect("a valid filter")
        .expect("a filter");
    let mut keys = Vec::new();
    for batch in builder.build().expect("a reader") {
        let batch = batch.expect("a batch");
        let column = batch
            .column_by_name("_hoodie_record_key")
            .expect("meta column");
        keys.extend(column.as_string::<i32>().iter().flatten().map(String::from));
    }
    (filter, keys)
}

/// A rewrite of a file group larger than a bloom filter's row (60,000 keys) keeps the stored
/// file's filter and adds the new keys only, however many; once the keys it keeps for deleted
/// rows would pass a quarter of the rows, the filter is built anew. Either way it holds every key
/// of the file.
#[tokio::test]
async fn large_file_groups_extend_their_bloom_filter_with_new_keys_only() -> Result<()> {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], Some("ts"), &[], 1)).await?;
    let n = 80_000i64;
    let first: Vec<(i64, &str, Option<i64>, Option<&str>)> =
        (0..n).map(|i| (i, "a", Some(1), Some("old"))).collect();
    upsert(&table, rows(&first), None).await?;
    let mut live: std::collections::BTreeSet<i64> = (0..n).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let (mut extended, mut rebuilt) = (0, 0);
    let mut added_before = n as usize;
    // Small commits extend the filter; the one that deletes 16,000 rows (a fifth: with the keys
    // of the 3,000 deleted before, they would pass a quarter of the 64,000 rows left) rebuilds
    // it; inserts extend it, even 40,000 at once.
    let rounds = [
        (1_500, 1_500),
        (1_500, 1_500),
        (16_000, 1_500),
        (1_500, 1_500),
        (0, 40_000),
    ];
    for (round, (deleted, inserts)) in rounds.into_iter().enumerate() {
        let ts = Some(2 + round as i64);
        let mut changes: Vec<(i64, &str, Option<i64>, Option<&str>)> = Vec::new();
        let mut flags = Vec::new();
        let existing: Vec<i64> = live.iter().copied().collect();
        let mut touched = std::collections::BTreeSet::new();
        while touched.len() < deleted {
            let id = existing[rng.random_range(0..existing.len())];
            if touched.insert(id) {
                changes.push((id, "a", ts, None));
                flags.push(true);
                live.remove(&id);
            }
        }
        for _ in 0..2_000 {
            let id = existing[rng.random_range(0..existing.len())];
            if touched.insert(id) {
                changes.push((id, "a", ts, Some("updated")));
                flags.push(false);
            }
        }
        // New keys, some of them keys deleted in an earlier round.
        let mut inserted = 0;
        while inserted < inserts {
            let id = rng.random_range(0..2 * n);
            if !live.contains(&id) && touched.insert(id) {
                changes.push((id, "a", ts, Some("inserted")));
                flags.push(false);
                live.insert(id);
                inserted += 1;
            }
        }
        let commit = upsert(&table, rows(&changes), Some(flags)).await?;
        let stats: Vec<_> = commit.metadata.write_stats().collect();
        assert_eq!(stats.len(), 1, "one file group");
        let path = dir.path().join(stats[0].path.as_deref().expect("a path"));
        let (filter, keys) = footer_filter_and_keys(&path);
        let expected: Vec<String> = live.iter().map(i64::to_string).collect();
        let mut sorted = keys.clone();
        sorted.sort_by_key(|k| k.parse::<i64>().expect("an id"));
        assert_eq!(
            sorted, expected,
            "round {round}: the file holds the live keys"
        );
        let missing: Vec<&String> = keys.iter().filter(|k| !filter.might_contain(k)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: the filter lacks {missing:?}"
        );
        let added = filter.added().expect("a dynamic filter");
        if added == added_before + inserted {
            extended += 1;
        } else {
            assert_eq!(
                added,
                keys.len(),
                "round {round}: a rebuilt filter holds the file's keys"
            );
            rebuilt += 1;
        }
        added_before = added;
    }
    assert_eq!((extended, rebuilt), (4, 1));
    Ok(())
}

/// The bytes of column `column`'s chunk in each row group of a base file.
fn column_chunks(path: &std::path::Path, column: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("a base file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
        .expect("a Parquet file");
    builder
        .metadata()
        .row_groups()
        .iter()
        .map(|group| {
            let chunk = group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == column)
                .expect("the column");
            let (start, length) = chunk.byte_range();
            bytes[start as usize..(start + length) as usize].to_vec()
        })
        .collect()
}

/// A rewrite copies the stored row groups no change touches as they are (but for
/// `_hoodie_file_name`, which names the new file), merges the others, and reads back equal.
#[tokio::test]
async fn untouched_row_groups_are_copied_as_they_are() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], Some("ts"), &[], 1)).await?;
    // More rows than a bloom filter row holds (60,000), so that the rewrite keeps the filter.
    let n = 70_000i64;
    let first: Vec<(i64, &str, Option<i64>, Option<&str>)> =
        (0..n).map(|i| (i, "a", Some(1), Some("first"))).collect();
    let c1 = upsert(&table, rows(&first), None).await?;
    let path = |c: &inlet_table::write::Commit| {
        let stats: Vec<_> = c.metadata.write_stats().collect();
        dir.path().join(stats[0].path.as_deref().expect("a path"))
    };
    // Inserts only: the stored row group is copied, the new rows form a second one.
    let second: Vec<(i64, &str, Option<i64>, Option<&str>)> = (n..2 * n)
        .map(|i| (i, "a", Some(2), Some("second")))
        .collect();
    let c2 = upsert(&table, rows(&second), None).await?;
    let (p1, p2) = (path(&c1), path(&c2));
    let (v1, v2) = (column_chunks(&p1, "value"), column_chunks(&p2, "value"));
    assert_eq!(v2.len(), 2, "a copied row group and a new one");
    assert_eq!(v2[0], v1[0], "the first row group's bytes are copied");
    // No incoming key is in the stored filter: the row group was copied with its keys unread,
    // and the footer's key range comes from the stored one and the new keys.
    let (filter, keys) = footer_filter_and_keys(&p2);
    assert_eq!(keys.len() as i64, 2 * n);
    assert!(keys.iter().all(|k| filter.might_contain(k)));
    assert_eq!(footer_key_range(&p2), java_range(&keys));
    // A change in the second row group: the first is copied again, the second merged.
    let changes = vec![
        (n + 5, "a", Some(3), Some("changed")),
        (n + 6, "a", Some(3), None),
    ];
    let c3 = upsert(&table, rows(&changes), Some(vec![false, true])).await?;
    let p3 = path(&c3);
    let v3 = column_chunks(&p3, "value");
    assert_eq!(v3[0], v1[0], "the untouched row group's bytes are copied");
    assert_ne!(v3[1], v2[1], "the touched row group is written anew");

    let read = read_map(&table, &Query::Snapshot).await?;
    assert_eq!(read.len() as i64, 2 * n - 1);
    let name = p3.file_name().and_then(|n| n.to_str()).expect("a name");
    assert!(
        read.values().all(|r| r["_hoodie_file_name"] == name),
        "every row names the file"
    );
    assert_eq!(read["7"]["value"], "first");
    assert_eq!(read["7"]["_hoodie_commit_time"], c1.instant.to_string());
    assert_eq!(
        read[&(n + 7).to_string()]["_hoodie_commit_time"],
        c2.instant.to_string()
    );
    assert_eq!(read[&(n + 5).to_string()]["value"], "changed");
    assert!(!read.contains_key(&(n + 6).to_string()));
    // Every key is in the footer's filter and within its key range.
    let (filter, keys) = footer_filter_and_keys(&p3);
    assert_eq!(keys.len() as i64, 2 * n - 1);
    assert!(keys.iter().all(|k| filter.might_contain(k)));
    assert_eq!(footer_key_range(&p3), java_range(&keys));
    Ok(())
}

/// The footer's `hoodie_min_record_key` and `hoodie_max_record_key`.
fn footer_key_range(path: &std::path::Path) -> Option<(String, String)> {
    let file = std::fs::File::open(path).expect("a base file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet file");
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()?
        .clone();
    let get = |key: &str| {
        kv.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
    };
    Some((get("hoodie_min_record_key")?, get("hoodie_max_record_key")?))
}

/// The least and greatest of `keys` in Java's order.
fn java_range(keys: &[String]) -> Option<(String, String)> {
    let order = inlet_table::bloom::java_order;
    let min = keys.iter().min_by(|a, b| order(a, b))?;
    let max = keys.iter().max_by(|a, b| order(a, b))?;
    Some((min.clone(), max.clone()))
}
