//! External provisioners (`kind = "external"`): a real receiver process (`receiver.py`)
//! verifies drover's signed request, creates the role and database on the test cluster
//! with psql, writes the password behind the reference, and calls back; the daemons are
//! real `drover serve` processes (one is killed with SIGKILL mid-exchange).

mod flows;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::*;

/// The HMAC key drover signs with and the receiver verifies with.
const KEY: &str = "provisioner-hmac-key-0123456789abcdef";

/// The receiver process and the files it keeps.
pub struct Receiver {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Receiver {
    /// Starts `receiver.py` answering provisioning requests with `modes` in turn (see the
    /// script), writing passwords into `secrets`.
    pub fn start(secrets: &SecretsDir, modes: &[&str]) -> Receiver {
        let dir = temp_dir("receiver");
        std::fs::write(dir.join("key"), KEY).unwrap();
        std::fs::write(dir.join("modes"), modes.join("\n") + "\n").unwrap();
        let (host, port) = server_host_port();
        let child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/api/external/receiver.py"
            ))
            .arg(&dir)
            .env("ADMIN_URL", db_url("postgres"))
            .env("PSQL", "/usr/lib/postgresql/15/bin/psql")
            .env("SECRETS_DIR", secrets.path())
            .env("DB_HOST", host)
            .env("DB_PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs the receiver");
        let port_file = dir.join("port");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !port_file.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let port = std::fs::read_to_string(port_file).unwrap().parse().unwrap();
        Receiver { child, dir, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/provision", self.port)
    }

    fn lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every request received: {event, delivery_id, verified, body}.
    pub fn requests(&self) -> Vec<Value> {
        self.lines("requests.log")
    }

    /// Every callback made: {delivery_id, status, answer}.
    pub fn callbacks(&self) -> Vec<Value> {
        self.lines("callbacks.log")
    }

    /// Lets a `wait` job go on.
    pub fn go(&self) {
        std::fs::write(self.dir.join("go"), "").unwrap();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon with one external server, the receiver behind it, and what they share.
pub struct Setup {
    daemon: Option<Daemon>,
    pub receiver: Receiver,
    pub secrets: SecretsDir,
    migrations: MigrationsDir,
    config: PathBuf,
    pub control_url: String,
    pub port: u16,
}

const V1: (&str, &str) = (
    "V1__widgets.sql",
    "CREATE TABLE widgets (id bigint PRIMARY KEY);",
);

impl Setup {
    /// A daemon whose only server is external with `timeout`, its receiver answering
    /// with `modes`.
    pub async fn start(modes: &[&str], timeout: &str) -> Setup {
        let secrets = SecretsDir::new();
        secrets.put("webhooks/provisioner", KEY);
        let migrations = MigrationsDir::new(&[V1]);
        let receiver = Receiver::start(&secrets, modes);
        let config = temp_dir("config").join("drover.toml");
        std::fs::write(
            &config,
            format!(
                "[[provision_servers]]\nname = \"ext\"\nkind = \"external\"\nurl = \"{}\"\n\
                 secret_ref = \"file:webhooks/provisioner\"\nlabels = {{ region = \"eu\" }}\n\
                 timeout = \"{timeout}\"\n",
                receiver.url()
            ),
        )
        .unwrap();
        let control_url = fresh_control_database().await;
        let mut setup = Setup {
            daemon: None,
            receiver,
            secrets,
            migrations,
            config,
            control_url,
            port: free_port(),
        };
        setup.daemon = Some(setup.start_daemon().await);
        setup
    }

    /// `drover serve` with this setup's settings on its port.
    pub async fn start_daemon(&self) -> Daemon {
        Daemon::start_at(
            self.port,
            &self.control_url,
            "ext-1",
            &[
                ("DROVER_CONFIG", self.config.to_str().unwrap()),
                ("DROVER_SECRETS_DIR", self.secrets.path()),
                ("DROVER_MIGRATIONS_DIR", self.migrations.0.to_str().unwrap()),
                ("DROVER_PROVISION_RETRY_BACKOFF", "100ms"),
            ],
        )
        .await
    }

    /// The running daemon.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("a daemon runs")
    }

    /// SIGKILL to the daemon, then a new one with the same settings on the same port.
    pub async fn kill9_and_restart(&mut self) {
        self.daemon.as_mut().expect("a daemon runs").kill9();
        self.daemon = Some(self.start_daemon().await);
    }

    /// Creates a tenant from its slug alone, placed on the external server.
    pub async fn create(&self, slug: &str) -> Value {
        let r = self
            .daemon()
            .create_tenant(
                &json!({ "slug": slug, "provision": true, "labels": { "region": "eu" } }),
            )
            .await;
        assert_eq!(r.status(), 202, "create {slug}");
        r.json().await.unwrap()
    }

    pub async fn tenant(&self, slug: &str) -> Value {
        self.daemon().get_json(&format!("/v1/tenants/{slug}")).await
    }

    /// Waits until the tenant's status is `status`; the tenant then.
    pub async fn wait_status(&self, slug: &str, status: &str) -> Value {
        let reached = wait_until(Duration::from_secs(30), || async {
            self.tenant(slug).await["status"] == status
        })
        .await;
        let t = self.tenant(slug).await;
        assert!(
            reached,
            "{slug} never became {status}: {t}\nrequests: {:?}\ncallbacks: {:?}",
            self.receiver.requests(),
            self.receiver.callbacks()
        );
        t
    }

    /// Waits until the receiver got `n` requests; returns them.
    pub async fn wait_requests(&self, n: usize) -> Vec<Value> {
        let got = wait_until(Duration::from_secs(30), || async {
            self.receiver.requests().len() >= n
        })
        .await;
        assert!(got, "only {:?}", self.receiver.requests());
        self.receiver.requests()
    }

    /// Waits until the receiver made `n` callbacks; returns them.
    pub async fn wait_callbacks(&self, n: usize) -> Vec<Value> {
        let got = wait_until(Duration::from_secs(30), || async {
            self.receiver.callbacks().len() >= n
        })
        .await;
        assert!(got, "only {:?}", self.receiver.callbacks());
        self.receiver.callbacks()
    }

    /// A callback for `slug` with `token`, as a job would send it.
    pub async fn report(&self, slug: &str, token: &str, body: &Value) -> Response {
        self.daemon()
            .req_as(
                token,
                Method::POST,
                &format!("/v1/tenants/{slug}/provisioning"),
            )
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Rows of the control DB's `table` matching `where_sql`.
    pub async fn rows(&self, table: &str, where_sql: &str) -> i64 {
        let db = connect(&self.control_url).await;
        db.query_one(
            &format!("SELECT count(*) AS n FROM control_plane.{table} WHERE {where_sql}"),
            &[],
        )
        .await
        .unwrap()
        .get("n")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
