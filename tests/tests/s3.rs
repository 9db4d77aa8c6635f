//! The table core on S3 (a moto server on 127.0.0.1): writes read back by hudi-rs over S3, crash
//! recovery, and races between writers: exactly one wins, the other gets a clear error, and the
//! table stays consistent.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use inlet_table::commit::lease::Lease;
use inlet_table::commit::metadata::CommitMetadata;
use inlet_table::commit::{Completion, Requirement, Transaction};
use inlet_table::read::Query;
use inlet_table::timeline::{Action, State};
use inlet_table::write::Changes;
use inlet_table::{Error, Table, TableConfig};
use inlet_tests::harness::moto::MotoServer;
use inlet_tests::model::{self, Shape};

mod common;

fn config(moto: &MotoServer) -> TableConfig {
    TableConfig {
        storage_options: moto.storage_options(),
        ..Default::default()
    }
}

async fn s3_table(moto: &MotoServer, uri: &str) -> anyhow::Result<Table> {
    let shape = Shape {
        merge_on_read: false,
        event_time: true,
        partitioned: true,
        composite_key: false,
        buckets: 2,
        hive_style: true,
    };
    Ok(Table::create(uri, config(moto), common::properties(&shape)).await?)
}

fn one_row(id: i64) -> arrow::array::RecordBatch {
    let change = model::Change {
        row: model::Row {
            id,
            part: Some("p0".into()),
            ts: Some(1),
            value: Some(format!("v{id}")),
            n: None,
        },
        delete: false,
    };
    model::to_batch(&[change]).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_tables_read_back_through_hudi_rs() -> anyhow::Result<()> {
    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    let shape = Shape {
        merge_on_read: false,
        event_time: true,
        partitioned: true,
        composite_key: true,
        buckets: 3,
        hive_style: true,
    };
    let model =
        common::check_against_model("s3://lake/tables/model", config(&moto), shape, 77).await?;
    assert!(!model.records.is_empty());
    // And our own reader over S3 agrees with the model.
    let table = Table::open("s3://lake/tables/model", config(&moto)).await?;
    let ours = table.read(&Query::Snapshot).await?;
    assert_eq!(
        inlet_tests::canonical::rows(&ours.batches, &model::canonical_columns())?,
        model::canonical(&model.records)
    );
    common::compare_with_hudi_rs(&table, "s3://lake/tables/model", &moto.storage_options()).await?;
    Ok(())
}

/// The Delta mirror of a table on S3 (written through the table's own object store) reads in
/// PyPI `deltalake` over S3 as our read-optimized view, version by version, across compactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_mirror_of_an_s3_table_reads_in_deltalake() -> anyhow::Result<()> {
    use inlet_compaction::TableServices;
    use inlet_compaction::compact::{self, Strategy};
    use inlet_query::mirror;
    use rand::SeedableRng;

    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    let uri = "s3://lake/mirrored/orders";
    let shape = Shape {
        merge_on_read: true,
        event_time: true,
        partitioned: true,
        composite_key: true,
        buckets: 2,
        // `part=~`, not `~`: delta-rs cannot read a top-level directory named "~".
        hive_style: true,
    };
    let mut props = common::properties(&shape);
    props
        .other
        .insert(mirror::PROPERTY.to_string(), "true".to_string());
    let mut table_config = config(&moto);
    table_config
        .hooks
        .push(std::sync::Arc::new(mirror::DeltaMirrorHook));
    let table = Table::create(uri, table_config, props).await?;
    let mut model = model::Model::new(shape);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..3 {
        common::write_random_commits(&table, &mut model, &mut rng, 2, 30).await?;
        let writer = table.writer().await?;
        let scheduled = compact::schedule(&writer, &Strategy::All).await?;
        writer.close().await?;
        if let Some(scheduled) = scheduled {
            let services = TableServices::open(table.clone()).await?;
            compact::execute(&services, &scheduled.instant).await?;
            services.close().await?;
        }
    }
    let status = mirror::status(&table).await?;
    assert!(status.behind.is_empty(), "{status:?}");
    let versions = common::compare_with_delta(&table, uri, &moto.storage_options()).await?;
    assert!(versions >= 6, "{versions} versions compared");
    Ok(())
}

