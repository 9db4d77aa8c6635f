//! Change metadata from an event: its log position and commit time.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The event's position in the source database's log, increasing in log order.
///
/// * PostgreSQL: `source.lsn` (an integer).
/// * MySQL/MariaDB: `source.file` + `source.pos`, encoded as
///   `file_sequence_number << 32 | pos`, where the sequence number is the
///   numeric suffix of the binlog file name (`mysql-bin.000003` → 3).
///   All rows of one binlog event share a position.
/// * Otherwise (no `source`, or neither of the above): `None`.
pub(crate) fn position(line: usize, source: Option<&Value>) -> Result<Option<i64>> {
    let source = match source {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(source)) => source,
        Some(_) => return Err(bad(line, "source", "expected a JSON object".to_owned())),
    };
    if let Some(lsn) = present(source, "lsn") {
        return lsn.as_i64().map(Some).ok_or_else(|| {
            bad(
                line,
                "source.lsn",
                format!("expected an integer LSN, found {lsn}"),
            )
        });
    }
    let Some(file) = present(source, "file") else {
        return Ok(None);
    };
    let file = file.as_str().ok_or_else(|| {
        bad(
            line,
            "source.file",
            format!("expected a string, found {file}"),
        )
    })?;
    let pos = present(source, "pos").ok_or_else(|| {
        bad(
            line,
            "source.pos",
            "missing, but `source.file` is set".to_owned(),
        )
    })?;
    let pos = pos.as_i64().ok_or_else(|| {
        bad(
            line,
            "source.pos",
            format!("expected an integer, found {pos}"),
        )
    })?;
    binlog_position(file, pos)
        .map(Some)
        .map_err(|(column, reason)| bad(line, column, reason))
}

/// `sequence << 32 | pos`; the sequence must be below 2^31 so that the result
/// is a non-negative i64.
fn binlog_position(file: &str, pos: i64) -> std::result::Result<i64, (&'static str, String)> {
    let digits_start = file
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit())
        .last()
        .map(|(i, _)| i)
        .ok_or_else(|| {
            (
                "source.file",
                format!("binlog file name {file:?} has no numeric suffix"),
            )
        })?;
    let sequence: i64 = file[digits_start..]
        .parse()
        .ok()
        .filter(|s| *s <= i64::from(i32::MAX))
        .ok_or_else(|| {
            (
                "source.file",
                format!("binlog file sequence number of {file:?} is not below 2^31"),
            )
        })?;
    if !(0..1_i64 << 32).contains(&pos) {
        return Err((
            "source.pos",
            format!("binlog position {pos} is not in 0..2^32"),
        ));
    }
    Ok(sequence << 32 | pos)
}

/// The commit time in microseconds since the epoch (UTC): `source.ts_us`,
/// else `source.ts_ms`, else the top-level `ts_us`, else `ts_ms`; `None` if
/// none is present. (`ts_us` exists since Debezium 2.6 and is the same
/// instant at higher precision.)
pub(crate) fn commit_ts(line: usize, payload: &Map<String, Value>) -> Result<Option<i64>> {
    let source = payload.get("source").and_then(Value::as_object);
    let candidates = [
        (source, "ts_us", "source.ts_us", 1),
        (source, "ts_ms", "source.ts_ms", 1_000),
        (Some(payload), "ts_us", "ts_us", 1),
        (Some(payload), "ts_ms", "ts_ms", 1_000),
    ];
    for (object, key, column, factor) in candidates {
        let Some(value) = object.and_then(|o| present(o, key)) else {
            continue;
        };
        return value
            .as_i64()
            .and_then(|v| v.checked_mul(factor))
            .map(Some)
            .ok_or_else(|| {
                bad(
                    line,
                    column,
                    format!("expected an integer timestamp in range, found {value}"),
                )
            });
    }
    Ok(None)
}

fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn bad(line: usize, column: &str, reason: String) -> Error {
    Error::BadValue {
        line,
        column: column.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pos(source: Value) -> Result<Option<i64>> {
        position(4, Some(&source))
    }

    #[test]
    fn postgres_lsn() {
        assert_eq!(
            pos(json!({"lsn": 24023128, "txId": 555})).unwrap(),
            Some(24023128)
        );
        let e = pos(json!({"lsn": "0/16B3748"})).unwrap_err();
        assert!(
            e.to_string().starts_with("line 4: column `source.lsn`"),
            "{e}"
        );
    }

    #[test]
    fn mysql_file_and_pos() {
        let p = pos(json!({"file": "mysql-bin.000003", "pos": 154, "row": 0})).unwrap();
        assert_eq!(p, Some(3 << 32 | 154));
        let later = pos(json!({"file": "mysql-bin.000004", "pos": 4})).unwrap();
        assert!(later > p);
        assert_eq!(
            pos(json!({"file": "binlog.1", "pos": 0})).unwrap(),
            Some(1 << 32)
        );
        // The largest encodable position.
        assert_eq!(
            pos(json!({"file": "b.2147483647", "pos": 4294967295_i64})).unwrap(),
            Some(i64::MAX)
        );
    }

    #[test]
    fn mysql_errors() {
        let e = pos(json!({"file": "mysql-bin.000003", "pos": 4294967296_i64})).unwrap_err();
        assert!(e.to_string().contains("source.pos"), "{e}");
        let e = pos(json!({"file": "mysql-bin", "pos": 4})).unwrap_err();
        assert!(e.to_string().contains("no numeric suffix"), "{e}");
        let e = pos(json!({"file": "b.2147483648", "pos": 4})).unwrap_err();
        assert!(e.to_string().contains("2^31"), "{e}");
        let e = pos(json!({"file": "b.1"})).unwrap_err();
        assert!(e.to_string().contains("source.pos"), "{e}");
        let e = pos(json!({"file": "b.1", "pos": -1})).unwrap_err();
        assert!(e.to_string().contains("source.pos"), "{e}");
    }

    #[test]
    fn no_position() {
        assert_eq!(position(1, None).unwrap(), None);
        assert_eq!(pos(json!({"connector": "sqlserver"})).unwrap(), None);
        assert_eq!(pos(json!({"lsn": null})).unwrap(), None);
    }

    #[test]
    fn commit_time_preference() {
        let payload = |v: Value| v.as_object().cloned().unwrap();
        let p = payload(json!({"source": {"ts_ms": 1000}, "ts_ms": 2000}));
        assert_eq!(commit_ts(1, &p).unwrap(), Some(1_000_000));
        let p = payload(json!({"source": {"ts_ms": 1000, "ts_us": 1000123}, "ts_ms": 2000}));
        assert_eq!(commit_ts(1, &p).unwrap(), Some(1_000_123));
        let p = payload(json!({"source": {}, "ts_ms": 2000}));
        assert_eq!(commit_ts(1, &p).unwrap(), Some(2_000_000));
        let p = payload(json!({"op": "c"}));
        assert_eq!(commit_ts(1, &p).unwrap(), None);
        let p = payload(json!({"source": {"ts_ms": "soon"}}));
        let e = commit_ts(6, &p).unwrap_err();
        assert!(
            e.to_string().starts_with("line 6: column `source.ts_ms`"),
            "{e}"
        );
        let p = payload(json!({"ts_ms": i64::MAX}));
        assert!(commit_ts(1, &p).is_err());
    }
}
