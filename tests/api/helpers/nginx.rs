//! A real nginx (Debian's `nginx` package) ending TLS in front of a daemon, as the README's
//! deployments do: its own directory, configuration and self-signed certificate for
//! `localhost` (made with the openssl CLI), on a port of the caller's choosing, killed
//! when dropped.
//!
//! The binary is `DROVER_NGINX`, else `/usr/sbin/nginx`, else `PATH`. Without it the tests
//! print a loud "skipping" line and pass, unless `DROVER_REQUIRE_NGINX=1` (CI sets it),
//! which makes that a failure.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{temp_dir, wait_until};

/// A running nginx: `https://localhost:{port}` → `http://{upstream}`.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

/// The nginx binary, or `None` after a loud line (a panic with `DROVER_REQUIRE_NGINX=1`).
pub fn find_nginx() -> Option<PathBuf> {
    let found = std::env::var_os("DROVER_NGINX")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .or_else(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|d| d.join("nginx"))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        let why = "no nginx (DROVER_NGINX, /usr/sbin/nginx or PATH); apt-get install -y nginx";
        assert!(
            std::env::var("DROVER_REQUIRE_NGINX").as_deref() != Ok("1"),
            "nginx is required (DROVER_REQUIRE_NGINX=1) but not available: {why}"
        );
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let _ = writeln!(
            std::io::stderr(),
            "\n*** {test}: skipping: {why}\n*** (set DROVER_REQUIRE_NGINX=1 to make this a failure)"
        );
    }
    found
}

impl Nginx {
    /// Starts `binary` serving HTTPS on `127.0.0.1:{port}` and proxying to `upstream`,
    /// setting `X-Forwarded-Proto`, `-Host` and `-For` as a deployment would; returns once
    /// `/healthz` answers through it.
    pub async fn start(binary: &Path, port: u16, upstream: SocketAddr) -> Nginx {
        let dir = temp_dir("nginx");
        self_signed_certificate(&dir);
        let d = dir.display();
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port} ssl;\n\
                 server_name localhost;\n\
                 ssl_certificate {d}/proxy.crt;\n\
                 ssl_certificate_key {d}/proxy.key;\n\
                 location / {{\n\
                   proxy_pass http://{upstream};\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Host $http_host;\n\
                   proxy_set_header X-Forwarded-Proto $scheme;\n\
                   proxy_set_header X-Forwarded-Host $http_host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                   # The console's event stream: pass each event on at once.\n\
                   proxy_buffering off;\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut nginx = Nginx { child, dir, port };
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let url = format!("{}/healthz", nginx.url());
        let ready = wait_until(Duration::from_secs(20), || async {
            matches!(client.get(&url).send().await, Ok(r) if r.status().is_success())
        })
        .await;
        if !ready {
            let exited = nginx.child.try_wait().ok().flatten();
            panic!(
                "nginx did not proxy {url} within 20s (exited: {exited:?})\n--- error.log ---\n{}{}",
                std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default(),
                std::fs::read_to_string(nginx.dir.join("stderr.log")).unwrap_or_default(),
            );
        }
        nginx
    }

    /// `https://localhost:{port}`: the origin browsers see.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

/// `proxy.crt` / `proxy.key` in `dir`: a P-256 certificate for `localhost`, signed by itself.
fn self_signed_certificate(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            "proxy.key",
            "-out",
            "proxy.crt",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the openssl CLI (apt-get install -y openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `master_process off`: this one process is all of nginx.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
