use super::*;

const FULL: &str = r#"
[source]
kind = "postgres"
connection = "host=127.0.0.1 user=inlet password=hunter2 dbname=shop"
slot = "inlet_slot"
publication = "inlet_pub"
snapshot = "never"
include = ["public.*", "sales.order?"]
exclude = ["public.audit_*"]

[sink]
base_uri = "/data/lake/"
table_type = "mor"
buckets = 8

[batch]
max_rows = 1000
max_delay = "250ms"

[tables."public.orders"]
table_type = "cow"
buckets = 2
partition_by = ["region"]

[tables."public.items"]
uri = "s3://bucket/items"
"#;

/// The one pipeline of a single-pipeline file.
fn one(text: &str) -> PipelineConfig {
    let config = Config::parse(text, "inlet.toml").unwrap();
    assert_eq!(
        config.pipelines.keys().collect::<Vec<_>>(),
        vec![DEFAULT_PIPELINE]
    );
    config.single().unwrap().clone()
}

fn postgres(c: &PipelineConfig) -> &PostgresConfig {
    match &c.source {
        SourceConfig::Postgres(p) => p,
        other => panic!("not postgres: {other:?}"),
    }
}

#[test]
fn parses_a_full_file() {
    let c = one(FULL);
    assert_eq!(c.source.kind(), SourceKind::Postgres);
    assert_eq!(postgres(&c).snapshot, SnapshotMode::Never);
    assert_eq!(c.batch.max_rows, 1000);
    assert_eq!(c.batch.max_bytes, DEFAULT_MAX_BYTES);
    assert_eq!(c.batch.max_delay, Duration::from_millis(250));
    assert_eq!(c.table_uri("public", "orders"), "/data/lake/public/orders");
    assert_eq!(c.table_uri("public", "items"), "s3://bucket/items");
    assert_eq!(c.table("public", "orders").buckets, Some(2));
    assert_eq!(c.table("public", "x").buckets, None);
    assert!(c.source.selects("public.orders"));
    assert!(!c.source.selects("public.audit_log"));
    assert!(c.source.selects("sales.order1"));
    assert!(!c.source.selects("sales.order12"));
    assert!(!c.source.selects("other.t"));
}

#[test]
fn secrets_are_redacted() {
    let c = Config::parse(FULL, "inlet.toml").unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"));
}

#[test]
fn password_from_the_environment() {
    let text = FULL.replace(
        "slot = \"inlet_slot\"",
        "slot = \"inlet_slot\"\npassword_env = \"INLET_CONFIG_TEST_NO_SUCH_VAR\"",
    );
    let c = one(&text);
    let err = postgres(&c).resolved_password().unwrap_err().to_string();
    assert_eq!(
        err,
        "source.password_env: environment variable INLET_CONFIG_TEST_NO_SUCH_VAR is not set"
    );
    let path_var = one(&FULL.replace(
        "slot = \"inlet_slot\"",
        "slot = \"inlet_slot\"\npassword_env = \"PATH\"",
    ));
    assert!(postgres(&path_var).resolved_password().unwrap().is_some());
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            FULL.replace("slot = \"inlet_slot\"", "slot = \"Bad-Slot\""),
            "source.slot:",
        ),
        (FULL.replace("buckets = 8", "buckets = 0"), "sink.buckets:"),
        (
            FULL.replace("max_rows = 1000", "max_rows = 0"),
            "batch.max_rows:",
        ),
        (FULL.replace("\"250ms\"", "\"250\""), "max_delay"),
        (
            FULL.replace("\"sales.order?\"", "\"sales\""),
            "source.include[1]:",
        ),
        (
            FULL.replace("buckets = 2", "buckets = 0"),
            "tables.\"public.orders\".buckets:",
        ),
        (
            FULL.replace("kind = \"postgres\"", "kind = \"oracle\""),
            "kind",
        ),
        (
            FULL.replace("snapshot = \"never\"", "snapshot = \"always\""),
            "unknown variant `always`, expected `initial` or `never`",
        ),
        (FULL.replace("[batch]", "[batch]\nmax_rowz = 3"), "max_rowz"),
        (
            FULL.replace(
                "[batch]",
                "[sink.catalog]\nkind = \"glue\"\ndatabase = \" \"\n[batch]",
            ),
            "sink.catalog.database:",
        ),
        (
            FULL.replace(
                "[batch]",
                "[sink.catalog]\nkind = \"hive\"\ndatabase = \"d\"\n[batch]",
            ),
            "unknown variant `hive`, expected `glue`",
        ),
    ];
    for (text, expected) in cases {
        let err = Config::parse(&text, "inlet.toml").unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
}

