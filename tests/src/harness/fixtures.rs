//! Unpacking the zipped Hudi tables of `<shared>/fixtures/`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

/// Where Spark-written tables live inside `<shared>/fixtures/`; `rel` paths that
/// are not found directly under `fixtures/` are looked up here too, so both
/// `hudi-spark-tables/sample_table/cow/v6_empty.zip` and
/// `sample_table/cow/v6_empty.zip` work.
const SPARK_TABLES: &str = "hudi-spark-tables";

/// The zip `<shared>/fixtures/<rel>` (or `<shared>/fixtures/hudi-spark-tables/<rel>`).
pub fn fixture_path(rel: &str) -> anyhow::Result<PathBuf> {
    let fixtures = super::shared_dir().join("fixtures");
    let candidates = [fixtures.join(rel), fixtures.join(SPARK_TABLES).join(rel)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| format!("fixture {rel} not found (looked at {candidates:?})"))
}

/// Extracts the zipped fixture `rel` (see [`fixture_path`]) into `dest`, skipping
/// macOS litter (`__MACOSX/`, `.DS_Store`), and returns the path of the single
/// top-level folder it holds (the table).
pub fn unzip_fixture(rel: &str, dest: &Path) -> anyhow::Result<PathBuf> {
    let zip_path = fixture_path(rel)?;
    let file = File::open(&zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("reading zip {}", zip_path.display()))?;
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;

    let mut top_level = BTreeSet::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(name) = entry.enclosed_name() else {
            bail!(
                "{}: unsafe entry name {:?}",
                zip_path.display(),
                entry.name()
            );
        };
        if is_litter(&name) {
            continue;
        }
        if let Some(Component::Normal(first)) = name.components().next() {
            top_level.insert(first.to_owned());
        }
        let out = dest.join(&name);
        if entry.is_dir() {
            fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut writer =
            File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        io::copy(&mut entry, &mut writer).with_context(|| {
            format!("extracting {} from {}", name.display(), zip_path.display())
        })?;
    }

    let mut roots = top_level.into_iter();
    match (roots.next(), roots.next()) {
        (Some(root), None) if dest.join(&root).is_dir() => Ok(dest.join(root)),
        (None, _) => bail!("{} holds no files", zip_path.display()),
        _ => bail!(
            "{} does not hold exactly one top-level folder",
            zip_path.display()
        ),
    }
}

fn is_litter(name: &Path) -> bool {
    name.components().any(|c| match c {
        Component::Normal(part) => part == "__MACOSX" || part == ".DS_Store",
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unzips_a_spark_table() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let table =
            unzip_fixture("sample_table/cow/v6_nonpartitioned.zip", tmp.path()).expect("unzip");
        assert_eq!(table, tmp.path().join("v6_nonpartitioned"));
        assert!(table.join(".hoodie").join("hoodie.properties").is_file());
        assert!(!tmp.path().join("__MACOSX").exists());
        let parquet_files = fs::read_dir(&table)
            .expect("read_dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            })
            .count();
        assert!(parquet_files > 0, "no base files in {}", table.display());
    }

    #[test]
    fn full_fixture_path_works_too() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let table = unzip_fixture(
            "hudi-spark-tables/sample_table/cow/v6_empty.zip",
            tmp.path(),
        )
        .expect("unzip");
        assert!(table.join(".hoodie").join("hoodie.properties").is_file());
    }

    #[test]
    fn missing_fixture_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(unzip_fixture("no/such/table.zip", tmp.path()).is_err());
    }

    #[test]
    fn interop_scripts_read_a_spark_table() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let table =
            unzip_fixture("sample_table/cow/v6_nonpartitioned.zip", tmp.path()).expect("unzip");
        let table = table.to_str().expect("utf-8 path");

        let out = tmp.path().join("snapshot.parquet");
        let stdout = super::super::run_python(
            "hudi_read.py",
            &[table, "--out", out.to_str().expect("utf-8")],
        )
        .expect("hudi_read.py");
        let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
        assert_eq!(json["rows"], 4);
        assert!(out.is_file());

        let stdout =
            super::super::run_python("check_base_files.py", &[table]).expect("check_base_files.py");
        let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
        let files = json["files"].as_object().expect("files object");
        assert_eq!(files.len(), 2, "{json}");
    }
}
