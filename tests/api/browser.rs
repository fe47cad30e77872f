//! Test harness: a headless Chromium driven over WebDriver (`chromedriver`, the client is
//! `fantoccini` over plain HTTP on localhost: no TLS stack of its own).
//!
//! Each [`Browser`] starts its own `chromedriver --port=<free>` in its own process group
//! and a fresh profile directory, both removed when it is dropped. The binaries are
//! `DROVER_CHROMEDRIVER` / `DROVER_CHROMIUM`, else `/usr/bin/chromedriver` and
//! `/usr/bin/chromium` (Debian's `chromium-driver` and `chromium`), else `PATH`. Without
//! them the tests print a loud "skipping" line and pass, unless `DROVER_REQUIRE_BROWSER=1`
//! (CI sets it), which makes that a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long chromedriver may take to answer `/status`, and a page to show an element.
const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const WAIT: Duration = Duration::from_secs(15);

/// A running chromedriver with one headless Chromium session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

fn require_browser() -> bool {
    std::env::var("DROVER_REQUIRE_BROWSER").is_ok_and(|v| v.trim() == "1")
}

fn find_binary(var: &str, default: &str, names: &[&str]) -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var(var) {
        return Ok(PathBuf::from(p));
    }
    if Path::new(default).exists() {
        return Ok(PathBuf::from(default));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let candidate = dir.join(n);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "no {} ({var}, {default} or PATH); install chromium and chromium-driver",
        names[0]
    ))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `None` (after a loud line on stderr)
    /// when either is missing, unless `DROVER_REQUIRE_BROWSER=1`, which panics instead.
    pub async fn start() -> Option<Browser> {
        Self::start_with(&[]).await
    }

    /// [`Browser::start`] with extra Chromium flags (e.g. `--ignore-certificate-errors` for
    /// a proxy with a self-signed certificate).
    pub async fn start_with(extra_args: &[&str]) -> Option<Browser> {
        let found = find_binary(
            "DROVER_CHROMEDRIVER",
            "/usr/bin/chromedriver",
            &["chromedriver"],
        )
        .and_then(|d| {
            find_binary(
                "DROVER_CHROMIUM",
                "/usr/bin/chromium",
                &["chromium", "chromium-browser", "google-chrome"],
            )
            .map(|c| (d, c))
        });
        let (driver_bin, chromium) = match found {
            Ok(found) => found,
            Err(why) if require_browser() => {
                panic!("a browser is required (DROVER_REQUIRE_BROWSER=1) but not available: {why}")
            }
            Err(why) => {
                // Straight to stderr: the harness hides a test's output unless it fails,
                // and a silent skip looks like a pass.
                let test = std::thread::current().name().unwrap_or("?").to_string();
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** {test}: skipping: no browser: {why}\n*** (set DROVER_REQUIRE_BROWSER=1 to make this a failure)"
                );
                return None;
            }
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "drover-chromium-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let port = free_port();
        let log = std::fs::File::create(profile.join("chromedriver.log")).expect("log file");
        let mut cmd = Command::new(&driver_bin);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // Its own process group: dropping the browser ends chromedriver and every
        // Chromium process it started, and nothing else.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("chromedriver starts");
        let mut browser_guard = Guard(Some((driver, profile.clone())));
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url).await;
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ]
        .iter()
        .chain(extra_args)
        .map(|a| a.to_string())
        .collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args }
        });
        let caps = caps.as_object().expect("an object").clone();
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                "chromedriver did not start a Chromium session: {e}\n--- chromedriver log ---\n{}",
                std::fs::read_to_string(profile.join("chromedriver.log")).unwrap_or_default()
            )
            });
        let (driver, profile) = browser_guard.0.take().expect("guard holds the driver");
        Some(Browser {
            client,
            driver,
            profile,
        })
    }

    /// Opens `url` and waits for the element matching `css`.
    pub async fn open(&self, url: &str, css: &str) {
        self.client.goto(url).await.expect("goto");
        self.wait_for(css).await;
    }

    /// Waits until the page shows an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// The path of the current URL with its query.
    pub async fn path(&self) -> String {
        let u = self.client.current_url().await.expect("current url");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Saves a PNG of the page as `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session (Chromium exits); the driver goes on drop.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "chromedriver did not answer {url}/status within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the process group and removes the profile if start-up fails half-way.
struct Guard(Option<(Child, PathBuf)>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some((mut child, dir)) = self.0.take() {
            stop(&mut child, &dir);
        }
    }
}

fn stop(child: &mut Child, dir: &Path) {
    // The group id is chromedriver's pid (process_group(0)): only what it started.
    // `-s KILL -- -PGID`: the `--` makes the negative number a process group, not an option.
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop(&mut self.driver, &self.profile);
    }
}
