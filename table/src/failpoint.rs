//! Crash points for the crash tests, compiled in only with the cargo feature `failpoints`.
//! `failpoint!("name")` aborts the process (no unwinding, no destructors: as close to a power
//! cut as a test can get) when the environment variable `INLET_FAILPOINT` equals `name`;
//! `fail_with_error!("name")` makes the function return a storage-like error when it equals
//! `error:name` (a storage failure at a chosen step, the process going on); `hang_point!("name")`
//! makes an async function wait forever when it equals `hang:name` (a call that never answers).

/// The environment variable naming the failpoint to crash at.
pub const FAILPOINT_ENV: &str = "INLET_FAILPOINT";

/// Aborts the process if `name` is the failpoint the environment selects.
pub fn hit(name: &str) {
    if std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == name) {
        eprintln!("inlet: failpoint {name} reached, aborting");
        std::process::abort();
    }
}

/// A crash point; expands to nothing without the `failpoints` feature of the crate using it.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($name);
    };
}

/// Whether the environment selects `name` to hang (`hang:name`).
pub fn hang_at(name: &str) -> bool {
    std::env::var(FAILPOINT_ENV).is_ok_and(|v| v.strip_prefix("hang:") == Some(name))
}

/// A point where an async function waits forever when the environment says `hang:name` (a
/// storage call that never answers); expands to nothing without the `failpoints` feature.
#[macro_export]
macro_rules! hang_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        if $crate::failpoint::hang_at($name) {
            eprintln!("inlet: failpoint hang:{} reached, waiting forever", $name);
            std::future::pending::<()>().await;
        }
    };
}

/// Whether the environment selects `name` to fail with an error.
pub fn error_at(name: &str) -> bool {
    std::env::var(FAILPOINT_ENV).is_ok_and(|v| v.strip_prefix("error:") == Some(name))
}

/// A storage failure at a chosen step; expands to nothing without the `failpoints` feature.
#[macro_export]
macro_rules! fail_with_error {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        if $crate::failpoint::error_at($name) {
            return Err($crate::Error::Io {
                path: $name.to_string(),
                source: std::io::Error::other(concat!("injected failure at ", $name)),
            });
        }
    };
}
