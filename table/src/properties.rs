//! `hoodie.properties`: the table's identity and configuration (name, type, version, keys,
//! partitioning, merge semantics), a Java properties file at `.hoodie/hoodie.properties`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::merge::Ordering;

pub const PROPERTIES_FILE: &str = ".hoodie/hoodie.properties";

/// The table version we write: Hudi 0.14/0.15.
pub const TABLE_VERSION: u32 = 6;
/// The timeline layout that goes with table version 6 (flat `.hoodie/`, JSON commit metadata).
pub const TIMELINE_LAYOUT_VERSION: u32 = 1;

const NAME: &str = "hoodie.table.name";
const TYPE: &str = "hoodie.table.type";
const VERSION: &str = "hoodie.table.version";
const LAYOUT: &str = "hoodie.timeline.layout.version";
const RECORD_KEYS: &str = "hoodie.table.recordkey.fields";
const PRECOMBINE: &str = "hoodie.table.precombine.field";
const PARTITIONS: &str = "hoodie.table.partition.fields";
const HIVE_STYLE: &str = "hoodie.datasource.write.hive_style_partitioning";
const URL_ENCODE: &str = "hoodie.datasource.write.partitionpath.urlencode";
const DROP_PARTITION_COLUMNS: &str = "hoodie.datasource.write.drop.partition.columns";
const KEY_GENERATOR: &str = "hoodie.table.keygenerator.class";
const BASE_FORMAT: &str = "hoodie.table.base.file.format";
const POPULATE_META: &str = "hoodie.populate.meta.fields";
const TIMEZONE: &str = "hoodie.table.timeline.timezone";
const ARCHIVE_FOLDER: &str = "hoodie.archivelog.folder";
const PAYLOAD_CLASS: &str = "hoodie.compaction.payload.class";
const MERGER_STRATEGY: &str = "hoodie.compaction.record.merger.strategy";
const CREATE_SCHEMA: &str = "hoodie.table.create.schema";
const METADATA_PARTITIONS: &str = "hoodie.table.metadata.partitions";
/// Hudi's change-data-capture switch: writers add `.cdc` log files with each change's before
/// and after image (see [`crate::cdc`]).
pub const CDC_ENABLED: &str = "hoodie.table.cdc.enabled";
/// What the `.cdc` files hold; inlet writes Hudi's default, `DATA_BEFORE_AFTER`.
pub const CDC_MODE: &str = "hoodie.table.cdc.supplemental.logging.mode";
const PARTITION_METAFILE_BASE_FORMAT: &str = "hoodie.partition.metafile.use.base.format";
const DATABASE: &str = "hoodie.database.name";
const CHECKSUM: &str = "hoodie.table.checksum";
const INDEX_TYPE: &str = "hoodie.index.type";
const BUCKETS: &str = "hoodie.bucket.index.num.buckets";
const BUCKET_HASH_FIELD: &str = "hoodie.bucket.index.hash.field";
/// Hudi's write option for the data block format of log files (`avro` or `parquet`), kept as a
/// table property so every writer of the table uses the same one.
pub const LOG_BLOCK_FORMAT: &str = "hoodie.logfile.data.block.format";
/// inlet's own key: `true` keeps a Delta Lake log (`_delta_log/`) beside `.hoodie/`, brought up
/// to date after every completed action by whichever inlet process made it. Hudi readers ignore
/// keys they do not know.
pub const DELTA_MIRROR: &str = "inlet.delta.mirror";

/// Event-time merging on the ordering (precombine) field: the greatest value wins.
const EVENT_TIME_PAYLOAD: &str = "org.apache.hudi.common.model.DefaultHoodieRecordPayload";
/// Commit-time merging: the latest write wins.
const COMMIT_TIME_PAYLOAD: &str = "org.apache.hudi.common.model.OverwriteWithLatestAvroPayload";
/// Hudi's default (event-time) record merger strategy id.
const EVENT_TIME_STRATEGY: &str = "eeb8d96f-b1e4-49fd-bbf8-28ac514178e5";

/// Copy-on-write or merge-on-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableType {
    CopyOnWrite,
    MergeOnRead,
}

impl TableType {
    pub fn as_str(self) -> &'static str {
        match self {
            TableType::CopyOnWrite => "COPY_ON_WRITE",
            TableType::MergeOnRead => "MERGE_ON_READ",
        }
    }
}

impl std::str::FromStr for TableType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "COPY_ON_WRITE" | "COW" => Ok(TableType::CopyOnWrite),
            "MERGE_ON_READ" | "MOR" => Ok(TableType::MergeOnRead),
            _ => Err(Error::InvalidProperties(format!(
                "unknown table type {s:?}"
            ))),
        }
    }
}

