//! Column model shared by both input formats, and the Kafka Connect schema
//! (as written by `JsonConverter` with `schemas.enable=true`) → Arrow mapping.
//!
//! A [`Column`] carries an Arrow-facing type *and* how its JSON values are
//! encoded ([`Kind`]): two kinds may share one Arrow type (a millisecond and a
//! microsecond timestamp both become `Timestamp(µs)`), so each row is read
//! with the kind of its own line's schema and written into the merged column.

use std::sync::Arc;

use arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Fields, TimeUnit,
    validate_decimal_precision_and_scale,
};
use serde_json::{Map, Value};

use super::Path;
use crate::error::{Error, Result};

/// Unit of an integer time value in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Milli,
    Micro,
    Nano,
}

/// A column: name, nullability, and type with its JSON encoding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub nullable: bool,
    pub kind: Kind,
}

/// A column type together with how its values are encoded in JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Boolean,
    /// A JSON integer that must fit in `bits` bits (8, 16, 32 or 64).
    Int {
        bits: u8,
    },
    Float32,
    /// A JSON number (integers accepted), or the strings `NaN`, `Infinity`, `-Infinity`.
    Float64,
    Utf8,
    /// A base64 string.
    Binary,
    /// A base64 string holding a big-endian two's-complement unscaled value
    /// (or, with `decimal.format=NUMERIC`, a JSON number).
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// JSON integer: days since the epoch.
    Date,
    /// JSON integer: time since the epoch; `utc` says whether the value is an instant.
    Timestamp {
        unit: Unit,
        utc: bool,
    },
    /// ISO-8601 string with an offset, e.g. `2024-03-01T10:15:30.5+01:00`.
    ZonedTimestamp,
    /// JSON integer: time since midnight; decoded to Int64 microseconds.
    Time {
        unit: Unit,
    },
    /// A JSON array; the item column is named `item`.
    List(Box<Column>),
    /// A JSON object.
    Struct(Vec<Column>),
    /// A JSON object (string keys) or an array of `[key, value]` pairs; the
    /// key column is named `keys` (never null), the value column `values`.
    Map {
        key: Box<Column>,
        value: Box<Column>,
    },
}

impl Column {
    pub fn field(&self) -> Field {
        Field::new(&self.name, self.kind.data_type(), self.nullable)
    }
}

impl Kind {
    /// The Arrow type of the column.
    pub fn data_type(&self) -> DataType {
        match self {
            Kind::Boolean => DataType::Boolean,
            // Connect int8 becomes Int16, not Int8, so that Spark-based Hudi
            // readers see a type they handle well; the widening is lossless.
            Kind::Int { bits: 8 | 16 } => DataType::Int16,
            Kind::Int { bits: 32 } => DataType::Int32,
            Kind::Int { .. } => DataType::Int64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Utf8 => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            Kind::Date => DataType::Date32,
            Kind::Timestamp { utc, .. } => {
                DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| Arc::from("UTC")))
            }
            Kind::ZonedTimestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Time { .. } => DataType::Int64,
            Kind::List(item) => DataType::List(Arc::new(item.field())),
            Kind::Struct(children) => {
                DataType::Struct(children.iter().map(Column::field).collect::<Fields>())
            }
            Kind::Map { key, value } => DataType::Map(map_entries(key, value), false),
        }
    }

    /// The type as named in error messages.
    pub fn describe(&self) -> String {
        self.data_type().to_string()
    }

    fn is_nested(&self) -> bool {
        matches!(self, Kind::List(_) | Kind::Struct(_) | Kind::Map { .. })
    }
}

/// The `entries` field of a map type.
pub(crate) fn map_entries(key: &Column, value: &Column) -> FieldRef {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![key.field(), value.field()])),
        false,
    ))
}

