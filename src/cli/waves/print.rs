//! How `drover waves show|start|pause|…` print a wave for people: its state and counts,
//! phases, failures, the dry-run report, the canary analysis and the timeline.

use serde_json::Value;

use super::super::output::table;
use super::super::Output;
use crate::waves::timeline::Timeline;
use crate::waves::WaveView;

/// The lint findings the wave's creator acknowledged, and its warnings.
fn lint(lint: &Value) {
    for (what, key) in [("acknowledged", "acknowledged"), ("warning", "warnings")] {
        for f in lint[key].as_array().into_iter().flatten() {
            println!(
                "lint     {what} {} at {}:{}",
                f["rule"].as_str().unwrap_or("?"),
                f["file"].as_str().unwrap_or("?"),
                f["line"]
            );
        }
    }
}

/// The wave's timeline, one line an event: time, type, actor and what the payload says.
pub(super) fn timeline(timeline: &Timeline) {
    if timeline.items.is_empty() {
        return;
    }
    println!("timeline");
    for e in &timeline.items {
        let detail: Vec<String> = e
            .payload
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        println!(
            "  {}  {:<15} {:<20} {}",
            e.created_at.format("%Y-%m-%d %H:%M:%S"),
            e.event_type,
            e.actor,
            detail.join(" ")
        );
    }
}

/// The whole wave as JSON, or for people: state, counts, then [`targets`] and the reports.
pub(super) fn wave(output: Output, w: &WaveView) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(w)?);
        return Ok(());
    }
    println!("wave     {}", w.id);
    println!(
        "state    {}{}",
        w.state,
        w.halt_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    println!(
        "target   V{}{}",
        w.target_version,
        if w.dry_run { " (dry run)" } else { "" }
    );
    if let Some(src) = w.exclude_failed_of {
        println!("excludes the tenants dry run {src} found failing");
    }
    if let (Some(by), Some(at)) = (&w.promoted_by, w.promoted_at) {
        println!("promoted by {by} at {}", at.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    lint(&w.plan["lint"]);
    let c = &w.counts;
    println!(
        "tenants  {} total: {} succeeded, {} failed, {} running, {} pending, {} skipped",
        c.total(),
        c.succeeded,
        c.failed,
        c.running,
        c.pending,
        c.skipped
    );
    if let Some(eta) = w.eta_seconds {
        println!("eta      ~{eta} s");
    }
    targets(w);
    if let Some(r) = &w.dry_run_report {
        dry_run(r);
    }
    if let Some(a) = &w.analysis {
        analysis(a);
    }
    Ok(())
}

/// The tables of the wave's tenants: per phase, the failed ones, the skipped ones.
fn targets(w: &WaveView) {
    let rows: Vec<Vec<String>> = w
        .phases
        .iter()
        .map(|p| {
            let c = &p.counts;
            vec![
                p.name.clone(),
                p.total.to_string(),
                c.succeeded.to_string(),
                c.failed.to_string(),
                c.running.to_string(),
                c.pending.to_string(),
                c.skipped.to_string(),
            ]
        })
        .collect();
    println!();
    table(
        &[
            "PHASE", "TOTAL", "OK", "FAILED", "RUNNING", "PENDING", "SKIPPED",
        ],
        &rows,
    );
    if !w.failures.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = w
            .failures
            .iter()
            .map(|f| {
                vec![
                    f.slug.clone(),
                    f.kind.clone().unwrap_or_default(),
                    f.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&["FAILED TENANT", "KIND", "ERROR"], &rows);
    }
    if !w.skipped.is_empty() && w.dry_run_report.is_none() {
        println!();
        let rows: Vec<Vec<String>> = w
            .skipped
            .iter()
            .map(|f| vec![f.slug.clone(), f.error.clone().unwrap_or_default()])
            .collect();
        table(&["SKIPPED TENANT", "REASON"], &rows);
    }
}

/// One line per distinct outcome: `count × file code: message: slugs`.
pub(super) fn dry_run(r: &crate::waves::dry_run::DryRunReport) {
    println!();
    println!(
        "dry run  {} would succeed, {} would fail, {} not run, {} pending",
        r.would_succeed, r.would_fail, r.not_run, r.pending
    );
    for (title, groups) in [("fails", &r.failures), ("not run", &r.skipped)] {
        for g in groups {
            let what = [g.file.clone(), g.code.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let what = if what.is_empty() {
                g.kind.clone().unwrap_or_default()
            } else {
                what
            };
            println!(
                "  {} × {title} {what}: {}: {}",
                g.count,
                g.message,
                g.slugs.join(", ")
            );
            if let Some(d) = &g.example_detail {
                println!("      e.g. {d}");
            }
        }
    }
    let cost = |c: &crate::waves::dry_run::TenantCost| {
        let size = c.size_bytes.map_or("-".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / 1048576.0)
        });
        let ms = |v: Option<i64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        format!(
            "{} ({size}, {}, files {})",
            c.slug,
            ms(c.duration_ms),
            ms(c.migrate_ms)
        )
    };
    if !r.largest.is_empty() {
        let list: Vec<String> = r.largest.iter().map(cost).collect();
        println!("  largest  {}", list.join(", "));
    }
    if !r.slowest.is_empty() {
        let list: Vec<String> = r.slowest.iter().map(cost).collect();
        println!("  slowest  {}", list.join(", "));
    }
}

fn analysis(a: &crate::waves::analysis::AnalysisView) {
    println!();
    let rows: Vec<Vec<String>> = a
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.kind.clone(),
                format!("{}s", c.interval_seconds),
                c.runs.to_string(),
                format!("{}/{}", c.failures, c.failure_limit),
                format!("{}/{}", c.inconclusives, c.inconclusive_limit),
            ]
        })
        .collect();
    table(
        &[
            "CHECK",
            "TYPE",
            "EVERY",
            "RUNS",
            "FAILED/LIMIT",
            "INCONCLUSIVE/LIMIT",
        ],
        &rows,
    );
    if a.evaluations.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = a
        .evaluations
        .iter()
        .take(50)
        .map(|e| {
            vec![
                e.at.format("%H:%M:%S").to_string(),
                e.check.clone(),
                e.tenant.clone().unwrap_or_default(),
                e.value.clone().unwrap_or_default(),
                e.verdict.clone(),
                e.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["AT", "CHECK", "TENANT", "VALUE", "VERDICT", "DETAIL"],
        &rows,
    );
    if a.evaluations_total > 50 {
        println!(
            "({} measurements in all; -o json shows the last {})",
            a.evaluations_total,
            a.evaluations.len()
        );
    }
}
