//! Progress of pulls and pushes: one indicatif bar per layer on a terminal, one line per
//! layer otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use hull_image::registry::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    tty: bool,
    quiet: bool,
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && !quiet;
        let target = if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
            tty,
            quiet,
        }
    }
}

impl Progress for Bars {
    fn start(&self, digest: &str, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("Copying blob {}", short(digest)));
        if let Ok(mut m) = self.bars.lock() {
            m.insert(digest.to_string(), bar);
        }
    }

    fn advance(&self, digest: &str, bytes: u64) {
        if let Some(b) = self.bars.lock().ok().and_then(|m| m.get(digest).cloned()) {
            b.inc(bytes);
        }
    }

    fn done(&self, digest: &str, skipped: bool) {
        let bar = self.bars.lock().ok().and_then(|m| m.get(digest).cloned());
        let msg = if skipped { "already exists" } else { "done" };
        match bar {
            Some(b) if self.tty => b.finish_with_message(msg),
            _ if !self.quiet => eprintln!("Copying blob {} {msg}", short(digest)),
            _ => {}
        }
    }
}
