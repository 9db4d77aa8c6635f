//! The `inlet` command line as a user runs it: create, write Debezium events, read in every mode
//! and format, timeline; bad input fails with a message naming the fault and commits nothing.

use std::path::Path;

use inlet_tests::harness::repo_root;
use serde_json::Value;

mod common;

use common::cli::{assert_hudi_rs_agrees, fails, ok};

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn instant_of(output: &str) -> String {
    output
        .split_whitespace()
        .nth(1)
        .expect("Committed <instant> …")
        .to_string()
}

fn table_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if !e.path().to_string_lossy().contains(".heartbeat") {
                out.push(e.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn create_write_read_and_timeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("customers").display().to_string();
    let events = repo_root().join("src/cli/demo");
    ok(&[
        "table",
        "create",
        &uri,
        "--name",
        "customers",
        "--type",
        "cow",
        "--record-key",
        "id",
        "--ordering-field",
        "_cdc_position",
        "--partition-by",
        "country",
        "--hive-style",
        "--buckets",
        "2",
    ]);
    let first = instant_of(&ok(&[
        "write",
        &uri,
        &events.join("events-1.jsonl").display().to_string(),
    ]));
    let second = instant_of(&ok(&[
        "write",
        &uri,
        &events.join("events-2.jsonl").display().to_string(),
    ]));
    assert!(second > first);

    let rows = jsonl(&ok(&["read", &uri]));
    let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().expect("id")).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 4, 5, 6]);
    let grace = rows.iter().find(|r| r["id"] == 2).expect("customer 2");
    assert_eq!(grace["name"], "Grace Hopper");
    assert_eq!(grace["balance"].to_string().trim_matches('"'), "415.25");
    assert_eq!(grace["_cdc_op"], "u");
    assert_eq!(grace["_cdc_position"], 23_001_400);
    assert!(
        grace.get("_hoodie_commit_time").is_none(),
        "meta columns only with --meta"
    );

    let old = jsonl(&ok(&[
        "read",
        &uri,
        "--as-of",
        &first,
        "--columns",
        "id,balance",
    ]));
    assert_eq!(old.len(), 5);
    assert_eq!(
        old[0]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["id".to_string(), "balance".to_string()])
    );
    assert!(old.iter().any(|r| r["id"] == 3));

    let changed = jsonl(&ok(&["read", &uri, "--from", &first, "--meta"]));
    let mut changed_ids: Vec<i64> = changed
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    changed_ids.sort();
    assert_eq!(changed_ids, [2, 6]);
    assert!(
        changed
            .iter()
            .all(|r| r["_hoodie_commit_time"] == second.as_str())
    );
    assert!(jsonl(&ok(&["read", &uri, "--from", &first, "--to", &first])).is_empty());

    let csv = ok(&[
        "read",
        &uri,
        "--columns",
        "id,name",
        "--format",
        "csv",
        "--as-of",
        &first,
    ]);
    assert_eq!(csv.lines().next(), Some("id,name"));
    assert_eq!(csv.lines().count(), 6);
    let table = ok(&["read", &uri, "--columns", "id,name", "--format", "table"]);
    assert!(table.contains("| Donald Knuth"), "{table}");

    let timeline = jsonl(&ok(&["timeline", &uri, "--json"]));
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[1]["instant"], second.as_str());
    assert_eq!(
        (
            timeline[1]["inserts"].as_i64(),
            timeline[1]["updates"].as_i64(),
            timeline[1]["deletes"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(timeline[1]["checkpoint"]["position"], 23_001_400);
    assert_eq!(timeline[0]["state"], "COMPLETED");
    let text = ok(&["timeline", &uri]);
    assert!(
        text.contains(&first) && text.contains("COMPLETED"),
        "{text}"
    );

    assert_hudi_rs_agrees(&uri);
}

#[test]
fn bad_input_fails_clearly_and_commits_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    ok(&["table", "create", &uri, "--name", "t", "--record-key", "id"]);
    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"op\":\"c\",\"after\":{\"id\":1,\"v\":\"a\"},\"ts_ms\":1}\n",
    )
    .expect("write");
    ok(&["write", &uri, &good.display().to_string()]);
    let before = table_files(Path::new(&uri));

    let malformed = dir.path().join("malformed.jsonl");
    std::fs::write(
        &malformed,
        "{\"op\":\"c\",\"after\":{\"id\":2,\"v\":\"b\"}}\n{\"op\":\"c\",\"after\":\n",
    )
    .expect("write");
    let err = fails(&["write", &uri, &malformed.display().to_string()]);
    assert!(err.contains("line 2"), "{err}");

    let no_key = dir.path().join("nokey.jsonl");
    std::fs::write(&no_key, "{\"op\":\"c\",\"after\":{\"id\":2,\"v\":\"b\"}}\n{\"op\":\"c\",\"after\":{\"id\":null,\"v\":\"c\"}}\n").expect("write");
    let err = fails(&["write", &uri, &no_key.display().to_string()]);
    assert!(err.contains("\"id\"") && err.contains("line 2"), "{err}");

    let conflict = dir.path().join("conflict.jsonl");
    std::fs::write(&conflict, "{\"op\":\"c\",\"after\":{\"id\":3,\"v\":5}}\n").expect("write");
    let err = fails(&["write", &uri, &conflict.display().to_string()]);
    assert!(
        err.contains("\"v\"") && err.contains("Utf8") && err.contains("Int64"),
        "{err}"
    );

    assert_eq!(
        table_files(Path::new(&uri)),
        before,
        "a failed write left files behind"
    );
    let rows = jsonl(&ok(&["read", &uri]));
    assert_eq!(rows.len(), 1);

    let missing = dir.path().join("missing");
    let err = fails(&["read", &missing.display().to_string()]);
    assert!(err.contains("no Hudi table"), "{err}");
    assert!(
        !missing.exists(),
        "reading a missing table must not create it"
    );
    let err = fails(&["read", &uri, "--columns", "nope"]);
    assert!(err.contains("unknown column \"nope\""), "{err}");
    let err = fails(&["read", &uri, "--as-of", "yesterday"]);
    assert!(err.contains("not an instant time"), "{err}");
    let err = fails(&["table", "create", &uri, "--name", "t", "--record-key", "id"]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["table", "create", "--help"],
        vec!["write", "--help"],
        vec!["read", "--help"],
        vec!["timeline", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = ok(&args);
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
}

#[test]
fn merge_on_read_tables_through_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("mor").display().to_string();
    let events = repo_root().join("src/cli/demo");
    let created = ok(&[
        "table",
        "create",
        &uri,
        "--name",
        "customers",
        "--type",
        "mor",
        "--record-key",
        "id",
        "--ordering-field",
        "_cdc_position",
        "--buckets",
        "1",
    ]);
    assert!(created.contains("merge-on-read"), "{created}");
    let first = instant_of(&ok(&[
        "write",
        &uri,
        &events.join("events-1.jsonl").display().to_string(),
    ]));
    ok(&[
        "write",
        &uri,
        &events.join("events-2.jsonl").display().to_string(),
    ]);
    // The second commit appended a log file to the file group.
    let logs: Vec<_> = std::fs::read_dir(&uri)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".log."))
        .collect();
    assert_eq!(logs.len(), 1);
    let timeline = jsonl(&ok(&["timeline", &uri, "--json"]));
    assert!(
        timeline.iter().all(|i| i["action"] == "deltacommit"),
        "{timeline:?}"
    );

    let mut ids: Vec<i64> = jsonl(&ok(&["read", &uri]))
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 4, 5, 6]);
    let balances: Vec<Value> = jsonl(&ok(&["read", &uri, "--columns", "id,balance"]))
        .into_iter()
        .filter(|r| r["id"] == 2)
        .collect();
    assert_eq!(
        balances[0]["balance"].to_string().trim_matches('"'),
        "415.25"
    );
    assert_eq!(jsonl(&ok(&["read", &uri, "--as-of", &first])).len(), 5);
    // Read-optimized: the base file only, i.e. the first commit's state.
    let ro = jsonl(&ok(&[
        "read",
        &uri,
        "--read-optimized",
        "--columns",
        "id,balance",
    ]));
    assert_eq!(ro.len(), 5);
    let grace = ro.iter().find(|r| r["id"] == 2).expect("customer 2");
    assert_eq!(
        grace["balance"]
            .to_string()
            .trim_matches('"')
            .parse::<f64>()
            .ok(),
        Some(310.0)
    );

    assert_hudi_rs_agrees(&uri);
}

