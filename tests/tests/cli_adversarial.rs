//! The command line with the inputs that once lost or altered data silently: deletes that carry
//! only the key on partitioned tables, updates that move a key to another partition, doubles from
//! the whole bit space, partition values with non-ASCII and special characters, reserved names,
//! ambiguous composite keys, stale replays and impossible query bounds. hudi-rs must read every
//! table exactly as inlet does.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

mod common;

use common::cli::{assert_hudi_rs_agrees, fails, ok};

fn write(dir: &Path, uri: &str, name: &str, events: &[Value]) -> String {
    let file = dir.join(name);
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&file, text).expect("write events");
    ok(&["write", uri, &file.display().to_string()])
}

fn rows(uri: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = ok(&["read", uri])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

fn create(uri: &str, table_type: &str, extra: &[&str]) {
    let mut args = vec![
        "table",
        "create",
        uri,
        "--name",
        "t",
        "--type",
        table_type,
        "--record-key",
        "id",
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

#[test]
fn key_only_deletes_and_partition_moves_on_partitioned_tables() {
    for table_type in ["cow", "mor"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let uri = dir.path().join("t").display().to_string();
        create(&uri, table_type, &["--partition-by", "city"]);
        write(
            dir.path(),
            &uri,
            "1.jsonl",
            &[
                json!({"op":"c","after":{"id":1,"city":"a"}}),
                json!({"op":"c","after":{"id":2,"city":"b"}}),
                json!({"op":"c","after":{"id":3,"city":"b"}}),
            ],
        );
        // The issue's repro: a delete whose before carries only the key…
        let out = write(
            dir.path(),
            &uri,
            "2.jsonl",
            &[json!({"op":"d","before":{"id":1}})],
        );
        assert!(out.contains("1 deletes"), "{table_type}: {out}");
        // …and an update that moves key 2 from b to c; a key change of 3 to 4.
        write(
            dir.path(),
            &uri,
            "3.jsonl",
            &[
                json!({"op":"u","before":{"id":2,"city":"b"},"after":{"id":2,"city":"c"}}),
                json!({"op":"d","before":{"id":3}}),
                json!({"op":"c","after":{"id":4,"city":"b"}}),
            ],
        );
        let got: Vec<(i64, String)> = rows(&uri)
            .iter()
            .map(|r| (r["id"].as_i64().expect("id"), r["city"].to_string()))
            .collect();
        assert_eq!(
            got,
            [(2, "\"c\"".to_string()), (4, "\"b\"".to_string())],
            "{table_type}"
        );
        assert_hudi_rs_agrees(&uri);
    }
}

#[test]
fn doubles_round_trip_bit_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    create(&uri, "cow", &[]);
    let mut rng = StdRng::seed_from_u64(7);
    let mut values: Vec<f64> = vec![
        208.84799999999998,
        0.1,
        -0.0,
        0.0,
        5e-324,
        2.2250738585072014e-308,
        f64::MAX,
        f64::MIN,
        1.0000000000000002,
    ];
    while values.len() < 3000 {
        let v = f64::from_bits(rng.random());
        if v.is_finite() {
            values.push(v);
        }
    }
    // Rust prints the shortest decimal that reads back as the same double.
    let events: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let line = format!(r#"{{"op":"c","after":{{"id":{i},"x":{v:?}}}}}"#);
            serde_json::from_str(&line).expect("valid JSON")
        })
        .collect();
    write(dir.path(), &uri, "doubles.jsonl", &events);
    let read: Vec<u64> = rows(&uri)
        .iter()
        .map(|r| r["x"].as_f64().expect("a number").to_bits())
        .collect();
    let expected: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    let changed = read.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert_eq!(changed, 0, "{changed} of {} doubles changed", values.len());
    assert_hudi_rs_agrees(&uri);
}

#[test]
fn partition_values_with_special_characters_stay_readable_and_writable() {
    let values = [
        "ü", "Köln", "Zürich", "%2F", "a%", "#", "?", "*", "~", "x\\y", "a b", "_x", ".x",
    ];
    for (table_type, hive) in [("cow", false), ("mor", false), ("mor", true)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let uri = dir.path().join("t").display().to_string();
        let mut extra = vec!["--partition-by", "p", "--ordering-field", "v"];
        if hive {
            extra.push("--hive-style");
        }
        create(&uri, table_type, &extra);
        let events = |v: i64| -> Vec<Value> {
            values
                .iter()
                .enumerate()
                .map(|(i, p)| json!({"op":"c","after":{"id":i,"p":p,"v":v}}))
                .collect()
        };
        write(dir.path(), &uri, "1.jsonl", &events(1));
        // Later writes find the same directories; for merge-on-read they append logs there.
        write(dir.path(), &uri, "2.jsonl", &events(2));
        if table_type == "mor" {
            ok(&["compact", &uri]);
            write(dir.path(), &uri, "3.jsonl", &events(3));
        }
        let got = rows(&uri);
        assert_eq!(got.len(), values.len(), "{table_type} hive={hive}: {got:?}");
        for (row, value) in got.iter().zip(values) {
            assert_eq!(row["p"], value, "{table_type} hive={hive}");
            assert!(
                row["v"].as_i64() >= Some(2),
                "{table_type} hive={hive}: {row}"
            );
        }
        // The directories are the values themselves, not percent-encoded.
        for value in values {
            let name = if hive {
                format!("p={value}")
            } else {
                value.to_string()
            };
            assert!(
                Path::new(&uri).join(&name).is_dir(),
                "{table_type}: no directory {name:?}"
            );
        }
        assert_hudi_rs_agrees(&uri);
    }
}

#[test]
fn reserved_and_impossible_partition_values_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    create(&uri, "cow", &["--partition-by", "p"]);
    write(
        dir.path(),
        &uri,
        "ok.jsonl",
        &[json!({"op":"c","after":{"id":1,"p":"x"}})],
    );
    for bad in [".hoodie", "metadata", "a/b", "..", "tab\there"] {
        let file = dir.path().join("bad.jsonl");
        let text = format!(
            "{}\n\n{}\n",
            json!({"op":"c","after":{"id":2,"p":"y"}}),
            json!({"op":"c","after":{"id":3,"p":bad}})
        );
        std::fs::write(&file, text).expect("write");
        let err = fails(&["write", &uri, &file.display().to_string()]);
        // The message names the line of the file (line 3: the second event, after a blank line).
        assert!(
            err.contains("line 3") && err.contains("partition column \"p\""),
            "{bad:?}: {err}"
        );
    }
    assert!(!Path::new(&uri).join(".hoodie").join("x").exists());
    assert_eq!(rows(&uri).len(), 1);
}

