//! Real processes: `Daemon` (a `drover serve` child that speaks the API through
//! [`ApiClient`]), the `drover` binary for CLI tests, and a real Prometheus.

use std::net::SocketAddr;
use std::ops::Deref;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{temp_dir, wait_until, ApiClient, ADMIN_TOKEN};

/// Path of the built `drover` binary.
pub fn drover_bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

/// A `drover` command with a clean DROVER_* environment.
pub fn drover_cmd() -> Command {
    let mut cmd = Command::new(drover_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("DROVER_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGTERM through the shell's builtin `kill` (a minimal image may lack /bin/kill).
pub fn sigterm(pid: &str) -> std::process::ExitStatus {
    Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", pid])
        .status()
        .unwrap()
}

/// Collects a child's stderr on a thread, so a chatty child never blocks on a full pipe.
pub fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    })
}

/// A `drover serve` child process; derefs to the [`ApiClient`] of its port with the admin
/// token, so `daemon.start_wave(..)` reads as it does on a [`super::TestApp`].
pub struct Daemon {
    pub child: Child,
    api: ApiClient,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Deref for Daemon {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl Daemon {
    /// Starts `drover serve` on a free port of control database `control_url` as `instance`,
    /// with extra DROVER_* settings in `env`, and waits until it is ready.
    pub async fn start(control_url: &str, instance: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_at(free_port(), control_url, instance, env).await
    }

    /// [`Daemon::start`] on a given port (a restart where the last one listened).
    pub async fn start_at(
        port: u16,
        control_url: &str,
        instance: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut cmd = drover_cmd();
        cmd.arg("serve")
            .env("DROVER_DATABASE_URL", control_url)
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("DROVER_INSTANCE_ID", instance)
            .env("DROVER_LOG", "info,drover=debug")
            .env("DROVER_WEBHOOK_ALLOWED_NETWORKS", super::LOOPBACK_NETWORKS)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let logs = Some(drain_stderr(&mut child));
        let api = ApiClient::new(format!("http://127.0.0.1:{port}"));
        let ready_url = format!("{}/readyz", api.base());
        let ready = wait_until(Duration::from_secs(30), || async {
            matches!(reqwest::get(&ready_url).await, Ok(r) if r.status().is_success())
        })
        .await;
        assert!(ready, "drover serve {instance} never became ready");
        Daemon { child, api, logs }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit; returns (success, logs).
    pub async fn terminate(mut self) -> (bool, String) {
        sigterm(&self.child.id().to_string());
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let logs = self.logs.take();
        tokio::task::spawn_blocking(move || {
            let ok = child.wait().unwrap().success();
            (ok, logs.map(|l| l.join().unwrap()).unwrap_or_default())
        })
        .await
        .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `prometheus` or `promtool` (one Debian package) from PATH, or None: then the test
/// skips loudly, unless DROVER_REQUIRE_PROMETHEUS=1 makes the missing tool a failure.
pub fn tool(name: &str) -> Option<String> {
    let path = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|found| String::from_utf8_lossy(&found.stdout).trim().to_string())
        .unwrap_or_default();
    if !path.is_empty() {
        return Some(path);
    }
    super::skip_unless_required(
        "DROVER_REQUIRE_PROMETHEUS",
        &format!("{name} is not installed (apt-get install -y prometheus)"),
    );
    None
}

/// A real Prometheus (the Debian package's binary) scraping one drover every second, on
/// its own port and data directory; killed when dropped.
pub struct Prometheus {
    child: Option<Child>,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// Starts `binary` on `port` scraping `target` (host:port of a drover).
    pub fn start(binary: &str, port: u16, target: SocketAddr) -> Prometheus {
        let dir = temp_dir("prom");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: drover\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            child: Some(child),
            port,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API's answer to an instant query, or None when Prometheus does not answer.
    pub async fn query(&self, q: &str) -> Option<Value> {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", q)])
            .send()
            .await
            .ok()?;
        r.json::<Value>().await.ok()
    }

    /// Waits until Prometheus has scraped drover at least `n` times.
    pub async fn wait_scraped(&self, n: u32) -> bool {
        wait_until(Duration::from_secs(30), || async {
            self.query("count_over_time(up{job=\"drover\"}[1m])")
                .await
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .map(|c| c.parse::<f64>().unwrap_or(0.0) >= n as f64)
                })
                .unwrap_or(false)
        })
        .await
    }

    /// Kills Prometheus now (a real outage for whoever queries it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
