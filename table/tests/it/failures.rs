//! Bad input, crashed writers, failed writes and concurrent writers: nothing partial is ever
//! visible, and the table stays writable.

use bytes::Bytes;
use inlet_table::commit::Transaction;
use inlet_table::commit::metadata::CommitMetadata;
use inlet_table::read::Query;
use inlet_table::timeline::{Action, State};
use inlet_table::{Error, Result, Table, TableConfig};

use crate::util::*;

#[tokio::test]
async fn a_null_record_key_fails_the_write_and_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["value"], None, &[], 1)).await?;
    upsert(&table, rows(&[(1, "a", None, Some("x"))]), None).await?;
    let before = files(&dir);
    let err = upsert(
        &table,
        rows(&[(2, "b", None, Some("y")), (3, "c", None, None)]),
        None,
    )
    .await
    .expect_err("null key");
    assert_eq!(
        err.to_string(),
        "row 2 of the commit: record key column \"value\" is null (a Hudi record key needs a value)"
    );
    assert_eq!(files(&dir), before);
    assert_eq!(
        column(&table, &Query::Snapshot, "id").await?,
        map(&[("x", "1")])
    );
    Ok(())
}

#[tokio::test]
async fn a_crashed_write_is_invisible_and_rolled_back_by_the_next_writer() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], None, &[], 1)).await?;
    let c1 = upsert(&table, rows(&[(1, "a", None, Some("x"))]), None).await?;

    // A writer that died after writing a data file, before completing its instant.
    let storage = table.storage();
    let timeline = table.timeline().await?;
    let mut txn = Transaction::begin(&table, &timeline, Action::Commit, Bytes::new()).await?;
    txn.inflight(storage, Bytes::from(CommitMetadata::default().to_json()))
        .await?;
    let dead = txn.instant_time().clone();
    let orphan = format!("00000000-1111-2222-3333-444444444444-0_0-0-0_{dead}.parquet");
    storage
        .put(&orphan, Bytes::from_static(b"partial garbage"))
        .await?;
    drop(txn);

    // Readers never see it.
    assert_eq!(
        column(&table, &Query::Snapshot, "value").await?,
        map(&[("1", "x")])
    );

    // The next writer rolls it back before writing.
    let table = Table::open(&dir.path().display().to_string(), TableConfig::default()).await?;
    let writer = table.writer().await?;
    assert_eq!(writer.rolled_back().len(), 1);
    assert_eq!(writer.rolled_back()[0].rolled_back.time, dead);
    assert_eq!(writer.rolled_back()[0].deleted_files, vec![orphan.clone()]);
    writer.close().await?;
    let timeline = table.timeline().await?;
    let states: Vec<(Action, State)> = timeline
        .instants()
        .iter()
        .map(|i| (i.action, i.state))
        .collect();
    assert_eq!(
        states,
        [
            (Action::Commit, State::Completed),
            (Action::Rollback, State::Completed)
        ]
    );
    assert!(!dir.path().join(&orphan).exists());
    assert_eq!(timeline.instants()[0].time, c1.instant);

    let c3 = upsert(&table, rows(&[(2, "a", None, Some("y"))]), None).await?;
    assert!(c3.instant > dead);
    assert_eq!(
        column(&table, &Query::Snapshot, "value").await?,
        map(&[("1", "x"), ("2", "y")])
    );
    Ok(())
}

#[tokio::test]
async fn a_write_that_fails_midway_is_rolled_back_at_once() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], None, &[], 2)).await?;
    let keys: Vec<_> = (0..20).map(|i| (i, "a", None, Some("v"))).collect();
    let c1 = upsert(&table, rows(&keys), None).await?;
    // Corrupt one of the two base files (not the one the table schema is read from): the commit
    // begins, and rewriting that file group fails.
    let victim = c1
        .metadata
        .write_stats()
        .last()
        .and_then(|s| s.path.clone())
        .expect("a file");
    std::fs::write(dir.path().join(&victim), b"not parquet").expect("overwrite");

    let err = upsert(&table, rows(&keys), None)
        .await
        .expect_err("corrupt base file");
    assert!(err.to_string().contains(&victim), "{err}");
    let timeline = table.timeline().await?;
    let actions: Vec<(Action, State)> = timeline
        .instants()
        .iter()
        .map(|i| (i.action, i.state))
        .collect();
    assert_eq!(
        actions,
        [
            (Action::Commit, State::Completed),
            (Action::Rollback, State::Completed)
        ]
    );
    // No file of the failed instant is left.
    let failed = timeline.instants()[1].time.to_string();
    let leftovers: Vec<String> = files(&dir)
        .into_iter()
        .filter(|f| f.ends_with(".parquet") && !f.contains(c1.instant.as_str()))
        .collect();
    assert!(
        leftovers.is_empty(),
        "files of a failed write remain: {leftovers:?} (rollback {failed})"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_writer_gets_a_clear_error() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = local_table(&dir, props(&["id"], None, &[], 1)).await?;
    let first = table.writer().await?;
    let err = table.writer().await.expect_err("lease held");
    assert!(matches!(err, Error::WriterLeaseHeld { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("only one writer may write a table at a time"),
        "{err}"
    );
    first.close().await?;
    table.writer().await?.close().await?;
    Ok(())
}

#[tokio::test]
async fn creating_an_existing_table_fails() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    local_table(&dir, props(&["id"], None, &[], 1)).await?;
    let err = local_table(&dir, props(&["id"], None, &[], 1))
        .await
        .expect_err("exists");
    assert!(matches!(err, Error::TableExists(_)), "{err}");
    let missing = tempfile::tempdir().expect("temp dir");
    let err = Table::open(
        &missing.path().display().to_string(),
        TableConfig::default(),
    )
    .await
    .expect_err("no table");
    assert!(matches!(err, Error::TableNotFound(_)), "{err}");
    Ok(())
}