// Logical type names (the schema's `name`).
const CONNECT_DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
const CONNECT_DATE: &str = "org.apache.kafka.connect.data.Date";
const CONNECT_TIME: &str = "org.apache.kafka.connect.data.Time";
const CONNECT_TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
const DBZ_DATE: &str = "io.debezium.time.Date";
const DBZ_TIME: &str = "io.debezium.time.Time";
const DBZ_MICRO_TIME: &str = "io.debezium.time.MicroTime";
const DBZ_NANO_TIME: &str = "io.debezium.time.NanoTime";
const DBZ_TIMESTAMP: &str = "io.debezium.time.Timestamp";
const DBZ_MICRO_TIMESTAMP: &str = "io.debezium.time.MicroTimestamp";
const DBZ_NANO_TIMESTAMP: &str = "io.debezium.time.NanoTimestamp";
const DBZ_ZONED_TIMESTAMP: &str = "io.debezium.time.ZonedTimestamp";
const DBZ_JSON: &str = "io.debezium.data.Json";
const DBZ_UUID: &str = "io.debezium.data.Uuid";
const DBZ_VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";

/// Default precision of a Connect Decimal without `connect.decimal.precision`.
const DEFAULT_DECIMAL_PRECISION: u8 = 38;

/// The columns of a row schema (the envelope's `after` or `before` field schema).
pub(crate) fn row_columns(schema: &Value, line: usize) -> Result<Vec<Column>> {
    let bad = |reason: &str| Error::BadSchema {
        line,
        reason: reason.to_owned(),
    };
    let obj = schema
        .as_object()
        .ok_or_else(|| bad("the row schema is not a JSON object"))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("struct") => struct_fields(obj, line, None),
        Some(other) => Err(bad(&format!(
            "the row schema has type {other:?}, expected \"struct\""
        ))),
        None => Err(bad("the row schema has no `type`")),
    }
}

fn struct_fields(
    schema: &Map<String, Value>,
    line: usize,
    parent: Option<&Path>,
) -> Result<Vec<Column>> {
    let bad = |reason: String| Error::BadSchema { line, reason };
    let at = || {
        parent
            .map(|p| format!(" (column `{p}`)"))
            .unwrap_or_default()
    };
    let fields = schema
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("struct schema without a `fields` array{}", at())))?;
    let mut columns: Vec<Column> = Vec::with_capacity(fields.len());
    for field in fields {
        let field = field.as_object().ok_or_else(|| {
            bad(format!(
                "a struct field schema is not a JSON object{}",
                at()
            ))
        })?;
        let name = field
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("a struct field schema has no `field` name{}", at())))?;
        let path = match parent {
            None => Path::Column(name),
            Some(parent) => Path::Field(parent, name),
        };
        if columns.iter().any(|c| c.name == name) {
            return Err(bad(format!("field `{path}` appears twice")));
        }
        columns.push(column(name, field, line, &path)?);
    }
    Ok(columns)
}

fn column(name: &str, schema: &Map<String, Value>, line: usize, path: &Path) -> Result<Column> {
    Ok(Column {
        name: name.to_owned(),
        nullable: schema
            .get("optional")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        kind: kind(schema, line, path)?,
    })
}

