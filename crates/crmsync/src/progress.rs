//! Progress bars for long work: one bar per sync, drawn on stderr only when it is a terminal.

use crmsync_engine::{Progress, SyncReport};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;

/// indicatif bars fed by the engine's progress events.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:40.cyan/blue}] {pos:>6}/{len:<6} {per_sec:>10} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
    }
}

impl Progress for Bars {
    fn planned(&self, sync: &str, to_send: u64) {
        let bar = self.multi.add(ProgressBar::new(to_send));
        bar.set_style(Self::style());
        bar.set_prefix(sync.to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(sync.to_string(), bar);
        }
    }

    fn advanced(&self, sync: &str, n: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(sync).cloned()) {
            bar.inc(n);
        }
    }

    fn finished(&self, sync: &str, report: &SyncReport) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(sync).cloned()) {
            bar.finish_with_message(format!(
                "{} created, {} updated, {} unchanged",
                report.created, report.updated, report.unchanged
            ));
        }
    }
}
