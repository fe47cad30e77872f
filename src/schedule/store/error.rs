//! Why a schedule operation failed, and which failures are worth retrying.

use crate::db::DbError;
use crate::schedule::cron::CronError;
use crate::waves::WaveError;

/// Why a schedule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// No schedule with this name.
    #[error("no schedule '{0}'")]
    NotFound(String),
    /// The name is taken.
    #[error("a schedule named '{0}' already exists")]
    Duplicate(String),
    /// The stored template is not a valid `POST /v1/waves` body any more (e.g. a field
    /// was renamed by an upgrade): nothing may run from it until a person replaces it.
    #[error("the stored template of schedule '{name}' no longer parses ({why}); replace it with PATCH /v1/schedules/{name} and a new template")]
    BrokenTemplate { name: String, why: String },
    /// Creating the tick's wave failed.
    #[error(transparent)]
    Wave(#[from] WaveError),
    /// The control DB failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ScheduleError {
    /// Whether the same request may succeed later: only when the control DB failed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ScheduleError::Wave(e) => e.is_retryable(),
            ScheduleError::Db(e) => e.is_retryable(),
            ScheduleError::Invalid { .. }
            | ScheduleError::NotFound(_)
            | ScheduleError::Duplicate(_)
            | ScheduleError::BrokenTemplate { .. } => false,
        }
    }
}

impl From<tokio_postgres::Error> for ScheduleError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return ScheduleError::Duplicate(String::new());
        }
        ScheduleError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for ScheduleError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ScheduleError::Db(DbError::Pool(e))
    }
}

impl From<CronError> for ScheduleError {
    fn from(e: CronError) -> Self {
        let field = if matches!(e, CronError::UnknownTimezone { .. }) {
            "timezone"
        } else {
            "cron"
        };
        ScheduleError::Invalid {
            field,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_control_db_failures_are_retryable() {
        let db = ScheduleError::Db(DbError::Pool(deadpool_postgres::PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        )));
        let invalid = ScheduleError::Invalid {
            field: "cron",
            message: "bad".into(),
        };

        assert!(db.is_retryable());
        assert!(!invalid.is_retryable());
        assert!(!ScheduleError::NotFound("x".into()).is_retryable());
    }
}
