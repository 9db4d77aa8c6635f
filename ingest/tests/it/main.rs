//! Integration tests of the Debezium decoder: fixture files under
//! `tests/data/` and one test per error case.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Fields, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use inlet_ingest::{CDC_COMMIT_TS, CDC_OP, CDC_POSITION, ChangeBatch, Error, decode};
use serde_json::{Value, json};

fn fixture(name: &str) -> ChangeBatch {
    // The crate's folder when the test runs (cargo sets it), not when it was built: the build
    // cache is shared between clones at other paths.
    let crate_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = PathBuf::from(crate_dir).join("tests/data").join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode(std::io::BufReader::new(file)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn decode_str(input: &str) -> Result<ChangeBatch, Error> {
    decode(input.as_bytes())
}

fn decode_err(input: &str) -> Error {
    match decode_str(input) {
        Ok(b) => panic!("expected an error, decoded {} rows", b.batch.num_rows()),
        Err(e) => e,
    }
}

fn col<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_ref()
}

fn ops(batch: &RecordBatch) -> Vec<&str> {
    col(batch, CDC_OP)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect()
}

fn positions(batch: &RecordBatch) -> Vec<Option<i64>> {
    col(batch, CDC_POSITION)
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

fn commit_ts(batch: &RecordBatch) -> Vec<Option<i64>> {
    col(batch, CDC_COMMIT_TS)
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect()
}

fn strings(a: &dyn Array) -> Vec<Option<&str>> {
    a.as_string::<i32>().iter().collect()
}

fn deletes(b: &ChangeBatch) -> Vec<bool> {
    b.deletes.iter().map(|d| d == Some(true)).collect()
}

fn utc() -> Option<Arc<str>> {
    Some("UTC".into())
}

/// µs since the epoch of a UTC date-time.
fn micros(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|d| d.and_hms_micro_opt(h, mi, s, us))
        .expect("valid date-time")
        .and_utc()
        .timestamp_micros()
}

fn assert_metadata_columns(batch: &RecordBatch) {
    let schema = batch.schema();
    let n = schema.fields().len();
    let tail: Vec<_> = schema.fields()[n - 3..]
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
        .collect();
    assert_eq!(
        tail,
        [
            (CDC_OP, DataType::Utf8, false),
            (CDC_POSITION, DataType::Int64, true),
            (
                CDC_COMMIT_TS,
                DataType::Timestamp(TimeUnit::Microsecond, utc()),
                true
            ),
        ]
    );
}

// ------------------------------------------------------------------ PostgreSQL

#[test]
fn postgres_all_types() {
    let b = fixture("pg_all_types.jsonl");
    let batch = &b.batch;
    assert_metadata_columns(batch);
    assert_eq!(batch.num_rows(), 4, "the tombstone is skipped");
    assert_eq!(ops(batch), ["r", "c", "u", "d"]);
    assert_eq!(deletes(&b), [false, false, false, true]);
    assert_eq!(
        positions(batch),
        [
            Some(24023128),
            Some(24023480),
            Some(24023800),
            Some(24024100)
        ]
    );
    assert_eq!(
        commit_ts(batch),
        [
            Some(1_709_284_530_123_000),
            Some(1_709_284_600_000_000),
            Some(1_709_284_700_000_000),
            Some(1_709_284_800_000_000)
        ]
    );

    let schema = batch.schema();
    let types: Vec<(&str, DataType, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
        .collect();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let expected = vec![
        ("id", DataType::Int32, false),
        ("flag", DataType::Boolean, true),
        ("tiny", DataType::Int16, true),
        ("small", DataType::Int16, true),
        ("qty", DataType::Int32, true),
        ("big", DataType::Int64, true),
        ("ratio", DataType::Float32, true),
        ("score", DataType::Float64, true),
        ("name", DataType::Utf8, true),
        ("status", DataType::Utf8, true),
        ("blob", DataType::Binary, true),
        ("price", DataType::Decimal128(10, 5), true),
        ("birthday", DataType::Date32, true),
        ("connect_date", DataType::Date32, true),
        ("created_ms", ts.clone(), true),
        ("created_us", ts.clone(), true),
        ("created_ns", ts.clone(), true),
        ("connect_ts", ts.clone(), true),
        (
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, utc()),
            true,
        ),
        ("t_ms", DataType::Int64, true),
        ("t_us", DataType::Int64, true),
        ("t_ns", DataType::Int64, true),
        ("connect_time", DataType::Int64, true),
        ("doc", DataType::Utf8, true),
        ("uid", DataType::Utf8, true),
        (
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        (
            "attrs",
            DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("keys", DataType::Utf8, false),
                        Field::new("values", DataType::Utf8, true),
                    ])),
                    false,
                )),
                false,
            ),
            true,
        ),
        (
            "location",
            DataType::Struct(Fields::from(vec![
                Field::new("x", DataType::Float64, false),
                Field::new("y", DataType::Float64, false),
                Field::new("wkb", DataType::Binary, true),
                Field::new("srid", DataType::Int32, true),
            ])),
            true,
        ),
    ];
    assert_eq!(types[..types.len() - 3], expected[..]);

    // Row 0: the snapshot read with every column set.
    assert_eq!(
        col(batch, "id").as_primitive::<Int32Type>().values(),
        &[1, 2, 1, 2]
    );
    assert_eq!(
        col(batch, "flag").as_boolean().iter().collect::<Vec<_>>(),
        [Some(true), Some(false), Some(true), None]
    );
    assert_eq!(col(batch, "tiny").as_primitive::<Int16Type>().value(0), -5);
    assert_eq!(
        col(batch, "small").as_primitive::<Int16Type>().value(0),
        300
    );
    assert_eq!(
        col(batch, "qty").as_primitive::<Int32Type>().value(0),
        70_000
    );
    let big = col(batch, "big").as_primitive::<Int64Type>();
    assert_eq!(big.value(0), 9_007_199_254_740_993, "int64 stays exact");
    assert_eq!(big.value(2), i64::MIN);
    assert_eq!(
        col(batch, "ratio").as_primitive::<Float32Type>().value(0),
        1.5
    );
    assert_eq!(
        col(batch, "score").as_primitive::<Float64Type>().value(0),
        2.25
    );
    assert_eq!(
        strings(col(batch, "name")),
        [Some("widget"), None, Some("widget v2"), None]
    );
    assert_eq!(strings(col(batch, "status"))[0], Some("active"));
    assert_eq!(
        col(batch, "blob").as_binary::<i32>().value(0),
        &[0x00, 0x01, 0xFE, 0xFF]
    );

    // DECIMAL(10,5): 12.34500 → 1234500, -0.00001 → -1, 99999.99999 → 9999999999.
    let price = col(batch, "price").as_primitive::<Decimal128Type>();
    assert_eq!(
        price.iter().collect::<Vec<_>>(),
        [Some(1_234_500), Some(-1), Some(9_999_999_999), None]
    );
    assert_eq!(price.value_as_string(0), "12.34500");

    // 19783 days = 2024-03-01.
    assert_eq!(
        col(batch, "birthday").as_primitive::<Date32Type>().value(0),
        19_783
    );
    assert_eq!(
        col(batch, "connect_date")
            .as_primitive::<Date32Type>()
            .value(0),
        19_783
    );

    let at = |name: &str| {
        col(batch, name)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0)
    };
    assert_eq!(at("created_ms"), 1_709_284_530_123_000);
    assert_eq!(at("created_us"), 1_709_284_530_123_456);
    assert_eq!(at("created_ns"), 1_709_284_530_123_456);
    assert_eq!(at("connect_ts"), 1_709_284_530_123_000);
    let updated = col(batch, "updated_at").as_primitive::<TimestampMicrosecondType>();
    assert_eq!(updated.value(0), micros(2024, 3, 1, 9, 15, 30, 123_456));
    assert_eq!(updated.value(1), micros(2024, 3, 1, 23, 59, 59, 0));
    assert_eq!(updated.value(2), micros(2024, 3, 2, 5, 0, 0, 500_000));
    assert!(updated.is_null(3));

    // 10:20:30.123(456) as µs since midnight.
    let t = |name: &str| col(batch, name).as_primitive::<Int64Type>().value(0);
    assert_eq!(t("t_ms"), 37_230_123_000);
    assert_eq!(t("t_us"), 37_230_123_456);
    assert_eq!(t("t_ns"), 37_230_123_456);
    assert_eq!(t("connect_time"), 37_230_123_000);

    assert_eq!(strings(col(batch, "doc"))[0], Some(r#"{"a": [1, 2]}"#));
    assert_eq!(
        strings(col(batch, "uid"))[0],
        Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    );

    let tags = col(batch, "tags").as_list::<i32>();
    assert_eq!(tags.value_offsets(), &[0, 2, 2, 4, 4]);
    assert_eq!(
        strings(tags.values().as_ref()),
        [Some("a"), Some("b"), Some("a"), Some("b")]
    );
    assert!(tags.is_null(3));

    let attrs = col(batch, "attrs").as_map();
    assert_eq!(attrs.value_offsets(), &[0, 2, 2, 4, 4]);
    assert_eq!(
        strings(attrs.keys().as_ref())[..2],
        [Some("color"), Some("size")]
    );
    assert_eq!(strings(attrs.values().as_ref())[..2], [Some("red"), None]);
    assert!(!attrs.is_null(1), "an empty map is not null");
    assert!(attrs.is_null(3));

    let location = col(batch, "location").as_struct();
    assert_eq!(
        location.column(0).as_primitive::<Float64Type>().value(0),
        1.5
    );
    assert_eq!(
        location.column(1).as_primitive::<Float64Type>().value(0),
        -2.25
    );
    assert_eq!(location.column(2).as_binary::<i32>().value(0).len(), 21);
    assert!(location.column(3).is_null(0));
    assert!(location.is_null(1));
}

#[test]
fn postgres_delete_with_key_only_before() {
    let b = fixture("pg_all_types.jsonl");
    let batch = &b.batch;
    // Row 3 deletes id 2; `before` has only the key (REPLICA IDENTITY DEFAULT).
    assert!(b.deletes.value(3));
    assert_eq!(col(batch, "id").as_primitive::<Int32Type>().value(3), 2);
    for (i, field) in batch.schema().fields().iter().enumerate() {
        if !["id", CDC_OP, CDC_POSITION, CDC_COMMIT_TS].contains(&field.name().as_str()) {
            assert!(
                batch.column(i).is_null(3),
                "{} should be null",
                field.name()
            );
        }
    }
}

#[test]
fn postgres_schema_grows_mid_file() {
    let b = fixture("pg_schema_change.jsonl");
    let batch = &b.batch;
    assert_metadata_columns(batch);
    assert_eq!(batch.num_rows(), 4);
    let schema = batch.schema();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "email",
            "credit",
            CDC_OP,
            CDC_POSITION,
            CDC_COMMIT_TS
        ]
    );
    assert!(!schema.field(0).is_nullable());
    assert!(schema.field(2).is_nullable(), "added columns are nullable");
    assert_eq!(schema.field(3).data_type(), &DataType::Decimal128(8, 2));

    assert_eq!(
        col(batch, "id").as_primitive::<Int32Type>().values(),
        &[1, 2, 3, 1]
    );
    assert_eq!(
        strings(col(batch, "name")),
        [Some("Anne"), Some("Bob"), Some("Cleo"), None]
    );
    assert_eq!(
        strings(col(batch, "email")),
        [None, None, Some("cleo@example.com"), None]
    );
    assert_eq!(
        col(batch, "credit")
            .as_primitive::<Decimal128Type>()
            .iter()
            .collect::<Vec<_>>(),
        [None, None, Some(12_345), None]
    );
    assert_eq!(ops(batch), ["c", "c", "c", "d"]);
    assert_eq!(deletes(&b), [false, false, false, true]);
    assert_eq!(
        positions(batch),
        [Some(100), Some(200), Some(300), Some(400)]
    );
}

