//! Planning a copy-on-write commit: every incoming row gets its record key, partition path and
//! bucket; rows of the same key are reduced to the one that wins (see [`Ordering`]); the winners are
//! grouped by the file group they go to. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow::row::{Row, RowConverter, SortField};

use crate::error::{Error, Result};
use crate::index;
use crate::key::KeyGenerator;
pub use crate::merge::{Ordering, OrderingValues, Version, wins};

/// The incoming rows that go to one file group: (partition, bucket) → row indices.
#[derive(Debug)]
pub struct Plan {
    pub keys: StringArray,
    pub deletes: BooleanArray,
    /// Comparable ordering values of incoming rows, when event-time ordered.
    pub ordering: Option<OrderingValues>,
    /// The converter that made them; stored values must be encoded with the same one.
    pub ordering_converter: Option<RowConverter>,
    pub groups: BTreeMap<(String, u32), Vec<usize>>,
}

pub fn plan(
    batch: &RecordBatch,
    deletes: BooleanArray,
    keygen: &KeyGenerator,
    buckets: u32,
    ordering: &Ordering,
) -> Result<Plan> {
    let keys = keygen.record_keys(batch)?;
    let partitions = keygen.partition_paths(batch)?;
    let (ordering_converter, ordering_rows) = match ordering {
        Ordering::CommitTime => (None, None),
        Ordering::EventTime(field) => {
            let column = batch.column_by_name(field).ok_or_else(|| Error::Schema {
                column: field.clone(),
                reason: "the table's ordering field is missing from the written rows".to_string(),
            })?;
            let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())])?;
            let rows = OrderingValues::new(&converter, column)?;
            (Some(converter), Some(rows))
        }
    };
    // Winner per (partition, key), in input order.
    let mut winners: HashMap<(&str, &str), usize, RandomState> =
        HashMap::with_capacity_and_hasher(batch.num_rows(), RandomState::default());
    for row in 0..batch.num_rows() {
        let slot = (partitions.value(row), keys.value(row));
        match winners.get_mut(&slot) {
            Some(current) => {
                let version = |r: usize| Version {
                    delete: deletes.value(r),
                    ordering: incoming_ordering(ordering_rows.as_ref(), &deletes, r),
                };
                if wins(version(row), version(*current)) {
                    *current = row;
                }
            }
            None => {
                winners.insert(slot, row);
            }
        }
    }
    let mut chosen: Vec<usize> = winners.into_values().collect();
    chosen.sort_unstable();
    let mut by_group: HashMap<(&str, u32), Vec<usize>, RandomState> = HashMap::default();
    for row in chosen {
        let bucket = index::bucket_id(keys.value(row), keygen.record_key_fields(), buckets);
        by_group
            .entry((partitions.value(row), bucket))
            .or_default()
            .push(row);
    }
    let groups: BTreeMap<(String, u32), Vec<usize>> = by_group
        .into_iter()
        .map(|((partition, bucket), rows)| ((partition.to_string(), bucket), rows))
        .collect();
    Ok(Plan {
        keys,
        deletes,
        ordering: ordering_rows,
        ordering_converter,
        groups,
    })
}

/// The ordering value of incoming row `r`: a delete without one is in natural order (`None`); a
/// record without one orders as zero (see [`OrderingValues`]).
pub fn incoming_ordering<'a>(
    ordering: Option<&'a OrderingValues>,
    deletes: &BooleanArray,
    r: usize,
) -> Option<Row<'a>> {
    let ordering = ordering?;
    if deletes.value(r) && ordering.is_null(r) {
        None
    } else {
        ordering.get(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::{TableProperties, TableType};
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn keeps_one_winner_per_key_by_event_time() -> Result<()> {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("ts", DataType::Int64, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b", "a", "b"])),
                Arc::new(Int64Array::from(vec![
                    Some(5),
                    Some(3),
                    Some(1),
                    Some(5),
                    None,
                ])),
            ],
        )?;
        let props = TableProperties::new("t", TableType::CopyOnWrite, vec!["id".into()]);
        let keygen = KeyGenerator::new(&props);
        let deletes = BooleanArray::from(vec![false; 5]);
        let event = plan(
            &batch,
            deletes.clone(),
            &keygen,
            1,
            &Ordering::EventTime("ts".into()),
        )?;
        // "a": row 1 (ts 3) is stale against row 0 (ts 5); row 3 (ts 5) ties and is later.
        // "b": row 4 has no ordering value, which orders as 0, so row 2 (ts 1) stays.
        assert_eq!(
            event.groups.values().flatten().copied().collect::<Vec<_>>(),
            vec![2, 3]
        );
        let commit = plan(&batch, deletes, &keygen, 1, &Ordering::CommitTime)?;
        assert_eq!(
            commit
                .groups
                .values()
                .flatten()
                .copied()
                .collect::<Vec<_>>(),
            vec![3, 4]
        );
        Ok(())
    }
}
