//! Test harness shared by the end-to-end tests: where the repo, `../shared` and the
//! interop virtualenv are, running the Python interop scripts (`tests/interop/`),
//! a local S3 server ([`moto::MotoServer`]) and fixture unpacking
//! ([`fixtures::unzip_fixture`]).
//!
//! The virtualenv is made by `scripts/venv` (which `scripts/test` runs); its
//! interpreter and `moto_server` are found through `INLET_PYTHON` and
//! `INLET_MOTO_SERVER`, or else at `<repo>/.venv/bin/`.

pub mod cdc;
pub mod copy_text;
pub mod fixtures;
pub mod http;
pub mod mariadb;
pub mod moto;
pub mod postgres;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const NO_VENV: &str = "run scripts/test (or scripts/venv) to create the interop venv";

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    // The crate's folder when a test runs (cargo sets it), not when it was built: the build
    // cache is shared between clones at other paths. Benchmarks run directly use the latter.
    let tests_crate = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    match tests_crate.parent() {
        Some(root) => root.to_path_buf(),
        None => tests_crate,
    }
}

/// The project's `shared/` folder, beside the repo (`<repo>/../shared`), which
/// holds the fixtures.
pub fn shared_dir() -> PathBuf {
    repo_root().join("..").join("shared")
}

/// A tool of the interop venv: `$env_var` if set, else `<repo>/.venv/bin/<name>`.
fn venv_tool(env_var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = repo_root().join(".venv").join("bin").join(name);
    if path.exists() {
        return path;
    }
    panic!(
        "{env_var} is not set and {} does not exist: {NO_VENV}",
        path.display()
    );
}

/// The interop venv's Python interpreter (`INLET_PYTHON`, else `<repo>/.venv/bin/python`).
///
/// # Panics
/// When neither exists: run `scripts/test` (or `scripts/venv`) first.
pub fn python() -> PathBuf {
    venv_tool("INLET_PYTHON", "python")
}

/// The venv's `moto_server` (`INLET_MOTO_SERVER`, else `<repo>/.venv/bin/moto_server`).
///
/// # Panics
/// When neither exists: run `scripts/test` (or `scripts/venv`) first.
pub fn moto_server() -> PathBuf {
    venv_tool("INLET_MOTO_SERVER", "moto_server")
}

/// Runs `tests/interop/<script> <args..>` with the venv's Python and returns its
/// stdout. A non-zero exit is an error carrying the exit status, stderr and stdout.
pub fn run_python(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let script_path = repo_root().join("tests").join("interop").join(script);
    if !script_path.is_file() {
        bail!("interop script {} does not exist", script_path.display());
    }
    let python = python();
    let output = Command::new(&python)
        .arg(&script_path)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {} {}", python.display(), script_path.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{script} {args:?} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            output.status,
            stderr.trim_end(),
            stdout.trim_end()
        );
    }
    Ok(stdout)
}

/// The `inlet` binary under test: `INLET_BIN`, else `<target>/debug/inlet`. `scripts/test` builds
/// it first (a test cannot: `cargo test` holds the build lock while tests run).
pub fn inlet_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("INLET_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let path = target.join("debug").join("inlet");
    assert!(
        path.exists(),
        "{} does not exist: run `cargo build --bin inlet` first (scripts/test does), or set INLET_BIN",
        path.display()
    );
    path
}

/// `inlet run --config <config>` as a child process, its output appended to `log`.
pub fn spawn_inlet(config: &Path, log: &Path) -> anyhow::Result<std::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(Command::new(inlet_bin())
        .args(["run", "--config"])
        .arg(config)
        .env("INLET_LOG", "warn,inlet_ingest=info")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// Runs a benchmark's child process (its standard error passed through); its standard output,
/// or an error naming `label` when it fails.
pub fn run_child(command: &mut Command, label: &str) -> anyhow::Result<String> {
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("{label}: starting {command:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "{label}: {command:?} failed ({}); its output: {stdout}",
        output.status
    );
    Ok(stdout)
}

/// The capture benchmarks' backlog of `changes` row changes: 60% inserts of keys 1.., then 30%
/// updates and 10% deletes of those keys, `txn_rows` rows per statement. `insert`, `update` and
/// `delete` write the statement for keys `first..=last` in the source's SQL.
pub fn change_statements(
    changes: i64,
    txn_rows: i64,
    insert: impl Fn(i64, i64) -> String,
    update: impl Fn(i64, i64) -> String,
    delete: impl Fn(i64, i64) -> String,
) -> Vec<String> {
    let inserts = changes * 6 / 10;
    let updates = changes * 3 / 10;
    let deletes = changes - inserts - updates;
    let mut statements = Vec::new();
    for done in (0..inserts).step_by(txn_rows as usize) {
        statements.push(insert(done + 1, (done + txn_rows).min(inserts)));
    }
    for done in (0..updates).step_by(txn_rows as usize) {
        let first = done % inserts + 1;
        statements.push(update(first, first + txn_rows.min(updates - done) - 1));
    }
    for done in (0..deletes).step_by(txn_rows as usize) {
        let n = txn_rows.min(deletes - done);
        statements.push(delete(inserts - done - n + 1, inserts - done));
    }
    statements
}

/// Where a benchmark keeps its data: `INLET_BENCH_DIR` (empty or new; kept for a look
/// afterwards), else a temporary directory, removed when the returned guard drops.
pub fn bench_dir() -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match std::env::var_os("INLET_BENCH_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            anyhow::ensure!(
                std::fs::read_dir(&dir)?.next().is_none(),
                "INLET_BENCH_DIR {} is not empty",
                dir.display()
            );
            Ok((None, dir))
        }
        None => {
            let temp = tempfile::tempdir()?;
            let dir = temp.path().to_path_buf();
            Ok((Some(temp), dir))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root().join("tests").join("interop").is_dir());
    }

    #[test]
    fn run_python_returns_stdout_and_reports_failures() {
        let out = run_python(
            "check_base_files.py",
            &[repo_root().join("src").to_str().expect("utf-8 path")],
        )
        .expect("check_base_files.py on a folder without parquet files");
        let json: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(json["files"], serde_json::json!({}));

        let err = run_python("check_base_files.py", &["/nonexistent/inlet-table"])
            .expect_err("must fail");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("is not a directory"),
            "stderr missing from error: {msg}"
        );

        let err = run_python("no_such_script.py", &[]).expect_err("must fail");
        assert!(format!("{err:#}").contains("does not exist"));
    }
}
