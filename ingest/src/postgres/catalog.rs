//! Catalog queries: prerequisites (each failure says what to fix), the captured tables with
//! their columns and keys, the type catalog, the publication and the slot.

use tokio_postgres::Client;
use tokio_postgres::types::Oid;

use super::Lsn;
use super::binary::Wire;
use super::connect::quote_ident;
use super::rows::ColumnSpec;
use super::source::ConfiguredKey;
use super::types::{TypeCatalog, TypeInfo, conversion};
use crate::change::TableId;
use crate::error::{Error, Result};

/// A captured table as the catalog describes it.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    pub oid: u32,
    pub id: TableId,
    pub columns: Vec<ColumnSpec>,
    /// How each column arrives in COPY's binary format.
    pub wires: Vec<Wire>,
    pub key: Vec<String>,
}

/// The replication slot, if it exists.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub plugin: String,
    pub confirmed_flush: Lsn,
    pub wal_status: Option<String>,
    pub database: Option<String>,
    pub active: bool,
}

fn query_err(what: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| Error::postgres(what.to_string(), e)
}

/// Checks what logical replication needs, naming the fix for each problem found.
pub async fn check_prerequisites(client: &Client, slot: &str, slot_exists: bool) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), \
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
                    current_user::text, \
                    current_setting('max_replication_slots')::int, \
                    (SELECT count(*) FROM pg_replication_slots)::int, \
                    current_setting('max_wal_senders')::int",
            &[],
        )
        .await
        .map_err(query_err("checking prerequisites"))?;
    let wal_level: String = row.get(0);
    let replication: Option<bool> = row.get(1);
    let user: String = row.get(2);
    let max_slots: i32 = row.get(3);
    let used_slots: i32 = row.get(4);
    let max_senders: i32 = row.get(5);
    let mut problems = Vec::new();
    if wal_level != "logical" {
        problems.push(format!(
            "wal_level is '{wal_level}', logical decoding needs 'logical': run \
             ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL"
        ));
    }
    if replication != Some(true) {
        problems.push(format!(
            "role {user} has no REPLICATION privilege: run ALTER ROLE {} WITH REPLICATION; as a superuser",
            quote_ident(&user)
        ));
    }
    if !slot_exists && used_slots >= max_slots {
        problems.push(format!(
            "all {max_slots} replication slots are in use and slot {slot} does not exist yet: drop an \
             unused one (SELECT pg_drop_replication_slot('name')) or raise max_replication_slots \
             and restart PostgreSQL"
        ));
    }
    if max_senders < 1 {
        problems.push(
            "max_wal_senders is 0: set it to at least 1 (ALTER SYSTEM SET max_wal_senders = 10) \
             and restart PostgreSQL"
                .to_string(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Prerequisites { problems })
    }
}

/// Every type of the database.
pub async fn load_types(client: &Client) -> Result<TypeCatalog> {
    let rows = client
        .query(
            "SELECT oid, typname::text, typtype::text, typelem, typbasetype, typtypmod, \
                    typcategory::text FROM pg_type",
            &[],
        )
        .await
        .map_err(query_err("reading pg_type"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let oid: Oid = r.get(0);
            let kind: String = r.get(2);
            let element: Oid = r.get(3);
            let category: String = r.get(6);
            let info = TypeInfo {
                oid,
                name: r.get(1),
                kind: kind.bytes().next().unwrap_or(b'b'),
                element: if category == "A" { element } else { 0 },
                base: r.get(4),
                base_typmod: r.get(5),
            };
            (oid, info)
        })
        .collect())
}

/// The columns of a table as captured (conversion per type; text fallbacks are warned about).
pub fn column_specs(
    types: &TypeCatalog,
    warn: bool,
    table: &TableId,
    columns: impl IntoIterator<Item = (String, u32, i32)>,
) -> Vec<ColumnSpec> {
    columns
        .into_iter()
        .map(|(name, oid, typmod)| {
            let conv = match conversion(types, oid, typmod) {
                Ok(conv) => conv,
                Err((conv, type_name)) => {
                    if !warn {
                        return ColumnSpec { name, conv };
                    }
                    tracing::warn!(
                        table = %table,
                        column = %name,
                        r#type = %type_name,
                        "Column {name} of {table} has type {type_name}, which has no Arrow \
                         mapping: it is captured as text."
                    );
                    conv
                }
            };
            ColumnSpec { name, conv }
        })
        .collect()
}

