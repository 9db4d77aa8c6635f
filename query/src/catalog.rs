//! Catalog sync: registers a table in the AWS Glue Data Catalog as Hudi's own Glue sync
//! (`AWSGlueCatalogSyncClient`, Hudi 0.14/0.15) does, so that Athena, Presto, Trino and Spark
//! find it by name: the database (created when missing), the table with Hudi's input format,
//! SerDe, columns and partition keys, and one Glue partition per partition directory.
//!
//! Tables: a copy-on-write table is one Glue table; a merge-on-read table is `<name>_ro`
//! (read-optimized: base files), `<name>_rt` and `<name>` (realtime: base files merged with logs
//! by Hudi's realtime input format), as Hudi 0.15 syncs them.
//!
//! What it writes, from Hudi's sources (notes in `shared/notes-glue-sync.md`):
//! - `TableType` `EXTERNAL_TABLE`; parameters `EXTERNAL=TRUE`, `spark.sql.sources.provider=hudi`,
//!   the Spark schema in 4000-character parts, the partition columns, `last_commit_time_sync`;
//! - storage descriptor: location (s3a:// as s3://), `HoodieParquetInputFormat` (or the realtime
//!   one), `MapredParquetOutputFormat`, `ParquetHiveSerDe` with `path` and
//!   `hoodie.query.as.ro.table`; columns: the five `_hoodie_*` strings, then the data columns by
//!   their names in files, partition columns left out (they are partition keys);
//! - partitions: values from the partition path as Hudi's extractors take them (`col=value` →
//!   value; one non-hive field: the path; several: each segment), location = table + path.
//!
//! A column whose type changes other than int → bigint and float → double is refused, as Hudi
//! refuses it. Each sync adds partitions Glue lacks, updates those whose location differs and
//! drops those no longer on storage. [`GlueCatalogHook`] runs it after the commits that change
//! what Glue should hold (`inlet run` with `[sink.catalog]`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::datatypes::{DataType, Schema, SchemaRef};
use aws_sdk_glue::Client;
use aws_sdk_glue::types::{
    BatchUpdatePartitionRequestEntry, Column, DatabaseInput, PartitionInput, PartitionValueList,
    SerDeInfo, StorageDescriptor, TableInput,
};
use inlet_table::commit::transaction::{CommitHook, Completed};
use inlet_table::{Action as HudiAction, Snapshot, Table, TableType};
use serde_json::{Value, json};

use crate::{Error, Result};

const INPUT_FORMAT: &str = "org.apache.hudi.hadoop.HoodieParquetInputFormat";
const REALTIME_INPUT_FORMAT: &str =
    "org.apache.hudi.hadoop.realtime.HoodieParquetRealtimeInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const META_COLUMNS: [&str; 5] = [
    "_hoodie_commit_time",
    "_hoodie_commit_seqno",
    "_hoodie_record_key",
    "_hoodie_partition_path",
    "_hoodie_file_name",
];
/// Spark splits its schema string into table parameters of this length.
const SCHEMA_PART: usize = 4000;
/// Hudi's batch sizes for partition requests.
const CREATE_BATCH: usize = 100;
const DELETE_BATCH: usize = 25;

/// Where to register tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GlueTarget {
    pub database: String,
    /// AWS region; `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Another endpoint (an S3-compatible stack, moto); AWS's otherwise.
    pub endpoint: Option<String>,
    /// The Glue table name; the Hudi table's name otherwise.
    pub table: Option<String>,
}

/// What a sync did, per Glue table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Synced {
    pub table: String,
    pub created: bool,
    pub schema_updated: bool,
    pub partitions_added: usize,
    pub partitions_updated: usize,
    pub partitions_dropped: usize,
}

/// A Glue client from the target and the usual AWS environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
pub fn client(target: &GlueTarget) -> Result<Client> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) else {
        return Err(Error::Catalog(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        ));
    };
    client_with(target, &key, &secret, env("AWS_SESSION_TOKEN"))
}