// ------------------------------------------------------------------ MySQL

#[test]
fn mysql_binlog_positions() {
    let b = fixture("mysql_binlog.jsonl");
    let batch = &b.batch;
    assert_metadata_columns(batch);
    assert_eq!(batch.num_rows(), 4);
    assert_eq!(ops(batch), ["r", "c", "u", "d"]);
    assert_eq!(deletes(&b), [false, false, false, true]);
    let p = positions(batch);
    assert_eq!(
        p,
        [
            Some(3 << 32 | 154),
            Some(3 << 32 | 1024),
            Some(3 << 32 | 2048),
            Some(4 << 32 | 4)
        ]
    );
    assert!(p.is_sorted(), "positions increase in binlog order");
    assert_eq!(
        commit_ts(batch),
        [
            Some(1_709_283_000_000_000),
            Some(1_709_283_100_000_000),
            Some(1_709_283_200_000_000),
            Some(1_709_283_300_000_000)
        ]
    );

    let schema = batch.schema();
    assert_eq!(schema.field(1).name(), "first_name");
    assert!(!schema.field(1).is_nullable());
    // A MySQL delete carries the full row image in `before`.
    assert_eq!(
        col(batch, "id").as_primitive::<Int32Type>().values(),
        &[1001, 1002, 1001, 1002]
    );
    assert_eq!(
        strings(col(batch, "first_name")),
        [Some("Sally"), Some("George"), Some("Sal"), Some("George")]
    );
    assert_eq!(
        col(batch, "active").as_primitive::<Int16Type>().values(),
        &[1, 0, 1, 0]
    );
    let balance = col(batch, "balance").as_primitive::<Decimal128Type>();
    assert_eq!(balance.data_type(), &DataType::Decimal128(8, 2));
    assert_eq!(balance.values(), &[150_075, -2_550, 150_075, -2_550]);
    assert_eq!(balance.value_as_string(1), "-25.50");
    assert_eq!(
        col(batch, "created")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        1_709_280_000_000_000
    );
    let updated = col(batch, "updated_at").as_primitive::<TimestampMicrosecondType>();
    assert_eq!(updated.value(2), micros(2024, 3, 1, 9, 0, 0, 0));
    let birth = col(batch, "birth").as_primitive::<Date32Type>();
    assert_eq!((birth.value(0), birth.is_null(1)), (7000, true));
}