/// `inlet mirror`: an existing table gets a Delta mirror on demand and, once enabled, keeps it
/// current through later commits of every inlet process; `--disable` stops that; a column whose
/// type widens stops the mirror with an error naming it, while the Hudi table goes on.
#[test]
fn the_delta_mirror_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    ok(&[
        "table",
        "create",
        &uri,
        "--name",
        "t",
        "--type",
        "cow",
        "--record-key",
        "id",
        "--partition-by",
        "city",
    ]);
    let events = dir.path().join("events.jsonl");
    let write = |lines: &[&str]| {
        std::fs::write(&events, lines.join("\n")).expect("events");
        instant_of(&ok(&["write", &uri, &events.display().to_string()]))
    };
    let envelope = |ty: &str, id: i64, city: &str, v: i64| {
        format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","optional":true,"field":"after","fields":[{{"type":"int64","field":"id"}},{{"type":"string","optional":true,"field":"city"}},{{"type":"{ty}","optional":true,"field":"v"}}]}}]}},"payload":{{"op":"c","after":{{"id":{id},"city":"{city}","v":{v}}}}}}}"#
        )
    };
    let first = write(&[
        &envelope("int32", 1, "Köln", 1),
        &envelope("int32", 2, "a b", 2),
    ]);
    let second = write(&[&envelope("int32", 1, "a b", 10)]);

    let status: Value =
        serde_json::from_str(&ok(&["mirror", &uri, "--status", "--json"])).expect("json");
    assert_eq!(status["delta_version"], Value::Null, "{status}");
    assert_eq!(status["enabled"], false, "{status}");
    assert_eq!(
        status["behind"],
        serde_json::json!([first, second]),
        "{status}"
    );
    assert!(!dir.path().join("t/_delta_log").exists());

    let synced = ok(&["mirror", &uri, "--enable"]);
    assert!(
        synced.contains(&format!("instant {first} -> Delta version 0"))
            && synced.contains(&format!("instant {second} -> Delta version 1"))
            && synced.contains("up to date"),
        "{synced}"
    );
    let properties =
        std::fs::read_to_string(dir.path().join("t/.hoodie/hoodie.properties")).expect("props");
    assert!(
        properties.contains("inlet.delta.mirror=true"),
        "{properties}"
    );
    // Enabled: the next commit is mirrored by `inlet write` itself.
    let third = write(&[&envelope("int32", 3, "Zürich", 3)]);
    let status: Value =
        serde_json::from_str(&ok(&["mirror", &uri, "--status", "--json"])).expect("json");
    assert_eq!(
        (
            &status["delta_version"],
            &status["instant"],
            &status["enabled"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(third),
            &serde_json::json!(true)
        ),
        "{status}"
    );
    assert_hudi_rs_agrees(&uri);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let compared = runtime
        .block_on(async {
            let table = inlet_table::Table::open(&uri, inlet_table::TableConfig::default()).await?;
            common::compare_with_delta(&table, &uri, &[]).await
        })
        .expect("deltalake agrees");
    assert_eq!(compared, 3);

    // Disabled: commits go on, the mirror stays where it was and says how far behind it is.
    ok(&["mirror", &uri, "--disable"]);
    let fourth = write(&[&envelope("int32", 4, "x", 4)]);
    let status: Value =
        serde_json::from_str(&ok(&["mirror", &uri, "--status", "--json"])).expect("json");
    assert_eq!(status["behind"], serde_json::json!([fourth]), "{status}");
    assert_eq!(status["enabled"], false, "{status}");

    // A widened column: the Hudi commit stands, the mirror refuses and names the column.
    ok(&["mirror", &uri, "--enable"]);
    let widened = write(&[&envelope("int64", 5, "x", 1 << 40)]);
    let error = fails(&["mirror", &uri]);
    assert!(
        error.contains("\"v\"") && error.contains("changed type"),
        "{error}"
    );
    let status: Value =
        serde_json::from_str(&ok(&["mirror", &uri, "--status", "--json"])).expect("json");
    assert_eq!(status["behind"], serde_json::json!([widened]), "{status}");
    let rows = ok(&["read", &uri, "--columns", "id,v"]);
    assert!(rows.contains(&format!("{}", 1i64 << 40)), "{rows}");
}

