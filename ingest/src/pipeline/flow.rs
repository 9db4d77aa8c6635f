//! What a source table's rows become in its lake table: the columns written and their names
//! (`columns`, `exclude_columns`, `rename`), or, for a transactional outbox (`flow =
//! "outbox"`), one event record per inserted row — the row's key as the event id, `event_type`,
//! `payload`, and the change's position and commit time — deletes and updates being no events.
//! An application that inserts an outbox row and deletes it in the same transaction still
//! publishes its event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use inlet_config::{FlowKind, TableOptions};

use crate::CDC_OP;
use crate::change::{RowBatch, TableId, Unresolved};
use crate::debezium::is_reserved as is_cdc_column;
use crate::error::{Error, Result};

/// The lake column of an outbox event's type.
pub const EVENT_TYPE: &str = "event_type";
/// The lake column of an outbox event's payload.
pub const PAYLOAD: &str = "payload";

/// A table's flow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Flow {
    /// Every column, under its own name.
    #[default]
    Identity,
    /// Some columns, some renamed.
    Columns {
        keep: Option<BTreeSet<String>>,
        exclude: BTreeSet<String>,
        rename: BTreeMap<String, String>,
    },
    /// A transactional outbox: inserts become events.
    Outbox {
        payload: String,
        event_type: Option<String>,
        /// The record key (event id) columns.
        key: Vec<String>,
    },
}

impl Flow {
    /// The flow `options` describe for a table with record key `key` (source names).
    pub fn of(options: &TableOptions, key: &[String]) -> Flow {
        match options.flow {
            Some(FlowKind::Outbox) => Flow::Outbox {
                payload: options.payload_column.clone().unwrap_or_default(),
                event_type: options.event_type_column.clone(),
                key: key.to_vec(),
            },
            None if options.columns.is_none()
                && options.exclude_columns.is_empty()
                && options.rename.is_empty() =>
            {
                Flow::Identity
            }
            None => Flow::Columns {
                keep: options.columns.clone().map(|c| c.into_iter().collect()),
                exclude: options.exclude_columns.iter().cloned().collect(),
                rename: options.rename.clone(),
            },
        }
    }