// ------------------------------------------------------------------ bare payloads

#[test]
fn bare_payloads_are_inferred() {
    let b = fixture("bare_payloads.jsonl");
    let batch = &b.batch;
    assert_metadata_columns(batch);
    assert_eq!(batch.num_rows(), 4, "blank line and tombstone skipped");
    let schema = batch.schema();
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
        .collect();
    assert_eq!(
        types[..types.len() - 3],
        [
            ("id", DataType::Int64, true),
            ("name", DataType::Utf8, true),
            ("score", DataType::Float64, true),
            (
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true
            ),
            (
                "address",
                DataType::Struct(Fields::from(vec![
                    Field::new("city", DataType::Utf8, true),
                    Field::new("zip", DataType::Utf8, true),
                    Field::new("country", DataType::Utf8, true),
                ])),
                true
            ),
            ("note", DataType::Utf8, true),
            ("vip", DataType::Boolean, true),
        ]
    );
    assert_eq!(
        col(batch, "id").as_primitive::<Int64Type>().values(),
        &[1, 2, 1, 3]
    );
    assert_eq!(
        col(batch, "score")
            .as_primitive::<Float64Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(10.0), Some(10.5), None, Some(-1.0)]
    );
    let tags = col(batch, "tags").as_list::<i32>();
    assert_eq!(tags.value_offsets(), &[0, 1, 1, 1, 4]);
    assert!(tags.is_null(2));
    assert_eq!(
        strings(tags.values().as_ref()),
        [Some("x"), Some("y"), None, Some("z")]
    );
    let address = col(batch, "address").as_struct();
    assert_eq!(
        strings(address.column(0).as_ref()),
        [Some("Oslo"), Some("Bergen"), None, None]
    );
    assert_eq!(strings(address.column(2).as_ref())[..2], [None, Some("NO")]);
    assert!(address.is_null(2) && address.is_null(3));
    assert_eq!(col(batch, "note").null_count(), 4);
    assert_eq!(
        col(batch, "vip").as_boolean().iter().collect::<Vec<_>>(),
        [None, None, None, Some(true)]
    );
    assert_eq!(ops(batch), ["c", "c", "d", "c"]);
    assert_eq!(deletes(&b), [false, false, true, false]);
    // The last event has no `source`: no position, commit time from the top-level ts_ms.
    assert_eq!(positions(batch), [Some(1000), Some(1100), Some(1200), None]);
    assert_eq!(
        commit_ts(batch),
        [
            Some(1_709_290_000_000_000),
            Some(1_709_290_001_000_000),
            Some(1_709_290_002_000_000),
            Some(1_709_290_003_050_000)
        ]
    );
}