#[test]
fn ambiguous_composite_keys_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    ok(&[
        "table",
        "create",
        &uri,
        "--name",
        "t",
        "--record-key",
        "a,b",
    ]);
    let file = dir.path().join("keys.jsonl");
    let text = format!(
        "{}\n{}\n",
        json!({"op":"c","after":{"a":"x,b:y","b":"z"}}),
        json!({"op":"c","after":{"a":"x","b":"y,b:z"}})
    );
    std::fs::write(&file, text).expect("write");
    let err = fails(&["write", &uri, &file.display().to_string()]);
    assert!(err.contains("line 1") && err.contains("x,b:y"), "{err}");
    // Separators that cannot merge two keys are fine.
    write(
        dir.path(),
        &uri,
        "fine.jsonl",
        &[
            json!({"op":"c","after":{"a":"x,c:y","b":"z"}}),
            json!({"op":"c","after":{"a":"x","b":"y,b:z"}}),
        ],
    );
    assert_eq!(rows(&uri).len(), 2);
}

#[test]
fn the_checkpoint_never_goes_backwards_and_bad_queries_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    create(&uri, "cow", &["--ordering-field", "_cdc_position"]);
    let event = |id: i64, lsn: i64| json!({"op":"c","after":{"id":id},"source":{"lsn":lsn}});
    let first = write(dir.path(), &uri, "1.jsonl", &[event(1, 100)]);
    // A replay of older events commits, but keeps the table's checkpoint.
    write(dir.path(), &uri, "2.jsonl", &[event(1, 50)]);
    let timeline: Vec<Value> = ok(&["timeline", &uri, "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[1]["checkpoint"]["position"], 100, "{timeline:?}");

    // An empty input commits nothing and says so.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").expect("write");
    let out = ok(&["write", &uri, &empty.display().to_string()]);
    assert!(out.contains("Nothing to commit"), "{out}");
    assert_eq!(ok(&["timeline", &uri, "--json"]).lines().count(), 2);

    let t1 = first
        .split_whitespace()
        .nth(1)
        .expect("instant")
        .to_string();
    let err = fails(&["read", &uri, "--from", &t1, "--to", "20000101000000000"]);
    assert!(err.contains("later than --to"), "{err}");
    let err = fails(&["read", &uri, "--as-of", "20261301000000000"]);
    assert!(err.contains("not an instant time"), "{err}");
    let err = fails(&["read", &uri, "--storage-option", "aws_region=eu-west-1"]);
    assert!(
        err.contains("only s3:// tables take storage options"),
        "{err}"
    );
}

#[test]
fn column_names_avro_refuses_are_readable_everywhere_and_read_back_as_written() {
    for table_type in ["cow", "mor"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let uri = dir.path().join("t").display().to_string();
        ok(&[
            "table",
            "create",
            &uri,
            "--name",
            "t",
            "--type",
            table_type,
            "--record-key",
            "order id",
            "--partition-by",
            "city name",
        ]);
        let row = |id: i64, v: &str| {
            json!({"op":"c","after":{
                "order id": id, "city name": "Köln", "a-b": v, "say \"hi\"": 1.5,
                "Köln": true, "1st": id * 10, "nested": {"inner field": v}
            }})
        };
        write(
            dir.path(),
            &uri,
            "1.jsonl",
            &[row(1, "x"), row(2, "y"), row(3, "z")],
        );
        write(
            dir.path(),
            &uri,
            "2.jsonl",
            &[row(2, "Y"), json!({"op":"d","before":{"order id": 3}})],
        );
        if table_type == "mor" {
            ok(&["compact", &uri]);
        }
        let got: Vec<Value> = ok(&["read", &uri])
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        let mut got: Vec<Value> = got;
        got.sort_by_key(|r| r["order id"].as_i64());
        assert_eq!(got.len(), 2, "{table_type}: {got:?}");
        for (r, (id, v)) in got.iter().zip([(1, "x"), (2, "Y")]) {
            assert_eq!(r["order id"], id, "{table_type}: {r}");
            assert_eq!(r["a-b"], v, "{table_type}: {r}");
            assert_eq!(r["say \"hi\""], 1.5, "{table_type}: {r}");
            assert_eq!(r["Köln"], true, "{table_type}: {r}");
            assert_eq!(r["1st"], id * 10, "{table_type}: {r}");
            assert_eq!(r["nested"]["inner field"], v, "{table_type}: {r}");
            assert_eq!(r["city name"], "Köln", "{table_type}: {r}");
        }
        let selected = ok(&["read", &uri, "--columns", "a-b,order id", "--format", "csv"]);
        assert_eq!(selected.lines().next(), Some("a-b,order id"), "{selected}");
        // hudi-rs reads every query of the table (by the Avro-valid names in its files).
        assert_hudi_rs_agrees(&uri);
    }
    // Two names that would be one name in the files are refused; nothing is committed.
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    create(&uri, "cow", &[]);
    let file = dir.path().join("clash.jsonl");
    std::fs::write(
        &file,
        format!("{}\n", json!({"op":"c","after":{"id":1,"a b":1,"a-b":2}})),
    )
    .expect("write");
    let err = fails(&["write", &uri, &file.display().to_string()]);
    assert!(err.contains("\"a__b\""), "{err}");
    assert!(rows(&uri).is_empty());
}

#[test]
fn a_commit_that_completed_is_reported_as_completed_when_storage_fails_afterwards() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    create(&uri, "cow", &[]);
    let file = |name: &str, id: i64| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{}\n", json!({"op":"c","after":{"id":id}}))).expect("write");
        path.display().to_string()
    };
    // Releasing the lease fails after the commit completed.
    let one = file("1.jsonl", 1);
    let out = common::cli::inlet_with_env(
        &["write", &uri, &one],
        &[("INLET_FAILPOINT", "error:lease.release")],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("Committed "), "{stdout}");
    assert!(
        stderr.contains("releasing the writer lease failed"),
        "{stderr}"
    );
    // The answer to the completing put is lost, though the put happened.
    let two = file("2.jsonl", 2);
    let out = common::cli::inlet_with_env(
        &["write", &uri, &two],
        &[("INLET_FAILPOINT", "error:commit.after-complete")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("Committed "),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<i64> = rows(&uri).iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(ok(&["timeline", &uri, "--json"]).lines().count(), 2);
}

#[test]
fn time_travel_before_what_the_cleaner_kept_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = dir.path().join("t").display().to_string();
    create(&uri, "cow", &[]);
    let mut instants = Vec::new();
    for v in 0..3 {
        let out = write(
            dir.path(),
            &uri,
            &format!("{v}.jsonl"),
            &[json!({"op":"c","after":{"id":1,"v":v}})],
        );
        instants.push(out.split_whitespace().nth(1).expect("instant").to_string());
    }
    // Every instant reads before cleaning.
    assert_eq!(rows_as_of(&uri, &instants[0]), [0]);
    ok(&["clean", &uri, "--policy", "keep-latest-commits:1"]);
    let err = fails(&["read", &uri, "--as-of", &instants[0]]);
    assert!(
        err.contains("cleaner removed") && err.contains("earliest instant still readable"),
        "{err}"
    );
    // What the cleaner kept still reads.
    assert_eq!(rows_as_of(&uri, &instants[2]), [2]);
}

