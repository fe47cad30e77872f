//! Registry errors. Each says whether retrying can help; the HTTP layer maps them to
//! status codes in one place (`http::error`).

use crate::db::DbError;

/// Why a registry operation did not happen. In every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A field failed validation.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field, as named in the API.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Another live tenant already has this slug (compared case-insensitively).
    #[error("a live tenant with slug '{0}' already exists")]
    DuplicateSlug(String),
    /// Another live tenant already uses this database name (case-insensitively).
    #[error("database name '{0}' is already used by a live tenant")]
    DuplicateDbName(String),
    /// The slug may not be given to a tenant (reserved, or a renamed tenant's alias).
    #[error("slug '{slug}' is reserved: {why}; choose another")]
    SlugReserved {
        /// The slug asked for.
        slug: String,
        /// Why it is reserved.
        why: String,
    },
    /// No live tenant has this slug.
    #[error("no tenant '{0}'")]
    NotFound(String),
    /// The requested status change is not allowed from the current status.
    #[error("cannot {verb} tenant '{slug}': it is {from}")]
    IllegalTransition {
        /// The tenant.
        slug: String,
        /// The attempted action.
        verb: &'static str,
        /// Its current status.
        from: String,
    },
    /// The request is valid but needs a feature this daemon is not configured for.
    #[error("{0}")]
    Unavailable(String),
    /// The control database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl RegistryError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Db(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<tokio_postgres::Error> for RegistryError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The database constraints are the second line behind Rust validation; when one
        // fires (a race, or a rule Rust missed) it must still read as a client error.
        if let Some(db) = e.as_db_error() {
            let constraint = db.constraint().unwrap_or_default();
            match (db.code().code(), constraint) {
                ("23505", "tenants_slug_live_key") => {
                    return RegistryError::DuplicateSlug(detail_value(db.detail()));
                }
                ("23505", "tenants_db_name_live_key") => {
                    return RegistryError::DuplicateDbName(detail_value(db.detail()));
                }
                ("23514", "tenants_slug_not_reserved") => {
                    return RegistryError::SlugReserved {
                        slug: String::new(),
                        why: "it is one of drover's own route or system names".into(),
                    };
                }
                ("23514", c) => {
                    return RegistryError::Invalid {
                        field: field_of_constraint(c),
                        message: format!("rejected by database constraint {c}"),
                    };
                }
                _ => {}
            }
        }
        RegistryError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for RegistryError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RegistryError::Db(DbError::Pool(e))
    }
}

/// `Key (lower(slug))=(acme) already exists.` → `acme`.
fn detail_value(detail: Option<&str>) -> String {
    detail
        .and_then(|d| d.split_once(")=("))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(v, _)| v.to_string())
        .unwrap_or_default()
}

fn field_of_constraint(c: &str) -> &'static str {
    const FIELDS: &[&str] = &[
        "display_name",
        "db_secret_ref",
        "db_name",
        "db_host",
        "db_port",
        "db_user",
        "slug",
        "status",
        "labels",
    ];
    FIELDS
        .iter()
        .find(|f| c.starts_with(&format!("tenants_{f}")))
        .copied()
        .unwrap_or("tenant")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_detail_yields_the_conflicting_value() {
        assert_eq!(
            detail_value(Some("Key (lower(slug))=(acme) already exists.")),
            "acme"
        );
        assert_eq!(detail_value(None), "");
    }

    #[test]
    fn validation_and_conflicts_are_not_retryable() {
        assert!(!RegistryError::DuplicateSlug("a".into()).is_retryable());
        assert!(!RegistryError::Invalid {
            field: "slug",
            message: "x".into()
        }
        .is_retryable());
    }

    #[test]
    fn constraint_names_map_to_fields() {
        assert_eq!(
            field_of_constraint("tenants_db_secret_ref_format"),
            "db_secret_ref"
        );
        assert_eq!(field_of_constraint("tenants_slug_not_reserved"), "slug");
    }
}
