//! Temporary directories a daemon reads: `file:` secrets and tenant migrations (with the
//! counted migrations the wave tests run), each removed when dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A new empty directory `drover-test-{kind}-{pid}-{n}` under the system temp dir.
pub fn temp_dir(kind: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "drover-test-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh directory for `file:` secrets, removed when dropped.
pub struct SecretsDir(pub PathBuf);

impl SecretsDir {
    /// Creates an empty directory.
    pub fn new() -> SecretsDir {
        SecretsDir(temp_dir("secrets"))
    }

    /// Writes `value` (plus a newline, as editors do) to `name`.
    pub fn put(&self, name: &str, value: &str) {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{value}\n")).unwrap();
    }

    /// The directory as a string for DROVER_SECRETS_DIR.
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SecretsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A temporary tenant-migrations directory.
pub struct MigrationsDir(pub PathBuf);

impl MigrationsDir {
    /// A directory holding `files` (name, SQL).
    pub fn new(files: &[(&str, &str)]) -> MigrationsDir {
        let d = MigrationsDir(temp_dir("migrations"));
        for (name, sql) in files {
            d.put(name, sql);
        }
        d
    }

    /// A directory holding owned `files` (name, SQL), as [`counted_migrations`] returns them.
    pub fn owned(files: &[(String, String)]) -> MigrationsDir {
        MigrationsDir::new(
            &files
                .iter()
                .map(|(n, s)| (n.as_str(), s.as_str()))
                .collect::<Vec<_>>(),
        )
    }

    /// Adds or replaces a file.
    pub fn put(&self, name: &str, sql: &str) {
        std::fs::write(self.0.join(name), sql).unwrap();
    }

    /// The path as a string.
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for MigrationsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Migrations whose every step leaves a row in `side_effects`, so a test can prove each
/// ran exactly once per tenant. `sleep` slows V2 and V3 down to widen crash windows.
pub fn counted_migrations(sleep_secs: f64) -> Vec<(String, String)> {
    vec![
        (
            "V1__side_effects.sql".into(),
            "CREATE TABLE side_effects (version int NOT NULL, at timestamptz DEFAULT clock_timestamp());\n\
             INSERT INTO side_effects (version) VALUES (1);"
                .into(),
        ),
        (
            "V2__widgets.sql".into(),
            format!("CREATE TABLE widgets (id int PRIMARY KEY, name text);\nINSERT INTO side_effects (version) VALUES (2);\nSELECT pg_sleep({sleep_secs});"),
        ),
        (
            "V3__widget_colour.sql".into(),
            format!("ALTER TABLE widgets ADD COLUMN colour text;\nINSERT INTO side_effects (version) VALUES (3);\nSELECT pg_sleep({sleep_secs});"),
        ),
    ]
}

/// [`counted_migrations`] without delays, as a directory.
pub fn counted_migrations_dir() -> MigrationsDir {
    MigrationsDir::owned(&counted_migrations(0.0))
}
