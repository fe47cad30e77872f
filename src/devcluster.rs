//! Throwaway local PostgreSQL clusters, started from the installed server binaries.
//!
//! This module owns everything needed to get a private, disposable PostgreSQL server
//! running: locating `initdb`/`pg_ctl`/`postgres`, creating a fresh data directory,
//! writing an authentication config suited to tests, picking a free port, and tearing
//! it all down again. The integration-test harness uses one cluster per test binary
//! (each test creates its own databases), and `drover quickstart` uses it to give a
//! new user a working fleet without any database setup.
//!
//! **Why `runuser`.** PostgreSQL refuses to run `initdb`, `pg_ctl` or `postgres` as
//! root. CI containers and dev VMs often run everything as root, so in that case the
//! data directory is handed to the `postgres` OS user and every server binary is run
//! via `runuser -u postgres -- <abs path> ...` (not `su`, which wants a login shell and
//! a TTY-friendly PAM stack). As a normal user the binaries are run directly. Client
//! tools (`psql`) are fine as root and always run directly over TCP.
//!
//! **Cleanup.** [`Cluster::stop`] (also run by `Drop`) does a fast shutdown and removes
//! the data directory. Test binaries usually keep the cluster in a `static`, whose
//! destructor never runs, so [`ClusterOptions::stop_with_process`] spawns a tiny
//! detached shell watchdog that polls our PID and, once we are gone, sends SIGQUIT
//! (immediate shutdown) to the postmaster and deletes the directory. It runs in its own
//! session (`setsid`) so a harness killing our process group does not take it down,
//! and it has null stdio so `cargo test` does not wait on its inherited stdout pipe.
//!
//! **Passwords.** By default loopback TCP and the socket are trusted (tests connect as
//! any role without a password, except members of `drover_password_auth`). With
//! [`ClusterOptions::superuser_password`] (what `drover quickstart` uses) nothing is
//! trusted: initdb sets the superuser's password (`--auth=scram-sha-256 --pwfile`, the
//! file removed at once) and every connection, socket or TCP, must present it with SCRAM.
//! [`Cluster::psql`] then reads it from a 0600 password file in the data directory.
//!
//! **Limits.** The data directory doubles as the Unix socket directory (avoiding
//! collisions in /var/run/postgresql), so its path must stay well under ~100 bytes.
//! When running as root, every ancestor of the data directory must be searchable by
//! `postgres`: a parent under a root-owned 0700 directory such as `/root` makes
//! `initdb` fail (the error says so). The default parent is the system temp dir.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use tracing::{debug, info, warn};

const HOST: &str = "127.0.0.1";
/// Both the database superuser (`initdb -U`) and, when we are root, the OS user.
const SUPERUSER: &str = "postgres";
/// Roles granted membership in this group must authenticate with SCRAM over TCP;
/// everyone else is trusted, which keeps test setup free of passwords.
const PASSWORD_AUTH_GROUP: &str = "drover_password_auth";
/// How much of a failing command's output we keep in errors.
const MAX_DETAIL: usize = 2000;
/// A port picked by binding to :0 can be grabbed by someone else before the server
/// binds it; a few retries make that race irrelevant in practice.
const START_ATTEMPTS: u32 = 5;

/// Tuned for disposable test data: durability off, room for many tenant databases.
const SERVER_SETTINGS: [&str; 8] = [
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=500",
    "shared_buffers=64MB",
    "max_locks_per_transaction=256",
    "password_encryption=scram-sha-256",
];

/// Nothing trusted: every role, over the socket or TCP, presents its password (SCRAM).
const PG_HBA_PASSWORDS: &str = "\
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
";

const PG_HBA: &str = "\
local all all trust
host all +drover_password_auth 127.0.0.1/32 scram-sha-256
host all +drover_password_auth ::1/128 scram-sha-256
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
";

