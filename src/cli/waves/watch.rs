//! The live view of a wave: one progress bar per phase, polled from `GET /v1/waves/{id}`
//! every half second until the wave is completed, halted or aborted, then a summary.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::Value;

use super::super::client::ApiClient;
use super::{exit_for, print};
use crate::resolve::dsn::encode;
use crate::waves::{WaveState, WaveView};

/// The bars: a header line and one bar per phase, added as phases appear.
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    header: ProgressBar,
    phases: BTreeMap<i32, ProgressBar>,
    last_state: Option<WaveState>,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let header = multi.add(ProgressBar::new_spinner());
        Bars {
            multi,
            style,
            header,
            phases: BTreeMap::new(),
            last_state: None,
        }
    }

    /// Moves every bar to what `w` says.
    fn draw(&mut self, w: &WaveView) {
        for p in &w.phases {
            let bar = self.phases.entry(p.phase).or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(p.total as u64));
                b.set_style(self.style.clone());
                b.set_prefix(p.name.clone());
                b
            });
            let c = &p.counts;
            bar.set_position((c.succeeded + c.failed + c.skipped) as u64);
            bar.set_message(format!(
                "ok {} failed {} running {}",
                c.succeeded, c.failed, c.running
            ));
        }
        let eta = w
            .eta_seconds
            .map(|s| format!(", eta ~{s}s"))
            .unwrap_or_default();
        self.header.set_message(format!(
            "wave {} {} → V{}{eta}",
            w.id, w.state, w.target_version
        ));
        if Some(w.state) != self.last_state {
            // Also as plain lines, for logs and terminals without bars.
            if self.multi.is_hidden() {
                eprintln!("wave {}: {}", w.id, w.state);
            }
            self.last_state = Some(w.state);
        }
    }

    fn finish(&self, w: &WaveView) {
        self.header
            .finish_with_message(format!("wave {} {}", w.id, w.state));
        for b in self.phases.values() {
            b.finish();
        }
    }
}

/// Live bars per phase until the wave reaches a final state.
pub(crate) async fn watch_wave(api: &ApiClient, id: &str) -> anyhow::Result<ExitCode> {
    let none: Option<&Value> = None;
    let mut bars = Bars::new();
    loop {
        let w: WaveView = api
            .call(Method::GET, &format!("/v1/waves/{}", encode(id)), none)
            .await?;
        bars.draw(&w);
        if matches!(
            w.state,
            WaveState::Completed | WaveState::Halted | WaveState::Aborted
        ) {
            bars.finish(&w);
            return Ok(summary(&w));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Why the wave ended and how it went; the exit code a script gates on.
fn summary(w: &WaveView) -> ExitCode {
    if let Some(reason) = &w.halt_reason {
        eprintln!("{}: {reason}", w.state);
    }
    for f in &w.failures {
        eprintln!(
            "  {} [{}]: {}",
            f.slug,
            f.kind.as_deref().unwrap_or("?"),
            f.error.as_deref().unwrap_or("")
        );
    }
    if let Some(r) = &w.dry_run_report {
        print::dry_run(r);
        // A script gating a release on the dry run needs a failing exit status.
        return if r.would_fail > 0 {
            ExitCode::FAILURE
        } else {
            exit_for(w.state)
        };
    }
    println!(
        "wave {} {}: {} succeeded, {} failed, {} skipped",
        w.id, w.state, w.counts.succeeded, w.counts.failed, w.counts.skipped
    );
    exit_for(w.state)
}