#[test]
fn a_glue_catalog_for_the_sink() {
    let c = one(&FULL.replace(
        "[batch]",
        "[sink.catalog]\nkind = \"glue\"\ndatabase = \"lake\"\nregion = \"eu-west-1\"\n[batch]",
    ));
    let catalog = c.sink.catalog.expect("catalog");
    assert_eq!(catalog.kind, CatalogKind::Glue);
    assert_eq!(
        (
            catalog.database.as_str(),
            catalog.region.as_deref(),
            catalog.endpoint
        ),
        ("lake", Some("eu-west-1"), None)
    );
    assert!(one(FULL).sink.catalog.is_none());
}

#[test]
fn minimal_file_takes_defaults() {
    let config = Config::parse(
        "[source]\nkind = \"postgres\"\nconnection = \"host=x\"\n[sink]\nbase_uri = \"/lake\"\n",
        "x",
    )
    .unwrap();
    assert_eq!(config.services.compaction, DEFAULT_COMPACTION);
    assert_eq!(config.services.clean, DEFAULT_CLEAN);
    assert_eq!(
        config.admin.address().unwrap(),
        Some("127.0.0.1:8080".parse().unwrap())
    );
    let c = config.single().unwrap();
    assert_eq!(postgres(c).slot, DEFAULT_SLOT);
    assert_eq!(postgres(c).snapshot, SnapshotMode::Initial);
    assert_eq!(postgres(c).include, vec!["public.*".to_string()]);
    assert_eq!(c.sink.buckets, DEFAULT_BUCKETS);
    assert_eq!(c.batch.max_delay, DEFAULT_MAX_DELAY);
}

#[test]
fn globs() {
    assert!(glob_match("*", ""));
    assert!(glob_match("a*c", "abbbc"));
    assert!(glob_match("a?c", "abc"));
    assert!(!glob_match("a?c", "ac"));
    assert!(glob_match("*.*", "x.y"));
    assert!(!glob_match("a*", "ba"));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("3d").is_err());
}

#[test]
fn the_example_configuration_is_valid() {
    let text = include_str!("../../examples/inlet.toml");
    let c = one(text);
    assert_eq!(c.table("public", "orders").buckets, Some(16));
    assert!(c.table("public", "orders").delta_mirror);
    assert!(!c.table("public", "customers").delta_mirror);
    assert!(c.table("public", "orders").cdc);
    assert!(!c.table("public", "customers").cdc);
}

#[test]
fn the_example_mysql_configuration_is_valid() {
    let c = one(include_str!("../../examples/mysql.toml"));
    let SourceConfig::Mysql(my) = &c.source else {
        panic!("not a mysql source: {:?}", c.source)
    };
    assert_eq!((my.snapshot_parallelism, my.chunk_size), (2, 10_000));
    assert_eq!(my.on_gap, OnGap::Fail);
    assert_eq!(my.snapshot_locking, crate::SnapshotLocking::None);
    assert!(c.source.selects("shop.orders") && !c.source.selects("shop.tmp_x"));
    assert_eq!(
        c.table_uri("shop", "orders"),
        "/var/lib/inlet/lake/shop/orders"
    );
    let zero =
        include_str!("../../examples/mysql.toml").replace("chunk_size = 10000", "chunk_size = 0");
    let err = Config::parse(&zero, "inlet.toml").unwrap_err().to_string();
    assert!(err.contains("source.chunk_size"), "{err}");
    let locking = |value: &str| {
        let text = include_str!("../../examples/mysql.toml").replace(
            "# snapshot_locking = \"minimal\"",
            &format!("snapshot_locking = \"{value}\""),
        );
        Config::parse(&text, "inlet.toml").map(|c| match &c.single().unwrap().source {
            SourceConfig::Mysql(my) => my.snapshot_locking,
            other => panic!("not a mysql source: {other:?}"),
        })
    };
    assert_eq!(locking("minimal").unwrap(), crate::SnapshotLocking::Minimal);
    let err = locking("extended").unwrap_err().to_string();
    assert!(
        err.contains("snapshot_locking") || err.contains("minimal"),
        "{err}"
    );
}