#[test]
fn no_events() {
    let b = decode_str("\nnull\n\n").unwrap();
    assert_eq!(b.batch.num_rows(), 0);
    assert_metadata_columns(&b.batch);
    assert_eq!(b.batch.num_columns(), 3);
}

// ------------------------------------------------------------------ errors

/// One envelope line whose row schema has the given fields.
fn envelope_line(fields: Value, op: &str, row: Value) -> String {
    let side = if op == "d" { "before" } else { "after" };
    let mut value =
        json!({"type": "struct", "optional": true, "name": "s.public.t.Value", "fields": fields});
    let mut before = value.clone();
    before["field"] = json!("before");
    value["field"] = json!("after");
    let mut payload = json!({"before": null, "after": null, "op": op, "ts_ms": 1,
        "source": {"connector": "postgresql", "ts_ms": 1, "lsn": 1}});
    payload[side] = row;
    json!({
        "schema": {"type": "struct", "name": "s.public.t.Envelope", "fields": [
            before, value,
            {"type": "string", "optional": false, "field": "op"},
            {"type": "int64", "optional": true, "field": "ts_ms"}]},
        "payload": payload,
    })
    .to_string()
}

fn id_and(field: Value) -> Value {
    json!([{"type": "int32", "optional": false, "field": "id"}, field])
}