/// The contents of `hoodie.properties`. Keys we do not model are kept and written back.
#[derive(Debug, Clone, PartialEq)]
pub struct TableProperties {
    pub name: String,
    pub table_type: TableType,
    pub version: u32,
    pub record_key_fields: Vec<String>,
    /// The ordering (precombine) field; `None` means commit-time ordering.
    pub ordering_field: Option<String>,
    pub partition_fields: Vec<String>,
    pub hive_style_partitioning: bool,
    /// Buckets per partition of the bucket index; `None` for tables written by others.
    pub buckets: Option<u32>,
    /// Avro schema of the table at creation, without meta fields.
    pub create_schema: Option<String>,
    pub populate_meta_fields: bool,
    /// Every other key, verbatim.
    pub other: BTreeMap<String, String>,
}

impl TableProperties {
    /// Properties of a new table written by inlet.
    pub fn new(name: &str, table_type: TableType, record_key_fields: Vec<String>) -> Self {
        TableProperties {
            name: name.to_string(),
            table_type,
            version: TABLE_VERSION,
            record_key_fields,
            ordering_field: None,
            partition_fields: Vec::new(),
            hive_style_partitioning: false,
            buckets: None,
            create_schema: None,
            populate_meta_fields: true,
            other: BTreeMap::new(),
        }
    }

    /// Whether writers keep `.cdc` log files (`hoodie.table.cdc.enabled`), and in which
    /// supplemental logging mode; an error for a mode inlet does not write.
    pub fn cdc(&self) -> Result<bool> {
        if !self
            .other
            .get(CDC_ENABLED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Ok(false);
        }
        match self.other.get(CDC_MODE).map(String::as_str) {
            // Hudi 0.14+ spelling, its default, and the 0.13 spellings of the same mode.
            None | Some("DATA_BEFORE_AFTER" | "data_before_after" | "cdc_data_before_after") => {
                Ok(true)
            }
            Some(other) => Err(Error::Unsupported(format!(
                "{CDC_MODE}={other}: inlet writes and reads change logs in the \
                 DATA_BEFORE_AFTER mode only"
            ))),
        }
    }

    /// Turns change-data-capture logs on (`DATA_BEFORE_AFTER`) for a new table.
    pub fn enable_cdc(&mut self) {
        self.other
            .insert(CDC_ENABLED.to_string(), "true".to_string());
        self.other
            .insert(CDC_MODE.to_string(), "DATA_BEFORE_AFTER".to_string());
    }