fn kind(schema: &Map<String, Value>, line: usize, path: &Path) -> Result<Kind> {
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadSchema {
            line,
            reason: format!("the schema of column `{path}` has no `type`"),
        })?;
    if let Some(name) = schema.get("name").and_then(Value::as_str)
        && let Some(kind) = logical(name, ty, schema, line, path)?
    {
        return Ok(kind);
    }
    let sub = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_object)
            .ok_or_else(|| Error::BadSchema {
                line,
                reason: format!("the {ty} schema of column `{path}` has no `{key}` schema"),
            })
    };
    Ok(match ty {
        "boolean" => Kind::Boolean,
        "int8" => Kind::Int { bits: 8 },
        "int16" => Kind::Int { bits: 16 },
        "int32" => Kind::Int { bits: 32 },
        "int64" => Kind::Int { bits: 64 },
        "float32" => Kind::Float32,
        "float64" => Kind::Float64,
        "string" => Kind::Utf8,
        "bytes" => Kind::Binary,
        "array" => {
            let item_path = Path::Item(path);
            Kind::List(Box::new(column("item", sub("items")?, line, &item_path)?))
        }
        "struct" => Kind::Struct(struct_fields(schema, line, Some(path))?),
        "map" => {
            let key_path = Path::Field(path, "keys");
            let value_path = Path::Field(path, "values");
            let mut key = column("keys", sub("keys")?, line, &key_path)?;
            // Arrow map keys are never null; a null key is rejected per value.
            key.nullable = false;
            let value = column("values", sub("values")?, line, &value_path)?;
            if key.kind.is_nested() {
                return Err(unsupported(
                    line,
                    path,
                    "map with a non-primitive key",
                    None,
                ));
            }
            Kind::Map {
                key: Box::new(key),
                value: Box::new(value),
            }
        }
        other => return Err(unsupported(line, path, other, None)),
    })
}

fn unsupported(line: usize, path: &Path, type_name: &str, hint: Option<&str>) -> Error {
    Error::UnsupportedType {
        line,
        column: path.to_string(),
        type_name: type_name.to_owned(),
        hint: hint.map(str::to_owned),
    }
}

/// The kind of a logical type, or `None` for names without special handling
/// (`io.debezium.data.Enum`, `io.debezium.time.Year`, ...), which are read as
/// their base type.
fn logical(
    name: &str,
    ty: &str,
    schema: &Map<String, Value>,
    line: usize,
    path: &Path,
) -> Result<Option<Kind>> {
    let expect = |base: &str| {
        if ty == base {
            Ok(())
        } else {
            Err(Error::BadSchema {
                line,
                reason: format!("column `{path}`: {name} must have type {base}, not {ty}"),
            })
        }
    };
    let kind = match name {
        CONNECT_DECIMAL => {
            expect("bytes")?;
            decimal(schema, line, path)?
        }
        DBZ_VARIABLE_SCALE_DECIMAL => {
            return Err(unsupported(
                line,
                path,
                name,
                Some(
                    "Debezium uses it for NUMERIC/DECIMAL columns without a declared precision and scale \
                     under decimal.handling.mode=precise; set decimal.handling.mode=string, \
                     or declare NUMERIC(p,s) and keep decimal.handling.mode=precise",
                ),
            ));
        }
        DBZ_DATE | CONNECT_DATE => {
            expect("int32")?;
            Kind::Date
        }
        DBZ_TIMESTAMP => {
            expect("int64")?;
            Kind::Timestamp {
                unit: Unit::Milli,
                utc: false,
            }
        }
        // Connect's Timestamp is a java.util.Date, i.e. nominally an instant, but
        // Debezium's time.precision.mode=connect also uses it for columns without
        // a time zone (PostgreSQL `timestamp`, MySQL DATETIME), writing the wall
        // clock reading as if it were UTC. Since we cannot tell which, it is
        // treated like io.debezium.time.Timestamp: Timestamp(µs) without a zone.
        CONNECT_TIMESTAMP => {
            expect("int64")?;
            Kind::Timestamp {
                unit: Unit::Milli,
                utc: false,
            }
        }
        DBZ_MICRO_TIMESTAMP => {
            expect("int64")?;
            Kind::Timestamp {
                unit: Unit::Micro,
                utc: false,
            }
        }
        DBZ_NANO_TIMESTAMP => {
            expect("int64")?;
            Kind::Timestamp {
                unit: Unit::Nano,
                utc: false,
            }
        }
        DBZ_ZONED_TIMESTAMP => {
            expect("string")?;
            Kind::ZonedTimestamp
        }
        DBZ_TIME | CONNECT_TIME => {
            expect("int32")?;
            Kind::Time { unit: Unit::Milli }
        }
        DBZ_MICRO_TIME => {
            expect("int64")?;
            Kind::Time { unit: Unit::Micro }
        }
        DBZ_NANO_TIME => {
            expect("int64")?;
            Kind::Time { unit: Unit::Nano }
        }
        DBZ_JSON | DBZ_UUID => {
            expect("string")?;
            Kind::Utf8
        }
        _ => return Ok(None),
    };
    Ok(Some(kind))
}

