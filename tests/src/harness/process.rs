//! What the benchmark binaries measure and log about their own process.

/// Logs `INLET_LOG` (default `warn`) to stderr, if no logger is set yet: benchmarks print their
/// tables on stdout.
pub fn log_to_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INLET_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// This process's resident memory from /proc/self/status, in KiB (0 where unreadable).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// VmRSS: now.
    pub current_kib: u64,
    /// VmHWM: the peak since the process started, or since [`Rss::reset_peak`].
    pub peak_kib: u64,
}

impl Rss {
    pub fn now() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Rss {
            current_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        }
    }

    /// Sets the peak back to the current RSS by writing "5" to /proc/self/clear_refs (Linux
    /// >= 4.0). False if the kernel refused.
    pub fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }
}
