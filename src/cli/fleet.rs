//! `drover fleet`: schema versions across the fleet, tenants with history drift (an applied
//! migration edited or missing) and tenants needing attention, from `GET /v1/fleet`; and
//! the schema drift summary (what the schemas really are) from `GET /v1/drift`.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::registry::FleetReport;

/// `drover fleet`.
pub async fn fleet(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let f: FleetReport = api.call(Method::GET, "/v1/fleet", none).await?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "latest version  {}",
        f.latest_version.map_or("-".into(), |v| format!("V{v}"))
    );
    println!("tenants         {} ({} behind)", f.tenants, f.behind);
    let rows: Vec<Vec<String>> = f
        .by_version
        .iter()
        .map(|v| {
            vec![
                v.version
                    .map_or("never migrated".into(), |v| format!("V{v}")),
                v.tenants.to_string(),
            ]
        })
        .collect();
    println!();
    table(&["VERSION", "TENANTS"], &rows);
    for (title, list) in [
        ("HISTORY DRIFT", &f.drifted),
        ("NEEDS ATTENTION", &f.needs_attention),
    ] {
        if !list.is_empty() {
            println!();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.slug.clone(),
                        i.issue["message"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            table(&[title, "ISSUE"], &rows);
        }
    }
    let drift: crate::drift::cohorts::DriftReport =
        api.call(Method::GET, "/v1/drift", none).await?;
    println!();
    println!("schema drift");
    for line in super::drift::summary(&drift) {
        println!("  {line}");
    }
    Ok(ExitCode::SUCCESS)
}