/// A Connect Decimal: `parameters.scale` (required) and
/// `parameters."connect.decimal.precision"` (default 38). `JsonConverter`
/// writes parameter values as strings; numbers are accepted too.
fn decimal(schema: &Map<String, Value>, line: usize, path: &Path) -> Result<Kind> {
    let params = schema.get("parameters").and_then(Value::as_object);
    let param = |key: &str| -> Result<Option<i64>> {
        match params.and_then(|p| p.get(key)) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).ok(),
            Some(Value::Number(n)) => n.as_i64().map(Some),
            Some(_) => None,
        }
        .ok_or_else(|| Error::BadSchema {
            line,
            reason: format!("column `{path}`: decimal parameter `{key}` is not an integer"),
        })
    };
    let scale = param("scale")?.ok_or_else(|| Error::BadSchema {
        line,
        reason: format!("column `{path}`: decimal schema without `parameters.scale`"),
    })?;
    let precision = param("connect.decimal.precision")?.unwrap_or(DEFAULT_DECIMAL_PRECISION.into());
    let type_name = format!("DECIMAL({precision},{scale})");
    let hint = "Decimal128 holds precision 1..=38 and scale <= precision; \
                set decimal.handling.mode=string to receive such values as text";
    let (Ok(precision), Ok(scale)) = (u8::try_from(precision), i8::try_from(scale)) else {
        return Err(unsupported(line, path, &type_name, Some(hint)));
    };
    validate_decimal_precision_and_scale::<Decimal128Type>(precision, scale)
        .map_err(|_| unsupported(line, path, &type_name, Some(hint)))?;
    Ok(Kind::Decimal { precision, scale })
}

/// Merges the columns of a newly seen row schema into the accumulated ones.
///
/// Columns new in `new` are appended (nullable: earlier rows lack them),
/// columns absent from `new` become nullable, and a column whose Arrow type
/// differs is a [`Error::TypeConflict`] on `line`. Different encodings of the
/// same Arrow type (ms vs µs timestamps, int8 vs int16) are compatible.
pub(crate) fn merge_columns(
    acc: &mut Vec<Column>,
    new: &[Column],
    line: usize,
    parent: Option<&Path>,
) -> Result<()> {
    for column in acc.iter_mut() {
        if !new.iter().any(|n| n.name == column.name) {
            column.nullable = true;
        }
    }
    for column in new {
        let path = match parent {
            None => Path::Column(&column.name),
            Some(parent) => Path::Field(parent, &column.name),
        };
        match acc.iter_mut().find(|c| c.name == column.name) {
            Some(existing) => merge_column(existing, column, line, &path)?,
            None => acc.push(Column {
                nullable: true,
                ..column.clone()
            }),
        }
    }
    Ok(())
}