#[test]
fn change_queries_with_before_and_after_images_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    ok(&[
        "table",
        "create",
        &uri,
        "--name",
        "t",
        "--type",
        "cow",
        "--record-key",
        "id",
        "--ordering-field",
        "_cdc_position",
        "--partition-by",
        "city",
        "--cdc",
    ]);
    let properties =
        std::fs::read_to_string(dir.path().join("t/.hoodie/hoodie.properties")).expect("props");
    assert!(
        properties.contains("hoodie.table.cdc.enabled=true"),
        "{properties}"
    );
    assert!(
        properties.contains("hoodie.table.cdc.supplemental.logging.mode=DATA_BEFORE_AFTER"),
        "{properties}"
    );
    let events = dir.path().join("events.jsonl");
    let write = |lines: &[String]| {
        std::fs::write(&events, lines.join("\n")).expect("events");
        instant_of(&ok(&["write", &uri, &events.display().to_string()]))
    };
    let upsert = |op: &str, id: i64, city: &str, name: &str, lsn: i64| {
        format!(
            r#"{{"op":"{op}","after":{{"id":{id},"city":"{city}","name":"{name}"}},"source":{{"lsn":{lsn}}}}}"#
        )
    };
    let first = write(&[
        upsert("c", 1, "Köln", "a", 100),
        upsert("c", 2, "a b", "b", 101),
        upsert("c", 3, "Köln", "c", 102),
    ]);
    // An update in place, a delete that carries only the key, a move to another partition, an
    // insert.
    let second = write(&[
        upsert("u", 1, "Köln", "a2", 200),
        r#"{"op":"d","before":{"id":2},"source":{"lsn":201}}"#.to_string(),
        upsert("u", 3, "a b", "c2", 202),
        upsert("c", 4, "Köln", "d", 203),
    ]);
    // A replayed, older change of key 1 changes nothing.
    write(&[upsert("u", 1, "Köln", "stale", 150)]);

    let change = |v: &Value| {
        let name = |image: &str| v[image]["name"].as_str().map(str::to_string);
        (
            v["instant"].as_str().expect("instant").to_string(),
            v["op"].as_str().expect("op").to_string(),
            name("before"),
            name("after"),
        )
    };
    let s = |x: &str| Some(x.to_string());
    let mut all: Vec<_> = jsonl(&ok(&["read", &uri, "--changes", "--from", "earliest"]))
        .iter()
        .map(change)
        .collect();
    all.sort();
    let mut expected = vec![
        (first.clone(), "i".to_string(), None, s("a")),
        (first.clone(), "i".to_string(), None, s("b")),
        (first.clone(), "i".to_string(), None, s("c")),
        (second.clone(), "u".to_string(), s("a"), s("a2")),
        (second.clone(), "d".to_string(), s("b"), None),
        (second.clone(), "d".to_string(), s("c"), None),
        (second.clone(), "i".to_string(), None, s("c2")),
        (second.clone(), "i".to_string(), None, s("d")),
    ];
    expected.sort();
    assert_eq!(all, expected);

    // A window, and images narrowed to some columns.
    let window = jsonl(&ok(&[
        "read",
        &uri,
        "--changes",
        "--from",
        &first,
        "--to",
        &second,
        "--columns",
        "name,city",
    ]));
    assert_eq!(window.len(), 5);
    let moved_in = window
        .iter()
        .find(|v| v["after"]["name"] == "c2")
        .expect("the moved key's insert");
    assert_eq!(
        moved_in["after"],
        serde_json::json!({"name": "c2", "city": "a b"}),
        "{moved_in}"
    );
    assert!(
        fails(&[
            "read",
            &uri,
            "--changes",
            "--from",
            "earliest",
            "--format",
            "csv"
        ])
        .contains("nested")
    );
    assert!(
        fails(&[
            "read",
            &uri,
            "--changes",
            "--from",
            "earliest",
            "--columns",
            "nope"
        ])
        .contains("nope")
    );

    // The `.cdc` files, decoded by fastavro alone, hold what the copy-on-write commits changed.
    let decoded = inlet_tests::harness::run_python("cdc_read.py", &[&uri]).expect("cdc_read.py");
    let mut from_files: Vec<_> = jsonl(&decoded)
        .iter()
        .map(|v| {
            assert_eq!(v["ts_ms"], v["instant"], "{v}");
            assert!(v["file"].as_str().expect("file").ends_with(".cdc"), "{v}");
            let mut v = v.clone();
            v["instant"] = v["ts_ms"].clone();
            change(&v)
        })
        .collect();
    from_files.sort();
    assert_eq!(from_files, expected);

    // SQL: Hudi's `table_changes(…, 'cdc', …)` form.
    let rows = jsonl(&ok(&[
        "sql",
        "SELECT op, before['name'] AS was, after['name'] AS is FROM table_changes('t', 'cdc', 'earliest') \
         WHERE op <> 'i' ORDER BY op, was",
        "--table",
        &format!("t={uri}"),
        "--format",
        "jsonl",
    ]));
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"op": "d", "was": "b", "is": null}),
            serde_json::json!({"op": "d", "was": "c", "is": null}),
            serde_json::json!({"op": "u", "was": "a", "is": "a2"}),
        ]
    );
    // hudi-rs reads the table exactly although `.cdc` files lie beside the base files.
    assert_hudi_rs_agrees(&uri);

    // Once the cleaner removed the file versions a window needs, the query is refused (and
    // the `.cdc` files went with their slices).
    let cdc_files = |dir: &Path| {
        table_files(dir)
            .iter()
            .filter(|f| f.ends_with(".cdc"))
            .count()
    };
    let before_clean = cdc_files(&dir.path().join("t"));
    ok(&["clean", &uri, "--policy", "keep-latest-commits:1"]);
    assert!(cdc_files(&dir.path().join("t")) < before_clean);
    let err = fails(&["read", &uri, "--changes", "--from", &first]);
    assert!(err.contains("earliest instant still readable"), "{err}");
    assert_hudi_rs_agrees(&uri);
}
