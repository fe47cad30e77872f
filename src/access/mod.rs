//! Access control (see docs/design.md#access-model): roles, who is calling, the route →
//! role table and named tokens stored as hashes.
//!
//! ```text
//!  Authorization: Bearer T ──► root token? (config, constant time) ──► root / admin
//!                          ├─► resolver token? (config)             ──► resolver / resolver
//!                          └─► SHA-256(T) in this replica's copy of access_tokens
//!                              (snapshot.rs: no query; ≤ 1.5 s old, reloaded on NOTIFY)
//!                                                                   ──► token:<name> / its role
//!  matched route + method ──► routes::ROUTE_ROLES ──► role needed ──► 403 `forbidden` or on
//! ```
//!
//! The HTTP layer ([`crate::http`]) runs this once per request in one middleware; handlers
//! never check roles themselves.

pub mod routes;
pub mod snapshot;
pub mod tokens;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use routes::{needed_role, Needed, ROUTE_ROLES};
pub use tokens::{CreatedToken, Lookup, NewToken, TokenInfo, TokenStore};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but `/v1/resolve`.
    Viewer,
    /// `/v1/resolve` only.
    Resolver,
    /// Viewer, plus wave, schedule and dry-run actions and tenant suspend/resume.
    Operator,
    /// Everything.
    Admin,
    /// CI: pushes migration sets (`POST /v1/migration-sets`) and reads them; nothing else.
    Publisher,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Resolver,
        Role::Operator,
        Role::Admin,
        Role::Publisher,
    ];

    /// The name used in the API, the CLI and the control DB.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Resolver => "resolver",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Publisher => "publisher",
        }
    }

    /// Whether a holder of `self` may use a route that needs `needed`.
    pub fn grants(self, needed: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Operator => matches!(needed, Role::Viewer | Role::Operator),
            Role::Viewer => needed == Role::Viewer,
            Role::Resolver => needed == Role::Resolver,
            Role::Publisher => needed == Role::Publisher,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AccessError::Invalid {
                field: "role",
                message: "must be viewer, resolver, operator, admin or publisher".into(),
            })
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `root` (the admin token of the config), `resolver` (the resolver token of the
    /// config) or `token:<name>`; the actor of every event the request writes.
    pub identity: String,
    /// What it may do.
    pub role: Role,
}

impl Principal {
    /// The admin token of the configuration: break-glass and bootstrap.
    pub fn root() -> Self {
        Principal {
            identity: "root".into(),
            role: Role::Admin,
        }
    }

    /// The resolver token of the configuration.
    pub fn config_resolver() -> Self {
        Principal {
            identity: "resolver".into(),
            role: Role::Resolver,
        }
    }
}

/// Errors of token management.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A field of the request is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A token with this name exists.
    #[error("a token named '{0}' already exists; revoke it first or pick another name")]
    Duplicate(String),
    /// No token with this name.
    #[error("no token named '{0}'")]
    NotFound(String),
    /// The copy of the token table is too old to trust and the control DB does not answer
    /// (a revocation might be missing from it).
    #[error("the token list could not be read from the control database recently; retry shortly")]
    Stale,
    /// The control DB failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl AccessError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AccessError::Db(e) => e.is_retryable(),
            AccessError::Stale => true,
            _ => false,
        }
    }
}

impl From<tokio_postgres::Error> for AccessError {
    fn from(e: tokio_postgres::Error) -> Self {
        AccessError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for AccessError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        AccessError::Db(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_access_model_says() {
        use Role::*;
        let granted =
            |r: Role| -> Vec<Role> { Role::ALL.into_iter().filter(|n| r.grants(*n)).collect() };

        assert_eq!(granted(Viewer), [Viewer]);
        assert_eq!(granted(Resolver), [Resolver]);
        assert_eq!(granted(Operator), [Viewer, Operator]);
        assert_eq!(granted(Admin), Role::ALL);
        assert_eq!(granted(Publisher), [Publisher]);
        assert!("owner".parse::<Role>().is_err());
        assert_eq!("operator".parse::<Role>().unwrap(), Operator);
    }

    #[test]
    fn every_role_round_trips_through_its_name() {
        let names: Vec<String> = Role::ALL.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            ["viewer", "resolver", "operator", "admin", "publisher"]
        );
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }

    #[test]
    fn the_config_tokens_are_root_as_admin_and_resolver_as_resolver() {
        assert_eq!(
            Principal::root(),
            Principal {
                identity: "root".into(),
                role: Role::Admin
            }
        );
        assert_eq!(
            Principal::config_resolver(),
            Principal {
                identity: "resolver".into(),
                role: Role::Resolver
            }
        );
    }

    #[test]
    fn only_a_busy_control_database_or_a_stale_token_list_makes_token_management_retryable() {
        assert!(AccessError::Stale.is_retryable());
        let invalid = AccessError::Invalid {
            field: "name",
            message: "empty".into(),
        };
        assert!(!invalid.is_retryable());
        assert!(!AccessError::Duplicate("ci".into()).is_retryable());
        assert!(!AccessError::NotFound("ci".into()).is_retryable());
        let pool_timeout =
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait);
        assert!(AccessError::Db(pool_timeout.into()).is_retryable());
        let internal = crate::db::DbError::Internal("the pool could not be built".into());
        assert!(!AccessError::Db(internal).is_retryable());
    }
}
