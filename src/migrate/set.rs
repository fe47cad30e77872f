//! The tenant migration set: `V{n}__{name}.sql` files loaded from `DROVER_MIGRATIONS_DIR`.
//!
//! refinery silently skips files whose names it does not like (`V3__add-col.sql` has a
//! hyphen); here every `.sql` file must match `^V(\d+)__(\w+)\.sql$` or loading fails
//! with the file's name. Versions are refinery's default int4 (`int8-versions` is not
//! enabled): the stock refinery CLI can inspect and repair any tenant.
//!
//! A file whose first line is `-- drover:no-transaction` runs statement by statement
//! outside a transaction (for `CREATE INDEX CONCURRENTLY`, `ALTER TYPE … ADD VALUE`).

use std::path::{Path, PathBuf};

/// First line that marks a file as non-transactional.
pub const NO_TRANSACTION_MARKER: &str = "-- drover:no-transaction";

/// One migration file.
#[derive(Debug, Clone)]
pub struct MigrationFile {
    /// refinery version.
    pub version: i32,
    /// The part after `__`.
    pub name: String,
    /// refinery's checksum of name, version and SQL.
    pub checksum: u64,
    /// The SQL text.
    pub sql: String,
    /// Runs outside a transaction, statement by statement.
    pub no_transaction: bool,
}

impl MigrationFile {
    /// The file name, `V{version}__{name}.sql`.
    pub fn file_name(&self) -> String {
        format!("V{}__{}.sql", self.version, self.name)
    }

    /// The refinery migration for this file.
    pub fn refinery(&self) -> refinery::Migration {
        // The name was validated against refinery's own pattern at load time.
        refinery::Migration::unapplied(&format!("V{}__{}", self.version, self.name), &self.sql)
            .unwrap_or_else(|e| unreachable!("validated migration name rejected by refinery: {e}"))
    }
}

/// Why the directory cannot be used. None of these is retryable: a person must fix the files.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {why}")]
    Io { path: PathBuf, why: String },
    /// A `.sql` file whose name refinery would silently skip.
    #[error("{file}: migration file names must look like V{{n}}__{{name}}.sql with name made of letters, digits and '_' ({why})")]
    BadName { file: String, why: &'static str },
    /// Two files with one version.
    #[error("version {version} is used by both {a} and {b}")]
    Duplicate { version: i32, a: String, b: String },
}

/// Where a set's files came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SetSource {
    /// This replica's `DROVER_MIGRATIONS_DIR`.
    #[default]
    Directory,
    /// Pushed to the control DB (`POST /v1/migration-sets`): the same on every replica.
    Pushed,
}

impl SetSource {
    /// The spelling stored in a wave's plan (`migration_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            SetSource::Directory => "directory",
            SetSource::Pushed => "pushed",
        }
    }
}

/// The loaded set, sorted by version.
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    files: Vec<MigrationFile>,
    source: SetSource,
    /// The older id a set published before ids hashed the contents is stored under
    /// ([`MigrationSet::legacy_id`]); `None`: the set goes by its content id.
    legacy: Option<String>,
}

/// Parses `V12__add_users.sql` into (12, "add_users").
fn parse_name(file: &str) -> Result<(i32, String), &'static str> {
    let stem = file.strip_suffix(".sql").ok_or("not a .sql file")?;
    let rest = stem.strip_prefix('V').ok_or("must start with V")?;
    let (num, name) = rest
        .split_once("__")
        .ok_or("missing '__' between version and name")?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err("version must be digits");
    }
    let version: i32 = num.parse().map_err(|_| "version does not fit in 32 bits")?;
    if version <= 0 {
        return Err("version must be positive");
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("name may only contain letters, digits and '_'");
    }
    Ok((version, name.to_string()))
}

impl MigrationSet {
    /// Loads and validates every `.sql` file in `dir` (other files are ignored).
    pub fn load(dir: &Path) -> Result<MigrationSet, SetError> {
        let io = |path: &Path, e: std::io::Error| SetError::Io {
            path: path.to_path_buf(),
            why: e.to_string(),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if !file.to_ascii_lowercase().ends_with(".sql") {
                continue;
            }
            let sql = std::fs::read_to_string(entry.path()).map_err(|e| io(&entry.path(), e))?;
            files.push((file, sql));
        }
        MigrationSet::from_files(files)
    }