#[test]
fn source_names_stay_one_directory_inside_the_base() {
    let text = "[source]\nkind = \"postgres\"\nconnection = \"host=x\"\ninclude = [\"public.*\"]\n\n\
                [sink]\nbase_uri = \"/lake/\"\n";
    let c = one(text);
    assert_eq!(c.table_uri("public", "orders"), "/lake/public/orders");
    assert_eq!(c.table_uri("public", "Köln"), "/lake/public/Köln");
    assert_eq!(
        c.table_uri("public", "../../../x"),
        "/lake/public/%2E.%2F..%2F..%2Fx"
    );
    assert_eq!(c.table_uri("a/b", "c"), "/lake/a%2Fb/c");
    assert_eq!(
        c.table_uri("public", "zz/../customers"),
        "/lake/public/zz%2F..%2Fcustomers"
    );
    assert_eq!(c.table_uri("public", ".."), "/lake/public/%2E.");
    assert_eq!(
        c.table_uri("public", "100%\\\tx"),
        "/lake/public/100%25%5C%09x"
    );
    // Every name stays one directory directly under <base>/<schema>.
    for name in ["..", ".", "../..", "a/../../b", ".hoodie", "%2F"] {
        let uri = c.table_uri("s", name);
        let rest = uri.strip_prefix("/lake/s/").unwrap();
        assert!(
            !rest.contains('/') && !rest.starts_with('.'),
            "{name:?} → {uri}"
        );
    }
}

const TWO: &str = r#"
[services]
compaction = "log-ratio:0.5"
archive_min_commits = 5
archive_max_commits = 8

[admin]
listen = "0.0.0.0:9000"
token_env = "INLET_ADMIN_TOKEN"

[pipelines.shop.source]
kind = "postgres"
connection = "host=a dbname=shop"
slot = "shop"

[pipelines.shop.sink]
base_uri = "/lake/shop"

[pipelines.shop.tables."public.orders"]
compaction = "off"

[pipelines.gen.source]
kind = "datagen"
tables = ["demo.orders", "demo.customers"]
rate = 50
mix = { insert = 1, update = 1, delete = 0 }

[pipelines.gen.sink]
base_uri = "/lake/gen"
table_type = "mor"
"#;

#[test]
fn several_pipelines() {
    let c = Config::parse(TWO, "inlet.toml").unwrap();
    assert_eq!(c.pipelines.keys().collect::<Vec<_>>(), vec!["gen", "shop"]);
    assert_eq!(c.services.compaction, "log-ratio:0.5");
    assert_eq!(c.services.clean, DEFAULT_CLEAN);
    let shop = &c.pipelines["shop"];
    assert_eq!(
        shop.table("public", "orders").compaction.as_deref(),
        Some("off")
    );
    assert_eq!(
        shop.table_uri("public", "orders"),
        "/lake/shop/public/orders"
    );
    let SourceConfig::Datagen(gen_source) = &c.pipelines["gen"].source else {
        panic!("datagen expected");
    };
    assert_eq!(gen_source.rate, 50);
    assert_eq!(gen_source.key_space, 100_000);
    assert_eq!(
        gen_source.mix,
        Mix {
            insert: 1,
            update: 1,
            delete: 0
        }
    );
    assert!(c.pipelines["gen"].source.selects("demo.customers"));
    assert!(!c.pipelines["gen"].source.selects("demo.other"));
}