/// Positional args: $1 = PID to watch, $2 = data dir, $3 = "1" to keep the data dir.
/// Passing them as arguments (not interpolating) avoids any quoting issues. Closing
/// fds 3-9 drops stray inherited pipes that a harness might be waiting on. The postmaster
/// deletes postmaster.pid as it exits; we watch that rather than only `kill -0`, which
/// keeps succeeding while the exited postmaster lingers as a zombie (slow init reaping).
const WATCHDOG_SCRIPT: &str = r#"parent=$1 dir=$2 keep=$3
exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
pm=$(head -n 1 "$dir/postmaster.pid" 2>/dev/null)
if [ -n "$pm" ]; then
  kill -QUIT "$pm" 2>/dev/null
  n=0
  while [ -f "$dir/postmaster.pid" ] && kill -0 "$pm" 2>/dev/null && [ "$n" -lt 50 ]; do
    sleep 0.1; n=$((n+1))
  done
  [ -f "$dir/postmaster.pid" ] && kill -KILL "$pm" 2>/dev/null
fi
[ "$keep" = 1 ] || rm -rf "$dir"
"#;

/// Options for a throwaway cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Parent directory; the cluster gets a fresh subdirectory in it.
    /// `None` = [`std::env::temp_dir`].
    pub parent_dir: Option<PathBuf>,
    /// Keep the data directory when the cluster is stopped/dropped.
    pub keep: bool,
    /// Stop the cluster automatically when this OS process exits, even if `Drop` never
    /// runs (test binaries keep the cluster in a static and never drop it). Implemented
    /// with a small detached watchdog shell process.
    pub stop_with_process: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// The superuser's password; with one, no connection is trusted (see the module docs).
    pub superuser_password: Option<SecretString>,
}

