//! Why migrating one tenant failed, and whether trying again can help.

use super::sqlstate;
use crate::secrets::SecretError;
use serde::{Deserialize, Serialize};

/// A failed tenant migration. Messages carry the PostgreSQL SQLSTATE, message and detail;
/// never a password. The message and detail may quote row values, so they are for the wave
/// target's error (operators and above); what leaves drover is [`MigrateError::public`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum MigrateError {
    /// Could not connect (refused, reset, DNS, TLS handshake, too many connections).
    #[error("cannot connect to the tenant database: {0}")]
    Connect(String),
    /// The server or its certificate refused us for good (TLS verification, bad config).
    #[error("cannot connect to the tenant database: {0}")]
    Refused(String),
    /// The tenant's secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Another runner holds the tenant's migration lock.
    #[error("another runner holds the tenant's migration lock (waited {waited_ms} ms)")]
    LockBusy { waited_ms: u64 },
    /// A migration failed in PostgreSQL.
    #[error("V{version}: {code}: {message}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Sql {
        version: i32,
        code: String,
        message: String,
        detail: Option<String>,
    },
    /// A migration gave up waiting for a lock (55P03) after every attempt of its schedule;
    /// `blockers` are the sessions it waited for (empty when none could be read).
    #[error("V{version}: 55P03: {message}{}", blocked_by(blockers))]
    LockTimeout {
        version: i32,
        message: String,
        blockers: Vec<Blocker>,
    },
    /// History drift: the tenant's history disagrees with the migration files (an applied
    /// file edited or missing); never repaired automatically. Not schema drift (`crate::drift`).
    #[error("history drift at V{version}: {why}")]
    Drift { version: i32, why: String },
    /// A no-transaction migration stopped half-way, or left an invalid index behind.
    /// `why` may leave drover; `server` (the server's message and detail, when a statement
    /// failed) may quote row values and never does.
    #[error("needs attention at V{version}: {why}{}", server.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    NeedsAttention {
        version: i32,
        why: String,
        server: Option<String>,
    },
    /// The connection broke mid-way, or another unexpected failure.
    #[error("{0}")]
    Other(String),
}

fn blocked_by(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        return String::new();
    }
    let list: Vec<String> = blockers.iter().map(ToString::to_string).collect();
    format!("; blocked by {}", list.join(", "))
}

/// The `reason` label of failure metrics and the `error_kind` of a wave target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Transient: retried with backoff.
    Retryable,
    /// SQL error in a migration.
    Sql,
    /// History diverges from the files.
    Drift,
    /// Statement or lock timeout.
    Timeout,
    /// Half-applied no-transaction migration or invalid index.
    NeedsAttention,
}

impl FailureKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Retryable => "retryable",
            FailureKind::Sql => "sql",
            FailureKind::Drift => "drift",
            FailureKind::Timeout => "timeout",
            FailureKind::NeedsAttention => "needs_attention",
        }
    }
}

/// SQLSTATEs worth retrying: lock timeout, too many connections, serialization failure,
/// deadlock, server shutting down, connection exceptions.
fn retryable_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "55P03" | "53300" | "40001" | "40P01" | "57P01" | "57P02" | "57P03"
        )
}

impl MigrateError {
    /// The failure as it may leave drover (events, webhooks, a tenant's migration issue,
    /// what viewers read): which migration, and the SQLSTATE with its condition name. A
    /// server's message and DETAIL never appear: `invalid input syntax for type integer:
    /// "…"` and `Failing row contains (…)` quote tenant data. Blockers' queries are
    /// normalized before they are stored, so they may.
    pub fn public(&self) -> String {
        match self {
            MigrateError::Sql { version, code, .. } => {
                format!("V{version}: {}", sqlstate::describe(code))
            }
            MigrateError::LockTimeout {
                version, blockers, ..
            } => format!(
                "V{version}: {}{}",
                sqlstate::describe("55P03"),
                blocked_by(blockers)
            ),
            MigrateError::NeedsAttention { version, why, .. } => {
                format!("needs attention at V{version}: {why}")
            }
            // Connection failures, lock contention, drift and secrets are drover's own
            // words about versions, hosts and files, never rows.
            other => other.to_string(),
        }
    }

    /// Whether retrying (after a backoff) may succeed. SQL errors and drift never are.
    pub fn is_retryable(&self) -> bool {
        match self {
            MigrateError::Connect(_)
            | MigrateError::LockBusy { .. }
            | MigrateError::LockTimeout { .. }
            | MigrateError::Other(_) => true,
            MigrateError::Secret(e) => e.is_retryable(),
            MigrateError::Sql { code, .. } => retryable_code(code),
            MigrateError::Drift { .. }
            | MigrateError::NeedsAttention { .. }
            | MigrateError::Refused(_) => false,
        }
    }