    /// Validates `(file name, SQL)` pairs (a directory's, or a pushed set's) with the same
    /// rules: every name must parse, no version twice.
    pub fn from_files(
        named: impl IntoIterator<Item = (String, String)>,
    ) -> Result<MigrationSet, SetError> {
        let mut files: Vec<MigrationFile> = Vec::new();
        for (file, sql) in named {
            let (version, name) = parse_name(&file).map_err(|why| SetError::BadName {
                file: file.clone(),
                why,
            })?;
            let no_transaction = sql
                .lines()
                .next()
                .is_some_and(|l| l.trim() == NO_TRANSACTION_MARKER);
            let checksum = refinery::Migration::unapplied(&format!("V{version}__{name}"), &sql)
                .map_err(|_| SetError::BadName {
                    file: file.clone(),
                    why: "rejected by refinery",
                })?
                .checksum();
            files.push(MigrationFile {
                version,
                name,
                checksum,
                sql,
                no_transaction,
            });
        }
        files.sort_by_key(|f| f.version);
        for pair in files.windows(2) {
            if pair[0].version == pair[1].version {
                return Err(SetError::Duplicate {
                    version: pair[0].version,
                    a: pair[0].file_name(),
                    b: pair[1].file_name(),
                });
            }
        }
        Ok(MigrationSet {
            files,
            source: SetSource::Directory,
            legacy: None,
        })
    }

    /// The same files, marked as coming from `source`.
    pub fn with_source(mut self, source: SetSource) -> MigrationSet {
        self.source = source;
        self
    }

    /// Where the files came from.
    pub fn source(&self) -> SetSource {
        self.source
    }

    /// The same files, known by `id` when that is their [`MigrationSet::legacy_id`] (a set
    /// read back from the control DB under the id it was published with); otherwise
    /// unchanged. Waves that run it name that id.
    pub fn published_as(mut self, id: &str) -> MigrationSet {
        if id != self.content_id() && id == self.legacy_id() {
            self.legacy = Some(id.to_string());
        }
        self
    }

    /// The id this set goes by: its content id ([`MigrationSet::content_id`]), or the
    /// older id it was published under ([`MigrationSet::published_as`]).
    pub fn id(&self) -> String {
        self.legacy.clone().unwrap_or_else(|| self.content_id())
    }

    /// The content address: the SHA-256 (lowercase hex) of every file's name and whole
    /// SQL text, in version order, each as a netstring (its length in bytes in decimal,
    /// `:`, the bytes, `,`):
    ///
    /// ```text
    /// sha256( for each file by version: netstring("V1__a.sql") netstring(sql) )
    /// netstring("V1__a.sql") = "9:V1__a.sql,"
    /// ```
    ///
    /// Every byte of every file counts, and the lengths keep names and contents from
    /// running into each other. The same files give the same id on every machine,
    /// wherever they were read from.
    pub fn content_id(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for f in &self.files {
            for part in [f.file_name().as_bytes(), f.sql.as_bytes()] {
                ctx.update(format!("{}:", part.len()).as_bytes());
                ctx.update(part);
                ctx.update(b",");
            }
        }
        hex(ctx.finish().as_ref())
    }

    /// The id sets had before [`MigrationSet::content_id`] hashed the files' contents: the SHA-256
    /// of each file's `name\trefinery checksum\n`. Sets published then keep it (their rows
    /// never change); it only confirms that such a set's stored files are the ones it was
    /// published with, and lets a push of the same files find it.
    pub fn legacy_id(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for f in &self.files {
            ctx.update(format!("{}\t{}\n", f.file_name(), f.checksum).as_bytes());
        }
        hex(ctx.finish().as_ref())
    }

    /// Whether `id` is this set's content id, or its [`MigrationSet::legacy_id`].
    pub fn answers_to(&self, id: &str) -> bool {
        self.content_id() == id || self.legacy_id() == id
    }

    /// The size of all SQL, in bytes.
    pub fn total_bytes(&self) -> usize {
        self.files.iter().map(|f| f.sql.len()).sum()
    }

    /// All files, by version.
    pub fn files(&self) -> &[MigrationFile] {
        &self.files
    }

    /// The highest version, if any.
    pub fn latest(&self) -> Option<i32> {
        self.files.last().map(|f| f.version)
    }

    /// The file with this version.
    pub fn get(&self, version: i32) -> Option<&MigrationFile> {
        self.files
            .binary_search_by_key(&version, |f| f.version)
            .ok()
            .map(|i| &self.files[i])
    }

