//! `inlet`: change data capture into Apache Hudi tables. This binary is the command line; the work
//! is done by the `inlet-table`, `inlet-query` and `inlet-ingest` crates.

mod admin;
mod cli;
mod service;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INLET_LOG").unwrap_or_else(|_| {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    // The bars show the copy's progress on a terminal.
                    "warn,inlet=info,inlet_ingest=info,inlet_ingest::postgres::snapshot=warn".into()
                } else {
                    "warn,inlet=info,inlet_ingest=info".into()
                }
            }),
        )
        // Log lines go above the snapshot progress bars while those are drawn.
        .with_writer(service::progress::LogWriter::default)
        // Colours only for a person at a terminal, not in log files and journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: many errors (object_store's, ours
/// wrapping them) already print their cause, which the chain would then repeat.
fn message(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(text.as_str()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::message;

    #[derive(Debug)]
    struct Wrapping(&'static str, Option<Box<Wrapping>>);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match &self.1 {
                Some(inner) => write!(f, "{}: {inner}", self.0),
                None => f.write_str(self.0),
            }
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn causes_that_the_message_already_says_are_not_repeated() {
        // Like object_store under our storage error: every layer prints its source.
        let error = Wrapping(
            "storage error at t/.hoodie",
            Some(Box::new(Wrapping(
                "Generic S3 error",
                Some(Box::new(Wrapping("connection refused", None))),
            ))),
        );
        let error = anyhow::Error::new(error).context("reading the timeline");
        assert_eq!(
            message(&error),
            "reading the timeline: storage error at t/.hoodie: Generic S3 error: connection refused"
        );
        let plain = anyhow::anyhow!("no table").context("opening");
        assert_eq!(message(&plain), "opening: no table");
    }
}