    /// The failure class for metrics and reports.
    pub fn kind(&self) -> FailureKind {
        match self {
            MigrateError::Sql { code, .. } if code == "57014" || code == "55P03" => {
                FailureKind::Timeout
            }
            MigrateError::LockTimeout { .. } => FailureKind::Timeout,
            MigrateError::Drift { .. } => FailureKind::Drift,
            MigrateError::NeedsAttention { .. } => FailureKind::NeedsAttention,
            e if e.is_retryable() => FailureKind::Retryable,
            _ => FailureKind::Sql,
        }
    }

    /// A lock timeout (55P03) with the sessions that blocked it; other errors unchanged.
    pub fn with_blockers(self, blockers: Vec<Blocker>) -> MigrateError {
        match self {
            MigrateError::Sql {
                version,
                code,
                message,
                ..
            } if code == "55P03" => MigrateError::LockTimeout {
                version,
                message,
                blockers,
            },
            other => other,
        }
    }

    /// The blockers of a lock timeout (empty for every other error).
    pub fn blockers(&self) -> &[Blocker] {
        match self {
            MigrateError::LockTimeout { blockers, .. } => blockers,
            _ => &[],
        }
    }

    /// Whether this says the tenant's server is overloaded or contended (lock timeout,
    /// refused connection, too many connections): the per-host concurrency backs off.
    pub fn is_congestion(&self) -> bool {
        match self {
            MigrateError::LockTimeout { .. } | MigrateError::Connect(_) => true,
            MigrateError::Sql { code, .. } => code == "55P03" || code == "53300",
            _ => false,
        }
    }

    /// Whether the tenant's server refused the password (SQLSTATE 28P01, read from the
    /// server's error at connect): the secret may have been rotated since it was read.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, MigrateError::Sql { code, .. } if code == "28P01")
    }

    /// From a tokio-postgres error raised while applying `version`.
    pub fn from_pg(version: i32, e: &tokio_postgres::Error) -> MigrateError {
        match e.as_db_error() {
            Some(db) => MigrateError::Sql {
                version,
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
            },
            None if e.is_closed() => {
                MigrateError::Other(format!("connection closed during V{version}"))
            }
            None => MigrateError::Connect(crate::db::describe(e)),
        }
    }
}

/// A session blocking a tenant's migration, as `pg_stat_activity` showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Blocker {
    pub pid: i32,
    pub application_name: String,
    pub user: String,
    /// `active`, `idle in transaction`, ...
    pub state: String,
    /// Age of its transaction (None: not in one).
    #[schema(required)]
    pub xact_age_ms: Option<i64>,
    /// The first 200 characters of its current or last query, normalized by PostgreSQL's
    /// parser: every literal is a `$n` (the values may be tenant data).
    pub query: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}, user {}, {}",
            self.pid, self.application_name, self.user, self.state
        )?;
        if let Some(age) = self.xact_age_ms {
            write!(f, ", transaction open {age} ms")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(code: &str) -> MigrateError {
        MigrateError::Sql {
            version: 1,
            code: code.into(),
            message: "m".into(),
            detail: None,
        }
    }

    #[test]
    fn lock_timeouts_and_connection_trouble_are_retryable_sql_errors_are_not() {
        assert!(
            !sql("28P01").is_retryable(),
            "a wrong password does not fix itself"
        );
        assert!(!MigrateError::Refused("certificate".into()).is_retryable());
        assert!(sql("55P03").is_retryable());
        assert!(sql("53300").is_retryable());
        assert!(sql("40001").is_retryable());
        assert!(MigrateError::Connect("refused".into()).is_retryable());
        assert!(!sql("23502").is_retryable());
        assert!(!sql("42P07").is_retryable());
        assert!(!MigrateError::Drift {
            version: 2,
            why: "edited".into()
        }
        .is_retryable());
    }

    #[test]
    fn failures_are_classified_for_metrics() {
        assert_eq!(sql("57014").kind(), FailureKind::Timeout);
        assert_eq!(sql("55P03").kind(), FailureKind::Timeout);
        assert_eq!(sql("23505").kind(), FailureKind::Sql);
        assert_eq!(
            MigrateError::Connect("x".into()).kind(),
            FailureKind::Retryable
        );
        assert_eq!(
            MigrateError::Drift {
                version: 1,
                why: "x".into()
            }
            .kind(),
            FailureKind::Drift
        );
    }
}