/// A Glue client from the target and these credentials.
pub fn client_with(
    target: &GlueTarget,
    key: &str,
    secret: &str,
    session_token: Option<String>,
) -> Result<Client> {
    use aws_sdk_glue::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::Builder;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let region = target
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_string());
    let http = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut config = aws_sdk_glue::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(Credentials::new(key, secret, session_token, None, "inlet"))
        .http_client(http);
    if let Some(endpoint) = &target.endpoint {
        config = config.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

/// Registers (or brings up to date) the table's Glue tables and partitions.
pub async fn sync(glue: &Client, table: &Table, target: &GlueTarget) -> Result<Vec<Synced>> {
    Ok(sync_table(glue, table, target).await?.0)
}

/// [`sync`], and the schema and partitions it registered.
async fn sync_table(
    glue: &Client,
    table: &Table,
    target: &GlueTarget,
) -> Result<(Vec<Synced>, Registered)> {
    let snapshot = Snapshot::load(table).await?;
    let Some(schema) = snapshot.schema().cloned() else {
        return Err(Error::Catalog(format!(
            "{}: nothing written yet, so no schema to register",
            table.storage().uri()
        )));
    };
    ensure_database(glue, &target.database).await?;
    let properties = table.properties();
    let name = target
        .table
        .clone()
        .unwrap_or_else(|| properties.name.clone())
        .to_lowercase();
    let shapes: Vec<(String, bool)> = match properties.table_type {
        TableType::CopyOnWrite => vec![(name, false)],
        TableType::MergeOnRead => vec![
            (format!("{name}_ro"), false),
            (format!("{name}_rt"), true),
            (name, true),
        ],
    };
    let location = table.storage().uri().replacen("s3a://", "s3://", 1);
    let location = location.trim_end_matches('/').to_string();
    let layout = Layout::of(table, &schema)?;
    let partitions: BTreeSet<String> = snapshot
        .view()
        .live_file_groups()
        .map(|g| g.partition.as_str().to_string())
        .collect();
    let last_sync = snapshot
        .timeline()
        .latest_completed_write()
        .map(|i| i.time.as_str().to_string());
    let mut done = Vec::new();
    for (glue_name, realtime) in shapes {
        let input = layout.table_input(
            &glue_name,
            &location,
            table.storage().uri(),
            realtime,
            last_sync.as_deref(),
        )?;
        let mut synced = Synced {
            table: glue_name.clone(),
            ..Default::default()
        };
        match get_table(glue, &target.database, &glue_name).await? {
            None => {
                glue.create_table()
                    .database_name(&target.database)
                    .table_input(input.clone())
                    .send()
                    .await
                    .map_err(|e| sdk("CreateTable", &glue_name, e))?;
                synced.created = true;
            }
            Some(existing) => {
                check_types(&glue_name, &existing, &input)?;
                synced.schema_updated = differs(&existing, &input);
                glue.update_table()
                    .database_name(&target.database)
                    .table_input(input.clone())
                    .skip_archive(true)
                    .send()
                    .await
                    .map_err(|e| sdk("UpdateTable", &glue_name, e))?;
            }
        }
        if !layout.partition_keys.is_empty() {
            sync_partitions(
                glue,
                target,
                &glue_name,
                &input,
                &layout,
                &location,
                &partitions,
                &mut synced,
            )
            .await?;
        }
        done.push(synced);
    }
    Ok((done, Registered { schema, partitions }))
}

/// What a sync registered of a table.
#[derive(Debug, Clone)]
struct Registered {
    schema: SchemaRef,
    partitions: BTreeSet<String>,
}

/// Keeps the Glue tables of every table it is registered on current (the service's
/// `[sink.catalog] kind = "glue"`): after a completed action that may change what Glue holds —
/// the table's first commit, a new schema, a partition not registered yet, a replace commit, a
/// rollback or a restore — it syncs the table as `inlet catalog sync` does. Commits into
/// registered partitions with the registered schema cost nothing. A failed sync is logged by
/// the commit path and retried after the next commit (the Hudi commit stands either way).
#[derive(Debug)]
pub struct GlueCatalogHook {
    client: Client,
    target: GlueTarget,
    /// What this process registered, per table location.
    registered: std::sync::Mutex<std::collections::HashMap<String, Registered>>,
}

impl GlueCatalogHook {
    /// A hook syncing into `target` (its `table` is ignored: each table keeps its own name);
    /// fails without AWS credentials.
    pub fn new(target: GlueTarget) -> Result<Self> {
        Ok(Self::with_client(client(&target)?, target))
    }

    /// A hook syncing into `target` with this client.
    pub fn with_client(client: Client, target: GlueTarget) -> Self {
        GlueCatalogHook {
            client,
            target: GlueTarget {
                table: None,
                ..target
            },
            registered: Default::default(),
        }
    }

    /// Whether a completed action leaves Glue as this process registered it.
    fn current(&self, table: &Table, completed: &Completed<'_>) -> bool {
        let Some(metadata) = completed.commit else {
            return false;
        };
        if !matches!(
            completed.instant.action,
            HudiAction::Commit | HudiAction::DeltaCommit | HudiAction::Compaction
        ) {
            return false;
        }
        let registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        let Some(known) = registered.get(table.storage().uri()) else {
            return false;
        };
        let same_schema = metadata
            .arrow_schema()
            .is_none_or(|s| s.fields() == known.schema.fields());
        same_schema
            && metadata
                .partition_to_write_stats
                .keys()
                .all(|p| known.partitions.contains(p))
    }
}

#[async_trait::async_trait]
impl CommitHook for GlueCatalogHook {
    fn name(&self) -> &str {
        "Glue catalog sync"
    }

    async fn completed(&self, table: &Table, completed: &Completed<'_>) -> inlet_table::Result<()> {
        if !completed.instant.action.changes_files() || self.current(table, completed) {
            return Ok(());
        }
        let (synced, registered) = sync_table(&self.client, table, &self.target)
            .await
            .map_err(|e| inlet_table::Error::Unsupported(format!("Glue catalog sync: {e}")))?;
        for s in synced.iter().filter(|s| {
            s.created
                || s.schema_updated
                || s.partitions_added + s.partitions_updated + s.partitions_dropped > 0
        }) {
            tracing::info!(
                database = %self.target.database,
                glue_table = %s.table,
                created = s.created,
                schema_updated = s.schema_updated,
                partitions_added = s.partitions_added,
                partitions_updated = s.partitions_updated,
                partitions_dropped = s.partitions_dropped,
                "Glue catalog synced."
            );
        }
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(table.storage().uri().to_string(), registered);
        Ok(())
    }
}

/// The Glue shape of a table: columns, partition keys and how partition values are read.
struct Layout {
    columns: Vec<(String, String)>,
    partition_keys: Vec<(String, String)>,
    hive_style: bool,
    spark_schema: String,
}

impl Layout {
    fn of(table: &Table, schema: &Schema) -> Result<Layout> {
        let physical = inlet_table::schema::physical(schema)?;
        let partition_fields = &table.properties().partition_fields;
        let mut columns: Vec<(String, String)> = META_COLUMNS
            .iter()
            .map(|c| (c.to_string(), "string".to_string()))
            .collect();
        let mut spark_fields: Vec<Value> = META_COLUMNS
            .iter()
            .map(|c| json!({"name": c, "type": "string", "nullable": true, "metadata": {}}))
            .collect();
        let mut partition_keys = Vec::new();
        let mut partition_spark = Vec::new();
        for field in physical.fields() {
            let hive = hive_type(field.name(), field.data_type())?;
            let spark = spark_field(field.name(), field.data_type())?;
            if partition_fields.contains(field.name()) {
                continue;
            }
            columns.push((field.name().clone(), hive));
            spark_fields.push(spark);
        }
        for name in partition_fields {
            let field = physical.field_with_name(name).ok();
            let hive = match field {
                Some(f) => hive_type(f.name(), f.data_type())?,
                None => "string".to_string(),
            };
            partition_spark.push(match field {
                Some(f) => spark_field(name, f.data_type())?,
                None => json!({"name": name, "type": "string", "nullable": false, "metadata": {}}),
            });
            partition_keys.push((name.clone(), hive));
        }
        spark_fields.extend(partition_spark);
        Ok(Layout {
            columns,
            partition_keys,
            hive_style: table.properties().hive_style_partitioning,
            spark_schema: json!({"type": "struct", "fields": spark_fields}).to_string(),
        })
    }

    fn table_input(
        &self,
        name: &str,
        location: &str,
        base_path: &str,
        realtime: bool,
        last_sync: Option<&str>,
    ) -> Result<TableInput> {
        let mut parameters: HashMap<String, String> = HashMap::from([
            ("EXTERNAL".into(), "TRUE".into()),
            ("hudi.metadata-listing-enabled".into(), "FALSE".into()),
            ("spark.sql.sources.provider".into(), "hudi".into()),
        ]);
        let parts: Vec<String> = self
            .spark_schema
            .chars()
            .collect::<Vec<_>>()
            .chunks(SCHEMA_PART)
            .map(|c| c.iter().collect())
            .collect();
        parameters.insert(
            "spark.sql.sources.schema.numParts".into(),
            parts.len().to_string(),
        );
        for (i, part) in parts.into_iter().enumerate() {
            parameters.insert(format!("spark.sql.sources.schema.part.{i}"), part);
        }
        if !self.partition_keys.is_empty() {
            parameters.insert(
                "spark.sql.sources.schema.numPartCols".into(),
                self.partition_keys.len().to_string(),
            );
            for (i, (key, _)) in self.partition_keys.iter().enumerate() {
                parameters.insert(format!("spark.sql.sources.schema.partCol.{i}"), key.clone());
            }
        }
        if let Some(t) = last_sync {
            parameters.insert("last_commit_time_sync".into(), t.to_string());
        }
        TableInput::builder()
            .name(name)
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(parameters))
            .set_partition_keys(Some(glue_columns(&self.partition_keys)?))
            .storage_descriptor(self.storage_descriptor(location, base_path, realtime)?)
            .build()
            .map_err(|e| Error::Catalog(e.to_string()))
    }

    fn storage_descriptor(
        &self,
        location: &str,
        base_path: &str,
        realtime: bool,
    ) -> Result<StorageDescriptor> {
        Ok(StorageDescriptor::builder()
            .set_columns(Some(glue_columns(&self.columns)?))
            .location(location)
            .input_format(if realtime {
                REALTIME_INPUT_FORMAT
            } else {
                INPUT_FORMAT
            })
            .output_format(OUTPUT_FORMAT)
            .serde_info(
                SerDeInfo::builder()
                    .serialization_library(SERDE)
                    .set_parameters(Some(HashMap::from([
                        ("path".to_string(), base_path.to_string()),
                        (
                            "hoodie.query.as.ro.table".to_string(),
                            (!realtime).to_string(),
                        ),
                        ("serialization.format".to_string(), "1".to_string()),
                    ])))
                    .build(),
            )
            .build())
    }

    /// The partition values of a partition path, as Hudi's inferred extractor reads them.
    fn values(&self, path: &str) -> Vec<String> {
        let value = |segment: &str| match segment.split_once('=') {
            Some((_, v)) if self.hive_style || self.partition_keys.len() > 1 => v.to_string(),
            _ => segment.to_string(),
        };
        let values: Vec<String> = if self.partition_keys.len() == 1 {
            if self.hive_style {
                vec![value(path)]
            } else {
                vec![path.replace('/', "-")]
            }
        } else {
            path.split('/').map(value).collect()
        };
        values
            .into_iter()
            .map(|v| {
                if v.is_empty() {
                    "__HIVE_DEFAULT_PARTITION__".to_string()
                } else {
                    v
                }
            })
            .collect()
    }
}