    /// Hudi's key generator for this key and partition layout.
    pub fn key_generator_class(&self) -> &'static str {
        if self.partition_fields.is_empty() {
            "org.apache.hudi.keygen.NonpartitionedKeyGenerator"
        } else if self.record_key_fields.len() == 1 && self.partition_fields.len() == 1 {
            "org.apache.hudi.keygen.SimpleKeyGenerator"
        } else {
            "org.apache.hudi.keygen.ComplexKeyGenerator"
        }
    }

    /// Whether record keys are written in the complex `field:value,…` form. Hudi uses it for
    /// multi-field keys and for the complex key generator even with one field.
    pub fn complex_keys(&self) -> bool {
        let class = self
            .other
            .get(KEY_GENERATOR)
            .map_or(self.key_generator_class(), String::as_str);
        self.record_key_fields.len() > 1
            || class.ends_with("ComplexKeyGenerator")
            || class.ends_with("CustomKeyGenerator")
    }

    /// `hoodie.table.checksum`: CRC32 of `database.table` (database empty when absent).
    pub fn checksum(&self) -> u32 {
        let database = self.other.get(DATABASE).map(String::as_str).unwrap_or("");
        crc32fast::hash(format!("{database}.{}", self.name).as_bytes())
    }

    /// Parses a Java properties file.
    pub fn parse(text: &str) -> Result<Self> {
        let mut all = parse_java_properties(text);
        let mut take = |key: &str| all.remove(key);
        let required = |value: Option<String>, key: &str| {
            value.ok_or_else(|| Error::InvalidProperties(format!("missing {key}")))
        };
        let name = required(take(NAME), NAME)?;
        let table_type = required(take(TYPE), TYPE)?.parse()?;
        let version_text = required(take(VERSION), VERSION)?;
        let version: u32 = version_text.trim().parse().map_err(|_| {
            Error::InvalidProperties(format!("{VERSION}={version_text} is not a number"))
        })?;
        let list = |value: Option<String>| -> Vec<String> {
            value
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().split(':').next().unwrap_or("").to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let record_key_fields = list(take(RECORD_KEYS));
        let ordering_field = take(PRECOMBINE).filter(|s| !s.is_empty());
        let partition_fields = list(take(PARTITIONS));
        let hive_style_partitioning =
            take(HIVE_STYLE).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let buckets = take(BUCKETS).and_then(|v| v.parse().ok());
        let create_schema = take(CREATE_SCHEMA);
        let populate_meta_fields =
            take(POPULATE_META).is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        // Derived on write.
        for key in [CHECKSUM, LAYOUT] {
            take(key);
        }
        Ok(TableProperties {
            name,
            table_type,
            version,
            record_key_fields,
            ordering_field,
            partition_fields,
            hive_style_partitioning,
            buckets,
            create_schema,
            populate_meta_fields,
            other: all,
        })
    }

    /// The file contents, with every key Hudi 0.14 writes for a table of this shape and the
    /// checksum last, as Java writes it. Values are not escaped: hudi-rs does not unescape.
    pub fn to_file(&self) -> String {
        let mut keys: BTreeMap<&str, String> = BTreeMap::new();
        for (key, value) in &self.other {
            keys.insert(key, value.clone());
        }
        keys.insert(NAME, self.name.clone());
        keys.insert(TYPE, self.table_type.as_str().to_string());
        keys.insert(VERSION, self.version.to_string());
        keys.insert(LAYOUT, TIMELINE_LAYOUT_VERSION.to_string());
        keys.insert(RECORD_KEYS, self.record_key_fields.join(","));
        if !self.partition_fields.is_empty() {
            keys.insert(PARTITIONS, self.partition_fields.join(","));
        }
        keys.insert(HIVE_STYLE, self.hive_style_partitioning.to_string());
        keys.insert(POPULATE_META, self.populate_meta_fields.to_string());
        keys.entry(KEY_GENERATOR)
            .or_insert_with(|| self.key_generator_class().to_string());
        keys.entry(URL_ENCODE)
            .or_insert_with(|| "false".to_string());
        keys.entry(DROP_PARTITION_COLUMNS)
            .or_insert_with(|| "false".to_string());
        keys.entry(BASE_FORMAT)
            .or_insert_with(|| "PARQUET".to_string());
        keys.entry(TIMEZONE).or_insert_with(|| "UTC".to_string());
        keys.entry(ARCHIVE_FOLDER)
            .or_insert_with(|| "archived".to_string());
        keys.entry(CDC_ENABLED)
            .or_insert_with(|| "false".to_string());
        keys.entry(PARTITION_METAFILE_BASE_FORMAT)
            .or_insert_with(|| "false".to_string());
        // No metadata table is maintained: registering one would hide new files from readers.
        keys.entry(METADATA_PARTITIONS).or_default();
        match &self.ordering_field {
            Some(field) => {
                keys.insert(PRECOMBINE, field.clone());
                keys.entry(PAYLOAD_CLASS)
                    .or_insert_with(|| EVENT_TIME_PAYLOAD.to_string());
                keys.entry(MERGER_STRATEGY)
                    .or_insert_with(|| EVENT_TIME_STRATEGY.to_string());
            }
            None => {
                keys.entry(PAYLOAD_CLASS)
                    .or_insert_with(|| COMMIT_TIME_PAYLOAD.to_string());
            }
        }
        if let Some(buckets) = self.buckets {
            keys.insert(INDEX_TYPE, "BUCKET".to_string());
            keys.insert(BUCKETS, buckets.to_string());
            keys.insert(BUCKET_HASH_FIELD, self.record_key_fields.join(","));
        }
        if let Some(schema) = &self.create_schema {
            keys.insert(CREATE_SCHEMA, schema.clone());
        }
        let mut out = String::from("#Properties saved by inlet\n");
        for (key, value) in keys {
            let _ = writeln!(out, "{key}={value}");
        }
        let _ = writeln!(out, "{CHECKSUM}={}", self.checksum());
        out
    }

    /// How versions of a record are ordered when merged. For table version 6 the payload class
    /// decides: Hudi's event-time payloads order by the precombine field, the default
    /// `OverwriteWithLatestAvroPayload` by commit time even when a precombine field is set.
    pub fn ordering(&self) -> Result<Ordering> {
        let event_time = || match &self.ordering_field {
            Some(field) => Ordering::EventTime(field.clone()),
            None => Ordering::CommitTime,
        };
        match self.other.get(PAYLOAD_CLASS).map(String::as_str) {
            None => Ok(event_time()),
            Some(class)
                if class.ends_with(".DefaultHoodieRecordPayload")
                    || class.ends_with(".EventTimeAvroPayload") =>
            {
                Ok(event_time())
            }
            Some(class) if class.ends_with(".OverwriteWithLatestAvroPayload") => {
                Ok(Ordering::CommitTime)
            }
            Some(class) => Err(Error::Unsupported(format!(
                "record payload class {class} (custom merging)"
            ))),
        }
    }

    /// Whether merge-on-read log files get Avro data blocks (`hoodie.logfile.data.block.format
    /// = avro`) instead of Parquet data blocks (the default).
    pub fn avro_data_blocks(&self) -> Result<bool> {
        match self.other.get(LOG_BLOCK_FORMAT).map(String::as_str) {
            None | Some("parquet") => Ok(false),
            Some("avro") => Ok(true),
            Some(other) => Err(Error::InvalidConfig(format!(
                "{LOG_BLOCK_FORMAT}={other}: inlet writes avro or parquet data blocks"
            ))),
        }
    }

    /// Fails when the table is something this version of inlet cannot write or read correctly.
    pub fn check_supported(&self) -> Result<()> {
        if self.version != TABLE_VERSION {
            return Err(Error::Unsupported(format!(
                "table version {} (inlet reads and writes table version {TABLE_VERSION})",
                self.version
            )));
        }
        if self
            .other
            .get(DROP_PARTITION_COLUMNS)
            .is_some_and(|v| v == "true")
        {
            return Err(Error::Unsupported(format!("{DROP_PARTITION_COLUMNS}=true")));
        }
        self.avro_data_blocks()?;
        Ok(())
    }
}