#[test]
fn pipeline_errors_name_the_pipeline() {
    let cases = [
        (
            TWO.replace("slot = \"shop\"", "slot = \"Shop\""),
            "pipelines.shop.source.slot:",
        ),
        (
            TWO.replace("rate = 50", "rate = 50\nkey_space = 0"),
            "pipelines.gen.source.key_space:",
        ),
        (
            TWO.replace("tables = [\"demo.orders\"", "tables = [\"orders\""),
            "pipelines.gen.source.tables[0]:",
        ),
        (
            TWO.replace("token_env = \"INLET_ADMIN_TOKEN\"", ""),
            "admin.listen:",
        ),
        (
            TWO.replace("listen = \"0.0.0.0:9000\"", "listen = \"localhost\""),
            "admin.listen:",
        ),
        (
            TWO.replace("archive_min_commits = 5", "archive_min_commits = 9"),
            "services.archive_min_commits:",
        ),
        (
            format!("[source]\nkind = \"datagen\"\ntables = [\"a.b\"]\n{TWO}"),
            "pipelines:",
        ),
        (
            TWO.replace("[pipelines.gen.source]", "[pipelines.\"a b\".source]")
                .replace("[pipelines.gen.sink]", "[pipelines.\"a b\".sink]"),
            "pipelines.a b:",
        ),
        (
            TWO.replace("kind = \"datagen\"", "kind = \"mysqlx\""),
            "mysqlx",
        ),
        (
            TWO.replace("seed", "sead")
                .replace("rate = 50", "rate = 50\nsead = 1"),
            "sead",
        ),
        (
            TWO.to_string()
                + "[pipelines.shop2.source]\nkind = \"postgres\"\nconnection = \"host=a dbname=shop\"\nslot = \"shop\"\n[pipelines.shop2.sink]\nbase_uri = \"/x\"\n",
            "same database through slot",
        ),
        (
            TWO.to_string()
                + "[pipelines.gen2.source]\nkind = \"datagen\"\ntables = [\"a.b\"]\n[pipelines.gen2.sink]\nbase_uri = \"/lake/gen/\"\n",
            "pipelines.gen2.sink.base_uri: pipelines gen and gen2 write under the same base URI",
        ),
    ];
    for (text, expected) in cases {
        let err = Config::parse(&text, "inlet.toml").unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
}

#[test]
fn a_loopback_admin_needs_no_token_and_off_serves_nothing() {
    let text = TWO
        .replace("0.0.0.0:9000", "127.0.0.1:9000")
        .replace("token_env = \"INLET_ADMIN_TOKEN\"", "");
    assert!(Config::parse(&text, "x").is_ok());
    let text = TWO
        .replace("0.0.0.0:9000", "off")
        .replace("token_env = \"INLET_ADMIN_TOKEN\"", "");
    assert_eq!(
        Config::parse(&text, "x").unwrap().admin.address().unwrap(),
        None
    );
}

#[test]
fn the_kubernetes_configuration_is_valid() {
    // The `inlet.toml` block of the ConfigMap, without its indentation.
    let yaml = include_str!("../../deploy/kubernetes/configmap.yaml");
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim() != "inlet.toml: |")
        .skip(1);
    let mut text = String::new();
    for line in lines.by_ref() {
        if !line.is_empty() && !line.starts_with("    ") {
            break;
        }
        text.push_str(line.strip_prefix("    ").unwrap_or(line));
        text.push('\n');
    }
    let c = Config::parse(&text, "deploy/kubernetes/configmap.yaml").unwrap();
    assert!(!c.pipelines.is_empty());
    assert_eq!(c.admin.token_env.as_deref(), Some("INLET_ADMIN_TOKEN"));
    assert_eq!(c.admin.address().unwrap().map(|a| a.port()), Some(8080));
}

#[test]
fn a_mysql_source() {
    let text = "[source]\nkind = \"mysql\"\nconnection = \"mysql://inlet@db:3306\"\n\
                password_env = \"X\"\ninclude = [\"shop.*\"]\n[sink]\nbase_uri = \"/lake\"\n";
    let c = one(text);
    let SourceConfig::Mysql(m) = &c.source else {
        panic!("mysql expected");
    };
    assert_eq!(c.source.kind(), SourceKind::Mysql);
    assert!(c.source.selects("shop.orders") && !c.source.selects("crm.orders"));
    // A stable replica id per pipeline, away from small hand-given ones.
    assert_eq!(m.server_id_for("default"), m.server_id_for("default"));
    assert_ne!(m.server_id_for("default"), m.server_id_for("other"));
    assert!(m.server_id_for("default") >= 1_000_000);
    for (bad, field) in [
        (
            text.replace("mysql://inlet@db:3306", "host=db"),
            "source.connection:",
        ),
        (
            text.replace("include = [\"shop.*\"]", "include = [\"shop\"]"),
            "source.include[0]:",
        ),
        (
            text.replace("password_env = \"X\"", "server_id = 0"),
            "source.server_id:",
        ),
    ] {
        let err = Config::parse(&bad, "x").unwrap_err().to_string();
        assert!(err.contains(field), "{field} not in {err}");
    }
}
