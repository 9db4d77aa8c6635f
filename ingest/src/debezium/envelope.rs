//! One input line: tombstone, `{"schema":…,"payload":…}` envelope or bare
//! payload, and the change it carries.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::source;
use crate::error::{Error, Result};

/// What one input line holds.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// A blank line, a `null` (Kafka tombstone) or an envelope with a null payload.
    Skip,
    /// Kafka Connect `JsonConverter` output with `schemas.enable=true`. The
    /// schema is kept as text: it is usually the same on every line, so it is
    /// only parsed when it differs from one seen before.
    Envelope {
        schema: &'a RawValue,
        payload: Map<String, Value>,
    },
    /// The Debezium payload alone.
    Bare(Map<String, Value>),
}

/// Parses one line (without interpreting the payload).
pub(crate) fn parse_line(line: usize, bytes: &[u8]) -> Result<Parsed<'_>> {
    let bytes = bytes.trim_ascii();
    if bytes.is_empty() {
        return Ok(Parsed::Skip);
    }
    let top: Top<'_> = serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
        line,
        reason: json_error(&e),
    })?;
    let Top::Object {
        schema,
        rest: mut object,
    } = top
    else {
        return Ok(Parsed::Skip);
    };
    match (schema, object.contains_key("payload")) {
        (Some(schema), true) => match object.remove("payload") {
            None | Some(Value::Null) => Ok(Parsed::Skip),
            Some(Value::Object(payload)) => Ok(Parsed::Envelope { schema, payload }),
            Some(other) => Err(Error::Malformed {
                line,
                reason: format!(
                    "the envelope's `payload` is {}, expected a JSON object",
                    json_type(&other)
                ),
            }),
        },
        (Some(schema), false) => {
            // Not an envelope after all: a bare payload with a `schema` key.
            let schema = serde_json::from_str(schema.get()).map_err(|e| Error::Malformed {
                line,
                reason: json_error(&e),
            })?;
            object.insert("schema".to_owned(), schema);
            Ok(Parsed::Bare(object))
        }
        (None, _) => Ok(Parsed::Bare(object)),
    }
}

/// A line's top-level JSON value, parsed in one pass: `schema` as raw text,
/// every other key as a [`Value`].
enum Top<'a> {
    Null,
    Object {
        schema: Option<&'a RawValue>,
        rest: Map<String, Value>,
    },
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (a change event) or null (a tombstone)")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top<'de>, E> {
        Ok(Top::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut schema = None;
        let mut rest = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "schema" {
                schema = Some(map.next_value::<&'de RawValue>()?);
            } else {
                rest.insert(key, map.next_value::<Value>()?);
            }
        }
        Ok(Top::Object { schema, rest })
    }
}

/// serde_json's message without its "at line 1 column N" (each input line is
/// parsed alone, so its line is always 1).
fn json_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rsplit_once(" at line ") {
        Some((head, _)) if e.line() > 0 => format!("invalid JSON: {head} at column {}", e.column()),
        _ => format!("invalid JSON: {message}"),
    }
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A Debezium operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Read,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Read => "r",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }

    /// The payload field holding the row: `before` for deletes, else `after`.
    pub fn side(self) -> &'static str {
        match self {
            Op::Delete => "before",
            _ => "after",
        }
    }
}

/// The change carried by a payload.
#[derive(Debug)]
pub(crate) struct Change {
    pub op: Op,
    /// The `after` (c/r/u) or `before` (d) object.
    pub row: Map<String, Value>,
    pub position: Option<i64>,
    pub commit_ts: Option<i64>,
}

/// Takes the change out of a payload.
pub(crate) fn take_change(line: usize, mut payload: Map<String, Value>) -> Result<Change> {
    let op = match payload.get("op") {
        None | Some(Value::Null) => {
            return Err(Error::MissingField {
                line,
                field: "op".to_owned(),
                op: None,
            });
        }
        Some(Value::String(op)) => match op.as_str() {
            "c" => Op::Create,
            "r" => Op::Read,
            "u" => Op::Update,
            "d" => Op::Delete,
            other => {
                return Err(Error::UnsupportedOp {
                    line,
                    op: other.to_owned(),
                });
            }
        },
        Some(other) => {
            return Err(Error::BadValue {
                line,
                column: "op".to_owned(),
                reason: format!("expected a string, found {}", json_type(other)),
            });
        }
    };
    let side = op.side();
    let row = match payload.remove(side) {
        Some(Value::Object(row)) => row,
        None | Some(Value::Null) => {
            return Err(Error::MissingField {
                line,
                field: side.to_owned(),
                op: Some(op.as_str().to_owned()),
            });
        }
        Some(other) => {
            return Err(Error::Malformed {
                line,
                reason: format!("`{side}` is {}, expected a JSON object", json_type(&other)),
            });
        }
    };
    Ok(Change {
        op,
        row,
        position: source::position(line, payload.get("source"))?,
        commit_ts: source::commit_ts(line, &payload)?,
    })
}