/// Why a throwaway cluster could not be started, queried or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No directory with `initdb` was found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found. Install them \
         (Debian/Ubuntu: `apt-get install -y postgresql`; \
         Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql@16`) \
         or set DROVER_PG_BINDIR to the directory containing initdb"
    )]
    BinariesNotFound,
    /// Running as root, but there is no `postgres` OS user to run the server as.
    #[error(
        "running as root, but there is no `postgres` OS user; PostgreSQL refuses to run \
         as root. Create that user (e.g. `useradd --system --user-group \
         --home-dir /var/lib/postgresql postgres`) or run as a normal user"
    )]
    NoPostgresUser,
    /// A command failed; `detail` carries its exit status and stderr (and, for server
    /// start, the tail of the server log).
    #[error("{step} failed: {detail}")]
    Command { step: &'static str, detail: String },
    /// A filesystem or process-spawn error.
    #[error("{step}: {source}")]
    Io {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(step: &'static str) -> impl FnOnce(std::io::Error) -> ClusterError {
    move |source| ClusterError::Io { step, source }
}

/// A running (or stopped-but-kept) throwaway PostgreSQL cluster.
pub struct Cluster {
    bindir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    /// Run server binaries through `runuser -u postgres` (we are root).
    as_postgres: bool,
    keep: bool,
    settings: Vec<(String, String)>,
    /// The superuser's password, when connections need one.
    password: Option<SecretString>,
    /// Whether we believe the postmaster is up.
    running: bool,
    /// `stop()` has completed (data dir removed unless `keep`).
    finished: bool,
    watchdog: Option<Child>,
}

impl Cluster {
    /// initdb + start; returns when the server accepts connections.
    pub fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        let bindir = find_bindir()?;
        let owner = running_as_root().then(postgres_ids).transpose()?;
        let parent = match opts.parent_dir {
            Some(p) => std::path::absolute(&p).map_err(io_err("resolve parent dir"))?,
            None => std::env::temp_dir(),
        };
        let data_dir = create_data_dir(&parent, owner)?;
        let (bin, dir) = (bindir.display(), data_dir.display());
        debug!(bindir = %bin, data_dir = %dir, as_postgres = owner.is_some(), "creating cluster");

        // From here on `cluster` owns the directory, so any `?` below cleans up via Drop.
        let mut cluster = Cluster {
            bindir,
            data_dir,
            port: 0,
            as_postgres: owner.is_some(),
            keep: opts.keep,
            settings: opts.settings,
            password: opts.superuser_password,
            running: false,
            finished: false,
            watchdog: None,
        };
        // Spawned before initdb so that a crash during startup is cleaned up too.
        if opts.stop_with_process {
            let child = spawn_watchdog(&cluster.data_dir, cluster.keep)
                .map_err(io_err("spawn watchdog"))?;
            cluster.watchdog = Some(child);
        }
        cluster.initdb(owner)?;
        let hba = cluster.data_dir.join("pg_hba.conf");
        let rules = if cluster.password.is_some() {
            cluster.write_pgpass()?;
            PG_HBA_PASSWORDS
        } else {
            PG_HBA
        };
        // Truncating the existing file keeps initdb's owner and mode; chown anyway in
        // case initdb did not create it.
        fs::write(&hba, rules).map_err(io_err("write pg_hba.conf"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&hba, Some(uid), Some(gid))
                .map_err(io_err("chown pg_hba.conf"))?;
        }

        for attempt in 1..=START_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => break,
                Err(ClusterError::Command { detail, .. })
                    if attempt < START_ATTEMPTS && is_port_conflict(&detail) =>
                {
                    debug!(port = cluster.port, attempt, "port taken, retrying");
                }
                Err(e) => return Err(e),
            }
        }
        let create_group = format!("CREATE ROLE {PASSWORD_AUTH_GROUP} NOLOGIN");
        cluster.psql(SUPERUSER, &create_group)?;
        let dir = cluster.data_dir.display();
        info!(port = cluster.port, data_dir = %dir, "throwaway PostgreSQL cluster ready");
        Ok(cluster)
    }

    /// TCP port the server listens on (on [`Cluster::host`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `"127.0.0.1"`: the server listens on loopback only.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The data directory (also the Unix socket directory and home of `server.log`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory the server binaries were taken from.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Superuser connection URL for database `dbname`, e.g.
    /// `postgres://postgres@127.0.0.1:PORT/dbname`. No password: enough when loopback is
    /// trusted (no [`ClusterOptions::superuser_password`]) for every role outside
    /// `drover_password_auth`; see [`Cluster::superuser_url`].
    pub fn url(&self, dbname: &str) -> String {
        let (port, db) = (self.port, percent_encode(dbname));
        format!("postgres://{SUPERUSER}@{HOST}:{port}/{db}")
    }

    /// Superuser connection URL for database `dbname` with the password, if there is one.
    pub fn superuser_url(&self, dbname: &str) -> SecretString {
        let (port, db) = (self.port, percent_encode(dbname));
        match &self.password {
            Some(p) => {
                let p = percent_encode(p.expose_secret());
                SecretString::from(format!("postgres://{SUPERUSER}:{p}@{HOST}:{port}/{db}"))
            }
            None => SecretString::from(self.url(dbname)),
        }
    }

    /// Where [`Cluster::psql`] reads the password from (in the data directory).
    fn pgpass(&self) -> PathBuf {
        self.data_dir.join("drover.pgpass")
    }

    /// The superuser's password for `psql`, in a file only we may read (libpq ignores a
    /// password file others can read); never in its environment or arguments, which
    /// `run` logs.
    fn write_pgpass(&self) -> Result<(), ClusterError> {
        let Some(password) = &self.password else {
            return Ok(());
        };
        let escaped = password
            .expose_secret()
            .replace('\\', "\\\\")
            .replace(':', "\\:");
        let line = format!("*:*:*:{SUPERUSER}:{escaped}\n");
        write_private(&self.pgpass(), line.as_bytes(), None).map_err(io_err("write pgpass"))
    }

    /// Run `psql` from the bindir as the superuser against `dbname` and return its
    /// stdout. Output is unaligned and tuples-only (`-A -t`), so `select 1` yields
    /// `"1\n"`; `ON_ERROR_STOP` makes any SQL error an `Err` carrying psql's stderr.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, ClusterError> {
        let mut cmd = Command::new(self.bindir.join("psql"));
        let port = self.port.to_string();
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        cmd.args(["-h", HOST, "-p", &port]);
        cmd.args(["-U", SUPERUSER, "-d", dbname, "-c", sql]);
        sanitize(&mut cmd);
        if self.password.is_some() {
            cmd.env("PGPASSFILE", self.pgpass());
        }
        let out = run("psql", cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stop the server (fast shutdown) and remove the data dir unless `keep`. Idempotent.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if self.finished {
            return Ok(());
        }
        if let Err(e) = self.stop_server() {
            // Fast shutdown can hang behind stuck clients; immediate never does.
            run("stop", self.pg_ctl(&["-m", "immediate", "-w", "stop"])).map_err(|_| e)?;
            self.running = false;
        }
        if let Some(mut child) = self.watchdog.take() {
            // Reap it now; it has nothing left to do.
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep {
            fs::remove_dir_all(&self.data_dir).map_err(io_err("remove data dir"))?;
        }
        self.finished = true;
        debug!(data_dir = %self.data_dir.display(), keep = self.keep, "throwaway cluster stopped");
        Ok(())
    }

    /// Stop the server (fast shutdown) but keep the data directory, e.g. for fault
    /// tests; bring it back with [`Cluster::start_server`].
    pub fn stop_server(&mut self) -> Result<(), ClusterError> {
        if !self.running {
            return Ok(());
        }
        match run("stop", self.pg_ctl(&["-m", "fast", "-w", "stop"])) {
            Ok(_) => {}
            // The server died on its own (e.g. a test killed it): that is "stopped".
            Err(_) if !self.data_dir.join("postmaster.pid").exists() => {}
            Err(e) => return Err(e),
        }
        self.running = false;
        Ok(())
    }

    /// Start the server again on the same port and data directory; returns when it
    /// accepts connections.
    pub fn start_server(&mut self) -> Result<(), ClusterError> {
        if self.running {
            return Ok(());
        }
        if self.finished && !self.keep {
            return Err(ClusterError::Command {
                step: "start",
                detail: "the cluster was stopped and its data directory removed".into(),
            });
        }
        let log = self.data_dir.join("server.log");
        // Only this attempt's part of the log is relevant to its error.
        let log_offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
        let mut cmd = self.pg_ctl(&["-w", "-t", "60", "-l"]);
        cmd.arg(&log)
            .arg("-o")
            .arg(self.server_options())
            .arg("start");
        match run("start", cmd) {
            Ok(_) => {
                self.running = true;
                self.finished = false;
                debug!(port = self.port, "server started");
                Ok(())
            }
            Err(ClusterError::Command { step, detail }) => {
                // A timed-out start may leave a postmaster behind; don't leak it.
                if self.data_dir.join("postmaster.pid").exists() {
                    let _ = run("stop", self.pg_ctl(&["-m", "immediate", "-w", "stop"]));
                }
                let log = fs::read(&log).unwrap_or_default();
                let log = String::from_utf8_lossy(log.get(log_offset..).unwrap_or_default());
                let detail = format!("{detail}\n--- server log ---\n{}", tail(&log, MAX_DETAIL));
                Err(ClusterError::Command { step, detail })
            }
            Err(e) => Err(e),
        }
    }

    fn initdb(&self, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
        let mut cmd = self.pg_command("initdb");
        cmd.arg("-D").arg(&self.data_dir);
        cmd.args(["-U", SUPERUSER, "--encoding=UTF8", "--locale=C"]);
        cmd.arg("--no-sync");
        // The password goes to initdb in a file beside the data directory (which must be
        // empty), readable by the server's user alone, and removed as soon as it ran.
        let pwfile = self.data_dir.with_extension("pwfile");
        match &self.password {
            Some(p) => {
                let line = format!("{}\n", p.expose_secret());
                write_private(&pwfile, line.as_bytes(), owner)
                    .map_err(io_err("write initdb password file"))?;
                cmd.arg("--auth=scram-sha-256").arg("--pwfile").arg(&pwfile);
            }
            None => {
                cmd.arg("--auth=trust");
            }
        }
        let ran = run("initdb", cmd);
        if self.password.is_some() {
            let _ = fs::remove_file(&pwfile);
        }
        ran.map(drop).map_err(|e| match e {
            ClusterError::Command { step, detail } if self.as_postgres => ClusterError::Command {
                step,
                detail: format!(
                    "{detail}\n(hint: as root, initdb runs as the `postgres` user, so every \
                     parent directory of {} must be searchable by it; a parent under /root or \
                     another 0700 root-owned directory will not work)",
                    self.data_dir.display()
                ),
            },
            other => other,
        })
    }

    /// `pg_ctl -o` is handed to `/bin/sh -c` by pg_ctl, so every word is shell-quoted.
    fn server_options(&self) -> String {
        let dir = self.data_dir.to_string_lossy();
        let mut words = vec!["-p".into(), self.port.to_string(), "-k".into(), dir.into()];
        let user = self.settings.iter().map(|(k, v)| format!("{k}={v}"));
        for setting in SERVER_SETTINGS.map(String::from).into_iter().chain(user) {
            words.extend(["-c".to_string(), setting]);
        }
        let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        quoted.join(" ")
    }

    /// `pg_ctl -D <data dir> args...`.
    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D").arg(&self.data_dir).args(args);
        cmd
    }

    /// A command for a server binary, wrapped in `runuser` when we are root.
    fn pg_command(&self, binary: &str) -> Command {
        let program = self.bindir.join(binary);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new(runuser_program());
            c.args(["-u", SUPERUSER, "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        sanitize(&mut cmd);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            let dir = self.data_dir.display();
            warn!(error = %e, data_dir = %dir, "failed to stop throwaway cluster");
        }
    }
}

/// Shared child setup: a cwd that `postgres` can enter (initdb otherwise fails with
/// "could not change directory to /root"), no stdin, and no inherited `PG*`
/// variables (PGDATA, PGOPTIONS, PGSSLMODE... would silently change behavior).
fn sanitize(cmd: &mut Command) {
    cmd.current_dir("/").stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

fn run(step: &'static str, mut cmd: Command) -> Result<Output, ClusterError> {
    debug!(step, command = ?cmd, "running");
    let out = cmd.output().map_err(io_err(step))?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        stderr
    };
    let detail = format!("{} ({})", tail(text.trim(), MAX_DETAIL), out.status);
    Err(ClusterError::Command { step, detail })
}

/// The last `max` bytes of `s`, cut at a char boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn is_port_conflict(detail: &str) -> bool {
    detail.contains("could not bind") || detail.contains("Address already in use")
}

fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind((HOST, 0)).map_err(io_err("pick free port"))?;
    let addr = listener.local_addr().map_err(io_err("pick free port"))?;
    Ok(addr.port())
}

/// Writes `bytes` to a new file at `path` readable by its owner alone (`owner` when given).
fn write_private(path: &Path, bytes: &[u8], owner: Option<(u32, u32)>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

fn create_data_dir(parent: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, ClusterError> {
    // A missing parent (e.g. a quickstart state dir) is created with default permissions.
    fs::create_dir_all(parent).map_err(io_err("create parent dir"))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = parent.join(format!("drover-pg-{}-{nanos}", std::process::id()));
    // `create`, not `create_dir_all`: the directory must be new, never someone else's.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(io_err("create data dir"))?;
    // A restrictive umask could strip bits; initdb insists on exactly 0700/0750.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod data dir"))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io_err("chown data dir"))?;
    }
    Ok(dir)
}

fn spawn_watchdog(data_dir: &Path, keep: bool) -> std::io::Result<Child> {
    // Without setsid, fall back to a new process group: that still survives a
    // harness (or Ctrl-C) signalling our group.
    let mut cmd = match first_existing(&["/usr/bin/setsid", "/bin/setsid"]) {
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
    cmd.arg("-c").arg(WATCHDOG_SCRIPT).arg("drover-pg-watchdog");
    cmd.arg(std::process::id().to_string())
        .arg(data_dir)
        .arg(if keep { "1" } else { "0" });
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
}

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Absolute path when we can find one: cargo and CI often run with a PATH lacking sbin.
fn runuser_program() -> PathBuf {
    let known = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"];
    first_existing(&known).unwrap_or_else(|| PathBuf::from("runuser"))
}

/// Effective uid from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid_from_status(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(uid) = effective_uid_from_status(&status) {
        return uid == 0;
    }
    // No procfs (macOS): ask `id`.
    id_query(&["-u"]) == Some(0)
}

