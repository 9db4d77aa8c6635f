//! Running the `inlet` binary as a user does, for the command-line tests.

use std::process::{Command, Output};

use inlet_tests::harness::inlet_bin;

pub fn inlet(args: &[&str]) -> Output {
    inlet_with_env(args, &[])
}

/// Runs inlet with extra environment variables (e.g. a failpoint).
pub fn inlet_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(inlet_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("inlet runs")
}

/// Runs inlet, which must succeed; its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = inlet(args);
    assert!(
        out.status.success(),
        "inlet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs inlet, which must fail; its standard error.
pub fn fails(args: &[&str]) -> String {
    let out = inlet(args);
    assert!(!out.status.success(), "inlet {args:?} should fail");
    String::from_utf8(out.stderr).expect("utf-8")
}

/// hudi-rs reads what the CLI wrote exactly as our reader does.
pub fn assert_hudi_rs_agrees(uri: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(async {
            let table = inlet_table::Table::open(uri, inlet_table::TableConfig::default()).await?;
            super::compare_with_hudi_rs(&table, uri, &[]).await
        })
        .expect("hudi-rs agrees");
}
