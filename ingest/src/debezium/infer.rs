//! Column types inferred from the values themselves, for events without the
//! `{"schema":…,"payload":…}` envelope.
//!
//! JSON boolean → Boolean, integer → Int64, other number → Float64 (a column
//! with both becomes Float64), string → Utf8, object → Struct (fields in order
//! of first appearance), array → List of the items' type, only nulls → Utf8.
//! Every inferred column, struct field and list item is nullable.

use serde_json::{Map, Value};

use super::schema::{Column, Kind};
use super::{Path, is_reserved};
use crate::error::{Error, Result};

/// The type seen so far for one column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inferred {
    /// Only nulls (or nothing) so far.
    Null,
    Boolean,
    Integer,
    Float,
    String,
    Array(Box<Inferred>),
    Object(Vec<(String, Inferred)>),
}

impl Inferred {
    fn describe(&self) -> &'static str {
        match self {
            Inferred::Null => "null",
            Inferred::Boolean => "boolean",
            Inferred::Integer => "integer",
            Inferred::Float => "number",
            Inferred::String => "string",
            Inferred::Array(_) => "array",
            Inferred::Object(_) => "object",
        }
    }

    fn into_kind(self) -> Kind {
        match self {
            Inferred::Null | Inferred::String => Kind::Utf8,
            Inferred::Boolean => Kind::Boolean,
            Inferred::Integer => Kind::Int { bits: 64 },
            Inferred::Float => Kind::Float64,
            Inferred::Array(item) => Kind::List(Box::new(Column {
                name: "item".to_owned(),
                nullable: true,
                kind: item.into_kind(),
            })),
            Inferred::Object(fields) => Kind::Struct(into_columns(fields)),
        }
    }
}

/// The JSON type name of a value, as used in conflict messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Folds one row (the `after`/`before` object of line `line`) into the types
/// inferred so far.
pub(crate) fn observe_row(
    columns: &mut Vec<(String, Inferred)>,
    row: &Map<String, Value>,
    line: usize,
) -> Result<()> {
    observe_object(columns, row, line, None)
}

/// Turns the inferred types into nullable columns.
pub(crate) fn into_columns(columns: Vec<(String, Inferred)>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|(name, inferred)| Column {
            name,
            nullable: true,
            kind: inferred.into_kind(),
        })
        .collect()
}

fn observe_object(
    fields: &mut Vec<(String, Inferred)>,
    object: &Map<String, Value>,
    line: usize,
    parent: Option<&Path>,
) -> Result<()> {
    for (i, (key, value)) in object.iter().enumerate() {
        // Rows usually list their keys in the same order: try position i first.
        let index = if fields.get(i).is_some_and(|(name, _)| name == key) {
            i
        } else if let Some(j) = fields.iter().position(|(name, _)| name == key) {
            j
        } else {
            if parent.is_none() && is_reserved(key) {
                return Err(Error::ReservedColumn {
                    line,
                    column: key.clone(),
                });
            }
            fields.push((key.clone(), Inferred::Null));
            fields.len() - 1
        };
        let path = match parent {
            None => Path::Column(key),
            Some(parent) => Path::Field(parent, key),
        };
        if let Some((_, slot)) = fields.get_mut(index) {
            observe(slot, value, line, &path)?;
        }
    }
    Ok(())
}

