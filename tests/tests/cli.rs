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