fn glue_columns(columns: &[(String, String)]) -> Result<Vec<Column>> {
    columns
        .iter()
        .map(|(name, t)| {
            Column::builder()
                .name(name)
                .r#type(t)
                .comment("")
                .build()
                .map_err(|e| Error::Catalog(e.to_string()))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn sync_partitions(
    glue: &Client,
    target: &GlueTarget,
    table: &str,
    input: &TableInput,
    layout: &Layout,
    location: &str,
    on_storage: &BTreeSet<String>,
    synced: &mut Synced,
) -> Result<()> {
    let mut in_glue: BTreeMap<Vec<String>, Option<String>> = BTreeMap::new();
    let mut pages = glue
        .get_partitions()
        .database_name(&target.database)
        .table_name(table)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk("GetPartitions", table, e))?;
        for p in page.partitions() {
            in_glue.insert(
                p.values().to_vec(),
                p.storage_descriptor()
                    .and_then(|s| s.location())
                    .map(str::to_string),
            );
        }
    }
    let descriptor = input
        .storage_descriptor()
        .cloned()
        .unwrap_or_else(|| StorageDescriptor::builder().build());
    let wanted: BTreeMap<Vec<String>, String> = on_storage
        .iter()
        .map(|p| (layout.values(p), format!("{location}/{p}")))
        .collect();
    let partition = |values: &Vec<String>, at: &String| {
        let mut sd = descriptor.clone();
        sd.location = Some(at.clone());
        PartitionInput::builder()
            .set_values(Some(values.clone()))
            .storage_descriptor(sd)
            .build()
    };
    let add: Vec<PartitionInput> = wanted
        .iter()
        .filter(|(v, _)| !in_glue.contains_key(*v))
        .map(|(v, at)| partition(v, at))
        .collect();
    let update: Vec<BatchUpdatePartitionRequestEntry> = wanted
        .iter()
        .filter(|(v, at)| {
            in_glue
                .get(*v)
                .is_some_and(|l| l.as_deref() != Some(at.as_str()))
        })
        .map(|(v, at)| {
            BatchUpdatePartitionRequestEntry::builder()
                .set_partition_value_list(Some(v.clone()))
                .partition_input(partition(v, at))
                .build()
                .map_err(|e| Error::Catalog(e.to_string()))
        })
        .collect::<Result<_>>()?;
    let drop: Vec<PartitionValueList> = in_glue
        .keys()
        .filter(|v| !wanted.contains_key(*v))
        .map(|v| {
            PartitionValueList::builder()
                .set_values(Some(v.clone()))
                .build()
                .map_err(|e| Error::Catalog(e.to_string()))
        })
        .collect::<Result<_>>()?;
    for chunk in add.chunks(CREATE_BATCH) {
        let out = glue
            .batch_create_partition()
            .database_name(&target.database)
            .table_name(table)
            .set_partition_input_list(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| sdk("BatchCreatePartition", table, e))?;
        if let Some(error) = out.errors().iter().find(|e| {
            e.error_detail().and_then(|d| d.error_code()) != Some("AlreadyExistsException")
        }) {
            return Err(Error::Catalog(format!(
                "BatchCreatePartition on {table}: {error:?}"
            )));
        }
        synced.partitions_added += chunk.len();
    }
    for chunk in update.chunks(CREATE_BATCH) {
        let out = glue
            .batch_update_partition()
            .database_name(&target.database)
            .table_name(table)
            .set_entries(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| sdk("BatchUpdatePartition", table, e))?;
        if let Some(error) = out.errors().first() {
            return Err(Error::Catalog(format!(
                "BatchUpdatePartition on {table}: {error:?}"
            )));
        }
        synced.partitions_updated += chunk.len();
    }
    for chunk in drop.chunks(DELETE_BATCH) {
        let out = glue
            .batch_delete_partition()
            .database_name(&target.database)
            .table_name(table)
            .set_partitions_to_delete(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| sdk("BatchDeletePartition", table, e))?;
        if let Some(error) = out.errors().first() {
            return Err(Error::Catalog(format!(
                "BatchDeletePartition on {table}: {error:?}"
            )));
        }
        synced.partitions_dropped += chunk.len();
    }
    Ok(())
}

async fn ensure_database(glue: &Client, database: &str) -> Result<()> {
    match glue.get_database().name(database).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_not_found_exception()) =>
        {
            let input = DatabaseInput::builder()
                .name(database)
                .description("Automatically created by inlet (as by org.apache.hudi.aws.sync.AWSGlueCatalogSyncClient)")
                .build()
                .map_err(|e| Error::Catalog(e.to_string()))?;
            match glue.create_database().database_input(input).send().await {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(sdk("CreateDatabase", database, e)),
            }
        }
        Err(e) => Err(sdk("GetDatabase", database, e)),
    }
}

