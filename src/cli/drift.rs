//! `drover drift` (the fleet's schema drift as sentences, from `GET /v1/drift`) and
//! `drover drift scan` (`POST /v1/drift/scans`, optionally waiting for it to finish).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::ApiClient;
use super::{ClientArgs, Output};
use crate::drift::cohorts::{Cohort, DifferenceKind, DriftReport, Reference};
use crate::drift::store::Scan;

/// `drover drift …`.
#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Fingerprint every live tenant's schema now (the leader runs the scan).
    ///
    /// Example: drover drift scan --wait
    Scan {
        /// Wait for the scan to finish, then print the cohorts.
        #[arg(long)]
        wait: bool,
    },
}

/// Runs `drover drift` (no subcommand: the cohorts) or `drover drift scan`.
pub async fn run(args: &ClientArgs, command: Option<DriftCommand>) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    if let Some(DriftCommand::Scan { wait }) = command {
        let scan: Scan = api.call(Method::POST, "/v1/drift/scans", none).await?;
        if !wait {
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&scan)?);
            } else {
                println!(
                    "scan {} asked for; `drover drift` shows the cohorts",
                    scan.id
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let path = format!("/v1/drift/scans/{}", scan.id);
        loop {
            let now: Scan = api.call(Method::GET, &path, none).await?;
            if now.finished_at.is_some() {
                if args.output == Output::Table {
                    println!("scanned {} tenants ({} not read)", now.tenants, now.failed);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let report: DriftReport = api.call(Method::GET, "/v1/drift", none).await?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for line in summary(&report) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as sentences: one per cohort, then where the expected schema came from.
pub fn summary(report: &DriftReport) -> Vec<String> {
    if report.cohorts.is_empty() {
        return vec!["no schema fingerprints yet; run `drover drift scan`".into()];
    }
    let mut lines: Vec<String> = report.cohorts.iter().map(sentence).collect();
    lines.push(match report.reference {
        Reference::Replay => {
            "expected schemas: the migration set replayed on the scratch database".into()
        }
        Reference::Majority => {
            "expected schemas: the schema most tenants at each version share (no drift_scratch_url)"
                .into()
        }
    });
    lines
}

fn sentence(c: &Cohort) -> String {
    let version = c.version.map_or("no version".into(), |v| format!("V{v}"));
    let n = thousands(c.tenants);
    let who = if c.tenants == 1 { "tenant" } else { "tenants" };
    if c.expected {
        return format!("{n} {who} at {version} as expected");
    }
    let (has, miss) = if c.tenants == 1 {
        ("has", "misses")
    } else {
        ("have", "miss")
    };
    let mut parts: Vec<String> = c
        .differences
        .iter()
        .take(5)
        .map(|d| {
            let (kind, name) = d.object.split_once(' ').unwrap_or(("object", &d.object));
            let name = name.strip_prefix("public.").unwrap_or(name);
            match d.kind {
                DifferenceKind::Extra => format!("{has} an extra {kind} `{name}`"),
                DifferenceKind::Missing => format!("{miss} {kind} `{name}`"),
                DifferenceKind::Changed => format!("{has} a changed {kind} `{name}`"),
            }
        })
        .collect();
    if c.differences.len() > 5 {
        parts.push(format!("{} more differences", c.differences.len() - 5));
    }
    let slugs = if c.tenants as usize <= c.slugs.len() && c.slugs.len() <= 3 {
        format!(" ({})", c.slugs.join(", "))
    } else {
        String::new()
    };
    format!("{n} {who} at {version}{slugs} {}", parts.join("; "))
}

/// 9963 → "9,963".
fn thousands(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::cohorts::Difference;

    fn cohort(tenants: i64, expected: bool, differences: Vec<Difference>) -> Cohort {
        Cohort {
            version: Some(42),
            fingerprint: "f".repeat(64),
            expected,
            reference: Reference::Majority,
            tenants,
            slugs: vec!["acme".into()],
            differences,
        }
    }

    #[test]
    fn cohorts_read_as_sentences_naming_the_objects() {
        assert_eq!(
            sentence(&cohort(9963, true, vec![])),
            "9,963 tenants at V42 as expected"
        );
        let extra = Difference {
            object: "column public.orders.legacy_id".into(),
            kind: DifferenceKind::Extra,
            detail: "integer".into(),
        };
        assert_eq!(
            sentence(&cohort(37, false, vec![extra])),
            "37 tenants at V42 have an extra column `orders.legacy_id`"
        );
        let missing = Difference {
            object: "index public.orders_customer_idx".into(),
            kind: DifferenceKind::Missing,
            detail: "CREATE INDEX".into(),
        };
        assert_eq!(
            sentence(&cohort(1, false, vec![missing])),
            "1 tenant at V42 (acme) misses index `orders_customer_idx`"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
