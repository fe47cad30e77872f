//! The `drover` binary: config checking, the tenants client and signal handling.

use std::process::Command;

use crate::helpers::{
    drover_bin, drover_cmd, fresh_control_database, skip_unless_required, spawn_app, ADMIN_TOKEN,
};

fn tenants_cmd(server: &str) -> Command {
    let mut cmd = drover_cmd();
    cmd.env("DROVER_SERVER", server)
        .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
        .arg("tenants");
    cmd
}

fn ok_stdout(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// Multi-threaded: the CLI runs as a blocking child process while this runtime serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_lists_suspends_and_shows_events_through_a_running_daemon() {
    let app = spawn_app().await;
    let server = app.base();

    let created = tenants_cmd(&server)
        .args([
            "create",
            "acme",
            "--display-name",
            "Acme Corp",
            "--db-host",
            "db1",
            "--db-name",
            "t_acme",
        ])
        .args([
            "--db-user",
            "t_acme",
            "--secret-ref",
            "file:tenants/acme",
            "--label",
            "plan=pro",
            "--status",
            "active",
        ])
        .output()
        .unwrap();
    let listed = tenants_cmd(&server)
        .args(["list", "--label", "plan=pro"])
        .output()
        .unwrap();
    let suspended = tenants_cmd(&server)
        .args(["suspend", "acme", "--reason", "unpaid"])
        .output()
        .unwrap();
    let json = tenants_cmd(&server)
        .args(["get", "acme", "-o", "json"])
        .output()
        .unwrap();
    let events = tenants_cmd(&server)
        .args(["events", "acme"])
        .output()
        .unwrap();
    let duplicate = tenants_cmd(&server)
        .args([
            "create",
            "ACME",
            "--display-name",
            "x",
            "--db-host",
            "db1",
            "--db-name",
            "t_x",
        ])
        .args(["--db-user", "u", "--secret-ref", "file:tenants/x"])
        .output()
        .unwrap();

    assert!(ok_stdout(created).contains("acme"));
    let list = ok_stdout(listed);
    assert!(list.starts_with("SLUG"), "{list}");
    assert!(list.contains("acme") && list.contains("plan=pro"), "{list}");
    ok_stdout(suspended);
    let t: serde_json::Value = serde_json::from_str(&ok_stdout(json)).unwrap();
    assert_eq!(t["status"], "suspended");
    let ev = ok_stdout(events);
    assert!(
        ev.contains("suspended") && ev.contains("root") && ev.contains("\"on_behalf_of\":\"cli:"),
        "{ev}"
    );
    assert_eq!(duplicate.status.code(), Some(1));
    let err = String::from_utf8_lossy(&duplicate.stderr);
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(
        err.contains("409") && err.contains("already exists"),
        "{err}"
    );
}

#[test]
fn check_config_names_every_bad_key_and_never_prints_a_token() {
    let out = drover_cmd()
        .arg("check-config")
        .env("DROVER_LISTEN", "not-an-address")
        .env("DROVER_POOL_SIZE", "zero")
        .env("DROVER_ADMIN_TOKEN", "tiny-secret")
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DROVER_LISTEN"), "{err}");
    assert!(err.contains("DROVER_POOL_SIZE"), "{err}");
    assert!(err.contains("DROVER_ADMIN_TOKEN"), "{err}");
    assert!(!err.contains("tiny-secret"), "{err}");
}

#[test]
fn check_config_accepts_a_complete_configuration_and_redacts_secrets() {
    let out = drover_cmd()
        .arg("check-config")
        .env(
            "DROVER_DATABASE_URL",
            "postgres://drover:pw-in-url@localhost/drover",
        )
        .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();

    let text = ok_stdout(out);
    assert!(text.contains("configuration ok"));
    assert!(
        !text.contains("pw-in-url") && !text.contains(ADMIN_TOKEN),
        "{text}"
    );
}

#[tokio::test]
async fn serve_migrates_then_stops_cleanly_on_sigterm() {
    let url = fresh_control_database().await;
    // `start` returns once /readyz answers 200: the control schema is at head.
    let daemon = crate::helpers::Daemon::start(&url, "sigterm", &[]).await;

    let (clean, logs) = daemon.terminate().await;

    assert!(clean, "exit after SIGTERM was not clean: {logs}");
    assert!(logs.contains("SIGTERM"), "{logs}");
}

/// Runs `quickstart --exit --tenants N --listen 127.0.0.1:0 --dir DIR` through `cmd` (the
/// binary, or a wrapper such as `runuser`) and returns its stdout; a failed run fails the
/// test with both outputs.
async fn run_quickstart(cmd: Command, tenants: usize, dir: &std::path::Path) -> String {
    run_quickstart_both(cmd, tenants, dir).await.0
}