async fn get_table(
    glue: &Client,
    database: &str,
    name: &str,
) -> Result<Option<aws_sdk_glue::types::Table>> {
    match glue
        .get_table()
        .database_name(database)
        .name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.table().cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk("GetTable", name, e)),
    }
}

/// Hudi's rule: a column keeps its type, or widens int → bigint or float → double.
fn check_types(name: &str, existing: &aws_sdk_glue::types::Table, new: &TableInput) -> Result<()> {
    let old: HashMap<&str, &str> = existing
        .storage_descriptor()
        .map(|s| s.columns())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| Some((c.name(), c.r#type()?)))
        .collect();
    for column in new
        .storage_descriptor()
        .map(|s| s.columns())
        .unwrap_or_default()
    {
        let Some(now) = column.r#type() else { continue };
        if let Some(was) = old.get(column.name()) {
            let allowed = was.eq_ignore_ascii_case(now)
                || (was.eq_ignore_ascii_case("int") && now == "bigint")
                || (was.eq_ignore_ascii_case("float") && now == "double")
                || (was.starts_with("struct<") && now.starts_with("struct<"));
            if !allowed {
                return Err(Error::Catalog(format!(
                    "Glue table {name}: column {:?} cannot change type from {was} to {now} (Hudi's \
                     sync refuses it too)",
                    column.name()
                )));
            }
        }
    }
    Ok(())
}

fn differs(existing: &aws_sdk_glue::types::Table, new: &TableInput) -> bool {
    let columns = |cols: &[Column]| -> Vec<(String, String)> {
        cols.iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    c.r#type().unwrap_or_default().to_lowercase(),
                )
            })
            .collect()
    };
    columns(
        existing
            .storage_descriptor()
            .map(|s| s.columns())
            .unwrap_or_default(),
    ) != columns(
        new.storage_descriptor()
            .map(|s| s.columns())
            .unwrap_or_default(),
    )
}