/// Parses `key=value` / `key:value` lines with Java's escapes (`\:`, `\=`, `\\`, `\uXXXX`) and
/// `#`/`!` comments. Line continuations are not used by Hudi and are not supported.
fn parse_java_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut key = String::new();
        let mut chars = line.chars();
        let mut separated = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => key.push(unescape(&mut chars)),
                '=' | ':' => {
                    separated = true;
                    break;
                }
                c if c.is_whitespace() => break,
                c => key.push(c),
            }
        }
        let rest: String = chars.collect();
        let rest = rest.trim_start();
        let rest = if separated {
            rest
        } else {
            rest.strip_prefix(['=', ':']).unwrap_or(rest).trim_start()
        };
        let mut value = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                value.push(unescape(&mut chars));
            } else {
                value.push(c);
            }
        }
        out.insert(key, value);
    }
    out
}

fn unescape(chars: &mut std::str::Chars<'_>) -> char {
    match chars.next() {
        Some('t') => '\t',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('f') => '\u{c}',
        Some('u') => {
            let hex: String = chars.by_ref().take(4).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}')
        }
        Some(other) => other,
        None => '\\',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPARK: &str = r#"#Properties saved on 2024-04-18T22:35:50.847Z
hoodie.table.precombine.field=longField
hoodie.table.partition.fields=byteField,shortField
hoodie.table.type=COPY_ON_WRITE
hoodie.timeline.layout.version=1
hoodie.table.version=6
hoodie.table.recordkey.fields=id,name
hoodie.database.name=default
hoodie.table.name=v6_complexkeygen_hivestyle
hoodie.table.keygenerator.class=org.apache.hudi.keygen.ComplexKeyGenerator
hoodie.datasource.write.hive_style_partitioning=true
hoodie.table.create.schema={"type"\:"record","name"\:"x"}
hoodie.table.checksum=281415413
"#;

    #[test]
    fn parses_spark_properties_and_checks_the_checksum() -> Result<()> {
        let props = TableProperties::parse(SPARK)?;
        assert_eq!(props.table_type, TableType::CopyOnWrite);
        assert_eq!(props.record_key_fields, ["id", "name"]);
        assert_eq!(props.partition_fields, ["byteField", "shortField"]);
        assert_eq!(props.ordering_field.as_deref(), Some("longField"));
        assert!(props.hive_style_partitioning && props.complex_keys());
        assert_eq!(
            props.create_schema.as_deref(),
            Some(r#"{"type":"record","name":"x"}"#)
        );
        // The value Spark wrote for this table.
        assert_eq!(props.checksum(), 281415413);
        Ok(())
    }

    #[test]
    fn written_files_parse_back_and_carry_the_required_keys() -> Result<()> {
        let mut props = TableProperties::new("trips", TableType::CopyOnWrite, vec!["uuid".into()]);
        props.ordering_field = Some("ts".into());
        props.partition_fields = vec!["city".into()];
        props.hive_style_partitioning = true;
        props.buckets = Some(4);
        let text = props.to_file();
        assert!(text.contains("hoodie.timeline.layout.version=1\n"));
        assert!(text.contains("hoodie.table.timeline.timezone=UTC\n"));
        assert!(
            text.ends_with("hoodie.table.checksum=3761586722\n"),
            "{text}"
        );
        let again = TableProperties::parse(&text)?;
        assert_eq!(again.name, "trips");
        assert_eq!(again.buckets, Some(4));
        assert_eq!(again.to_file(), text);
        Ok(())
    }
}