    /// (version, name, checksum) of every file: frozen into a wave's plan so every replica
    /// can prove it runs the same SQL.
    pub fn fingerprint(&self) -> Vec<(i32, String, String)> {
        self.files
            .iter()
            .map(|f| (f.version, f.name.clone(), f.checksum.to_string()))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refinery_would_skip_are_errors() {
        assert_eq!(parse_name("V3__add_col.sql"), Ok((3, "add_col".into())));
        assert!(parse_name("V3__add-col.sql").is_err());
        assert!(parse_name("V3_add_col.sql").is_err());
        assert!(parse_name("v3__add_col.sql").is_err());
        assert!(parse_name("U3__add_col.sql").is_err());
        assert!(parse_name("V__x.sql").is_err());
        assert!(parse_name("V99999999999__x.sql").is_err());
    }

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("drover-set-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, sql) in files {
            std::fs::write(dir.join(name), sql).unwrap();
        }
        dir
    }

    #[test]
    fn a_hyphenated_file_name_fails_the_load_naming_the_file() {
        let dir = dir_with(&[
            ("V1__ok.sql", "select 1;"),
            ("V2__add-col.sql", "select 2;"),
        ]);

        let err = MigrationSet::load(&dir).unwrap_err();

        assert!(err.to_string().contains("V2__add-col.sql"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn loads_sorted_with_checksums_and_no_transaction_flags() {
        let dir = dir_with(&[
            (
                "V10__idx.sql",
                "-- drover:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
            ),
            ("V2__t.sql", "CREATE TABLE t (a int);"),
            ("README.md", "not a migration"),
        ]);

        let set = MigrationSet::load(&dir).unwrap();

        let versions: Vec<i32> = set.files().iter().map(|f| f.version).collect();
        assert_eq!(versions, vec![2, 10]);
        assert!(set.get(10).unwrap().no_transaction);
        assert!(!set.get(2).unwrap().no_transaction);
        assert_eq!(
            set.get(2).unwrap().checksum,
            set.get(2).unwrap().refinery().checksum()
        );
        assert_eq!(set.latest(), Some(10));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let dir = dir_with(&[("V1__a.sql", "select 1;"), ("V01__b.sql", "select 1;")]);

        let err = MigrationSet::load(&dir).unwrap_err();

        assert!(
            matches!(err, SetError::Duplicate { version: 1, .. }),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_id_depends_on_names_and_contents_only() {
        let a = MigrationSet::from_files([
            ("V2__b.sql".to_string(), "select 2;".to_string()),
            ("V1__a.sql".to_string(), "select 1;".to_string()),
        ])
        .unwrap();
        let same = MigrationSet::from_files([
            ("V1__a.sql".to_string(), "select 1;".to_string()),
            ("V2__b.sql".to_string(), "select 2;".to_string()),
        ])
        .unwrap()
        .with_source(SetSource::Pushed);
        let edited = MigrationSet::from_files([
            ("V1__a.sql".to_string(), "select 1;".to_string()),
            ("V2__b.sql".to_string(), "select 3;".to_string()),
        ])
        .unwrap();

        assert_eq!(a.id(), same.id());
        assert_ne!(a.id(), edited.id());
        assert_eq!(a.id().len(), 64);
        assert!(a.answers_to(&a.legacy_id()) && a.answers_to(&a.id()));
        assert!(!edited.answers_to(&a.legacy_id()));
    }

    #[test]
    fn the_id_is_the_sha256_of_the_names_and_contents_as_netstrings() {
        let set = MigrationSet::from_files([
            ("V2__b.sql".to_string(), "select 'é';".to_string()),
            ("V1__a.sql".to_string(), "select 1;".to_string()),
        ])
        .unwrap();
        let encoded = "9:V1__a.sql,9:select 1;,9:V2__b.sql,12:select 'é';,";
        let digest = ring::digest::digest(&ring::digest::SHA256, encoded.as_bytes());

        assert_eq!(set.id(), hex(digest.as_ref()));
        assert_ne!(set.id(), set.legacy_id());
        let old = set.legacy_id();
        let stored = set.clone().published_as(&old);
        assert_eq!(stored.id(), old);
        assert_eq!(set.clone().published_as("f00").id(), set.content_id());
    }

    #[test]
    fn the_example_tenant_migrations_load() {
        let set = MigrationSet::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tenant-migrations"
        )))
        .unwrap();
        assert!(set.latest().unwrap() >= 3);
    }
}
