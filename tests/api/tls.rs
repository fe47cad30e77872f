//! sslmode against a real PostgreSQL with `ssl = on` and a certificate from a private CA.
//!
//! These tests share one TLS-enabled cluster of their own (the main harness' cluster
//! stays plain). Its server certificate is signed by a throwaway CA and names only
//! `localhost`, so connecting by `127.0.0.1` is a host name mismatch.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use drover::devcluster::{Cluster, ClusterOptions};
use drover::tls::{PgTarget, SslMode, TlsError};

const PASSWORD: &str = "hunter2-correct-horse";

struct TlsServer {
    cluster: Cluster,
    /// The CA that signed the server certificate.
    ca: PathBuf,
    /// A CA that has nothing to do with the server.
    other_ca: PathBuf,
}

impl TlsServer {
    fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// `postgres://postgres@HOST:PORT/postgres?QUERY`.
    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/postgres?{query}",
            self.port()
        )
    }

    fn ca_param(&self) -> String {
        format!("sslrootcert={}", self.ca.display())
    }
}

fn server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(start_tls_server)
}

/// Starts a cluster, puts a CA-signed certificate for `localhost` into its data
/// directory (owned by the server's OS user, key 0600) and turns `ssl` on by reload.
fn start_tls_server() -> TlsServer {
    let opts = ClusterOptions {
        stop_with_process: true,
        ..ClusterOptions::default()
    };
    let cluster =
        Cluster::start(opts).unwrap_or_else(|e| panic!("cannot start a test PostgreSQL: {e}"));
    let dir = cluster.data_dir().to_path_buf();

    write(&dir, "ca.cnf", &ca_config("drover test CA"));
    write(&dir, "other-ca.cnf", &ca_config("unrelated test CA"));
    write(&dir, "server.ext", SERVER_EXTENSIONS);
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, config) in [("ca", "ca.cnf"), ("other-ca", "other-ca.cnf")] {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        let mut args = vec!["req", "-x509", "-days", "2", "-config", config];
        args.extend(p256);
        args.extend(["-keyout", &key, "-out", &crt]);
        openssl(&dir, &args);
    }
    let mut args = vec!["req", "-new", "-subj", "/CN=localhost"];
    args.extend(p256);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&dir, &args);
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "4242",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );

    // The server refuses a key that others can read or that another user owns.
    let owner = std::fs::metadata(&dir).expect("stat data dir");
    for file in ["server.crt", "server.key"] {
        let path = dir.join(file);
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
    let key_mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(dir.join("server.key"), key_mode).expect("chmod server.key");

    // ALTER SYSTEM refuses to run inside the implicit transaction of a multi-statement -c.
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    ] {
        cluster
            .psql("postgres", sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    wait_for_tls(&cluster);
    TlsServer {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other-ca.crt"),
        cluster,
    }
}

fn ca_config(common_name: &str) -> String {
    format!(
        "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = v3\n\
         [dn]\nCN = {common_name}\n\
         [v3]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n"
    )
}

/// Only `DNS:localhost`: connecting by IP address must fail `verify-full`.
const SERVER_EXTENSIONS: &str = "basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the openssl CLI (apt-get install -y openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reload is asynchronous: poll with psql (libpq, `sslmode=require`) until the
/// server hands out TLS sessions.
fn wait_for_tls(cluster: &Cluster) {
    let conninfo = format!(
        "host={} port={} user=postgres dbname=postgres sslmode=require",
        cluster.host(),
        cluster.port()
    );
    let mut last = String::new();
    for _ in 0..100 {
        let out = Command::new(cluster.bindir().join("psql"))
            .args(["-X", "-A", "-t", "-d", &conninfo, "-c", "SELECT 1"])
            .stdin(Stdio::null())
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .output()
            .expect("run psql");
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(cluster.data_dir().join("server.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
    panic!("the server never accepted TLS: {last}\n--- server.log (newest first) ---\n{tail}");
}

/// Whether the session runs over TLS, as the server sees it.
async fn ssl_in_use(client: &tokio_postgres::Client) -> bool {
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn connect(conn: &str) -> Result<tokio_postgres::Client, TlsError> {
    PgTarget::parse(conn).unwrap().connect(None).await
}

#[tokio::test]
async fn require_connects_over_tls_to_a_server_with_a_self_signed_certificate() {
    let s = server();

    let client = connect(&s.url("127.0.0.1", "sslmode=require"))
        .await
        .unwrap();

    assert!(ssl_in_use(&client).await);
}

#[tokio::test]
async fn prefer_uses_tls_when_the_server_offers_it() {
    let s = server();

    let client = connect(&s.url("127.0.0.1", "sslmode=prefer"))
        .await
        .unwrap();

    assert!(ssl_in_use(&client).await);
}

#[tokio::test]
async fn disable_connects_without_tls() {
    let s = server();

    let client = connect(&s.url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap();

    assert!(!ssl_in_use(&client).await);
}

#[tokio::test]
async fn verify_full_accepts_the_right_ca_and_host_and_refuses_a_wrong_host_name() {
    let s = server();
    let query = format!("sslmode=verify-full&{}", s.ca_param());

    let right = connect(&s.url("localhost", &query)).await.unwrap();
    let wrong = connect(&s.url("127.0.0.1", &query)).await.unwrap_err();

    assert!(ssl_in_use(&right).await);
    let msg = wrong.to_string();
    assert!(msg.contains("not valid for name"), "{msg}");
    assert!(!wrong.is_retryable(), "{msg}");
}

#[tokio::test]
async fn verify_ca_accepts_the_right_ca_under_any_host_name() {
    let s = server();
    let query = format!("sslmode=verify-ca&{}", s.ca_param());

    let client = connect(&s.url("127.0.0.1", &query)).await.unwrap();

    assert!(ssl_in_use(&client).await);
}

#[tokio::test]
async fn verify_ca_refuses_a_server_whose_certificate_is_not_signed_by_the_bundle() {
    let s = server();
    let other = format!("sslrootcert={}", s.other_ca.display());

    let verify_ca = connect(&s.url("localhost", &format!("sslmode=verify-ca&{other}"))).await;
    // As in libpq, an explicit sslrootcert makes `require` check the chain too.
    let require = connect(&s.url("localhost", &format!("sslmode=require&{other}"))).await;

    for result in [verify_ca, require] {
        let err = result.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("UnknownIssuer"), "{msg}");
        assert!(!err.is_retryable(), "{msg}");
    }
}

#[tokio::test]
async fn the_configured_default_ca_is_used_when_the_string_names_none() {
    let s = server();
    let target = PgTarget::parse(&s.url("localhost", "sslmode=verify-full")).unwrap();

    let with_default = target.connect(Some(&s.ca)).await;
    // Without any CA the Mozilla roots apply, and they do not know our private CA.
    let without = target.connect(None).await;

    assert!(ssl_in_use(&with_default.unwrap()).await);
    let msg = without.unwrap_err().to_string();
    assert!(msg.contains("UnknownIssuer"), "{msg}");
}

#[tokio::test]
async fn a_pool_manager_uses_the_targets_tls_settings() {
    let s = server();
    let target = PgTarget::parse(&s.url("localhost", "sslmode=verify-full")).unwrap();
    let mc = deadpool_postgres::ManagerConfig::default();

    let manager = target.manager(Some(&s.ca), mc).unwrap();
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(1)
        .build()
        .unwrap();
    let client = pool.get().await.unwrap();

    assert!(ssl_in_use(&client).await);
}

#[tokio::test]
async fn a_unix_socket_host_connects() {
    let s = server();
    let dir = s.cluster.data_dir().display().to_string();
    let key_value = format!(
        "host='{dir}' port={} user=postgres dbname=postgres sslmode=verify-full",
        s.port()
    );
    let url = format!(
        "postgres://postgres@/postgres?host={dir}&port={}&sslmode=require",
        s.port()
    );

    for conn in [key_value, url] {
        let target = PgTarget::parse(&conn).unwrap();
        assert_ne!(target.sslmode, SslMode::Disable);
        let client = target.connect(None).await.unwrap();

        // TLS does not apply to sockets, whatever the sslmode; a socket has no address.
        assert!(!ssl_in_use(&client).await);
        let row = client
            .query_one("SELECT inet_server_addr() IS NULL", &[])
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "{conn}");
    }
}

#[tokio::test]
async fn errors_never_echo_the_connection_string() {
    // A port nothing listens on: the connect error must not echo the string either.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let garbage = format!("postgres://app:{PASSWORD}@db.example.com:port/x?{PASSWORD}=1");
    let refused = format!(
        "postgres://app:{PASSWORD}@127.0.0.1:{closed}/x?sslmode=verify-full&connect_timeout=5"
    );

    let parse_err = PgTarget::parse(&garbage).unwrap_err();
    let connect_err = connect(&refused).await.unwrap_err();

    for err in [&parse_err, &connect_err] {
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(!shown.contains("db.example.com"), "{shown}");
    }
    assert!(matches!(parse_err, TlsError::BadConnectionString { .. }));
    assert!(!parse_err.is_retryable());
    assert!(connect_err.is_retryable(), "{connect_err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_https_from_a_certificate_file_and_the_cli_trusts_a_ca_file() {
    let tls = server();
    let dir = tls.cluster.data_dir();
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let app = crate::helpers::TestApp::builder()
        .envs(&[
            ("DROVER_TLS_CERT_FILE", cert.to_str().unwrap()),
            ("DROVER_TLS_KEY_FILE", key.to_str().unwrap()),
        ])
        .spawn()
        .await;
    let base = format!("https://localhost:{}", app.addr.port());
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&tls.ca).unwrap()).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();

    let health = trusting.get(format!("{base}/healthz")).send().await;
    let untrusted = reqwest::get(format!("{base}/healthz")).await;
    let plain = reqwest::get(format!("http://localhost:{}/healthz", app.addr.port())).await;
    let (server, ca_file) = (base.clone(), tls.ca.clone());
    let cli = tokio::task::spawn_blocking(move || {
        crate::helpers::drover_cmd()
            .env("DROVER_SERVER", server)
            .env("DROVER_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN)
            .env("DROVER_SERVER_CA_FILE", ca_file)
            .args(["tenants", "list"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    assert_eq!(health.unwrap().status(), reqwest::StatusCode::OK);
    assert!(
        untrusted.is_err(),
        "a client without the CA refuses the certificate"
    );
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP gets no answer from an HTTPS listener"
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
}
