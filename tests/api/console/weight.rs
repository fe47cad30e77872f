//! Page weight and render times of the console at 10,000 tenants: printed, since timings
//! on a shared machine are not something to assert; the weight (deterministic) is.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{browser_login, get_page, login, seed_tenants};
use crate::browser::Browser;
use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

/// Median of `runs` timed `GET path` (the daemon is this test build: unoptimised).
async fn median_get(app: &TestApp, cookie: &str, path: &str, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let (status, body) = get_page(app, cookie, path).await;
        times.push(t.elapsed());
        assert_eq!(status, StatusCode::OK, "{path}");
        bytes = body.len();
    }
    times.sort();
    (times[runs / 2], bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_ten_thousand_tenants_every_page_weighs_under_150_kb_and_its_times_are_printed() {
    let app = spawn_app().await;
    seed_tenants(&app, 10_000).await;
    app.control_db()
        .await
        .batch_execute("ANALYZE control_plane.tenants")
        .await
        .unwrap();
    let cookie = login(&app, ADMIN_TOKEN).await;
    let assets = drover::console::assets::total_bytes();

    let mut report = format!(
        "console at 10,000 tenants (debug build; assets {assets} bytes):\n  {:<32} {:>9} {:>10}\n",
        "page", "HTML", "server"
    );
    for path in [
        "/ui/",
        "/ui/health",
        "/ui/tenants",
        "/ui/tenants?q=account+4242",
        "/ui/tenants?status=suspended&label=region=eu&version=2",
        "/ui/tenants/acct-4242",
    ] {
        let (median, html) = median_get(&app, &cookie, path, 15).await;
        report.push_str(&format!("  {path:<32} {html:>9} {median:>10.1?}\n"));
        assert!(
            html + assets < 150 * 1024,
            "{path}: {html} + {assets} bytes is over 150 KB"
        );
    }
    // First render as the browser sees it (Navigation Timing, from the request to the
    // load event), when a browser is here.
    if let Some(b) = Browser::start().await {
        browser_login(&b, &app, ADMIN_TOKEN).await;
        for path in ["/ui/", "/ui/tenants"] {
            b.open(&format!("{}{path}", app.base()), "main h1").await;
            let ms = b
                .client
                .execute(
                    "const n = performance.getEntriesByType('navigation')[0]; \
                     return [n.responseEnd - n.requestStart, n.loadEventEnd - n.startTime];",
                    vec![],
                )
                .await
                .unwrap();
            report.push_str(&format!(
                "  browser {path:<24} response {:.0} ms, loaded {:.0} ms\n",
                ms[0].as_f64().unwrap_or(-1.0),
                ms[1].as_f64().unwrap_or(-1.0)
            ));
        }
        b.close().await;
    }
    // To the process's stderr: the figures are the point of this test.
    let _ = writeln!(std::io::stderr(), "\n{report}");
}