/// `run_quickstart`, returning stdout and stderr.
async fn run_quickstart_both(
    mut cmd: Command,
    tenants: usize,
    dir: &std::path::Path,
) -> (String, String) {
    cmd.args([
        "quickstart",
        "--exit",
        "--listen",
        "127.0.0.1:0",
        "--tenants",
    ])
    .arg(tenants.to_string())
    .arg("--dir")
    .arg(dir);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

#[tokio::test]
async fn quickstart_at_the_default_log_level_prints_no_postgresql_notice() {
    // Every tenant of the wave once printed `NOTICE: relation "refinery_schema_history"
    // already exists, skipping` through the progress bars.
    let dir = std::env::temp_dir().join(format!("drover-qs-notice-{}", std::process::id()));

    let (stdout, stderr) = run_quickstart_both(drover_cmd(), 3, &dir).await;

    assert!(
        stdout.contains("completed: 3 succeeded, 0 failed"),
        "{stdout}"
    );
    let noticed: Vec<_> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains("NOTICE") || l.contains("already exists, skipping"))
        .collect();
    assert!(noticed.is_empty(), "{noticed:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn quickstart_runs_end_to_end_and_shows_the_wave_a_dsn_and_where_to_look() {
    let dir = std::env::temp_dir().join(format!("drover-qs-{}", std::process::id()));

    let stdout = run_quickstart(drover_cmd(), 6, &dir).await;

    assert!(stdout.contains("provisioned 6 tenants"), "{stdout}");
    assert!(stdout.contains("a new tenant migration landed"), "{stdout}");
    assert!(
        stdout.contains("completed: 6 succeeded, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("/metrics"), "{stdout}");
    assert!(
        stdout.contains("drover_tenants_by_schema_version{version=\"4\"} 6"),
        "{stdout}"
    );
    assert!(stdout.contains("/v1/resolve/tenant-05"), "{stdout}");
    assert!(stdout.contains("psql 'postgresql://"), "{stdout}");
    assert!(stdout.contains("/healthz"), "{stdout}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "the throwaway cluster is removed on exit: {leftovers:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn quickstart_runs_as_a_normal_user_too() {
    // As root the cluster runs as `postgres` (initdb refuses root); here the whole tour
    // runs as an ordinary account, as a developer's laptop would.
    if !nix_is_root() {
        skip_unless_required(
            "DROVER_REQUIRE_ROOT",
            "not root, so there is no other account to run the tour as",
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("drover-qs-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::process::Command::new("chown")
        .args(["postgres:", dir.to_str().unwrap()])
        .status()
        .unwrap();

    let mut as_postgres = Command::new("runuser");
    as_postgres
        .args(["-u", "postgres", "--", drover_bin()])
        .env("HOME", &dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("DROVER_")) {
        as_postgres.env_remove(k);
    }
    let stdout = run_quickstart(as_postgres, 3, &dir.join("qs")).await;

    assert!(
        stdout.contains("completed: 3 succeeded, 0 failed"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn quickstart_without_postgresql_binaries_says_what_to_install() {
    let out = drover_cmd()
        .args(["quickstart", "--exit", "--dir"])
        .arg(std::env::temp_dir().join(format!("drover-qs-nobin-{}", std::process::id())))
        .env("DROVER_PG_BINDIR", "/nonexistent")
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install -y postgresql"), "{err}");
}

#[test]
fn completions_are_printed_for_bash_and_help_explains_each_command_with_an_example() {
    let bash = drover_cmd().args(["completions", "bash"]).output().unwrap();
    let help = drover_cmd()
        .args(["waves", "start", "--help"])
        .output()
        .unwrap();

    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_drover()"));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Example: drover waves start"), "{text}");
}

#[tokio::test]
async fn quickstart_uses_the_server_of_drover_database_url_instead_of_a_throwaway_cluster() {
    let dir = std::env::temp_dir().join(format!("drover-qs-ext-{}", std::process::id()));
    let server = crate::helpers::db_url("postgres");

    let mut cmd = drover_cmd();
    cmd.env("DROVER_DATABASE_URL", &server);
    let stdout = run_quickstart(cmd, 2, &dir).await;

    assert!(
        stdout.contains("using the PostgreSQL server of DROVER_DATABASE_URL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("completed: 2 succeeded, 0 failed"),
        "{stdout}"
    );
    let admin = crate::helpers::connect(&server).await;
    let created: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname IN ('qs_control', 'qs_tenant_00', 'qs_tenant_01')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 3, "the databases are on the given server");
    for stmt in [
        "DROP DATABASE qs_tenant_00 WITH (FORCE)",
        "DROP DATABASE qs_tenant_01 WITH (FORCE)",
        "DROP DATABASE qs_control WITH (FORCE)",
        "DROP ROLE qs_tenant_00",
        "DROP ROLE qs_tenant_01",
    ] {
        admin.batch_execute(stmt).await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_quickstart_cluster_refuses_connections_without_its_password_over_tcp_and_the_socket() {
    let dir = std::env::temp_dir().join(format!("drover-qs-auth-{}", std::process::id()));
    let cluster = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || drover::cli::quickstart::throwaway_cluster(&dir, false).unwrap()
    })
    .await
    .unwrap();
    let socket = format!(
        "host={} port={} user=postgres dbname=postgres",
        cluster.data_dir().display(),
        cluster.port()
    );

    let tcp = tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls).await;
    let local = tokio_postgres::connect(&socket, tokio_postgres::NoTls).await;
    let url = cluster.superuser_url("postgres");
    let with_password = tokio_postgres::connect(
        secrecy::ExposeSecret::expose_secret(&url),
        tokio_postgres::NoTls,
    )
    .await;
    let hba = std::fs::read_to_string(cluster.data_dir().join("pg_hba.conf")).unwrap();
    let psql = cluster
        .psql("postgres", "SELECT 1")
        .map_err(|e| e.to_string());

    let refused = |r: &Result<_, tokio_postgres::Error>| match r {
        Ok(_) => "connected".to_string(),
        Err(e) => format!("{e:?}"),
    };
    assert!(refused(&tcp).contains("password"), "{}", refused(&tcp));
    assert!(refused(&local).contains("password"), "{}", refused(&local));
    assert!(with_password.is_ok(), "{}", refused(&with_password));
    assert!(!hba.contains("trust"), "{hba}");
    assert_eq!(psql.as_deref().map(str::trim), Ok("1"));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
