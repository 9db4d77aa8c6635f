//! Snapshot progress on a terminal: a bar per table being copied (`indicatif`), with log lines
//! printed above the bars. Without a terminal nothing is drawn and the log says it all.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::admin::PipelineView;

/// The bars, when stderr is a terminal.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// The bars of this process (`None` when stderr is not a terminal).
fn bars() -> Option<&'static MultiProgress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(BARS.get_or_init(MultiProgress::new))
}

/// Draws the copy of every table of `views` until the task is aborted.
pub fn spawn(views: Vec<Arc<PipelineView>>) -> Option<tokio::task::JoinHandle<()>> {
    let multi = bars()?;
    let style = ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    Some(tokio::spawn(async move {
        let mut shown: BTreeMap<(String, String), (ProgressBar, Instant, bool)> = BTreeMap::new();
        loop {
            for view in &views {
                for (table, status) in view.status.get().tables {
                    let Some(copy) = status.copy else { continue };
                    if copy.rows == 0 && copy.done {
                        continue;
                    }
                    let key = (view.name.clone(), table.clone());
                    let (bar, started, finished) = shown.entry(key).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                        bar.enable_steady_tick(Duration::from_millis(120));
                        (bar, Instant::now(), false)
                    });
                    if *finished {
                        continue;
                    }
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    if copy.done {
                        bar.finish_with_message(format!(
                            "{table}: {} rows copied in {secs:.1} s",
                            copy.rows
                        ));
                        *finished = true;
                    } else if secs >= 1.0 {
                        bar.set_message(format!(
                            "{table}: copying, {} rows ({:.0} rows/s)",
                            copy.rows,
                            copy.rows as f64 / secs
                        ));
                    } else {
                        bar.set_message(format!("{table}: copying, {} rows", copy.rows));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }))
}

/// The log's writer: stderr, or above the bars while they are drawn.
#[derive(Debug, Default)]
pub struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.0);
        match BARS.get() {
            Some(multi) => {
                let text = String::from_utf8_lossy(&bytes);
                multi.println(text.trim_end_matches('\n'))
            }
            None => std::io::stderr().write_all(&bytes),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