/// `inlet sql` finds the tables under an S3 base and reads them as the model has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_s3_reads_what_the_model_holds() -> anyhow::Result<()> {
    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    let shape = Shape {
        merge_on_read: true,
        event_time: true,
        partitioned: true,
        composite_key: false,
        buckets: 2,
        hive_style: false,
    };
    let uri = "s3://lake/base/s/t";
    let table = Table::create(uri, config(&moto), common::properties(&shape)).await?;
    let mut model = model::Model::new(shape);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    common::write_random_commits(&table, &mut model, &mut rng, 3, 30).await?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out.parquet");
    let mut args: Vec<String> = [
        "sql",
        "SELECT * FROM s.t",
        "--lake",
        "s3://lake/base",
        "--meta",
        "--format",
        "parquet",
        "--output",
    ]
    .map(String::from)
    .to_vec();
    args.push(out.display().to_string());
    for (k, v) in moto.storage_options() {
        args.push("--storage-option".into());
        args.push(format!("{k}={v}"));
    }
    common::cli::ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let got = inlet_tests::canonical::rows(
        &inlet_tests::canonical::read_parquet(&out)?,
        &model::canonical_columns(),
    )?;
    assert!(!got.is_empty());
    assert_eq!(got, model::canonical(&model.records));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_write_on_s3_is_rolled_back() -> anyhow::Result<()> {
    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    let table = s3_table(&moto, "s3://lake/crash").await?;
    let mut writer = table.writer().await?;
    writer
        .commit(Changes::upsert(one_row(1)), BTreeMap::new())
        .await?;
    writer.close().await?;

    let storage = table.storage();
    let timeline = table.timeline().await?;
    let mut txn = Transaction::begin(&table, &timeline, Action::Commit, Bytes::new()).await?;
    txn.inflight(storage, Bytes::from(CommitMetadata::default().to_json()))
        .await?;
    let orphan = format!(
        "part=p0/00000001-1111-2222-3333-444444444444-0_0-0-0_{}.parquet",
        txn.instant_time()
    );
    storage.put(&orphan, Bytes::from_static(b"partial")).await?;
    drop(txn);
    assert_eq!(table.read(&Query::Snapshot).await?.num_rows(), 1);

    let writer = table.writer().await?;
    assert_eq!(writer.rolled_back().len(), 1);
    writer.close().await?;
    assert!(
        storage.head(&orphan).await?.is_none(),
        "orphan file deleted"
    );
    let states: Vec<_> = table
        .timeline()
        .await?
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
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_writers_starting_together_exactly_one_writes() -> anyhow::Result<()> {
    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    for round in 0..5 {
        let uri = format!("s3://lake/writers-{round}");
        let a = s3_table(&moto, &uri).await?;
        let b = Table::open(&uri, config(&moto)).await?;
        let write = |table: Table, id: i64| async move {
            let mut writer = table.writer().await?;
            let commit = writer
                .commit(Changes::upsert(one_row(id)), BTreeMap::new())
                .await;
            writer.close().await?;
            commit.map_err(anyhow::Error::from)
        };
        let (ra, rb) = tokio::join!(write(a.clone(), 1), write(b, 2));
        let (winner, loser) = match (ra, rb) {
            (Ok(w), Err(l)) => (w, l),
            (Err(l), Ok(w)) => (w, l),
            (a, b) => panic!("round {round}: expected exactly one winner, got {a:?} and {b:?}"),
        };
        let lease_error = loser.downcast_ref::<Error>();
        assert!(
            matches!(lease_error, Some(Error::WriterLeaseHeld { .. })),
            "round {round}: {loser}"
        );
        let completed: Vec<_> = a
            .timeline()
            .await?
            .completed_writes()
            .map(|i| i.time.clone())
            .collect();
        assert_eq!(completed, [winner.instant]);
        assert_eq!(a.read(&Query::Snapshot).await?.num_rows(), 1);
    }
    Ok(())
}

/// Two writers that both believe they hold the lease (say, one stalled past its lease while the
/// other took over) race to complete commits from the same base: exactly one completes.
async fn completion_race(table: &Table, rounds: usize) -> anyhow::Result<()> {
    let storage = table.storage();
    let lease = Lease::acquire(storage, Duration::from_secs(60)).await?;
    for round in 0..rounds {
        let timeline = table.timeline().await?;
        let base = timeline.latest_data_write().map(|i| i.time.clone());
        let mut a = Transaction::begin(table, &timeline, Action::Commit, Bytes::new()).await?;
        let mut b = Transaction::begin(table, &timeline, Action::Commit, Bytes::new()).await?;
        for txn in [&mut a, &mut b] {
            txn.require(Requirement::LatestWrite(base.clone()));
            txn.inflight(storage, Bytes::new()).await?;
        }
        let metadata = CommitMetadata {
            operation_type: Some("UPSERT".into()),
            ..Default::default()
        };
        let (ta, tb) = (a.instant_time().clone(), b.instant_time().clone());
        let (ra, rb) = tokio::join!(
            a.complete(table, &lease, Completion::commit(&metadata)),
            b.complete(table, &lease, Completion::commit(&metadata))
        );
        let (winner, loser_error) = match (ra, rb) {
            (Ok(_), Err(e)) => (ta, e),
            (Err(e), Ok(_)) => (tb, e),
            (a, b) => panic!("round {round}: expected exactly one completion, got {a:?} and {b:?}"),
        };
        assert!(
            matches!(loser_error, Error::CommitConflict { .. }),
            "round {round}: {loser_error}"
        );
        let timeline = table.timeline().await?;
        assert_eq!(
            timeline.latest_completed_write().map(|i| i.time.clone()),
            Some(winner)
        );
        assert_eq!(timeline.completed_writes().count(), round + 1);
        // The loser is left pending, as after a crash, and is rolled back like one.
        inlet_table::commit::rollback::rollback_pending(table, &lease, &timeline).await?;
    }
    lease.release().await?;
    assert!(table.timeline().await?.pending().next().is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_completions_from_the_same_base_have_one_winner_on_s3() -> anyhow::Result<()> {
    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    let table = s3_table(&moto, "s3://lake/race").await?;
    completion_race(&table, 10).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_completions_from_the_same_base_have_one_winner_on_local_disk() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let shape = Shape {
        merge_on_read: false,
        event_time: false,
        partitioned: false,
        composite_key: false,
        buckets: 1,
        hive_style: true,
    };
    let table = Table::create(
        &dir.path().display().to_string(),
        TableConfig::default(),
        common::properties(&shape),
    )
    .await?;
    completion_race(&table, 10).await
}

/// `inlet catalog sync` registers a merge-on-read table on S3 in Glue (moto) as Hudi's Glue sync
/// does — `_ro`, `_rt` and plain tables with Hudi's input formats, SerDe, columns by their names
/// in files, partition keys, one partition per partition directory — and a second sync after new
/// partitions and a new column adds exactly those; boto3 reads the catalog back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_catalog_sync_registers_tables_and_partitions_as_hudi_does() -> anyhow::Result<()> {
    use inlet_tests::harness::{inlet_bin, run_python};
    use rand::SeedableRng;

    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    let uri = "s3://lake/glue/orders";
    let shape = Shape {
        merge_on_read: true,
        event_time: true,
        partitioned: true,
        composite_key: false,
        buckets: 2,
        hive_style: false,
    };
    let mut props = common::properties(&shape);
    props.name = "Orders".to_string();
    let table = Table::create(uri, config(&moto), props).await?;
    let mut model = model::Model::new(shape);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    common::write_random_commits(&table, &mut model, &mut rng, 2, 30).await?;

    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let sync = || -> anyhow::Result<String> {
        let mut command = std::process::Command::new(inlet_bin());
        command.args([
            "catalog",
            "sync",
            uri,
            "--glue-database",
            "shop",
            "--endpoint",
            &moto.endpoint,
        ]);
        for (k, v) in moto.storage_options() {
            command.args(["--storage-option", &format!("{k}={v}")]);
        }
        let out = command.envs(env).output()?;
        anyhow::ensure!(
            out.status.success(),
            "inlet catalog sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let catalog = || -> anyhow::Result<serde_json::Value> {
        let printed = run_python(
            "glue_read.py",
            &[&moto.endpoint, "us-east-1", "shop", "test", "test"],
        )?;
        Ok(serde_json::from_str(printed.trim())?)
    };
    let partitions_on_storage = |table: &Table| {
        let table = table.clone();
        async move {
            let snapshot = table.snapshot().await?;
            let paths: std::collections::BTreeSet<String> = snapshot
                .view()
                .live_file_groups()
                .map(|g| g.partition.as_str().to_string())
                .collect();
            anyhow::Ok(paths)
        }
    };

    let printed = sync()?;
    for name in ["orders_ro", "orders_rt", "orders"] {
        assert!(
            printed.contains(&format!("shop.{name}: created")),
            "{printed}"
        );
    }
    let got = catalog()?;
    let expected_partitions: Vec<serde_json::Value> = partitions_on_storage(&table)
        .await?
        .into_iter()
        .map(|p| serde_json::json!({"Values": [p.clone()], "Location": format!("{uri}/{p}")}))
        .collect();
    assert!(!expected_partitions.is_empty());
    for (name, input_format, read_optimized) in [
        (
            "orders_ro",
            "org.apache.hudi.hadoop.HoodieParquetInputFormat",
            "true",
        ),
        (
            "orders_rt",
            "org.apache.hudi.hadoop.realtime.HoodieParquetRealtimeInputFormat",
            "false",
        ),
        (
            "orders",
            "org.apache.hudi.hadoop.realtime.HoodieParquetRealtimeInputFormat",
            "false",
        ),
    ] {
        let t = &got["tables"][name];
        assert_eq!(t["TableType"], "EXTERNAL_TABLE", "{t}");
        assert_eq!(t["Parameters"]["spark.sql.sources.provider"], "hudi", "{t}");
        assert_eq!(t["Parameters"]["EXTERNAL"], "TRUE", "{t}");
        let sd = &t["StorageDescriptor"];
        assert_eq!(sd["Location"], uri, "{t}");
        assert_eq!(sd["InputFormat"], input_format, "{t}");
        assert_eq!(
            sd["OutputFormat"],
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
        );
        assert_eq!(
            sd["SerdeInfo"]["SerializationLibrary"],
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        );
        assert_eq!(
            sd["SerdeInfo"]["Parameters"]["hoodie.query.as.ro.table"],
            read_optimized
        );
        let columns: Vec<(String, String)> = sd["Columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["Name"].as_str().unwrap_or_default().to_string(),
                    c["Type"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        // Columns by their names in files (what Hive, Trino and Spark read).
        let value = inlet_table::schema::physical_name(model::VALUE).into_owned();
        let n = inlet_table::schema::physical_name(model::N).into_owned();
        assert_eq!(
            columns,
            [
                ("_hoodie_commit_time", "string"),
                ("_hoodie_commit_seqno", "string"),
                ("_hoodie_record_key", "string"),
                ("_hoodie_partition_path", "string"),
                ("_hoodie_file_name", "string"),
                ("id", "bigint"),
                ("ts", "bigint"),
                (value.as_str(), "string"),
                (n.as_str(), "double"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string())),
            "{t}"
        );
        assert_eq!(
            t["PartitionKeys"],
            serde_json::json!([{"Name": "part", "Type": "string", "Comment": ""}]),
            "{t}"
        );
        // Spark reads the schema from the parameters: data columns, then partition columns.
        let schema: serde_json::Value = serde_json::from_str(
            t["Parameters"]["spark.sql.sources.schema.part.0"]
                .as_str()
                .expect("schema part"),
        )?;
        let fields: Vec<&str> = schema["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(fields.last(), Some(&"part"), "{schema}");
        assert_eq!(
            got["partitions"][name],
            serde_json::json!(expected_partitions),
            "{name}"
        );
    }

    // Nothing new: nothing changes. Then new partitions: exactly those are added.
    let again = sync()?;
    assert!(
        again.contains("shop.orders_ro: up to date, 0 partitions added"),
        "{again}"
    );
    common::write_random_commits(&table, &mut model, &mut rng, 3, 90).await?;
    let before = expected_partitions.len();
    let now = partitions_on_storage(&table).await?;
    let printed = sync()?;
    assert!(
        printed.contains(&format!(
            "shop.orders_rt: up to date, {} partitions added",
            now.len() - before
        )),
        "{printed} ({before} -> {})",
        now.len()
    );
    let got = catalog()?;
    assert_eq!(
        got["partitions"]["orders_rt"].as_array().map(Vec::len),
        Some(now.len())
    );
    Ok(())
}

/// `inlet run` with `[sink.catalog] kind = "glue"` registers each table as it writes it: after a
/// run, moto's Glue (read back with boto3) holds every table with exactly the partitions on
/// storage, and commits into registered partitions cost no sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_its_tables_registered_in_glue() -> anyhow::Result<()> {
    use inlet_tests::harness::{inlet_bin, run_python};

    let moto = MotoServer::start()?;
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let config = dir.path().join("inlet.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[source]
kind = "datagen"
tables = ["shop.orders", "shop.customers"]
rate = 3000
key_space = 400
seed = 11

[sink]
base_uri = {lake:?}
table_type = "mor"
buckets = 2

[sink.catalog]
kind = "glue"
database = "lakehouse"
endpoint = "{endpoint}"

[batch]
max_delay = "100ms"

[tables."shop.customers"]
table_type = "cow"
partition_by = ["region"]
"#,
            endpoint = moto.endpoint
        ),
    )?;
    let log = dir.path().join("run.log");
    let mut child = std::process::Command::new(inlet_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env(
            "INLET_LOG",
            "warn,inlet=info,inlet_ingest=info,inlet_query=info",
        )
        .envs([
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(dir.path().join("run.err"))?)
        .spawn()?;
    let uris = [
        lake.join("shop/orders").display().to_string(),
        lake.join("shop/customers").display().to_string(),
    ];
    let commits = |uri: &str| {
        let uri = uri.to_string();
        async move {
            match Table::open(&uri, TableConfig::default()).await {
                Ok(t) => anyhow::Ok(t.timeline().await?.completed_writes().count()),
                Err(_) => Ok(0),
            }
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if commits(&uris[0]).await? >= 5 && commits(&uris[1]).await? >= 5 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "inlet run exited with {status}: {}",
                std::fs::read_to_string(dir.path().join("run.err"))?
            );
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "too few commits");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success());
    anyhow::ensure!(child.wait()?.success(), "inlet run failed");

    let printed = run_python(
        "glue_read.py",
        &[&moto.endpoint, "us-east-1", "lakehouse", "test", "test"],
    )?;
    let got: serde_json::Value = serde_json::from_str(printed.trim())?;
    let mut names: Vec<&str> = got["tables"]
        .as_object()
        .expect("tables")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "shop_customers",
            "shop_orders",
            "shop_orders_ro",
            "shop_orders_rt"
        ]
    );
    let customers = Table::open(&uris[1], TableConfig::default()).await?;
    let on_storage: std::collections::BTreeSet<String> = customers
        .snapshot()
        .await?
        .view()
        .live_file_groups()
        .map(|g| g.partition.as_str().to_string())
        .collect();
    assert!(on_storage.len() > 1, "{on_storage:?}");
    let registered: std::collections::BTreeSet<String> = got["partitions"]["shop_customers"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let value = p["Values"][0].as_str().unwrap_or_default();
            assert_eq!(p["Location"], format!("{}/region={value}", uris[1]), "{p}");
            format!("region={value}")
        })
        .collect();
    assert_eq!(registered, on_storage);
    let t = &got["tables"]["shop_customers"];
    assert_eq!(
        t["PartitionKeys"],
        serde_json::json!([{"Name": "region", "Type": "string", "Comment": ""}]),
        "{t}"
    );
    assert_eq!(
        t["Parameters"]["last_commit_time_sync"]
            .as_str()
            .map(str::len),
        Some(17),
        "{t}"
    );
    // Syncs happen on the first commit and when a partition or the schema is new, not per
    // commit.
    let text =
        std::fs::read_to_string(&log)? + &std::fs::read_to_string(dir.path().join("run.err"))?;
    let syncs = text.matches("Glue catalog synced.").count();
    let total = commits(&uris[0]).await? + commits(&uris[1]).await?;
    assert!(
        syncs >= 2 && syncs < total,
        "{syncs} syncs for {total} commits"
    );
    Ok(())
}

/// The Glue hook syncs when a commit writes a partition Glue lacks or changes the schema, and
/// not for commits into registered partitions: driven commit by commit, read back with boto3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_glue_hook_registers_new_partitions_and_columns_as_commits_add_them()
-> anyhow::Result<()> {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use inlet_query::catalog::{GlueCatalogHook, GlueTarget, client_with};
    use inlet_tests::harness::run_python;
    use std::sync::Arc;

    let moto = MotoServer::start()?;
    moto.create_bucket("lake")?;
    let uri = "s3://lake/hooked/orders";
    let target = GlueTarget {
        database: "hooked".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(moto.endpoint.clone()),
        table: None,
    };
    let mut props = inlet_table::TableProperties::new(
        "orders",
        inlet_table::TableType::CopyOnWrite,
        vec!["id".into()],
    );
    props.partition_fields = vec!["region".into()];
    props.hive_style_partitioning = true;
    props.buckets = Some(2);
    Table::create(uri, config(&moto), props).await?;
    let hook = GlueCatalogHook::with_client(client_with(&target, "test", "test", None)?, target);
    let table = Table::open(
        uri,
        TableConfig {
            hooks: vec![Arc::new(hook)],
            ..config(&moto)
        },
    )
    .await?;
    let batch = |ids: &[i64], region: &str, extra: bool| -> anyhow::Result<RecordBatch> {
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(ids.to_vec()))),
            (
                "region",
                Arc::new(StringArray::from(vec![region; ids.len()])),
            ),
        ];
        if extra {
            columns.push(("note", Arc::new(StringArray::from(vec!["n"; ids.len()]))));
        }
        Ok(RecordBatch::try_from_iter(columns)?)
    };
    let catalog = || -> anyhow::Result<serde_json::Value> {
        let printed = run_python(
            "glue_read.py",
            &[&moto.endpoint, "us-east-1", "hooked", "test", "test"],
        )?;
        Ok(serde_json::from_str(printed.trim())?)
    };
    let partitions = |got: &serde_json::Value| -> Vec<String> {
        let mut values: Vec<String> = got["partitions"]["orders"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["Values"][0].as_str().map(str::to_string))
            .collect();
        values.sort();
        values
    };
    let columns = |got: &serde_json::Value| -> Vec<String> {
        got["tables"]["orders"]["StorageDescriptor"]["Columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Name"].as_str().map(str::to_string))
            .collect()
    };
    let last_sync = |got: &serde_json::Value| {
        got["tables"]["orders"]["Parameters"]["last_commit_time_sync"].clone()
    };
    let mut writer = table.writer().await?;
    let commit = |b: RecordBatch| inlet_table::write::Changes::upsert(b);

    writer
        .commit(commit(batch(&[1, 2], "eu", false)?), BTreeMap::new())
        .await?;
    let got = catalog()?;
    assert_eq!(partitions(&got), ["eu"]);
    assert!(!columns(&got).contains(&"note".to_string()), "{got}");
    let registered = last_sync(&got);

    // Into a registered partition, same schema: Glue is left as it is.
    writer
        .commit(commit(batch(&[3], "eu", false)?), BTreeMap::new())
        .await?;
    assert_eq!(last_sync(&catalog()?), registered);

    // A new partition is registered by the commit that writes it.
    let added = writer
        .commit(commit(batch(&[4], "us", false)?), BTreeMap::new())
        .await?;
    let got = catalog()?;
    assert_eq!(partitions(&got), ["eu", "us"]);
    assert_eq!(
        last_sync(&got),
        serde_json::json!(added.instant.to_string())
    );

    // A new column too.
    writer
        .commit(commit(batch(&[5], "eu", true)?), BTreeMap::new())
        .await?;
    let got = catalog()?;
    assert!(columns(&got).contains(&"note".to_string()), "{got}");
    writer.close().await?;
    Ok(())
}