/// The Hive type Glue shows for a column (Hudi's `HiveSchemaUtil`, lower-cased).
fn hive_type(column: &str, data_type: &DataType) -> Result<String> {
    Ok(match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::List(item) => format!("array<{}>", hive_type(column, item.data_type())?),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 && kv[0].data_type() == &DataType::Utf8 => {
                format!("map<string,{}>", hive_type(column, kv[1].data_type())?)
            }
            other => return Err(unsupported(column, other)),
        },
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| Ok(format!(
                    "{}:{}",
                    f.name().to_lowercase(),
                    hive_type(column, f.data_type())?
                )))
                .collect::<Result<Vec<_>>>()?
                .join(",")
        ),
        other => return Err(unsupported(column, other)),
    })
}

/// A field of the Spark schema Spark reads from the table parameters (zone-less timestamps as
/// `timestamp`, as Hudi writes them).
fn spark_field(name: &str, data_type: &DataType) -> Result<Value> {
    crate::spark::spark_field(name, data_type, "timestamp").map_err(|t| unsupported(name, &t))
}

fn unsupported(column: &str, data_type: &DataType) -> Error {
    Error::Catalog(format!(
        "column {column:?} has type {data_type}, which Hive has no type for"
    ))
}

fn sdk<E: std::fmt::Debug>(
    operation: &str,
    what: &str,
    e: aws_sdk_glue::error::SdkError<E>,
) -> Error {
    let detail = match &e {
        aws_sdk_glue::error::SdkError::ServiceError(s) => format!("{:?}", s.err()),
        other => format!("{other}"),
    };
    Error::Catalog(format!("Glue {operation} ({what}): {detail}"))
}