fn observe(slot: &mut Inferred, value: &Value, line: usize, path: &Path) -> Result<()> {
    let conflict = |slot: &Inferred| Error::TypeConflict {
        line,
        column: path.to_string(),
        first: slot.describe().to_owned(),
        second: json_type(value).to_owned(),
    };
    match value {
        Value::Null => {}
        Value::Bool(_) => match slot {
            Inferred::Null => *slot = Inferred::Boolean,
            Inferred::Boolean => {}
            other => return Err(conflict(other)),
        },
        Value::Number(n) => {
            let seen = if n.is_i64() {
                Inferred::Integer
            } else if n.is_u64() {
                return Err(Error::BadValue {
                    line,
                    column: path.to_string(),
                    reason: format!("integer {n} is out of range for Int64"),
                });
            } else {
                Inferred::Float
            };
            match (&*slot, seen) {
                (Inferred::Null | Inferred::Integer, seen) => *slot = seen,
                (Inferred::Float, _) => {}
                (other, _) => return Err(conflict(other)),
            }
        }
        Value::String(_) => match slot {
            Inferred::Null => *slot = Inferred::String,
            Inferred::String => {}
            other => return Err(conflict(other)),
        },
        Value::Array(items) => {
            if *slot == Inferred::Null {
                *slot = Inferred::Array(Box::new(Inferred::Null));
            }
            let Inferred::Array(item) = slot else {
                return Err(conflict(slot));
            };
            let item_path = Path::Item(path);
            for v in items {
                observe(item, v, line, &item_path)?;
            }
        }
        Value::Object(object) => {
            if *slot == Inferred::Null {
                *slot = Inferred::Object(Vec::new());
            }
            let Inferred::Object(fields) = slot else {
                return Err(conflict(slot));
            };
            observe_object(fields, object, line, Some(path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Fields};
    use serde_json::json;
    use std::sync::Arc;

    fn infer(rows: &[Value]) -> Result<Vec<Column>> {
        let mut columns = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let Value::Object(row) = row else {
                panic!("not an object")
            };
            observe_row(&mut columns, row, i + 1)?;
        }
        Ok(into_columns(columns))
    }

    fn types(columns: &[Column]) -> Vec<(&str, DataType)> {
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind.data_type()))
            .collect()
    }

    #[test]
    fn scalar_types_in_order_of_first_appearance() {
        let columns = infer(&[
            json!({"id": 1, "b": true, "n": null}),
            json!({"id": 2, "f": 1.5, "s": "x", "b": false}),
            json!({"f": 2, "id": 3}),
        ])
        .unwrap();
        assert_eq!(
            types(&columns),
            [
                ("id", DataType::Int64),
                ("b", DataType::Boolean),
                ("n", DataType::Utf8),
                ("f", DataType::Float64),
                ("s", DataType::Utf8),
            ]
        );
        assert!(columns.iter().all(|c| c.nullable));
    }

    #[test]
    fn int_then_float_widens() {
        let columns = infer(&[json!({"x": 1}), json!({"x": 2.5}), json!({"x": 3})]).unwrap();
        assert_eq!(types(&columns), [("x", DataType::Float64)]);
    }

    #[test]
    fn nested() {
        let columns = infer(&[
            json!({"o": {"a": 1}, "l": []}),
            json!({"o": {"b": "x", "a": null}, "l": [1, null, 2.5]}),
        ])
        .unwrap();
        assert_eq!(
            types(&columns),
            [
                (
                    "o",
                    DataType::Struct(Fields::from(vec![
                        Field::new("a", DataType::Int64, true),
                        Field::new("b", DataType::Utf8, true),
                    ]))
                ),
                (
                    "l",
                    DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
                ),
            ]
        );
    }

    #[test]
    fn conflicts_name_line_column_and_both_types() {
        let e = infer(&[json!({"a": 1}), json!({"a": null}), json!({"a": "x"})]).unwrap_err();
        match e {
            Error::TypeConflict {
                line,
                column,
                first,
                second,
            } => {
                assert_eq!(line, 3);
                assert_eq!(column, "a");
                assert_eq!(first, "integer");
                assert_eq!(second, "string");
            }
            other => panic!("{other}"),
        }
        let e = infer(&[json!({"o": {"l": [1]}}), json!({"o": {"l": [true]}})]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: column `o.l[]` is boolean here but was integer in earlier lines"
        );
        let e = infer(&[json!({"o": {"a": 1}}), json!({"o": [1]})]).unwrap_err();
        assert!(e.to_string().contains("array here but was object"), "{e}");
    }

    #[test]
    fn reserved_and_out_of_range() {
        let e = infer(&[json!({"_cdc_op": "x"})]).unwrap_err();
        assert!(matches!(e, Error::ReservedColumn { line: 1, .. }), "{e}");
        let e = infer(&[json!({"big": 18446744073709551615u64})]).unwrap_err();
        assert!(matches!(e, Error::BadValue { line: 1, .. }), "{e}");
    }
}