fn merge_column(acc: &mut Column, new: &Column, line: usize, path: &Path) -> Result<()> {
    acc.nullable |= new.nullable;
    match (&mut acc.kind, &new.kind) {
        (Kind::List(a), Kind::List(b)) => merge_column(a, b, line, &Path::Item(path)),
        (Kind::Struct(a), Kind::Struct(b)) => merge_columns(a, b, line, Some(path)),
        (Kind::Map { key: ak, value: av }, Kind::Map { key: bk, value: bv }) => {
            merge_column(ak, bk, line, &Path::Field(path, "keys"))?;
            merge_column(av, bv, line, &Path::Field(path, "values"))
        }
        (a, b) if !a.is_nested() && !b.is_nested() && a.data_type() == b.data_type() => Ok(()),
        (a, b) => Err(Error::TypeConflict {
            line,
            column: path.to_string(),
            first: a.describe(),
            second: b.describe(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(schema: Value) -> Result<Vec<Column>> {
        row_columns(&schema, 1)
    }

    fn one(field: Value) -> Result<Column> {
        let mut c = cols(json!({"type": "struct", "fields": [field]}))?;
        Ok(c.remove(0))
    }

    fn dt(field: Value) -> DataType {
        match one(field) {
            Ok(c) => c.kind.data_type(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn primitive_types() {
        let cases = [
            ("boolean", DataType::Boolean),
            ("int8", DataType::Int16),
            ("int16", DataType::Int16),
            ("int32", DataType::Int32),
            ("int64", DataType::Int64),
            ("float32", DataType::Float32),
            ("float64", DataType::Float64),
            ("string", DataType::Utf8),
            ("bytes", DataType::Binary),
        ];
        for (ty, expected) in cases {
            assert_eq!(dt(json!({"type": ty, "field": "x"})), expected, "{ty}");
        }
    }

    #[test]
    fn optional_is_nullable() {
        let c = one(json!({"type": "int32", "optional": true, "field": "x"})).unwrap();
        assert!(c.nullable);
        let c = one(json!({"type": "int32", "optional": false, "field": "x"})).unwrap();
        assert!(!c.nullable);
        let c = one(json!({"type": "int32", "field": "x"})).unwrap();
        assert!(!c.nullable);
    }

    #[test]
    fn logical_types() {
        let utc = Some(Arc::from("UTC"));
        let cases = [
            (
                json!({"type": "bytes", "name": CONNECT_DECIMAL, "parameters": {"scale": "2", "connect.decimal.precision": "10"}}),
                DataType::Decimal128(10, 2),
            ),
            (
                json!({"type": "bytes", "name": CONNECT_DECIMAL, "parameters": {"scale": "3"}}),
                DataType::Decimal128(38, 3),
            ),
            (json!({"type": "int32", "name": DBZ_DATE}), DataType::Date32),
            (
                json!({"type": "int32", "name": CONNECT_DATE}),
                DataType::Date32,
            ),
            (
                json!({"type": "int64", "name": DBZ_TIMESTAMP}),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            (
                json!({"type": "int64", "name": CONNECT_TIMESTAMP}),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            (
                json!({"type": "int64", "name": DBZ_MICRO_TIMESTAMP}),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            (
                json!({"type": "int64", "name": DBZ_NANO_TIMESTAMP}),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            (
                json!({"type": "string", "name": DBZ_ZONED_TIMESTAMP}),
                DataType::Timestamp(TimeUnit::Microsecond, utc),
            ),
            (json!({"type": "int32", "name": DBZ_TIME}), DataType::Int64),
            (
                json!({"type": "int64", "name": DBZ_MICRO_TIME}),
                DataType::Int64,
            ),
            (
                json!({"type": "int64", "name": DBZ_NANO_TIME}),
                DataType::Int64,
            ),
            (json!({"type": "string", "name": DBZ_JSON}), DataType::Utf8),
            (json!({"type": "string", "name": DBZ_UUID}), DataType::Utf8),
            (
                json!({"type": "string", "name": "io.debezium.data.Enum", "parameters": {"allowed": "a,b"}}),
                DataType::Utf8,
            ),
            (
                json!({"type": "int32", "name": "io.debezium.time.Year"}),
                DataType::Int32,
            ),
        ];
        for (mut schema, expected) in cases {
            schema["field"] = json!("x");
            assert_eq!(dt(schema.clone()), expected, "{schema}");
        }
    }

    #[test]
    fn nested_types() {
        let c = one(json!({"type": "array", "optional": true, "field": "tags",
            "items": {"type": "string", "optional": true}}))
        .unwrap();
        assert_eq!(
            c.kind.data_type(),
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
        let c = one(json!({"type": "struct", "optional": true, "field": "p",
            "name": "io.debezium.data.geometry.Point",
            "fields": [{"type": "float64", "field": "x"}, {"type": "bytes", "optional": true, "field": "wkb"}]}))
        .unwrap();
        assert_eq!(
            c.kind.data_type(),
            DataType::Struct(Fields::from(vec![
                Field::new("x", DataType::Float64, false),
                Field::new("wkb", DataType::Binary, true),
            ]))
        );
        let c = one(json!({"type": "map", "optional": true, "field": "m",
            "keys": {"type": "string", "optional": false}, "values": {"type": "string", "optional": true}}))
        .unwrap();
        assert!(matches!(c.kind.data_type(), DataType::Map(_, false)));
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let e = one(
            json!({"type": "struct", "field": "v", "name": DBZ_VARIABLE_SCALE_DECIMAL,
            "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]}),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("column `v`"), "{msg}");
        assert!(msg.contains("decimal.handling.mode=string"), "{msg}");
        assert!(matches!(e, Error::UnsupportedType { line: 1, .. }));

        let e = one(
            json!({"type": "bytes", "field": "d", "name": CONNECT_DECIMAL,
            "parameters": {"scale": "2", "connect.decimal.precision": "50"}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("DECIMAL(50,2)"), "{e}");

        let e = one(
            json!({"type": "struct", "field": "s", "fields": [{"type": "weird", "field": "w"}]}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("column `s.w`"), "{e}");

        let e = one(json!({"type": "string", "field": "d", "name": DBZ_DATE})).unwrap_err();
        assert!(matches!(e, Error::BadSchema { .. }), "{e}");
    }

    #[test]
    fn merge_unions_and_detects_conflicts() {
        let a = cols(json!({"type": "struct", "fields": [
            {"type": "int32", "field": "id"},
            {"type": "int64", "name": DBZ_TIMESTAMP, "field": "t"},
            {"type": "string", "field": "gone"}]}))
        .unwrap();
        let b = cols(json!({"type": "struct", "fields": [
            {"type": "int32", "field": "id"},
            {"type": "int64", "name": DBZ_MICRO_TIMESTAMP, "field": "t"},
            {"type": "string", "field": "added"}]}))
        .unwrap();
        let mut acc = a.clone();
        merge_columns(&mut acc, &b, 5, None).unwrap();
        let names: Vec<_> = acc.iter().map(|c| (c.name.as_str(), c.nullable)).collect();
        assert_eq!(
            names,
            [("id", false), ("t", false), ("gone", true), ("added", true)]
        );

        let c =
            cols(json!({"type": "struct", "fields": [{"type": "string", "field": "id"}]})).unwrap();
        let e = merge_columns(&mut acc, &c, 9, None).unwrap_err();
        match e {
            Error::TypeConflict {
                line,
                column,
                first,
                second,
            } => {
                assert_eq!((line, column.as_str()), (9, "id"));
                assert_eq!((first.as_str(), second.as_str()), ("Int32", "Utf8"));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn merge_nested_struct_fields() {
        let a = cols(json!({"type": "struct", "fields": [
            {"type": "struct", "field": "s", "fields": [{"type": "int32", "field": "a"}]}]}))
        .unwrap();
        let b = cols(json!({"type": "struct", "fields": [
            {"type": "struct", "field": "s", "fields": [{"type": "int32", "field": "a"}, {"type": "int32", "field": "b"}]}]}))
        .unwrap();
        let mut acc = a;
        merge_columns(&mut acc, &b, 2, None).unwrap();
        let Kind::Struct(children) = &acc[0].kind else {
            panic!("not a struct")
        };
        assert_eq!(children.len(), 2);
        assert!(!children[0].nullable);
        assert!(children[1].nullable);

        let c = cols(json!({"type": "struct", "fields": [
            {"type": "struct", "field": "s", "fields": [{"type": "string", "field": "a"}]}]}))
        .unwrap();
        let e = merge_columns(&mut acc, &c, 3, None).unwrap_err();
        assert!(e.to_string().contains("column `s.a`"), "{e}");
    }
}
