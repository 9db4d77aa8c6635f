//! Our reader reads the version-6 copy-on-write tables Spark wrote (see ../shared/fixtures).

use std::io::Read;
use std::path::{Path, PathBuf};

use inlet_table::read::Query;
use inlet_table::{Result, Table, TableConfig};

use crate::util::column;

fn fixture(name: &str, dest: &Path) -> PathBuf {
    // The crate's folder when the test runs (cargo sets it), not when it was built: the build
    // cache is shared between clones at other paths.
    let crate_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let zip_path = Path::new(&crate_dir)
        .join("../../shared/fixtures/hudi-spark-tables/sample_table/cow")
        .join(name);
    let file =
        std::fs::File::open(&zip_path).unwrap_or_else(|e| panic!("{}: {e}", zip_path.display()));
    let mut archive = zip::ZipArchive::new(file).expect("a zip");
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("entry");
        let Some(rel) = entry.enclosed_name() else {
            continue;
        };
        if rel.starts_with("__MACOSX") || rel.ends_with(".DS_Store") || entry.is_dir() {
            continue;
        }
        let target = dest.join(rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        std::fs::write(target, bytes).expect("write");
    }
    dest.join(name.trim_end_matches(".zip"))
}

async fn open(name: &str, dir: &tempfile::TempDir) -> Result<Table> {
    let path = fixture(name, dir.path());
    Table::open(&path.display().to_string(), TableConfig::default()).await
}

#[tokio::test]
async fn reads_a_nonpartitioned_table_with_every_type() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = open("v6_nonpartitioned.zip", &dir).await?;
    let names = column(&table, &Query::Snapshot, "name").await?;
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names.get("1").map(String::as_str), Some("Alice"));
    // The first commit's state: the second commit updated one row and inserted another.
    let timeline = table.timeline().await?;
    let first = timeline
        .completed_writes()
        .next()
        .expect("a commit")
        .time
        .clone();
    let old = column(&table, &Query::AsOf(first.clone()), "name").await?;
    assert_eq!(old.len(), 3, "{old:?}");
    let changed = column(
        &table,
        &Query::Incremental {
            from: first,
            to: None,
        },
        "name",
    )
    .await?;
    assert_eq!(changed.len(), 2, "{changed:?}");
    Ok(())
}

#[tokio::test]
async fn reads_every_v6_cow_fixture() -> Result<()> {
    for (name, rows) in [
        ("v6_complexkeygen_hivestyle.zip", 4),
        ("v6_simplekeygen_nonhivestyle.zip", 4),
        ("v6_simplekeygen_hivestyle_no_metafields.zip", 4),
        ("v6_timebasedkeygen_nonhivestyle.zip", 4),
        ("v6_simplekeygen_nonhivestyle_overwritetable.zip", 1),
        ("v6_empty.zip", 0),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let table = open(name, &dir).await?;
        let result = table.read(&Query::Snapshot).await?;
        assert_eq!(result.num_rows(), rows, "{name}");
    }
    Ok(())
}