/// The tables `selects(schema.table)` chose: those captured, and those skipped with the reason
/// (no usable key, nothing to capture updates and deletes by).
#[derive(Debug, Default)]
pub struct Selected {
    pub captured: Vec<CatalogTable>,
    pub skipped: Vec<(TableId, String)>,
}

/// The ordinary tables selected by `selects(schema.table)`, with columns and keys. The record
/// key is the primary key or replica identity index, or the columns `configured_key` names for
/// the table (which deletes and updates must carry: the replica identity, or FULL). A table
/// without a usable key is skipped with the reason and the fix; a configured key that cannot
/// work is an error.
pub async fn tables(
    client: &Client,
    types: &TypeCatalog,
    selects: impl Fn(&str) -> bool,
    configured_key: impl Fn(&TableId) -> Option<ConfiguredKey>,
) -> Result<Selected> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(query_err("listing tables"))?;
    let mut selected = Selected::default();
    for row in rows {
        let oid: Oid = row.get(0);
        let id = TableId::new(row.get::<_, String>(1), row.get::<_, String>(2));
        if !selects(&id.to_string()) {
            continue;
        }
        let identity: String = row.get(3);
        let columns = client
            .query(
                "SELECT attname::text, atttypid, atttypmod FROM pg_attribute \
                 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' \
                 ORDER BY attnum",
                &[&oid],
            )
            .await
            .map_err(query_err("reading columns"))?;
        let type_oids: Vec<Oid> = columns.iter().map(|r| r.get(1)).collect();
        let columns = column_specs(
            types,
            true,
            &id,
            columns.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
        );
        let wires = columns
            .iter()
            .zip(&type_oids)
            .map(|(column, &oid)| Wire::of(types, oid, &column.conv))
            .collect();
        let identity_key: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1 AND (CASE WHEN $2 = 'i' THEN i.indisreplident ELSE i.indisprimary END) \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&oid, &identity],
            )
            .await
            .map_err(query_err("reading keys"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let quoted = format!("{}.{}", quote_ident(&id.schema), quote_ident(&id.name));
        let key = match configured_key(&id) {
            Some(key) => {
                check_configured_key(
                    client,
                    oid,
                    &id,
                    &quoted,
                    &identity,
                    &identity_key,
                    &columns,
                    &key,
                )
                .await?;
                key.columns
            }
            None => identity_key,
        };
        let skip = if identity == "n" {
            Some(format!(
                "REPLICA IDENTITY NOTHING, so its updates and deletes cannot be captured: run \
                 ALTER TABLE {quoted} REPLICA IDENTITY DEFAULT; (with a primary key) or FULL"
            ))
        } else if key.is_empty() {
            Some(format!(
                "no primary key{}: add one (ALTER TABLE {quoted} ADD PRIMARY KEY (...)), choose a \
                 unique index (ALTER TABLE {quoted} REPLICA IDENTITY USING INDEX name), or name \
                 key columns in the configuration (tables.\"{id}\".key = [...], with REPLICA \
                 IDENTITY FULL)",
                if identity == "f" {
                    " (REPLICA IDENTITY FULL alone gives no record key for the lake table)"
                } else {
                    ""
                }
            ))
        } else {
            None
        };
        match skip {
            Some(reason) => {
                tracing::warn!(table = %id, "Skipping the table: {reason}.");
                selected.skipped.push((id, reason));
            }
            None => selected.captured.push(CatalogTable {
                oid,
                id,
                columns,
                wires,
                key,
            }),
        }
    }
    Ok(selected)
}

