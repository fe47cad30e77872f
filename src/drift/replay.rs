//! The expected schema of each version: the migration set replayed on a scratch database
//! (`drift_scratch_url`), fingerprinted after each version, cached by set id
//! (`control_plane.drift_expected`).
//!
//! ```text
//!  admin connection ─► CREATE DATABASE drover_replay_<random hex>
//!    ─► per file, in order: the file (in a transaction; a no-transaction file statement
//!       by statement, split by PostgreSQL's parser, as the runner does) ─► fingerprint
//!    ─► DROP DATABASE … WITH (FORCE) (also when a file failed)
//!  ─► save every version's fingerprint in one control transaction
//! ```
//!
//! The scratch server should run the fleet's PostgreSQL major version: catalog text
//! (`pg_get_indexdef`, `pg_get_viewdef`) may read differently across majors.

use std::path::Path;

use deadpool_postgres::Pool;
use secrecy::SecretString;

use super::{fingerprint, store, DriftError, Fingerprint};
use crate::migrate::split::split_statements;
use crate::migrate::MigrationSet;

fn scratch_err(what: &str, e: impl std::fmt::Display) -> DriftError {
    DriftError::Scratch(format!("{what}: {e}"))
}

/// Replays `set` unless it was replayed before; returns how many versions were saved.
#[tracing::instrument(skip_all, fields(set = %set.id()))]
pub async fn ensure(
    pool: &Pool,
    scratch_url: &SecretString,
    default_ca: Option<&Path>,
    set: &MigrationSet,
) -> Result<usize, DriftError> {
    let set_id = set.id();
    {
        let client = pool.get().await.map_err(|e| DriftError::Db(e.into()))?;
        if store::replayed(&**client, &set_id).await? {
            return Ok(0);
        }
    }
    let fps = replay(scratch_url, default_ca, set).await?;
    let mut client = pool.get().await.map_err(|e| DriftError::Db(e.into()))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| DriftError::Db(e.into()))?;
    for (version, fp) in &fps {
        store::save_expected(&*tx, &set_id, *version, fp).await?;
    }
    tx.commit().await.map_err(|e| DriftError::Db(e.into()))?;
    tracing::info!(
        versions = fps.len(),
        "migration set replayed on the scratch database"
    );
    Ok(fps.len())
}

/// Runs the set on a fresh scratch database and fingerprints it after each version.
pub async fn replay(
    scratch_url: &SecretString,
    default_ca: Option<&Path>,
    set: &MigrationSet,
) -> Result<Vec<(i32, Fingerprint)>, DriftError> {
    let target = crate::db::parse_url(scratch_url, "drift_scratch_url")?;
    let admin = target
        .connect(default_ca)
        .await
        .map_err(|e| scratch_err("connecting to drift_scratch_url", e))?;
    // A name nobody else uses; quoted, and made of hex digits only.
    let mut random = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| scratch_err("naming the scratch database", "no random bytes"))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("drover_replay_{suffix}");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(|e| scratch_err("creating the scratch database", crate::db::describe(&e)))?;
    let mut scratch = target.clone();
    scratch.config.dbname(&name);
    let result = async {
        let client = scratch
            .connect(default_ca)
            .await
            .map_err(|e| scratch_err("connecting to the scratch database", e))?;
        let mut out = Vec::with_capacity(set.files().len());
        for file in set.files() {
            run_file(&client, file).await?;
            out.push((file.version, fingerprint::take(&client).await?));
        }
        Ok(out)
    }
    .await;
    if let Err(e) = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
    {
        tracing::warn!(database = %name, error = %crate::db::describe(&e), "scratch database not dropped");
    }
    result
}

async fn run_file(
    client: &tokio_postgres::Client,
    file: &crate::migrate::MigrationFile,
) -> Result<(), DriftError> {
    let failed = |e: tokio_postgres::Error| {
        scratch_err(
            &format!("replaying V{}__{}", file.version, file.name),
            crate::db::describe(&e),
        )
    };
    if file.no_transaction {
        for stmt in split_statements(&file.sql) {
            client.batch_execute(stmt).await.map_err(failed)?;
        }
        return Ok(());
    }
    // A file whose last statement lacks its semicolon must not swallow the COMMIT.
    let sql = format!("BEGIN;\n{}\n;\nCOMMIT;", file.sql);
    client.batch_execute(&sql).await.map_err(failed)
}