fn lines(lines: &[String]) -> String {
    lines.join("\n")
}

fn ok_line() -> String {
    envelope_line(
        id_and(json!({"type": "string", "optional": true, "field": "s"})),
        "c",
        json!({"id": 1, "s": "x"}),
    )
}

fn assert_bad_value(e: &Error, line: usize, column: &str, reason: &str) {
    match e {
        Error::BadValue {
            line: l,
            column: c,
            reason: r,
        } => {
            assert_eq!((*l, c.as_str()), (line, column), "{e}");
            assert!(r.contains(reason), "{e}");
        }
        other => panic!("expected BadValue, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("line {line}: column `{column}`")),
        "{msg}"
    );
}

#[test]
fn error_malformed_json() {
    let e = decode_err(&format!(
        "{}\n\n{{\"op\": \"c\", \"after\": {{\n",
        ok_line()
    ));
    assert!(matches!(e, Error::Malformed { line: 3, .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("line 3: malformed change event: invalid JSON"),
        "{e}"
    );
    let e = decode_err("42");
    assert!(matches!(e, Error::Malformed { line: 1, .. }), "{e}");
}

#[test]
fn error_missing_op() {
    let e = decode_err("\n{\"after\": {\"id\": 1}}");
    assert_eq!(e.to_string(), "line 2: `op` is missing or null");
}

#[test]
fn error_missing_after_or_before() {
    let e = decode_err(r#"{"op": "c", "before": null}"#);
    assert_eq!(
        e.to_string(),
        "line 1: `after` is missing or null (required by op \"c\")"
    );
    let e = decode_err(&lines(&[
        ok_line(),
        envelope_line(
            id_and(json!({"type": "string", "optional": true, "field": "s"})),
            "u",
            Value::Null,
        ),
    ]));
    assert!(
        matches!(e, Error::MissingField { line: 2, ref field, .. } if field == "after"),
        "{e}"
    );
    let e = decode_err(r#"{"op": "d", "before": null, "after": {"id": 1}}"#);
    assert!(
        matches!(e, Error::MissingField { line: 1, ref field, .. } if field == "before"),
        "{e}"
    );
}

#[test]
fn error_unsupported_op() {
    let e = decode_err(&format!(
        "{}\n{}",
        ok_line(),
        r#"{"schema":{"type":"struct","fields":[]},"payload":{"op":"t","source":{"lsn":5}}}"#
    ));
    assert!(
        matches!(e, Error::UnsupportedOp { line: 2, ref op } if op == "t"),
        "{e}"
    );
    assert!(e.to_string().contains("truncate"), "{e}");
    let e = decode_err(r#"{"op": "m", "message": {"prefix": "x"}}"#);
    assert!(matches!(e, Error::UnsupportedOp { line: 1, .. }), "{e}");
}

#[test]
fn error_bad_base64() {
    let e = decode_err(&lines(&[
        envelope_line(
            id_and(json!({"type": "bytes", "optional": true, "field": "b"})),
            "c",
            json!({"id": 1, "b": "AAE="}),
        ),
        envelope_line(
            id_and(json!({"type": "bytes", "optional": true, "field": "b"})),
            "c",
            json!({"id": 2, "b": "not base64!"}),
        ),
    ]));
    assert_bad_value(&e, 2, "b", "invalid base64");
}

#[test]
fn error_bad_decimal() {
    let decimal = json!({"type": "bytes", "optional": true, "field": "price",
        "name": "org.apache.kafka.connect.data.Decimal",
        "parameters": {"scale": "2", "connect.decimal.precision": "4"}});
    // "JxA=" is 10000 unscaled, i.e. 100.00, which needs precision 5.
    let e = decode_err(&lines(&[
        ok_line(),
        envelope_line(
            id_and(decimal.clone()),
            "c",
            json!({"id": 1, "price": "BNI="}),
        ),
        envelope_line(
            id_and(decimal.clone()),
            "c",
            json!({"id": 2, "price": "JxA="}),
        ),
    ]));
    assert_bad_value(&e, 3, "price", "does not fit DECIMAL(4,2)");
    let e = decode_err(&envelope_line(
        id_and(decimal.clone()),
        "c",
        json!({"id": 1, "price": "%%"}),
    ));
    assert_bad_value(&e, 1, "price", "invalid base64");
    let e = decode_err(&envelope_line(
        id_and(decimal),
        "c",
        json!({"id": 1, "price": ""}),
    ));
    assert_bad_value(&e, 1, "price", "empty decimal");
}

#[test]
fn error_bad_timestamps() {
    let zoned = json!({"type": "string", "optional": true, "field": "ts", "name": "io.debezium.time.ZonedTimestamp"});
    let e = decode_err(&lines(&[
        envelope_line(
            id_and(zoned.clone()),
            "c",
            json!({"id": 1, "ts": "2024-03-01T10:00:00Z"}),
        ),
        envelope_line(
            id_and(zoned),
            "c",
            json!({"id": 2, "ts": "2024-03-01 10:00"}),
        ),
    ]));
    assert_bad_value(&e, 2, "ts", "invalid ISO-8601");

    let nano = json!({"type": "int64", "optional": true, "field": "ns", "name": "io.debezium.time.NanoTimestamp"});
    let e = decode_err(&envelope_line(
        id_and(nano),
        "c",
        json!({"id": 1, "ns": 1_709_284_530_123_456_789_i64}),
    ));
    assert_bad_value(&e, 1, "ns", "not a whole number of microseconds");
}

#[test]
fn error_wrong_json_type_for_schema() {
    let e = decode_err(&envelope_line(
        id_and(json!({"type": "int32", "optional": true, "field": "n"})),
        "c",
        json!({"id": 1, "n": "12"}),
    ));
    assert_bad_value(&e, 1, "n", "expected an integer, found string \"12\"");
}

#[test]
fn error_null_in_required_column() {
    let e = decode_err(&lines(&[
        ok_line(),
        envelope_line(
            id_and(json!({"type": "string", "optional": true, "field": "s"})),
            "u",
            json!({"id": null, "s": "x"}),
        ),
    ]));
    assert_bad_value(&e, 2, "id", "non-optional");
}

#[test]
fn error_variable_scale_decimal() {
    let e = decode_err(&envelope_line(
        id_and(
            json!({"type": "struct", "optional": true, "field": "amount",
            "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
            "fields": [{"type": "int32", "optional": false, "field": "scale"},
                       {"type": "bytes", "optional": false, "field": "value"}]}),
        ),
        "c",
        json!({"id": 1, "amount": {"scale": 2, "value": "BNI="}}),
    ));
    assert!(
        matches!(e, Error::UnsupportedType { line: 1, ref column, .. } if column == "amount"),
        "{e}"
    );
    assert!(
        e.to_string().contains("decimal.handling.mode=string"),
        "{e}"
    );
    assert!(e.to_string().contains("precise"), "{e}");
}

#[test]
fn error_schema_type_change_mid_file() {
    let e = decode_err(&lines(&[
        ok_line(),
        ok_line(),
        envelope_line(
            id_and(json!({"type": "int64", "optional": true, "field": "s"})),
            "c",
            json!({"id": 3, "s": 5}),
        ),
    ]));
    match &e {
        Error::TypeConflict {
            line,
            column,
            first,
            second,
        } => {
            assert_eq!((*line, column.as_str()), (3, "s"));
            assert_eq!((first.as_str(), second.as_str()), ("Utf8", "Int64"));
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        "line 3: column `s` is Int64 here but was Utf8 in earlier lines"
    );
}

#[test]
fn error_inferred_type_conflict() {
    let input = [
        r#"{"op":"c","after":{"id":1,"a":null}}"#,
        r#"{"op":"c","after":{"id":2}}"#,
        r#"{"op":"c","after":{"id":3,"a":1.5}}"#,
        "",
        r#"null"#,
        r#"{"op":"c","after":{"id":4,"a":2}}"#,
        r#"{"op":"c","after":{"id":5,"a":"2"}}"#,
    ]
    .join("\n");
    let e = decode_err(&input);
    match &e {
        Error::TypeConflict {
            line,
            column,
            first,
            second,
        } => {
            assert_eq!((*line, column.as_str()), (7, "a"));
            assert_eq!((first.as_str(), second.as_str()), ("number", "string"));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn error_mysql_positions() {
    let mysql = |file: &str, pos: i64| {
        format!(
            r#"{{"op":"c","after":{{"id":1}},"source":{{"connector":"mysql","file":"{file}","pos":{pos},"row":0,"ts_ms":1}}}}"#
        )
    };
    let e = decode_err(&lines(&[
        mysql("mysql-bin.000001", 4),
        mysql("mysql-bin.000001", 1 << 32),
    ]));
    assert_bad_value(&e, 2, "source.pos", "2^32");
    let e = decode_err(&mysql("mysql-bin", 4));
    assert_bad_value(&e, 1, "source.file", "no numeric suffix");
}

#[test]
fn error_mixed_envelope_and_bare() {
    let e = decode_err(&lines(&[
        ok_line(),
        r#"{"op":"c","after":{"id":2}}"#.to_owned(),
    ]));
    assert!(matches!(e, Error::Malformed { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("envelope"), "{e}");
}