/// A key named in the configuration must be columns of the table that every update and delete
/// carries: the replica identity's columns, or any columns under REPLICA IDENTITY FULL. Then a
/// unique index must say they are unique, or the operator (`assume_unique_key`): rows with equal
/// keys would silently become one lake row.
#[allow(clippy::too_many_arguments)]
async fn check_configured_key(
    client: &Client,
    oid: Oid,
    id: &TableId,
    quoted: &str,
    identity: &str,
    identity_key: &[String],
    columns: &[ColumnSpec],
    configured: &ConfiguredKey,
) -> Result<()> {
    let key = configured.columns.as_slice();
    let field = format!("tables.\"{id}\".key");
    let invalid = |reason: String| Error::Config {
        field: field.clone(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("must name at least one column".to_string()));
    }
    if let Some(missing) = key.iter().find(|k| !columns.iter().any(|c| &c.name == *k)) {
        return Err(invalid(format!("{id} has no column {missing:?}")));
    }
    if key == identity_key {
        return Ok(());
    }
    if identity != "f" {
        return Err(invalid(format!(
            "{key:?} is not the replica identity of {id} ({identity_key:?}), so deletes and key \
             updates would not carry it: run ALTER TABLE {quoted} REPLICA IDENTITY FULL; or use \
             the identity columns"
        )));
    }
    let unique = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique \
               AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a \
                    WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) \
                   = (SELECT array_agg(k ORDER BY k) FROM unnest($2::text[]) k))",
            &[&oid, &key],
        )
        .await
        .map_err(query_err("reading unique indexes"))?
        .get::<_, bool>(0);
    if !unique {
        if !configured.assume_unique {
            let list = key
                .iter()
                .map(|k| quote_ident(k))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(invalid(format!(
                "no unique index on {key:?} of {id}: rows with equal keys would become one row \
                 in the lake table. Create one (CREATE UNIQUE INDEX ON {quoted} ({list});), or \
                 set tables.\"{id}\".assume_unique_key = true if the source keeps them unique"
            )));
        }
        tracing::warn!(table = %id, key = ?key, "No unique index on the configured key; assume_unique_key says it is unique (rows with equal keys would become one lake row).");
    }
    Ok(())
}

/// Creates the publication for `tables`, or adds the ones it lacks.
pub async fn ensure_publication(
    client: &Client,
    publication: &str,
    tables: &[CatalogTable],
) -> Result<()> {
    let names: Vec<String> = tables
        .iter()
        .map(|t| format!("{}.{}", quote_ident(&t.id.schema), quote_ident(&t.id.name)))
        .collect();
    let existing = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(query_err("reading pg_publication"))?;
    match existing {
        None => {
            let sql = if names.is_empty() {
                format!("CREATE PUBLICATION {}", quote_ident(publication))
            } else {
                format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(publication),
                    names.join(", ")
                )
            };
            client
                .batch_execute(&sql)
                .await
                .map_err(query_err("creating the publication"))?;
            tracing::info!(
                publication,
                tables = names.len(),
                "Created the publication."
            );
        }
        Some(row) if row.get::<_, bool>(0) => {}
        Some(_) => {
            let published: Vec<(String, String)> = client
                .query(
                    "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                    &[&publication],
                )
                .await
                .map_err(query_err("reading pg_publication_tables"))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let missing: Vec<&String> = tables
                .iter()
                .zip(&names)
                .filter(|(t, _)| !published.contains(&(t.id.schema.clone(), t.id.name.clone())))
                .map(|(_, n)| n)
                .collect();
            if !missing.is_empty() {
                let sql = format!(
                    "ALTER PUBLICATION {} ADD TABLE {}",
                    quote_ident(publication),
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(query_err("adding tables to the publication"))?;
                tracing::info!(
                    publication,
                    added = missing.len(),
                    "Added tables to the publication."
                );
            }
        }
    }
    Ok(())
}

/// The slot, if it exists.
pub async fn slot(client: &Client, slot: &str) -> Result<Option<SlotInfo>> {
    let row = client
        .query_opt(
            "SELECT plugin::text, confirmed_flush_lsn::text, wal_status, database::text, active \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(query_err("reading pg_replication_slots"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let confirmed: Option<String> = row.get(1);
    Ok(Some(SlotInfo {
        plugin: row.get::<_, Option<String>>(0).unwrap_or_default(),
        confirmed_flush: confirmed
            .as_deref()
            .map(str::parse)
            .transpose()?
            .unwrap_or_default(),
        wal_status: row.get(2),
        database: row.get(3),
        active: row.get(4),
    }))
}