/// Takes the schema of the envelope field `side` (`after` or `before`) out of
/// the envelope schema, without its `field` name (so that identical `before`
/// and `after` schemas compare equal).
pub(crate) fn take_row_schema(line: usize, schema: Value, side: &str) -> Result<Value> {
    let bad = |reason: String| Error::BadSchema { line, reason };
    let Value::Object(mut schema) = schema else {
        return Err(bad(format!(
            "the envelope's `schema` is {}, expected a JSON object",
            json_type(&schema)
        )));
    };
    let Some(Value::Array(fields)) = schema.remove("fields") else {
        return Err(bad("the envelope schema has no `fields` array".to_owned()));
    };
    let mut row = fields
        .into_iter()
        .find(|f| f.get("field").and_then(Value::as_str) == Some(side))
        .ok_or_else(|| bad(format!("the envelope schema has no field `{side}`")))?;
    if let Value::Object(row) = &mut row {
        row.remove("field");
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skips_blank_lines_and_tombstones() {
        for line in [
            "",
            "   \r",
            "null",
            " null ",
            r#"{"schema":null,"payload":null}"#,
        ] {
            assert!(
                matches!(parse_line(1, line.as_bytes()), Ok(Parsed::Skip)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn detects_envelope() {
        let p = parse_line(1, br#"{"schema":{"type":"struct"},"payload":{"op":"c"}}"#).unwrap();
        assert!(matches!(p, Parsed::Envelope { .. }));
        let p = parse_line(1, br#"{"op":"c","after":{"schema":1}}"#).unwrap();
        assert!(matches!(p, Parsed::Bare(_)));
        let p = parse_line(1, br#"{"op":"c","schema":{"a":[1]},"after":{}}"#).unwrap();
        let Parsed::Bare(payload) = p else {
            panic!("not bare")
        };
        let keys: Vec<_> = payload.keys().map(String::as_str).collect();
        assert_eq!(keys, ["op", "after", "schema"]);
        assert_eq!(payload["schema"]["a"][0], 1);
    }

    #[test]
    fn malformed_lines() {
        let e = parse_line(12, b"{\"op\": ").unwrap_err();
        assert!(matches!(e, Error::Malformed { line: 12, .. }), "{e}");
        assert!(!e.to_string().contains("line 1 "), "{e}");
        let e = parse_line(3, b"[1,2]").unwrap_err();
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        let e = parse_line(3, b"{} {}").unwrap_err();
        assert!(e.to_string().contains("trailing characters"), "{e}");
        let e = parse_line(3, br#"{"schema":{},"payload":5}"#).unwrap_err();
        assert!(e.to_string().contains("payload"), "{e}");
        let e = parse_line(3, b"\xff\xfe").unwrap_err();
        assert!(matches!(e, Error::Malformed { line: 3, .. }), "{e}");
    }

    fn payload(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn change_takes_the_right_side() {
        let c = take_change(
            1,
            payload(json!({"op": "u", "before": {"id": 1}, "after": {"id": 2}})),
        )
        .unwrap();
        assert_eq!((c.op, c.row["id"].as_i64()), (Op::Update, Some(2)));
        let c = take_change(
            1,
            payload(json!({"op": "d", "before": {"id": 1}, "after": null})),
        )
        .unwrap();
        assert_eq!((c.op, c.row["id"].as_i64()), (Op::Delete, Some(1)));
    }

    #[test]
    fn change_errors() {
        let e = take_change(2, payload(json!({"after": {}}))).unwrap_err();
        assert_eq!(e.to_string(), "line 2: `op` is missing or null");
        let e = take_change(2, payload(json!({"op": "c", "after": null}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: `after` is missing or null (required by op \"c\")"
        );
        let e = take_change(2, payload(json!({"op": "d", "after": null}))).unwrap_err();
        assert!(e.to_string().contains("`before`"), "{e}");
        let e = take_change(2, payload(json!({"op": "t"}))).unwrap_err();
        assert!(matches!(e, Error::UnsupportedOp { line: 2, .. }), "{e}");
        let e = take_change(2, payload(json!({"op": 1}))).unwrap_err();
        assert!(matches!(e, Error::BadValue { line: 2, .. }), "{e}");
        let e = take_change(2, payload(json!({"op": "c", "after": [1]}))).unwrap_err();
        assert!(matches!(e, Error::Malformed { line: 2, .. }), "{e}");
    }

    #[test]
    fn row_schema() {
        let s = json!({"type": "struct", "fields": [
            {"type": "struct", "optional": true, "field": "before", "fields": []},
            {"type": "struct", "optional": true, "field": "after", "fields": [{"type": "int32", "field": "id"}]}]});
        let after = take_row_schema(1, s.clone(), "after").unwrap();
        assert_eq!(after["fields"][0]["field"], "id");
        assert!(after.get("field").is_none());
        let e = take_row_schema(1, json!({"type": "struct", "fields": []}), "after").unwrap_err();
        assert!(matches!(e, Error::BadSchema { .. }), "{e}");
    }
}