fn id_query(args: &[&str]) -> Option<u32> {
    let out = Command::new("id")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| text.trim().parse().ok())
        .flatten()
}

fn postgres_ids() -> Result<(u32, u32), ClusterError> {
    let uid = id_query(&["-u", SUPERUSER]).ok_or(ClusterError::NoPostgresUser)?;
    let gid = id_query(&["-g", SUPERUSER]).ok_or(ClusterError::NoPostgresUser)?;
    Ok((uid, gid))
}

fn has_initdb(dir: &Path) -> bool {
    dir.join("initdb").is_file()
}

fn find_bindir() -> Result<PathBuf, ClusterError> {
    let env_dir = std::env::var_os("DROVER_PG_BINDIR").filter(|v| !v.is_empty());
    let env_dir = env_dir.map(PathBuf::from);
    // An explicit choice that does not work is an error, not a hint to look elsewhere:
    // silently using another PostgreSQL version would surprise whoever set it.
    if let Some(dir) = env_dir.as_deref() {
        if !has_initdb(dir) {
            warn!(dir = %dir.display(), "DROVER_PG_BINDIR has no initdb");
            return Err(ClusterError::BinariesNotFound);
        }
    }
    // Debian's /usr/bin/pg_config may describe a client-only install, hence the check below.
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let candidates = bindir_candidates(
        env_dir,
        pg_config,
        &dir_names(Path::new("/usr/lib/postgresql"), ""),
        &dir_names(Path::new("/opt/homebrew/opt"), "postgresql@"),
        &dir_names(Path::new("/usr"), "pgsql-"),
    );
    let found = candidates.into_iter().find(|d| has_initdb(d));
    found.ok_or(ClusterError::BinariesNotFound)
}