fn rows_as_of(uri: &str, at: &str) -> Vec<i64> {
    ok(&["read", uri, "--as-of", at])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["v"]
                .as_i64()
                .expect("v")
        })
        .collect()
}

/// `inlet savepoint`, `savepoints`, `restore` as a user runs them: the savepointed commit cannot
/// be rolled back alone, survives a clean, and the restore brings back exactly its rows, which
/// hudi-rs reads the same. A savepoint written by a Java writer (named with its commit's time)
/// is not mistaken for that commit.
#[test]
fn savepoint_and_restore_from_the_command_line() {
    for table_type in ["cow", "mor"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let uri = dir.path().join("t").display().to_string();
        create(&uri, table_type, &["--partition-by", "city"]);
        let first = write(
            dir.path(),
            &uri,
            "1.jsonl",
            &[
                json!({"op":"c","after":{"id":1,"city":"Köln","v":"one"}}),
                json!({"op":"c","after":{"id":2,"city":"b","v":"two"}}),
            ],
        );
        let kept = first
            .split_whitespace()
            .nth(1)
            .expect("Committed <instant>")
            .to_string();
        let before = rows(&uri);
        let out = ok(&[
            "savepoint",
            &uri,
            &kept,
            "--by",
            "ops",
            "--comment",
            "before the load",
        ]);
        assert!(out.contains(&format!("savepoint {kept} keeps")), "{out}");
        let listed: Value =
            serde_json::from_str(ok(&["savepoints", &uri, "--json"]).trim()).expect("json");
        assert_eq!(listed["instant"], kept);
        assert_eq!(listed["by"], "ops");
        assert_eq!(listed["comments"], "before the load");
        let timeline = ok(&["timeline", &uri, "--json"]);
        assert!(timeline.contains("\"savepoint\""), "{timeline}");
        let refused = fails(&["savepoint", &uri, &kept]);
        assert!(refused.contains("savepointed already"), "{refused}");
        let refused = fails(&["rollback", &uri, &kept]);
        assert!(refused.contains("savepoint"), "{refused}");

        for (i, batch) in [
            vec![json!({"op":"u","before":{"id":1,"city":"Köln"},"after":{"id":1,"city":"c","v":"moved"}})],
            vec![json!({"op":"d","before":{"id":2}}), json!({"op":"c","after":{"id":3,"city":"b","v":"new"}})],
            vec![json!({"op":"c","after":{"id":4,"city":"d","v":"later"}})],
        ]
        .iter()
        .enumerate()
        {
            write(dir.path(), &uri, &format!("{}.jsonl", i + 2), batch);
        }
        ok(&["clean", &uri, "--policy", "keep-latest-commits:1"]);
        assert_eq!(
            records_as_of(&uri, &kept),
            before,
            "{table_type}: as of the savepoint"
        );
        let refused = fails(&["restore", &uri, "20200101000000000"]);
        assert!(refused.contains("not a savepoint"), "{refused}");

        let out = ok(&["restore", &uri, &kept]);
        assert!(
            out.contains("rolled back 3 instant(s)"),
            "{table_type}: {out}"
        );
        assert_eq!(rows(&uri), before, "{table_type}: after the restore");
        assert_hudi_rs_agrees(&uri);
        // Writes go on from the restored state.
        write(
            dir.path(),
            &uri,
            "9.jsonl",
            &[json!({"op":"c","after":{"id":9,"city":"Köln","v":"after"}})],
        );
        assert_eq!(rows(&uri).len(), before.len() + 1);
        ok(&["savepoint", &uri, &kept, "--delete"]);
        assert!(ok(&["savepoints", &uri]).contains("no savepoints"));
        assert_hudi_rs_agrees(&uri);
    }
}

fn records_as_of(uri: &str, instant: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = ok(&["read", uri, "--as-of", instant])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}
