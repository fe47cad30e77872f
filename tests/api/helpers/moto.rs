//! moto's server (`moto_server`), an emulator of AWS Secrets Manager's API, for the
//! `aws-sm:` secret backend.
//!
//! One server is shared by every test of this binary that needs it ([`Moto::shared`]): it
//! starts on the first call, on a free port, and a watchdog shell stops it when the test
//! process is gone (a static's destructor never runs). Tests keep apart by each using its
//! own secret name prefix ([`Moto::prefix`]). A test that stops the backend mid-run starts
//! a private server of its own ([`Moto::private`]), killed on drop.
//!
//! The binary is taken from `DROVER_MOTO_BIN`, then `PATH`, then
//! `target/tools/moto/bin/moto_server`; when none runs, `.ci/install-moto` installs it
//! there once (PyPI `moto[server]`). Without it the tests print a loud "skipping" line and
//! pass, unless `DROVER_REQUIRE_MOTO=1`, which makes that a failure.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{free_port, skip_unless_required};

/// How long moto may take to answer HTTP (a cold start imports a lot of Python: ~2–5 s).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Credentials moto accepts (any), set on every client that talks to it.
pub const MOTO_ACCESS_KEY: &str = "drover-test-access-key";
pub const MOTO_SECRET_KEY: &str = "drover-test-secret-key";
pub const MOTO_REGION: &str = "us-east-1";

/// A running `moto_server`.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The server itself when this test owns it (private), killed on drop.
    child: Option<Child>,
}

impl Moto {
    /// The server shared by this test binary, or `None` (after a loud "skipping" line)
    /// when moto cannot be found or installed and `DROVER_REQUIRE_MOTO` is not `1`.
    pub async fn shared() -> Option<&'static Moto> {
        static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();
        let bin = Self::binary().await?;
        let shared =
            tokio::task::spawn_blocking(move || SHARED.get_or_init(|| start_shared(&bin)).as_ref())
                .await
                .expect("starting moto");
        match shared {
            Ok(m) => Some(m),
            Err(why) => panic!("{why}"),
        }
    }

    /// A server of this test's own (to be stopped mid-test), or `None` as for
    /// [`Moto::shared`].
    pub async fn private() -> Option<Moto> {
        let bin = Self::binary().await?;
        let moto = tokio::task::spawn_blocking(move || start_private(&bin))
            .await
            .expect("starting moto");
        Some(moto.unwrap_or_else(|why| panic!("{why}")))
    }

    async fn binary() -> Option<PathBuf> {
        match tokio::task::spawn_blocking(moto_binary)
            .await
            .expect("locating moto_server")
        {
            Ok(bin) => Some(bin),
            Err(why) => {
                skip_unless_required("DROVER_REQUIRE_MOTO", &format!("moto not available: {why}"));
                None
            }
        }
    }

    /// Kills a private server (the backend is gone; its port refuses connections).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The environment a `drover serve` process needs to use this server through the
    /// SDK's standard chains: static credentials, a region and the endpoint override.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_KEY.into()),
            ("AWS_REGION", MOTO_REGION.into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            // Nothing from the developer's own AWS configuration.
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An SDK client on this server, for tests to plant and inspect secrets directly.
    pub async fn client(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config().load().await)
    }

    /// The SDK configuration loader pointing at this server with fixed credentials.
    pub fn sdk_config(&self) -> aws_config::ConfigLoader {
        sdk_loader(&self.endpoint)
    }

    /// A name prefix no other test of this run uses: `tenants/{test}-{pid}-{n}/`.
    pub fn prefix(test: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "tenants/{test}-{}-{}/",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// An SDK configuration loader for the moto at `endpoint` (tests and the bench).
pub fn sdk_loader(endpoint: &str) -> aws_config::ConfigLoader {
    use aws_sdk_secretsmanager::config::{Credentials, Region};
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(MOTO_REGION))
        .credentials_provider(Credentials::new(
            MOTO_ACCESS_KEY,
            MOTO_SECRET_KEY,
            None,
            None,
            "drover-tests",
        ))
        .http_client(drover::secrets::aws::https_client())
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The shared server: `moto_server` under a watchdog shell (in its own session, so a
/// harness signalling our process group leaves it to the watchdog) that kills it once our
/// process is gone.
fn start_shared(bin: &Path) -> Result<Moto, String> {
    const WATCHDOG: &str = r#"bin=$1; port=$2; parent=$3; log=$4
"$bin" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 1; done
kill "$moto" 2>/dev/null
"#;
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log = log_path(port);
        let mut cmd = match ["/usr/bin/setsid", "/bin/setsid"]
            .iter()
            .find(|p| Path::new(p).exists())
        {
            Some(setsid) => {
                let mut c = Command::new(setsid);
                c.arg("sh");
                c
            }
            None => {
                let mut c = Command::new("sh");
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
        };
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("drover-moto-watchdog")
            .arg(bin)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the moto watchdog: {e}"))?;
        match wait_answering(port, None) {
            Ok(()) => {
                return Ok(Moto {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    child: None,
                })
            }
            Err(why) => last = format!("{why}\n--- moto log ---\n{}", read_log(&log)),
        }
    }
    Err(format!("moto_server did not start: {last}"))
}

fn start_private(bin: &Path) -> Result<Moto, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log = log_path(port);
        let out = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        match wait_answering(port, Some(&mut child)) {
            Ok(()) => {
                return Ok(Moto {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    child: Some(child),
                })
            }
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                last = format!("{why}\n--- moto log ---\n{}", read_log(&log));
            }
        }
    }
    Err(format!("moto_server did not start: {last}"))
}

fn log_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("drover-moto-{}-{port}.log", std::process::id()))
}

fn read_log(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Waits until the server answers an HTTP request on `port` (any status: moto answers its
/// root with its dashboard redirect or 404, which is enough to know it serves).
fn wait_answering(port: u16, mut child: Option<&mut Child>) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(format!("moto_server exited with {status}"));
            }
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let asked = s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut head = [0u8; 12];
            if asked.is_ok() && s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "port {port} did not answer HTTP within {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `bin` runs as moto's server.
fn runs_moto(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("port"))
}

/// The `moto_server` binary, found or installed once per test binary.
fn moto_binary() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(find_or_install).clone()
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("DROVER_MOTO_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if runs_moto(&bin) {
            Ok(bin)
        } else {
            Err(format!("DROVER_MOTO_BIN={} does not run", bin.display()))
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file() && runs_moto(p))
    });
    if let Some(bin) = on_path {
        return Ok(bin);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = repo.join("target/tools");
    let dir = tools.join("moto");
    let bin = dir.join("bin/moto_server");
    if runs_moto(&bin) {
        return Ok(bin);
    }
    // Another test binary may be installing right now: take turns on a lock file.
    std::fs::create_dir_all(&tools).map_err(|e| format!("create {}: {e}", tools.display()))?;
    let lock_path = tools.join("moto.lock");
    let lock =
        File::create(&lock_path).map_err(|e| format!("create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    if runs_moto(&bin) {
        return Ok(bin);
    }
    let script = repo.join(".ci/install-moto");
    let _ = writeln!(
        std::io::stderr(),
        "installing moto for the tests: {} {} (once)",
        script.display(),
        dir.display()
    );
    let out = Command::new(&script)
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() || !runs_moto(&bin) {
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        return Err(format!(
            "`{} {}` failed ({}): {}",
            script.display(),
            dir.display(),
            out.status,
            lines[lines.len().saturating_sub(10)..].join("\n")
        ));
    }
    Ok(bin)
}