/// Version suffixes of entries in `root` named `<prefix><version>`.
fn dir_names(root: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(prefix).map(str::to_string))
        .collect()
}

/// Search order: explicit env, pg_config, Debian versioned dirs (newest first),
/// source-build and Homebrew locations, then RPM (PGDG) versioned dirs.
fn bindir_candidates(
    env_dir: Option<PathBuf>,
    pg_config: Option<PathBuf>,
    debian_versions: &[String],
    brew_versions: &[String],
    rpm_versions: &[String],
) -> Vec<PathBuf> {
    // `pattern` has one `*`, replaced by each version, highest version first.
    let newest_first = |versions: &[String], pattern: &str| {
        let mut v: Vec<&String> = versions.iter().collect();
        v.sort_by_key(|s| std::cmp::Reverse(version_key(s)));
        v.into_iter()
            .map(|s| PathBuf::from(pattern.replace('*', s)))
            .collect::<Vec<_>>()
    };
    let mut out: Vec<PathBuf> = env_dir.into_iter().chain(pg_config).collect();
    out.extend(newest_first(debian_versions, "/usr/lib/postgresql/*/bin"));
    out.extend(
        [
            "/usr/local/pgsql/bin",
            "/opt/homebrew/bin",
            "/usr/local/bin",
        ]
        .map(PathBuf::from),
    );
    // Homebrew's versioned formulae are keg-only: not linked into /opt/homebrew/bin.
    out.extend(newest_first(
        brew_versions,
        "/opt/homebrew/opt/postgresql@*/bin",
    ));
    out.extend(newest_first(rpm_versions, "/usr/pgsql-*/bin"));
    out
}

/// "9.6" -> [9, 6], "15" -> [15]; non-numeric parts sort lowest.
fn version_key(s: &str) -> Vec<u32> {
    s.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bindir_candidates_order() {
        let c = bindir_candidates(
            Some("/env/bin".into()),
            Some("/usr/lib/postgresql/14/bin".into()),
            &strings(&["9.6", "15", "13"]),
            &strings(&["16"]),
            &strings(&["12", "16"]),
        );
        let c: Vec<_> = c.iter().map(|p| p.to_str().unwrap()).collect();
        let expected = "/env/bin /usr/lib/postgresql/14/bin /usr/lib/postgresql/15/bin \
            /usr/lib/postgresql/13/bin /usr/lib/postgresql/9.6/bin /usr/local/pgsql/bin \
            /opt/homebrew/bin /usr/local/bin /opt/homebrew/opt/postgresql@16/bin \
            /usr/pgsql-16/bin /usr/pgsql-12/bin";
        assert_eq!(c.join(" "), expected);
    }

    #[test]
    fn error_messages_name_the_fix() {
        let msg = ClusterError::BinariesNotFound.to_string();
        let fixes = [
            "apt-get install -y postgresql",
            "dnf install postgresql-server",
        ];
        for needle in fixes
            .into_iter()
            .chain(["brew install postgresql@16", "DROVER_PG_BINDIR"])
        {
            assert!(msg.contains(needle), "{msg}");
        }
        let msg = ClusterError::NoPostgresUser.to_string();
        assert!(msg.contains("`postgres` OS user") && msg.contains("normal user"));
    }

    #[test]
    fn helpers() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\n";
        assert_eq!(effective_uid_from_status(status), Some(0));
        assert_eq!(shell_quote("fsync=off"), "fsync=off");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(percent_encode("t-1 x/y"), "t-1%20x%2Fy");
        assert_eq!(tail("héllo", 4), "llo");
        let log = "LOG: could not bind IPv4 address \"127.0.0.1\": Address already in use";
        assert!(is_port_conflict(log));
    }
}