    /// The lake name of source column `name`, `None` when it is not written.
    fn lake_name(&self, name: &str) -> Option<String> {
        if is_cdc_column(name) {
            return Some(name.to_string());
        }
        match self {
            Flow::Identity => Some(name.to_string()),
            Flow::Columns {
                keep,
                exclude,
                rename,
            } => {
                let kept =
                    keep.as_ref().is_none_or(|k| k.contains(name)) && !exclude.contains(name);
                kept.then(|| {
                    rename
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| name.to_string())
                })
            }
            Flow::Outbox {
                payload,
                event_type,
                key,
            } => {
                if name == payload {
                    Some(PAYLOAD.to_string())
                } else if event_type.as_deref() == Some(name) {
                    Some(EVENT_TYPE.to_string())
                } else {
                    key.iter().any(|k| k == name).then(|| name.to_string())
                }
            }
        }
    }

    /// The lake table's data columns and record key for a source table with data columns
    /// `schema` and key `key`; errors name the option at fault (a column that does not exist,
    /// a key column left out).
    pub fn table(
        &self,
        id: &TableId,
        schema: &Schema,
        key: &[String],
    ) -> Result<(SchemaRef, Vec<String>)> {
        let field = |name: &str| format!("tables.\"{id}\".{name}");
        let exists = |c: &str| schema.field_with_name(c).is_ok();
        let missing = |option: &str, c: &str| Error::Config {
            field: field(option),
            reason: format!(
                "{id} has no column {c:?} (it has {})",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        match self {
            Flow::Identity => {}
            Flow::Columns {
                keep,
                exclude,
                rename,
            } => {
                for c in keep.iter().flatten() {
                    if !exists(c) {
                        return Err(missing("columns", c));
                    }
                }
                for c in exclude {
                    if !exists(c) {
                        return Err(missing("exclude_columns", c));
                    }
                }
                for c in rename.keys() {
                    if !exists(c) {
                        return Err(missing("rename", c));
                    }
                }
                if let Some(k) = key.iter().find(|k| self.lake_name(k).is_none()) {
                    return Err(Error::Config {
                        field: field(if keep.is_some() {
                            "columns"
                        } else {
                            "exclude_columns"
                        }),
                        reason: format!("{k} is a key column of {id}: it is always written"),
                    });
                }
            }
            Flow::Outbox {
                payload,
                event_type,
                ..
            } => {
                if !exists(payload) {
                    return Err(missing("payload_column", payload));
                }
                if let Some(t) = event_type
                    && !exists(t)
                {
                    return Err(missing("event_type_column", t));
                }
            }
        }
        let mapped = self.schema(schema);
        let mut names = BTreeSet::new();
        for f in mapped.fields() {
            if !names.insert(f.name().clone()) {
                return Err(Error::Config {
                    field: field("rename"),
                    reason: format!("two columns of {id} would be named {:?}", f.name()),
                });
            }
        }
        let key = key.iter().filter_map(|k| self.lake_name(k)).collect();
        Ok((mapped, key))
    }

    /// The lake columns of source columns `schema` (CDC columns kept).
    pub fn schema(&self, schema: &Schema) -> SchemaRef {
        if *self == Flow::Identity {
            return Arc::new(schema.clone());
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .filter_map(|f| {
                self.lake_name(f.name())
                    .map(|name| f.as_ref().clone().with_name(name))
            })
            .collect();
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// The rows as the lake table takes them; `None` when none is left.
    pub fn rows(&self, rows: RowBatch) -> Result<Option<RowBatch>> {
        if *self == Flow::Identity {
            return Ok(Some(rows));
        }
        let rows = match self {
            Flow::Outbox { .. } => match events(rows)? {
                Some(rows) => rows,
                None => return Ok(None),
            },
            _ => rows,
        };
        let schema = rows.batch.schema();
        let kept: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| self.lake_name(schema.field(i).name()).is_some())
            .collect();
        let position = |column: usize| kept.iter().position(|&k| k == column);
        let unresolved = rows
            .unresolved
            .iter()
            .filter_map(|u| {
                Some(Unresolved {
                    column: position(u.column)?,
                    ..*u
                })
            })
            .collect();
        let rejected = rows
            .rejected
            .iter()
            .filter_map(|r| {
                let mut r = r.clone();
                r.column = self.lake_name(&r.column)?;
                Some(r)
            })
            .collect();
        let projected = rows.batch.project(&kept)?;
        let batch = RecordBatch::try_new(
            self.schema(&projected.schema()),
            projected.columns().to_vec(),
        )?;
        Ok(Some(RowBatch {
            table: rows.table,
            batch,
            deletes: rows.deletes,
            unresolved,
            rejected,
            inside: rows.inside,
        }))
    }
}

/// The inserted rows of an outbox batch (snapshot rows count as inserts not seen yet).
fn events(rows: RowBatch) -> Result<Option<RowBatch>> {
    let ops = rows
        .batch
        .column_by_name(CDC_OP)
        .ok_or_else(|| Error::SchemaChange {
            table: rows.table.to_string(),
            reason: format!("rows without {CDC_OP}"),
        })?;
    let ops = ops.as_string::<i32>();
    let mask = BooleanArray::from(
        (0..ops.len())
            .map(|i| ops.is_valid(i) && matches!(ops.value(i), "c" | "r"))
            .collect::<Vec<_>>(),
    );
    if mask.true_count() == 0 {
        return Ok(None);
    }
    if mask.true_count() == ops.len() {
        return Ok(Some(rows));
    }
    let removed: Vec<usize> = (0..ops.len()).filter(|&i| !mask.value(i)).collect();
    let shift = |i: usize| i - removed.iter().filter(|&&r| r < i).count();
    Ok(Some(RowBatch {
        table: rows.table.clone(),
        batch: filter_record_batch(&rows.batch, &mask)?,
        deletes: BooleanArray::from(vec![false; mask.true_count()]),
        unresolved: Vec::new(),
        rejected: rows
            .rejected
            .iter()
            .filter(|r| mask.value(r.row))
            .map(|r| {
                let mut r = r.clone();
                r.row = shift(r.row);
                r
            })
            .collect(),
        inside: rows.inside,
    }))
}
