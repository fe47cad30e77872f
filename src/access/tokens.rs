//! Named tokens in `control_plane.access_tokens`: created (the token is returned once and
//! only its SHA-256 is stored), listed, revoked, and checked for every request.
//!
//! Checks read this replica's copy of the table ([`super::snapshot`]), never the table
//! itself: a token revoked (or expired) on any replica is refused everywhere within 2 s,
//! at once on the replica that revoked it, and a made-up token costs no query.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use ring::rand::SecureRandom;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::snapshot::Snapshot;
use super::{AccessError, Principal, Role};

/// Prefix of every named token, so a leaked one is recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "drv_";

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1-63 of `a-z 0-9 . _ -`, starting and ending with a letter or digit.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$"
    )]
    pub name: String,
    /// `viewer`, `resolver`, `operator` or `admin`.
    #[schema(value_type = crate::access::Role)]
    pub role: String,
    /// `90d`, `12h`, `30m`, `3600s` (or plain seconds); none: never expires.
    #[serde(default)]
    #[schema(pattern = "^[0-9]+(ms|s|m|h|d)?$")]
    pub expires_in: Option<String>,
}

/// A token as listed: never its value or hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    #[schema(required)]
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The answer to `POST /v1/tokens`: the only time the token is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub name: String,
    pub role: Role,
    /// The bearer token. Not a `SecretString`: it goes into this one response body.
    pub token: String,
    #[schema(required)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live token.
    Valid(Principal),
    /// It existed and has expired.
    Expired,
    /// Unknown (never issued, or revoked).
    Unknown,
}

/// The token table and this replica's copy of it.
pub struct TokenStore {
    pool: Pool,
    snapshot: Arc<Snapshot>,
    rng: ring::rand::SystemRandom,
}

/// SHA-256 of a token: what the table stores and lookups use.
pub fn sha256(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn info_from_row(row: &Row) -> Result<TokenInfo, AccessError> {
    let role: String = row.try_get("role")?;
    Ok(TokenInfo {
        name: row.try_get("name")?,
        role: role.parse()?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// Checks a token name (the table's constraint repeats it).
fn validate_name(name: &str) -> Result<(), AccessError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(AccessError::Invalid {
            field: "name",
            message: "must be 1-63 of a-z, 0-9, '.', '_', '-', starting and ending with a letter or digit".into(),
        })
    }
}

/// `expires_in` → a duration of at least one second and at most ten years.
fn parse_expires_in(s: &str) -> Result<chrono::Duration, AccessError> {
    let bad = |m: String| AccessError::Invalid {
        field: "expires_in",
        message: m,
    };
    let d = crate::duration::parse_duration(s.trim()).map_err(bad)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(10 * 365 * 86_400) {
        return Err(bad("must be between 1s and 3650d".into()));
    }
    chrono::Duration::from_std(d).map_err(|e| bad(e.to_string()))
}

const COLS: &str = "name, role, created_by, created_at, expires_at, last_used_at";

impl TokenStore {
    /// A store over the control pool.
    pub fn new(pool: Pool) -> Self {
        TokenStore {
            snapshot: Arc::new(Snapshot::new(pool.clone())),
            pool,
            rng: ring::rand::SystemRandom::new(),
        }
    }

    /// Reads the token table into this replica's copy (at start-up, so the first request
    /// does not wait for it).
    pub async fn load(&self) -> Result<(), AccessError> {
        self.snapshot.reload().await
    }

    /// The copy, for the `token-refresh` task ([`super::snapshot::run`]).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.clone()
    }

    /// Issues a token. Returns it once; only its hash is kept.
    pub async fn create(
        &self,
        new: &NewToken,
        created_by: &str,
    ) -> Result<CreatedToken, AccessError> {
        validate_name(&new.name)?;
        let role: Role = new.role.parse()?;
        let expires_in = new
            .expires_in
            .as_deref()
            .map(parse_expires_in)
            .transpose()?;
        let mut random = [0u8; 32];
        self.rng.fill(&mut random).map_err(|_| {
            AccessError::Db(crate::db::DbError::Internal(
                "the system random generator failed".into(),
            ))
        })?;
        let token = SecretString::from(format!("{TOKEN_PREFIX}{}", hex(&random)));
        let hash = sha256(token.expose_secret());
        let expires_at = expires_in.map(|d| Utc::now() + d);
        const SQL: &str = "INSERT INTO control_plane.access_tokens \
             (name, role, token_hash, created_by, expires_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO NOTHING";
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .execute(
                SQL,
                &[
                    &new.name,
                    &role.as_str(),
                    &&hash[..],
                    &created_by,
                    &expires_at,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(AccessError::Duplicate(new.name.clone()));
        }
        // The name and role, never the token.
        let payload = serde_json::json!({ "token": new.name, "role": role.as_str(),
            "expires_at": expires_at });
        crate::audit::record(&*tx, "token.created", created_by, None, payload).await?;
        tx.commit().await?;
        let principal = Principal {
            identity: format!("token:{}", new.name),
            role,
        };
        self.snapshot.created(hash, principal, expires_at).await;
        tracing::info!(name = %new.name, %role, actor = created_by, "token created");
        Ok(CreatedToken {
            name: new.name.clone(),
            role,
            token: token.expose_secret().to_string(),
            expires_at,
        })
    }

    /// Every token, by name, with the uses this replica saw up to now.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, AccessError> {
        self.snapshot.flush_used().await?;
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("SELECT {COLS} FROM control_plane.access_tokens ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(info_from_row).collect()
    }

    /// Revokes (deletes) a token; this replica forgets it at once, the others when the
    /// deletion's notification arrives (within 2 s at worst).
    pub async fn revoke(&self, name: &str, actor: &str) -> Result<TokenInfo, AccessError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "DELETE FROM control_plane.access_tokens WHERE name = $1 RETURNING {COLS}"
                ),
                &[&name],
            )
            .await?
            .ok_or_else(|| AccessError::NotFound(name.to_string()))?;
        let info = info_from_row(&row)?;
        let payload = serde_json::json!({ "token": name, "role": info.role });
        crate::audit::record(&*tx, "token.revoked", actor, None, payload).await?;
        tx.commit().await?;
        self.snapshot.revoked(&format!("token:{name}")).await;
        tracing::info!(name, actor, "token revoked");
        Ok(info)
    }

    /// Who `presented` is, if it is a named token.
    pub async fn authenticate(&self, presented: &str) -> Result<Lookup, AccessError> {
        self.authenticate_hash(&sha256(presented)).await
    }

    /// Who the token with this SHA-256 is: the same check as [`Self::authenticate`], for
    /// callers that kept the hash and not the token (web console sessions, open streams).
    pub async fn authenticate_hash(&self, hash: &[u8; 32]) -> Result<Lookup, AccessError> {
        self.snapshot.check(hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table_constraint() {
        for ok in ["ci", "grafana-ro", "team.payments_1", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Admin", "a b", "a/b", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_accepts_days_and_refuses_nonsense() {
        assert_eq!(parse_expires_in("90d").unwrap(), chrono::Duration::days(90));
        assert_eq!(
            parse_expires_in("3600").unwrap(),
            chrono::Duration::hours(1)
        );
        assert!(parse_expires_in("0s").is_err());
        assert!(parse_expires_in("soon").is_err());
        assert!(parse_expires_in("99999d").is_err());
    }

    #[test]
    fn the_hash_is_sha256_hex_of_the_token() {
        assert_eq!(
            hex(&sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
